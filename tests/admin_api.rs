//! The admin API's list, retry, queue, dead-letter and worker routes, in-process:
//! each test builds the real router on its own database and Redis prefix, calls it
//! with `tower::ServiceExt::oneshot` and checks the answer against PostgreSQL and
//! Redis. States a worker would reach are set with SQL where the route only reads
//! them, and reached with an in-process worker where the route acts on them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use conveyor_api::{AppState, Auth};
use conveyor_tests::TestEnv;
use http_body_util::BodyExt;
use queue_core::job::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

const ADMIN: &str = "a";
const VIEWER: &str = "v";
const Q: &str = "diagnostics";
const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn app(env: &TestEnv) -> Router {
    conveyor_api::router(AppState::new(
        env.conveyor.clone(),
        Auth::Tokens {
            admin: vec![ADMIN.into()],
            viewer: vec![VIEWER.into()],
        },
    ))
}

/// One answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(text) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(text.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(req.body(body).expect("request builds"))
        .await
        .expect("the router is infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply { status, body }
}

async fn get(app: &Router, path: &str) -> Reply {
    call(app, Method::GET, path, Some(ADMIN), None).await
}

async fn post(app: &Router, path: &str, body: Option<Value>) -> Reply {
    let text = body.map(|b| b.to_string());
    call(app, Method::POST, path, Some(ADMIN), text.as_deref()).await
}

/// Checks an error answer: status, code, and that the message names `mentions`.
#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, code: &str, mentions: &[&str]) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.body["error"]["code"], code, "{reply:?}");
    let message = reply.body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {reply:?}"));
    for m in mentions {
        assert!(
            message.contains(m),
            "message {message:?} does not mention {m:?}"
        );
    }
}

async fn enqueue(env: &TestEnv, job_type: &str, payload: Value) -> Uuid {
    env.conveyor
        .enqueue(NewJob::new(Q, job_type, payload))
        .await
        .expect("enqueue")
        .job
        .id
}

/// Puts a job in `status` as a worker would have left it (terminal states get a
/// completion time).
async fn set_status(env: &TestEnv, id: Uuid, status: JobStatus) {
    let done = status.is_terminal();
    sqlx::query(
        "UPDATE jobs SET status = $2, completed_at = CASE WHEN $3 THEN now() END,
                         attempts = CASE WHEN $2 = 'PENDING' OR $2 = 'DELAYED' THEN 0 ELSE 1 END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(done)
    .execute(&env.pool)
    .await
    .expect("set status");
}

async fn set_created_ago(env: &TestEnv, id: Uuid, secs: i64) {
    sqlx::query("UPDATE jobs SET created_at = now() - make_interval(secs => $2) WHERE id = $1")
        .bind(id)
        .bind(secs as f64)
        .execute(&env.pool)
        .await
        .expect("set created_at");
}

async fn set_parent(env: &TestEnv, child: Uuid, parent: Uuid) {
    sqlx::query("UPDATE jobs SET parent_id = $2 WHERE id = $1")
        .bind(child)
        .bind(parent)
        .execute(&env.pool)
        .await
        .expect("set parent");
}

/// A record in another queue, inserted directly (no job type of it is registered).
async fn insert_foreign(env: &TestEnv, queue: &str, status: &str, finished_secs_ago: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at, completed_at)
         VALUES ($1, $2, 'GENERATE_BIO', $3, '{}', 3, now(), now() - make_interval(secs => $4))",
    )
    .bind(id)
    .bind(queue)
    .bind(status)
    .bind(finished_secs_ago as f64)
    .execute(&env.pool)
    .await
    .expect("insert foreign job");
    id
}

async fn status_of(env: &TestEnv, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&env.pool)
        .await
        .expect("read status")
}

fn ids_of(items: &Value) -> Vec<Uuid> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|j| j["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn id_set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

fn key(env: &TestEnv, suffix: &str) -> String {
    format!("{}:{{{Q}}}:{suffix}", env.prefix)
}

async fn in_ready_set(env: &TestEnv, id: Uuid) -> bool {
    let mut redis = env.redis().await;
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(key(env, "ready"))
        .arg(id.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    score.is_some()
}

/// Adds a dead letter the way the completer does; returns its entry id.
async fn add_dead_letter(env: &TestEnv, id: Uuid, error: &str) -> String {
    let mut redis = env.redis().await;
    redis::cmd("XADD")
        .arg(key(env, "dlq"))
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

/// Job ids of the dead-letter stream, in stream order.
async fn stream_job_ids(env: &TestEnv) -> Vec<Uuid> {
    let mut redis = env.redis().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key(env, "dlq"))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let (_, id) = fields.into_iter().find(|(k, _)| k == "jobId").unwrap();
            id.parse().unwrap()
        })
        .collect()
}

