//! Retention of finished job records (SPEC §3): per queue and state, a record is
//! deleted when it finished more than the maximum age ago and is not among the
//! newest `keep` records of its queue and state (keep 0: no such floor).

use super::Store;
use crate::error::StoreError;
use crate::job::JobStatus;

/// Records deleted per statement.
pub const RETENTION_BATCH: i64 = 1_000;

impl Store {
    /// Deletes `status` records of `queue` older than `max_age_s` (by finish time)
    /// that are not among its newest `keep`, in batches of [`RETENTION_BATCH`].
    /// Safe to run from several processes at once. Returns how many were deleted.
    pub async fn prune_finished(
        &self,
        queue: &str,
        status: JobStatus,
        max_age_s: u64,
        keep: u64,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM jobs WHERE id IN (
                   SELECT id FROM jobs
                   WHERE queue_name = $1 AND status = $2
                     AND COALESCE(completed_at, created_at) < now() - make_interval(secs => $3)
                     AND id NOT IN (
                       SELECT id FROM jobs WHERE queue_name = $1 AND status = $2
                       ORDER BY COALESCE(completed_at, created_at) DESC, id DESC
                       LIMIT $4)
                   LIMIT $5
                   FOR UPDATE SKIP LOCKED)",
            )
            .bind(queue)
            .bind(status.as_str())
            .bind(max_age_s as f64)
            .bind(i64::try_from(keep).unwrap_or(i64::MAX))
            .bind(RETENTION_BATCH)
            .execute(&self.pool)
            .await?;
            total += done.rows_affected();
            if done.rows_affected() < RETENTION_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}
