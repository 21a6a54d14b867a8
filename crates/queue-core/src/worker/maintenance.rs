//! Reconciliation, run by every worker (each step is safe with many at once):
//!
//! - jobs recorded but not known to be in Redis are pushed (enqueue while Redis was
//!   down, transactional enqueue, a crash between the two writes); a NOTIFY from a
//!   committed transaction triggers this at once;
//! - a queue whose Redis generation marker vanished (FLUSHALL, restart) has all its
//!   waiting jobs pushed again and its dead letters rebuilt;
//! - a queue's waiting jobs are checked against Redis a page per round and the
//!   missing ones put back, which catches a partial loss that leaves the marker
//!   (failover to a lagging replica, an older snapshot, eviction);
//! - expired leases in PostgreSQL are recovered (LOST attempt → RETRYING or FAILED),
//!   except those of workers that are alive but could not reach PostgreSQL;
//! - expired in-flight ids in Redis are cleared, and pushed again if still waiting;
//! - pause flags are copied from PostgreSQL to Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::WorkerShared;
use crate::broker::Ack;
use crate::client::DISPATCH_CHANNEL;
use crate::job::JobStatus;

/// Rows handled per step and round.
const BATCH: i64 = 1_000;
/// Waiting jobs checked against Redis per queue and round: a backlog of
/// `AUDIT_PAGE × rounds` jobs is covered within that many rounds.
const AUDIT_PAGE: i64 = 5_000;
/// Jobs younger than this are left out of the check (their writer is pushing them).
const AUDIT_MIN_AGE: Duration = Duration::from_secs(5);
/// Newest FAILED jobs per queue whose dead letters are rebuilt after a Redis loss
/// (the stream keeps about as many).
const DEAD_LETTERS_REBUILT: i64 = 100_000;
/// Outbox rows (each names up to 10 000 jobs) pushed per transaction.
const OUTBOX_BATCH: i64 = 20;
/// Outbox rows younger than this are left to their writer's own push.
const WRITER_GRACE: Duration = Duration::from_secs(2);

pub(crate) async fn run_maintenance(shared: Arc<WorkerShared>, stop: CancellationToken) {
    let generation = uuid::Uuid::new_v4().to_string();
    let mut audit = Audit::default();
    let mut tick = tokio::time::interval(Duration::from_millis(shared.config.worker.reconcile_ms));
    let mut listener = None;
    loop {
        if listener.is_none() {
            listener = listen(&shared).await;
        }
        let notified = tokio::select! {
            _ = tick.tick() => false,
            n = async { listener.as_mut().expect("checked").recv().await }, if listener.is_some() => match n {
                Ok(n) => shared.queues.iter().any(|q| q == n.payload()),
                Err(_) => { listener = None; false }
            },
            _ = stop.cancelled() => return,
        };
        if notified {
            dispatch_missing(&shared).await;
        } else {
            reconcile(&shared, &generation).await;
            audit.round(&shared).await;
        }
    }
}

async fn listen(shared: &WorkerShared) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(shared.store.pool()).await.ok()?;
    listener.listen(DISPATCH_CHANNEL).await.ok()?;
    Some(listener)
}

/// One full round of every step.
pub(crate) async fn reconcile(shared: &WorkerShared, generation: &str) {
    for queue in &shared.queues {
        match shared.broker.claim_generation(queue, generation).await {
            Ok(true) => match shared
                .store
                .redispatch_queue(queue, DEAD_LETTERS_REBUILT)
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::warn!(queue.name = %queue, jobs = n, "redis lost this queue; re-dispatching")
                }
                Ok(_) => {}
                Err(e) => {
                    // Give the marker back so a later round tries again; kept, it
                    // would say the queue was rebuilt when it was not.
                    tracing::warn!(error = %e, "could not mark jobs for re-dispatch");
                    if let Err(e) = shared.broker.release_generation(queue).await {
                        tracing::warn!(error = %e, "could not give the generation marker back");
                    }
                }
            },
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "generation check failed"),
        }
    }
    match shared.store.paused_queues().await {
        Ok(paused) => {
            if let Err(e) = shared.broker.sync_paused(&shared.queues, &paused).await {
                tracing::debug!(error = %e, "pause sync failed");
            }
        }
        Err(e) => tracing::debug!(error = %e, "pause read failed"),
    }
    recover_expired(shared).await;
    sweep_inflight(shared).await;
    dispatch_missing(shared).await;
}