/// Waits (polling) until the dead-letter stream holds `n` entries.
async fn wait_stream_len(env: &TestEnv, n: usize) {
    let deadline = Instant::now() + LONG;
    loop {
        let len = stream_job_ids(env).await.len();
        if len == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dead-letter stream holds {len}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn time_of(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------
// GET /api/admin/jobs
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn list_pages_newest_first_with_page_limit_and_total(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = enqueue(&env, "NOOP", json!({})).await;
        // ids[4] is the newest.
        set_created_ago(&env, id, 100 - i).await;
        ids.push(id);
    }

    let all = get(&app, "/api/admin/jobs").await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    assert_eq!(all.body["page"], 1);
    assert_eq!(all.body["limit"], 20);
    assert_eq!(all.body["total"], 5);
    let newest_first: Vec<Uuid> = ids.iter().rev().copied().collect();
    assert_eq!(ids_of(&all.body["items"]), newest_first);
    let first = &all.body["items"][0];
    assert_eq!(first["queueName"], Q);
    assert_eq!(first["jobType"], "NOOP");
    assert_eq!(first["status"], "PENDING");
    assert!(first.get("executions").is_none(), "{first}");

    let second = get(&app, "/api/admin/jobs?page=2&limit=2").await;
    assert_eq!(second.status, StatusCode::OK, "{second:?}");
    assert_eq!(ids_of(&second.body["items"]), vec![ids[2], ids[1]]);
    assert_eq!(
        (
            &second.body["page"],
            &second.body["limit"],
            &second.body["total"]
        ),
        (&json!(2), &json!(2), &json!(5))
    );

    let past_the_end = get(&app, "/api/admin/jobs?page=4&limit=2").await;
    assert_eq!(past_the_end.status, StatusCode::OK);
    assert_eq!(past_the_end.body["items"], json!([]));
    assert_eq!(past_the_end.body["total"], 5);

    let full_page = get(&app, "/api/admin/jobs?limit=100").await;
    assert_eq!(full_page.status, StatusCode::OK);
    assert_eq!(ids_of(&full_page.body["items"]).len(), 5);
}

#[sqlx::test]
async fn a_page_far_past_the_data_is_answered_without_reading_the_jobs_table(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let parent = enqueue(&env, "NOOP", json!({})).await;
    for i in 0..2 {
        let child = enqueue(&env, "ECHO", json!({ "i": i })).await;
        set_parent(&env, child, parent).await;
    }
    // Any read of the jobs table waits behind this lock, so only an answer that
    // does not touch the table (the counters give the total) comes back.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    for (path, total) in [
        ("/api/admin/jobs?page=10000000&limit=100", 3),
        ("/api/admin/jobs?page=2&limit=3", 3),
        (
            "/api/admin/jobs?queue=diagnostics&status=PENDING&jobType=ECHO&page=500000",
            2,
        ),
    ] {
        let reply = tokio::time::timeout(Duration::from_secs(5), get(&app, path))
            .await
            .unwrap_or_else(|_| panic!("{path}: the answer waited on the jobs table"));
        assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
        assert_eq!(reply.body["items"], json!([]), "{path}");
        assert_eq!(reply.body["total"], total, "{path}");
    }
    lock.rollback().await.unwrap();

    // Children (counted over the parent index): past the end is empty too.
    let reply = get(
        &app,
        &format!("/api/admin/jobs/{parent}/children?page=10000000&limit=100"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["items"], json!([]));
    assert_eq!(reply.body["total"], 2);
    assert_eq!(reply.body["page"], 10_000_000);
    // And a page inside the data still reads it.
    let reply = get(&app, "/api/admin/jobs?page=2&limit=2").await;
    assert_eq!(ids_of(&reply.body["items"]).len(), 1, "{reply:?}");
}

#[sqlx::test]
async fn list_filters_by_queue_status_job_type_and_parent(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let parent = enqueue(&env, "NOOP", json!({})).await;
    let c1 = enqueue(&env, "ECHO", json!({"n": 1})).await;
    let c2 = enqueue(&env, "ECHO", json!({"n": 2})).await;
    let lone_echo = enqueue(&env, "ECHO", json!({"n": 3})).await;
    let failed = enqueue(&env, "FAIL", json!({})).await;
    set_parent(&env, c1, parent).await;
    set_parent(&env, c2, parent).await;
    set_status(&env, failed, JobStatus::Failed).await;
    set_status(&env, lone_echo, JobStatus::Completed).await;
    let foreign = insert_foreign(&env, "author_data", "COMPLETED", 0).await;

    let cases: Vec<(String, Vec<Uuid>)> = vec![
        // Unfiltered: every state and queue counts in the total.
        (
            "page=1".into(),
            vec![parent, c1, c2, lone_echo, failed, foreign],
        ),
        (
            "queue=diagnostics".into(),
            vec![parent, c1, c2, lone_echo, failed],
        ),
        ("queue=author_data".into(), vec![foreign]),
        ("status=FAILED".into(), vec![failed]),
        ("status=COMPLETED".into(), vec![lone_echo, foreign]),
        ("jobType=ECHO".into(), vec![c1, c2, lone_echo]),
        (format!("parentId={parent}"), vec![c1, c2]),
        (
            format!("queue=diagnostics&status=PENDING&jobType=ECHO&parentId={parent}"),
            vec![c1, c2],
        ),
        ("jobType=ECHO&status=COMPLETED".into(), vec![lone_echo]),
        ("jobType=NO_SUCH_TYPE".into(), vec![]),
        ("queue=book_data".into(), vec![]),
    ];
    for (query, expected) in cases {
        let reply = get(&app, &format!("/api/admin/jobs?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {reply:?}");
        assert_eq!(
            id_set(&ids_of(&reply.body["items"])),
            id_set(&expected),
            "{query}"
        );
        assert_eq!(reply.body["total"], expected.len(), "{query}");
    }
}

#[sqlx::test]
async fn list_rejects_bad_query_parameters_with_400_naming_them(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    enqueue(&env, "NOOP", json!({})).await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("limit=0", "invalid_field", &["limit", "between 1 and 100"]),
        (
            "limit=101",
            "invalid_field",
            &["limit", "between 1 and 100"],
        ),
        ("limit=-3", "invalid_field", &["limit"]),
        ("page=0", "invalid_field", &["page", "at least 1"]),
        ("page=-1", "invalid_field", &["page"]),
        (
            "page=99999999999999999&limit=100",
            "invalid_field",
            &["page"],
        ),
        ("limit=ten", "invalid_query", &["limit"]),
        ("page=1.5", "invalid_query", &["page"]),
        (
            "status=DONE",
            "invalid_field",
            &["status", "DONE", "PENDING", "RUNNING", "CANCELLED"],
        ),
        ("status=pending", "invalid_field", &["status", "pending"]),
        (
            "parentId=not-a-uuid",
            "invalid_field",
            &["parentId", "not-a-uuid"],
        ),
        (
            "queue=nope",
            "unknown_queue",
            &["queue", "nope", "diagnostics", "book_data", "author_data"],
        ),
        ("queue=", "unknown_queue", &["queue"]),
        ("sort=asc", "invalid_query", &["sort"]),
        ("queueName=diagnostics", "invalid_query", &["queueName"]),
        ("page=1&page=2", "invalid_query", &["page"]),
    ];
    for (query, code, mentions) in cases {
        let reply = get(&app, &format!("/api/admin/jobs?{query}")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code, mentions);
    }
}

#[sqlx::test]
async fn list_is_open_to_viewer_tokens_and_closed_without_one(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    enqueue(&env, "NOOP", json!({})).await;
    let viewer = call(&app, Method::GET, "/api/admin/jobs", Some(VIEWER), None).await;
    assert_eq!(viewer.status, StatusCode::OK, "{viewer:?}");
    assert_eq!(viewer.body["total"], 1);
    let anonymous = call(&app, Method::GET, "/api/admin/jobs", None, None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
}

// ---------------------------------------------------------------------------------
// GET /api/admin/jobs/:id/children
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn children_lists_a_parents_children_newest_first_in_pages(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let parent = enqueue(&env, "NOOP", json!({})).await;
    let other_parent = enqueue(&env, "NOOP", json!({})).await;
    let mut children = Vec::new();
    for i in 0..3 {
        let child = enqueue(&env, "ECHO", json!({"i": i})).await;
        set_parent(&env, child, parent).await;
        set_created_ago(&env, child, 50 - i).await;
        children.push(child);
    }
    let stranger = enqueue(&env, "ECHO", json!({})).await;
    set_parent(&env, stranger, other_parent).await;
    set_status(&env, children[0], JobStatus::Completed).await;

    let first = get(&app, &format!("/api/admin/jobs/{parent}/children?limit=2")).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(ids_of(&first.body["items"]), vec![children[2], children[1]]);
    assert_eq!(first.body["total"], 3);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["limit"], 2);
    assert_eq!(first.body["items"][0]["parentId"], parent.to_string());

    let second = get(
        &app,
        &format!("/api/admin/jobs/{parent}/children?limit=2&page=2"),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(ids_of(&second.body["items"]), vec![children[0]]);
    assert_eq!(second.body["items"][0]["status"], "COMPLETED");

    let defaults = get(&app, &format!("/api/admin/jobs/{parent}/children")).await;
    assert_eq!(defaults.body["limit"], 20);
    assert_eq!(ids_of(&defaults.body["items"]).len(), 3);

    // A job without children: an empty page, not a 404.
    let childless = get(&app, &format!("/api/admin/jobs/{stranger}/children")).await;
    assert_eq!(childless.status, StatusCode::OK);
    assert_eq!(childless.body["items"], json!([]));
    assert_eq!(childless.body["total"], 0);
}

#[sqlx::test]
async fn children_of_an_unknown_parent_is_404(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let unknown = Uuid::now_v7();
    let reply = get(&app, &format!("/api/admin/jobs/{unknown}/children")).await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        &[&unknown.to_string()],
    );
}

#[sqlx::test]
async fn children_with_a_malformed_id_or_bad_paging_is_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let parent = enqueue(&env, "NOOP", json!({})).await;
    let malformed = get(&app, "/api/admin/jobs/12345/children").await;
    assert_error(
        &malformed,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["id", "12345"],
    );
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "limit=500",
            "invalid_field",
            &["limit", "between 1 and 100"],
        ),
        ("page=0", "invalid_field", &["page"]),
        ("status=FAILED", "invalid_query", &["status"]),
    ];
    for (query, code, mentions) in cases {
        let reply = get(&app, &format!("/api/admin/jobs/{parent}/children?{query}")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code, mentions);
    }
}

