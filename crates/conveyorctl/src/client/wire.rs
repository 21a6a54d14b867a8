//! The API's answers and request bodies as the CLI reads and sends them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Reply;

/// A job as the API serializes it (fields the CLI does not show are kept in `raw`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    pub queue_name: String,
    pub job_type: String,
    pub status: String,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub max_attempts: i64,
    pub created_at: DateTime<Utc>,
}

/// One attempt of a job (`executions` of `GET /jobs/:id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub attempt: i64,
    pub worker_id: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /jobs/:id`: the job plus its attempts.
#[derive(Debug, Clone, Deserialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    #[serde(default)]
    pub executions: Vec<Execution>,
}

/// A page of the job list.
#[derive(Debug, Clone, Deserialize)]
pub struct JobPage {
    pub items: Vec<Job>,
    pub page: i64,
    pub limit: i64,
    pub total: i64,
}

/// Counts of one queue.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    pub paused: bool,
    pub waiting: i64,
    pub active: i64,
    pub delayed: i64,
    pub retrying: i64,
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// Answer of pause and resume.
#[derive(Debug, Clone, Deserialize)]
pub struct Paused {
    pub queue: String,
    pub paused: bool,
}

/// Answer of clean.
#[derive(Debug, Clone, Deserialize)]
pub struct Cleaned {
    pub removed: u64,
}

/// One dead letter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub job_id: Uuid,
    pub job_type: String,
    pub error: String,
    pub attempts: i64,
    pub failed_at: DateTime<Utc>,
}

/// Answer of a dead-letter replay.
#[derive(Debug, Clone, Deserialize)]
pub struct Replayed {
    pub replayed: u64,
}

/// A live worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<String>,
    pub concurrency: u32,
    pub running: u32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

/// Body of `POST /api/admin/jobs`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewJob {
    pub queue_name: String,
    pub job_type: String,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Filters and window of the job list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub queue: Option<String>,
    pub status: Option<String>,
    pub job_type: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// A page of the authors, books or quotes list (rows kept as sent).
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    pub items: Vec<Value>,
    pub page: i64,
    pub limit: i64,
    pub total: i64,
}

/// Body of the clean route.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanRequest {
    pub status: String,
    pub grace_ms: u64,
    pub limit: u64,
}

/// What `DELETE /jobs/:id` did.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// 200: the waiting job is now CANCELLED.
    Cancelled(Reply<Job>),
    /// 202: the running job was asked to stop.
    Requested(Reply<Job>),
    /// 204: the finished job's record was deleted.
    Deleted,
}
