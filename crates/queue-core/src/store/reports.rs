//! Read-only reports of the admin API beyond per-queue counts: processing rate,
//! recent failures, average duration and aggregated errors.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Store;
use crate::error::StoreError;

/// Attempts that ended with an error, grouped by job type and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ErrorGroup {
    /// The job type.
    #[serde(rename = "type")]
    pub job_type: String,
    pub message: String,
    pub count: i64,
    pub first_occurred_at: DateTime<Utc>,
    pub last_occurred_at: DateTime<Utc>,
}

/// How many of the most recent attempts that did not complete the error report
/// aggregates.
pub const ERROR_WINDOW: i64 = 5_000;

impl Store {
    /// Attempts that completed within the last `seconds` (from the activity
    /// buckets: one-second resolution over the last two minutes, one-minute before).
    pub async fn completed_within(&self, seconds: i64) -> Result<i64, StoreError> {
        Ok(self.completed_attempts_within(seconds).await?.0)
    }

    /// Jobs whose record is FAILED (for good) and that failed within the last
    /// `seconds` (from the activity buckets).
    pub async fn failed_within(&self, seconds: i64) -> Result<i64, StoreError> {
        self.failed_jobs_within(seconds).await
    }

    /// Mean duration (ms) of attempts that completed within the last `seconds`
    /// (from the activity buckets); None when there were none.
    pub async fn average_completed_ms(&self, seconds: i64) -> Result<Option<f64>, StoreError> {
        let (n, total_ms) = self.completed_attempts_within(seconds).await?;
        Ok((n > 0).then(|| total_ms as f64 / n as f64))
    }

    /// Errors of the most recent [`ERROR_WINDOW`] attempts that did not complete
    /// (FAILED, LOST, CANCELLED), grouped by job type and message, the most
    /// recently seen first, at most `limit` groups. The window bounds the work
    /// whatever the size of the log: each state is read newest first from the
    /// partial (status, finished_at) index of attempts that did not complete, and
    /// the three streams are merged. Each attempt row names its job's type, so no
    /// job record is read.
    pub async fn error_groups(&self, limit: i64) -> Result<Vec<ErrorGroup>, StoreError> {
        Ok(sqlx::query_as(
            "WITH recent AS (
                SELECT job_type, error, finished_at FROM (
                    (SELECT job_type, error, finished_at FROM job_executions
                     WHERE status = 'FAILED' ORDER BY finished_at DESC LIMIT $2)
                    UNION ALL
                    (SELECT job_type, error, finished_at FROM job_executions
                     WHERE status = 'LOST' ORDER BY finished_at DESC LIMIT $2)
                    UNION ALL
                    (SELECT job_type, error, finished_at FROM job_executions
                     WHERE status = 'CANCELLED' ORDER BY finished_at DESC LIMIT $2)
                ) e
                ORDER BY finished_at DESC LIMIT $2
             )
             SELECT job_type, error AS message, count(*) AS count,
                    min(finished_at) AS first_occurred_at, max(finished_at) AS last_occurred_at
             FROM recent WHERE error IS NOT NULL
             GROUP BY job_type, error
             ORDER BY last_occurred_at DESC, job_type, error
             LIMIT $1",
        )
        .bind(limit)
        .bind(ERROR_WINDOW)
        .fetch_all(self.pool())
        .await?)
    }
}
