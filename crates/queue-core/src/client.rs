//! `Conveyor`: the library's front door for enqueueing and controlling jobs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::broker::Broker;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{EnqueueError, JobStateError, StoreError};
use crate::insert_batcher::{push_written, InsertBatcher};
use crate::job::{Job, NewJob};
use crate::outbox_done::OutboxDone;
use crate::store::{jobs, DispatchError, InsertedJob, OutboxEntry, RetryOutcome, Store};

/// Most jobs one bulk enqueue takes.
pub const MAX_BULK: usize = 10_000;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Channel that tells workers a transaction committed new jobs.
pub const DISPATCH_CHANNEL: &str = "conveyor_dispatch";
/// Dead-letter stream entries read per call while replaying.
const REPLAY_PAGE: usize = 1_000;

/// PostgreSQL's text and jsonb cannot hold U+0000.
const NUL_REFUSED: &str = "must not contain the NUL character (\\u0000)";

/// The dotted path (under `root`) of the first string, key or value, in `value`
/// that holds U+0000. Allocates only when one is found (enqueue's hot path).
fn nul_in(value: &Value, root: &str) -> Option<String> {
    fn segments(value: &Value) -> Option<Vec<String>> {
        match value {
            Value::String(s) => s.contains('\0').then(Vec::new),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                let mut path = segments(v)?;
                path.push(format!("[{i}]"));
                Some(path)
            }),
            Value::Object(fields) => fields.iter().find_map(|(k, v)| {
                let mut path = if k.contains('\0') {
                    Vec::new()
                } else {
                    segments(v)?
                };
                path.push(format!(".{k}"));
                Some(path)
            }),
            _ => None,
        }
    }
    let mut path = segments(value)?;
    path.push(root.to_string());
    path.reverse();
    Some(path.concat())
}

/// Checks `job` against the configuration and the catalog, and resolves its
/// defaults. Field names in errors are the API's (camelCase).
pub fn prepare(
    config: &Config,
    catalog: &Catalog,
    job: NewJob,
) -> Result<InsertedJob, EnqueueError> {
    let Some(queue) = config.queue(&job.queue) else {
        return Err(EnqueueError::UnknownQueue {
            queue: job.queue,
            valid: config.queues.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    if catalog.queue_of(&job.job_type) != Some(job.queue.as_str()) {
        let valid = catalog.types_of(&job.queue);
        return Err(EnqueueError::UnknownJobType {
            job_type: job.job_type,
            valid: if valid.is_empty() {
                "(none yet)".into()
            } else {
                valid.join(", ")
            },
            queue: job.queue,
        });
    }
    if let Some(field) = nul_in(&job.payload, "payload") {
        return Err(EnqueueError::invalid(field, NUL_REFUSED));
    }
    if let Some(Err(e)) = catalog.validate(&job.job_type, &job.payload) {
        return Err(EnqueueError::invalid(e.field, e.message));
    }
    let max_attempts = job.max_attempts.unwrap_or(queue.attempts);
    if !(1..=1_000).contains(&max_attempts) {
        return Err(EnqueueError::invalid(
            "maxAttempts",
            "must be between 1 and 1000",
        ));
    }
    let timeout_ms = match job.timeout_ms {
        Some(ms) if ms == 0 || ms > i32::MAX as u64 => {
            return Err(EnqueueError::invalid(
                "timeoutMs",
                format!("must be between 1 and {}", i32::MAX),
            ))
        }
        other => other.map(|ms| ms as i32),
    };
    if let Some(key) = &job.idempotency_key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(EnqueueError::invalid(
                "idempotencyKey",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} bytes long"),
            ));
        }
        if key.contains('\0') {
            return Err(EnqueueError::invalid("idempotencyKey", NUL_REFUSED));
        }
    }
    if let Some(b) = &job.backoff {
        b.validate()
            .map_err(|m| EnqueueError::invalid("backoff", m))?;
    }
    Ok(InsertedJob {
        id: Uuid::now_v7(),
        queue: job.queue,
        job_type: job.job_type,
        payload: job.payload,
        max_attempts: max_attempts as i32,
        priority: job.priority.get(),
        parent_id: job.parent_id,
        idempotency_key: job.idempotency_key,
        run_at: job.run_at,
        timeout_ms,
        backoff: job
            .backoff
            .map(|b| serde_json::to_value(b).unwrap_or(Value::Null)),
    })
}

/// The result of a single enqueue.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub job: Job,
    /// False when an earlier job with the same idempotency key was returned.
    pub created: bool,
}

/// Enqueues jobs and controls queues. Cheap to clone.
#[derive(Clone)]
pub struct Conveyor {
    store: Store,
    broker: Broker,
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    outbox_done: OutboxDone,
    inserts: InsertBatcher,
}

