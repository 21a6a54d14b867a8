//! The worker runtime: claim loops per queue, executors, the batched completer, the
//! heartbeat and the maintenance loop, with graceful shutdown.
//!
//! Shutdown (SIGTERM): stop claiming; wait up to `drain_timeout` for running jobs;
//! give what is left back without counting the attempt (also at once on a second
//! signal, see [`Worker::run`]); flush every result (the heartbeat keeps renewing
//! their leases meanwhile); leave the registry.

mod completer;
mod executor;
mod heartbeat;
mod identity;
mod maintenance;
pub mod progress;
mod runner;
mod running;
mod scaling;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use identity::WorkerIdentity;

use crate::broker::Broker;
use crate::config::{Concurrency, Config};
use crate::handler::HandlerRegistry;
use crate::metrics::Metrics;
use crate::service::{self, Liveness};
use crate::store::Store;
use completer::{Completer, Outcome};
use progress::ProgressSink;
use running::{Running, StopReason};

/// What every task of a worker shares.
pub(crate) struct WorkerShared {
    pub(crate) config: Arc<Config>,
    pub(crate) store: Store,
    pub(crate) broker: Broker,
    pub(crate) registry: HandlerRegistry,
    pub(crate) identity: WorkerIdentity,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: u32,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) running: Running,
    pub(crate) progress: ProgressSink,
    pub(crate) metrics: Metrics,
    pub(crate) completions: mpsc::UnboundedSender<Outcome>,
    /// Slots of the job types capped inside their queue (`type_concurrency`).
    pub(crate) type_slots: HashMap<String, Arc<Semaphore>>,
}

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("--queues: unknown queue `{0}`; it is not in the configuration")]
    UnknownQueue(String),
    #[error("--queues: no queue given")]
    NoQueues,
}

/// A worker process's engine. Build it, then [`Worker::run`] until shutdown.
pub struct Worker {
    shared: Arc<WorkerShared>,
    completer: Completer,
}

/// Signals that end a worker: `drain` stops claiming and drains; `abort` gives
/// running jobs back at once (a second SIGTERM, or the drain timeout).
#[derive(Clone, Default)]
pub struct Shutdown {
    pub drain: CancellationToken,
    pub abort: CancellationToken,
}

impl Worker {
    /// `concurrency` overrides every queue's configured concurrency when given.
    pub fn new(
        config: Arc<Config>,
        store: Store,
        broker: Broker,
        registry: HandlerRegistry,
        queues: Vec<String>,
        concurrency: Option<u32>,
        metrics: Metrics,
    ) -> Result<Self, WorkerError> {
        if queues.is_empty() {
            return Err(WorkerError::NoQueues);
        }
        if let Some(q) = queues.iter().find(|q| config.queue(q).is_none()) {
            return Err(WorkerError::UnknownQueue(q.clone()));
        }
        let mut config = (*config).clone();
        if let Some(c) = concurrency {
            for q in config.queues.values_mut() {
                q.concurrency = Concurrency::Fixed(c.max(1));
            }
        }
        let total = queues
            .iter()
            .filter_map(|q| config.queue(q))
            .map(|q| q.concurrency.max())
            .sum();
        let type_slots = queues
            .iter()
            .filter_map(|q| config.queue(q))
            .flat_map(|q| q.type_concurrency.iter())
            .map(|(t, n)| (t.clone(), Arc::new(Semaphore::new(*n as usize))))
            .collect();
        let identity = WorkerIdentity::new();
        let running = Running::default();
        let (completer, completions) = Completer::new(
            store.clone(),
            broker.clone(),
            metrics.clone(),
            running.clone(),
            identity.id.clone(),
        );
        let shared = Arc::new(WorkerShared {
            config: Arc::new(config),
            store,
            broker,
            registry,
            identity,
            queues,
            concurrency: total,
            started_at: Utc::now(),
            running,
            progress: ProgressSink::default(),
            metrics,
            completions,
            type_slots,
        });
        Ok(Self { shared, completer })
    }

    pub fn id(&self) -> &str {
        &self.shared.identity.id
    }

    /// Runs until `shutdown.drain` fires, then drains as described in the module doc.
    pub async fn run(self, shutdown: Shutdown) {
        let Worker { shared, completer } = self;
        tracing::info!(worker.id = %shared.identity.id, queues = ?shared.queues, "worker started");
        let closing = CancellationToken::new();
        let completer = tokio::spawn(completer.run(closing.clone()));
        let background = CancellationToken::new();
        let helpers = TaskTracker::new();
        helpers.spawn(shared.progress.clone().run_flusher(
            shared.store.clone(),
            shared.broker.clone(),
            shared.identity.id.clone(),
            background.clone(),
        ));
        helpers.spawn(heartbeat::run_heartbeat(shared.clone(), background.clone()));
        helpers.spawn(maintenance::run_maintenance(
            shared.clone(),
            background.clone(),
        ));
        // Workers write most counter deltas, so they fold them too (one compactor
        // at a time across processes; the others skip a round).
        helpers.spawn(
            shared
                .store
                .clone()
                .run_counter_compaction(background.clone()),
        );

        let liveness = Liveness::new();
        let loops = TaskTracker::new();
        for queue in &shared.queues {
            let concurrency = shared
                .config
                .queue(queue)
                .map_or(Concurrency::Fixed(1), |q| q.concurrency);
            loops.spawn(runner::run_queue(
                shared.clone(),
                Arc::from(queue.as_str()),
                concurrency,
                shutdown.drain.clone(),
                liveness.probe(&format!("claim loop of {queue}")),
            ));
        }
        loops.close();
        // The watchdog stops with the claim loops: a drain is bounded by systemd's
        // TimeoutStopSec, not by the watchdog.
        helpers.spawn(liveness.run_watchdog(shutdown.drain.clone()));
        service::ready(&format!("claiming from {}", shared.queues.join(", ")));

        shutdown.drain.cancelled().await;
        tracing::info!(running = shared.running.len(), "draining: no new claims");
        service::stopping(&format!("draining {} jobs", shared.running.len()));
        let drain_timeout = tokio::time::sleep(shared.config.worker.drain_timeout());
        tokio::pin!(drain_timeout);
        // The drain is the progress now: a status line and a watchdog ping a second.
        let mut report = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = loops.wait() => break,
                _ = &mut drain_timeout => {
                    tracing::warn!("drain timeout: giving unfinished jobs back");
                    break;
                }
                _ = shutdown.abort.cancelled() => {
                    tracing::warn!("second signal: giving unfinished jobs back");
                    break;
                }
                _ = report.tick() => {
                    service::draining(shared.running.len());
                }
            }
        }
        shared.running.stop_all(StopReason::Shutdown);
        // Executors answer a shutdown stop at once; bound the wait anyway.
        let _ = tokio::time::timeout(Duration::from_secs(5), loops.wait()).await;

        // Every executor has sent its outcome: write them all, with the heartbeat
        // still renewing their leases, then stop the helpers.
        closing.cancel();
        let _ = completer.await;
        background.cancel();
        helpers.close();
        helpers.wait().await;
        let id = shared.identity.id.clone();
        let (store, broker) = (shared.store.clone(), shared.broker.clone());
        drop(shared);
        let _ = store.remove_worker(&id).await;
        let _ = broker.remove_worker(&id).await;
        tracing::info!(worker.id = %id, "worker stopped");
    }
}
