//! The Lua scripts, loaded once from `lua/*.lua`.

use std::sync::LazyLock;

use redis::Script;

pub(crate) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/enqueue.lua")));
pub(crate) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/claim.lua")));

pub(crate) static DEAD_LETTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/dead_letter.lua")));
pub(crate) static AUDIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/audit.lua")));

pub(crate) fn all() -> [&'static Script; 4] {
    [&ENQUEUE, &CLAIM, &DEAD_LETTER, &AUDIT]
}
