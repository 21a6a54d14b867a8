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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::running::Running;
use chrono::{DateTime, Utc};

use crate::broker::{Ack, Broker, Dispatch, JobEvent};
use crate::error::StoreError;
use crate::job::{Job, JobStatus};
use crate::metrics::Metrics;
use crate::store::{
    FinalState, FinishedAttempt, HeldAttempt, InsertedJob, OutboxEntry, Spawned, Store,
};

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

/// A batch parent's attempt that ended naming its children.
#[derive(Debug)]
pub(crate) struct Spawn {
    pub(crate) queue: Arc<str>,
    pub(crate) job_type: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) held: HeldAttempt,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: DateTime<Utc>,
    pub(crate) children: Vec<InsertedJob>,
}

impl Spawn {
    /// The attempt ending as `state` instead, its children unwritten.
    fn ending(self, worker_id: &str, state: FinalState) -> Completion {
        Completion {
            queue: self.queue,
            job_type: self.job_type,
            priority: self.priority,
            attempt: FinishedAttempt {
                id: self.held.id,
                run: self.held.run,
                attempt: self.held.attempt,
                worker_id: worker_id.to_string(),
                started_at: self.started_at,
                finished_at: self.finished_at,
                state,
            },
        }
    }
}

#[derive(Debug)]
pub(crate) enum CompleterMsg {
    Finished(Completion),
    /// Record a batch parent's children and let it wait for them.
    Spawn(Spawn),
    /// Give an attempt back without counting it (shutdown).
    Release {
        queue: Arc<str>,
        held: HeldAttempt,
        priority: i32,
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
    rx: mpsc::UnboundedReceiver<CompleterMsg>,
}

impl Completer {
    pub(crate) fn new(
        store: Store,
        broker: Broker,
        metrics: Metrics,
        running: Running,
        worker_id: String,
    ) -> (Self, mpsc::UnboundedSender<CompleterMsg>) {
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

    async fn write(&self, batch: &mut Vec<CompleterMsg>) {
        let done: Vec<Uuid> = batch.iter().map(CompleterMsg::job_id).collect();
        let mut finished = Vec::new();
        let mut releases = Vec::new();
        let mut spawns = Vec::new();
        for msg in batch.drain(..) {
            match msg {
                CompleterMsg::Finished(c) => finished.push(c),
                CompleterMsg::Spawn(s) => spawns.push(s),
                CompleterMsg::Release {
                    queue,
                    held,
                    priority,
                } => releases.push((queue, held, priority)),
            }
        }
        let mut acks = Vec::with_capacity(done.len());
        // Each statement names the jobs Redis must hear about (retries, dead letters,
        // releases) in an outbox row of its own; each is deleted once Redis has them.
        let mut outboxes = Vec::new();
        let mut spawned = false;
        for spawn in spawns {
            let (queue, id) = (spawn.queue.to_string(), spawn.held.id);
            match self.write_spawn(&spawn).await {
                Ok((Spawned::Children(children), outbox)) => {
                    spawned = true;
                    self.push_children(&children, outbox, &mut outboxes).await;
                    acks.push((queue, id, Ack::Done));
                }
                Ok((Spawned::Stale, _)) => acks.push((queue, id, Ack::Done)),
                Ok((Spawned::CancelRequested, _)) => {
                    let cancelled = FinalState::Cancelled("cancelled by request".into());
                    finished.push(spawn.ending(&self.worker_id, cancelled));
                }
                Err(e) => {
                    tracing::error!(job.id = %id, error = %e, "the batch's children cannot be recorded; failing the job");
                    let failed = FinalState::Failed(format!(
                        "the batch's children could not be recorded: {}",
                        e.refusal()
                    ));
                    finished.push(spawn.ending(&self.worker_id, failed));
                }
            }
        }
        if !finished.is_empty() {
            let written = self.write_finished(&mut finished, &mut outboxes).await;
            self.publish_statuses(&finished, &written).await;
            for c in &finished {
                let ack = self.ack_for(c, written.get(&c.attempt.id).copied());
                acks.push((c.queue.to_string(), c.attempt.id, ack));
            }
        }
        if !releases.is_empty() {
            let held: Vec<HeldAttempt> = releases.iter().map(|(_, h, _)| *h).collect();
            let outbox = Uuid::new_v4();
            let released = write_durably("release", || {
                self.store.release(&held, &self.worker_id, outbox)
            })
            .await;
            match released {
                Ok(released) => {
                    outboxes.push(outbox);
                    for (queue, held, priority) in releases {
                        let ack = if released.contains(&held.id) {
                            Ack::Release { priority }
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
        match self.broker.ack(&acks).await {
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

    /// Records a batch parent's children; returns what happened and the outbox row
    /// that names them.
    async fn write_spawn(&self, spawn: &Spawn) -> Result<(Spawned, Uuid), StoreError> {
        let outbox = OutboxEntry::pushed_by_writer();
        let written = write_durably("spawn", || {
            self.store.spawn_children(
                spawn.held,
                &self.worker_id,
                spawn.started_at,
                spawn.finished_at,
                &spawn.children,
                outbox,
            )
        })
        .await?;
        Ok((written, outbox.id))
    }

    /// Pushes a batch's freshly recorded children; their outbox row is deleted with
    /// the batch's others once Redis has them (else the reconciler pushes them).
    async fn push_children(&self, children: &[Job], outbox: Uuid, outboxes: &mut Vec<Uuid>) {
        let items: Vec<Dispatch> = children
            .iter()
            .map(|j| Dispatch {
                queue: j.queue_name.clone(),
                id: j.id,
                priority: j.priority,
                run_at: Some(j.run_at),
            })
            .collect();
        match self.broker.push(&items).await {
            Ok(()) => outboxes.push(outbox),
            Err(e) => {
                tracing::warn!(error = %e, children = items.len(), "redis push of a batch's children failed; the reconciler will dispatch them")
            }
        }
    }

    /// Writes `finished` in one statement, or attempt by attempt when PostgreSQL
    /// refuses the batch for its data. An attempt whose outcome cannot be stored is
    /// changed, in `finished`, to a FAILED one that says why. Returns the status
    /// each written job got.
    async fn write_finished(
        &self,
        finished: &mut [Completion],
        outboxes: &mut Vec<Uuid>,
    ) -> HashMap<Uuid, JobStatus> {
        let attempts: Vec<FinishedAttempt> = finished.iter().map(|c| c.attempt.clone()).collect();
        let outbox = Uuid::new_v4();
        let refusal = match write_durably("finish", || self.store.finish(&attempts, outbox)).await {
            Ok(written) => {
                outboxes.push(outbox);
                return statuses(written);
            }
            Err(e) => e,
        };
        tracing::warn!(error = %refusal, attempts = attempts.len(), "the batch was refused; writing its attempts one by one");
        let mut written = HashMap::new();
        for c in finished.iter_mut() {
            match self.write_one(&c.attempt, outboxes).await {
                Ok(w) => written.extend(w),
                Err(e) => {
                    tracing::error!(job.id = %c.attempt.id, error = %e, "the attempt's outcome cannot be stored; failing the job");
                    c.attempt.state = FinalState::Failed(format!(
                        "the attempt's outcome could not be stored: {}",
                        e.refusal()
                    ));
                    match self.write_one(&c.attempt, outboxes).await {
                        Ok(w) => written.extend(w),
                        Err(e) => {
                            tracing::error!(job.id = %c.attempt.id, error = %e, "could not fail the job either; lease recovery will take it")
                        }
                    }
                }
            }
        }
        written
    }

    async fn write_one(
        &self,
        attempt: &FinishedAttempt,
        outboxes: &mut Vec<Uuid>,
    ) -> Result<HashMap<Uuid, JobStatus>, StoreError> {
        let one = std::slice::from_ref(attempt);
        let outbox = Uuid::new_v4();
        let written = write_durably("finish", || self.store.finish(one, outbox)).await?;
        outboxes.push(outbox);
        Ok(statuses(written))
    }

    /// What Redis must do for a finished attempt that got `written` (None: stale,
    /// the job moved on without us, so only our lease is dropped).
    fn ack_for(&self, c: &Completion, written: Option<JobStatus>) -> Ack {
        let a = &c.attempt;
        match (written, &a.state) {
            (Some(JobStatus::Retrying), FinalState::Retrying { run_at, .. }) => {
                self.metrics.retried(&c.queue, &c.job_type);
                Ack::Retry {
                    run_at: *run_at,
                    priority: c.priority,
                }
            }
            (Some(JobStatus::Failed), FinalState::Failed(error)) => {
                self.metrics.failed(&c.queue, &c.job_type);
                Ack::DeadLetter {
                    job_type: c.job_type.to_string(),
                    error: error.clone(),
                    run: a.run,
                    attempts: a.attempt,
                    failed_at: a.finished_at,
                }
            }
            (Some(JobStatus::Completed), _) => {
                self.metrics
                    .completed(&c.queue, &c.job_type, a.finished_at - a.started_at);
                Ack::Done
            }
            _ => Ack::Done,
        }
    }

    /// Publishes the written outcomes as status events, one pipeline per batch
    /// (after PostgreSQL committed them; a failure only costs the live view).
    async fn publish_statuses(&self, finished: &[Completion], written: &HashMap<Uuid, JobStatus>) {
        let events: Vec<(Uuid, JobEvent)> = finished
            .iter()
            .filter_map(|c| {
                let a = &c.attempt;
                let status = *written.get(&a.id)?;
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

fn statuses(written: Vec<(Uuid, String)>) -> HashMap<Uuid, JobStatus> {
    written
        .into_iter()
        .filter_map(|(id, status)| Some((id, status.parse().ok()?)))
        .collect()
}

/// Runs a store write until it succeeds or fails for a reason a retry cannot fix:
/// while the database is unreachable results are kept, never dropped. Backs off
/// from 100 ms to 2 s (the claim loop's cap too: work resumes soon after an outage).
async fn write_durably<T, F, Fut>(what: &str, mut op: F) -> Result<T, StoreError>
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClaimedJob;
    use serde_json::json;
    use sqlx::PgPool;

    const WORKER: &str = "test-worker";

    struct Fixture {
        store: Store,
        broker: Broker,
        prefix: String,
    }

    impl Fixture {
        async fn new(pool: PgPool) -> Self {
            let prefix = format!("test-{}", Uuid::new_v4().simple());
            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let broker = Broker::connect(&url, &prefix)
                .await
                .expect("redis reachable");
            Self {
                store: Store::new(pool),
                broker,
                prefix,
            }
        }

        /// A job claimed by [`WORKER`] (RUNNING, attempt 1 of 3).
        async fn running_job(&self) -> ClaimedJob {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at)
                 VALUES ($1, 'diagnostics', 'SLEEP', 'PENDING', '{}', 3, now())",
            )
            .bind(id)
            .execute(self.store.pool())
            .await
            .unwrap();
            let mut claimed = self
                .store
                .claim(&[id], WORKER, Duration::from_secs(30))
                .await
                .unwrap();
            claimed.pop().expect("claimed")
        }

        fn finished(&self, job: &ClaimedJob, state: FinalState) -> CompleterMsg {
            CompleterMsg::Finished(Completion {
                queue: Arc::from("diagnostics"),
                job_type: Arc::from("SLEEP"),
                priority: job.priority,
                attempt: FinishedAttempt {
                    id: job.id,
                    run: job.runs,
                    attempt: job.attempts,
                    worker_id: WORKER.into(),
                    started_at: job.started_at,
                    finished_at: chrono::Utc::now(),
                    state,
                },
            })
        }

        /// Runs a completer over `msgs` (one batch) until it has written them.
        async fn complete(&self, msgs: Vec<CompleterMsg>) {
            let (completer, tx) = Completer::new(
                self.store.clone(),
                self.broker.clone(),
                Metrics::new(),
                Running::default(),
                WORKER.into(),
            );
            for msg in msgs {
                tx.send(msg).unwrap();
            }
            let closing = CancellationToken::new();
            closing.cancel();
            tokio::time::timeout(Duration::from_secs(15), completer.run(closing))
                .await
                .expect("the completer wrote its batch and ended");
        }

        async fn status(&self, id: Uuid) -> (String, Option<String>, Option<serde_json::Value>) {
            sqlx::query_as("SELECT status, error, result FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(self.store.pool())
                .await
                .unwrap()
        }

        async fn clean_redis(&self) {
            let mut conn = self.broker.connection();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> =
                    redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn a_batch_with_a_retry_and_a_release_is_written_whole(pool: PgPool) {
        let f = Fixture::new(pool).await;
        let (retried, released) = (f.running_job().await, f.running_job().await);
        let retry = FinalState::Retrying {
            error: "try again".into(),
            run_at: chrono::Utc::now(),
        };
        let release = CompleterMsg::Release {
            queue: Arc::from("diagnostics"),
            held: HeldAttempt {
                id: released.id,
                run: released.runs,
                attempt: released.attempts,
            },
            priority: released.priority,
        };
        f.complete(vec![f.finished(&retried, retry), release]).await;
        assert_eq!(f.status(retried.id).await.0, "RETRYING");
        assert_eq!(f.status(released.id).await.0, "PENDING");
        f.clean_redis().await;
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn a_result_postgres_cannot_store_fails_its_job_alone(pool: PgPool) {
        let f = Fixture::new(pool).await;
        let (bad, good) = (f.running_job().await, f.running_job().await);
        let msgs = vec![
            f.finished(&bad, FinalState::Completed(json!({"text": "a\u{0}b"}))),
            f.finished(&good, FinalState::Completed(json!({"ok": true}))),
        ];
        f.complete(msgs).await;
        let (status, error, _) = f.status(bad.id).await;
        assert_eq!(status, "FAILED");
        let error = error.unwrap_or_default();
        assert!(
            error.starts_with("the attempt's outcome could not be stored: "),
            "{error}"
        );
        assert_eq!(
            f.status(good.id).await,
            ("COMPLETED".into(), None, Some(json!({"ok": true})))
        );
        // The failure reached the dead-letter stream too.
        let mut conn = f.broker.connection();
        let letters: usize = redis::cmd("XLEN")
            .arg(f.broker.keys("diagnostics").dlq)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(letters, 1);
        f.clean_redis().await;
    }
}
