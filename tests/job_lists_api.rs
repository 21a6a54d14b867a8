//! `GET /api/admin/jobs` and `GET /api/admin/jobs/{id}/children` in-process:
//! paging newest first, filters, totals from the counters (a page past the data
//! never reads the jobs table), refused query parameters and tokens. States a
//! worker would reach are set with SQL, as the routes only read them.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use conveyor_tests::http::{ids_of, TestApi, VIEWER};
use conveyor_tests::TestEnv;
use queue_core::job::{JobStatus, NewJob};
use queue_core::store::JobFilter;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";

async fn enqueue(env: &TestEnv, job_type: &str, payload: Value) -> Uuid {
    env.enqueue(NewJob::new(Q, job_type, payload)).await
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

fn id_set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

// ---------------------------------------------------------------------------------
// GET /api/admin/jobs
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn list_pages_newest_first_with_page_limit_and_total(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = enqueue(&env, "NOOP", json!({})).await;
        // ids[4] is the newest.
        set_created_ago(&env, id, 100 - i).await;
        ids.push(id);
    }

    let all = api.get("/api/admin/jobs").await;
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

    let second = api.get("/api/admin/jobs?page=2&limit=2").await;
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

    let past_the_end = api.get("/api/admin/jobs?page=4&limit=2").await;
    assert_eq!(past_the_end.status, StatusCode::OK);
    assert_eq!(past_the_end.body["items"], json!([]));
    assert_eq!(past_the_end.body["total"], 5);

    let full_page = api.get("/api/admin/jobs?limit=100").await;
    assert_eq!(full_page.status, StatusCode::OK);
    assert_eq!(ids_of(&full_page.body["items"]).len(), 5);
}

#[sqlx::test]
async fn a_page_far_past_the_data_is_answered_without_reading_the_jobs_table(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
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
        let reply = tokio::time::timeout(Duration::from_secs(5), api.get(path))
            .await
            .unwrap_or_else(|_| panic!("{path}: the answer waited on the jobs table"));
        assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
        assert_eq!(reply.body["items"], json!([]), "{path}");
        assert_eq!(reply.body["total"], total, "{path}");
    }
    lock.rollback().await.unwrap();

    // Children (counted over the parent index): past the end is empty too.
    let reply = api
        .get(&format!(
            "/api/admin/jobs/{parent}/children?page=10000000&limit=100"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["items"], json!([]));
    assert_eq!(reply.body["total"], 2);
    assert_eq!(reply.body["page"], 10_000_000);
    // And a page inside the data still reads it.
    let reply = api.get("/api/admin/jobs?page=2&limit=2").await;
    assert_eq!(ids_of(&reply.body["items"]).len(), 1, "{reply:?}");
}

#[sqlx::test]
async fn list_filters_by_queue_status_job_type_and_parent(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let parent = enqueue(&env, "NOOP", json!({})).await;
    let c1 = enqueue(&env, "ECHO", json!({"n": 1})).await;
    let c2 = enqueue(&env, "ECHO", json!({"n": 2})).await;
    let lone_echo = enqueue(&env, "ECHO", json!({"n": 3})).await;
    let failed = enqueue(&env, "FAIL", json!({})).await;
    set_parent(&env, c1, parent).await;
    set_parent(&env, c2, parent).await;
    env.set_status(failed, JobStatus::Failed).await;
    env.set_status(lone_echo, JobStatus::Completed).await;
    let foreign = env.insert_job("author_data", "COMPLETED", 0).await;

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
        let reply = api.get(&format!("/api/admin/jobs?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {reply:?}");
        assert_eq!(
            id_set(&ids_of(&reply.body["items"])),
            id_set(&expected),
            "{query}"
        );
        assert_eq!(reply.body["total"], expected.len(), "{query}");
    }
}

/// Inserts a record of `status` and `job_type` created `created_h` hours ago and,
/// when finished, finished `finished_h` hours ago (a worker's clock may put a
/// finish before the creation).
async fn insert_aged(
    env: &TestEnv,
    status: &str,
    job_type: &str,
    created_h: f64,
    finished_h: Option<f64>,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at,
                           created_at, completed_at)
         SELECT gen_random_uuid(), $1, $2, $3, '{}', 1, c, c,
                now() - make_interval(secs => $5 * 3600)
         FROM (SELECT now() - make_interval(secs => $4 * 3600) AS c) s
         RETURNING id",
    )
    .bind(Q)
    .bind(job_type)
    .bind(status)
    .bind(created_h)
    .bind(finished_h)
    .fetch_one(&env.pool)
    .await
    .expect("insert record")
}

