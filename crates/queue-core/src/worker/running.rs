//! The attempts a worker holds: those running, with a handle to stop each, and
//! those finished but not yet written to PostgreSQL. The heartbeat renews the lease
//! of both, so an attempt that finished while PostgreSQL was down keeps its lease
//! (and its result) until the completer has written it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::HeldAttempt;

/// Why a running attempt is being stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// An admin cancelled the job: it ends CANCELLED.
    Cancelled,
    /// The worker is shutting down: the job is given back, the attempt not counted.
    Shutdown,
}

pub(crate) struct JobControl {
    pub(crate) queue: Arc<str>,
    pub(crate) held: HeldAttempt,
    stop: CancellationToken,
    reason: Mutex<Option<StopReason>>,
}

impl JobControl {
    pub(crate) fn stop(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        self.stop.cancel();
    }

    pub(crate) async fn stopped(&self) -> StopReason {
        self.stop.cancelled().await;
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(StopReason::Shutdown)
    }
}

/// Shared map of running attempts.
#[derive(Clone, Default)]
pub(crate) struct Running {
    jobs: Arc<Mutex<HashMap<Uuid, Arc<JobControl>>>>,
}

impl Running {
    pub(crate) fn insert(&self, queue: Arc<str>, held: HeldAttempt) -> Arc<JobControl> {
        let id = held.id;
        let control = Arc::new(JobControl {
            queue,
            held,
            stop: CancellationToken::new(),
            reason: Mutex::new(None),
        });
        self.lock().insert(id, control.clone());
        control
    }

    /// Forgets attempts once their outcome is written (or given up).
    pub(crate) fn remove(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut jobs = self.lock();
        for id in ids {
            jobs.remove(&id);
        }
    }

    pub(crate) fn stop(&self, id: &Uuid, reason: StopReason) {
        if let Some(c) = self.lock().get(id) {
            c.stop(reason);
        }
    }

    pub(crate) fn stop_all(&self, reason: StopReason) {
        for c in self.lock().values() {
            c.stop(reason);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every attempt held: running, or finished and waiting for its write.
    pub(crate) fn held(&self) -> Vec<HeldAttempt> {
        self.lock().values().map(|c| c.held).collect()
    }

    /// Running ids grouped by queue.
    pub(crate) fn by_queue(&self) -> BTreeMap<String, Vec<Uuid>> {
        let mut out: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for (id, c) in self.lock().iter() {
            out.entry(c.queue.to_string()).or_default().push(*id);
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<JobControl>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}
