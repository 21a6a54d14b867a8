//! Fault injection: the real binaries under real faults (kill -9, FLUSHALL, Redis
//! and PostgreSQL outages, a job that crashes its worker, mass cancellation). Each
//! scenario prints one report line and requires lost = 0, completed more than
//! once = 0, stuck = 0, one execution row per attempt, and (for jobs that
//! completed) as many extra attempts as interruptions that hit them.
//!
//! "slowest recovery" is, per scenario: kill/crash — the longest time from a
//! worker's death to the restart of a job it held; service faults — the longest
//! time from the end of the fault until a job accepted before then started its
//! final attempt; cancellation — the longest time from DELETE to CANCELLED.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use conveyor_tests::services::{PgServer, RedisServer};
use conveyor_tests::{TestEnv, WorkerProcess};
use queue_core::job::{JobStatus, NewJob};
use queue_core::Conveyor;
use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";
/// Short lease and sweeps so recoveries take seconds (defaults: 30 s, 10 s, 5 s).
const FAST: [(&str, &str); 4] = [
    ("CONVEYOR__WORKER__LEASE_MS", "3000"),
    ("CONVEYOR__WORKER__HEARTBEAT_MS", "1000"),
    ("CONVEYOR__WORKER__RECONCILE_MS", "1000"),
    ("CONVEYOR__WORKER__DRAIN_TIMEOUT_MS", "2000"),
];
const SETTLE: Duration = Duration::from_secs(120);

fn random(n: u128) -> u128 {
    Uuid::new_v4().as_u128() % n
}

fn spawn_worker(env: &TestEnv, extra: &[(&str, &str)]) -> WorkerProcess {
    let mut vars = FAST.to_vec();
    vars.extend_from_slice(extra);
    env.spawn_worker(&["--queues", Q, "--concurrency", "8"], &vars)
}

async fn enqueue_sleepers(conveyor: &Conveyor, n: usize) -> Vec<Uuid> {
    let jobs = (0..n)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": random(21)})).max_attempts(10))
        .collect();
    conveyor.enqueue_many(jobs).await.unwrap()
}

/// Waits until every accepted job is terminal (or the deadline passes).
async fn settle(pool: &PgPool, ids: &[Uuid]) {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')",
        )
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap_or(i64::MAX);
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Report {
    scenario: &'static str,
    jobs: usize,
    faults: usize,
    slowest_recovery: Duration,
}

/// Checks every invariant over `ids`, prints the scenario's line, fails on any breach.
async fn audit(pool: &PgPool, ids: &[Uuid], report: Report) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(ids)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let lost = count("SELECT count(*) FROM unnest($1::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.id)").await;
    let twice = count(
        "SELECT count(*) FROM (SELECT job_id FROM job_executions WHERE job_id = ANY($1) AND status = 'COMPLETED'
                               GROUP BY job_id HAVING count(*) > 1) t",
    )
    .await;
    let stuck = count("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')").await;
    let rows_off = count(
        "SELECT count(*) FROM jobs j WHERE j.id = ANY($1)
           AND (SELECT count(*) FROM job_executions e WHERE e.job_id = j.id AND e.run = j.runs) <> j.attempts",
    )
    .await;
    let retries_off = count(
        "SELECT count(*) FROM jobs j WHERE j.id = ANY($1) AND j.status = 'COMPLETED'
           AND j.attempts - 1 <> (SELECT count(*) FROM job_executions e WHERE e.job_id = j.id AND e.status = 'LOST')",
    )
    .await;
    println!(
        "fault-report scenario={:<22} jobs={:<5} faults={:<3} lost={lost} completed_more_than_once={twice} stuck={stuck} slowest_recovery_ms={}",
        report.scenario,
        report.jobs,
        report.faults,
        report.slowest_recovery.as_millis()
    );
    assert_eq!(
        (lost, twice, stuck),
        (0, 0, 0),
        "lost, completed more than once, stuck"
    );
    assert_eq!(
        rows_off, 0,
        "jobs whose execution rows differ from their attempts"
    );
    assert_eq!(
        retries_off, 0,
        "completed jobs whose extra attempts differ from their interruptions"
    );
}

/// Longest wait of a job that was accepted before `fault_end` and started its
/// final attempt after it.
async fn slowest_restart_after(pool: &PgPool, ids: &[Uuid], fault_end: DateTime<Utc>) -> Duration {
    let ms: Option<f64> = sqlx::query_scalar(
        "SELECT max(extract(epoch FROM started_at - $2) * 1000)::float8 FROM jobs
         WHERE id = ANY($1) AND created_at < $2 AND started_at > $2",
    )
    .bind(ids)
    .bind(fault_end)
    .fetch_one(pool)
    .await
    .unwrap();
    Duration::from_millis(ms.unwrap_or(0.0) as u64)
}

