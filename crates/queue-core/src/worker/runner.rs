//! The claim loop of one queue: wait for a free slot, claim a batch in Redis, fence
//! it in PostgreSQL, start the attempts. Idle, it blocks on the queue's marker (no
//! polling interval), so a job pushed into an idle queue starts within milliseconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::executor::execute;
use super::scaling::{Scaler, Slots, OBSERVE_EVERY};
use super::WorkerShared;
use crate::broker::{ClaimReply, JobEvent};
use crate::config::{AdaptiveConcurrency, Concurrency};
use crate::job::JobStatus;
use crate::service::Probe;

/// Longest block on the marker (so a lost connection is noticed).
const MAX_BLOCK: Duration = Duration::from_secs(5);
/// How often a paused queue is looked at again.
const PAUSE_RECHECK: Duration = Duration::from_millis(500);

pub(crate) async fn run_queue(
    shared: Arc<WorkerShared>,
    queue: Arc<str>,
    concurrency: Concurrency,
    stop: CancellationToken,
    probe: Probe,
) {
    let limit = Slots::new(concurrency.initial());
    shared.metrics.concurrency(&queue, concurrency.initial());
    if let Concurrency::Adaptive(bounds) = concurrency {
        tokio::spawn(follow_backlog(
            shared.clone(),
            queue.clone(),
            limit.clone(),
            bounds,
            stop.clone(),
        ));
    }
    let slots = limit.semaphore.clone();
    let queue_config = shared.config.queue(&queue).cloned().unwrap_or_default();
    let lease = shared.config.worker.lease();
    let mut blocking: Option<MultiplexedConnection> = None;
    let mut error_delay = Duration::from_millis(100);
    let tasks = tokio_util::task::TaskTracker::new();

    // After a PostgreSQL failure, no id leaves Redis until PostgreSQL answers again.
    let mut postgres_down = false;

    'claiming: while !stop.is_cancelled() {
        probe.beat();
        if postgres_down {
            if shared.store.ping().await.is_err() {
                tokio::select! {
                    _ = tokio::time::sleep(error_delay) => {}
                    _ = stop.cancelled() => break,
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(2));
                continue;
            }
            tracing::info!(queue.name = %queue, "postgres is back; claiming again");
            postgres_down = false;
        }
        // Every slot busy is progress too: the probe beats while waiting for one.
        let first = loop {
            tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => break p,
                    Err(_) => break 'claiming,
                },
                _ = tokio::time::sleep(MAX_BLOCK) => probe.beat(),
                _ = stop.cancelled() => break 'claiming,
            }
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }

        let reply = shared
            .broker
            .claim(&queue, permits.len(), lease, queue_config.rate_limit)
            .await;
        let pause = match reply {
            Err(e) => {
                tracing::warn!(queue.name = %queue, error = %e, "claim failed in redis");
                Some(error_delay)
            }
            Ok(ClaimReply::Paused) => Some(PAUSE_RECHECK),
            Ok(ClaimReply::RateLimited(wait)) => Some(wait),
            Ok(ClaimReply::Claimed { ids, next_delayed }) if ids.is_empty() => {
                drop(permits);
                let timeout = next_delayed.unwrap_or(MAX_BLOCK).min(MAX_BLOCK);
                match wait_for_work(&shared, &queue, &mut blocking, timeout, &stop).await {
                    Ok(()) => None,
                    Err(()) => Some(error_delay),
                }
            }
            Ok(ClaimReply::Claimed { ids, .. }) => {
                match start_claimed(&shared, &queue, ids, permits, &tasks).await {
                    Ok(()) => None,
                    Err(()) => {
                        postgres_down = true;
                        Some(error_delay)
                    }
                }
            }
        };
        match pause {
            None => error_delay = Duration::from_millis(100),
            Some(d) => {
                if d == error_delay {
                    error_delay = (error_delay * 2).min(Duration::from_secs(5));
                }
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Adapts `slots` to the queue's backlog until `stop` (see `scaling`).
async fn follow_backlog(
    shared: Arc<WorkerShared>,
    queue: Arc<str>,
    slots: Slots,
    bounds: AdaptiveConcurrency,
    stop: CancellationToken,
) {
    let mut scaler = Scaler::new(bounds, Instant::now());
    let mut ticks = tokio::time::interval(OBSERVE_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let backlog = match shared.broker.ready_len(&queue).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(queue.name = %queue, error = %e, "cannot read the backlog");
                continue;
            }
        };
        let before = scaler.limit();
        if let Some(limit) = scaler.observe(backlog, Instant::now()) {
            tracing::info!(queue.name = %queue, from = before, to = limit, backlog, "concurrency changed");
            slots.set_limit(limit);
            shared.metrics.concurrency(&queue, limit);
        }
    }
}

