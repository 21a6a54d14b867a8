//! The run's Redis key prefix: emptied between scenarios, deleted at the end.

use anyhow::Result;

use super::Bench;
use crate::measure::is_process;

/// Deletes every key under `prefix` (the end of the run).
pub(crate) async fn delete_redis_prefix(url: &str, prefix: &str) -> Result<()> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    for batch in keys.chunks(1_000) {
        let () = redis::cmd("DEL").arg(batch).query_async(&mut conn).await?;
    }
    Ok(())
}

impl Bench {
    /// The pid of the redis-server we talk to, when it runs on this machine.
    pub(super) async fn find_redis_pid(&mut self) -> Option<u32> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.redis)
            .await
            .ok()?;
        let pid: u32 = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))?
            .trim()
            .parse()
            .ok()?;
        is_process(pid, "redis").then_some(pid)
    }
}
