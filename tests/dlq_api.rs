//! The dead-letter routes in-process: `GET /api/admin/dlq/{queue}` lists the
//! entries a real worker wrote for failed jobs; `POST …/replay` retries every
//! (or the named) dead-lettered FAILED job of that queue and drops its entries;
//! bad limits, bodies, queues and viewer tokens are refused and change nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use conveyor_tests::http::{time_of, TestApi, ADMIN, VIEWER};
use conveyor_tests::{wait_for, TestEnv};
use queue_core::job::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

async fn enqueue(env: &TestEnv, job_type: &str, payload: Value) -> Uuid {
    env.enqueue(NewJob::new(Q, job_type, payload)).await
}

fn id_set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

/// Adds a dead letter the way the completer does; returns its entry id.
async fn add_dead_letter(env: &TestEnv, id: Uuid, error: &str) -> String {
    let mut redis = env.redis().await;
    redis::cmd("XADD")
        .arg(env.conveyor.broker().keys(Q).dlq)
        .arg("*")
        .arg("jobId")
        .arg(id.to_string())
        .arg("jobType")
        .arg("FAIL")
        .arg("error")
        .arg(error)
        .arg("attempts")
        .arg(3)
        .arg("failedAt")
        .arg("2026-01-02T03:04:05.678Z")
        .query_async(&mut redis)
        .await
        .unwrap()
}

/// Waits until the dead-letter stream holds `n` entries.
async fn wait_stream_len(env: &TestEnv, n: usize) {
    wait_for(LONG, || async move {
        let len = env.dead_letter_ids(Q).await.len();
        if len == n {
            Ok(())
        } else {
            Err(format!("the dead-letter stream holds {len}, expected {n}"))
        }
    })
    .await
}

// ---------------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn dlq_lists_the_dead_letters_of_failed_jobs(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let empty = api.get("/api/admin/dlq/diagnostics").await;
    assert_eq!(empty.status, StatusCode::OK, "{empty:?}");
    assert_eq!(empty.body, json!([]));

    let started = Utc::now() - chrono::Duration::seconds(1);
    let worker = env.worker(&[Q], None);
    let a = enqueue(
        &env,
        "FAIL",
        json!({"retryable": false, "message": "boom-a"}),
    )
    .await;
    let b = enqueue(
        &env,
        "FAIL",
        json!({"retryable": false, "message": "boom-b"}),
    )
    .await;
    env.wait_status(a, JobStatus::Failed, LONG).await;
    env.wait_status(b, JobStatus::Failed, LONG).await;
    wait_stream_len(&env, 2).await;
    worker.stop().await;

    let reply = api.get("/api/admin/dlq/diagnostics").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let entries = reply.body.as_array().expect("an array").clone();
    assert_eq!(entries.len(), 2);
    let in_stream_order = env.dead_letter_ids(Q).await;
    for (entry, id) in entries.iter().zip(&in_stream_order) {
        let keys: BTreeSet<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["jobId", "jobType", "error", "attempts", "failedAt"])
        );
        assert_eq!(entry["jobId"], id.to_string());
        let expected = if *id == a { "boom-a" } else { "boom-b" };
        assert_eq!(entry["error"], expected);
        assert_eq!(entry["jobType"], "FAIL");
        assert_eq!(entry["attempts"], 1);
        let failed_at = time_of(&entry["failedAt"]);
        assert!(
            failed_at >= started && failed_at <= Utc::now(),
            "{failed_at}"
        );
    }
    assert_eq!(id_set(&in_stream_order), id_set(&[a, b]));

    let one = api.get("/api/admin/dlq/diagnostics?limit=1").await;
    assert_eq!(one.body.as_array().unwrap().len(), 1);
    assert_eq!(one.body[0], entries[0]);
    // Each queue has its own stream.
    let other = api.get("/api/admin/dlq/book_data").await;
    assert_eq!(other.body, json!([]));
}

#[sqlx::test]
async fn dlq_list_with_a_bad_limit_parameter_or_queue_is_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "diagnostics?limit=0",
            "invalid_field",
            &["limit", "between 1 and 1000"],
        ),
        ("diagnostics?limit=1001", "invalid_field", &["limit"]),
        ("diagnostics?limit=many", "invalid_query", &["limit"]),
        ("diagnostics?count=5", "invalid_query", &["count"]),
        (
            "nope",
            "unknown_queue",
            &["nope", "diagnostics", "book_data"],
        ),
    ];
    for (tail, code, mentions) in cases {
        let reply = api.get(&format!("/api/admin/dlq/{tail}")).await;
        reply.assert_error_naming(StatusCode::BAD_REQUEST, code, mentions);
    }
    let max = api.get("/api/admin/dlq/diagnostics?limit=1000").await;
    assert_eq!(max.status, StatusCode::OK);
}

/// A diagnostics job in FAILED.
async fn failed_job(env: &TestEnv) -> Uuid {
    let id = enqueue(env, "NOOP", json!({})).await;
    env.set_status(id, JobStatus::Failed).await;
    id
}

