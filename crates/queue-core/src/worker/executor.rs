//! Runs one attempt: the handler in its own task (a panic stays inside it), with
//! the job's timeout, admin cancellation and shutdown, and turns the way it ended
//! into the job's next state.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use super::completer::{CompleterMsg, Completion};
use super::running::StopReason;
use super::WorkerShared;
use crate::handler::{JobContext, JobError};
use crate::job::Backoff;
use crate::retry::backoff_delay;
use crate::store::{ClaimedJob, FinalState, FinishedAttempt};

/// How an attempt ended, before retry policy.
enum Ending {
    Returned(Result<serde_json::Value, JobError>),
    Panicked(String),
    TimedOut(Duration),
    Cancelled,
    Shutdown,
}

pub(crate) async fn execute(
    shared: Arc<WorkerShared>,
    queue: Arc<str>,
    job: ClaimedJob,
    permit: OwnedSemaphorePermit,
) {
    let queue_config = shared.config.queue(&queue).cloned().unwrap_or_default();
    let job_type: Arc<str> = Arc::from(job.job_type.as_str());
    let control = shared.running.insert(job.id, queue.clone(), job.attempts);
    let timeout = Duration::from_millis(
        job.timeout_ms
            .map_or(queue_config.timeout_ms, |ms| ms as u64),
    );
    shared.metrics.busy(&queue, 1);

    let ending = match shared.registry.get(&job.job_type) {
        None => Ending::Returned(Err(JobError::permanent(format!(
            "no handler for job type {} in this worker",
            job.job_type
        )))),
        Some(run) => {
            let token = CancellationToken::new();
            let ctx = JobContext::new(
                job.id,
                queue.clone(),
                job_type.clone(),
                job.attempts as u32,
                job.max_attempts as u32,
                token.clone(),
                shared.progress.clone(),
            );
            let mut handle = tokio::spawn(run(&job.payload, ctx));
            let interrupted = tokio::select! {
                joined = &mut handle => Err(joined),
                _ = tokio::time::sleep(timeout) => Ok(Ending::TimedOut(timeout)),
                reason = control.stopped() => Ok(match reason {
                    StopReason::Cancelled => Ending::Cancelled,
                    StopReason::Shutdown => Ending::Shutdown,
                }),
            };
            match interrupted {
                Err(joined) => from_join(joined),
                Ok(ending) => {
                    // Ask the handler to stop; abort it if it ignores that for too long.
                    token.cancel();
                    let grace = if matches!(ending, Ending::Shutdown) {
                        Duration::ZERO
                    } else {
                        shared.config.worker.abort_grace()
                    };
                    if tokio::time::timeout(grace, &mut handle).await.is_err() {
                        handle.abort();
                        tracing::warn!(job.id = %job.id, "handler ignored its cancellation and was aborted");
                    }
                    ending
                }
            }
        }
    };

    let finished_at = Utc::now();
    let msg = match next_state(&job, &queue_config.backoff, ending, finished_at) {
        None => CompleterMsg::Release {
            queue: queue.clone(),
            id: job.id,
            attempt: job.attempts,
            priority: job.priority,
        },
        Some(state) => CompleterMsg::Finished(Completion {
            queue: queue.clone(),
            job_type,
            priority: job.priority,
            attempt: FinishedAttempt {
                id: job.id,
                attempt: job.attempts,
                worker_id: shared.identity.id.clone(),
                started_at: job.started_at,
                finished_at,
                state,
            },
        }),
    };
    // The completer outlives every executor; a send error means the process is
    // exiting, and the lease sweep recovers the job.
    let _ = shared.completions.send(msg);
    shared.running.remove(&job.id);
    shared.metrics.busy(&queue, -1);
    drop(permit);
}

fn from_join(joined: Result<Result<serde_json::Value, JobError>, JoinError>) -> Ending {
    match joined {
        Ok(result) => Ending::Returned(result),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Ending::Panicked(message)
        }
        Err(_) => Ending::Returned(Err(JobError::retryable("handler task was cancelled"))),
    }
}

/// The retry policy: where an attempt that ended this way leaves the job (None:
/// given back uncounted, because the worker is shutting down).
fn next_state(
    job: &ClaimedJob,
    queue_backoff: &Backoff,
    ending: Ending,
    now: chrono::DateTime<Utc>,
) -> Option<FinalState> {
    let attempts_left = job.attempts < job.max_attempts;
    let backoff = job
        .backoff
        .as_ref()
        .and_then(|b| serde_json::from_value::<Backoff>(b.clone()).ok())
        .unwrap_or(*queue_backoff);
    let retry_in = |delay: Duration, error: String| {
        if attempts_left {
            let run_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            FinalState::Retrying { error, run_at }
        } else {
            FinalState::Failed(error)
        }
    };
    let scheduled = |error: String| retry_in(backoff_delay(&backoff, job.attempts as u32), error);
    Some(match ending {
        Ending::Returned(Ok(result)) => FinalState::Completed(result),
        Ending::Returned(Err(JobError::Permanent(e))) => FinalState::Failed(e),
        Ending::Returned(Err(JobError::Retryable(e))) => scheduled(e),
        Ending::Returned(Err(JobError::RetryAfter { after, message })) => retry_in(after, message),
        Ending::Panicked(message) => scheduled(format!("handler panicked: {message}")),
        Ending::TimedOut(t) => scheduled(format!("timed out after {} ms", t.as_millis())),
        Ending::Cancelled => FinalState::Cancelled("cancelled by request".into()),
        Ending::Shutdown => return None,
    })
}