// ---------------------------------------------------------------------------------
// POST /api/admin/jobs/:id/retry
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn retry_of_a_failed_job_resets_it_and_it_runs_again(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let worker = env.worker(&[Q], None);
    let id = enqueue(&env, "FAIL", json!({"retryable": false, "message": "nope"})).await;
    let failed = env.wait_status(id, JobStatus::Failed, LONG).await;
    worker.stop().await;
    assert_eq!(failed.attempts, 1);
    assert_eq!(env.executions(id).await.len(), 1);

    let retried_at = Utc::now();
    let reply = post(&app, &format!("/api/admin/jobs/{id}/retry"), None).await;
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
    assert!(in_ready_set(&env, id).await);
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
    let app = app(&env);
    let id = enqueue(&env, "ECHO", json!({"hello": "again"})).await;
    let cancelled = call(
        &app,
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
        .arg(key(&env, "ready"))
        .query_async(&mut redis)
        .await
        .unwrap();

    let reply = post(&app, &format!("/api/admin/jobs/{id}/retry"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["status"], "PENDING");
    assert_eq!(reply.body["cancelRequested"], false);
    assert_eq!(reply.body["error"], Value::Null);
    assert!(in_ready_set(&env, id).await);

    let worker = env.worker(&[Q], None);
    let done = env.wait_status(id, JobStatus::Completed, LONG).await;
    worker.stop().await;
    assert_eq!(done.result, Some(json!({"hello": "again"})));
    assert_eq!(done.attempts, 1);
}

#[sqlx::test]
async fn retry_of_a_job_in_any_other_state_is_409_naming_the_state(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    for status in [
        JobStatus::Pending,
        JobStatus::Delayed,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Completed,
    ] {
        let id = enqueue(&env, "NOOP", json!({})).await;
        set_status(&env, id, status).await;
        let reply = post(&app, &format!("/api/admin/jobs/{id}/retry"), None).await;
        assert_error(
            &reply,
            StatusCode::CONFLICT,
            "conflict",
            &[status.as_str(), "FAILED or CANCELLED"],
        );
        assert_eq!(status_of(&env, id).await.as_deref(), Some(status.as_str()));
    }
}

#[sqlx::test]
async fn retry_of_an_unknown_job_is_404(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let unknown = Uuid::now_v7();
    let reply = post(&app, &format!("/api/admin/jobs/{unknown}/retry"), None).await;
    assert_error(
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        &[&unknown.to_string()],
    );
}

#[sqlx::test]
async fn retry_with_a_malformed_id_or_a_query_is_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let reply = post(&app, "/api/admin/jobs/not-a-uuid/retry", None).await;
    assert_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["id", "not-a-uuid"],
    );
    let id = enqueue(&env, "NOOP", json!({})).await;
    set_status(&env, id, JobStatus::Failed).await;
    let reply = post(
        &app,
        &format!("/api/admin/jobs/{id}/retry?force=true"),
        None,
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_query", &["force"]);
    assert_eq!(status_of(&env, id).await.as_deref(), Some("FAILED"));
}

#[sqlx::test]
async fn retry_with_a_viewer_token_is_403(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let id = enqueue(&env, "NOOP", json!({})).await;
    set_status(&env, id, JobStatus::Failed).await;
    let path = format!("/api/admin/jobs/{id}/retry");
    let reply = call(&app, Method::POST, &path, Some(VIEWER), None).await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", &[]);
    assert_eq!(status_of(&env, id).await.as_deref(), Some("FAILED"));
}

// ---------------------------------------------------------------------------------
// Queues: stats, list, pause / resume, clean
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn queue_stats_count_each_state_of_that_queue_only(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
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
            set_status(&env, id, status).await;
        }
    }
    insert_foreign(&env, "author_data", "COMPLETED", 0).await;
    insert_foreign(&env, "author_data", "PENDING", 0).await;

    let reply = get(&app, "/api/admin/jobs/queue/diagnostics/stats").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({
            "queue": "diagnostics", "paused": false, "waiting": 2, "active": 1, "delayed": 1,
            "retrying": 2, "completed": 3, "failed": 1, "cancelled": 4
        })
    );
    let other = get(&app, "/api/admin/jobs/queue/author_data/stats").await;
    assert_eq!(other.body["waiting"], 1);
    assert_eq!(other.body["completed"], 1);
    assert_eq!(other.body["failed"], 0);
    // Viewers may read stats.
    let viewer = call(
        &app,
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
    let app = app(&env);
    enqueue(&env, "NOOP", json!({})).await;
    let failed = enqueue(&env, "NOOP", json!({})).await;
    set_status(&env, failed, JobStatus::Failed).await;
    insert_foreign(&env, "book_data", "COMPLETED", 0).await;
    // A record of a queue the configuration no longer has is not listed.
    insert_foreign(&env, "retired_queue", "COMPLETED", 0).await;
    let paused = post(&app, "/api/admin/jobs/queue/quote_data/pause", None).await;
    assert_eq!(paused.status, StatusCode::OK);

    let reply = get(&app, "/api/admin/queues").await;
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

    let bad = get(&app, "/api/admin/queues?verbose=1").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_query", &["verbose"]);
}

