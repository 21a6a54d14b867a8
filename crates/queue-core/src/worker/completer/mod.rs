//! Writes finished attempts in batches: one PostgreSQL statement per batch, then one
//! Redis pipeline. Redis is acknowledged only after PostgreSQL committed, and a batch
//! is kept and retried while PostgreSQL is down, so no result is lost.
//!
//! Only transient failures (the database unreachable, a deadlock) are retried. A
//! batch PostgreSQL refuses for its data (a result it cannot store) is written again
//! attempt by attempt, so one bad value never holds back the others; an attempt
//! whose outcome cannot be stored fails its job, saying why.
//!
//! An attempt stays in the worker's held set (whose leases the heartbeat renews)
//! until its outcome is written, so a long PostgreSQL outage does not let lease
//! recovery throw away work that finished during it.

mod acks;
mod batches;
mod finish;
#[cfg(test)]
mod tests;

use acks::ack_for;
pub(crate) use batches::Spawn;
use finish::status_events;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::running::Running;

use crate::broker::{Ack, Broker};
use crate::error::StoreError;
use crate::metrics::Metrics;
use crate::store::{FinishedAttempt, HeldAttempt, Store};

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

/// A message and the queue slot its attempt held. The slot is freed only once the
/// outcome is written (PostgreSQL and Redis): a worker never claims ahead of its
/// completer, so the attempts it holds (and whose leases it renews) stay bounded
/// by its concurrency however fast handlers finish.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) msg: CompleterMsg,
    pub(crate) slot: Option<OwnedSemaphorePermit>,
}

impl From<CompleterMsg> for Outcome {
    fn from(msg: CompleterMsg) -> Self {
        Self { msg, slot: None }
    }
}

#[derive(Debug)]
pub(crate) enum CompleterMsg {
    Finished(Completion),
    /// Record a batch parent's children and let it wait for them.
    Spawn(Spawn),
    /// Give an attempt back without counting it, to wait `delay` (zero at
    /// shutdown; a moment when its job type is at its cap).
    Release {
        queue: Arc<str>,
        held: HeldAttempt,
        priority: i32,
        delay: Duration,
    },
}

impl CompleterMsg {
    fn job_id(&self) -> Uuid {
        match self {
            Self::Finished(c) => c.attempt.id,
            Self::Spawn(s) => s.held.id,
            Self::Release { held, .. } => held.id,
        }
    }
}

pub(crate) struct Completer {
    store: Store,
    broker: Broker,
    metrics: Metrics,
    running: Running,
    worker_id: String,
    rx: mpsc::UnboundedReceiver<Outcome>,
}

impl Completer {
    pub(crate) fn new(
        store: Store,
        broker: Broker,
        metrics: Metrics,
        running: Running,
        worker_id: String,
    ) -> (Self, mpsc::UnboundedSender<Outcome>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let completer = Self {
            store,
            broker,
            metrics,
            running,
            worker_id,
            rx,
        };
        (completer, tx)
    }

    /// Runs until `closing` fires and everything received by then is written (or
    /// until every sender is gone).
    pub(crate) async fn run(mut self, closing: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                biased;
                msg = self.rx.recv() => msg,
                _ = closing.cancelled() => self.rx.try_recv().ok(),
            };
            let Some(first) = first else { return };
            // Take whatever else is already queued: batches grow with load and
            // latency stays low when idle.
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

    async fn write(&self, batch: &mut Vec<Outcome>) {
        // Freed when this write is done (dropped at the end of the function).
        let _slots: Vec<OwnedSemaphorePermit> =
            batch.iter_mut().filter_map(|o| o.slot.take()).collect();
        let done: Vec<Uuid> = batch.iter().map(|o| o.msg.job_id()).collect();
        let mut finished = Vec::new();
        let mut releases = Vec::new();
        let mut spawns = Vec::new();
        for Outcome { msg, .. } in batch.drain(..) {
            match msg {
                CompleterMsg::Finished(c) => finished.push(c),
                CompleterMsg::Spawn(s) => spawns.push(s),
                CompleterMsg::Release {
                    queue,
                    held,
                    priority,
                    delay,
                } => releases.push((queue, held, priority, delay.as_millis() as i64)),
            }
        }
        let mut acks = Vec::with_capacity(done.len());
        let mut events = Vec::new();
        // Each statement names the jobs Redis must hear about (retries, dead letters,
        // releases) in an outbox row of its own; each is deleted once Redis has them.
        let mut outboxes = Vec::new();
        let spawned = self
            .write_spawns(spawns, &mut finished, &mut acks, &mut outboxes)
            .await;
        if !finished.is_empty() {
            let written = self.write_finished(&mut finished, &mut outboxes).await;
            events = status_events(&finished, &written);
            for c in &finished {
                let status = written.get(&c.attempt.id).copied();
                self.count(c, status);
                acks.push((c.queue.to_string(), c.attempt.id, ack_for(c, status)));
            }
        }
        if !releases.is_empty() {
            let held: Vec<HeldAttempt> = releases.iter().map(|(_, h, _, _)| *h).collect();
            let delays: Vec<i64> = releases.iter().map(|(_, _, _, d)| *d).collect();
            let outbox = Uuid::new_v4();
            let released = write_durably("release", || {
                self.store.release(&held, &delays, &self.worker_id, outbox)
            })
            .await;
            match released {
                Ok(released) => {
                    outboxes.push(outbox);
                    for (queue, held, priority, delay_ms) in releases {
                        let ack = if released.contains(&held.id) {
                            Ack::Release { priority, delay_ms }
                        } else {
                            Ack::Done
                        };
                        acks.push((queue.to_string(), held.id, ack));
                    }
                }
                // Left RUNNING: lease recovery takes these jobs once the lease runs out.
                Err(e) => {
                    tracing::error!(error = %e, jobs = held.len(), "could not give attempts back")
                }
            }
        }
        // Written (or given up): no longer ours to renew.
        self.running.remove(done);
        let told_redis = spawned || acks.iter().any(|(_, _, a)| !matches!(a, Ack::Done));
        // The status events ride in the acknowledgement's pipeline: after
        // PostgreSQL committed, without a round trip of their own.
        match self.broker.ack_and_publish(&acks, &events).await {
            Ok(()) if told_redis => {
                if let Err(e) = self.store.outbox_done(&outboxes).await {
                    tracing::warn!(error = %e, "could not delete the outbox rows of acknowledged jobs");
                }
            }
            Ok(()) => {}
            // PostgreSQL has the truth; the reconciler re-sends what the outbox rows
            // name and the lease sweep clears stale in-flight entries.
            Err(e) => tracing::warn!(error = %e, acks = acks.len(), "redis acknowledgement failed"),
        }
    }
}

/// Runs a store write until it succeeds or fails for a reason a retry cannot fix:
/// while the database is unreachable results are kept, never dropped. Backs off
/// from 100 ms to 2 s (the claim loop's cap too: work resumes soon after an outage).
pub(super) async fn write_durably<T, F, Fut>(what: &str, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "{what}: write failed; keeping the results and retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
