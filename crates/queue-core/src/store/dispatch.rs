//! Jobs whose id may not be in Redis: `dispatched_at IS NULL` means "not known to
//! be pushed". Enqueue marks it after the push; the reconciler pushes the rest.

use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

use super::Store;
use crate::broker::{Broker, Dispatch};
use crate::error::StoreError;

/// A waiting job to push.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Undispatched {
    pub id: Uuid,
    pub queue_name: String,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
}

impl Store {
    /// Records that these ids are in Redis. Only waiting jobs are touched (and
    /// row-locked): a finished job needs no mark, and `clean` skips locked rows.
    pub async fn mark_dispatched(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE jobs SET dispatched_at = now()
             WHERE id = ANY($1) AND dispatched_at IS NULL AND status IN ('PENDING', 'DELAYED', 'RETRYING')",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pushes up to `limit` waiting jobs of `queues` that are not known to be in
    /// Redis and are older than `min_age`, marking them in the same transaction (so a
    /// failed push changes nothing). Safe with many callers at once (SKIP LOCKED).
    /// Returns how many were pushed.
    pub async fn dispatch_missing(
        &self,
        broker: &Broker,
        queues: &[String],
        min_age: Duration,
        limit: i64,
    ) -> Result<usize, DispatchError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let rows: Vec<Undispatched> = sqlx::query_as(
            "SELECT id, queue_name, priority, run_at FROM jobs
             WHERE dispatched_at IS NULL AND status IN ('PENDING', 'DELAYED', 'RETRYING')
               AND queue_name = ANY($1) AND created_at < now() - make_interval(secs => $2)
             ORDER BY run_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(queues)
        .bind(min_age.as_secs_f64())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let items: Vec<Dispatch> = rows
            .iter()
            .map(|r| Dispatch {
                queue: r.queue_name.clone(),
                id: r.id,
                priority: r.priority,
                run_at: Some(r.run_at),
            })
            .collect();
        broker.push(&items).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        sqlx::query("UPDATE jobs SET dispatched_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(rows.len())
    }
}

/// A dispatch sweep failed in one of the two stores.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] crate::error::BrokerError),
}
