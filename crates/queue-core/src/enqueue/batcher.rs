//! Single enqueues that arrive together share one INSERT. Each transaction costs
//! PostgreSQL a commit and a statement whatever its size, so 64 clients posting one
//! job each are written as one statement of up to 64 rows instead of 64 statements.
//! No timer: while one batch is being written, the next requests queue, and they
//! form the next batch; a lone request is written at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::outbox::OutboxDone;
use crate::broker::{Broker, Dispatch};
use crate::error::StoreError;
use crate::job::Job;
use crate::store::{jobs, InsertedJob, OutboxEntry, Store};

/// Most jobs written per statement.
const MAX_BATCH: usize = 1_000;

/// One request: its job, and where its record (None: an idempotency key matched an
/// existing job) goes once it is written and pushed.
struct Pending {
    job: InsertedJob,
    reply: oneshot::Sender<Result<Option<Job>, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct InsertBatcher {
    tx: mpsc::UnboundedSender<Pending>,
    /// The receiver until the writer task starts (it needs a runtime).
    start: Arc<Mutex<Option<Writer>>>,
    started: Arc<OnceLock<()>>,
}

struct Writer {
    rx: mpsc::UnboundedReceiver<Pending>,
    store: Store,
    broker: Broker,
    outbox_done: OutboxDone,
}

impl InsertBatcher {
    pub(crate) fn new(store: Store, broker: Broker, outbox_done: OutboxDone) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            rx,
            store,
            broker,
            outbox_done,
        };
        Self {
            tx,
            start: Arc::new(Mutex::new(Some(writer))),
            started: Arc::new(OnceLock::new()),
        }
    }

    /// Records `job` (with whatever else is waiting) and pushes it to Redis. Returns
    /// None when its idempotency key already has a job in its queue.
    pub(crate) async fn insert(&self, job: InsertedJob) -> Result<Option<Job>, StoreError> {
        self.started.get_or_init(|| {
            let writer = self.start.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(writer) = writer {
                tokio::spawn(writer.run());
            }
        });
        let (reply, answer) = oneshot::channel();
        // Both fail only once the writer task is gone (the runtime is shutting down).
        let gone = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.tx.send(Pending { job, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Writer {
    /// Runs while any `Conveyor` holding the sender lives.
    async fn run(mut self) {
        let mut batch = Vec::new();
        while let Some(first) = self.rx.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            // A caller that went away (its connection closed) while its request
            // waited here gets no record.
            batch.retain(|p| !p.reply.is_closed());
            let mut pending = std::mem::take(&mut batch);
            match pending.pop() {
                Some(only) if pending.is_empty() => self.write_one(only).await,
                Some(last) => {
                    pending.push(last);
                    self.write_batch(pending).await;
                }
                None => {}
            }
        }
    }

    /// A failed batch is written again job by job, so one bad job (say, a parent
    /// that does not exist) fails only its own request.
    async fn write_batch(&self, pending: Vec<Pending>) {
        let jobs: Vec<InsertedJob> = pending.iter().map(|p| p.job.clone()).collect();
        match self.insert(&jobs).await {
            Ok(inserted) => self.answer(pending, inserted).await,
            Err(_) => {
                for p in pending {
                    self.write_one(p).await;
                }
            }
        }
    }

    async fn write_one(&self, p: Pending) {
        match self.insert(std::slice::from_ref(&p.job)).await {
            Ok(inserted) => self.answer(vec![p], inserted).await,
            Err(e) => {
                let _ = p.reply.send(Err(e));
            }
        }
    }

    async fn insert(&self, jobs: &[InsertedJob]) -> Result<(Vec<Job>, OutboxEntry), StoreError> {
        let outbox = OutboxEntry::pushed_by_writer();
        let mut conn = self.store.pool().acquire().await?;
        let inserted = jobs::insert_many(&mut conn, jobs, outbox).await?;
        Ok((inserted, outbox))
    }

    /// Pushes the written jobs, then answers every request.
    async fn answer(&self, pending: Vec<Pending>, (inserted, outbox): (Vec<Job>, OutboxEntry)) {
        push_written(&self.broker, &self.outbox_done, &inserted, Some(outbox.id)).await;
        let mut by_id: HashMap<Uuid, Job> = inserted.into_iter().map(|j| (j.id, j)).collect();
        for p in pending {
            let _ = p.reply.send(Ok(by_id.remove(&p.job.id)));
        }
    }
}

/// Pushes freshly recorded jobs and then deletes their outbox row (if the write left
/// one for this writer). A failure is logged, not returned: the records are safe and
/// the reconciler pushes them later.
pub(crate) async fn push_written(
    broker: &Broker,
    outbox_done: &OutboxDone,
    jobs: &[Job],
    outbox: Option<Uuid>,
) {
    if jobs.is_empty() {
        return;
    }
    let items: Vec<Dispatch> = jobs
        .iter()
        .map(|j| Dispatch {
            queue: j.queue_name.clone(),
            id: j.id,
            priority: j.priority,
            run_at: Some(j.run_at),
        })
        .collect();
    if let Err(e) = broker.push(&items).await {
        tracing::warn!(error = %e, jobs = jobs.len(), "redis push failed; the reconciler will dispatch these jobs");
        return;
    }
    if let Some(outbox) = outbox {
        outbox_done.add(outbox);
    }
}
