//! Writes finished attempts in batches: one PostgreSQL statement per batch, then one
//! Redis pipeline. Redis is acknowledged only after PostgreSQL committed, and a batch
//! is kept and retried while PostgreSQL is down, so no result is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::broker::{Ack, Broker, JobEvent};
use crate::job::JobStatus;
use crate::metrics::Metrics;
use crate::store::{FinalState, FinishedAttempt, Store};

/// Most attempts written per statement.
const MAX_BATCH: usize = 1_000;

/// A finished attempt plus what Redis needs to know about it.
#[derive(Debug)]
pub(crate) struct Completion {
    pub(crate) queue: Arc<str>,
    pub(crate) job_type: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) attempt: FinishedAttempt,
}

#[derive(Debug)]
pub(crate) enum CompleterMsg {
    Finished(Completion),
    /// Give an attempt back without counting it (shutdown).
    Release {
        queue: Arc<str>,
        id: Uuid,
        attempt: i32,
        priority: i32,
    },
}

pub(crate) struct Completer {
    store: Store,
    broker: Broker,
    metrics: Metrics,
    rx: mpsc::UnboundedReceiver<CompleterMsg>,
}

impl Completer {
    pub(crate) fn new(
        store: Store,
        broker: Broker,
        metrics: Metrics,
    ) -> (Self, mpsc::UnboundedSender<CompleterMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                store,
                broker,
                metrics,
                rx,
            },
            tx,
        )
    }

    /// Runs until every sender is gone and everything received is written.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // Wait for one message, then take whatever else is already queued: batches
        // grow with load and latency stays low when idle.
        while let Some(first) = self.rx.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            self.write(&mut batch).await;
        }
    }

    async fn write(&self, batch: &mut Vec<CompleterMsg>) {
        let mut finished = Vec::new();
        let mut releases = Vec::new();
        for msg in batch.drain(..) {
            match msg {
                CompleterMsg::Finished(c) => finished.push(c),
                CompleterMsg::Release {
                    queue,
                    id,
                    attempt,
                    priority,
                } => releases.push((queue, id, attempt, priority)),
            }
        }
        let mut acks = Vec::with_capacity(finished.len() + releases.len());
        // One outbox row names the jobs this batch makes wait again (retries and
        // releases); it is deleted once Redis has them.
        let outbox = Uuid::new_v4();
        if !finished.is_empty() {
            let attempts: Vec<FinishedAttempt> =
                finished.iter().map(|c| c.attempt.clone()).collect();
            let written =
                retry_until_written("finish", || self.store.finish(&attempts, outbox)).await;
            let written: std::collections::HashMap<Uuid, String> = written.into_iter().collect();
            self.publish_statuses(&finished, &written).await;
            for c in &finished {
                let a = &c.attempt;
                let ack = match (written.get(&a.id).map(String::as_str), &a.state) {
                    // Stale attempt (the job moved on without us): just drop our lease.
                    (None, _) => Ack::Done,
                    (Some("RETRYING"), FinalState::Retrying { run_at, .. }) => {
                        self.metrics.retried(&c.queue, &c.job_type);
                        Ack::Retry {
                            run_at: *run_at,
                            priority: c.priority,
                        }
                    }
                    (Some("FAILED"), FinalState::Failed(error)) => {
                        self.metrics.failed(&c.queue, &c.job_type);
                        Ack::DeadLetter {
                            job_type: c.job_type.to_string(),
                            error: error.clone(),
                            attempts: a.attempt,
                            failed_at: a.finished_at,
                        }
                    }
                    (Some("COMPLETED"), _) => {
                        self.metrics
                            .completed(&c.queue, &c.job_type, a.finished_at - a.started_at);
                        Ack::Done
                    }
                    _ => Ack::Done,
                };
                acks.push((c.queue.to_string(), a.id, ack));
            }
        }
        if !releases.is_empty() {
            let held: Vec<(Uuid, i32)> = releases
                .iter()
                .map(|(_, id, attempt, _)| (*id, *attempt))
                .collect();
            let released =
                retry_until_written("release", || self.store.release(&held, outbox)).await;
            for (queue, id, _, priority) in releases {
                let ack = if released.contains(&id) {
                    Ack::Release { priority }
                } else {
                    Ack::Done
                };
                acks.push((queue.to_string(), id, ack));
            }
        }
        let requeued = acks
            .iter()
            .any(|(_, _, a)| matches!(a, Ack::Retry { .. } | Ack::Release { .. }));
        match self.broker.ack(&acks).await {
            Ok(()) if requeued => {
                if let Err(e) = self.store.outbox_done(&[outbox]).await {
                    tracing::warn!(error = %e, "could not delete the outbox row of requeued jobs");
                }
            }
            Ok(()) => {}
            // PostgreSQL has the truth; the reconciler re-pushes retries and the
            // lease sweep clears stale in-flight entries.
            Err(e) => tracing::warn!(error = %e, acks = acks.len(), "redis acknowledgement failed"),
        }
    }
}

impl Completer {
    /// Publishes the written outcomes as status events, one pipeline per batch
    /// (after PostgreSQL committed them; a failure only costs the live view).
    async fn publish_statuses(
        &self,
        finished: &[Completion],
        written: &std::collections::HashMap<Uuid, String>,
    ) {
        let events: Vec<(Uuid, JobEvent)> = finished
            .iter()
            .filter_map(|c| {
                let a = &c.attempt;
                let status: JobStatus = written.get(&a.id)?.parse().ok()?;
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
            .collect();
        if let Err(e) = self.broker.publish_job_events(&events).await {
            tracing::debug!(error = %e, "status publish failed");
        }
    }
}

/// Retries a store write until it succeeds: results are never dropped. Backs off
/// from 100 ms to 5 s while the database is unreachable.
async fn retry_until_written<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::error::StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "{what}: write failed; keeping the results and retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
