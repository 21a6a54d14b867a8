//! System status, metrics summary, aggregated errors and the API's `/metrics`,
//! in-process on the real router. Counts a worker would produce are written with
//! SQL where the route only reads them.

use axum::http::StatusCode;
use conveyor_tests::http::{TestApi, ADMIN, VIEWER};
use conveyor_tests::TestEnv;
use queue_core::job::NewJob;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";

/// `GET path` as a viewer: the status and the JSON body.
async fn get_json(api: &TestApi, path: &str) -> (StatusCode, Value) {
    let reply = api.get_as(Some(VIEWER), path).await;
    (reply.status, reply.body)
}

async fn enqueue(env: &TestEnv, n: usize) -> Vec<Uuid> {
    env.conveyor
        .enqueue_many((0..n).map(|_| NewJob::new(Q, "ECHO", json!({}))).collect())
        .await
        .unwrap()
}

#[sqlx::test]
async fn system_status_reports_services_queues_rate_and_alerts(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let (status, body) = get_json(&api, "/api/admin/system/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptimeSeconds"].is_u64());
    for service in ["redis", "postgres"] {
        assert_eq!(body[service]["status"], "up", "{body}");
        assert!(body[service]["latencyMs"].as_f64().unwrap() >= 0.0);
    }
    let queues = body["queues"].as_array().unwrap();
    assert_eq!(queues.len(), env.config.queues.len());
    assert_eq!(body["processingRate"]["completedLastMinute"], 0);
    assert_eq!(body["alerts"], json!([]));

    // Waiting jobs and nothing running: the stalled alert.
    let ids = enqueue(&env, 102).await;
    // 101 of them failed for good within the hour: the failure alert.
    sqlx::query(
        "UPDATE jobs SET status = 'FAILED', completed_at = now() WHERE id = ANY($1::uuid[])",
    )
    .bind(&ids[..101])
    .execute(&env.pool)
    .await
    .unwrap();
    // Two attempts completed within the last minute, one long before.
    env.record_attempt(ids[0], 1, "COMPLETED", 10, None, 5.0)
        .await;
    env.record_attempt(ids[1], 1, "COMPLETED", 10, None, 5.0)
        .await;
    env.record_attempt(ids[2], 1, "COMPLETED", 10, None, 600.0)
        .await;

    let (_, body) = get_json(&api, "/api/admin/system/status").await;
    let diag = body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == Q)
        .unwrap();
    assert_eq!(diag["waiting"], 1, "{diag}");
    assert_eq!(diag["failed"], 101, "{diag}");
    assert_eq!(body["processingRate"]["completedLastMinute"], 2);
    assert_eq!(body["processingRate"]["perSecond"], 0.03);
    let alerts: Vec<(&str, &str)> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        alerts,
        [
            ("ConveyorQueueStalled", "error"),
            ("ConveyorJobsFailing", "critical")
        ]
    );

    // Over 1000 waiting: the backlog warning.
    enqueue(&env, 1_000).await;
    let (_, body) = get_json(&api, "/api/admin/system/status").await;
    let backlog = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "ConveyorQueueBacklog")
        .unwrap_or_else(|| panic!("no backlog alert: {body}"));
    assert_eq!(backlog["severity"], "warning");
    assert!(backlog["message"].as_str().unwrap().contains(Q));

    let (status, body) = get_json(&api, "/api/admin/system/status?x=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[sqlx::test]
async fn metrics_summary_counts_jobs_and_averages_the_last_day(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let (status, body) = get_json(&api, "/api/admin/metrics/summary").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"totalJobs": 0, "completedJobs": 0, "failedJobs": 0,
               "successRate": 0.0, "averageProcessingTimeMs": 0.0})
    );
    let ids = enqueue(&env, 5).await;
    sqlx::query("UPDATE jobs SET status = 'COMPLETED', completed_at = now() WHERE id = ANY($1)")
        .bind(&ids[..3])
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET status = 'FAILED', completed_at = now() WHERE id = $1")
        .bind(ids[3])
        .execute(&env.pool)
        .await
        .unwrap();
    env.record_attempt(ids[0], 1, "COMPLETED", 100, None, 60.0)
        .await;
    env.record_attempt(ids[1], 1, "COMPLETED", 300, None, 3_600.0)
        .await;
    // Older than a day, and a failed attempt: neither counts in the average.
    env.record_attempt(ids[2], 1, "COMPLETED", 10_000, None, 25.0 * 3_600.0)
        .await;
    env.record_attempt(ids[3], 1, "FAILED", 50_000, Some("boom"), 60.0)
        .await;
    let (_, body) = get_json(&api, "/api/admin/metrics/summary").await;
    assert_eq!(
        body,
        json!({"totalJobs": 5, "completedJobs": 3, "failedJobs": 1,
               "successRate": 0.75, "averageProcessingTimeMs": 200.0})
    );
}

