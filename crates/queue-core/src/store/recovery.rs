//! Recovery after faults: expired leases (a worker died or froze) and ids that
//! Redis lost.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dispatch::outbox_cte;
use super::{retry_if_moved, Store};
use crate::error::StoreError;
use crate::job::JobStatus;

/// A job whose lease ran out, and where recovery left it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recovered {
    pub id: Uuid,
    pub queue_name: String,
    pub job_type: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub runs: i32,
    pub attempts: i32,
    pub error: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A waiting job as Redis should hold it: id, priority, and how long until it is
/// due by PostgreSQL's clock.
pub type WaitingJob = (Uuid, i32, Duration);

impl Store {
    /// Recovers up to `limit` RUNNING jobs whose lease expired: the attempt is logged
    /// as LOST and counts; the job goes to RETRYING (due now), or FAILED when its
    /// attempts are spent, or CANCELLED if that was requested. Safe to run from many
    /// processes at once (SKIP LOCKED).
    ///
    /// A job of a worker in `live_workers` (its heartbeat is current in Redis) is
    /// left alone while that worker has not written a heartbeat to PostgreSQL since
    /// the lease ran out: PostgreSQL was unreachable for it, and it renews the
    /// lease (or writes the outcome) once it can. A live worker that did beat
    /// since, and still did not renew, no longer holds the job.
    pub async fn recover_expired(
        &self,
        limit: i64,
        live_workers: &[String],
    ) -> Result<Vec<Recovered>, StoreError> {
        let sql = format!(
            "WITH expired AS (
                SELECT j.id FROM jobs j
                WHERE j.status = 'RUNNING' AND j.completed_at IS NULL AND j.lease_expires_at < now()
                  AND NOT (j.worker_id = ANY($2) AND NOT EXISTS (
                      SELECT 1 FROM workers w WHERE w.id = j.worker_id AND w.last_heartbeat > j.lease_expires_at))
                ORDER BY j.lease_expires_at LIMIT $1 FOR UPDATE OF j SKIP LOCKED
             ), old AS (
                SELECT j.id, j.job_type, j.runs, j.attempts, j.worker_id, j.started_at FROM jobs j JOIN expired USING (id)
                WHERE j.completed_at IS NULL
             ), updated AS (
                UPDATE jobs j SET
                    status = CASE WHEN j.cancel_requested THEN 'CANCELLED'
                                  WHEN j.attempts >= j.max_attempts THEN 'FAILED'
                                  ELSE 'RETRYING' END,
                    error = 'worker lost (lease expired during attempt ' || j.attempts || ')',
                    completed_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
                    run_at = now(), lease_expires_at = NULL
                FROM expired WHERE j.id = expired.id AND j.completed_at IS NULL
                RETURNING j.id, j.queue_name, j.job_type, j.status, j.runs, j.attempts, j.error, j.completed_at
             ), logged AS (
                INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at, finished_at,
                                            duration_ms, error)
                SELECT o.id, o.job_type, o.runs, o.attempts, COALESCE(o.worker_id, 'unknown'), 'LOST', COALESCE(o.started_at, now()), now(),
                       conveyor_duration_ms(COALESCE(o.started_at, now()), now()),
                       'worker lost (lease expired)'
                FROM old o
                ON CONFLICT (job_id, run, attempt) DO NOTHING
             ), outbox AS ({})
             SELECT id, queue_name, job_type, status, runs, attempts, error, completed_at FROM updated",
            outbox_cte("updated", "WHERE status IN ('RETRYING', 'FAILED')", "gen_random_uuid()", "false")
        );
        retry_if_moved(|| {
            sqlx::query_as(&sql)
                .bind(limit)
                .bind(live_workers)
                .fetch_all(&self.pool)
        })
        .await
    }

    /// Names every waiting job of `queue`, and its newest `dead_letters` FAILED
    /// ones, in outbox rows of 1 000 (after Redis lost its data), so the dispatch
    /// sweep pushes them again and rebuilds the dead-letter stream.
    pub async fn redispatch_queue(
        &self,
        queue: &str,
        dead_letters: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query_scalar(
            "WITH lost AS (
                SELECT id FROM jobs WHERE queue_name = $1 AND completed_at IS NULL
                  AND status IN ('PENDING', 'DELAYED', 'RETRYING')
                UNION ALL
                (SELECT id FROM jobs WHERE queue_name = $1 AND status = 'FAILED'
                 ORDER BY completed_at DESC LIMIT $2)
             ), waiting AS (
                SELECT id, (row_number() OVER ()) / 1000 AS chunk FROM lost
             ), added AS (
                INSERT INTO dispatch_outbox (id, job_ids, writer_pushes)
                SELECT gen_random_uuid(), array_agg(id), false FROM waiting GROUP BY chunk
                RETURNING cardinality(job_ids) AS n
             )
             SELECT COALESCE(sum(n), 0)::bigint FROM added",
        )
        .bind(queue)
        .bind(dead_letters)
        .fetch_one(&self.pool)
        .await
        .map(|n: i64| n as u64)?)
    }

    /// Names those of `ids` (found stale in Redis) that are still waiting in an outbox
    /// row, so the dispatch sweep pushes them again.
    pub async fn redispatch_ids(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        Ok(sqlx::query_scalar(concat!(
            "WITH waiting AS (
                SELECT id FROM jobs WHERE id = ANY($1) AND completed_at IS NULL AND ",
            waits!("status"),
            "
             ), added AS (
                INSERT INTO dispatch_outbox (id, job_ids, writer_pushes)
                SELECT gen_random_uuid(), array_agg(id), false FROM waiting HAVING count(*) > 0
                RETURNING cardinality(job_ids) AS n
             )
             SELECT COALESCE(sum(n), 0)::bigint FROM added"
        ))
        .bind(ids)
        .fetch_one(&self.pool)
        .await
        .map(|n: i64| n as u64)?)
    }

    /// Those of `ids` whose jobs still wait, with what Redis needs to hold them.
    pub async fn still_waiting(&self, ids: &[Uuid]) -> Result<Vec<WaitingJob>, StoreError> {
        let rows: Vec<(Uuid, i32, i64)> = sqlx::query_as(concat!(
            "SELECT id, priority,
                    GREATEST(0, ceil(extract(epoch FROM run_at - now()) * 1000))::bigint
             FROM jobs WHERE id = ANY($1) AND completed_at IS NULL AND ",
            waits!("status")
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(waiting_jobs(rows))
    }

    /// Up to `limit` waiting jobs of `queue` after id `after`, in id order, that
    /// were created more than `older_than` ago (younger ones are still being pushed
    /// by their writer). Reads the waiting-jobs index only, so a pass over a
    /// queue's backlog costs the same whatever the history holds.
    pub async fn waiting_page(
        &self,
        queue: &str,
        after: Option<Uuid>,
        older_than: Duration,
        limit: i64,
    ) -> Result<Vec<WaitingJob>, StoreError> {
        let rows: Vec<(Uuid, i32, i64)> = sqlx::query_as(
            "SELECT id, priority,
                    GREATEST(0, ceil(extract(epoch FROM run_at - now()) * 1000))::bigint
             FROM jobs
             WHERE queue_name = $1 AND completed_at IS NULL AND status IN ('PENDING', 'DELAYED', 'RETRYING')
               AND id > COALESCE($2, '00000000-0000-0000-0000-000000000000'::uuid)
               AND created_at < now() - make_interval(secs => $3)
             ORDER BY id LIMIT $4",
        )
        .bind(queue)
        .bind(after)
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(waiting_jobs(rows))
    }
}

fn waiting_jobs(rows: Vec<(Uuid, i32, i64)>) -> Vec<WaitingJob> {
    rows.into_iter()
        .map(|(id, priority, ms)| (id, priority, Duration::from_millis(ms.max(0) as u64)))
        .collect()
}
