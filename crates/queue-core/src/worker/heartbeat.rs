//! The worker's heartbeat: registers it as live (PostgreSQL and Redis) and renews
//! the lease of every attempt it runs, in one statement and one pipeline. Between
//! beats it polls for admin cancellations of its running jobs.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::running::StopReason;
use super::WorkerShared;

/// How often running jobs are checked for a cancellation request.
const CANCEL_POLL: Duration = Duration::from_millis(500);

pub(crate) async fn run_heartbeat(shared: Arc<WorkerShared>, stop: CancellationToken) {
    let mut beat = tokio::time::interval(shared.config.worker.heartbeat());
    let mut cancel_poll = tokio::time::interval(CANCEL_POLL);
    loop {
        tokio::select! {
            _ = beat.tick() => beat_once(&shared).await,
            _ = cancel_poll.tick() => poll_cancellations(&shared).await,
            _ = stop.cancelled() => return,
        }
    }
}

async fn beat_once(shared: &WorkerShared) {
    let lease = shared.config.worker.lease();
    let id = &shared.identity;
    let held = shared.running.held();
    let info = serde_json::json!({
        "id": id.id, "host": id.host, "pid": id.pid, "queues": shared.queues,
        "concurrency": shared.concurrency, "running": held.len(),
        "startedAt": shared.started_at, "lastHeartbeat": chrono::Utc::now(),
    });
    // Leases first: lease recovery takes a live worker's expired job once the
    // worker's heartbeat is newer than the lease, i.e. it beat and did not renew.
    let store = async {
        shared.store.renew_leases(&held, &id.id, lease).await?;
        shared
            .store
            .worker_heartbeat(&id.id, &id.host, id.pid, &shared.queues, shared.concurrency)
            .await
    };
    if let Err(e) = store.await {
        tracing::warn!(error = %e, "heartbeat: postgres write failed");
    }
    let redis = async {
        shared
            .broker
            .heartbeat(&id.id, &info.to_string(), lease)
            .await?;
        shared
            .broker
            .renew_leases(&shared.running.by_queue(), lease)
            .await
    };
    if let Err(e) = redis.await {
        tracing::warn!(error = %e, "heartbeat: redis write failed");
    }
}

async fn poll_cancellations(shared: &WorkerShared) {
    let held = shared.running.held();
    if held.is_empty() {
        return;
    }
    let ids: Vec<_> = held.iter().map(|h| h.id).collect();
    match shared.store.cancel_requested(&ids).await {
        Ok(cancelled) => {
            for id in cancelled {
                tracing::info!(job.id = %id, "cancellation requested; stopping the handler");
                shared.running.stop(&id, StopReason::Cancelled);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cancellation poll failed"),
    }
}
