//! The configuration's sections, each with its defaults (the shipped
//! `config/conveyor.toml` overrides some per queue; docs/configuration.md lists
//! every key).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::job::Backoff;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/conveyor".into(),
            max_connections: 16,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    pub url: String,
    /// Key prefix: every key is `{prefix}:{queue}:…`, so many runs can share a Redis.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "conveyor".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub addr: String,
    pub body_limit_bytes: usize,
    /// Bearer tokens with full rights (never logged).
    #[serde(skip_serializing)]
    pub admin_tokens: Vec<String>,
    /// Bearer tokens for GET routes only.
    #[serde(skip_serializing)]
    pub viewer_tokens: Vec<String>,
    /// Job event streams one token may hold open at once.
    pub max_streams_per_token: usize,
    /// Job event streams open at once in this process, all tokens together.
    pub max_streams: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            body_limit_bytes: 1 << 20,
            admin_tokens: Vec::new(),
            viewer_tokens: Vec::new(),
            max_streams_per_token: 64,
            max_streams: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// How long a claimed job stays leased without a heartbeat.
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
    /// How long SIGTERM waits for running jobs before giving them back.
    pub drain_timeout_ms: u64,
    /// How long a handler may ignore its cancellation before it is aborted.
    pub abort_grace_ms: u64,
    /// How often waiting jobs missing from Redis are looked for.
    pub reconcile_ms: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            lease_ms: 30_000,
            heartbeat_ms: 10_000,
            drain_timeout_ms: 30_000,
            abort_grace_ms: 5_000,
            reconcile_ms: 5_000,
        }
    }
}

impl WorkerConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
    pub fn abort_grace(&self) -> Duration {
        Duration::from_millis(self.abort_grace_ms)
    }
}

/// Settings of `conveyor-scheduler` (cron schedules and maintenance).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Longest wait between two looks for due schedules (a NOTIFY on
    /// `conveyor_schedules` or the next known tick wakes it sooner).
    pub tick_ms: u64,
    /// How often finished records are pruned per queue retention.
    pub retention_interval_ms: u64,
    /// Missed ticks (scheduler down): `coalesce` (one run), `skip` or `all`; a
    /// schedule's own `misfirePolicy` wins.
    pub misfire: crate::cron::MisfirePolicy,
    /// A tick later than this is missed (matters to `skip`).
    pub misfire_grace_ms: u64,
    /// Schedules fired per transaction.
    pub batch_size: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick_ms: 500,
            retention_interval_ms: 60_000,
            misfire: crate::cron::MisfirePolicy::Coalesce,
            misfire_grace_ms: 5_000,
            batch_size: 16,
        }
    }
}

impl SchedulerConfig {
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
    pub fn retention_interval(&self) -> Duration {
        Duration::from_millis(self.retention_interval_ms)
    }
}

/// Settings of one queue (`[queues.<name>]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs run at once per worker process: a number, or a table for a limit that
    /// follows the backlog.
    pub concurrency: Concurrency,
    /// Default attempts per job (a job's `maxAttempts` wins).
    pub attempts: u32,
    pub timeout_ms: u64,
    pub backoff: Backoff,
    pub rate_limit: RateLimit,
    pub retention: Retention,
    /// Caps per job type inside the queue, per worker process (a slow provider's
    /// type gets a smaller share without starving the others).
    pub type_concurrency: BTreeMap<String, u32>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            concurrency: Concurrency::Fixed(5),
            attempts: 3,
            timeout_ms: 300_000,
            backoff: Backoff::Exponential {
                delay_ms: 5_000,
                max_delay_ms: 600_000,
                jitter: true,
            },
            rate_limit: RateLimit::default(),
            retention: Retention::default(),
            type_concurrency: BTreeMap::new(),
        }
    }
}

/// A queue's `concurrency`: `5` (fixed), or `{ min = 2, max = 50, step = 2,
/// scale_up_interval_ms = 5000, scale_down_interval_ms = 30000 }` (adaptive: up by
/// `step` while the backlog exceeds twice the limit, down while it is under half).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Concurrency {
    Fixed(u32),
    Adaptive(AdaptiveConcurrency),
}

impl Concurrency {
    /// The limit a worker starts with.
    pub fn initial(&self) -> u32 {
        match self {
            Self::Fixed(n) => *n,
            Self::Adaptive(a) => a.min,
        }
    }

    /// The highest limit it can reach.
    pub fn max(&self) -> u32 {
        match self {
            Self::Fixed(n) => *n,
            Self::Adaptive(a) => a.max,
        }
    }

    /// Checks the bounds; the error names the key under `concurrency`.
    pub(crate) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        match self {
            Self::Fixed(0) => Err(("", "must be at least 1")),
            Self::Fixed(_) => Ok(()),
            Self::Adaptive(a) if a.min == 0 => Err((".min", "must be at least 1")),
            Self::Adaptive(a) if a.max < a.min => Err((".max", "must be at least min")),
            Self::Adaptive(a) if a.step == 0 => Err((".step", "must be at least 1")),
            Self::Adaptive(a) if a.scale_up_interval_ms == 0 => {
                Err((".scale_up_interval_ms", "must be greater than 0"))
            }
            Self::Adaptive(a) if a.scale_down_interval_ms == 0 => {
                Err((".scale_down_interval_ms", "must be greater than 0"))
            }
            Self::Adaptive(_) => Ok(()),
        }
    }
}

/// The bounds and pace of an adaptive limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveConcurrency {
    pub min: u32,
    pub max: u32,
    #[serde(default = "default_step")]
    pub step: u32,
    /// Least time between two changes when going up.
    #[serde(default = "default_scale_up_ms")]
    pub scale_up_interval_ms: u64,
    /// Least time between two changes when going down.
    #[serde(default = "default_scale_down_ms")]
    pub scale_down_interval_ms: u64,
}

fn default_step() -> u32 {
    1
}
fn default_scale_up_ms() -> u64 {
    5_000
}
fn default_scale_down_ms() -> u64 {
    30_000
}

/// At most `max` job starts per `duration_ms`, shared by every worker of the queue.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// 0 means no limit.
    pub max: u32,
    pub duration_ms: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            max: 0,
            duration_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub completed_max_age_s: u64,
    pub failed_max_age_s: u64,
    /// Newest completed records always kept (0 = no count cap).
    pub keep_completed: u64,
    pub keep_failed: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed_max_age_s: 604_800,
            failed_max_age_s: 2_592_000,
            keep_completed: 0,
            keep_failed: 0,
        }
    }
}

/// `[log]`: how the binaries write their logs (levels come from `RUST_LOG`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// One line per event: human-readable text, or a JSON object (for log shippers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
