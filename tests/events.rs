//! `GET /api/admin/jobs/:id/events`: Server-Sent Events from a real in-process
//! worker, read frame by frame from the router's body.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use conveyor_tests::http::{TestApi, ADMIN, VIEWER};
use conveyor_tests::{wait_for, TestEnv};
use http_body_util::BodyExt;
use queue_core::job::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

fn job(job_type: &str, payload: Value) -> NewJob {
    NewJob::new(Q, job_type, payload)
}

/// Reads the whole event stream (it must end within `timeout`); returns the
/// (event, data) pairs in order.
async fn read_events(api: &TestApi, id: Uuid, timeout: Duration) -> Vec<(String, Value)> {
    let response = api
        .open(&format!("/api/admin/jobs/{id}/events"), Some(ADMIN))
        .await;
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

/// Reads job `id`'s whole stream in a task; returns once the stream is subscribed
/// on Redis, so every event after this is seen live.
async fn start_reading(env: &TestEnv, api: &TestApi, id: Uuid) -> JoinHandle<Vec<(String, Value)>> {
    let reader = {
        let api = api.clone();
        tokio::spawn(async move { read_events(&api, id, LONG).await })
    };
    wait_subscribers(env, id, 1).await;
    reader
}

#[sqlx::test]
async fn a_running_job_streams_progress_and_ends_with_completed(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let id = env
        .enqueue(job("PROGRESS", json!({"steps": 4, "stepMs": 200})))
        .await;
    // Connect before the worker starts, so the whole run is seen live.
    let reader = start_reading(&env, &api, id).await;
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
    let api = TestApi::new(&env);
    let worker = env.worker(&[Q], None);
    let id = env.enqueue(job("ECHO", json!({"x": 1}))).await;
    env.wait_status(id, JobStatus::Completed, LONG).await;
    worker.stop().await;
    let events = read_events(&api, id, Duration::from_secs(2)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "status");
    assert_eq!(events[0].1["status"], "COMPLETED");
}

#[sqlx::test]
async fn a_cancelled_waiting_job_ends_the_stream(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let id = env.enqueue(job("ECHO", json!({}))).await;
    let reader = start_reading(&env, &api, id).await;
    let cancelled = api.delete(&format!("/api/admin/jobs/{id}")).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
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
    let api = TestApi::new(&env);
    let unknown = api
        .get(&format!("/api/admin/jobs/{}/events", Uuid::new_v4()))
        .await;
    unknown.assert_error(StatusCode::NOT_FOUND, "not_found");
    let malformed = api.get("/api/admin/jobs/nope/events").await;
    malformed.assert_error(StatusCode::BAD_REQUEST, "invalid_field");
    let anonymous = api
        .get_as(None, &format!("/api/admin/jobs/{}/events", Uuid::new_v4()))
        .await;
    anonymous.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// Opens a stream and returns its body once the first frame (the current status)
/// has arrived, so the stream is known to be subscribed.
async fn open_stream(api: &TestApi, id: Uuid, token: &str) -> Result<Body, (StatusCode, Value)> {
    let response = api
        .open(&format!("/api/admin/jobs/{id}/events"), Some(token))
        .await;
    let status = response.status();
    let mut body = response.into_body();
    if status != StatusCode::OK {
        let bytes = body.collect().await.unwrap().to_bytes();
        return Err((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ));
    }
    let frame = tokio::time::timeout(LONG, body.frame())
        .await
        .expect("the first frame")
        .expect("a frame")
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.contains("event: status"), "{text}");
    Ok(body)
}

async fn pending_job(env: &TestEnv) -> Uuid {
    env.enqueue(job("ECHO", json!({}))).await
}

/// Subscribers of a job's channel on Redis (`PUBSUB NUMSUB`).
async fn subscribers(env: &TestEnv, id: Uuid) -> i64 {
    let mut redis = env.redis().await;
    let reply: (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{}:events:{id}", env.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    reply.1
}

async fn wait_subscribers(env: &TestEnv, id: Uuid, n: i64) {
    wait_for(LONG, || async move {
        let now = subscribers(env, id).await;
        if now == n {
            Ok(())
        } else {
            Err(format!(
                "job {id} has {now} subscribers on Redis, expected {n}"
            ))
        }
    })
    .await
}

#[sqlx::test]
async fn streams_share_one_redis_subscription(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let (a, b) = (pending_job(&env).await, pending_job(&env).await);
    let mut open = Vec::new();
    for id in [a, a, a, b, b] {
        open.push(open_stream(&api, id, ADMIN).await.unwrap());
    }
    // One connection subscribed once per job, whatever the number of readers.
    assert_eq!(subscribers(&env, a).await, 1);
    assert_eq!(subscribers(&env, b).await, 1);
    // The last reader of a job takes its channel off the connection.
    open.truncate(3);
    wait_subscribers(&env, b, 0).await;
    assert_eq!(subscribers(&env, a).await, 1);
    open.clear();
    wait_subscribers(&env, a, 0).await;
}

#[sqlx::test]
async fn streams_are_capped_per_token_and_in_all(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| {
        c.api.max_streams_per_token = 2;
        c.api.max_streams = 3;
    })
    .await;
    let api = TestApi::new(&env);
    let id = pending_job(&env).await;
    let first = open_stream(&api, id, ADMIN).await.unwrap();
    let _second = open_stream(&api, id, ADMIN).await.unwrap();
    let (status, body) = open_stream(&api, id, ADMIN).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api.max_streams_per_token"),
        "{body}"
    );

    // Another token has its own share, up to the server's cap.
    let _third = open_stream(&api, id, VIEWER).await.unwrap();
    let (status, body) = open_stream(&api, id, VIEWER).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");

    // A client going away frees its slot.
    drop(first);
    let _again = open_stream(&api, id, ADMIN).await.unwrap();
    // A refused stream held no slot: the cap is still exact.
    let (status, _) = open_stream(&api, id, ADMIN).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test]
