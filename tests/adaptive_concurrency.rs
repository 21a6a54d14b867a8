//! Adaptive concurrency end to end: a worker whose queue limit follows the
//! backlog runs more jobs at once as the backlog grows, and exports the limit.

use std::time::{Duration, Instant};

use conveyor_tests::services::free_port;
use conveyor_tests::TestEnv;
use queue_core::{JobStatus, NewJob};
use serde_json::json;
use sqlx::PgPool;

/// The worker's `conveyor_worker_concurrency{queue="diagnostics"}`, if served yet.
async fn exported_limit(metrics_url: &str) -> Option<u32> {
    let body = reqwest::get(metrics_url).await.ok()?.text().await.ok()?;
    body.lines()
        .find(|l| l.starts_with("conveyor_worker_concurrency{queue=\"diagnostics\"}"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[sqlx::test]
async fn the_limit_rises_with_the_backlog_and_is_exported(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let jobs: Vec<NewJob> = (0..300)
        .map(|_| NewJob::new("diagnostics", "SLEEP", json!({"ms": 200})))
        .collect();
    env.conveyor.enqueue_many(jobs).await.unwrap();
    let port = free_port();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let adaptive = "{ min = 1, max = 12, step = 4, scale_up_interval_ms = 300, scale_down_interval_ms = 300 }";
    let _worker = env.spawn_worker(
        &["--queues", "diagnostics", "--metrics-addr", &format!("127.0.0.1:{port}")],
        &[("CONVEYOR__QUEUES__DIAGNOSTICS__CONCURRENCY", adaptive)],
    );

    // Starts at min, then climbs by step to max while 300 jobs wait.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        if let Some(limit) = exported_limit(&metrics_url).await {
            if seen.last() != Some(&limit) {
                seen.push(limit);
            }
            if limit == 12 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "limits seen: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "only rises: {seen:?}");
    assert!(seen.iter().all(|l| [1, 5, 9, 12].contains(l)), "{seen:?}");
    // And it is used: more than one job runs at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.count(JobStatus::Running).await < 5 {
        assert!(Instant::now() < deadline, "never more than 4 jobs at once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
