//! The job record, its states and what a caller asks to enqueue.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A job's state. Transitions:
///
/// ```text
/// PENDING / DELAYED ──claim──▶ RUNNING ──ok──▶ COMPLETED
///        ▲                       │  ├─retryable, attempts left──▶ RETRYING ──due──▶ (claim)
///        └──given back (drain)───┘  ├─permanent or attempts spent──▶ FAILED ──retry──▶ PENDING
///                                   └─cancelled──▶ CANCELLED ──retry──▶ PENDING
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Pending,
    Delayed,
    Running,
    Retrying,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] = [
        Self::Pending,
        Self::Delayed,
        Self::Running,
        Self::Retrying,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delayed => "DELAYED",
            Self::Running => "RUNNING",
            Self::Retrying => "RETRYING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// No further transition happens by itself.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Waiting to be claimed (it belongs in Redis).
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Pending | Self::Delayed | Self::Retrying)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown status `{0}`; valid values: PENDING, DELAYED, RUNNING, RETRYING, COMPLETED, FAILED, CANCELLED")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A job's priority: higher runs first, FIFO within one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Priority(i32);

impl Priority {
    pub const LOW: Priority = Priority(1);
    pub const NORMAL: Priority = Priority(5);
    pub const HIGH: Priority = Priority(10);
    pub const CRITICAL: Priority = Priority(20);
    /// Bounds that keep the Redis score (priority band + sequence) exact in a double.
    pub const MIN: i32 = -1000;
    pub const MAX: i32 = 1000;

    pub fn new(value: i32) -> Result<Self, String> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be between {} and {}", Self::MIN, Self::MAX))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }

    /// Reads a named level (LOW, NORMAL, HIGH, CRITICAL) or an integer.
    pub fn parse_name(name: &str) -> Result<Self, String> {
        match name.to_ascii_uppercase().as_str() {
            "LOW" => Ok(Self::LOW),
            "NORMAL" => Ok(Self::NORMAL),
            "HIGH" => Ok(Self::HIGH),
            "CRITICAL" => Ok(Self::CRITICAL),
            other => other
                .parse::<i32>()
                .map_err(|_| "must be an integer or one of LOW, NORMAL, HIGH, CRITICAL".to_string())
                .and_then(Self::new),
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => i32::try_from(n)
                .map_err(|_| "out of range".to_string())
                .and_then(Priority::new)
                .map_err(serde::de::Error::custom),
            Raw::Name(s) => Priority::parse_name(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Backoff {
    Fixed {
        delay_ms: u64,
    },
    Exponential {
        delay_ms: u64,
        #[serde(default = "default_max_delay_ms")]
        max_delay_ms: u64,
        #[serde(default = "default_jitter")]
        jitter: bool,
    },
}

fn default_max_delay_ms() -> u64 {
    600_000
}
fn default_jitter() -> bool {
    true
}

/// Longest delay anywhere a job waits (a run-at, a backoff, a handler's retry-after):
/// one year. Input beyond it is refused, and the engine saturates at it, so run-at
/// arithmetic can never overflow.
pub const MAX_DELAY_MS: u64 = 365 * 24 * 3_600_000;

impl Backoff {
    pub fn validate(&self) -> Result<(), String> {
        let too_long = |what: &str| format!("{what} must be at most {MAX_DELAY_MS} ms (one year)");
        match *self {
            Backoff::Fixed { delay_ms } if delay_ms > MAX_DELAY_MS => Err(too_long("the delay")),
            Backoff::Fixed { .. } => Ok(()),
            Backoff::Exponential { delay_ms, .. } if delay_ms > MAX_DELAY_MS => {
                Err(too_long("the delay"))
            }
            Backoff::Exponential { max_delay_ms, .. } if max_delay_ms > MAX_DELAY_MS => {
                Err(too_long("the maximum delay"))
            }
            Backoff::Exponential {
                delay_ms,
                max_delay_ms,
                ..
            } if max_delay_ms < delay_ms => Err("max_delay_ms must be at least delay_ms".into()),
            Backoff::Exponential { .. } => Ok(()),
        }
    }
}

/// A job record as stored in PostgreSQL, serialized in camelCase (docs/states.md).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    pub queue_name: String,
    pub job_type: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub payload: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i32,
    pub progress: i16,
    pub progress_message: Option<String>,
    pub parent_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub run_at: DateTime<Utc>,
    pub timeout_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
}

impl TryFrom<String> for JobStatus {
    type Error = UnknownStatus;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// How an attempt ended, in the attempt log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Completed,
    /// Failed (the job retries, or failed for good).
    Failed,
    /// Its worker died or froze; recovered after the lease ran out.
    Lost,
    Cancelled,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Lost => "LOST",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl TryFrom<String> for ExecutionStatus {
    type Error = UnknownStatus;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        [Self::Completed, Self::Failed, Self::Lost, Self::Cancelled]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(UnknownStatus(s))
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt of a job.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub job_id: Uuid,
    /// 1, then + 1 for each admin retry of the finished job.
    pub run: i32,
    pub attempt: i32,
    pub worker_id: String,
    #[sqlx(try_from = "String")]
    pub status: ExecutionStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// What a caller asks to enqueue. Unset fields take the queue's defaults.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub queue: String,
    pub job_type: String,
    pub payload: Value,
    pub priority: Priority,
    pub max_attempts: Option<u32>,
    /// Run no earlier than this (None: now).
    pub run_at: Option<DateTime<Utc>>,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    pub backoff: Option<Backoff>,
    pub parent_id: Option<Uuid>,
}

impl NewJob {
    pub fn new(queue: impl Into<String>, job_type: impl Into<String>, payload: Value) -> Self {
        Self {
            queue: queue.into(),
            job_type: job_type.into(),
            payload,
            priority: Priority::NORMAL,
            max_attempts: None,
            run_at: None,
            timeout_ms: None,
            idempotency_key: None,
            backoff: None,
            parent_id: None,
        }
    }

    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
}