#[sqlx::test]
async fn queue_stats_of_an_unknown_queue_is_400_listing_the_valid_queues(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let reply = get(&app, "/api/admin/jobs/queue/nope/stats").await;
    assert_error(
        &reply,
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
    let query = get(
        &app,
        "/api/admin/jobs/queue/diagnostics/stats?status=FAILED",
    )
    .await;
    assert_error(
        &query,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        &["status"],
    );
}

#[sqlx::test]
async fn pause_and_resume_set_the_flag_in_postgres_and_redis(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let paused_key = key(&env, "paused");
    let mut redis = env.redis().await;

    let reply = post(&app, "/api/admin/jobs/queue/diagnostics/pause", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"queue": "diagnostics", "paused": true}));
    let row: Option<bool> =
        sqlx::query_scalar("SELECT paused FROM queue_state WHERE queue_name = 'diagnostics'")
            .fetch_optional(&env.pool)
            .await
            .unwrap();
    assert_eq!(row, Some(true));
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&paused_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 1);
    let stats = get(&app, "/api/admin/jobs/queue/diagnostics/stats").await;
    assert_eq!(stats.body["paused"], true);
    // Pausing twice is fine.
    let again = post(&app, "/api/admin/jobs/queue/diagnostics/pause", None).await;
    assert_eq!(again.body, json!({"queue": "diagnostics", "paused": true}));

    let reply = post(&app, "/api/admin/jobs/queue/diagnostics/resume", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"queue": "diagnostics", "paused": false}));
    let row: Option<bool> =
        sqlx::query_scalar("SELECT paused FROM queue_state WHERE queue_name = 'diagnostics'")
            .fetch_optional(&env.pool)
            .await
            .unwrap();
    assert_eq!(row, Some(false));
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&paused_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    let stats = get(&app, "/api/admin/jobs/queue/diagnostics/stats").await;
    assert_eq!(stats.body["paused"], false);
}