async fn dispatch_missing(shared: &WorkerShared) {
    loop {
        match shared
            .store
            .dispatch_missing(&shared.broker, WRITER_GRACE, OUTBOX_BATCH)
            .await
        {
            Ok(n) if n as i64 == OUTBOX_BATCH => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "dispatch sweep failed");
                return;
            }
        }
    }
}

async fn recover_expired(shared: &WorkerShared) {
    // Without Redis no worker counts as alive: leases are then recovered as they run out.
    let live: Vec<String> = match shared.broker.live_workers().await {
        Ok(workers) => workers.into_iter().map(|w| w.id).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "could not read live workers");
            Vec::new()
        }
    };
    let recovered = match shared.store.recover_expired(BATCH, &live).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "lease recovery failed");
            return;
        }
    };
    if recovered.is_empty() {
        return;
    }
    tracing::warn!(
        jobs = recovered.len(),
        "recovered jobs whose worker was lost"
    );
    let acks: Vec<_> = recovered
        .iter()
        .filter(|r| r.status == JobStatus::Failed)
        .map(|r| {
            let ack = Ack::DeadLetter {
                job_type: r.job_type.clone(),
                error: r.error.clone().unwrap_or_default(),
                run: r.runs,
                attempts: r.attempts,
                failed_at: r.completed_at.unwrap_or_else(chrono::Utc::now),
            };
            (r.queue_name.clone(), r.id, ack)
        })
        .collect();
    for r in recovered.iter().filter(|r| r.status == JobStatus::Failed) {
        shared.metrics.failed(&r.queue_name, &r.job_type);
    }
    if let Err(e) = shared.broker.ack(&acks).await {
        tracing::warn!(error = %e, "could not add dead letters of lost jobs");
    }
}

async fn sweep_inflight(shared: &WorkerShared) {
    for queue in &shared.queues {
        // PostgreSQL first: an id leaves Redis only once its record says it may be missing.
        match shared.broker.expired_leases(queue, BATCH as usize).await {
            Ok(ids) if !ids.is_empty() => match shared.store.redispatch_ids(&ids).await {
                Ok(_) => {
                    if let Err(e) = shared.broker.drop_leases(queue, &ids).await {
                        tracing::debug!(error = %e, "could not drop stale in-flight ids");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not re-dispatch stale in-flight ids"),
            },
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "in-flight sweep failed"),
        }
    }
}

/// Where each queue's check of waiting jobs against Redis stands.
#[derive(Default)]
struct Audit {
    after: HashMap<String, Uuid>,
}

impl Audit {
    /// Checks the next page of each queue's waiting jobs; wraps around at the end.
    async fn round(&mut self, shared: &WorkerShared) {
        for queue in &shared.queues {
            let after = self.after.get(queue).copied();
            let page = match shared
                .store
                .waiting_page(queue, after, AUDIT_MIN_AGE, AUDIT_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::debug!(error = %e, "waiting-jobs check: read failed");
                    continue;
                }
            };
            // Ids that look missing may only be in transit (claimed, run and
            // acknowledged since the page was read): only those PostgreSQL still
            // calls waiting are put back.
            let put_back = async {
                let missing = shared.broker.missing(queue, &page).await?;
                if missing.is_empty() {
                    return Ok(0);
                }
                let still = shared.store.still_waiting(&missing).await?;
                Ok::<_, AuditError>(shared.broker.put_back(queue, &still).await?)
            };
            match put_back.await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(queue.name = %queue, jobs = n, "redis was missing waiting jobs; put them back")
                }
                Err(e) => {
                    tracing::debug!(error = %e, "waiting-jobs check failed");
                    continue;
                }
            }
            match page.last() {
                Some((id, _, _)) if page.len() as i64 == AUDIT_PAGE => {
                    self.after.insert(queue.clone(), *id);
                }
                _ => {
                    self.after.remove(queue);
                }
            }
        }
    }
}

/// A step of the waiting-jobs check failed in one of the two stores.
#[derive(Debug, thiserror::Error)]
enum AuditError {
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
    #[error(transparent)]
    Broker(#[from] crate::error::BrokerError),
}
