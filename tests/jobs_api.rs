//! `POST /api/admin/jobs`, `POST /api/admin/jobs/bulk` and `GET
//! /api/admin/jobs/{id}` in-process: each test builds the real router on its own
//! database and Redis prefix, calls it and checks the answer, the PostgreSQL
//! records and the Redis keys: creating (options, idempotency, validation, body
//! limits), bulk creating, reading one job, and the token checks of these routes.
//! Every refused request is also checked to have left no job row behind.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::Utc;
use conveyor_tests::http::{assert_refused, time_of, TestApi, ADMIN, VIEWER};
use conveyor_tests::{wait_for, TestEnv};
use queue_core::broker::QueueKeys;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

const Q: &str = "diagnostics";
const JOBS: &str = "/api/admin/jobs";
const BULK: &str = "/api/admin/jobs/bulk";

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

async fn setup(pool: PgPool) -> (TestEnv, TestApi) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    (env, api)
}

/// A valid create body for the diagnostics queue.
fn create_body(job_type: &str, payload: Value) -> Value {
    json!({ "queueName": Q, "jobType": job_type, "payload": payload })
}

/// `create_body` with extra top-level fields.
fn create_body_with(job_type: &str, payload: Value, extra: Value) -> Value {
    let mut body = create_body(job_type, payload);
    let obj = body.as_object_mut().unwrap();
    for (k, v) in extra.as_object().expect("extra is an object") {
        obj.insert(k.clone(), v.clone());
    }
    body
}

fn keys(env: &TestEnv) -> QueueKeys {
    env.conveyor.broker().keys(Q)
}

