//! Progress reporting. Handlers may report as often as they like: the latest report
//! per attempt is kept in memory and flushed in one batched UPDATE every interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::broker::{Broker, JobEvent};
use crate::store::{HeldAttempt, ProgressUpdate, Store};

/// How often reported progress is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Where handlers' progress reports go (cheap to clone).
#[derive(Clone, Default)]
pub struct ProgressSink {
    latest: Arc<Mutex<HashMap<Uuid, ProgressUpdate>>>,
}

impl ProgressSink {
    pub(crate) fn report(&self, held: HeldAttempt, percent: u8, message: String) {
        // PostgreSQL's text cannot hold U+0000; one such message would sink the batch.
        let message = if message.contains('\0') {
            message.replace('\0', "\u{FFFD}")
        } else {
            message
        };
        let update = ProgressUpdate {
            id: held.id,
            run: held.run,
            attempt: held.attempt,
            percent: percent as i16,
            message,
        };
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(held.id, update);
    }

    fn take(&self) -> Vec<ProgressUpdate> {
        let mut map = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        map.drain().map(|(_, u)| u).collect()
    }

    /// Flushes every [`FLUSH_INTERVAL`] until `stop`, then once more. Each written
    /// batch is then published as progress events in one Redis pipeline.
    pub(crate) async fn run_flusher(
        self,
        store: Store,
        broker: Broker,
        worker_id: String,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.cancelled() => true,
            };
            let updates = self.take();
            match store.write_progress(&updates, &worker_id).await {
                Ok(()) => {
                    let events: Vec<(uuid::Uuid, JobEvent)> = updates
                        .into_iter()
                        .map(|u| {
                            let event = JobEvent::Progress {
                                progress: u.percent,
                                progress_message: Some(u.message),
                            };
                            (u.id, event)
                        })
                        .collect();
                    if let Err(e) = broker.publish_job_events(&events).await {
                        tracing::debug!(error = %e, "progress publish failed");
                    }
                }
                // Progress is advisory: a lost report is replaced by the next one.
                Err(e) => tracing::debug!(error = %e, "progress write failed"),
            }
            if stopping {
                return;
            }
        }
    }
}
