//! The queue routes in-process: `GET /api/admin/jobs/queue/{name}/stats`, `GET
//! /api/admin/queues`, pause and resume (the flag in PostgreSQL and Redis), and
//! `POST …/clean` (the oldest finished records past the grace, up to a limit);
//! unknown queues, bad bodies and viewer tokens are refused and change nothing.

use axum::http::{Method, StatusCode};
use conveyor_tests::http::{TestApi, ADMIN, VIEWER};
use conveyor_tests::TestEnv;
use queue_core::job::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";

async fn enqueue(env: &TestEnv, job_type: &str, payload: Value) -> Uuid {
    env.enqueue(NewJob::new(Q, job_type, payload)).await
}

// ---------------------------------------------------------------------------------
// Queues: stats, list, pause / resume, clean
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn queue_stats_count_each_state_of_that_queue_only(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let wanted = [
        (JobStatus::Pending, 2),
        (JobStatus::Delayed, 1),
        (JobStatus::Running, 1),
        (JobStatus::Retrying, 2),
        (JobStatus::Completed, 3),
        (JobStatus::Failed, 1),
        (JobStatus::Cancelled, 4),
    ];
    for (status, n) in wanted {
        for _ in 0..n {
            let id = enqueue(&env, "NOOP", json!({})).await;
            env.set_status(id, status).await;
        }
    }
    env.insert_job("author_data", "COMPLETED", 0).await;
    env.insert_job("author_data", "PENDING", 0).await;

    let reply = api.get("/api/admin/jobs/queue/diagnostics/stats").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({
            "queue": "diagnostics", "paused": false, "waiting": 2, "active": 1, "delayed": 1,
            "retrying": 2, "completed": 3, "failed": 1, "cancelled": 4
        })
    );
    let other = api.get("/api/admin/jobs/queue/author_data/stats").await;
    assert_eq!(other.body["waiting"], 1);
    assert_eq!(other.body["completed"], 1);
    assert_eq!(other.body["failed"], 0);
    // Viewers may read stats.
    let viewer = api
        .send(
            Method::GET,
            "/api/admin/jobs/queue/diagnostics/stats",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(viewer.status, StatusCode::OK);
}

#[sqlx::test]
async fn queues_lists_the_stats_of_every_configured_queue(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    enqueue(&env, "NOOP", json!({})).await;
    let failed = enqueue(&env, "NOOP", json!({})).await;
    env.set_status(failed, JobStatus::Failed).await;
    env.insert_job("book_data", "COMPLETED", 0).await;
    // A record of a queue the configuration no longer has is not listed.
    env.insert_job("retired_queue", "COMPLETED", 0).await;
    let paused = api
        .post_empty("/api/admin/jobs/queue/quote_data/pause")
        .await;
    assert_eq!(paused.status, StatusCode::OK);

    let reply = api.get("/api/admin/queues").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let queues = reply.body.as_array().expect("an array");
    let names: Vec<&str> = queues
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    let configured: Vec<&str> = env.config.queues.keys().map(String::as_str).collect();
    assert_eq!(names, configured);
    assert_eq!(
        names,
        [
            "author_data",
            "batch_orchestrator",
            "book_data",
            "diagnostics",
            "quote_data"
        ]
    );
    let by_name = |n: &str| queues.iter().find(|q| q["queue"] == n).unwrap().clone();
    assert_eq!(
        by_name("diagnostics"),
        json!({
            "queue": "diagnostics", "paused": false, "waiting": 1, "active": 0, "delayed": 0,
            "retrying": 0, "completed": 0, "failed": 1, "cancelled": 0
        })
    );
    assert_eq!(by_name("book_data")["completed"], 1);
    assert_eq!(by_name("quote_data")["paused"], true);
    assert_eq!(by_name("author_data")["paused"], false);

    let bad = api.get("/api/admin/queues?verbose=1").await;
    bad.assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["verbose"]);
}

