//! Writing finished attempts: one statement per batch, or attempt by attempt when
//! PostgreSQL refuses the batch for its data; then the status events.

use std::collections::HashMap;

use uuid::Uuid;

use super::{write_durably, Completer, Completion};
use crate::broker::JobEvent;
use crate::error::StoreError;
use crate::job::JobStatus;
use crate::store::{FinalState, FinishedAttempt, Written};

impl Completer {
    /// Writes `finished` in one statement, or attempt by attempt when PostgreSQL
    /// refuses the batch for its data. An attempt whose outcome cannot be stored is
    /// changed, in `finished`, to a FAILED one that says why. Returns the status
    /// each written job got.
    pub(super) async fn write_finished(
        &self,
        finished: &mut [Completion],
        outboxes: &mut Vec<Uuid>,
    ) -> HashMap<Uuid, JobStatus> {
        let attempts: Vec<FinishedAttempt> = finished.iter().map(|c| c.attempt.clone()).collect();
        let outbox = Uuid::new_v4();
        let refusal = match write_durably("finish", || self.store.finish(&attempts, outbox)).await {
            Ok(written) => {
                outboxes.push(outbox);
                return statuses(written);
            }
            Err(e) => e,
        };
        tracing::warn!(error = %refusal, attempts = attempts.len(), "the batch was refused; writing its attempts one by one");
        let mut written = HashMap::new();
        for c in finished.iter_mut() {
            match self.write_one(&c.attempt, outboxes).await {
                Ok(w) => written.extend(w),
                Err(e) => {
                    tracing::error!(job.id = %c.attempt.id, error = %e, "the attempt's outcome cannot be stored; failing the job");
                    c.attempt.state = FinalState::Failed(format!(
                        "the attempt's outcome could not be stored: {}",
                        e.refusal()
                    ));
                    match self.write_one(&c.attempt, outboxes).await {
                        Ok(w) => written.extend(w),
                        Err(e) => {
                            tracing::error!(job.id = %c.attempt.id, error = %e, "could not fail the job either; lease recovery will take it")
                        }
                    }
                }
            }
        }
        written
    }

    async fn write_one(
        &self,
        attempt: &FinishedAttempt,
        outboxes: &mut Vec<Uuid>,
    ) -> Result<HashMap<Uuid, JobStatus>, StoreError> {
        let one = std::slice::from_ref(attempt);
        let outbox = Uuid::new_v4();
        let written = write_durably("finish", || self.store.finish(one, outbox)).await?;
        outboxes.push(outbox);
        Ok(statuses(written))
    }
}

/// The written outcomes as status events (published with the acknowledgement,
/// after PostgreSQL committed them; a lost one only costs the live view).
pub(super) fn status_events(
    finished: &[Completion],
    written: &HashMap<Uuid, JobStatus>,
) -> Vec<(Uuid, JobEvent)> {
    finished
        .iter()
        .filter_map(|c| {
            let a = &c.attempt;
            let status = *written.get(&a.id)?;
            let error = match &a.state {
                FinalState::Completed(_) => None,
                FinalState::Retrying { error, .. }
                | FinalState::Failed(error)
                | FinalState::Cancelled(error) => Some(error.clone()),
            };
            let event = JobEvent::Status {
                status,
                attempts: a.attempt,
                error,
            };
            Some((a.id, event))
        })
        .collect()
}

fn statuses(written: Vec<Written>) -> HashMap<Uuid, JobStatus> {
    written.into_iter().map(|w| (w.id, w.status)).collect()
}
