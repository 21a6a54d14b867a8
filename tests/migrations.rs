//! Migrating a database that an earlier schema filled: every record and every
//! attempt is still there and read once, the counters still add up, and the
//! engine goes on writing to it.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use queue_core::job::{ExecutionStatus, JobStatus};
use queue_core::store::{FinalState, FinishedAttempt, Store, MIGRATOR};
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::PgPool;
use uuid::Uuid;

/// The last migration of the shape that logged a completed attempt as a row of its
/// own (later ones read it from the job's record).
const ATTEMPT_ROWS_FOR_COMPLETIONS: i64 = 20261207000004;

/// The last migration of the shape with every record in one table (later ones
/// keep waiting and running jobs apart from finished ones, by day of finish).
const ONE_JOBS_TABLE: i64 = 20261207000005;

/// The last migration whose attempt rows do not name their job's type.
const UNTYPED_ATTEMPTS: i64 = 20261207000006;

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

/// When the running attempt of `id` started (a worker reports the start its
/// claim read from the record).
async fn started_at(pool: &PgPool, id: Uuid) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT started_at FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Completes the first attempt of `id`, held by `worker`, as a worker's completer
/// does; returns how many records the write changed.
async fn complete_first_attempt(
    store: &Store,
    id: Uuid,
    worker: &str,
    finished_at: DateTime<Utc>,
) -> usize {
    let done = FinishedAttempt {
        id,
        run: 1,
        attempt: 1,
        worker_id: worker.into(),
        started_at: started_at(store.pool(), id).await,
        finished_at,
        state: FinalState::Completed(json!({"ok": true})),
    };
    store.finish(&[done], Uuid::new_v4()).await.unwrap().len()
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
    let started_at = started_at(&pool, running).await;
    assert_eq!(
        complete_first_attempt(
            &store,
            running,
            "w2",
            started_at + Duration::milliseconds(200)
        )
        .await,
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

/// A record of `status` in `queue` created and (when finished) finished
/// `days_ago` days ago, with `key` as its idempotency key and `parent` as its
/// batch parent.
async fn insert_record(
    pool: &PgPool,
    status: &str,
    days_ago: i64,
    key: Option<&str>,
    parent: Option<Uuid>,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, attempts, max_attempts, run_at,
                           created_at, started_at, completed_at, worker_id, lease_expires_at,
                           idempotency_key, parent_id)
         SELECT $1, 'diagnostics', 'NOOP', $2, jsonb_build_object('days', $3::int), 1, 3, t, t, t,
                CASE WHEN $2 IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN t + interval '1 second' END,
                CASE WHEN $2 <> 'PENDING' THEN 'w1' END,
                CASE WHEN $2 = 'RUNNING' THEN now() + interval '1 minute' END, $4, $5
         FROM (SELECT now() - make_interval(days => $3::int) AS t) s",
    )
    .bind(id)
    .bind(status)
    .bind(days_ago)
    .bind(key)
    .bind(parent)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Every record, whole, in id order.
async fn all_records(pool: &PgPool) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT to_jsonb(j) FROM jobs j ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The table holding record `id`.
async fn table_of(pool: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT tableoid::regclass::text FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn records_of_one_table_move_into_the_active_half_and_their_days_none_lost(pool: PgPool) {
    migrate_to(&pool, ONE_JOBS_TABLE).await;
    let parent = insert_record(&pool, "RUNNING", 0, None, None).await;
    let waiting = insert_record(&pool, "PENDING", 0, Some("waiting-key"), Some(parent)).await;
    let running = insert_record(&pool, "RUNNING", 0, None, None).await;
    let done_today = insert_record(&pool, "COMPLETED", 0, Some("done-key"), Some(parent)).await;
    let done_days_ago = insert_record(&pool, "COMPLETED", 10, None, None).await;
    let cancelled = insert_record(&pool, "CANCELLED", 2, None, None).await;
    // Older than the days the migration makes partitions for.
    let failed_long_ago = insert_record(&pool, "FAILED", 60, None, None).await;
    sqlx::query(
        "INSERT INTO job_executions (job_id, run, attempt, worker_id, status, started_at, finished_at, duration_ms)
         SELECT id, 1, 1, 'w1', 'FAILED', created_at, completed_at, 1000 FROM jobs WHERE status = 'FAILED'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let before = all_records(&pool).await;

    MIGRATOR.run(&pool).await.expect("later migrations apply");
    let store = Store::new(pool.clone());

    // Every record, column for column.
    assert_eq!(all_records(&pool).await, before);
    let today: String = sqlx::query_scalar("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')")
        .fetch_one(&pool)
        .await
        .unwrap();
    let ten_days_ago: String = sqlx::query_scalar(
        "SELECT to_char((now() - interval '10 days' + interval '1 second') AT TIME ZONE 'UTC', 'YYYYMMDD')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    for id in [parent, waiting, running] {
        assert_eq!(table_of(&pool, id).await, "jobs_active");
    }
    assert_eq!(
        table_of(&pool, done_today).await,
        format!("jobs_history_p{today}")
    );
    assert_eq!(
        table_of(&pool, done_days_ago).await,
        format!("jobs_history_p{ten_days_ago}")
    );
    assert_eq!(
        table_of(&pool, failed_long_ago).await,
        "jobs_history_default"
    );
    assert!(table_of(&pool, cancelled)
        .await
        .starts_with("jobs_history_p"));
    // The counters did not move: the same records.
    assert_eq!(store.counted_jobs(None, None, None).await.unwrap(), 7);
    assert_eq!(
        store
            .counted_jobs(None, Some(JobStatus::Completed), None)
            .await
            .unwrap(),
        2
    );
    // The keys are held by their records, and a deleted record releases its key.
    let keys: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT idempotency_key, job_id FROM job_idempotency_keys ORDER BY idempotency_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        keys,
        vec![
            ("done-key".into(), done_today),
            ("waiting-key".into(), waiting)
        ]
    );
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(done_today)
        .execute(&pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM job_idempotency_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1);
    assert_eq!(
        attempts(&store, failed_long_ago).await,
        vec![(1, ExecutionStatus::Failed)]
    );

    // The engine goes on: the running attempt completes into today's partition,
    // and a retry of the old failure brings it back to the active half.
    assert_eq!(
        complete_first_attempt(&store, running, "w1", Utc::now()).await,
        1
    );
    assert_eq!(
        table_of(&pool, running).await,
        format!("jobs_history_p{today}")
    );
    let retried = store
        .retry_failed("diagnostics", &[failed_long_ago])
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(table_of(&pool, failed_long_ago).await, "jobs_active");
    assert_eq!(
        store
            .counted_jobs(None, Some(JobStatus::Completed), None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .counted_jobs(None, Some(JobStatus::Pending), None)
            .await
            .unwrap(),
        2
    );
}

#[sqlx::test(migrations = false)]
async fn attempts_logged_before_name_their_jobs_type_and_the_error_report_groups_by_it(
    pool: PgPool,
) {
    migrate_to(&pool, UNTYPED_ATTEMPTS).await;
    let noop = insert_record(&pool, "FAILED", 0, None, None).await;
    let echo = insert_record(&pool, "RETRYING", 0, None, None).await;
    sqlx::query("UPDATE jobs SET job_type = 'ECHO' WHERE id = $1")
        .bind(echo)
        .execute(&pool)
        .await
        .unwrap();
    let gone = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO job_executions (job_id, run, attempt, worker_id, status, started_at, finished_at,
                                     duration_ms, error)
         VALUES ($1, 1, 1, 'w1', 'FAILED', now() - interval '3 minutes', now() - interval '3 minutes', 5, 'boom'),
                ($1, 1, 2, 'w1', 'FAILED', now() - interval '2 minutes', now() - interval '2 minutes', 5, 'boom'),
                ($2, 1, 1, 'w1', 'LOST', now() - interval '1 minute', now() - interval '1 minute', 5, 'lost'),
                ($3, 1, 1, 'w1', 'FAILED', now(), now(), 5, 'of a job no longer kept')",
    )
    .bind(noop)
    .bind(echo)
    .bind(gone)
    .execute(&pool)
    .await
    .unwrap();

    MIGRATOR.run(&pool).await.expect("later migrations apply");

    let typed: Vec<(Uuid, i32, String)> =
        sqlx::query_as("SELECT job_id, attempt, job_type FROM job_executions ORDER BY finished_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        typed,
        vec![
            (noop, 1, "NOOP".to_string()),
            (noop, 2, "NOOP".to_string()),
            (echo, 1, "ECHO".to_string()),
        ],
        "every attempt of a kept job names its type; the attempt of a job gone is dropped"
    );
    let report: Vec<(String, String, i64)> = Store::new(pool.clone())
        .error_groups(50)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.job_type, g.message, g.count))
        .collect();
    assert_eq!(
        report,
        vec![
            ("ECHO".to_string(), "lost".to_string(), 1),
            ("NOOP".to_string(), "boom".to_string(), 2),
        ]
    );
}