#[sqlx::test]
async fn pause_and_resume_of_an_unknown_queue_are_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    for action in ["pause", "resume"] {
        let reply = post(&app, &format!("/api/admin/jobs/queue/nope/{action}"), None).await;
        assert_error(
            &reply,
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
    let app = app(&env);
    let reply = call(
        &app,
        Method::POST,
        "/api/admin/jobs/queue/diagnostics/pause",
        Some(VIEWER),
        None,
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", &[]);
    let stats = get(&app, "/api/admin/jobs/queue/diagnostics/stats").await;
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
    let app = app(&env);
    let c10 = finished(&env, JobStatus::Completed, 600).await;
    let c30 = finished(&env, JobStatus::Completed, 1_800).await;
    let c20 = finished(&env, JobStatus::Completed, 1_200).await;
    let fresh = finished(&env, JobStatus::Completed, 1).await;
    let failed = finished(&env, JobStatus::Failed, 3_600).await;
    let cancelled = finished(&env, JobStatus::Cancelled, 3_600).await;
    let pending = enqueue(&env, "NOOP", json!({})).await;
    let foreign = insert_foreign(&env, "author_data", "COMPLETED", 3_600).await;
    let path = "/api/admin/jobs/queue/diagnostics/clean";
    let body =
        |status: &str, limit: i64| json!({"status": status, "graceMs": 60_000, "limit": limit});

    let reply = post(&app, path, Some(body("COMPLETED", 2))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"removed": 2}));
    assert_eq!(status_of(&env, c30).await, None);
    assert_eq!(status_of(&env, c20).await, None);
    assert!(status_of(&env, c10).await.is_some());

    let reply = post(&app, path, Some(body("COMPLETED", 10))).await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(status_of(&env, c10).await, None);
    // Within the grace: kept.
    assert!(status_of(&env, fresh).await.is_some());
    let reply = post(&app, path, Some(body("COMPLETED", 10))).await;
    assert_eq!(reply.body, json!({"removed": 0}));

    let reply = post(&app, path, Some(body("FAILED", 10))).await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(status_of(&env, failed).await, None);
    let reply = post(&app, path, Some(body("CANCELLED", 10))).await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(status_of(&env, cancelled).await, None);

    // A zero grace takes the fresh one too; other states and queues are untouched.
    let reply = post(
        &app,
        path,
        Some(json!({"status": "COMPLETED", "graceMs": 0, "limit": 10})),
    )
    .await;
    assert_eq!(reply.body, json!({"removed": 1}));
    assert_eq!(status_of(&env, pending).await.as_deref(), Some("PENDING"));
    assert_eq!(status_of(&env, foreign).await.as_deref(), Some("COMPLETED"));
}

