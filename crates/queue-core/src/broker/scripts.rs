//! The Lua scripts, loaded once from `lua/*.lua`.

use std::sync::LazyLock;

use redis::Script;

pub(crate) static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/enqueue.lua")));
pub(crate) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/claim.lua")));

pub(crate) fn all() -> [&'static Script; 2] {
    [&ENQUEUE, &CLAIM]
}