// ---------------------------------------------------------------------------------
// POST /api/admin/jobs
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn create_returns_201_with_location_and_a_pending_camel_case_job(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let before = Utc::now();
    let reply = api
        .post(JOBS, create_body("ECHO", json!({"hello": "world"})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let id = reply.id();
    assert_eq!(
        reply.header(header::LOCATION),
        Some(format!("/api/admin/jobs/{id}").as_str())
    );

    let job = &reply.body;
    assert_eq!(job["queueName"], Q);
    assert_eq!(job["jobType"], "ECHO");
    assert_eq!(job["status"], "PENDING");
    assert_eq!(job["payload"], json!({"hello": "world"}));
    assert_eq!(job["priority"], 5, "NORMAL is the default priority");
    assert_eq!(job["maxAttempts"], 3, "the queue's attempts");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["progress"], 0);
    assert_eq!(job["cancelRequested"], false);
    for field in [
        "result",
        "error",
        "progressMessage",
        "parentId",
        "idempotencyKey",
        "timeoutMs",
        "startedAt",
        "completedAt",
    ] {
        assert!(
            job.get(field).is_some_and(Value::is_null),
            "`{field}` should be present and null: {job}"
        );
    }
    let run_at = time_of(&job["runAt"]);
    let created_at = time_of(&job["createdAt"]);
    assert!(run_at <= Utc::now() && run_at >= before - chrono::Duration::seconds(5));
    assert!(created_at >= before - chrono::Duration::seconds(5));
    for snake in [
        "queue_name",
        "job_type",
        "max_attempts",
        "run_at",
        "created_at",
    ] {
        assert!(job.get(snake).is_none(), "snake_case `{snake}` in {job}");
    }

    // Recorded once, and its id is in the queue's ready set.
    assert_eq!(env.job_rows().await, 1);
    assert_eq!(env.job(id).await.status.as_str(), "PENDING");
    assert!(
        env.zscore(&keys(&env).ready, &id.to_string())
            .await
            .is_some(),
        "the job id is not in the ready set"
    );
}

#[sqlx::test]
async fn create_accepts_the_named_priority_high_as_10(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api
        .post(
            JOBS,
            create_body_with("NOOP", json!({}), json!({"priority": "HIGH"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["priority"], 10);
    assert_eq!(env.job(reply.id()).await.priority, 10);
}

#[sqlx::test]
async fn create_with_delay_ms_is_delayed_with_run_at_in_the_future_and_in_the_delayed_set(
    pool: PgPool,
) {
    let (env, api) = setup(pool).await;
    let before = Utc::now();
    let reply = api
        .post(
            JOBS,
            create_body_with("NOOP", json!({}), json!({"delayMs": 60_000, "priority": 7})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let id = reply.id();
    assert_eq!(reply.body["status"], "DELAYED");
    let run_at = time_of(&reply.body["runAt"]);
    assert!(
        run_at >= before + chrono::Duration::seconds(59)
            && run_at <= Utc::now() + chrono::Duration::seconds(61),
        "runAt {run_at} is not about one minute after {before}"
    );
    assert_eq!(env.job(id).await.status.as_str(), "DELAYED");

    // In the delayed set as `priority|id`, scored by its run-at; not ready yet.
    let score = env
        .zscore(&keys(&env).delayed, &format!("7|{id}"))
        .await
        .expect("`7|<id>` is not in the delayed set");
    assert_eq!(score as i64, run_at.timestamp_millis());
    assert_eq!(env.zscore(&keys(&env).ready, &id.to_string()).await, None);
}

#[sqlx::test]
async fn create_with_run_at_in_the_future_is_delayed_until_then(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let at = "2099-01-02T03:04:05.678Z";
    let body = create_body_with("NOOP", json!({}), json!({ "runAt": at }));
    let reply = api.post(JOBS, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["status"], "DELAYED");
    let run_at = time_of(&reply.body["runAt"]);
    assert_eq!(run_at, time_of(&json!(at)));
    let id = reply.id();
    let score = env
        .zscore(&keys(&env).delayed, &format!("5|{id}"))
        .await
        .expect("`5|<id>` is not in the delayed set");
    assert_eq!(score as i64, run_at.timestamp_millis());
}

// ---------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn same_idempotency_key_twice_in_a_queue_answers_200_with_the_first_job(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body_with("ECHO", json!({"n": 1}), json!({"idempotencyKey": "k-1"}));
    let first = api.post(JOBS, body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.body["idempotencyKey"], "k-1");

    // Same key, different payload: the first job is returned untouched.
    let again = create_body_with("ECHO", json!({"n": 2}), json!({"idempotencyKey": "k-1"}));
    let second = api.post(JOBS, again).await;
    assert_eq!(second.status, StatusCode::OK, "{second:?}");
    assert_eq!(second.id(), first.id());
    assert_eq!(second.body["payload"], json!({"n": 1}));
    assert_eq!(
        second.header(header::LOCATION),
        Some(format!("/api/admin/jobs/{}", first.id()).as_str())
    );
    assert_eq!(env.job_rows().await, 1);
}

#[sqlx::test]
async fn concurrent_creates_with_one_idempotency_key_record_one_job(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body_with("NOOP", json!({}), json!({"idempotencyKey": "race"}));
    let replies = futures::future::join_all((0..12).map(|_| api.post(JOBS, body.clone()))).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one request creates the job");
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::CREATED || r.status == StatusCode::OK),
        "{replies:?}"
    );
    let id = replies[0].id();
    assert!(replies.iter().all(|r| r.id() == id), "one id for all");
    assert_eq!(env.job_rows().await, 1);
}

/// Rows whose payload `n` is `n`.
async fn rows_with_n(env: &TestEnv, n: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE payload->>'n' = $1")
        .bind(n)
        .fetch_one(&env.pool)
        .await
        .expect("count rows")
}

#[sqlx::test]
async fn an_enqueue_whose_caller_left_while_it_waited_for_the_batch_is_not_written(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let noop = |n: &str| queue_core::job::NewJob::new(Q, "NOOP", json!({ "n": n }));
    // Hold the batch writer's first INSERT on a table lock, so the next requests
    // queue behind it.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE jobs IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let first = {
        let conveyor = env.conveyor.clone();
        let job = noop("first");
        tokio::spawn(async move { conveyor.enqueue(job).await })
    };
    wait_for(Duration::from_secs(10), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE relation = 'jobs'::regclass AND NOT granted",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (waiting > 0)
            .then_some(())
            .ok_or("the first insert never waited on the lock".to_string())
    })
    .await;
    // Queued, then abandoned (as when the client's connection closes).
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        env.conveyor.enqueue(noop("abandoned")),
    )
    .await;
    assert!(abandoned.is_err(), "it must still have been waiting");
    let kept = {
        let conveyor = env.conveyor.clone();
        let job = noop("kept");
        tokio::spawn(async move { conveyor.enqueue(job).await })
    };
    // Nothing outside the batch writer shows `kept` queued behind the lock: give it
    // a moment to get there (were it later, it would still have to be written).
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.commit().await.unwrap();

    first.await.unwrap().expect("the first enqueue");
    kept.await.unwrap().expect("the kept enqueue");
    assert_eq!(rows_with_n(&env, "first").await, 1);
    assert_eq!(rows_with_n(&env, "kept").await, 1);
    assert_eq!(
        rows_with_n(&env, "abandoned").await,
        0,
        "a request whose caller left before its batch was written must not be written"
    );
}

