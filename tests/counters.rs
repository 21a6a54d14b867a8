//! The trigger-kept job counters and activity buckets (migration
//! `20261124000001_job_counts.sql`) stay exact through every writer: enqueues,
//! worker claims and finishes, retries, cancels, deletes, clean and retention,
//! before and after compaction; the list totals and stats routes report them.

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use conveyor_tests::http::TestApi;
use conveyor_tests::TestEnv;
use queue_core::job::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

fn job(job_type: &str, payload: Value) -> NewJob {
    NewJob::new(Q, job_type, payload)
}

type Counts = Vec<(String, String, String, i64)>;

/// What the counters say (compacted rows plus pending deltas, zero groups left out)
/// and the truth, `count(*)`, read in one snapshot: a worker may be running.
async fn snapshot(env: &TestEnv) -> (Counts, Counts) {
    let mut tx = env.pool.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .unwrap();
    let counted = sqlx::query_as(
        "SELECT queue_name, job_type, status, sum(n)::bigint FROM (
            SELECT queue_name, job_type, status, n FROM job_counts
            UNION ALL
            SELECT queue_name, job_type, status, n FROM job_count_deltas
         ) c
         GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let actual = sqlx::query_as(
        "SELECT queue_name, job_type, status, count(*) FROM jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (counted, actual)
}

/// Counters equal `count(*)` before and after a compaction; after it no delta is
/// left (unless a writer ran meanwhile) and no compacted row is zero.
async fn assert_exact(env: &TestEnv, when: &str) {
    let (counted, actual) = snapshot(env).await;
    assert_eq!(counted, actual, "{when}: before compaction");
    env.conveyor
        .store()
        .compact_counters()
        .await
        .unwrap()
        .expect("nobody else compacts in this test");
    let (counted, actual) = snapshot(env).await;
    assert_eq!(counted, actual, "{when}: after compaction");
    let zeros: i64 = sqlx::query_scalar("SELECT count(*) FROM job_counts WHERE n = 0")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(zeros, 0, "{when}");
}

async fn count_where(env: &TestEnv, filter: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM jobs WHERE {filter}"))
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

/// Every list total and stats figure the API reports equals `count(*)`.
async fn assert_routes_agree(env: &TestEnv, api: &TestApi) {
    let total = |body: &Value| body["total"].as_i64().unwrap();
    let all = api.get("/api/admin/jobs").await;
    let body = all.ok(StatusCode::OK);
    assert_eq!(total(body), count_where(env, "true").await);
    for s in JobStatus::ALL {
        let s = s.as_str();
        let body = api.get(&format!("/api/admin/jobs?status={s}")).await.body;
        assert_eq!(
            total(&body),
            count_where(env, &format!("status = '{s}'")).await,
            "{s}"
        );
        let path = format!("/api/admin/jobs?queue={Q}&status={s}&jobType=FAIL");
        let body = api.get(&path).await.body;
        let filter = format!("queue_name = '{Q}' AND status = '{s}' AND job_type = 'FAIL'");
        assert_eq!(total(&body), count_where(env, &filter).await, "{path}");
    }
    for t in ["ECHO", "FAIL", "NOOP", "SLEEP"] {
        let body = api.get(&format!("/api/admin/jobs?jobType={t}")).await.body;
        assert_eq!(
            total(&body),
            count_where(env, &format!("job_type = '{t}'")).await,
            "{t}"
        );
    }
    let body = api.get(&format!("/api/admin/jobs?queue={Q}")).await.body;
    assert_eq!(
        total(&body),
        count_where(env, &format!("queue_name = '{Q}'")).await
    );

    let stats = api.get(&format!("/api/admin/jobs/queue/{Q}/stats")).await;
    let stats = stats.ok(StatusCode::OK);
    for (field, s) in [
        ("waiting", "PENDING"),
        ("active", "RUNNING"),
        ("delayed", "DELAYED"),
        ("retrying", "RETRYING"),
        ("completed", "COMPLETED"),
        ("failed", "FAILED"),
        ("cancelled", "CANCELLED"),
    ] {
        let want = count_where(env, &format!("queue_name = '{Q}' AND status = '{s}'")).await;
        assert_eq!(stats[field].as_i64().unwrap(), want, "{field}: {stats}");
    }
    let queues = api.get("/api/admin/queues").await.body;
    let diag = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == Q)
        .unwrap();
    assert_eq!(diag, stats);
    let summary = api.get("/api/admin/metrics/summary").await.body;
    assert_eq!(
        summary["totalJobs"].as_i64().unwrap(),
        count_where(env, "true").await
    );
    assert_eq!(
        summary["completedJobs"].as_i64().unwrap(),
        count_where(env, "status = 'COMPLETED'").await
    );
    assert_eq!(
        summary["failedJobs"].as_i64().unwrap(),
        count_where(env, "status = 'FAILED'").await
    );
}

#[sqlx::test]
async fn counters_stay_exact_through_every_writer(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    assert_exact(&env, "empty").await;

    // Enqueue: single, bulk, delayed, an idempotent duplicate (no second record),
    // through the library and the API.
    let c = &env.conveyor;
    c.enqueue(job("ECHO", json!({"n": 1}))).await.unwrap();
    c.enqueue(job("ECHO", json!({"n": 2})).idempotency_key("k"))
        .await
        .unwrap();
    c.enqueue(job("ECHO", json!({"n": 3})).idempotency_key("k"))
        .await
        .unwrap();
    c.enqueue_many((0..40).map(|_| job("NOOP", json!({}))).collect())
        .await
        .unwrap();
    let later = Utc::now() + chrono::Duration::hours(1);
    let mut delayed = Vec::new();
    for _ in 0..4 {
        delayed.push(
            c.enqueue(job("ECHO", json!({})).run_at(later))
                .await
                .unwrap()
                .job
                .id,
        );
    }
    let bulk = api
        .post(
            "/api/admin/jobs/bulk",
            json!({"jobs": [
            {"queueName": Q, "jobType": "NOOP", "payload": {}},
            {"queueName": Q, "jobType": "FAIL", "payload": {"failTimes": 1}, "maxAttempts": 3,
             "backoff": {"type": "fixed", "delayMs": 20}},
            {"queueName": Q, "jobType": "FAIL", "payload": {"message": "boom", "retryable": false}},
            {"queueName": Q, "jobType": "FAIL", "payload": {"message": "again"}, "maxAttempts": 2,
             "backoff": {"type": "fixed", "delayMs": 20}}
            ]}),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{bulk:?}");
    let running = c
        .enqueue(job("SLEEP", json!({"ms": 60_000})))
        .await
        .unwrap()
        .job
        .id;
    assert_exact(&env, "after the enqueues").await;
    assert_routes_agree(&env, &api).await;

    // A worker claims, completes, retries and fails them.
    let worker = env.worker(&[Q], Some(8));
    env.wait_count(JobStatus::Completed, 44, LONG).await;
    env.wait_count(JobStatus::Failed, 2, LONG).await;
    env.wait_status(running, JobStatus::Running, LONG).await;
    assert_exact(&env, "after the worker's claims and finishes").await;
    assert_routes_agree(&env, &api).await;

    // Cancel a running job (202, then CANCELLED), a delayed one (200), delete a
    // finished record (204).
    let cancelled = api.delete(&format!("/api/admin/jobs/{running}")).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED);
    env.wait_status(running, JobStatus::Cancelled, LONG).await;
    let cancelled = api.delete(&format!("/api/admin/jobs/{}", delayed[0])).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let deleted = api.delete(&format!("/api/admin/jobs/{}", delayed[0])).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_exact(&env, "after cancels and a delete").await;

    // Retry the failed ones: they run again and fail again.
    let failed: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs WHERE status = 'FAILED'")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    for id in &failed {
        c.retry(*id).await.unwrap();
    }
    assert_exact(&env, "after retries").await;
    env.wait_count(JobStatus::Failed, 2, LONG).await;
    worker.stop().await;
    assert_exact(&env, "after the second runs").await;

    // Clean (the API) and retention (the scheduler's store call).
    let cleaned = api
        .post(
            &format!("/api/admin/jobs/queue/{Q}/clean"),
            json!({"status": "COMPLETED", "graceMs": 0, "limit": 10}),
        )
        .await;
    assert_eq!(
        (cleaned.status, cleaned.body["removed"].as_u64()),
        (StatusCode::OK, Some(10))
    );
    assert_exact(&env, "after clean").await;
    let pruned = c
        .store()
        .prune_finished(Q, JobStatus::Completed, 0, 5)
        .await
        .unwrap();
    assert_eq!(pruned, 29);
    assert_exact(&env, "after retention").await;
    assert_routes_agree(&env, &api).await;

    // Plain SQL writers are counted too, and a TRUNCATE empties the counters.
    sqlx::query("UPDATE jobs SET status = 'PENDING', run_at = now() WHERE status = 'DELAYED'")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_exact(&env, "after a manual update").await;
    sqlx::query("TRUNCATE jobs CASCADE")
        .execute(&env.pool)
        .await
        .unwrap();
    assert_exact(&env, "after truncate").await;
    assert!(snapshot(&env).await.0.is_empty());
}