#[sqlx::test]
async fn dlq_replay_without_ids_retries_every_dead_lettered_failed_job(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let a = failed_job(&env).await;
    let b = failed_job(&env).await;
    // Failed, but with no dead letter: not part of a replay.
    let not_in_stream = failed_job(&env).await;
    // A stale entry: the job was completed since.
    let completed = enqueue(&env, "NOOP", json!({})).await;
    env.set_status(completed, JobStatus::Completed).await;
    // Same id, other queue's record: not this queue's to replay.
    let foreign = env.insert_job("author_data", "FAILED", 0).await;
    add_dead_letter(&env, a, "x").await;
    add_dead_letter(&env, b, "y").await;
    add_dead_letter(&env, completed, "z").await;
    add_dead_letter(&env, foreign, "w").await;
    let mut redis = env.redis().await;
    let _: i64 = redis::cmd("DEL")
        .arg(env.conveyor.broker().keys(Q).ready)
        .query_async(&mut redis)
        .await
        .unwrap();

    let reply = api.post_empty("/api/admin/dlq/diagnostics/replay").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"replayed": 2}));
    for id in [a, b] {
        let job = env.job(id).await;
        assert_eq!(job.status, JobStatus::Pending);
        assert_eq!(job.attempts, 0);
        assert_eq!(job.error, None);
        assert!(env.in_ready_set(Q, id).await);
    }
    assert_eq!(
        env.status_of(not_in_stream).await.as_deref(),
        Some("FAILED")
    );
    assert_eq!(env.status_of(completed).await.as_deref(), Some("COMPLETED"));
    assert_eq!(env.status_of(foreign).await.as_deref(), Some("FAILED"));
    assert!(env.dead_letter_ids(Q).await.is_empty());
    let listed = api.get("/api/admin/dlq/diagnostics").await;
    assert_eq!(listed.body, json!([]));

    // `{}` also means all; nothing is left.
    let again = api
        .post("/api/admin/dlq/diagnostics/replay", json!({}))
        .await;
    assert_eq!(again.body, json!({"replayed": 0}));

    // The replayed jobs run.
    let worker = env.worker(&[Q], None);
    env.wait_status(a, JobStatus::Completed, LONG).await;
    env.wait_status(b, JobStatus::Completed, LONG).await;
    worker.stop().await;
}

#[sqlx::test]
async fn dlq_replay_of_named_jobs_retries_only_those_and_drops_their_entries(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let a = failed_job(&env).await;
    let b = failed_job(&env).await;
    let c = failed_job(&env).await;
    let completed = enqueue(&env, "NOOP", json!({})).await;
    env.set_status(completed, JobStatus::Completed).await;
    add_dead_letter(&env, a, "first failure").await;
    add_dead_letter(&env, b, "b").await;
    add_dead_letter(&env, a, "second failure").await;
    add_dead_letter(&env, c, "c").await;
    add_dead_letter(&env, completed, "stale").await;

    let body = json!({"jobIds": [a, c, completed, Uuid::now_v7()]});
    let reply = api.post("/api/admin/dlq/diagnostics/replay", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"replayed": 2}));
    assert_eq!(env.status_of(a).await.as_deref(), Some("PENDING"));
    assert_eq!(env.status_of(c).await.as_deref(), Some("PENDING"));
    assert_eq!(env.status_of(b).await.as_deref(), Some("FAILED"));
    assert_eq!(env.status_of(completed).await.as_deref(), Some("COMPLETED"));
    assert!(env.in_ready_set(Q, a).await && env.in_ready_set(Q, c).await);
    // Both of a's entries went; b's and the unreplayed stale one stay.
    assert_eq!(env.dead_letter_ids(Q).await, vec![b, completed]);

    // Replaying a job that is PENDING now does nothing.
    let again = api
        .post("/api/admin/dlq/diagnostics/replay", json!({"jobIds": [a]}))
        .await;
    assert_eq!(again.body, json!({"replayed": 0}));
}

#[sqlx::test]
async fn dlq_replay_with_a_bad_body_or_queue_is_400_and_changes_nothing(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let a = failed_job(&env).await;
    add_dead_letter(&env, a, "x").await;
    let path = "/api/admin/dlq/diagnostics/replay";
    let cases: Vec<(&str, &str, &[&str])> = vec![
        (r#"{"jobIds": ["nope"]}"#, "invalid_field", &["jobIds[0]"]),
        (r#"{"jobIds": []}"#, "invalid_field", &["jobIds"]),
        (r#"{"jobIds": "all"}"#, "invalid_field", &["jobIds"]),
        (r#"{"ids": []}"#, "invalid_field", &["ids"]),
        ("\"everything\"", "invalid_body", &[]),
        ("{jobIds", "invalid_json", &[]),
    ];
    for (body, code, mentions) in cases {
        let reply = api
            .send_raw(
                Method::POST,
                path,
                Some(ADMIN),
                Some(body.as_bytes().to_vec()),
            )
            .await;
        reply.assert_error_naming(StatusCode::BAD_REQUEST, code, mentions);
    }
    let unknown = api.post_empty("/api/admin/dlq/nope/replay").await;
    unknown.assert_error_naming(
        StatusCode::BAD_REQUEST,
        "unknown_queue",
        &["nope", "diagnostics"],
    );
    assert_eq!(env.status_of(a).await.as_deref(), Some("FAILED"));
    assert_eq!(env.dead_letter_ids(Q).await, vec![a]);
}

#[sqlx::test]
async fn dlq_replay_with_a_viewer_token_is_403(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let a = failed_job(&env).await;
    add_dead_letter(&env, a, "x").await;
    let reply = api
        .send(
            Method::POST,
            "/api/admin/dlq/diagnostics/replay",
            Some(VIEWER),
            None,
        )
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(env.status_of(a).await.as_deref(), Some("FAILED"));
    // Viewers may read the dead letters.
    let listed = api
        .send(
            Method::GET,
            "/api/admin/dlq/diagnostics",
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body[0]["jobId"], a.to_string());
}
