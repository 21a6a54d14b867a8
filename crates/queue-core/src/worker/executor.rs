//! Runs one attempt: the handler in its own task (a panic stays inside it), with
//! the job's timeout, admin cancellation and shutdown, and turns the way it ended
//! into the job's next state.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::completer::{CompleterMsg, Completion, Outcome, Spawn};
use super::running::StopReason;
use super::WorkerShared;
use crate::client::prepare;
use crate::client::MAX_BULK;
use crate::handler::{JobContext, JobError, Output};
use crate::job::{Backoff, NewJob, Priority, MAX_DELAY_MS};
use crate::retry::backoff_delay;
use crate::store::{ClaimedJob, FinalState, FinishedAttempt, HeldAttempt, InsertedJob};

/// How long a job whose type is at its cap waits before it is claimed again.
const TYPE_CAP_WAIT: Duration = Duration::from_millis(500);

/// How an attempt ended, before retry policy.
enum Ending {
    Returned(Result<Output, JobError>),
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
    let held = HeldAttempt {
        id: job.id,
        run: job.runs,
        attempt: job.attempts,
    };
    // A job type at its cap: give the attempt back uncounted to wait a moment
    // (its queue slot is freed for the other types once that is written).
    let _type_slot = match shared.type_slots.get(&job.job_type) {
        None => None,
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                let msg = CompleterMsg::Release {
                    queue,
                    held,
                    priority: job.priority,
                    delay: TYPE_CAP_WAIT,
                };
                let _ = shared.completions.send(Outcome {
                    msg,
                    slot: Some(permit),
                });
                return;
            }
        },
    };
    let control = shared.running.insert(queue.clone(), held);
    shared.metrics.busy(&queue, 1);
    // From here on the attempt always ends in a message to the completer, even if
    // this task panics: the attempt stays held until that message is written.
    let mut report = Report {
        shared: shared.clone(),
        queue: queue.clone(),
        job_type: job_type.clone(),
        job: &job,
        sent: false,
        slot: Some(permit),
    };
    let timeout = Duration::from_millis(
        job.timeout_ms
            .map_or(queue_config.timeout_ms, |ms| ms as u64),
    );

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
                held,
                job.max_attempts as u32,
                token.clone(),
                shared.progress.clone(),
            );
            // One span per attempt: every event of the handler carries the job.
            let span = tracing::info_span!("job", job.id = %job.id, queue = %queue,
                job.type = %job.job_type, attempt = job.attempts, run = job.runs);
            let mut handle = tokio::spawn(run(&job.payload, ctx).instrument(span));
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
    let ending = match ending {
        Ending::Returned(Ok(Output::Children(children))) => {
            match batch_children(&shared, &job, children) {
                Ok(children) => return report.send_children(children, finished_at),
                Err(e) => Ending::Returned(Err(e)),
            }
        }
        other => other,
    };
    let state = next_state(&job, &queue_config.backoff, ending, finished_at);
    report.send(state, finished_at);
}

/// A batch parent's children, checked and resolved like any enqueue, each with the
/// parent's id and priority. One that does not fit fails the parent, naming it; a
/// batch without children completes at once with an empty tally.
fn batch_children(
    shared: &WorkerShared,
    parent: &ClaimedJob,
    children: Vec<NewJob>,
) -> Result<Vec<InsertedJob>, JobError> {
    if children.len() > MAX_BULK {
        return Err(JobError::permanent(format!(
            "a batch holds at most {MAX_BULK} children; this one named {}",
            children.len()
        )));
    }
    children
        .into_iter()
        .enumerate()
        .map(|(i, mut child)| {
            child.parent_id = Some(parent.id);
            // The parent's priority was checked when it was enqueued.
            child.priority = Priority::new(parent.priority).unwrap_or_default();
            prepare(&shared.config, shared.registry.catalog(), child)
                .map_err(|e| JobError::permanent(format!("child {i}: {e}")))
        })
        .collect()
}

/// Sends an attempt's outcome to the completer exactly once: [`Report::send`] on
/// the normal path, or, if the executor panicked before that, a FAILED outcome from
/// `drop` (an engine fault that would repeat on every attempt must not loop).
struct Report<'a> {
    shared: Arc<WorkerShared>,
    queue: Arc<str>,
    job_type: Arc<str>,
    job: &'a ClaimedJob,
    sent: bool,
    /// The queue slot, handed to the completer with the outcome.
    slot: Option<OwnedSemaphorePermit>,
}

