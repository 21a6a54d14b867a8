//! Batch parents: the attempt that creates a parent's children, and its
//! cancellation. The tally that completes the parent is kept by PostgreSQL itself
//! (trigger `jobs_batch_tally`, migration `20261207000004_batches.sql`), in the
//! same transaction as every child's terminal write.

use chrono::{DateTime, Utc};

use super::dispatch::OutboxEntry;
use super::jobs::{insert_many, InsertedJob};
use super::{HeldAttempt, Store};
use crate::error::StoreError;
use crate::job::Job;

/// What writing a parent's children did.
#[derive(Debug)]
pub enum Spawned {
    /// The children are recorded (named in the outbox row) and the parent waits
    /// for them.
    Children(Vec<Job>),
    /// The attempt is no longer the job's current one: nothing was written.
    Stale,
    /// Cancellation was requested while the handler ran: nothing was written; the
    /// attempt should end CANCELLED.
    CancelRequested,
}

impl Store {
    /// Records `children` of the parent attempt `held` (fenced like a completion)
    /// and leaves the parent RUNNING without a lease, its `result` the tally
    /// `{total, completed, failed, cancelled}`, its attempt logged COMPLETED: one
    /// transaction, so a parent never waits for children that were not written,
    /// and no child is written twice for one attempt.
    pub async fn spawn_children(
        &self,
        held: HeldAttempt,
        worker_id: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        children: &[InsertedJob],
        outbox: OutboxEntry,
    ) -> Result<Spawned, StoreError> {
        let mut tx = self.pool.begin().await?;
        let parent: Option<(bool, String)> = sqlx::query_as(
            "SELECT cancel_requested, job_type FROM jobs
             WHERE id = $1 AND completed_at IS NULL AND status = 'RUNNING' AND runs = $2 AND attempts = $3
               AND worker_id = $4
             FOR UPDATE",
        )
        .bind(held.id)
        .bind(held.run)
        .bind(held.attempt)
        .bind(worker_id)
        .fetch_optional(&mut *tx)
        .await?;
        let job_type = match parent {
            None => return Ok(Spawned::Stale),
            Some((true, _)) => return Ok(Spawned::CancelRequested),
            Some((false, job_type)) => job_type,
        };
        sqlx::query(
            "INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at, finished_at,
                                         duration_ms)
             VALUES ($1, $7, $2, $3, $4, 'COMPLETED', $5, $6, conveyor_duration_ms($5, $6))
             ON CONFLICT (job_id, run, attempt) DO NOTHING",
        )
        .bind(held.id)
        .bind(held.run)
        .bind(held.attempt)
        .bind(worker_id)
        .bind(started_at)
        .bind(finished_at)
        .bind(&job_type)
        .execute(&mut *tx)
        .await?;
        // The tally counts the children written (a child whose idempotency key is
        // taken is not one); none at all completes the parent at once.
        let inserted = insert_many(&mut tx, children, outbox).await?;
        sqlx::query(
            "UPDATE jobs SET lease_expires_at = NULL, worker_id = NULL, error = NULL,
                             result = jsonb_build_object('total', $2::int, 'completed', 0, 'failed', 0, 'cancelled', 0),
                             progress = CASE WHEN $2 = 0 THEN 100 ELSE 0 END,
                             progress_message = '0 of ' || $2 || ' children finished',
                             status = CASE WHEN $2 = 0 THEN 'COMPLETED' ELSE 'RUNNING' END,
                             completed_at = CASE WHEN $2 = 0 THEN now() END
             WHERE id = $1 AND completed_at IS NULL",
        )
        .bind(held.id)
        .bind(inserted.len() as i32)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Spawned::Children(inserted))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{json, Value};
    use sqlx::PgPool;
    use uuid::Uuid;

    use super::*;
    use crate::store::{CancelOutcome, ClaimedJob, FinalState, FinishedAttempt};

    const WORKER: &str = "test-worker";

    async fn waiting_job(store: &Store, parent: Option<Uuid>) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at, parent_id)
             VALUES ($1, 'diagnostics', 'NOOP', 'PENDING', '{}', 1, now(), $2)",
        )
        .bind(id)
        .bind(parent)
        .execute(store.pool())
        .await
        .unwrap();
        id
    }

    async fn claim(store: &Store, id: Uuid) -> ClaimedJob {
        let mut claimed = store
            .claim(&[id], WORKER, Duration::from_secs(30))
            .await
            .unwrap();
        claimed.pop().expect("claimed")
    }

    fn held(job: &ClaimedJob) -> HeldAttempt {
        HeldAttempt {
            id: job.id,
            run: job.runs,
            attempt: job.attempts,
        }
    }

    fn child(parent: Uuid) -> InsertedJob {
        InsertedJob {
            id: Uuid::now_v7(),
            queue: "diagnostics".into(),
            job_type: "NOOP".into(),
            payload: json!({}),
            max_attempts: 1,
            priority: 5,
            parent_id: Some(parent),
            idempotency_key: None,
            run_at: None,
            timeout_ms: None,
            backoff: None,
        }
    }

    /// A claimed parent whose attempt recorded `n` children; returns their ids.
    async fn batch(store: &Store, n: usize) -> (Uuid, Vec<Uuid>) {
        let parent = waiting_job(store, None).await;
        let attempt = claim(store, parent).await;
        let children: Vec<InsertedJob> = (0..n).map(|_| child(parent)).collect();
        let now = chrono::Utc::now();
        let spawned = store
            .spawn_children(
                held(&attempt),
                WORKER,
                now,
                now,
                &children,
                OutboxEntry::pushed_by_writer(),
            )
            .await
            .unwrap();
        assert!(matches!(spawned, Spawned::Children(ref c) if c.len() == n));
        (parent, children.iter().map(|c| c.id).collect())
    }

    async fn finish(store: &Store, id: Uuid, state: FinalState) {
        let job = claim(store, id).await;
        let now = chrono::Utc::now();
        let attempt = FinishedAttempt {
            id,
            run: job.runs,
            attempt: job.attempts,
            worker_id: WORKER.into(),
            started_at: now,
            finished_at: now,
            state,
        };
        let written = store.finish(&[attempt], Uuid::new_v4()).await.unwrap();
        assert_eq!(written.len(), 1);
    }

    async fn record(store: &Store, id: Uuid) -> (String, Option<Value>, i16, Option<String>) {
        sqlx::query_as(
            "SELECT status, result, progress, lease_expires_at::text FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
    }

    fn tally(total: i32, completed: i32, failed: i32, cancelled: i32) -> Option<Value> {
        Some(
            json!({"total": total, "completed": completed, "failed": failed, "cancelled": cancelled}),
        )
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn the_last_terminal_child_completes_the_parent_with_the_tally(pool: PgPool) {
        let store = Store::new(pool);
        let (parent, children) = batch(&store, 3).await;
        assert_eq!(
            record(&store, parent).await,
            ("RUNNING".into(), tally(3, 0, 0, 0), 0, None),
            "waits without a lease"
        );
        finish(&store, children[0], FinalState::Completed(json!({}))).await;
        finish(&store, children[1], FinalState::Failed("boom".into())).await;
        assert_eq!(
            record(&store, parent).await,
            ("RUNNING".into(), tally(3, 1, 1, 0), 66, None)
        );
        finish(&store, children[2], FinalState::Completed(json!({}))).await;
        assert_eq!(
            record(&store, parent).await,
            ("COMPLETED".into(), tally(3, 2, 1, 0), 100, None)
        );
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn a_stale_attempt_records_no_children(pool: PgPool) {
        let store = Store::new(pool);
        let parent = waiting_job(&store, None).await;
        let attempt = claim(&store, parent).await;
        let stale = HeldAttempt {
            attempt: attempt.attempts + 1,
            ..held(&attempt)
        };
        let now = chrono::Utc::now();
        let spawned = store
            .spawn_children(
                stale,
                WORKER,
                now,
                now,
                &[child(parent)],
                OutboxEntry::pushed_by_writer(),
            )
            .await
            .unwrap();
        assert!(matches!(spawned, Spawned::Stale));
        let children: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE parent_id = $1")
            .bind(parent)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(children, 0);
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn cancelling_a_parent_cancels_its_waiting_children_and_ends_it_cancelled(pool: PgPool) {
        let store = Store::new(pool);
        let (parent, children) = batch(&store, 4).await;
        finish(&store, children[0], FinalState::Completed(json!({}))).await;
        let running = claim(&store, children[1]).await;

        assert_eq!(
            store.cancel_or_delete(parent).await.unwrap(),
            CancelOutcome::Requested
        );
        for waiting in &children[2..] {
            assert_eq!(record(&store, *waiting).await.0, "CANCELLED");
        }
        assert_eq!(
            record(&store, parent).await,
            ("RUNNING".into(), tally(4, 1, 0, 2), 75, None),
            "the running child is still counted as running"
        );

        let now = chrono::Utc::now();
        let attempt = FinishedAttempt {
            id: running.id,
            run: running.runs,
            attempt: running.attempts,
            worker_id: WORKER.into(),
            started_at: now,
            finished_at: now,
            state: FinalState::Completed(json!({})),
        };
        store.finish(&[attempt], Uuid::new_v4()).await.unwrap();
        assert_eq!(
            record(&store, parent).await,
            ("CANCELLED".into(), tally(4, 2, 0, 2), 100, None)
        );
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn an_admin_retry_of_a_failed_child_takes_it_out_of_the_tally(pool: PgPool) {
        let store = Store::new(pool);
        let (parent, children) = batch(&store, 2).await;
        finish(&store, children[0], FinalState::Failed("boom".into())).await;
        assert_eq!(record(&store, parent).await.1, tally(2, 0, 1, 0));
        store.retry_job(children[0]).await.unwrap();
        assert_eq!(record(&store, parent).await.1, tally(2, 0, 0, 0));
        finish(&store, children[0], FinalState::Completed(json!({}))).await;
        finish(&store, children[1], FinalState::Completed(json!({}))).await;
        assert_eq!(
            record(&store, parent).await,
            ("COMPLETED".into(), tally(2, 2, 0, 0), 100, None)
        );
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn children_finishing_in_concurrent_transactions_are_each_counted_once(pool: PgPool) {
        let store = Store::new(pool);
        let (parent, children) = batch(&store, 200).await;
        let claimed: Vec<ClaimedJob> = store
            .claim(&children, WORKER, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 200);
        // 20 writers of 10 completions each, all at once.
        let writers = claimed.chunks(10).map(|chunk| {
            let store = store.clone();
            let batch: Vec<FinishedAttempt> = chunk
                .iter()
                .map(|job| FinishedAttempt {
                    id: job.id,
                    run: job.runs,
                    attempt: job.attempts,
                    worker_id: WORKER.into(),
                    started_at: job.started_at,
                    finished_at: chrono::Utc::now(),
                    state: FinalState::Completed(json!({})),
                })
                .collect();
            tokio::spawn(async move { store.finish(&batch, Uuid::new_v4()).await })
        });
        for writer in futures::future::join_all(writers).await {
            assert_eq!(writer.unwrap().unwrap().len(), 10);
        }
        assert_eq!(
            record(&store, parent).await,
            ("COMPLETED".into(), tally(200, 200, 0, 0), 100, None)
        );
    }
}