#[sqlx::test]
async fn clean_of_a_non_terminal_status_is_400_listing_the_valid_ones(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let done = finished(&env, JobStatus::Completed, 3_600).await;
    for status in ["PENDING", "RUNNING", "completed", "DONE"] {
        let reply = post(
            &app,
            "/api/admin/jobs/queue/diagnostics/clean",
            Some(json!({"status": status, "graceMs": 0, "limit": 10})),
        )
        .await;
        assert_error(
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_field",
            &["status", status, "COMPLETED, FAILED, CANCELLED"],
        );
    }
    assert!(status_of(&env, done).await.is_some());
}

#[sqlx::test]
async fn clean_with_a_bad_body_or_queue_is_400_naming_the_field(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
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
        let reply = post(&app, path, Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {reply:?}");
        assert_error(&reply, StatusCode::BAD_REQUEST, code, mentions);
    }
    let not_json = call(&app, Method::POST, path, Some(ADMIN), Some("{status")).await;
    assert_error(&not_json, StatusCode::BAD_REQUEST, "invalid_json", &[]);
    let unknown = post(
        &app,
        "/api/admin/jobs/queue/nope/clean",
        Some(json!({"status": "COMPLETED", "graceMs": 0, "limit": 10})),
    )
    .await;
    assert_error(
        &unknown,
        StatusCode::BAD_REQUEST,
        "unknown_queue",
        &["nope", "diagnostics"],
    );
    assert!(status_of(&env, done).await.is_some());
}

// ---------------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn dlq_lists_the_dead_letters_of_failed_jobs(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let empty = get(&app, "/api/admin/dlq/diagnostics").await;
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

    let reply = get(&app, "/api/admin/dlq/diagnostics").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let entries = reply.body.as_array().expect("an array").clone();
    assert_eq!(entries.len(), 2);
    let in_stream_order = stream_job_ids(&env).await;
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

    let one = get(&app, "/api/admin/dlq/diagnostics?limit=1").await;
    assert_eq!(one.body.as_array().unwrap().len(), 1);
    assert_eq!(one.body[0], entries[0]);
    // Each queue has its own stream.
    let other = get(&app, "/api/admin/dlq/book_data").await;
    assert_eq!(other.body, json!([]));
}

