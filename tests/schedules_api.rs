//! The scheduled-jobs routes in-process (real router, `oneshot`): success and each
//! error answer of list, create, read, PATCH, DELETE and trigger, and the NOTIFY a
//! change sends.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use conveyor_tests::http::{time_of, TestApi, ADMIN, VIEWER};
use conveyor_tests::TestEnv;
use serde_json::{json, Value};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

const BASE: &str = "/api/admin/scheduled-jobs";

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
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let reply = api.post(BASE, nightly()).await;
    let created = reply.ok(StatusCode::CREATED);
    let id = reply.id();
    assert_eq!(created["timezone"], "Asia/Shanghai");
    assert_eq!(created["status"], 1);
    assert_eq!(created["priority"], 10);
    assert_eq!(created["retryAttempts"], 4);
    assert_eq!(created["retryDelay"], 2000);
    assert_eq!(created["timeout"], 9000);
    assert_eq!(created["lastRunAt"], Value::Null);
    // 02:00 in Shanghai is 18:00 UTC.
    let next = time_of(&created["nextRunAt"]);
    assert_eq!(next.format("%H:%M:%S").to_string(), "18:00:00");
    assert!(next > Utc::now());

    let one = api.get(&format!("{BASE}/{id}")).await;
    let one = one.ok(StatusCode::OK);
    assert_eq!(one["name"], "nightly-echo");
    assert!(one.get("nextRunAt").is_some() && one.get("lastRunAt").is_some());

    // Viewers may read.
    let list = api.get_as(Some(VIEWER), BASE).await;
    assert_eq!(list.ok(StatusCode::OK).as_array().unwrap().len(), 1);
    // But not write.
    let refused = api
        .send(Method::POST, BASE, Some(VIEWER), Some(nightly()))
        .await;
    refused.assert_error(StatusCode::FORBIDDEN, "forbidden");

    // PATCH: a new expression and zone recompute nextRunAt; null clears a field.
    let mut listener = PgListener::connect_with(&env.pool).await.unwrap();
    listener.listen("conveyor_schedules").await.unwrap();
    let changed = api
        .patch(
            &format!("{BASE}/{id}"),
            json!({"cronExpression": "30 * * * *", "timezone": "UTC", "timeout": null}),
        )
        .await;
    let changed = changed.ok(StatusCode::OK);
    assert_eq!(changed["cronExpression"], "30 * * * *");
    assert_eq!(changed["timeout"], Value::Null);
    assert_eq!(changed["retryDelay"], 2000, "untouched");
    let next: DateTime<Utc> = time_of(&changed["nextRunAt"]);
    assert_eq!(next.format("%M:%S").to_string(), "30:00");
    let note = tokio::time::timeout(std::time::Duration::from_secs(2), listener.recv())
        .await
        .expect("a NOTIFY within 2 s")
        .unwrap();
    assert_eq!(note.payload(), id.to_string());

    // Disabled: no next run; enabled again: the next tick from now.
    let off = api
        .patch(&format!("{BASE}/{id}"), json!({"status": 0}))
        .await;
    assert_eq!(off.body["status"], 0);
    assert_eq!(off.body["nextRunAt"], Value::Null);
    let on = api
        .patch(&format!("{BASE}/{id}"), json!({"status": 1}))
        .await;
    assert!(on.body["nextRunAt"].is_string());

    let deleted = api.delete(&format!("{BASE}/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api.get(&format!("{BASE}/{id}")).await;
    gone.assert_error(StatusCode::NOT_FOUND, "not_found");
    let again = api.delete(&format!("{BASE}/{id}")).await;
    again.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn invalid_bodies_are_400_naming_the_field(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
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
        let reply = api.post(BASE, body.clone()).await;
        let (_, message) = reply.error(StatusCode::BAD_REQUEST);
        assert!(message.contains(field), "{field}: {body}: {reply:?}");
    }
    let reply = api.post(BASE, json!({"name": "x"})).await;
    reply.error(StatusCode::BAD_REQUEST);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing recorded");

    // PATCH refuses the same way and changes nothing.
    let id = api.post(BASE, nightly()).await.id();
    for (patch, field) in [
        (json!({"cronExpression": "* *"}), "cronExpression"),
        (json!({"timezone": "Nowhere"}), "timezone"),
        (json!({"bogus": true}), "bogus"),
    ] {
        let reply = api.patch(&format!("{BASE}/{id}"), patch).await;
        let (_, message) = reply.error(StatusCode::BAD_REQUEST);
        assert!(message.contains(field), "{field}: {reply:?}");
    }
    let same = api.get(&format!("{BASE}/{id}")).await;
    assert_eq!(same.body["cronExpression"], "0 0 2 * * *");
    assert_eq!(same.body["timezone"], "Asia/Shanghai");
}

#[sqlx::test]
async fn unknown_ids_are_404_bad_ids_400_and_names_unique(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
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
        let reply = api.send(method.clone(), &path, Some(ADMIN), body).await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    let malformed = api.get(&format!("{BASE}/not-a-uuid")).await;
    malformed.assert_error(StatusCode::BAD_REQUEST, "invalid_field");

    assert_eq!(api.post(BASE, nightly()).await.status, StatusCode::CREATED);
    let twice = api.post(BASE, nightly()).await;
    twice.assert_error_naming(StatusCode::CONFLICT, "conflict", &["name"]);
    let mut other = nightly();
    other["name"] = json!("other");
    let other = api.post(BASE, other).await.id();
    let renamed = api
        .patch(&format!("{BASE}/{other}"), json!({"name": "nightly-echo"}))
        .await;
    renamed.assert_error(StatusCode::CONFLICT, "conflict");
    let wrong = api.get_as(Some("wrong"), BASE).await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test]
async fn trigger_enqueues_the_job_at_once(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let mut body = nightly();
    body["status"] = json!(2); // paused: trigger still runs it
    let id = api.post(BASE, body).await.id();
    let reply = api.post_empty(&format!("{BASE}/{id}/trigger")).await;
    let job = reply.ok(StatusCode::CREATED);
    assert_eq!(job["status"], "PENDING");
    assert_eq!(job["jobType"], "ECHO");
    assert_eq!(job["payload"], json!({"a": 1}));
    assert_eq!(job["maxAttempts"], 4);
    assert_eq!(job["priority"], 10);
    assert_eq!(job["timeoutMs"], 9000);
    let job_id = reply.id();
    assert_eq!(env.job(job_id).await.id, job_id);
    let s = api.get(&format!("{BASE}/{id}")).await;
    assert_eq!(s.body["lastJobId"], job["id"]);
    assert!(s.body["lastRunAt"].is_string());
}