// ---------------------------------------------------------------------------------
// Validation errors of POST /api/admin/jobs
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn create_in_an_unknown_queue_is_400_unknown_queue_listing_the_valid_queues(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = json!({"queueName": "no_such_queue", "jobType": "NOOP", "payload": {}});
    let reply = api.post(JOBS, body).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "unknown_queue",
        &[
            "queueName",
            "no_such_queue",
            "author_data",
            "book_data",
            "quote_data",
            "batch_orchestrator",
            "diagnostics",
        ],
    )
    .await;
}

#[sqlx::test]
async fn create_with_an_unknown_job_type_is_400_unknown_job_type(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api.post(JOBS, create_body("NO_SUCH_TYPE", json!({}))).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "unknown_job_type",
        &["jobType", "NO_SUCH_TYPE", "ECHO"],
    )
    .await;
}

#[sqlx::test]
async fn create_with_a_payload_not_fitting_its_type_is_400_naming_the_payload_field(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api
        .post(JOBS, create_body("SLEEP", json!({"ms": "x"})))
        .await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["payload.ms"],
    )
    .await;
}

#[sqlx::test]
async fn create_with_an_unknown_top_level_field_is_400_naming_it(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body_with("NOOP", json!({}), json!({"colour": "red"}));
    let reply = api.post(JOBS, body).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["colour"],
    )
    .await;
}

#[sqlx::test]
async fn create_without_payload_is_400_naming_payload(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api
        .post(JOBS, json!({"queueName": Q, "jobType": "NOOP"}))
        .await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_body",
        &["payload"],
    )
    .await;
}

#[sqlx::test]
async fn create_with_invalid_json_is_400_invalid_json(pool: PgPool) {
    let (env, api) = setup(pool).await;
    for raw in [
        &br#"{"queueName": "diagnostics", "jobType": "NOOP", "payload": {}"#[..],
        &br#"{"queueName": diagnostics}"#[..],
        &br#"{"queueName": "diagnostics", "jobType": "NOOP", "payload": {}} trailing"#[..],
    ] {
        let reply = api
            .send_raw(Method::POST, JOBS, Some(ADMIN), Some(raw.to_vec()))
            .await;
        assert_refused(
            &env,
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_json",
            &["JSON"],
        )
        .await;
    }
}

#[sqlx::test]
async fn create_with_both_delay_ms_and_run_at_is_400_naming_them(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let run_at = (Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let body = create_body_with("NOOP", json!({}), json!({"delayMs": 1000, "runAt": run_at}));
    let reply = api.post(JOBS, body).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["delayMs", "runAt"],
    )
    .await;
}

#[sqlx::test]
async fn create_with_max_attempts_0_is_400_naming_max_attempts(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body_with("NOOP", json!({}), json!({"maxAttempts": 0}));
    let reply = api.post(JOBS, body).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["maxAttempts"],
    )
    .await;
}

#[sqlx::test]
async fn create_with_priority_5000_is_400_naming_priority(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body_with("NOOP", json!({}), json!({"priority": 5000}));
    let reply = api.post(JOBS, body).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["priority"],
    )
    .await;
}

#[sqlx::test]
async fn create_with_a_body_over_1_mib_is_413_payload_too_large(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body("ECHO", json!({"blob": "x".repeat(1_100_000)}));
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() > 1 << 20);
    let reply = api
        .send_raw(Method::POST, JOBS, Some(ADMIN), Some(bytes))
        .await;
    assert_refused(
        &env,
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["limit"],
    )
    .await;
}

#[sqlx::test]
async fn create_with_a_body_just_under_1_mib_is_accepted(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body("ECHO", json!({"blob": "x".repeat(1_000_000)}));
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() < 1 << 20);
    let reply = api
        .send_raw(Method::POST, JOBS, Some(ADMIN), Some(bytes))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.status);
    assert_eq!(env.job_rows().await, 1);
}

