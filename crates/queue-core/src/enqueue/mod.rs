//! The enqueue half: a job is checked ([`validate`]), recorded with an outbox row
//! that names it ([`batcher`] shares one INSERT among concurrent single enqueues;
//! bulk and transactional enqueues write their own), then pushed to Redis, and the
//! outbox row deleted off the request path ([`outbox`]). If the push fails the
//! reconciler pushes what the outbox row names. An idempotency key that already
//! has a job in its queue resolves to that job ([`existing_jobs`], the one place
//! that does it).

mod batcher;
mod outbox;
mod validate;

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;
use uuid::Uuid;

pub(crate) use batcher::{push_written, InsertBatcher};
pub(crate) use outbox::OutboxDone;
pub use validate::{prepare, DISPATCH_CHANNEL, MAX_BULK, MAX_IDEMPOTENCY_KEY};

use crate::client::Conveyor;
use crate::error::{EnqueueError, StoreError};
use crate::job::{Job, NewJob};
use crate::store::{jobs, InsertedJob, OutboxEntry};

/// The result of a single enqueue.
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub job: Job,
    /// False when an earlier job with the same idempotency key was returned.
    pub created: bool,
}

impl Conveyor {
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
        let one = std::slice::from_ref(&prepared);
        match existing_jobs(&mut conn, one, &[]).await?.remove(&0) {
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
            .ok_or_else(|| key_in_use("request"))?;
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
        let mut existing = existing_jobs(&mut tx, &prepared, &inserted).await?;
        let created: HashSet<Uuid> = inserted.iter().map(|j| j.id).collect();
        let ids = prepared
            .iter()
            .enumerate()
            .map(|(i, p)| match existing.remove(&i) {
                Some(job) => Ok(job.id),
                None if created.contains(&p.id) => Ok(p.id),
                None => Err(key_in_use("request")),
            })
            .collect::<Result<Vec<_>, _>>()?;
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
                let one = std::slice::from_ref(&prepared);
                return match existing_jobs(conn, one, &[]).await?.remove(&0) {
                    Some(job) => Ok(job.id),
                    None => Err(key_in_use("transaction")),
                };
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
}

/// For each of `prepared` that `inserted` does not hold (its idempotency key was
/// taken), the job holding that key, by index in `prepared`. An index with no job
/// means the holder was deleted meanwhile, or a concurrent transaction holds the
/// key without having committed.
async fn existing_jobs(
    conn: &mut PgConnection,
    prepared: &[InsertedJob],
    inserted: &[Job],
) -> Result<HashMap<usize, Job>, StoreError> {
    if inserted.len() == prepared.len() {
        return Ok(HashMap::new());
    }
    let created: HashSet<Uuid> = inserted.iter().map(|j| j.id).collect();
    let keyed: Vec<(usize, &str, &str)> = prepared
        .iter()
        .enumerate()
        .filter(|(_, p)| !created.contains(&p.id))
        .filter_map(|(i, p)| Some((i, p.queue.as_str(), p.idempotency_key.as_deref()?)))
        .collect();
    let pairs: Vec<(&str, &str)> = keyed.iter().map(|(_, q, k)| (*q, *k)).collect();
    let mut by_key: HashMap<(String, String), Job> = jobs::existing_by_key(conn, &pairs)
        .await?
        .into_iter()
        .map(|j| {
            (
                (
                    j.queue_name.clone(),
                    j.idempotency_key.clone().unwrap_or_default(),
                ),
                j,
            )
        })
        .collect();
    Ok(keyed
        .into_iter()
        .filter_map(|(i, q, k)| {
            let job = by_key.remove(&(q.to_string(), k.to_string()))?;
            Some((i, job))
        })
        .collect())
}

fn key_in_use(by: &str) -> EnqueueError {
    EnqueueError::invalid(
        "idempotencyKey",
        format!("is being used by a concurrent {by}"),
    )
}
