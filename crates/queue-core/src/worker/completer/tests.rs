//! The completer against a real PostgreSQL and Redis.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;
use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::store::ClaimedJob;
use crate::store::{FinalState, FinishedAttempt, HeldAttempt, Store};
use crate::worker::running::Running;
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
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
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
            tx.send(msg.into()).unwrap();
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
        delay: Duration::ZERO,
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