// ---------------------------------------------------------------------------------
// POST /api/admin/jobs/bulk
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn bulk_creates_every_job_and_returns_the_ids_in_input_order(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let jobs: Vec<Value> = (0..5)
        .map(|n| {
            // Mixed priorities and a delayed one, so no other order could pass.
            let extra = match n {
                1 => json!({"priority": "CRITICAL"}),
                3 => json!({"priority": 1, "delayMs": 60_000}),
                _ => json!({}),
            };
            create_body_with("ECHO", json!({ "n": n }), extra)
        })
        .collect();
    let reply = api.post(BULK, json!({ "jobs": jobs })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let ids: Vec<Uuid> = reply.body["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids array: {reply:?}"))
        .iter()
        .map(|v| Uuid::parse_str(v.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(env.job_rows().await, 5);
    for (n, id) in ids.iter().enumerate() {
        let job = env.job(*id).await;
        assert_eq!(job.payload, json!({ "n": n }), "ids[{n}] is not job {n}");
        let expected = if n == 3 { "DELAYED" } else { "PENDING" };
        assert_eq!(job.status.as_str(), expected, "job {n}");
    }
    assert_eq!(env.job(ids[1]).await.priority, 20);
    // Dispatched: the due ones are ready, the delayed one is waiting.
    for n in [0, 1, 2, 4] {
        assert!(
            env.zscore(&keys(&env).ready, &ids[n].to_string())
                .await
                .is_some(),
            "job {n} is not ready in Redis"
        );
    }
    assert!(env
        .zscore(&keys(&env).delayed, &format!("1|{}", ids[3]))
        .await
        .is_some());
}

#[sqlx::test]
async fn bulk_with_one_bad_job_in_the_middle_is_refused_whole_naming_its_index(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let good = || create_body("NOOP", json!({}));
    // Each kind of fault: the payload's shape, the queue, an API-level rule and a
    // field serde refuses.
    let faults: [(Value, &str, &[&str]); 5] = [
        (
            create_body("SLEEP", json!({"ms": "x"})),
            "invalid_field",
            &["jobs[1]", "payload.ms"],
        ),
        (
            json!({"queueName": "no_such_queue", "jobType": "NOOP", "payload": {}}),
            "invalid_field",
            &["jobs[1]", "queueName", "no_such_queue"],
        ),
        (
            create_body_with(
                "NOOP",
                json!({}),
                json!({"delayMs": 5, "runAt": Utc::now()}),
            ),
            "invalid_field",
            &["jobs[1]", "delayMs"],
        ),
        (
            create_body_with("NOOP", json!({}), json!({"maxAttempts": 0})),
            "invalid_field",
            &["jobs[1]", "maxAttempts"],
        ),
        (
            create_body_with("NOOP", json!({}), json!({"colour": "red"})),
            "invalid_field",
            &["jobs[1]", "colour"],
        ),
    ];
    for (bad, code, mentions) in faults {
        let reply = api
            .post(BULK, json!({ "jobs": [good(), bad, good()] }))
            .await;
        assert_refused(&env, &reply, StatusCode::BAD_REQUEST, code, mentions).await;
    }
    // Nothing reached Redis either.
    let mut redis = env.redis().await;
    let ready: i64 = redis::cmd("ZCARD")
        .arg(keys(&env).ready)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(ready, 0);
}

#[sqlx::test]
async fn bulk_with_an_empty_jobs_list_is_400(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api.post(BULK, json!({ "jobs": [] })).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["jobs"],
    )
    .await;
}

fn noops(n: usize) -> Value {
    json!({ "jobs": vec![json!({"queueName": Q, "jobType": "NOOP", "payload": {}}); n] })
}

#[sqlx::test]
async fn bulk_of_more_than_10000_jobs_is_400(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let bytes = serde_json::to_vec(&noops(10_001)).unwrap();
    assert!(bytes.len() < 1 << 20, "keep this under the default limit");
    let reply = api
        .send_raw(Method::POST, BULK, Some(ADMIN), Some(bytes))
        .await;
    assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "too_many_jobs",
        &["jobs", "10000"],
    )
    .await;
}