/// Longest time from the death of a worker to the restart (or end) of a job it held.
async fn slowest_rescue(
    pool: &PgPool,
    ids: &[Uuid],
    deaths: &HashMap<u32, DateTime<Utc>>,
) -> Duration {
    let rows: Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT e.worker_id, e.started_at,
                COALESCE((SELECT n.started_at FROM job_executions n WHERE n.job_id = e.job_id AND n.attempt = e.attempt + 1),
                         (SELECT j.started_at FROM jobs j WHERE j.id = e.job_id AND j.attempts = e.attempt + 1),
                         e.finished_at)
         FROM job_executions e WHERE e.job_id = ANY($1) AND e.status = 'LOST'",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .filter_map(|(worker, started, next)| {
            let pid: u32 = worker.split(':').nth(1)?.parse().ok()?;
            let died = deaths.get(&pid).copied().unwrap_or(started).max(started);
            (next? - died).to_std().ok()
        })
        .max()
        .unwrap_or_default()
}

#[sqlx::test]
async fn kill_nine_a_random_worker_every_second(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let ids = enqueue_sleepers(&env.conveyor, 5_000).await;
    let mut workers: Vec<WorkerProcess> = (0..3).map(|_| spawn_worker(&env, &[])).collect();
    let mut deaths = HashMap::new();
    let deadline = Instant::now() + SETTLE;
    while env.count(JobStatus::Completed).await < ids.len() as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let victim = random(3) as usize;
        env.signal(&workers[victim], "KILL");
        deaths.insert(workers[victim].pid, Utc::now());
        workers[victim] = spawn_worker(&env, &[]);
    }
    settle(&env.pool, &ids).await;
    let slowest = slowest_rescue(&env.pool, &ids, &deaths).await;
    let report = Report {
        scenario: "kill-9 every second",
        jobs: ids.len(),
        faults: deaths.len(),
        slowest_recovery: slowest,
    };
    audit(&env.pool, &ids, report).await;
    assert!(
        deaths.len() >= 2,
        "the run lasted long enough to kill workers"
    );
}

#[sqlx::test]
async fn redis_loses_all_its_data_mid_run(pool: PgPool) {
    let redis = RedisServer::start();
    let db_url = conveyor_tests::test_db_url(&pool);
    let env = TestEnv::with_services(pool, db_url, redis.url(), |_| {}).await;
    let ids = enqueue_sleepers(&env.conveyor, 5_000).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| spawn_worker(&env, &[])).collect();
    env.wait_count_at_least(JobStatus::Completed, 500, SETTLE)
        .await;
    redis.flushall();
    let fault_end = Utc::now();
    settle(&env.pool, &ids).await;
    let slowest = slowest_restart_after(&env.pool, &ids, fault_end).await;
    let report = Report {
        scenario: "redis FLUSHALL",
        jobs: ids.len(),
        faults: 1,
        slowest_recovery: slowest,
    };
    audit(&env.pool, &ids, report).await;
}

#[sqlx::test]
async fn redis_down_for_ten_seconds_while_the_api_takes_jobs(pool: PgPool) {
    let mut redis = RedisServer::start();
    let db_url = conveyor_tests::test_db_url(&pool);
    let env = TestEnv::with_services(pool, db_url, redis.url(), |_| {}).await;
    let api = env.spawn_api(&[]).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| spawn_worker(&env, &[])).collect();

    let mut ids = Vec::new();
    let started = Instant::now();
    let mut outage = None;
    let mut fault_end = None;
    while started.elapsed() < Duration::from_secs(16) {
        if outage.is_none() && started.elapsed() > Duration::from_secs(2) {
            redis.stop();
            outage = Some(Instant::now());
        }
        if let (Some(at), None) = (outage, fault_end) {
            if at.elapsed() >= Duration::from_secs(10) {
                redis.restart();
                fault_end = Some(Utc::now());
            }
        }
        let body = json!({"queueName": Q, "jobType": "SLEEP", "payload": {"ms": random(21)}, "maxAttempts": 10});
        let (status, job) = api.call(Method::POST, "/api/admin/jobs", Some(body)).await;
        assert_eq!(
            status,
            201,
            "POST answered {status} {job} (redis down: {})",
            outage.is_some() && fault_end.is_none()
        );
        ids.push(Uuid::parse_str(job["id"].as_str().unwrap()).unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle(&env.pool, &ids).await;
    let slowest = slowest_restart_after(&env.pool, &ids, fault_end.expect("redis restarted")).await;
    let report = Report {
        scenario: "redis down 10 s",
        jobs: ids.len(),
        faults: 1,
        slowest_recovery: slowest,
    };
    audit(&env.pool, &ids, report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_ten_seconds_mid_run() {
    let pg = PgServer::start();
    let pool = PgPool::connect(&pg.url()).await.unwrap();
    queue_core::store::MIGRATOR.run(&pool).await.unwrap();
    let env = TestEnv::with_services(pool, pg.url(), conveyor_tests::redis_url(), |_| {}).await;
    let api = env.spawn_api(&[]).await;
    let ids = enqueue_sleepers(&env.conveyor, 5_000).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| spawn_worker(&env, &[])).collect();
    env.wait_count_at_least(JobStatus::Completed, 500, SETTLE)
        .await;

    pg.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Writes answer 503 and /health says why while PostgreSQL is down.
    let body = json!({"queueName": Q, "jobType": "NOOP", "payload": {}});
    let (status, error) = api.call(Method::POST, "/api/admin/jobs", Some(body)).await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "database_unavailable");
    let (status, health) = api.call(Method::GET, "/health", None).await;
    assert_eq!(status, 503);
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["details"]["postgres"]["status"], "down");
    tokio::time::sleep(Duration::from_secs(9)).await;
    pg.restart();
    let fault_end = Utc::now();

    let pool = PgPool::connect(&pg.url()).await.unwrap();
    settle(&pool, &ids).await;
    let (status, _) = api.call(Method::GET, "/health", None).await;
    assert_eq!(status, 200, "healthy again");
    let slowest = slowest_restart_after(&pool, &ids, fault_end).await;
    let report = Report {
        scenario: "postgres down 10 s",
        jobs: ids.len(),
        faults: 1,
        slowest_recovery: slowest,
    };
    audit(&pool, &ids, report).await;
}

