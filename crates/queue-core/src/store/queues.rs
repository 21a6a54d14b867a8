//! Per-queue state kept in PostgreSQL (it must survive a Redis loss).

use super::Store;
use crate::error::StoreError;

impl Store {
    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO queue_state (queue_name, paused) VALUES ($1, $2)
             ON CONFLICT (queue_name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now()",
        )
        .bind(queue)
        .bind(paused)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn paused_queues(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT queue_name FROM queue_state WHERE paused")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