#[sqlx::test]
async fn dlq_list_with_a_bad_limit_parameter_or_queue_is_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
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
        let reply = get(&app, &format!("/api/admin/dlq/{tail}")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code, mentions);
    }
    let max = get(&app, "/api/admin/dlq/diagnostics?limit=1000").await;
    assert_eq!(max.status, StatusCode::OK);
}

/// A diagnostics job in FAILED.
async fn failed_job(env: &TestEnv) -> Uuid {
    let id = enqueue(env, "NOOP", json!({})).await;
    set_status(env, id, JobStatus::Failed).await;
    id
}

#[sqlx::test]
async fn dlq_replay_without_ids_retries_every_dead_lettered_failed_job(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let a = failed_job(&env).await;
    let b = failed_job(&env).await;
    // Failed, but with no dead letter: not part of a replay.
    let not_in_stream = failed_job(&env).await;
    // A stale entry: the job was completed since.
    let completed = enqueue(&env, "NOOP", json!({})).await;
    set_status(&env, completed, JobStatus::Completed).await;
    // Same id, other queue's record: not this queue's to replay.
    let foreign = insert_foreign(&env, "author_data", "FAILED", 0).await;
    add_dead_letter(&env, a, "x").await;
    add_dead_letter(&env, b, "y").await;
    add_dead_letter(&env, completed, "z").await;
    add_dead_letter(&env, foreign, "w").await;
    let mut redis = env.redis().await;
    let _: i64 = redis::cmd("DEL")
        .arg(key(&env, "ready"))
        .query_async(&mut redis)
        .await
        .unwrap();

    let reply = post(&app, "/api/admin/dlq/diagnostics/replay", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"replayed": 2}));
    for id in [a, b] {
        let job = env.job(id).await;
        assert_eq!(job.status, JobStatus::Pending);
        assert_eq!(job.attempts, 0);
        assert_eq!(job.error, None);
        assert!(in_ready_set(&env, id).await);
    }
    assert_eq!(
        status_of(&env, not_in_stream).await.as_deref(),
        Some("FAILED")
    );
    assert_eq!(
        status_of(&env, completed).await.as_deref(),
        Some("COMPLETED")
    );
    assert_eq!(status_of(&env, foreign).await.as_deref(), Some("FAILED"));
    assert!(stream_job_ids(&env).await.is_empty());
    let listed = get(&app, "/api/admin/dlq/diagnostics").await;
    assert_eq!(listed.body, json!([]));

    // `{}` also means all; nothing is left.
    let again = post(&app, "/api/admin/dlq/diagnostics/replay", Some(json!({}))).await;
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
    let app = app(&env);
    let a = failed_job(&env).await;
    let b = failed_job(&env).await;
    let c = failed_job(&env).await;
    let completed = enqueue(&env, "NOOP", json!({})).await;
    set_status(&env, completed, JobStatus::Completed).await;
    add_dead_letter(&env, a, "first failure").await;
    add_dead_letter(&env, b, "b").await;
    add_dead_letter(&env, a, "second failure").await;
    add_dead_letter(&env, c, "c").await;
    add_dead_letter(&env, completed, "stale").await;

    let body = json!({"jobIds": [a, c, completed, Uuid::now_v7()]});
    let reply = post(&app, "/api/admin/dlq/diagnostics/replay", Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"replayed": 2}));
    assert_eq!(status_of(&env, a).await.as_deref(), Some("PENDING"));
    assert_eq!(status_of(&env, c).await.as_deref(), Some("PENDING"));
    assert_eq!(status_of(&env, b).await.as_deref(), Some("FAILED"));
    assert_eq!(
        status_of(&env, completed).await.as_deref(),
        Some("COMPLETED")
    );
    assert!(in_ready_set(&env, a).await && in_ready_set(&env, c).await);
    // Both of a's entries went; b's and the unreplayed stale one stay.
    assert_eq!(stream_job_ids(&env).await, vec![b, completed]);

    // Replaying a job that is PENDING now does nothing.
    let again = post(
        &app,
        "/api/admin/dlq/diagnostics/replay",
        Some(json!({"jobIds": [a]})),
    )
    .await;
    assert_eq!(again.body, json!({"replayed": 0}));
}

#[sqlx::test]
async fn dlq_replay_with_a_bad_body_or_queue_is_400_and_changes_nothing(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
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
        let reply = call(&app, Method::POST, path, Some(ADMIN), Some(body)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code, mentions);
    }
    let unknown = post(&app, "/api/admin/dlq/nope/replay", None).await;
    assert_error(
        &unknown,
        StatusCode::BAD_REQUEST,
        "unknown_queue",
        &["nope", "diagnostics"],
    );
    assert_eq!(status_of(&env, a).await.as_deref(), Some("FAILED"));
    assert_eq!(stream_job_ids(&env).await, vec![a]);
}

