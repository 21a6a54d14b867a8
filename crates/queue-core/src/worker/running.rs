//! The attempts a worker is running, with a handle to stop each.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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
    pub(crate) attempt: i32,
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
    pub(crate) fn insert(&self, id: Uuid, queue: Arc<str>, attempt: i32) -> Arc<JobControl> {
        let control = Arc::new(JobControl {
            queue,
            attempt,
            stop: CancellationToken::new(),
            reason: Mutex::new(None),
        });
        self.lock().insert(id, control.clone());
        control
    }

    pub(crate) fn remove(&self, id: &Uuid) {
        self.lock().remove(id);
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

    /// (id, attempt) of every running attempt.
    pub(crate) fn held(&self) -> Vec<(Uuid, i32)> {
        self.lock().iter().map(|(id, c)| (*id, c.attempt)).collect()
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
