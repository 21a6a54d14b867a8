//! Recovery after faults: expired leases (a worker died or froze) and ids that
//! Redis lost.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dispatch::outbox_cte;
use super::Store;
use crate::error::StoreError;

/// A job whose lease ran out, and where recovery left it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recovered {
    pub id: Uuid,
    pub queue_name: String,
    pub job_type: String,
    pub status: String,
    pub attempts: i32,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Recovers up to `limit` RUNNING jobs whose lease expired: the attempt is logged
    /// as LOST and counts; the job goes to RETRYING (due now), or FAILED when its
    /// attempts are spent, or CANCELLED if that was requested. Safe to run from many
    /// processes at once (SKIP LOCKED).
    pub async fn recover_expired(&self, limit: i64) -> Result<Vec<Recovered>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "WITH expired AS (
                SELECT id FROM jobs WHERE status = 'RUNNING' AND lease_expires_at < now()
                ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
             ), old AS (
                SELECT j.id, j.runs, j.attempts, j.worker_id, j.started_at FROM jobs j JOIN expired USING (id)
             ), updated AS (
                UPDATE jobs j SET
                    status = CASE WHEN j.cancel_requested THEN 'CANCELLED'
                                  WHEN j.attempts >= j.max_attempts THEN 'FAILED'
                                  ELSE 'RETRYING' END,
                    error = 'worker lost (lease expired during attempt ' || j.attempts || ')',
                    completed_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
                    run_at = now(), lease_expires_at = NULL
                FROM expired WHERE j.id = expired.id
                RETURNING j.id, j.queue_name, j.job_type, j.status, j.attempts, j.completed_at
             ), logged AS (
                INSERT INTO job_executions (job_id, run, attempt, worker_id, status, started_at, finished_at, duration_ms, error)
                SELECT o.id, o.runs, o.attempts, COALESCE(o.worker_id, 'unknown'), 'LOST', COALESCE(o.started_at, now()), now(),
                       GREATEST(0, (extract(epoch FROM now() - COALESCE(o.started_at, now())) * 1000)::bigint),
                       'worker lost (lease expired)'
                FROM old o
                ON CONFLICT (job_id, run, attempt) DO NOTHING
             ), outbox AS ({})
             SELECT id, queue_name, job_type, status, attempts, completed_at FROM updated",
            outbox_cte("updated", "WHERE status = 'RETRYING'", "gen_random_uuid()", "false")
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Names every waiting job of `queue` in outbox rows of 1 000 (after Redis lost
    /// its data), so the dispatch sweep pushes them again.
    pub async fn redispatch_queue(&self, queue: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query_scalar(
            "WITH waiting AS (
                SELECT id, (row_number() OVER ()) / 1000 AS chunk FROM jobs
                WHERE queue_name = $1 AND status IN ('PENDING', 'DELAYED', 'RETRYING')
             ), added AS (
                INSERT INTO dispatch_outbox (id, job_ids, writer_pushes)
                SELECT gen_random_uuid(), array_agg(id), false FROM waiting GROUP BY chunk
                RETURNING cardinality(job_ids) AS n
             )
             SELECT COALESCE(sum(n), 0)::bigint FROM added",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await
        .map(|n: i64| n as u64)?)
    }

    /// Names those of `ids` (found stale in Redis) that are still waiting in an outbox
    /// row, so the dispatch sweep pushes them again.
    pub async fn redispatch_ids(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        Ok(sqlx::query_scalar(
            "WITH waiting AS (
                SELECT id FROM jobs WHERE id = ANY($1) AND status IN ('PENDING', 'DELAYED', 'RETRYING')
             ), added AS (
                INSERT INTO dispatch_outbox (id, job_ids, writer_pushes)
                SELECT gen_random_uuid(), array_agg(id), false FROM waiting HAVING count(*) > 0
                RETURNING cardinality(job_ids) AS n
             )
             SELECT COALESCE(sum(n), 0)::bigint FROM added",
        )
        .bind(ids)
        .fetch_one(&self.pool)
        .await
        .map(|n: i64| n as u64)?)
    }
}