/// Blocks until the marker is touched or `timeout` passes.
async fn wait_for_work(
    shared: &WorkerShared,
    queue: &str,
    blocking: &mut Option<MultiplexedConnection>,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), ()> {
    if blocking.is_none() {
        match shared.broker.blocking_connection().await {
            Ok(c) => *blocking = Some(c),
            Err(e) => {
                tracing::warn!(queue.name = %queue, error = %e, "cannot open blocking redis connection");
                return Err(());
            }
        }
    }
    let Some(conn) = blocking.as_mut() else {
        return Err(());
    };
    tokio::select! {
        woke = shared.broker.wait_for_work(conn, queue, timeout) => match woke {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(queue.name = %queue, error = %e, "blocking wait failed");
                *blocking = None;
                Err(())
            }
        },
        _ = stop.cancelled() => Ok(()),
    }
}

/// Fences `ids` in PostgreSQL and starts what the fence let through, in claim order.
async fn start_claimed(
    shared: &Arc<WorkerShared>,
    queue: &Arc<str>,
    ids: Vec<Uuid>,
    mut permits: Vec<OwnedSemaphorePermit>,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<(), ()> {
    let claimed = match shared
        .store
        .claim(&ids, &shared.identity.id, shared.config.worker.lease())
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            // The ids stay in the in-flight set: once their lease runs out the lease
            // sweep pushes back those PostgreSQL still calls waiting (and recovers
            // them if the claim did commit after all).
            tracing::warn!(queue.name = %queue, error = %e, "claim failed in postgres");
            return Err(());
        }
    };
    // Announce RUNNING (one pipeline) before any handler can report progress.
    let running: Vec<(Uuid, JobEvent)> = claimed
        .iter()
        .map(|j| {
            let event = JobEvent::Status {
                status: JobStatus::Running,
                attempts: j.attempts,
                error: None,
            };
            (j.id, event)
        })
        .collect();
    // Off the hot path: handlers do not wait for the event round trip.
    let broker = shared.broker.clone();
    tokio::spawn(async move {
        if let Err(e) = broker.publish_job_events(&running).await {
            tracing::debug!(error = %e, "running publish failed");
        }
    });
    let mut by_id: HashMap<Uuid, _> = claimed.into_iter().map(|j| (j.id, j)).collect();
    let mut dropped = Vec::new();
    for id in ids {
        match (by_id.remove(&id), permits.pop()) {
            (Some(job), Some(permit)) => {
                tasks.spawn(execute(shared.clone(), queue.clone(), job, permit));
            }
            _ => dropped.push(id),
        }
    }
    if !dropped.is_empty() {
        requeue_refused(shared, queue, &dropped).await;
    }
    Ok(())
}

/// Ids the fence refused leave the in-flight set; those whose jobs still wait (Redis
/// thought them due before PostgreSQL did) are pushed again to run when
/// PostgreSQL's clock says so, instead of being dropped for good.
async fn requeue_refused(shared: &WorkerShared, queue: &str, refused: &[Uuid]) {
    tracing::debug!(queue.name = %queue, refused = refused.len(), "ids refused by the fence");
    let waiting = match shared.store.still_waiting(refused).await {
        Ok(waiting) => waiting,
        Err(e) => {
            // Left in flight: the lease sweep re-dispatches them once it runs out.
            tracing::debug!(error = %e, "could not look up refused ids");
            return;
        }
    };
    if let Err(e) = shared.broker.requeue_refused(queue, &waiting).await {
        tracing::debug!(error = %e, "could not push refused ids back");
        return;
    }
    let done: Vec<Uuid> = refused
        .iter()
        .filter(|id| !waiting.iter().any(|(w, _, _)| w == *id))
        .copied()
        .collect();
    if !done.is_empty() {
        if let Err(e) = shared.broker.drop_leases(queue, &done).await {
            tracing::debug!(error = %e, "could not drop refused leases");
        }
    }
}
