//! Batch parents: the children an attempt named are recorded with the end of the
//! attempt (`Store::spawn_children`) and pushed; an attempt whose children cannot
//! be recorded ends like any other (CANCELLED if that was requested meanwhile,
//! FAILED if PostgreSQL refuses them).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{write_durably, Completer, Completion};
use crate::broker::{Ack, Dispatch};
use crate::error::StoreError;
use crate::job::Job;
use crate::store::{FinalState, FinishedAttempt, HeldAttempt, InsertedJob, OutboxEntry, Spawned};

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

impl Completer {
    /// Records each batch parent's children. Attempts that end otherwise join
    /// `finished`; returns whether any children were pushed (their outbox rows
    /// joined `outboxes`).
    pub(super) async fn write_spawns(
        &self,
        spawns: Vec<Spawn>,
        finished: &mut Vec<Completion>,
        acks: &mut Vec<(String, Uuid, Ack)>,
        outboxes: &mut Vec<Uuid>,
    ) -> bool {
        let mut spawned = false;
        for spawn in spawns {
            let (queue, id) = (spawn.queue.to_string(), spawn.held.id);
            match self.write_spawn(&spawn).await {
                Ok((Spawned::Children(children), outbox)) => {
                    spawned = true;
                    self.push_children(&children, outbox, outboxes).await;
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
        spawned
    }

    /// Records a batch parent's children; returns what happened and the outbox row
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
}
