//! What Redis must hear about a written attempt, as a pure function of the attempt
//! and the status PostgreSQL gave its job, and the counters it moves.

use super::{Completer, Completion};
use crate::broker::Ack;
use crate::job::JobStatus;
use crate::store::FinalState;

/// The acknowledgement of attempt `c` whose job got `written` (None: the write was
/// stale, the job moved on without us, so only our in-flight entry is dropped).
/// A retry is pushed back delayed, a failure dead-lettered; anything else is done.
pub(super) fn ack_for(c: &Completion, written: Option<JobStatus>) -> Ack {
    let a = &c.attempt;
    match (written, &a.state) {
        (Some(JobStatus::Retrying), FinalState::Retrying { run_at, .. }) => Ack::Retry {
            run_at: *run_at,
            priority: c.priority,
        },
        (Some(JobStatus::Failed), FinalState::Failed(error)) => Ack::DeadLetter {
            job_type: c.job_type.to_string(),
            error: error.clone(),
            run: a.run,
            attempts: a.attempt,
            failed_at: a.finished_at,
        },
        _ => Ack::Done,
    }
}

impl Completer {
    /// Counts a written attempt in the worker's metrics.
    pub(super) fn count(&self, c: &Completion, written: Option<JobStatus>) {
        let (queue, job_type) = (&*c.queue, &*c.job_type);
        match written {
            Some(JobStatus::Completed) => {
                let took = c.attempt.finished_at - c.attempt.started_at;
                self.metrics.completed(queue, job_type, took);
            }
            Some(JobStatus::Retrying) => self.metrics.retried(queue, job_type),
            Some(JobStatus::Failed) => self.metrics.failed(queue, job_type),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::store::FinishedAttempt;

    fn completion(state: FinalState) -> Completion {
        Completion {
            queue: Arc::from("q"),
            job_type: Arc::from("T"),
            priority: 7,
            attempt: FinishedAttempt {
                id: Uuid::now_v7(),
                run: 2,
                attempt: 3,
                worker_id: "w".into(),
                started_at: Utc::now(),
                finished_at: Utc::now(),
                state,
            },
        }
    }

    #[test]
    fn a_written_retry_is_pushed_back_at_its_time_and_priority() {
        let run_at = Utc::now() + chrono::Duration::seconds(5);
        let c = completion(FinalState::Retrying {
            error: "e".into(),
            run_at,
        });
        assert_eq!(
            ack_for(&c, Some(JobStatus::Retrying)),
            Ack::Retry {
                run_at,
                priority: 7
            }
        );
    }

    #[test]
    fn a_written_failure_is_dead_lettered_with_its_run_and_attempt() {
        let c = completion(FinalState::Failed("boom".into()));
        assert_eq!(
            ack_for(&c, Some(JobStatus::Failed)),
            Ack::DeadLetter {
                job_type: "T".into(),
                error: "boom".into(),
                run: 2,
                attempts: 3,
                failed_at: c.attempt.finished_at,
            }
        );
    }

    #[test]
    fn a_retry_that_became_a_cancellation_is_not_pushed_back() {
        let c = completion(FinalState::Retrying {
            error: "e".into(),
            run_at: Utc::now(),
        });
        assert_eq!(ack_for(&c, Some(JobStatus::Cancelled)), Ack::Done);
    }

    #[test]
    fn completions_and_stale_writes_only_drop_the_in_flight_entry() {
        let done = completion(FinalState::Completed(json!({})));
        assert_eq!(ack_for(&done, Some(JobStatus::Completed)), Ack::Done);
        let stale = completion(FinalState::Failed("late".into()));
        assert_eq!(ack_for(&stale, None), Ack::Done);
    }
}
