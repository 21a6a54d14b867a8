//! Cancelling and deleting jobs.

use uuid::Uuid;

use super::{retry_if_moved, Store};
use crate::error::StoreError;

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was waiting: CANCELLED now, it will never start.
    Cancelled,
    /// It is running: its worker stops the handler and the job ends CANCELLED.
    Requested,
    /// It was finished: the record is deleted.
    Deleted,
    NotFound,
}

impl Store {
    /// Cancels a waiting job, requests cancellation of a running one, or deletes a
    /// finished one (the `DELETE /api/admin/jobs/:id` semantics). One statement per
    /// case, each guarded by the status it expects, so a concurrent claim or
    /// completion is never overwritten: on a race the next case applies.
    pub async fn cancel_or_delete(&self, id: Uuid) -> Result<CancelOutcome, StoreError> {
        for _ in 0..3 {
            let waiting = retry_if_moved(|| {
                sqlx::query(
                "UPDATE jobs SET status = 'CANCELLED', completed_at = now(), cancel_requested = true,
                                 error = 'cancelled by request'
                 WHERE id = $1 AND completed_at IS NULL AND status IN ('PENDING', 'DELAYED', 'RETRYING')",
            )
                .bind(id)
                .execute(&self.pool)
            })
            .await?;
            if waiting.rows_affected() == 1 {
                return Ok(CancelOutcome::Cancelled);
            }
            // A batch parent waiting for its children (RUNNING without a lease) has
            // its waiting children cancelled in the same statement; the tally then
            // ends it CANCELLED once its running children are done.
            let running: Option<Uuid> = retry_if_moved(|| {
                sqlx::query_scalar(
                "WITH parent AS (
                    UPDATE jobs SET cancel_requested = true
                    WHERE id = $1 AND completed_at IS NULL AND status = 'RUNNING'
                    RETURNING id, lease_expires_at IS NULL AS waits_for_children
                 ), children AS (
                    UPDATE jobs c SET status = 'CANCELLED', completed_at = now(), cancel_requested = true,
                                      error = 'cancelled with its batch'
                    FROM parent p
                    WHERE p.waits_for_children AND c.parent_id = p.id AND c.completed_at IS NULL
                      AND c.status IN ('PENDING', 'DELAYED', 'RETRYING')
                 )
                 SELECT id FROM parent",
            )
                .bind(id)
                .fetch_optional(&self.pool)
            })
            .await?;
            if running.is_some() {
                return Ok(CancelOutcome::Requested);
            }
            let deleted = retry_if_moved(|| {
                sqlx::query(
                "DELETE FROM jobs
                 WHERE id = $1 AND completed_at IS NOT NULL AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')",
            )
                .bind(id)
                .execute(&self.pool)
            })
            .await?;
            if deleted.rows_affected() == 1 {
                return Ok(CancelOutcome::Deleted);
            }
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
            if !exists {
                return Ok(CancelOutcome::NotFound);
            }
            // The job changed state between two statements: look again.
        }
        Ok(CancelOutcome::Requested)
    }
}