#[sqlx::test]
async fn queue_stats_of_an_unknown_queue_is_400_listing_the_valid_queues(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let reply = api.get("/api/admin/jobs/queue/nope/stats").await;
    reply.assert_error_naming(
        StatusCode::BAD_REQUEST,
        "unknown_queue",
        &[
            "nope",
            "author_data",
            "batch_orchestrator",
            "book_data",
            "diagnostics",
            "quote_data",
        ],
    );
    let query = api
        .get("/api/admin/jobs/queue/diagnostics/stats?status=FAILED")
        .await;
    query.assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["status"]);
}

/// The diagnostics queue's paused flag in PostgreSQL (None: no row) and whether
/// its paused key exists in Redis (1 or 0).
async fn paused_flags(env: &TestEnv) -> (Option<bool>, i64) {
    let row: Option<bool> =
        sqlx::query_scalar("SELECT paused FROM queue_state WHERE queue_name = 'diagnostics'")
            .fetch_optional(&env.pool)
            .await
            .unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(env.conveyor.broker().keys(Q).paused)
        .query_async(&mut env.redis().await)
        .await
        .unwrap();
    (row, exists)
}

#[sqlx::test]
async fn pause_and_resume_set_the_flag_in_postgres_and_redis(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let reply = api
        .post_empty("/api/admin/jobs/queue/diagnostics/pause")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"queue": "diagnostics", "paused": true}));
    assert_eq!(paused_flags(&env).await, (Some(true), 1));
    let stats = api.get("/api/admin/jobs/queue/diagnostics/stats").await;
    assert_eq!(stats.body["paused"], true);
    // Pausing twice is fine.
    let again = api
        .post_empty("/api/admin/jobs/queue/diagnostics/pause")
        .await;
    assert_eq!(again.body, json!({"queue": "diagnostics", "paused": true}));

    let reply = api
        .post_empty("/api/admin/jobs/queue/diagnostics/resume")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"queue": "diagnostics", "paused": false}));
    assert_eq!(paused_flags(&env).await, (Some(false), 0));
    let stats = api.get("/api/admin/jobs/queue/diagnostics/stats").await;
    assert_eq!(stats.body["paused"], false);
}

