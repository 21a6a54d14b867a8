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

impl Store {
    /// Attempts that completed within the last `seconds`.
    pub async fn completed_within(&self, seconds: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM job_executions
             WHERE status = 'COMPLETED'
               AND finished_at > now() - make_interval(secs => $1::float8)",
        )
        .bind(seconds as f64)
        .fetch_one(self.pool())
        .await?)
    }

    /// Jobs that ended FAILED (for good) within the last `seconds`.
    pub async fn failed_within(&self, seconds: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM jobs
             WHERE status = 'FAILED'
               AND completed_at > now() - make_interval(secs => $1::float8)",
        )
        .bind(seconds as f64)
        .fetch_one(self.pool())
        .await?)
    }

    /// Mean duration (ms) of attempts that completed within the last `seconds`;
    /// None when there were none.
    pub async fn average_completed_ms(&self, seconds: i64) -> Result<Option<f64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT avg(duration_ms)::float8 FROM job_executions
             WHERE status = 'COMPLETED'
               AND finished_at > now() - make_interval(secs => $1::float8)",
        )
        .bind(seconds as f64)
        .fetch_one(self.pool())
        .await?)
    }

    /// Errors of attempts grouped by job type and message, the most recently seen
    /// first, at most `limit` groups.
    pub async fn error_groups(&self, limit: i64) -> Result<Vec<ErrorGroup>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT j.job_type, e.error AS message, count(*) AS count,
                    min(e.finished_at) AS first_occurred_at,
                    max(e.finished_at) AS last_occurred_at
             FROM job_executions e JOIN jobs j ON j.id = e.job_id
             WHERE e.error IS NOT NULL
             GROUP BY j.job_type, e.error
             ORDER BY last_occurred_at DESC, j.job_type, e.error
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
