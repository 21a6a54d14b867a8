//! The Prometheus metrics after a run, scraped from a real worker and a real API:
//! each metric with its labels and the value the run must have produced.

use std::collections::BTreeMap;
use std::time::Duration;

use conveyor_tests::services::free_port;
use conveyor_tests::TestEnv;
use queue_core::JobStatus;
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// One scrape: (metric name, its labels) → value.
struct Scrape(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    async fn of(url: &str) -> Self {
        let body = reqwest::get(url).await.unwrap().text().await.unwrap();
        let mut samples = BTreeMap::new();
        for line in body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("label=value");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            samples.insert((name.to_string(), labels), value.parse().unwrap());
        }
        Self(samples)
    }

    /// The value of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        *self.0.get(&key).unwrap_or_else(|| {
            let known: Vec<_> = self.0.keys().filter(|(n, _)| n == name).collect();
            panic!("no {name}{labels:?}; series of that name: {known:?}")
        })
    }
}

#[sqlx::test]
async fn worker_and_api_metrics_after_a_run(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let port = free_port();
    let _worker = env.spawn_worker(
        &[
            "--queues",
            "diagnostics",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    // One success, one success after a retry, one failure for good.
    let jobs = [
        json!({"queueName": "diagnostics", "jobType": "ECHO", "payload": {"a": 1}}),
        json!({"queueName": "diagnostics", "jobType": "FAIL", "maxAttempts": 2,
               "backoff": {"type": "fixed", "delayMs": 10},
               "payload": {"message": "once", "retryable": true, "failTimes": 1}}),
        json!({"queueName": "diagnostics", "jobType": "FAIL", "maxAttempts": 1,
               "payload": {"message": "never", "retryable": false}}),
    ];
    let mut ids = Vec::new();
    for job in jobs {
        let (status, body) = api.call(Method::POST, "/api/admin/jobs", Some(job)).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let wait = Duration::from_secs(60);
    env.wait_status(ids[0], JobStatus::Completed, wait).await;
    env.wait_status(ids[1], JobStatus::Completed, wait).await;
    env.wait_status(ids[2], JobStatus::Failed, wait).await;
    let (status, _) = api
        .call(Method::GET, &format!("/api/admin/jobs/{}", ids[0]), None)
        .await;
    assert_eq!(status, 200);

    let q = ("queue", "diagnostics");
    let worker = Scrape::of(&format!("http://127.0.0.1:{port}/metrics")).await;
    let echo = [q, ("job_type", "ECHO")];
    let fail = [q, ("job_type", "FAIL")];
    assert_eq!(worker.get("conveyor_jobs_completed_total", &echo), 1.0);
    assert_eq!(worker.get("conveyor_jobs_completed_total", &fail), 1.0);
    assert_eq!(worker.get("conveyor_jobs_retried_total", &fail), 1.0);
    assert_eq!(worker.get("conveyor_jobs_failed_total", &fail), 1.0);
    assert_eq!(
        worker.get("conveyor_job_duration_seconds_count", &echo),
        1.0
    );
    assert_eq!(
        worker.get("conveyor_job_duration_seconds_count", &fail),
        1.0
    );
    let mut bucket = echo.to_vec();
    bucket.push(("le", "300"));
    assert_eq!(
        worker.get("conveyor_job_duration_seconds_bucket", &bucket),
        1.0
    );
    assert_eq!(worker.get("conveyor_worker_busy", &[q]), 0.0);
    assert_eq!(worker.get("conveyor_worker_concurrency", &[q]), 50.0);

    let api_metrics = Scrape::of(&format!("{}/metrics", api.url)).await;
    assert_eq!(api_metrics.get("conveyor_jobs_enqueued_total", &echo), 1.0);
    assert_eq!(api_metrics.get("conveyor_jobs_enqueued_total", &fail), 2.0);
    for (state, n) in [
        ("waiting", 0.0),
        ("active", 0.0),
        ("delayed", 0.0),
        ("failed", 1.0),
    ] {
        assert_eq!(
            api_metrics.get("conveyor_queue_jobs", &[q, ("state", state)]),
            n,
            "{state}"
        );
    }
    let created = [
        ("method", "POST"),
        ("route", "/api/admin/jobs"),
        ("status", "201"),
    ];
    assert_eq!(
        api_metrics.get("conveyor_http_requests_total", &created),
        3.0
    );
    let read = [
        ("method", "GET"),
        ("route", "/api/admin/jobs/{id}"),
        ("status", "200"),
    ];
    assert_eq!(api_metrics.get("conveyor_http_requests_total", &read), 1.0);
    let timed = [("method", "POST"), ("route", "/api/admin/jobs")];
    assert_eq!(
        api_metrics.get("conveyor_http_request_duration_seconds_count", &timed),
        3.0
    );
}
