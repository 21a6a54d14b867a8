//! The registry of live worker processes.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Store;
use crate::error::StoreError;

impl Store {
    /// Records (or renews) a live worker.
    pub async fn worker_heartbeat(
        &self,
        id: &str,
        host: &str,
        pid: u32,
        queues: &[String],
        concurrency: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, queues, concurrency) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET last_heartbeat = now()",
        )
        .bind(id)
        .bind(host)
        .bind(pid as i32)
        .bind(queues)
        .bind(concurrency as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_worker(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes the rows of workers whose last heartbeat is older than `stale_after`
    /// (a process killed before it could remove its own row); returns how many.
    pub async fn prune_workers(&self, stale_after: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM workers WHERE last_heartbeat < now() - make_interval(secs => $1)",
        )
        .bind(stale_after.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Prunes rows silent for longer than `lease` every `lease` until `stop`
    /// (a live worker beats several times per lease); failures are logged.
    pub async fn run_worker_pruning(self, lease: Duration, stop: CancellationToken) {
        let mut every = tokio::time::interval(lease);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            match self.prune_workers(lease).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(workers = n, "pruned workers whose heartbeat stopped"),
                Err(e) => tracing::warn!(error = %e, "pruning stale workers failed; retrying"),
            }
        }
    }
}