async fn a_deleted_job_ends_its_stream(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let id = pending_job(&env).await;
    let reader = start_reading(&env, &api, id).await;
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(id)
        .execute(&env.pool)
        .await
        .unwrap();
    let events = reader.await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["status"], "PENDING", "{events:?}");
}

#[sqlx::test]
async fn the_shared_subscription_comes_back_after_redis_restarts(pool: PgPool) {
    let mut redis = conveyor_tests::services::RedisServer::start();
    let db_url = conveyor_tests::test_db_url(&pool);
    let env = TestEnv::with_services(pool, db_url, redis.url(), |_| {}).await;
    let api = TestApi::new(&env);
    let id = pending_job(&env).await;
    let reader = start_reading(&env, &api, id).await;
    let channel = format!("{}:events:{id}", env.prefix);
    let url = redis.url();
    redis.stop();
    redis.restart();
    wait_numsub(&url, &channel).await;

    // Only a live event can end this stream: the record still says PENDING.
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(r#"{"type":"status","status":"COMPLETED","attempts":1}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let events = reader.await.unwrap();
    assert_eq!(events.first().unwrap().1["status"], "PENDING", "{events:?}");
    assert_eq!(
        events.last().unwrap().1["status"],
        "COMPLETED",
        "{events:?}"
    );
}

/// Waits until `channel` on the Redis at `url` has one subscriber.
async fn wait_numsub(url: &str, channel: &str) {
    wait_for(LONG, || async move {
        let n = match redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
        {
            Ok(mut conn) => {
                let reply: redis::RedisResult<(String, i64)> = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query_async(&mut conn)
                    .await;
                reply.map_or(0, |r| r.1)
            }
            Err(_) => 0,
        };
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{channel} has {n} subscribers, expected 1"))
        }
    })
    .await
}
