//! Migrating a database that an earlier schema filled: every record and every
//! attempt is still there and read once, the counters still add up, and the
//! engine goes on writing to it.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use queue_core::job::ExecutionStatus;
use queue_core::store::{FinalState, FinishedAttempt, Store, MIGRATOR};
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::PgPool;
use uuid::Uuid;

/// The last migration of the shape that logged a completed attempt as a row of its
/// own (later ones read it from the job's record).
const ATTEMPT_ROWS_FOR_COMPLETIONS: i64 = 20261207000004;

/// Applies the embedded migrations up to and including `version`.
async fn migrate_to(pool: &PgPool, version: i64) {
    let earlier = Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    earlier.run(pool).await.expect("earlier migrations apply");
}

/// A job record as the engine writes it, in `status` after `attempts` attempts.
async fn insert_job(pool: &PgPool, status: &str, attempts: i32, worker: Option<&str>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, attempts, max_attempts, run_at,
                           started_at, completed_at, worker_id, lease_expires_at)
         VALUES ($1, 'diagnostics', 'NOOP', $2, '{}', $3, 3, now() - interval '1 minute',
                 now() - interval '30 seconds',
                 CASE WHEN $2 IN ('COMPLETED', 'FAILED') THEN now() - interval '20 seconds' END,
                 $4, CASE WHEN $2 = 'RUNNING' THEN now() + interval '1 minute' END)",
    )
    .bind(id)
    .bind(status)
    .bind(attempts)
    .bind(worker)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// An attempt row as the earlier engine logged it, finished 20 s ago after 10 s.
async fn log_attempt(pool: &PgPool, id: Uuid, attempt: i32, status: &str) {
    sqlx::query(
        "INSERT INTO job_executions (job_id, run, attempt, worker_id, status, started_at, finished_at, duration_ms)
         VALUES ($1, 1, $2, 'w1', $3, now() - interval '30 seconds', now() - interval '20 seconds', 10000)",
    )
    .bind(id)
    .bind(attempt)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
}

/// Attempts of `id` as the whole log reads them: (attempt, status).
async fn attempts(store: &Store, id: Uuid) -> Vec<(i32, ExecutionStatus)> {
    store
        .executions(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.attempt, e.status))
        .collect()
}

#[sqlx::test(migrations = false)]
async fn attempts_logged_before_completions_were_read_from_the_record_are_read_once(pool: PgPool) {
    migrate_to(&pool, ATTEMPT_ROWS_FOR_COMPLETIONS).await;
    // What the earlier engine left: a job completed on its first attempt, one
    // completed on its second after a lost one, a failed one, and one running.
    let first = insert_job(&pool, "COMPLETED", 1, Some("w1")).await;
    log_attempt(&pool, first, 1, "COMPLETED").await;
    let second = insert_job(&pool, "COMPLETED", 2, Some("w1")).await;
    log_attempt(&pool, second, 1, "LOST").await;
    log_attempt(&pool, second, 2, "COMPLETED").await;
    let failed = insert_job(&pool, "FAILED", 1, Some("w1")).await;
    log_attempt(&pool, failed, 1, "FAILED").await;
    let running = insert_job(&pool, "RUNNING", 1, Some("w2")).await;

    MIGRATOR.run(&pool).await.expect("later migrations apply");
    let store = Store::new(pool.clone());

    assert_eq!(
        attempts(&store, first).await,
        vec![(1, ExecutionStatus::Completed)]
    );
    assert_eq!(
        attempts(&store, second).await,
        vec![(1, ExecutionStatus::Lost), (2, ExecutionStatus::Completed)]
    );
    assert_eq!(
        attempts(&store, failed).await,
        vec![(1, ExecutionStatus::Failed)]
    );
    assert_eq!(attempts(&store, running).await, vec![]);
    assert_eq!(store.completed_within(3_600).await.unwrap(), 2);

    // The attempt running across the migration completes into the new shape: its
    // record tells it, no row is logged for it, and it is counted. (A worker
    // reports the start its claim read from the record.)
    let started_at: DateTime<Utc> = sqlx::query_scalar("SELECT started_at FROM jobs WHERE id = $1")
        .bind(running)
        .fetch_one(&pool)
        .await
        .unwrap();
    let done = FinishedAttempt {
        id: running,
        run: 1,
        attempt: 1,
        worker_id: "w2".into(),
        started_at,
        finished_at: started_at + Duration::milliseconds(200),
        state: FinalState::Completed(json!({"ok": true})),
    };
    assert_eq!(
        store.finish(&[done], Uuid::new_v4()).await.unwrap().len(),
        1
    );
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM job_executions WHERE job_id = $1")
        .bind(running)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(logged, 0);
    let read = store.executions(running).await.unwrap();
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(
        (
            read[0].attempt,
            read[0].status,
            read[0].worker_id.as_str(),
            read[0].duration_ms
        ),
        (1, ExecutionStatus::Completed, "w2", 200)
    );
    assert_eq!(store.completed_within(3_600).await.unwrap(), 3);
    assert_eq!(
        store.average_completed_ms(3_600).await.unwrap(),
        Some((10_000.0 * 2.0 + 200.0) / 3.0)
    );
}
