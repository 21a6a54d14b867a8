//! The handler API: what a processor implements for its job types, and the registry
//! a worker dispatches with.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use uuid::Uuid;

use crate::catalog::{decode_payload, Catalog, JobType, PayloadError};
use crate::job::NewJob;
use crate::store::HeldAttempt;
use crate::worker::progress::ProgressSink;

/// How an attempt failed, as the handler sees it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Try again after the queue's or job's backoff (while attempts remain).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help: FAILED now, whatever attempts remain.
    #[error("{0}")]
    Permanent(String),
    /// Try again no sooner than `after` (a provider's `Retry-After`).
    #[error("{message}")]
    RetryAfter { after: Duration, message: String },
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }
    pub fn retry_after(after: Duration, message: impl Into<String>) -> Self {
        Self::RetryAfter {
            after,
            message: message.into(),
        }
    }
}

/// What a handler gets besides its payload.
#[derive(Clone)]
pub struct JobContext {
    pub job_id: Uuid,
    pub queue: Arc<str>,
    pub job_type: Arc<str>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The run the attempt belongs to (fences progress writes with the attempt).
    run: i32,
    cancel: CancellationToken,
    progress: ProgressSink,
}

impl JobContext {
    pub(crate) fn new(
        job_id: Uuid,
        queue: Arc<str>,
        job_type: Arc<str>,
        held: HeldAttempt,
        max_attempts: u32,
        cancel: CancellationToken,
        progress: ProgressSink,
    ) -> Self {
        Self {
            job_id,
            queue,
            job_type,
            attempt: held.attempt as u32,
            max_attempts,
            run: held.run,
            cancel,
            progress,
        }
    }

    /// The job's run: 1, plus one for each admin retry of a finished job.
    pub fn run(&self) -> i32 {
        self.run
    }

    /// Resolves when the job is cancelled or timed out; a handler should then stop.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Reports progress (0–100) with a message. Cheap: writes are coalesced and
    /// flushed in batches, so calling it often costs nothing.
    pub fn progress(&self, percent: u8, message: impl Into<String>) {
        let held = HeldAttempt {
            id: self.job_id,
            run: self.run,
            attempt: self.attempt as i32,
        };
        self.progress.report(held, percent.min(100), message.into());
    }
}

/// A processor of one job type `J`.
pub trait Handler<J: JobType>: Send + Sync + 'static {
    fn run(
        &self,
        payload: J::Payload,
        ctx: JobContext,
    ) -> impl Future<Output = Result<Value, JobError>> + Send;
}

/// The processor of a batch job type `J`: it names the children, the engine does
/// the rest. The children are recorded in one transaction with the end of the
/// parent's attempt; the parent then waits RUNNING without holding a worker slot
/// or a lease, and completes when its last child is terminal, its result the tally
/// `{total, completed, failed, cancelled}`. Cancelling the parent cancels the
/// children still waiting. Children are checked like any enqueue: one that does
/// not fit its type fails the parent, naming it.
pub trait BatchHandler<J: JobType>: Send + Sync + 'static {
    fn children(
        &self,
        payload: J::Payload,
        ctx: JobContext,
    ) -> impl Future<Output = Result<Vec<NewJob>, JobError>> + Send;
}

/// What a handler's successful attempt produced.
#[derive(Debug)]
pub(crate) enum Output {
    /// The job's result.
    Result(Value),
    /// A batch parent's children (their `parentId` is set by the engine).
    Children(Vec<NewJob>),
}

type ErasedRun =
    dyn Fn(&Value, JobContext) -> BoxFuture<'static, Result<Output, JobError>> + Send + Sync;

/// A payload that does not decode fails the job permanently, naming the field.
fn invalid_payload(e: PayloadError) -> BoxFuture<'static, Result<Output, JobError>> {
    futures::future::ready(Err(JobError::Permanent(format!("invalid payload: {e}")))).boxed()
}

/// Job type name → handler, plus the catalog of the registered types.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<&'static str, Arc<ErasedRun>>,
    catalog: Catalog,
}

impl HandlerRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `J`. A payload that does not decode fails the job
    /// permanently, naming the field.
    pub fn register<J: JobType, H: Handler<J>>(&mut self, handler: H) -> &mut Self {
        let handler = Arc::new(handler);
        self.insert::<J>(Arc::new(
            move |payload: &Value, ctx: JobContext| match decode_payload::<J>(payload) {
                Ok(decoded) => {
                    let handler = handler.clone();
                    async move { handler.run(decoded, ctx).await.map(Output::Result) }.boxed()
                }
                Err(e) => invalid_payload(e),
            },
        ))
    }

    /// Registers the batch handler `handler` for `J` (see [`BatchHandler`]).
    pub fn register_batch<J: JobType, H: BatchHandler<J>>(&mut self, handler: H) -> &mut Self {
        let handler = Arc::new(handler);
        self.insert::<J>(Arc::new(
            move |payload: &Value, ctx: JobContext| match decode_payload::<J>(payload) {
                Ok(decoded) => {
                    let handler = handler.clone();
                    async move { handler.children(decoded, ctx).await.map(Output::Children) }
                        .boxed()
                }
                Err(e) => invalid_payload(e),
            },
        ))
    }

    fn insert<J: JobType>(&mut self, run: Arc<ErasedRun>) -> &mut Self {
        self.handlers.insert(J::NAME, run);
        self.catalog.add::<J>();
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn get(&self, job_type: &str) -> Option<Arc<ErasedRun>> {
        self.handlers.get(job_type).cloned()
    }

    /// Queues that have at least one registered job type.
    pub fn handles_queue(&self, queue: &str) -> bool {
        !self.catalog.types_of(queue).is_empty()
    }
}
