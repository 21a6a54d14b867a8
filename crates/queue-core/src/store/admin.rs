//! What the admin API asks of PostgreSQL beyond single jobs: retries, per-queue
//! counts and cleaning finished records.

use serde::Serialize;
use uuid::Uuid;

use super::dispatch::outbox_cte;
use super::jobs::{JobFilter, JOB_COLUMNS};
use super::{retry_if_moved, Store};
use crate::error::StoreError;
use crate::job::{Job, JobStatus};

/// Job counts of one queue by state (the queue stats of the admin API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub queue: String,
    pub paused: bool,
    /// PENDING.
    pub waiting: i64,
    /// RUNNING.
    pub active: i64,
    pub delayed: i64,
    pub retrying: i64,
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl QueueStats {
    fn add(&mut self, status: &str, n: i64) {
        let slot = match status.parse::<JobStatus>() {
            Ok(JobStatus::Pending) => &mut self.waiting,
            Ok(JobStatus::Running) => &mut self.active,
            Ok(JobStatus::Delayed) => &mut self.delayed,
            Ok(JobStatus::Retrying) => &mut self.retrying,
            Ok(JobStatus::Completed) => &mut self.completed,
            Ok(JobStatus::Failed) => &mut self.failed,
            Ok(JobStatus::Cancelled) => &mut self.cancelled,
            // The table's CHECK constraint makes this unreachable.
            Err(_) => return,
        };
        *slot += n;
    }
}

/// What a retry request found.
#[derive(Debug, Clone)]
pub enum RetryOutcome {
    /// PENDING again, attempts reset; the caller pushes it to Redis.
    Retried(Box<Job>),
    /// The job is in a state a retry does not apply to.
    NotRetryable(JobStatus),
    NotFound,
}

/// The states a retry moves back to PENDING.
const RETRYABLE: [&str; 2] = ["FAILED", "CANCELLED"];

/// Resets a finished job to a fresh PENDING one in a new run (`runs + 1`), so the
/// attempts of earlier runs stay in the log. An outbox row makes the reconciler push
/// it should the caller's push fail.
fn retry_sql(extra_filter: &str) -> String {
    format!(
        "WITH retried AS (
            UPDATE jobs SET status = 'PENDING', attempts = 0, error = NULL, result = NULL,
                            completed_at = NULL, started_at = NULL, cancel_requested = false,
                            progress = 0, progress_message = NULL,
                            run_at = now(), worker_id = NULL, lease_expires_at = NULL,
                            runs = runs + 1
            WHERE id = ANY($1) AND status = ANY($2) {extra_filter}
            RETURNING {JOB_COLUMNS}
         ), outbox AS ({})
         SELECT * FROM retried",
        outbox_cte("retried", "", "gen_random_uuid()", "false")
    )
}

impl Store {
    /// FAILED or CANCELLED → PENDING with attempts 0 and the outcome cleared.
    pub async fn retry_job(&self, id: Uuid) -> Result<RetryOutcome, StoreError> {
        // A job can change state between the guarded update and the look-up that
        // explains a refusal; look again a few times before answering.
        let mut seen = None;
        for _ in 0..3 {
            let sql = retry_sql("");
            let retried: Option<Job> = retry_if_moved(|| {
                sqlx::query_as(&sql)
                    .bind(vec![id])
                    .bind(&RETRYABLE[..])
                    .fetch_optional(&self.pool)
            })
            .await?;
            if let Some(job) = retried {
                return Ok(RetryOutcome::Retried(Box::new(job)));
            }
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            let Some(status) = status else {
                return Ok(RetryOutcome::NotFound);
            };
            // The CHECK constraint makes every stored status readable.
            let status = status.parse::<JobStatus>().unwrap_or(JobStatus::Running);
            if !RETRYABLE.contains(&status.as_str()) {
                return Ok(RetryOutcome::NotRetryable(status));
            }
            // It became retryable after the update looked: again.
            seen = Some(status);
        }
        Ok(seen.map_or(RetryOutcome::NotFound, RetryOutcome::NotRetryable))
    }

    /// Retries the FAILED jobs among `ids` that belong to `queue` (the dead-letter
    /// replay); other ids are left alone. Returns the jobs now PENDING.
    pub async fn retry_failed(&self, queue: &str, ids: &[Uuid]) -> Result<Vec<Job>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = retry_sql("AND queue_name = $3");
        retry_if_moved(|| {
            sqlx::query_as(&sql)
                .bind(ids)
                .bind(&["FAILED"][..])
                .bind(queue)
                .fetch_all(&self.pool)
        })
        .await
    }

    /// Counts by state of each of `queues`, in their order, from the trigger-kept
    /// counters (a few small rows per queue, whatever the size of `jobs`), plus the
    /// pause flags.
    pub async fn queue_stats(&self, queues: &[String]) -> Result<Vec<QueueStats>, StoreError> {
        let rows = self.counted_by_queue(queues).await?;
        let paused = self.paused_queues().await?;
        let mut stats: Vec<QueueStats> = queues
            .iter()
            .map(|q| QueueStats {
                queue: q.clone(),
                paused: paused.contains(q),
                ..QueueStats::default()
            })
            .collect();
        for (queue, status, n) in rows {
            if let Some(s) = stats.iter_mut().find(|s| s.queue == queue) {
                s.add(&status, n);
            }
        }
        Ok(stats)
    }

    /// Deletes up to `limit` records of `queue` in the terminal `status` that
    /// finished more than `grace_ms` ago, oldest first. Returns how many went.
    pub async fn clean(
        &self,
        queue: &str,
        status: JobStatus,
        grace_ms: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        debug_assert!(status.is_terminal());
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE id IN (
                SELECT id FROM jobs
                WHERE queue_name = $1 AND status = $2
                  AND completed_at < now() - $3::float8 * interval '1 millisecond'
                ORDER BY completed_at, id LIMIT $4
                FOR UPDATE SKIP LOCKED)",
        )
        .bind(queue)
        .bind(status.as_str())
        .bind(grace_ms)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    /// The exact number of jobs matching `filter`: from the trigger-kept counters
    /// for any mix of queue, status and type; a parent's children (few) are
    /// counted over the parent index.
    pub async fn count_jobs_indexed(&self, filter: &JobFilter) -> Result<i64, StoreError> {
        if filter.parent_id.is_some() {
            return self.count_jobs(filter).await;
        }
        self.counted_jobs(
            filter.queue.as_deref(),
            filter.status,
            filter.job_type.as_deref(),
        )
        .await
    }

    pub async fn job_exists(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
