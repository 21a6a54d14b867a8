//! The scheduled-jobs routes in-process (real router, `oneshot`): success and each
//! error answer of list, create, read, PATCH, DELETE and trigger, and the NOTIFY a
//! change sends.

use axum::http::{Method, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use conveyor_tests::{http, TestEnv};
use serde_json::{json, Value};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN: &str = "admin-token";
const VIEWER: &str = "viewer-token";
const BASE: &str = "/api/admin/scheduled-jobs";

async fn setup(pool: PgPool) -> (TestEnv, Router) {
    let env = TestEnv::new(pool).await;
    let app = http::router(&env, &[ADMIN], &[VIEWER]);
    (env, app)
}

async fn call_as(
    app: &Router,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    http::send_json(app, method, path, Some(token), body).await
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_as(app, ADMIN, method, path, body).await
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

fn nightly() -> Value {
    json!({
        "name": "nightly-echo",
        "description": "echoes",
        "queueName": "diagnostics",
        "jobType": "ECHO",
        "cronExpression": "0 0 2 * * *",
        "payload": {"a": 1},
        "retryAttempts": 4,
        "retryDelay": 2000,
        "timeout": 9000,
        "priority": "HIGH"
    })
}

#[sqlx::test]
async fn create_read_list_patch_delete(pool: PgPool) {
    let (env, app) = setup(pool).await;
    let (status, created) = call(&app, Method::POST, BASE, Some(nightly())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["timezone"], "Asia/Shanghai");
    assert_eq!(created["status"], 1);
    assert_eq!(created["priority"], 10);
    assert_eq!(created["retryAttempts"], 4);
    assert_eq!(created["retryDelay"], 2000);
    assert_eq!(created["timeout"], 9000);
    assert_eq!(created["lastRunAt"], Value::Null);
    // 02:00 in Shanghai is 18:00 UTC.
    let next: DateTime<Utc> = created["nextRunAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.format("%H:%M:%S").to_string(), "18:00:00");
    assert!(next > Utc::now());

    let (status, one) = call(&app, Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["name"], "nightly-echo");
    assert!(one.get("nextRunAt").is_some() && one.get("lastRunAt").is_some());

    // Viewers may read.
    let (status, list) = call_as(&app, VIEWER, Method::GET, BASE, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    // But not write.
    let (status, _) = call_as(&app, VIEWER, Method::POST, BASE, Some(nightly())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // PATCH: a new expression and zone recompute nextRunAt; null clears a field.
    let mut listener = PgListener::connect_with(&env.pool).await.unwrap();
    listener.listen("conveyor_schedules").await.unwrap();
    let (status, changed) = call(
        &app,
        Method::PATCH,
        &format!("{BASE}/{id}"),
        Some(json!({"cronExpression": "30 * * * *", "timezone": "UTC", "timeout": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["cronExpression"], "30 * * * *");
    assert_eq!(changed["timeout"], Value::Null);
    assert_eq!(changed["retryDelay"], 2000, "untouched");
    let next: DateTime<Utc> = changed["nextRunAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.format("%M:%S").to_string(), "30:00");
    let note = tokio::time::timeout(std::time::Duration::from_secs(2), listener.recv())
        .await
        .expect("a NOTIFY within 2 s")
        .unwrap();
    assert_eq!(note.payload(), id);

    // Disabled: no next run; enabled again: the next tick from now.
    let (_, off) = call(
        &app,
        Method::PATCH,
        &format!("{BASE}/{id}"),
        Some(json!({"status": 0})),
    )
    .await;
    assert_eq!(off["status"], 0);
    assert_eq!(off["nextRunAt"], Value::Null);
    let (_, on) = call(
        &app,
        Method::PATCH,
        &format!("{BASE}/{id}"),
        Some(json!({"status": 1})),
    )
    .await;
    assert!(on["nextRunAt"].is_string());

    let (status, _) = call(&app, Method::DELETE, &format!("{BASE}/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = call(&app, Method::DELETE, &format!("{BASE}/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn invalid_bodies_are_400_naming_the_field(pool: PgPool) {
    let (env, app) = setup(pool).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"cronExpression": "not a cron"}), "cronExpression"),
        (json!({"cronExpression": "61 * * * * *"}), "cronExpression"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"queueName": "nope"}), "queueName"),
        (json!({"jobType": "NOPE"}), "jobType"),
        (json!({"status": 3}), "status"),
        (json!({"retryAttempts": 0}), "retryAttempts"),
        (json!({"timeout": 0}), "timeout"),
        (json!({"priority": 5000}), "priority"),
        (json!({"misfirePolicy": "sometimes"}), "misfirePolicy"),
        (json!({"payload": {"ms": "long"}, "jobType": "SLEEP"}), "ms"),
        (json!({"unknownField": 1}), "unknownField"),
    ];
    for (patch, field) in cases {
        let mut body = nightly();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = call(&app, Method::POST, BASE, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(message(&answer).contains(field), "{field}: {answer}");
    }
    let (status, answer) = call(&app, Method::POST, BASE, Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing recorded");

    // PATCH refuses the same way and changes nothing.
    let (_, created) = call(&app, Method::POST, BASE, Some(nightly())).await;
    let id = created["id"].as_str().unwrap();
    for (patch, field) in [
        (json!({"cronExpression": "* *"}), "cronExpression"),
        (json!({"timezone": "Nowhere"}), "timezone"),
        (json!({"bogus": true}), "bogus"),
    ] {
        let (status, answer) =
            call(&app, Method::PATCH, &format!("{BASE}/{id}"), Some(patch)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(message(&answer).contains(field), "{field}: {answer}");
    }
    let (_, same) = call(&app, Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(same["cronExpression"], "0 0 2 * * *");
    assert_eq!(same["timezone"], "Asia/Shanghai");
}

#[sqlx::test]
async fn unknown_ids_are_404_bad_ids_400_and_names_unique(pool: PgPool) {
    let (_env, app) = setup(pool).await;
    let missing = Uuid::new_v4();
    for (method, path, body) in [
        (Method::GET, format!("{BASE}/{missing}"), None),
        (
            Method::PATCH,
            format!("{BASE}/{missing}"),
            Some(json!({"status": 0})),
        ),
        (Method::DELETE, format!("{BASE}/{missing}"), None),
        (Method::POST, format!("{BASE}/{missing}/trigger"), None),
    ] {
        let (status, answer) = call(&app, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let (status, _) = call(&app, Method::GET, &format!("{BASE}/not-a-uuid"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = call(&app, Method::POST, BASE, Some(nightly())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = call(&app, Method::POST, BASE, Some(nightly())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(message(&answer).contains("name"));
    let mut other = nightly();
    other["name"] = json!("other");
    let (_, created) = call(&app, Method::POST, BASE, Some(other)).await;
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("{BASE}/{}", created["id"].as_str().unwrap()),
        Some(json!({"name": "nightly-echo"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = call_as(&app, "wrong", Method::GET, BASE, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn trigger_enqueues_the_job_at_once(pool: PgPool) {
    let (env, app) = setup(pool).await;
    let mut body = nightly();
    body["status"] = json!(2); // paused: trigger still runs it
    let (_, created) = call(&app, Method::POST, BASE, Some(body)).await;
    let id = created["id"].as_str().unwrap();
    let (status, job) = call(&app, Method::POST, &format!("{BASE}/{id}/trigger"), None).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["status"], "PENDING");
    assert_eq!(job["jobType"], "ECHO");
    assert_eq!(job["payload"], json!({"a": 1}));
    assert_eq!(job["maxAttempts"], 4);
    assert_eq!(job["priority"], 10);
    assert_eq!(job["timeoutMs"], 9000);
    let job_id: Uuid = job["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(env.job(job_id).await.id, job_id);
    let (_, s) = call(&app, Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(s["lastJobId"], job["id"]);
    assert!(s["lastRunAt"].is_string());
}
