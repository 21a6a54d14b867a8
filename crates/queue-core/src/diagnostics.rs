//! The `diagnostics` queue: job types that exercise the engine itself.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::catalog::{Catalog, JobType};
use crate::handler::{Handler, HandlerRegistry, JobContext, JobError};

pub const QUEUE: &str = "diagnostics";

/// Adds the diagnostics job types to a catalog.
pub fn register_types(catalog: &mut Catalog) {
    catalog
        .add::<Noop>()
        .add::<Echo>()
        .add::<Sleep>()
        .add::<Fail>()
        .add::<Panic>()
        .add::<Progress>();
}

/// Registers the diagnostics handlers.
pub fn register_handlers(registry: &mut HandlerRegistry) {
    registry
        .register::<Noop, _>(Noop)
        .register::<Echo, _>(Echo)
        .register::<Sleep, _>(Sleep)
        .register::<Fail, _>(Fail)
        .register::<Panic, _>(Panic)
        .register::<Progress, _>(Progress);
}

/// Registers CRASH, which aborts the whole worker process: only for fault tests,
/// and only when the worker runs with `CONVEYOR_DIAGNOSTICS_CRASH=1`.
pub fn register_crash(registry: &mut HandlerRegistry) {
    registry.register::<Crash, _>(Crash);
}

/// Env var that lets a worker run CRASH jobs.
pub const CRASH_ENV: &str = "CONVEYOR_DIAGNOSTICS_CRASH";

/// Env var naming a file to which every SLEEP that returns success appends one
/// line, `<job id> <run> <attempt> <pid>`: fault tests count handler successes
/// with it, apart from what the engine recorded.
pub const TALLY_ENV: &str = "CONVEYOR_DIAGNOSTICS_TALLY";

static TALLY: std::sync::LazyLock<Option<std::path::PathBuf>> =
    std::sync::LazyLock::new(|| std::env::var_os(TALLY_ENV).map(Into::into));

/// Appends a success to the tally file, if there is one (one short write with
/// O_APPEND, so lines of concurrent handlers and processes do not interleave).
fn tally(ctx: &JobContext) {
    let Some(path) = TALLY.as_ref() else { return };
    let line = format!(
        "{} {} {} {}\n",
        ctx.job_id,
        ctx.run(),
        ctx.attempt,
        std::process::id()
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not append to the diagnostics tally");
    }
}

/// Aborts the worker process (a job that kills every worker it touches).
pub struct Crash;
impl JobType for Crash {
    const NAME: &'static str = "CRASH";
    const QUEUE: &'static str = QUEUE;
    type Payload = Value;
}
impl Handler<Crash> for Crash {
    async fn run(&self, _: Value, _: JobContext) -> Result<Value, JobError> {
        std::process::abort()
    }
}

/// Does nothing (benchmarks).
pub struct Noop;
impl JobType for Noop {
    const NAME: &'static str = "NOOP";
    const QUEUE: &'static str = QUEUE;
    type Payload = Value;
}
impl Handler<Noop> for Noop {
    async fn run(&self, _: Value, _: JobContext) -> Result<Value, JobError> {
        Ok(Value::Null)
    }
}

/// Returns its payload.
pub struct Echo;
impl JobType for Echo {
    const NAME: &'static str = "ECHO";
    const QUEUE: &'static str = QUEUE;
    type Payload = Value;
}
impl Handler<Echo> for Echo {
    async fn run(&self, payload: Value, _: JobContext) -> Result<Value, JobError> {
        Ok(payload)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepPayload {
    pub ms: u64,
}

/// Sleeps `ms` milliseconds, stopping early when cancelled.
pub struct Sleep;
impl JobType for Sleep {
    const NAME: &'static str = "SLEEP";
    const QUEUE: &'static str = QUEUE;
    type Payload = SleepPayload;
    fn check(p: &SleepPayload) -> Result<(), (String, String)> {
        if p.ms > 3_600_000 {
            return Err(("ms".into(), "must be at most 3600000 (one hour)".into()));
        }
        Ok(())
    }
}
impl Handler<Sleep> for Sleep {
    async fn run(&self, p: SleepPayload, ctx: JobContext) -> Result<Value, JobError> {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(p.ms)) => {}
            _ = ctx.cancelled() => return Err(JobError::retryable("sleep interrupted by cancellation")),
        }
        tally(&ctx);
        Ok(json!({ "slept": p.ms }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FailPayload {
    #[serde(default = "default_fail_message")]
    pub message: String,
    #[serde(default = "default_true")]
    pub retryable: bool,
    /// Fail the first `failTimes` attempts, then succeed; absent: fail every time.
    pub fail_times: Option<u32>,
}
fn default_fail_message() -> String {
    "diagnostic failure".into()
}
fn default_true() -> bool {
    true
}

/// Fails as asked.
pub struct Fail;
impl JobType for Fail {
    const NAME: &'static str = "FAIL";
    const QUEUE: &'static str = QUEUE;
    type Payload = FailPayload;
}
impl Handler<Fail> for Fail {
    async fn run(&self, p: FailPayload, ctx: JobContext) -> Result<Value, JobError> {
        match p.fail_times {
            Some(n) if ctx.attempt > n => Ok(json!({ "succeededOnAttempt": ctx.attempt })),
            _ if p.retryable => Err(JobError::Retryable(p.message)),
            _ => Err(JobError::Permanent(p.message)),
        }
    }
}

/// Panics (the attempt fails; the worker lives on).
pub struct Panic;
impl JobType for Panic {
    const NAME: &'static str = "PANIC";
    const QUEUE: &'static str = QUEUE;
    type Payload = Value;
}
impl Handler<Panic> for Panic {
    #[allow(clippy::panic)]
    async fn run(&self, _: Value, _: JobContext) -> Result<Value, JobError> {
        panic!("diagnostic panic requested")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProgressPayload {
    pub steps: u32,
    #[serde(default)]
    pub step_ms: u64,
}

/// Reports progress over `steps` steps of `stepMs`.
pub struct Progress;
impl JobType for Progress {
    const NAME: &'static str = "PROGRESS";
    const QUEUE: &'static str = QUEUE;
    type Payload = ProgressPayload;
    fn check(p: &ProgressPayload) -> Result<(), (String, String)> {
        if p.steps == 0 || p.steps > 10_000 {
            return Err(("steps".into(), "must be between 1 and 10000".into()));
        }
        if p.step_ms > 60_000 {
            return Err(("stepMs".into(), "must be at most 60000".into()));
        }
        Ok(())
    }
}
impl Handler<Progress> for Progress {
    async fn run(&self, p: ProgressPayload, ctx: JobContext) -> Result<Value, JobError> {
        for step in 1..=p.steps {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(p.step_ms)) => {}
                _ = ctx.cancelled() => return Err(JobError::retryable("progress interrupted by cancellation")),
            }
            let percent = (step * 100 / p.steps) as u8;
            ctx.progress(percent, format!("step {step} of {}", p.steps));
        }
        Ok(json!({ "steps": p.steps }))
    }
}