#[sqlx::test]
async fn pages_over_weeks_of_daily_history_partitions_are_the_pages_of_all_records(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let store = env.conveyor.store();
    let today = chrono::Utc::now().date_naive();
    store
        .add_history_partitions(today - chrono::Duration::days(40), today)
        .await
        .unwrap();
    // Newest first: waiting jobs of the last hour; finished ones of today and
    // yesterday; one created 30 h ago whose worker's clock put its finish 20 h
    // earlier, before the history's most recent two days; finished ones created
    // 40 h ago; then a few a day for a month.
    for i in 0..30 {
        insert_aged(&env, "PENDING", "NOOP", 0.5 + i as f64 / 100.0, None).await;
    }
    for i in 0..3 {
        insert_aged(&env, "COMPLETED", "NOOP", 2.0 + i as f64 / 100.0, Some(1.0)).await;
        insert_aged(&env, "FAILED", "FAIL", 26.0 + i as f64 / 100.0, Some(25.0)).await;
    }
    insert_aged(&env, "COMPLETED", "NOOP", 30.0, Some(50.0)).await;
    for i in 0..3 {
        insert_aged(
            &env,
            "COMPLETED",
            "ECHO",
            40.0 + i as f64 / 100.0,
            Some(39.0),
        )
        .await;
    }
    for day in 3..33 {
        for (i, (status, job_type)) in [
            ("COMPLETED", "NOOP"),
            ("FAILED", "FAIL"),
            ("CANCELLED", "ECHO"),
        ]
        .into_iter()
        .enumerate()
        {
            let created_h = day as f64 * 24.0 + i as f64;
            insert_aged(&env, status, job_type, created_h, Some(created_h - 0.5)).await;
        }
    }

    let filters = [
        (JobFilter::default(), "TRUE"),
        (
            JobFilter {
                status: Some(JobStatus::Completed),
                ..JobFilter::default()
            },
            "status = 'COMPLETED'",
        ),
        (
            JobFilter {
                queue: Some(Q.to_string()),
                job_type: Some("NOOP".to_string()),
                ..JobFilter::default()
            },
            "queue_name = 'diagnostics' AND job_type = 'NOOP'",
        ),
        (
            JobFilter {
                status: Some(JobStatus::Failed),
                ..JobFilter::default()
            },
            "status = 'FAILED'",
        ),
    ];
    for (filter, predicate) in &filters {
        for limit in [1, 5, 36, 37, 38, 39, 40, 50, 100, 200] {
            for offset in [0, 2, 30, 36, 90] {
                let listed: Vec<Uuid> = store
                    .list_jobs(filter, limit, offset)
                    .await
                    .unwrap()
                    .iter()
                    .map(|j| j.id)
                    .collect();
                let all: Vec<Uuid> = sqlx::query_scalar(&format!(
                    "SELECT id FROM jobs WHERE {predicate}
                     ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
                ))
                .bind(limit)
                .bind(offset)
                .fetch_all(&pool)
                .await
                .unwrap();
                assert_eq!(listed, all, "{predicate}, limit {limit}, offset {offset}");
            }
        }
    }
}

#[sqlx::test]
async fn list_rejects_bad_query_parameters_with_400_naming_them(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
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
        let reply = api.get(&format!("/api/admin/jobs?{query}")).await;
        reply.assert_error_naming(StatusCode::BAD_REQUEST, code, mentions);
    }
}

#[sqlx::test]
async fn list_is_open_to_viewer_tokens_and_closed_without_one(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    enqueue(&env, "NOOP", json!({})).await;
    let viewer = api
        .send(Method::GET, "/api/admin/jobs", Some(VIEWER), None)
        .await;
    assert_eq!(viewer.status, StatusCode::OK, "{viewer:?}");
    assert_eq!(viewer.body["total"], 1);
    let anonymous = api.send(Method::GET, "/api/admin/jobs", None, None).await;
    anonymous.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

// ---------------------------------------------------------------------------------
// GET /api/admin/jobs/:id/children
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn children_lists_a_parents_children_newest_first_in_pages(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
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
    env.set_status(children[0], JobStatus::Completed).await;

    let first = api
        .get(&format!("/api/admin/jobs/{parent}/children?limit=2"))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(ids_of(&first.body["items"]), vec![children[2], children[1]]);
    assert_eq!(first.body["total"], 3);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["limit"], 2);
    assert_eq!(first.body["items"][0]["parentId"], parent.to_string());

    let second = api
        .get(&format!("/api/admin/jobs/{parent}/children?limit=2&page=2"))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(ids_of(&second.body["items"]), vec![children[0]]);
    assert_eq!(second.body["items"][0]["status"], "COMPLETED");

    let defaults = api.get(&format!("/api/admin/jobs/{parent}/children")).await;
    assert_eq!(defaults.body["limit"], 20);
    assert_eq!(ids_of(&defaults.body["items"]).len(), 3);

    // A job without children: an empty page, not a 404.
    let childless = api
        .get(&format!("/api/admin/jobs/{stranger}/children"))
        .await;
    assert_eq!(childless.status, StatusCode::OK);
    assert_eq!(childless.body["items"], json!([]));
    assert_eq!(childless.body["total"], 0);
}

#[sqlx::test]
async fn children_of_an_unknown_parent_is_404(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let unknown = Uuid::now_v7();
    let reply = api
        .get(&format!("/api/admin/jobs/{unknown}/children"))
        .await;
    reply.assert_error_naming(StatusCode::NOT_FOUND, "not_found", &[&unknown.to_string()]);
}

#[sqlx::test]
async fn children_with_a_malformed_id_or_bad_paging_is_400(pool: PgPool) {
    let env = TestEnv::new(pool.clone()).await;
    let api = TestApi::new(&env);
    let parent = enqueue(&env, "NOOP", json!({})).await;
    let malformed = api.get("/api/admin/jobs/12345/children").await;
    malformed.assert_error_naming(StatusCode::BAD_REQUEST, "invalid_field", &["id", "12345"]);
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
        let reply = api
            .get(&format!("/api/admin/jobs/{parent}/children?{query}"))
            .await;
        reply.assert_error_naming(StatusCode::BAD_REQUEST, code, mentions);
    }
}