#[sqlx::test]
async fn errors_are_grouped_by_type_and_message_most_recent_first(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let (status, body) = get_json(&api, "/api/admin/errors").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));
    let ids = enqueue(&env, 2).await;
    env.record_attempt(ids[0], 1, "FAILED", 1, Some("boom"), 300.0)
        .await;
    env.record_attempt(ids[0], 2, "FAILED", 1, Some("boom"), 100.0)
        .await;
    env.record_attempt(ids[1], 1, "FAILED", 1, Some("timed out"), 10.0)
        .await;
    env.record_attempt(ids[1], 2, "COMPLETED", 1, None, 5.0)
        .await;

    let (_, body) = get_json(&api, "/api/admin/errors").await;
    let groups = body.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{body}");
    assert_eq!(groups[0]["type"], "ECHO");
    assert_eq!(groups[0]["message"], "timed out");
    assert_eq!(groups[0]["count"], 1);
    assert_eq!(groups[1]["message"], "boom");
    assert_eq!(groups[1]["count"], 2);
    let first: chrono::DateTime<chrono::Utc> = groups[1]["firstOccurredAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last: chrono::DateTime<chrono::Utc> = groups[1]["lastOccurredAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!((last - first).num_seconds(), 200);

    let (_, body) = get_json(&api, "/api/admin/errors?limit=1").await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["message"], "timed out");
    for bad in ["limit=0", "limit=101", "limit=x", "since=1"] {
        let (status, body) = get_json(&api, &format!("/api/admin/errors?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = get_json(&api, "/api/admin/errors?limit=101").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("limit"),
        "{status} {body}"
    );
}

#[sqlx::test]
async fn the_new_routes_need_a_token(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    for path in [
        "/api/admin/system/status",
        "/api/admin/metrics/summary",
        "/api/admin/errors",
    ] {
        let anonymous = api.get_as(None, path).await;
        anonymous.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let wrong = api.get_as(Some("wrong"), path).await;
        wrong.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let viewer = api.get_as(Some(VIEWER), path).await;
        assert_eq!(viewer.status, StatusCode::OK, "{path}");
        let admin = api.get_as(Some(ADMIN), path).await;
        assert_eq!(admin.status, StatusCode::OK, "{path}");
    }
}

#[sqlx::test]
async fn metrics_are_open_and_show_queue_gauges_and_enqueues(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let create = json!({"queueName": Q, "jobType": "ECHO", "payload": {}});
    let created = api.post("/api/admin/jobs", create).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let bulk = json!({"jobs": [{"queueName": Q, "jobType": "NOOP", "payload": {}},
                               {"queueName": Q, "jobType": "NOOP", "payload": {}}]});
    let created = api.post("/api/admin/jobs/bulk", bulk).await;
    assert_eq!(created.status, StatusCode::CREATED);

    let metrics = api.get_as(None, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains(r#"conveyor_queue_jobs{queue="diagnostics",state="waiting"} 3"#),
        "{text}"
    );
    assert!(text.contains(r#"conveyor_queue_jobs{queue="diagnostics",state="active"} 0"#));
    assert!(text.contains(r#"conveyor_jobs_enqueued_total{job_type="ECHO",queue="diagnostics"} 1"#));
    assert!(text.contains(r#"conveyor_jobs_enqueued_total{job_type="NOOP",queue="diagnostics"} 2"#));
}

#[test]
fn prometheus_rules_match_the_live_alerts() {
    let rules =
        std::fs::read_to_string(conveyor_tests::repo_root().join("config/prometheus/alerts.yml"))
            .expect("config/prometheus/alerts.yml");
    for (name, severity) in [
        ("ConveyorQueueBacklog", "warning"),
        ("ConveyorJobsFailing", "critical"),
        ("ConveyorQueueStalled", "error"),
    ] {
        let at = rules
            .find(&format!("alert: {name}"))
            .unwrap_or_else(|| panic!("no rule {name}"));
        let rule = &rules[at..];
        let rule = &rule[..rule[1..].find("- alert:").map_or(rule.len(), |i| i + 1)];
        assert!(rule.contains(&format!("severity: {severity}")), "{rule}");
    }
    for metric in [
        r#"conveyor_queue_jobs{state="waiting"}) > 1000"#,
        "increase(conveyor_jobs_failed_total[1h])) > 100",
        r#"conveyor_queue_jobs{state="active"}) == 0"#,
    ] {
        assert!(rules.contains(metric), "{metric}");
    }
}
