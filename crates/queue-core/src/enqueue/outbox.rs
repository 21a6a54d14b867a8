//! Deletes pushed outbox rows off the enqueue path. The delete only spares the
//! reconciler a re-push, and a re-push is harmless (pushes are `ZADD NX`, so a job
//! keeps its place; the claim fences duplicates), so a request need not wait for it:
//! rows are deleted every few milliseconds in one statement, and a lost delete costs
//! one extra push.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::Store;

/// How long a flush waits for more deletes to join it.
const COALESCE: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub(crate) struct OutboxDone {
    inner: Arc<Inner>,
    wake: Arc<Notify>,
}

struct Inner {
    store: Store,
    pending: Mutex<Vec<Uuid>>,
    flusher: OnceLock<()>,
}

impl OutboxDone {
    pub(crate) fn new(store: Store) -> Self {
        let inner = Arc::new(Inner {
            store,
            pending: Mutex::new(Vec::new()),
            flusher: OnceLock::new(),
        });
        Self {
            inner,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues a delete; the flusher task starts with the first (it needs a runtime).
    pub(crate) fn add(&self, outbox: Uuid) {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(outbox);
        self.inner.flusher.get_or_init(|| {
            tokio::spawn(flush_loop(Arc::downgrade(&self.inner), self.wake.clone()));
        });
        self.wake.notify_one();
    }
}

/// Runs while any `Conveyor` sharing these marks lives.
async fn flush_loop(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        tokio::time::sleep(COALESCE).await;
        let Some(inner) = inner.upgrade() else { return };
        let ids = std::mem::take(&mut *inner.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if !ids.is_empty() {
            if let Err(e) = inner.store.outbox_done(&ids).await {
                tracing::debug!(error = %e, rows = ids.len(), "outbox rows not deleted; the reconciler re-pushes");
            }
        }
    }
}
