//! Exact job counts and recent activity kept by PostgreSQL's triggers (migration
//! `20261124000001_job_counts.sql`): writers append deltas, [`Store::compact_counters`]
//! folds them into the compacted tables, and readers sum both in one statement (one
//! snapshot), so every figure is exact whether or not a compaction ran.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Store;
use crate::error::StoreError;
use crate::job::JobStatus;

/// How often the API and the scheduler compact the counters.
pub const COMPACT_EVERY: Duration = Duration::from_secs(1);

/// Advisory lock key of the compaction: one compactor at a time; the others skip a
/// turn rather than queue behind it.
const COMPACT_LOCK: i64 = 0x636f_6e76_6579_6f72; // "conveyor"

/// Deltas folded by one compaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    pub count_deltas: u64,
    pub activity_deltas: u64,
}

/// The time-bucketed figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Attempts that COMPLETED, with their total duration.
    Completed,
    /// Jobs whose record is FAILED, by completion time.
    Failed,
}

impl Activity {
    fn as_str(self) -> &'static str {
        match self {
            Activity::Completed => "completed",
            Activity::Failed => "failed",
        }
    }
}

impl Store {
    /// Folds the appended deltas into `job_counts` and `job_activity`, rolls
    /// one-second activity buckets older than two minutes into one-minute buckets
    /// and drops buckets older than 25 hours. Returns None when another process was
    /// compacting at that moment.
    pub async fn compact_counters(&self) -> Result<Option<Compacted>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(COMPACT_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(None);
        }
        // Ordered upserts: a fixed lock order in job_counts whatever else runs.
        let counts: i64 = sqlx::query_scalar(
            "WITH moved AS (
                DELETE FROM job_count_deltas RETURNING queue_name, job_type, status, n
             ), summed AS (
                SELECT queue_name, job_type, status, sum(n)::bigint AS n, count(*) AS rows
                FROM moved GROUP BY 1, 2, 3
             ), upserted AS (
                INSERT INTO job_counts AS c (queue_name, job_type, status, n)
                SELECT queue_name, job_type, status, n FROM summed WHERE n <> 0
                ORDER BY 1, 2, 3
                ON CONFLICT (queue_name, job_type, status) DO UPDATE SET n = c.n + EXCLUDED.n
             )
             SELECT COALESCE(sum(rows), 0)::bigint FROM summed",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM job_counts WHERE n = 0")
            .execute(&mut *tx)
            .await?;
        let activity: i64 = sqlx::query_scalar(
            "WITH moved AS (
                DELETE FROM job_activity_deltas RETURNING kind, bucket, n, total_ms
             ), summed AS (
                SELECT kind,
                       CASE WHEN bucket >= now() - interval '2 minutes' THEN bucket
                            ELSE date_trunc('minute', bucket) END AS bucket,
                       sum(n)::bigint AS n, sum(total_ms)::bigint AS total_ms, count(*) AS rows
                FROM moved WHERE bucket > now() - interval '25 hours'
                GROUP BY 1, 2
             ), upserted AS (
                INSERT INTO job_activity AS a (kind, bucket, n, total_ms)
                SELECT kind, bucket, n, total_ms FROM summed WHERE n <> 0 OR total_ms <> 0
                ORDER BY 1, 2
                ON CONFLICT (kind, bucket) DO UPDATE
                SET n = a.n + EXCLUDED.n, total_ms = a.total_ms + EXCLUDED.total_ms
             )
             SELECT COALESCE(sum(rows), 0)::bigint FROM summed",
        )
        .fetch_one(&mut *tx)
        .await?;
        // The upsert above and this roll-up may touch the same minute bucket: two
        // statements, so each sees the other's rows.
        sqlx::query(
            "WITH old AS (
                DELETE FROM job_activity
                WHERE bucket < now() - interval '2 minutes' AND bucket <> date_trunc('minute', bucket)
                RETURNING kind, bucket, n, total_ms
             )
             INSERT INTO job_activity AS a (kind, bucket, n, total_ms)
             SELECT kind, date_trunc('minute', bucket), sum(n), sum(total_ms) FROM old
             GROUP BY 1, 2 ORDER BY 1, 2
             ON CONFLICT (kind, bucket) DO UPDATE
             SET n = a.n + EXCLUDED.n, total_ms = a.total_ms + EXCLUDED.total_ms",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM job_activity
             WHERE bucket <= now() - interval '25 hours' OR (n = 0 AND total_ms = 0)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Compacted {
            count_deltas: counts as u64,
            activity_deltas: activity as u64,
        }))
    }

    /// Compacts every [`COMPACT_EVERY`] until `stop`; failures are logged and retried.
    pub async fn run_counter_compaction(self, stop: CancellationToken) {
        let mut every = tokio::time::interval(COMPACT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            if let Err(e) = self.compact_counters().await {
                tracing::warn!(error = %e, "compacting the job counters failed; retrying");
            }
        }
    }

    /// The number of jobs matching every given filter, from the counters.
    pub async fn counted_jobs(
        &self,
        queue: Option<&str>,
        status: Option<JobStatus>,
        job_type: Option<&str>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(sum(n), 0)::bigint FROM (
                SELECT queue_name, job_type, status, n FROM job_counts
                UNION ALL
                SELECT queue_name, job_type, status, n FROM job_count_deltas
             ) c
             WHERE ($1::text IS NULL OR queue_name = $1)
               AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR job_type = $3)",
        )
        .bind(queue)
        .bind(status.map(|s| s.as_str()))
        .bind(job_type)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Counts by (queue, status) of `queues`, from the counters.
    pub(crate) async fn counted_by_queue(
        &self,
        queues: &[String],
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT queue_name, status, sum(n)::bigint FROM (
                SELECT queue_name, status, n FROM job_counts WHERE queue_name = ANY($1)
                UNION ALL
                SELECT queue_name, status, n FROM job_count_deltas WHERE queue_name = ANY($1)
             ) c
             GROUP BY 1, 2",
        )
        .bind(queues)
        .fetch_all(&self.pool)
        .await?)
    }

    /// (count, total ms) of `kind` in the buckets of the last `seconds` (one-second
    /// resolution for the last two minutes, one-minute before).
    async fn activity_within(
        &self,
        kind: Activity,
        seconds: i64,
    ) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT COALESCE(sum(n), 0)::bigint, COALESCE(sum(total_ms), 0)::bigint FROM (
                SELECT n, total_ms FROM job_activity
                WHERE kind = $1 AND bucket > now() - make_interval(secs => $2::float8)
                UNION ALL
                SELECT n, total_ms FROM job_activity_deltas
                WHERE kind = $1 AND bucket > now() - make_interval(secs => $2::float8)
             ) a",
        )
        .bind(kind.as_str())
        .bind(seconds as f64)
        .fetch_one(&self.pool)
        .await?)
    }

    pub(crate) async fn completed_attempts_within(
        &self,
        seconds: i64,
    ) -> Result<(i64, i64), StoreError> {
        self.activity_within(Activity::Completed, seconds).await
    }

    pub(crate) async fn failed_jobs_within(&self, seconds: i64) -> Result<i64, StoreError> {
        Ok(self.activity_within(Activity::Failed, seconds).await?.0)
    }
}