impl Report<'_> {
    /// `None`: give the attempt back uncounted (shutdown).
    fn send(&mut self, state: Option<FinalState>, finished_at: chrono::DateTime<Utc>) {
        self.sent = true;
        let job = self.job;
        let msg = match state {
            None => CompleterMsg::Release {
                delay: Duration::ZERO,
                queue: self.queue.clone(),
                held: HeldAttempt {
                    id: job.id,
                    run: job.runs,
                    attempt: job.attempts,
                },
                priority: job.priority,
            },
            Some(state) => CompleterMsg::Finished(Completion {
                queue: self.queue.clone(),
                job_type: self.job_type.clone(),
                priority: job.priority,
                attempt: FinishedAttempt {
                    id: job.id,
                    run: job.runs,
                    attempt: job.attempts,
                    worker_id: self.shared.identity.id.clone(),
                    started_at: job.started_at,
                    finished_at,
                    state,
                },
            }),
        };
        self.deliver(msg);
    }

    /// Hands `msg` and the slot to the completer. The completer outlives every
    /// executor; a send error means the process is exiting, and lease recovery
    /// takes the job.
    fn deliver(&mut self, msg: CompleterMsg) {
        let slot = self.slot.take();
        let _ = self.shared.completions.send(Outcome { msg, slot });
        self.shared.metrics.busy(&self.queue, -1);
    }
}

impl Report<'_> {
    /// Ends a batch parent's attempt with its children (none: completed at once).
    fn send_children(mut self, children: Vec<InsertedJob>, finished_at: chrono::DateTime<Utc>) {
        if children.is_empty() {
            let tally =
                serde_json::json!({"total": 0, "completed": 0, "failed": 0, "cancelled": 0});
            return self.send(Some(FinalState::Completed(tally)), finished_at);
        }
        self.sent = true;
        let job = self.job;
        let msg = CompleterMsg::Spawn(Spawn {
            queue: self.queue.clone(),
            job_type: self.job_type.clone(),
            priority: job.priority,
            held: HeldAttempt {
                id: job.id,
                run: job.runs,
                attempt: job.attempts,
            },
            started_at: job.started_at,
            finished_at,
            children,
        });
        self.deliver(msg);
    }
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        if !self.sent {
            tracing::error!(job.id = %self.job.id, "the executor failed while ending an attempt; failing the job");
            let error = "internal error: the worker could not record how this attempt ended".into();
            self.send(Some(FinalState::Failed(error)), Utc::now());
        }
    }
}

fn from_join(joined: Result<Result<Output, JobError>, JoinError>) -> Ending {
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
        let error = storable(error);
        if attempts_left {
            // Saturate: a backoff or retry-after beyond the longest delay waits that long.
            let ms = delay.as_millis().min(MAX_DELAY_MS as u128) as i64;
            let run_at = now + chrono::Duration::milliseconds(ms);
            FinalState::Retrying { error, run_at }
        } else {
            FinalState::Failed(error)
        }
    };
    let scheduled = |error: String| retry_in(backoff_delay(&backoff, job.attempts as u32), error);
    Some(match ending {
        Ending::Returned(Ok(Output::Result(result))) => FinalState::Completed(result),
        // Taken care of before the retry policy (see `execute`).
        Ending::Returned(Ok(Output::Children(_))) => {
            FinalState::Failed("internal error: a batch's children reached the retry policy".into())
        }
        Ending::Returned(Err(JobError::Permanent(e))) => FinalState::Failed(storable(e)),
        Ending::Returned(Err(JobError::Retryable(e))) => scheduled(e),
        Ending::Returned(Err(JobError::RetryAfter { after, message })) => retry_in(after, message),
        Ending::Panicked(message) => scheduled(format!("handler panicked: {message}")),
        Ending::TimedOut(t) => scheduled(format!("timed out after {} ms", t.as_millis())),
        Ending::Cancelled => FinalState::Cancelled("cancelled by request".into()),
        Ending::Shutdown => return None,
    })
}

/// Error text as PostgreSQL can store it: U+0000 (which text columns refuse, and
/// which EPUB or model output can carry) becomes U+FFFD.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}
