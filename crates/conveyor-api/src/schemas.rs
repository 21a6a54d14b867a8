//! OpenAPI schemas of the engine's types that the API returns as they are
//! (`queue_core` does not depend on `utoipa`). Each mirrors the serde shape of its
//! type field for field; the schemathesis run in CI checks real answers against
//! them.

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A job's state.
#[derive(ToSchema)]
#[schema(as = JobStatus)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum JobStatusSchema {
    Pending,
    Delayed,
    Running,
    Retrying,
    Completed,
    Failed,
    Cancelled,
}

/// A job record.
#[derive(ToSchema)]
#[schema(as = Job)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct JobSchema {
    id: Uuid,
    queue_name: String,
    job_type: String,
    status: JobStatusSchema,
    /// Any JSON value.
    #[schema(value_type = Value)]
    payload: Value,
    #[schema(value_type = Option<Value>)]
    result: Option<Value>,
    error: Option<String>,
    attempts: i32,
    max_attempts: i32,
    priority: i32,
    /// 0 to 100.
    progress: i16,
    progress_message: Option<String>,
    parent_id: Option<Uuid>,
    idempotency_key: Option<String>,
    run_at: DateTime<Utc>,
    timeout_ms: Option<i32>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    cancel_requested: bool,
}

/// One attempt of a job.
#[derive(ToSchema)]
#[schema(as = Execution)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ExecutionSchema {
    job_id: Uuid,
    /// 1, then + 1 for each admin retry of the finished job.
    run: i32,
    attempt: i32,
    worker_id: String,
    /// COMPLETED, FAILED, RETRYING, CANCELLED, TIMED_OUT, ...
    status: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    duration_ms: i64,
    error: Option<String>,
}

/// A job with its attempts.
#[derive(ToSchema)]
#[schema(as = JobWithExecutions)]
#[allow(dead_code)]
pub struct JobWithExecutionsSchema {
    #[serde(flatten)]
    job: JobSchema,
    executions: Vec<ExecutionSchema>,
}

/// Job counts of one queue by state.
#[derive(ToSchema)]
#[schema(as = QueueStats)]
#[allow(dead_code)]
pub struct QueueStatsSchema {
    queue: String,
    paused: bool,
    /// PENDING.
    waiting: i64,
    /// RUNNING.
    active: i64,
    delayed: i64,
    retrying: i64,
    completed: i64,
    failed: i64,
    cancelled: i64,
}

/// One dead letter (a job that ended FAILED).
#[derive(ToSchema)]
#[schema(as = DeadLetter)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct DeadLetterSchema {
    job_id: Uuid,
    job_type: String,
    error: String,
    attempts: i32,
    failed_at: DateTime<Utc>,
}

/// A live worker, as its heartbeat describes it.
#[derive(ToSchema)]
#[schema(as = WorkerInfo)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct WorkerInfoSchema {
    id: String,
    host: String,
    pid: u32,
    queues: Vec<String>,
    concurrency: u32,
    running: u32,
    started_at: DateTime<Utc>,
    last_heartbeat: DateTime<Utc>,
}

/// Attempts that ended with an error, grouped by job type and message.
#[derive(ToSchema)]
#[schema(as = ErrorGroup)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ErrorGroupSchema {
    /// The job type.
    #[serde(rename = "type")]
    job_type: String,
    message: String,
    count: i64,
    first_occurred_at: DateTime<Utc>,
    last_occurred_at: DateTime<Utc>,
}
