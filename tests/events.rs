//! `GET /api/admin/jobs/:id/events`: Server-Sent Events from a real in-process
//! worker, read frame by frame from the router's body.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use conveyor_api::{AppState, Auth};
use conveyor_tests::TestEnv;
use http_body_util::BodyExt;
use queue_core::job::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

const ADMIN: &str = "a";
const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

fn app(env: &TestEnv) -> Router {
    conveyor_api::router(AppState::new(
        env.conveyor.clone(),
        Auth::Tokens {
            admin: vec![ADMIN.into()],
            viewer: vec![],
        },
    ))
}

fn job(job_type: &str, payload: Value) -> NewJob {
    NewJob {
        queue: Q.into(),
        job_type: job_type.into(),
        payload,
        priority: Default::default(),
        max_attempts: None,
        run_at: None,
        timeout_ms: None,
        idempotency_key: None,
        backoff: None,
        parent_id: None,
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap()
}

/// Reads the whole event stream (it must end within `timeout`); returns the
/// (event, data) pairs in order.
async fn read_events(app: &Router, id: Uuid, timeout: Duration) -> Vec<(String, Value)> {
    let response = app
        .clone()
        .oneshot(get(&format!("/api/admin/jobs/{id}/events")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("the stream did not end within {timeout:?}: {text}"));
        match frame {
            None => break,
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    text.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
        }
    }
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            Some((name?, data?))
        })
        .collect()
}

#[sqlx::test]
async fn a_running_job_streams_progress_and_ends_with_completed(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let id = env
        .conveyor
        .enqueue(job("PROGRESS", json!({"steps": 4, "stepMs": 200})))
        .await
        .unwrap()
        .job
        .id;
    // Connect before the worker starts, so the whole run is seen live.
    let reader = {
        let app = app.clone();
        tokio::spawn(async move { read_events(&app, id, LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let worker = env.worker(&[Q], None);
    let events = reader.await.unwrap();
    worker.stop().await;

    assert_eq!(events[0].0, "status", "{events:?}");
    assert_eq!(events[0].1["status"], "PENDING", "{events:?}");
    let progress: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "progress")
        .map(|(_, d)| d)
        .collect();
    assert!(!progress.is_empty(), "no progress event: {events:?}");
    for p in &progress {
        assert!(p["progress"].as_i64().is_some(), "{p}");
        assert!(p.get("progressMessage").is_some(), "{p}");
        assert!(p.get("type").is_none(), "{p}");
    }
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "status" && d["status"] == "RUNNING"),
        "{events:?}"
    );
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "status");
    assert_eq!(last["status"], "COMPLETED", "{events:?}");
    assert_eq!(last["attempts"], 1);
    assert!(last.get("error").is_none(), "{last}");
}

#[sqlx::test]
async fn a_finished_job_gives_its_terminal_status_at_once(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let worker = env.worker(&[Q], None);
    let id = env
        .conveyor
        .enqueue(job("ECHO", json!({"x": 1})))
        .await
        .unwrap()
        .job
        .id;
    env.wait_status(id, JobStatus::Completed, LONG).await;
    worker.stop().await;
    let events = read_events(&app, id, Duration::from_secs(2)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "status");
    assert_eq!(events[0].1["status"], "COMPLETED");
}

#[sqlx::test]
async fn a_cancelled_waiting_job_ends_the_stream(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let id = env
        .conveyor
        .enqueue(job("ECHO", json!({})))
        .await
        .unwrap()
        .job
        .id;
    let reader = {
        let app = app.clone();
        tokio::spawn(async move { read_events(&app, id, LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = app
        .clone()
        .oneshot(
            Request::delete(format!("/api/admin/jobs/{id}"))
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = reader.await.unwrap();
    assert_eq!(
        events.last().unwrap().1["status"],
        "CANCELLED",
        "{events:?}"
    );
}

#[sqlx::test]
async fn unknown_and_malformed_ids(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let response = app
        .clone()
        .oneshot(get(&format!("/api/admin/jobs/{}/events", Uuid::new_v4())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .clone()
        .oneshot(get("/api/admin/jobs/nope/events"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .oneshot(
            Request::get(format!("/api/admin/jobs/{}/events", Uuid::new_v4()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
