//! `POST /api/admin/jobs/{id}/retry` in-process: a FAILED or CANCELLED job is
//! reset, pushed again and run by an in-process worker as a new run; any other
//! state is a 409; unknown and malformed ids, queries and viewer tokens are
//! refused and change nothing.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use conveyor_tests::http::{TestApi, ADMIN, VIEWER};
use conveyor_tests::TestEnv;
use queue_core::job::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

async fn enqueue(env: &TestEnv, job_type: &str, payload: Value) -> Uuid {
    env.enqueue(NewJob::new(Q, job_type, payload)).await
}

// ---------------------------------------------------------------------------------
// POST /api/admin/jobs/:id/retry
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn retry_of_a_failed_job_resets_it_and_it_runs_again(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let worker = env.worker(&[Q], None);
    let id = enqueue(&env, "FAIL", json!({"retryable": false, "message": "nope"})).await;
    let failed = env.wait_status(id, JobStatus::Failed, LONG).await;
    worker.stop().await;
    assert_eq!(failed.attempts, 1);
    assert_eq!(env.executions(id).await.len(), 1);

    let retried_at = Utc::now();
    let reply = api.post_empty(&format!("/api/admin/jobs/{id}/retry")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let job = &reply.body;
    assert_eq!(job["id"], id.to_string());
    assert_eq!(job["status"], "PENDING");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["error"], Value::Null);
    assert_eq!(job["result"], Value::Null);
    assert_eq!(job["completedAt"], Value::Null);
    assert_eq!(job["startedAt"], Value::Null);
    assert_eq!(job["cancelRequested"], false);
    assert_eq!(job["progress"], 0);

    // Pushed again, and named in the dispatch outbox in the same statement (so the
    // reconciler would push it had this push failed); the first run's attempt stays
    // in the log.
    assert!(env.in_ready_set(Q, id).await);
    let in_outbox: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM dispatch_outbox WHERE $1 = ANY(job_ids) AND created_at >= $2)",
    )
    .bind(id)
    .bind(retried_at - chrono::Duration::seconds(1))
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert!(in_outbox, "retried job not in the dispatch outbox");
    let history = env.executions(id).await;
    assert_eq!(
        history
            .iter()
            .map(|e| (e.run, e.attempt))
            .collect::<Vec<_>>(),
        vec![(1, 1)]
    );

    // It runs again from attempt 1, and that attempt is logged.
    let worker = env.worker(&[Q], None);
    let again = env.wait_status(id, JobStatus::Failed, LONG).await;
    worker.stop().await;
    assert_eq!(again.attempts, 1);
    assert_eq!(again.error.as_deref(), Some("nope"));
    let executions = env.executions(id).await;
    let runs: Vec<(i32, i32)> = executions.iter().map(|e| (e.run, e.attempt)).collect();
    assert_eq!(runs, vec![(1, 1), (2, 1)], "{executions:?}");
    assert!(executions[1].started_at >= retried_at - chrono::Duration::seconds(1));
}

#[sqlx::test]
async fn retry_of_a_cancelled_job_makes_it_pending_and_it_completes(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let id = enqueue(&env, "ECHO", json!({"hello": "again"})).await;
    let cancelled = api
        .send(
            Method::DELETE,
            &format!("/api/admin/jobs/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(cancelled.body["status"], "CANCELLED", "{cancelled:?}");
    // Forget the first push, so only the retry can put it back.
    let mut redis = env.redis().await;
    let _: i64 = redis::cmd("DEL")
        .arg(env.conveyor.broker().keys(Q).ready)
        .query_async(&mut redis)
        .await
        .unwrap();

    let reply = api.post_empty(&format!("/api/admin/jobs/{id}/retry")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["status"], "PENDING");
    assert_eq!(reply.body["cancelRequested"], false);
    assert_eq!(reply.body["error"], Value::Null);
    assert!(env.in_ready_set(Q, id).await);

    let worker = env.worker(&[Q], None);
    let done = env.wait_status(id, JobStatus::Completed, LONG).await;
    worker.stop().await;
    assert_eq!(done.result, Some(json!({"hello": "again"})));
    assert_eq!(done.attempts, 1);
}

#[sqlx::test]
async fn retry_of_a_job_in_any_other_state_is_409_naming_the_state(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    for status in [
        JobStatus::Pending,
        JobStatus::Delayed,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Completed,
    ] {
        let id = enqueue(&env, "NOOP", json!({})).await;
        env.set_status(id, status).await;
        let reply = api.post_empty(&format!("/api/admin/jobs/{id}/retry")).await;
        reply.assert_error_naming(
            StatusCode::CONFLICT,
            "conflict",
            &[status.as_str(), "FAILED or CANCELLED"],
        );
        assert_eq!(env.status_of(id).await.as_deref(), Some(status.as_str()));
    }
}

#[sqlx::test]
async fn retry_of_an_unknown_job_is_404(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let unknown = Uuid::now_v7();
    let reply = api
        .post_empty(&format!("/api/admin/jobs/{unknown}/retry"))
        .await;
    reply.assert_error_naming(StatusCode::NOT_FOUND, "not_found", &[&unknown.to_string()]);
}

#[sqlx::test]
async fn retry_with_a_malformed_id_or_a_query_is_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let reply = api.post_empty("/api/admin/jobs/not-a-uuid/retry").await;
    reply.assert_error_naming(
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["id", "not-a-uuid"],
    );
    let id = enqueue(&env, "NOOP", json!({})).await;
    env.set_status(id, JobStatus::Failed).await;
    let reply = api
        .post_empty(&format!("/api/admin/jobs/{id}/retry?force=true"))
        .await;
    reply.assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["force"]);
    assert_eq!(env.status_of(id).await.as_deref(), Some("FAILED"));
}

#[sqlx::test]
async fn retry_with_a_viewer_token_is_403(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let id = enqueue(&env, "NOOP", json!({})).await;
    env.set_status(id, JobStatus::Failed).await;
    let path = format!("/api/admin/jobs/{id}/retry");
    let reply = api.send(Method::POST, &path, Some(VIEWER), None).await;
    reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(env.status_of(id).await.as_deref(), Some("FAILED"));
}
