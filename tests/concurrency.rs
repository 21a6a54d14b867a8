//! Concurrency end to end: a queue limit that follows the backlog, and a cap on
//! one job type inside a queue that leaves the other types their slots.

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
    let adaptive =
        "{ min = 1, max = 12, step = 4, scale_up_interval_ms = 300, scale_down_interval_ms = 300 }";
    let _worker = env.spawn_worker(
        &[
            "--queues",
            "diagnostics",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
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

#[sqlx::test]
async fn a_capped_job_type_runs_one_at_a_time_without_starving_the_others(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let sleeps = env
        .conveyor
        .enqueue_many(
            (0..4)
                .map(|_| NewJob::new("diagnostics", "SLEEP", json!({"ms": 300})))
                .collect(),
        )
        .await
        .unwrap();
    let echoes = env
        .conveyor
        .enqueue_many(
            (0..20)
                .map(|i| NewJob::new("diagnostics", "ECHO", json!({ "i": i })))
                .collect(),
        )
        .await
        .unwrap();
    let _worker = env.spawn_worker(
        &["--queues", "diagnostics", "--concurrency", "8"],
        &[(
            "CONVEYOR__QUEUES__DIAGNOSTICS__TYPE_CONCURRENCY",
            "{ SLEEP = 1 }",
        )],
    );
    for id in &sleeps {
        env.wait_status(*id, JobStatus::Completed, Duration::from_secs(60))
            .await;
    }
    // The four SLEEPs ran one after another, each in one counted attempt.
    let mut spans: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = Vec::new();
    for id in &sleeps {
        let executions = env.executions(*id).await;
        assert_eq!(executions.len(), 1, "waiting for the cap is not an attempt");
        assert_eq!(env.job(*id).await.attempts, 1);
        spans.push((executions[0].started_at, executions[0].finished_at));
    }
    spans.sort();
    // An attempt's start is its claim, a moment before its handler may start (the
    // cap is taken after the claim): a few ms of overlap are that moment; two
    // SLEEPs of 300 ms running together would overlap by far more.
    let slack = chrono::Duration::milliseconds(50);
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 + slack >= pair[0].1,
            "two SLEEPs ran at once: {spans:?}"
        );
    }
    // The ECHOs did not wait for them: all done before the last SLEEP began.
    let last_sleep_start = spans.last().unwrap().0;
    for id in &echoes {
        let echo = env.job(*id).await;
        assert_eq!(echo.status, JobStatus::Completed);
        assert!(
            echo.completed_at.unwrap() < last_sleep_start,
            "an ECHO waited behind the SLEEPs"
        );
    }
}

#[sqlx::test]
async fn a_worker_never_holds_more_attempts_than_its_slots(pool: PgPool) {
    // Each attempt keeps its slot until its outcome is written, so the RUNNING
    // records of a worker never outnumber its concurrency, however fast its
    // handlers finish and however far its completer is behind.
    let env = TestEnv::new(pool).await;
    env.conveyor
        .enqueue_many(
            (0..10_000)
                .map(|_| NewJob::new("diagnostics", "NOOP", json!({})))
                .collect(),
        )
        .await
        .unwrap();
    let _worker = env.spawn_worker(&["--queues", "diagnostics", "--concurrency", "8"], &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut most = 0;
    while env.count(JobStatus::Completed).await < 10_000 {
        let running: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'RUNNING'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        most = most.max(running);
        assert!(
            Instant::now() < deadline,
            "not drained; most held at once: {most}"
        );
    }
    assert!(most <= 8, "{most} attempts held at once with 8 slots");
    assert!(most > 0, "the samples saw the worker at work");
}
