//! The run's Redis key prefix: emptied between scenarios, deleted at the end.

use anyhow::Result;
use redis::aio::MultiplexedConnection;

use super::Bench;
use crate::measure::is_process;

/// Deletes every key under `prefix` (the end of the run).
pub(crate) async fn delete_redis_prefix(url: &str, prefix: &str) -> Result<()> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    delete_keys(&mut conn, prefix, |_| true).await
}

/// Deletes the keys under `prefix` that `delete` picks, 1 000 per DEL.
pub(super) async fn delete_keys(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    delete: impl Fn(&str) -> bool,
) -> Result<()> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(conn)
        .await?;
    keys.retain(|k| delete(k));
    for batch in keys.chunks(1_000) {
        let () = redis::cmd("DEL").arg(batch).query_async(conn).await?;
    }
    Ok(())
}

impl Bench {
    /// The pid of the redis-server we talk to, when it runs on this machine.
    pub(super) async fn find_redis_pid(&mut self) -> Option<u32> {
        let pid: u32 = self.redis_server_info("process_id").await?.parse().ok()?;
        is_process(pid, "redis").then_some(pid)
    }

    /// A field of Redis's `INFO server` (`process_id`, `redis_version`, …).
    pub(super) async fn redis_server_info(&mut self, field: &str) -> Option<String> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.redis)
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    }
}