#[sqlx::test]
async fn a_job_that_crashes_its_worker_ends_failed_and_spares_the_rest(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let crashing = env.conveyor_with_crash();
    let crash = [(queue_core::diagnostics::CRASH_ENV, "1")];
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            crashing
                .enqueue(NewJob::new(Q, "CRASH", json!({})).max_attempts(3))
                .await
                .unwrap()
                .job
                .id,
        );
    }
    let crash_ids = ids.clone();
    ids.extend(enqueue_sleepers(&env.conveyor, 500).await);
    let mut workers: Vec<WorkerProcess> = (0..3).map(|_| spawn_worker(&env, &crash)).collect();

    // A supervisor, like systemd's Restart=always.
    let mut deaths = HashMap::new();
    let deadline = Instant::now() + SETTLE;
    loop {
        for w in workers.iter_mut() {
            if !env.is_running(w) {
                deaths.insert(w.pid, Utc::now());
                *w = spawn_worker(&env, &crash);
            }
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')",
        )
        .bind(&ids)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &crash_ids {
        let job = env.job(*id).await;
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Failed, 3),
            "{job:?}"
        );
        let lost = env
            .executions(*id)
            .await
            .iter()
            .filter(|e| e.status == "LOST")
            .count();
        assert_eq!(lost, 3);
    }
    assert_eq!(env.count(JobStatus::Completed).await, 500);
    let slowest = slowest_rescue(&env.pool, &ids, &deaths).await;
    let report = Report {
        scenario: "job crashes its worker",
        jobs: ids.len(),
        faults: deaths.len(),
        slowest_recovery: slowest,
    };
    audit(&env.pool, &ids, report).await;
}

#[sqlx::test]
async fn cancelling_a_hundred_running_jobs_cancels_them_all(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = env.spawn_api(&[]).await;
    let jobs = (0..100)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": 600_000})))
        .collect();
    let ids = env.conveyor.enqueue_many(jobs).await.unwrap();
    let mut vars = FAST.to_vec();
    vars.push(("CONVEYOR__WORKER__ABORT_GRACE_MS", "1000"));
    let _workers: Vec<WorkerProcess> = (0..3)
        .map(|_| env.spawn_worker(&["--queues", Q, "--concurrency", "40"], &vars))
        .collect();
    env.wait_count(JobStatus::Running, 100, SETTLE).await;

    let requested = Utc::now();
    for id in &ids {
        let (status, job) = api
            .call(Method::DELETE, &format!("/api/admin/jobs/{id}"), None)
            .await;
        assert_eq!(status, 202, "{job}");
        assert_eq!(job["cancelRequested"], true);
    }
    env.wait_count(JobStatus::Cancelled, 100, Duration::from_secs(20))
        .await;
    let slowest: Option<f64> = sqlx::query_scalar(
        "SELECT max(extract(epoch FROM completed_at - $2) * 1000)::float8 FROM jobs WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(requested)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    // Stay cancelled: nothing restarts or completes them afterwards.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.count(JobStatus::Cancelled).await, 100);
    for id in &ids {
        let executions = env.executions(*id).await;
        assert_eq!(executions.len(), 1);
        assert_eq!(executions[0].status, "CANCELLED");
    }
    let report = Report {
        scenario: "cancel 100 running",
        jobs: ids.len(),
        faults: 100,
        slowest_recovery: Duration::from_millis(slowest.unwrap_or(0.0) as u64),
    };
    audit(&env.pool, &ids, report).await;
}
