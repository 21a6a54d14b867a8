//! The registry of live worker processes.

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
}