#[sqlx::test]
async fn bulk_of_exactly_10000_jobs_is_accepted(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api.post(BULK, noops(10_000)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let ids = reply.body["ids"].as_array().expect("ids");
    assert_eq!(ids.len(), 10_000);
    assert_eq!(env.job_rows().await, 10_000);
}

#[sqlx::test]
async fn bulk_with_a_repeated_idempotency_key_records_one_job_for_both_slots(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let keyed =
        |n: i32| create_body_with("ECHO", json!({ "n": n }), json!({"idempotencyKey": "dup"}));
    let reply = api
        .post(
            BULK,
            json!({ "jobs": [keyed(0), create_body("NOOP", json!({})), keyed(2)] }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let ids = reply.body["ids"].as_array().expect("ids");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ids[2], "both slots name the one keyed job");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(env.job_rows().await, 2);
    let first = env
        .job(Uuid::parse_str(ids[0].as_str().unwrap()).unwrap())
        .await;
    assert_eq!(first.payload, json!({ "n": 0 }));
}

// ---------------------------------------------------------------------------------
// GET /api/admin/jobs/{id}
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn get_of_a_fresh_job_is_200_with_the_job_and_no_executions(pool: PgPool) {
    let (_env, api) = setup(pool).await;
    let created = api
        .post(JOBS, create_body("ECHO", json!({"a": [1, 2]})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.id();

    let reply = api.get_as(Some(ADMIN), &format!("{JOBS}/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["executions"], json!([]));
    let mut job = reply.body.clone();
    job.as_object_mut().unwrap().remove("executions");
    assert_eq!(job, created.body, "GET shows the record POST returned");
}

#[sqlx::test]
async fn get_of_an_unknown_id_is_404_not_found(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let id = Uuid::new_v4();
    let reply = api.get_as(Some(ADMIN), &format!("{JOBS}/{id}")).await;
    assert_refused(
        &env,
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        &[&id.to_string()],
    )
    .await;
}

#[sqlx::test]
async fn get_of_a_malformed_id_is_400_naming_id(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api.get_as(Some(ADMIN), &format!("{JOBS}/not-a-uuid")).await;
    let message = assert_refused(
        &env,
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["not-a-uuid"],
    )
    .await;
    assert!(message.starts_with("id:"), "`{message}` does not name `id`");
}

// ---------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn admin_routes_without_a_token_are_401(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let id = Uuid::new_v4();
    let cases = [
        (
            Method::POST,
            JOBS.to_string(),
            Some(create_body("NOOP", json!({}))),
        ),
        (Method::POST, BULK.to_string(), Some(noops(1))),
        (Method::GET, format!("{JOBS}/{id}"), None),
    ];
    for (method, path, body) in cases {
        let reply = api.send(method, &path, None, body).await;
        assert_refused(&env, &reply, StatusCode::UNAUTHORIZED, "unauthorized", &[]).await;
    }
    // Auth is checked before the body is read: even an invalid body is a 401.
    let reply = api
        .send_raw(Method::POST, JOBS, None, Some(b"{".to_vec()))
        .await;
    assert_refused(&env, &reply, StatusCode::UNAUTHORIZED, "unauthorized", &[]).await;
}

#[sqlx::test]
async fn admin_routes_with_a_wrong_token_are_401(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let body = create_body("NOOP", json!({}));
    for token in ["wrong-token", "admin-token-but-longer", "admin-toke", ""] {
        let reply = api
            .send(Method::POST, JOBS, Some(token), Some(body.clone()))
            .await;
        assert_refused(&env, &reply, StatusCode::UNAUTHORIZED, "unauthorized", &[]).await;
    }
    // Not a bearer scheme at all.
    let req = Request::builder()
        .method(Method::POST)
        .uri(JOBS)
        .header(header::AUTHORIZATION, format!("Basic {ADMIN}"))
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let status = api.router.clone().oneshot(req).await.unwrap().status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let reply = api
        .get_as(Some("wrong-token"), &format!("{JOBS}/{}", Uuid::new_v4()))
        .await;
    assert_refused(&env, &reply, StatusCode::UNAUTHORIZED, "unauthorized", &[]).await;
}

#[sqlx::test]
async fn viewer_token_on_post_is_403(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let reply = api
        .send(
            Method::POST,
            JOBS,
            Some(VIEWER),
            Some(create_body("NOOP", json!({}))),
        )
        .await;
    assert_refused(&env, &reply, StatusCode::FORBIDDEN, "forbidden", &[]).await;
    let reply = api
        .send(Method::POST, BULK, Some(VIEWER), Some(noops(2)))
        .await;
    assert_refused(&env, &reply, StatusCode::FORBIDDEN, "forbidden", &[]).await;
}

#[sqlx::test]
async fn viewer_token_can_get_a_job(pool: PgPool) {
    let (_env, api) = setup(pool).await;
    let created = api.post(JOBS, create_body("NOOP", json!({}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.id();
    let reply = api.get_as(Some(VIEWER), &format!("{JOBS}/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.id(), id);
}

#[sqlx::test]
async fn admin_token_can_create_and_read(pool: PgPool) {
    let (env, api) = setup(pool).await;
    let created = api
        .send(
            Method::POST,
            JOBS,
            Some(ADMIN),
            Some(create_body("NOOP", json!({}))),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let bulk = api
        .send(Method::POST, BULK, Some(ADMIN), Some(noops(2)))
        .await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{bulk:?}");
    let id = created.id();
    let reply = api.get_as(Some(ADMIN), &format!("{JOBS}/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.id(), id);
    assert_eq!(env.job_rows().await, 3);
}
