//! `Conveyor`: the library's front door for enqueueing and controlling jobs.

use std::collections::HashSet;
use std::sync::Arc;

use uuid::Uuid;

use crate::broker::Broker;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::enqueue::OutboxDone;
pub use crate::enqueue::{prepare, Enqueued, DISPATCH_CHANNEL, MAX_BULK, MAX_IDEMPOTENCY_KEY};
use crate::enqueue::{push_written, InsertBatcher};
use crate::error::{EnqueueError, JobStateError};
use crate::job::{Job, NewJob};
use crate::store::{DispatchError, InsertedJob, RetryOutcome, Store};

/// Dead-letter stream entries read per call while replaying.
const REPLAY_PAGE: usize = 1_000;

/// Enqueues jobs and controls queues. Cheap to clone.
#[derive(Clone)]
pub struct Conveyor {
    pub(crate) store: Store,
    pub(crate) broker: Broker,
    pub(crate) config: Arc<Config>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) outbox_done: OutboxDone,
    pub(crate) inserts: InsertBatcher,
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

    /// Pushes freshly recorded jobs and then deletes their outbox row (if any).
    pub(crate) async fn dispatch(&self, jobs: &[Job], outbox: Option<Uuid>) {
        push_written(&self.broker, &self.outbox_done, jobs, outbox).await;
    }

    /// Checks `job` against the configuration and the catalog, and resolves its
    /// defaults (see [`prepare`]).
    pub fn prepare(&self, job: NewJob) -> Result<InsertedJob, EnqueueError> {
        prepare(&self.config, &self.catalog, job)
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