#[sqlx::test]
async fn dlq_replay_with_a_viewer_token_is_403(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let a = failed_job(&env).await;
    add_dead_letter(&env, a, "x").await;
    let reply = call(
        &app,
        Method::POST,
        "/api/admin/dlq/diagnostics/replay",
        Some(VIEWER),
        None,
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", &[]);
    assert_eq!(status_of(&env, a).await.as_deref(), Some("FAILED"));
    // Viewers may read the dead letters.
    let listed = call(
        &app,
        Method::GET,
        "/api/admin/dlq/diagnostics",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body[0]["jobId"], a.to_string());
}

// ---------------------------------------------------------------------------------
// GET /api/admin/workers
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn workers_lists_a_live_worker_until_it_stops(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let none = get(&app, "/api/admin/workers").await;
    assert_eq!(none.status, StatusCode::OK, "{none:?}");
    assert_eq!(none.body, json!([]));

    let worker = env.worker(&[Q], Some(3));
    let deadline = Instant::now() + LONG;
    let listed = loop {
        let reply = get(&app, "/api/admin/workers").await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        if reply.body.as_array().is_some_and(|a| !a.is_empty()) {
            break reply.body;
        }
        assert!(Instant::now() < deadline, "the worker never showed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let workers = listed.as_array().unwrap();
    assert_eq!(workers.len(), 1, "{listed}");
    let w = &workers[0];
    let keys: BTreeSet<&str> = w.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "host",
            "pid",
            "queues",
            "concurrency",
            "running",
            "startedAt",
            "lastHeartbeat"
        ])
    );
    assert_eq!(w["id"], worker.id);
    assert_eq!(w["pid"], std::process::id());
    assert!(w["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(w["queues"], json!([Q]));
    assert_eq!(w["concurrency"], 3);
    assert_eq!(w["running"], 0);
    assert!(time_of(&w["startedAt"]) <= time_of(&w["lastHeartbeat"]));

    worker.stop().await;
    let gone = get(&app, "/api/admin/workers").await;
    assert_eq!(gone.body, json!([]));
}

#[sqlx::test]
async fn a_worker_killed_with_sigkill_leaves_the_list_and_its_row_is_pruned(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let short = [
        ("CONVEYOR__WORKER__LEASE_MS", "1000"),
        ("CONVEYOR__WORKER__HEARTBEAT_MS", "200"),
    ];
    let api = env.spawn_api(&short).await;
    let worker = env.spawn_worker(&["--queues", Q], &short);
    let listed = |body: &Value| {
        body.as_array()
            .is_some_and(|a| a.iter().any(|w| w["pid"] == worker.pid))
    };
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM workers WHERE pid = $1")
            .bind(worker.pid as i32)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let deadline = Instant::now() + LONG;
    loop {
        let (status, body) = api.call(Method::GET, "/api/admin/workers", None).await;
        assert_eq!(status, 200, "{body}");
        if listed(&body) && rows().await == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never showed up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    env.signal(&worker, "KILL");
    env.wait_exit(&worker, LONG).await;
    let deadline = Instant::now() + LONG;
    loop {
        let (status, body) = api.call(Method::GET, "/api/admin/workers", None).await;
        assert_eq!(status, 200, "{body}");
        let left = rows().await;
        if !listed(&body) && left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s the killed worker is still listed ({}) or has {left} row(s)",
            listed(&body)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test]
async fn workers_skips_unreadable_keys_and_other_prefixes(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let app = app(&env);
    let mut redis = env.redis().await;
    let info = json!({
        "id": "host-1:42:0000beef", "host": "host-1", "pid": 42, "queues": ["book_data", "diagnostics"],
        "concurrency": 5, "running": 2, "startedAt": "2026-01-01T00:00:00Z",
        "lastHeartbeat": "2026-01-01T00:00:10Z"
    });
    let other_prefix = format!("{}x:worker:someone-else", env.prefix);
    for (k, v) in [
        (
            format!("{}:worker:junk", env.prefix),
            "not json".to_string(),
        ),
        (
            format!("{}:worker:host-1:42:0000beef", env.prefix),
            info.to_string(),
        ),
        (other_prefix.clone(), info.to_string()),
    ] {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(v)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    let reply = get(&app, "/api/admin/workers").await;
    let _: i64 = redis::cmd("DEL")
        .arg(&other_prefix)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!([info]));

    let bad = get(&app, "/api/admin/workers?queue=diagnostics").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_query", &["queue"]);
}