#[sqlx::test]
async fn pause_and_resume_of_an_unknown_queue_are_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    for action in ["pause", "resume"] {
        let reply = api
            .post_empty(&format!("/api/admin/jobs/queue/nope/{action}"))
            .await;
        reply.assert_error_naming(
            StatusCode::BAD_REQUEST,
            "unknown_queue",
            &["nope", "diagnostics"],
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_state")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test]
async fn pause_with_a_viewer_token_is_403(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let reply = api
        .send(
            Method::POST,
            "/api/admin/jobs/queue/diagnostics/pause",
            Some(VIEWER),
            None,
        )
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let stats = api.get("/api/admin/jobs/queue/diagnostics/stats").await;
    assert_eq!(stats.body["paused"], false);
}

/// A finished diagnostics job that completed `secs` seconds ago.
async fn finished(env: &TestEnv, status: JobStatus, secs: i64) -> Uuid {
    let id = enqueue(env, "NOOP", json!({})).await;
    sqlx::query(
        "UPDATE jobs SET status = $2, completed_at = now() - make_interval(secs => $3) WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(secs as f64)
    .execute(&env.pool)
    .await
    .unwrap();
    id
}

#[sqlx::test]
async fn clean_removes_the_oldest_records_finished_before_the_grace_up_to_limit(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let c10 = finished(&env, JobStatus::Completed, 600).await;
    let c30 = finished(&env, JobStatus::Completed, 1_800).await;
    let c20 = finished(&env, JobStatus::Completed, 1_200).await;
    let fresh = finished(&env, JobStatus::Completed, 1).await;
    let failed = finished(&env, JobStatus::Failed, 3_600).await;
    let cancelled = finished(&env, JobStatus::Cancelled, 3_600).await;
    let pending = enqueue(&env, "NOOP", json!({})).await;
    let foreign = env.insert_job("author_data", "COMPLETED", 3_600).await;
    let path = "/api/admin/jobs/queue/diagnostics/clean";
    let body =
        |status: &str, limit: i64| json!({"status": status, "graceMs": 60_000, "limit": limit});

    let reply = api.post(path, body("COMPLETED", 2)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"removed": 2}));
    assert_eq!(env.status_of(c30).await, None);
    assert_eq!(env.status_of(c20).await, None);
    assert!(env.status_of(c10).await.is_some());

    let reply = api.post(path, body("COMPLETED", 10)).await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(env.status_of(c10).await, None);
    // Within the grace: kept.
    assert!(env.status_of(fresh).await.is_some());
    let reply = api.post(path, body("COMPLETED", 10)).await;
    assert_eq!(reply.body, json!({"removed": 0}));

    let reply = api.post(path, body("FAILED", 10)).await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(env.status_of(failed).await, None);
    let reply = api.post(path, body("CANCELLED", 10)).await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(env.status_of(cancelled).await, None);

    // A zero grace takes the fresh one too; other states and queues are untouched.
    let reply = api
        .post(
            path,
            json!({"status": "COMPLETED", "graceMs": 0, "limit": 10}),
        )
        .await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(env.status_of(pending).await.as_deref(), Some("PENDING"));
    assert_eq!(env.status_of(foreign).await.as_deref(), Some("COMPLETED"));
}

#[sqlx::test]
async fn clean_of_a_non_terminal_status_is_400_listing_the_valid_ones(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let done = finished(&env, JobStatus::Completed, 3_600).await;
    for status in ["PENDING", "RUNNING", "completed", "DONE"] {
        let reply = api
            .post(
                "/api/admin/jobs/queue/diagnostics/clean",
                json!({"status": status, "graceMs": 0, "limit": 10}),
            )
            .await;
        reply.assert_error_naming(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            &["status", status, "COMPLETED, FAILED, CANCELLED"],
        );
    }
    assert!(env.status_of(done).await.is_some());
}

#[sqlx::test]
async fn clean_with_a_bad_body_or_queue_is_400_naming_the_field(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let done = finished(&env, JobStatus::Completed, 3_600).await;
    let path = "/api/admin/jobs/queue/diagnostics/clean";
    let cases: Vec<(Value, &str, &[&str])> = vec![
        (
            json!({"status": "COMPLETED", "graceMs": 0, "limit": 10, "force": true}),
            "invalid_field",
            &["force"],
        ),
        (
            json!({"status": "COMPLETED", "graceMs": 0}),
            "invalid_body",
            &["limit"],
        ),
        (
            json!({"graceMs": 0, "limit": 1}),
            "invalid_body",
            &["status"],
        ),
        (
            json!({"status": "COMPLETED", "graceMs": 0, "limit": 0}),
            "invalid_field",
            &["limit", "between 1 and 10000"],
        ),
        (
            json!({"status": "COMPLETED", "graceMs": 0, "limit": 10_001}),
            "invalid_field",
            &["limit"],
        ),
        (
            json!({"status": "COMPLETED", "graceMs": -1, "limit": 1}),
            "invalid_field",
            &["graceMs"],
        ),
        (
            json!({"status": "COMPLETED", "graceMs": u64::MAX, "limit": 1}),
            "invalid_field",
            &["graceMs", "at most"],
        ),
        (
            json!({"status": "COMPLETED", "graceMs": "soon", "limit": 1}),
            "invalid_field",
            &["graceMs"],
        ),
        (
            json!({"status": 3, "graceMs": 0, "limit": 1}),
            "invalid_field",
            &["status"],
        ),
    ];
    for (body, code, mentions) in cases {
        let reply = api.post(path, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {reply:?}");
        reply.assert_error_naming(StatusCode::BAD_REQUEST, code, mentions);
    }
    let not_json = api
        .send_raw(Method::POST, path, Some(ADMIN), Some(b"{status".to_vec()))
        .await;
    not_json.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    let unknown = api
        .post(
            "/api/admin/jobs/queue/nope/clean",
            json!({"status": "COMPLETED", "graceMs": 0, "limit": 10}),
        )
        .await;
    unknown.assert_error_naming(
        StatusCode::BAD_REQUEST,
        "unknown_queue",
        &["nope", "diagnostics"],
    );
    assert!(env.status_of(done).await.is_some());
}