#[sqlx::test]
async fn concurrent_writers_and_compactions_stay_exact(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let c = env.conveyor.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let ids = c
                    .enqueue_many((0..25).map(|_| job("NOOP", json!({}))).collect())
                    .await
                    .unwrap();
                let status = ["COMPLETED", "FAILED", "CANCELLED", "RUNNING"][(w + i) % 4];
                sqlx::query("UPDATE jobs SET status = $1, completed_at = now() WHERE id = ANY($2)")
                    .bind(status)
                    .bind(&ids[..10])
                    .execute(c.store().pool())
                    .await
                    .unwrap();
                sqlx::query("DELETE FROM jobs WHERE id = ANY($1)")
                    .bind(&ids[10..15])
                    .execute(c.store().pool())
                    .await
                    .unwrap();
            }
        }));
    }
    // Two compactors at once, as the API and the scheduler run them.
    for _ in 0..2 {
        let store = env.conveyor.store().clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                store.compact_counters().await.unwrap();
                // Spreads the compactions over the writers' run.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_exact(&env, "after the concurrent run").await;
    assert_eq!(count_where(&env, "true").await, 4 * 20 * 20);
}

#[sqlx::test]
async fn activity_buckets_answer_the_time_windows_before_and_after_compaction(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let store = env.conveyor.store();
    let ids = env
        .conveyor
        .enqueue_many((0..12).map(|_| job("ECHO", json!({}))).collect())
        .await
        .unwrap();
    // Attempts: 2 in the last minute, 1 ten minutes ago, 1 five hours ago, 1 older
    // than a day (never counted), plus failed attempts (not in the averages).
    env.record_attempt(ids[0], 1, "COMPLETED", 100, None, 5.0)
        .await;
    env.record_attempt(ids[1], 1, "COMPLETED", 300, None, 20.0)
        .await;
    env.record_attempt(ids[2], 1, "COMPLETED", 500, None, 600.0)
        .await;
    env.record_attempt(ids[3], 1, "COMPLETED", 1_100, None, 5.0 * 3_600.0)
        .await;
    env.record_attempt(ids[4], 1, "COMPLETED", 99_000, None, 26.0 * 3_600.0)
        .await;
    env.record_attempt(ids[5], 1, "FAILED", 77_000, None, 5.0)
        .await;
    // Jobs FAILED for good: 3 within the hour, 1 two hours ago.
    sqlx::query(
        "UPDATE jobs SET status = 'FAILED', completed_at = now() - make_interval(secs => s)
         FROM unnest($1::uuid[], $2::float8[]) AS f(id, s) WHERE jobs.id = f.id",
    )
    .bind(&ids[6..10])
    .bind(&[10.0, 300.0, 3_000.0, 7_200.0][..])
    .execute(&env.pool)
    .await
    .unwrap();

    for round in ["deltas only", "compacted", "compacted twice"] {
        assert_eq!(store.completed_within(60).await.unwrap(), 2, "{round}");
        assert_eq!(store.completed_within(3_600).await.unwrap(), 3, "{round}");
        assert_eq!(
            store.completed_within(24 * 3_600).await.unwrap(),
            4,
            "{round}"
        );
        assert_eq!(
            store.average_completed_ms(24 * 3_600).await.unwrap(),
            Some(500.0),
            "{round}"
        );
        assert_eq!(store.failed_within(3_600).await.unwrap(), 3, "{round}");
        assert_eq!(store.failed_within(24 * 3_600).await.unwrap(), 4, "{round}");
        store.compact_counters().await.unwrap();
    }
    // Compacted: one-second buckets for the last two minutes, one-minute buckets
    // before, nothing older than 25 hours, no deltas left.
    let rows: Vec<(String, bool, i64)> = sqlx::query_as(
        "SELECT kind, bucket = date_trunc('minute', bucket), n FROM job_activity ORDER BY kind, bucket",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let minute_buckets = rows.iter().filter(|(_, minute, _)| *minute).count();
    assert!(minute_buckets >= 4, "{rows:?}");
    assert_eq!(rows.iter().map(|r| r.2).sum::<i64>(), 8, "{rows:?}");
    let deltas: i64 = sqlx::query_scalar("SELECT count(*) FROM job_activity_deltas")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(deltas, 0);

    // A retried FAILED job and a deleted one leave the failure window; a retry
    // that fails again comes back in.
    env.conveyor.retry(ids[6]).await.unwrap();
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(ids[7])
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(store.failed_within(3_600).await.unwrap(), 1);
    sqlx::query("UPDATE jobs SET status = 'FAILED', completed_at = now() WHERE id = $1")
        .bind(ids[6])
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(store.failed_within(3_600).await.unwrap(), 2);
    store.compact_counters().await.unwrap();
    assert_eq!(store.failed_within(3_600).await.unwrap(), 2);
    assert_eq!(store.completed_within(60).await.unwrap(), 2);
}

#[sqlx::test]
async fn one_second_buckets_roll_into_minutes_after_two_minutes(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let store = env.conveyor.store();
    // Compacted second buckets as an earlier compaction left them, now 3 minutes
    // old, and one older than 25 hours.
    sqlx::query(
        "INSERT INTO job_activity (kind, bucket, n, total_ms) VALUES
           ('completed', date_trunc('minute', now()) - interval '3 minutes' + interval '7 seconds', 2, 20),
           ('completed', date_trunc('minute', now()) - interval '3 minutes' + interval '9 seconds', 3, 40),
           ('completed', now() - interval '26 hours', 5, 50)",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    assert_eq!(store.completed_within(3_600).await.unwrap(), 5);
    store.compact_counters().await.unwrap();
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT n, total_ms FROM job_activity WHERE bucket = date_trunc('minute', now()) - interval '3 minutes'",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(rows, [(5, 60)]);
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM job_activity")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(all, 1);
    assert_eq!(store.completed_within(3_600).await.unwrap(), 5);
    assert_eq!(store.average_completed_ms(3_600).await.unwrap(), Some(12.0));
}

#[sqlx::test]
async fn errors_report_reads_only_the_most_recent_attempts(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let ids = env
        .conveyor
        .enqueue_many((0..2).map(|_| job("FAIL", json!({}))).collect())
        .await
        .unwrap();
    // An old error beyond the window, then a window's worth of newer ones.
    sqlx::query(
        "INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at, finished_at,
                                     duration_ms, error)
         VALUES ($1, 'FAIL', 1, 1, 'w', 'FAILED', now() - interval '2 days', now() - interval '2 days', 1, 'ancient')",
    )
    .bind(ids[0])
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at, finished_at,
                                     duration_ms, error)
         SELECT $1, 'FAIL', 1, a, 'w', CASE WHEN a % 2 = 0 THEN 'FAILED' ELSE 'LOST' END,
                now() - a * interval '1 second', now() - a * interval '1 second', 1, 'recent'
         FROM generate_series(1, $2::int) AS a",
    )
    .bind(ids[1])
    .bind(queue_core::store::ERROR_WINDOW as i32)
    .execute(&env.pool)
    .await
    .unwrap();
    let groups = env.conveyor.store().error_groups(50).await.unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].message, "recent");
    assert_eq!(groups[0].count, queue_core::store::ERROR_WINDOW);
}