impl Conveyor {
    pub fn new(store: Store, broker: Broker, config: Arc<Config>, catalog: Arc<Catalog>) -> Self {
        let outbox_done = OutboxDone::new(store.clone());
        Self {
            inserts: InsertBatcher::new(store.clone(), broker.clone(), outbox_done.clone()),
            outbox_done,
            store,
            broker,
            config,
            catalog,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Checks `job` against the configuration and the catalog, and resolves its
    /// defaults (see [`prepare`]).
    pub fn prepare(&self, job: NewJob) -> Result<InsertedJob, EnqueueError> {
        prepare(&self.config, &self.catalog, job)
    }

    /// Records one job and pushes it to Redis. If Redis is down the job is still
    /// recorded (PENDING) and the reconciler pushes it once Redis is back. Concurrent
    /// calls share one INSERT (see `insert_batcher`).
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, EnqueueError> {
        let prepared = self.prepare(job)?;
        // Kept for the idempotent case only (the batcher takes the job).
        let keyed = prepared.idempotency_key.is_some().then(|| prepared.clone());
        if let Some(job) = self.inserts.insert(prepared).await? {
            return Ok(Enqueued { job, created: true });
        }
        let Some(prepared) = keyed else {
            // Only a matching idempotency key makes an insert write nothing.
            return Err(StoreError::Query(sqlx::Error::RowNotFound).into());
        };
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        let key = prepared.idempotency_key.as_deref().unwrap_or_default();
        let existing = jobs::existing_by_key(&mut conn, &[(prepared.queue.as_str(), key)]).await?;
        match existing.into_iter().next() {
            Some(job) => Ok(Enqueued {
                job,
                created: false,
            }),
            // The first job was purged between our insert and this read: try once more.
            None => Box::pin(self.enqueue_prepared_again(prepared)).await,
        }
    }

    async fn enqueue_prepared_again(
        &self,
        prepared: InsertedJob,
    ) -> Result<Enqueued, EnqueueError> {
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        let outbox = OutboxEntry::pushed_by_writer();
        let job = jobs::insert_many(&mut conn, std::slice::from_ref(&prepared), outbox)
            .await?
            .pop()
            .ok_or_else(|| {
                EnqueueError::invalid("idempotencyKey", "is being used by a concurrent request")
            })?;
        drop(conn);
        self.dispatch(std::slice::from_ref(&job), Some(outbox.id))
            .await;
        Ok(Enqueued { job, created: true })
    }

    /// Records up to [`MAX_BULK`] jobs in one statement and pushes them in one
    /// pipeline; all or nothing (one bad job refuses the bulk). Returns the ids in
    /// input order (an existing job's id where an idempotency key matched).
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Uuid>, EnqueueError> {
        if jobs.len() > MAX_BULK {
            return Err(EnqueueError::TooMany {
                max: MAX_BULK,
                got: jobs.len(),
            });
        }
        let prepared = jobs
            .into_iter()
            .enumerate()
            .map(|(i, j)| self.prepare(j).map_err(|e| e.in_bulk(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tx = self.store.pool().begin().await.map_err(StoreError::from)?;
        let outbox = OutboxEntry::pushed_by_writer();
        let inserted = jobs::insert_many(&mut tx, &prepared, outbox).await?;
        let mut ids: Vec<Uuid> = prepared.iter().map(|p| p.id).collect();
        if inserted.len() < prepared.len() {
            let created: std::collections::HashSet<Uuid> = inserted.iter().map(|j| j.id).collect();
            let pairs: Vec<(&str, &str)> = prepared
                .iter()
                .filter(|p| !created.contains(&p.id))
                .filter_map(|p| p.idempotency_key.as_deref().map(|k| (p.queue.as_str(), k)))
                .collect();
            let existing: HashMap<(String, String), Uuid> = jobs::existing_by_key(&mut tx, &pairs)
                .await?
                .into_iter()
                .map(|j| ((j.queue_name, j.idempotency_key.unwrap_or_default()), j.id))
                .collect();
            for (slot, p) in ids.iter_mut().zip(&prepared) {
                if !created.contains(&p.id) {
                    let key = (
                        p.queue.clone(),
                        p.idempotency_key.clone().unwrap_or_default(),
                    );
                    *slot = *existing.get(&key).ok_or_else(|| {
                        EnqueueError::invalid(
                            "idempotencyKey",
                            "is being used by a concurrent request",
                        )
                    })?;
                }
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.dispatch(&inserted, Some(outbox.id)).await;
        Ok(ids)
    }

    /// Records a job inside the caller's transaction. It is pushed to Redis only
    /// after that transaction commits (a NOTIFY, delivered on commit, wakes the
    /// workers' dispatcher; the reconciler is the fallback), never before, and not
    /// at all if it rolls back.
    pub async fn enqueue_in_tx(
        &self,
        conn: &mut PgConnection,
        job: NewJob,
    ) -> Result<Uuid, EnqueueError> {
        let prepared = self.prepare(job)?;
        let queue = prepared.queue.clone();
        let mut inserted = jobs::insert_many(
            conn,
            std::slice::from_ref(&prepared),
            OutboxEntry::for_reconciler(),
        )
        .await?;
        let id = match inserted.pop() {
            Some(job) => job.id,
            None => {
                let key = prepared.idempotency_key.as_deref().unwrap_or_default();
                let existing = jobs::existing_by_key(conn, &[(queue.as_str(), key)]).await?;
                return existing.first().map(|j| j.id).ok_or_else(|| {
                    EnqueueError::invalid(
                        "idempotencyKey",
                        "is being used by a concurrent transaction",
                    )
                });
            }
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(DISPATCH_CHANNEL)
            .bind(&queue)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from)?;
        Ok(id)
    }

    /// Pushes freshly recorded jobs and then deletes their outbox row (if any).
    async fn dispatch(&self, jobs: &[Job], outbox: Option<Uuid>) {
        push_written(&self.broker, &self.outbox_done, jobs, outbox).await;
    }

    /// Stops (or restarts) claims from `queue`; running jobs finish.
    pub async fn set_paused(
        &self,
        queue: &str,
        paused: bool,
    ) -> Result<(), crate::store::DispatchError> {
        self.store.set_paused(queue, paused).await?;
        self.broker.set_paused(queue, paused).await?;
        Ok(())
    }

    /// Moves a FAILED or CANCELLED job back to PENDING (attempts 0, outcome and
    /// attempt log cleared) and pushes it like a new job: if Redis is down it stays
    /// recorded and the reconciler pushes it later.
    pub async fn retry(&self, id: Uuid) -> Result<Job, JobStateError> {
        match self.store.retry_job(id).await? {
            RetryOutcome::Retried(job) => {
                self.dispatch(std::slice::from_ref(&*job), None).await;
                Ok(*job)
            }
            RetryOutcome::NotRetryable(status) => Err(JobStateError::Conflict {
                id,
                status: status.to_string(),
                message: "only FAILED or CANCELLED jobs can be retried".into(),
            }),
            RetryOutcome::NotFound => Err(JobStateError::NotFound(id)),
        }
    }

    /// Retries dead-lettered jobs of `queue` like [`Conveyor::retry`] and removes
    /// their entries from the queue's dead-letter stream. `job_ids`: the FAILED jobs
    /// of the queue among these ids; None: every FAILED job with an entry in the
    /// stream, and every entry read is removed (an entry whose job is no longer
    /// FAILED is stale: its job was retried or deleted since). Returns how many jobs
    /// went back to PENDING.
    pub async fn replay_dead_letters(
        &self,
        queue: &str,
        job_ids: Option<&[Uuid]>,
    ) -> Result<usize, DispatchError> {
        match job_ids {
            Some(ids) => self.replay_named(queue, ids).await,
            None => self.replay_all(queue).await,
        }
    }

    async fn replay_named(&self, queue: &str, ids: &[Uuid]) -> Result<usize, DispatchError> {
        let wanted: HashSet<Uuid> = ids.iter().copied().collect();
        // Read the stream first: with Redis down nothing is changed.
        let mut entries: Vec<(String, Uuid)> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, last) = self
                .broker
                .dead_letters(queue, after.as_deref(), REPLAY_PAGE)
                .await?;
            entries.extend(
                page.into_iter()
                    .filter(|e| wanted.contains(&e.letter.job_id))
                    .map(|e| (e.entry_id, e.letter.job_id)),
            );
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        let wanted: Vec<Uuid> = wanted.into_iter().collect();
        let retried = self.store.retry_failed(queue, &wanted).await?;
        self.dispatch(&retried, None).await;
        let retried_ids: HashSet<Uuid> = retried.iter().map(|j| j.id).collect();
        let drop: Vec<String> = entries
            .into_iter()
            .filter(|(_, id)| retried_ids.contains(id))
            .map(|(entry, _)| entry)
            .collect();
        self.broker.delete_dead_letters(queue, &drop).await?;
        Ok(retried.len())
    }

    async fn replay_all(&self, queue: &str) -> Result<usize, DispatchError> {
        let mut replayed = 0;
        let mut after: Option<String> = None;
        loop {
            let (page, last) = self
                .broker
                .dead_letters(queue, after.as_deref(), REPLAY_PAGE)
                .await?;
            let Some(last) = last else { break };
            let mut ids: Vec<Uuid> = page.iter().map(|e| e.letter.job_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let retried = self.store.retry_failed(queue, &ids).await?;
            self.dispatch(&retried, None).await;
            replayed += retried.len();
            let read: Vec<String> = page.into_iter().map(|e| e.entry_id).collect();
            self.broker.delete_dead_letters(queue, &read).await?;
            after = Some(last);
        }
        Ok(replayed)
    }
}
