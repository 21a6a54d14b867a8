//! Fault injection: the real binaries under real faults (kill -9, SIGSTOP, FLUSHALL,
//! Redis and PostgreSQL outages, a Redis restored from an older snapshot, a Redis
//! clock running ahead, a job that crashes its worker, mass cancellation, an
//! aborted drain). Each scenario prints one report line and requires:
//!
//! - lost = 0: every accepted job has its record;
//! - completed_more_than_once = 0: no job has two COMPLETED attempts, and every
//!   COMPLETED SLEEP job's completing attempt (run, attempt, worker) is one whose
//!   handler really returned success, as the workers' own tally file says (a
//!   frozen worker's late success written into another attempt shows here);
//! - stuck = 0: every job ends COMPLETED, FAILED or CANCELLED;
//! - one execution row per attempt, and (for SLEEP jobs that completed) as many
//!   extra attempts as interruptions that hit them;
//! - its timing bound: `recovery_ms` ≤ `bound_ms`.
//!
//! The timings are the documented recovery bounds with the shorter settings these
//! tests run with (lease 3 s, heartbeat 1 s, reconcile 1 s): a job of a dead or
//! frozen worker is recovered within lease + 5 s of the death; a waiting job Redis
//! lost is back in Redis within 8 s of the fault's end (15 s for a partial loss,
//! found by the periodic check, which leaves jobs younger than 5 s alone); work
//! resumes within 5 s of PostgreSQL's return.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use conveyor_tests::services::{PgServer, RedisServer};
use conveyor_tests::{wait_for, TestEnv, WorkerProcess};
use queue_core::job::{Backoff, ExecutionStatus, JobStatus, NewJob};
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
const LEASE: Duration = Duration::from_secs(3);
const SETTLE: Duration = Duration::from_secs(120);
/// A dead or frozen worker's jobs are recovered within this long of its death.
const RESCUE_BOUND: Duration = Duration::from_secs(LEASE.as_secs() + 5);
/// Jobs Redis lost are back in it within this long of the fault's end: a few 1 s
/// rounds, plus the 2 s an enqueue's own push is given before the reconciler
/// takes over, with room for a loaded machine.
const REDISPATCH_BOUND: Duration = Duration::from_secs(8);
/// Jobs Redis lost while keeping its marker are back within this long.
const PARTIAL_LOSS_BOUND: Duration = Duration::from_secs(15);
/// Work resumes within this long of PostgreSQL's return.
const RESUME_BOUND: Duration = Duration::from_secs(5);

fn random(n: u128) -> u128 {
    Uuid::new_v4().as_u128() % n
}

/// A scenario's environment plus the tally file its workers append successes to.
struct Scenario {
    env: TestEnv,
    tally: PathBuf,
}

impl Scenario {
    fn new(env: TestEnv) -> Self {
        let tally =
            std::env::temp_dir().join(format!("conveyor-tally-{}", Uuid::new_v4().simple()));
        Self { env, tally }
    }

    fn spawn_worker(&self, concurrency: u32, extra: &[(&str, &str)]) -> WorkerProcess {
        let tally = self.tally.to_string_lossy().into_owned();
        let mut vars = FAST.to_vec();
        vars.push((queue_core::diagnostics::TALLY_ENV, tally.as_str()));
        vars.extend_from_slice(extra);
        let concurrency = concurrency.to_string();
        self.env
            .spawn_worker(&["--queues", Q, "--concurrency", &concurrency], &vars)
    }

    /// Successful SLEEP invocations: (job, run, attempt, worker pid).
    fn successes(&self) -> Vec<(Uuid, i32, i32, u32)> {
        let text = std::fs::read_to_string(&self.tally).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut f = line.split(' ');
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                ))
            })
            .collect()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tally);
    }
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
    recovery: Duration,
    bound: Duration,
}

/// Checks every invariant over `ids`, prints the scenario's line, fails on any breach.
async fn audit(pool: &PgPool, scenario: &Scenario, ids: &[Uuid], report: Report) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(ids)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let lost = count("SELECT count(*) FROM unnest($1::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.id)").await;
    let two_rows = count(
        "SELECT count(*) FROM (SELECT job_id FROM job_attempts WHERE job_id = ANY($1) AND status = 'COMPLETED'
                               GROUP BY job_id HAVING count(*) > 1) t",
    )
    .await;
    let unbacked = completions_without_a_success(pool, scenario, ids).await;
    let twice = two_rows + unbacked as i64;
    let stuck = count("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')").await;
    let rows_off = count(
        "SELECT count(*) FROM jobs j WHERE j.id = ANY($1)
           AND (SELECT count(*) FROM job_attempts e WHERE e.job_id = j.id AND e.run = j.runs) <> j.attempts",
    )
    .await;
    let retries_off = count(
        "SELECT count(*) FROM jobs j WHERE j.id = ANY($1) AND j.status = 'COMPLETED' AND j.job_type = 'SLEEP'
           AND j.attempts - 1 <> (SELECT count(*) FROM job_attempts e
                                  WHERE e.job_id = j.id AND e.run = j.runs AND e.status = 'LOST')",
    )
    .await;
    println!(
        "fault-report scenario={:<34} jobs={:<5} faults={:<3} lost={lost} completed_more_than_once={twice} stuck={stuck} recovery_ms={} bound_ms={}",
        report.scenario,
        report.jobs,
        report.faults,
        report.recovery.as_millis(),
        report.bound.as_millis(),
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
    assert!(
        report.recovery <= report.bound,
        "{}: recovery took {:?}, bound {:?}",
        report.scenario,
        report.recovery,
        report.bound
    );
}

/// COMPLETED SLEEP jobs whose completing attempt (run, attempt, worker pid) is not
/// one the tally saw succeed: a completion written for an attempt that did not
/// produce it.
async fn completions_without_a_success(pool: &PgPool, scenario: &Scenario, ids: &[Uuid]) -> usize {
    let completed: Vec<(Uuid, i32, i32, String)> = sqlx::query_as(
        "SELECT e.job_id, e.run, e.attempt, e.worker_id FROM job_attempts e JOIN jobs j ON j.id = e.job_id
         WHERE e.job_id = ANY($1) AND e.status = 'COMPLETED' AND j.job_type = 'SLEEP'",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap();
    let successes: HashSet<(Uuid, i32, i32, u32)> = scenario.successes().into_iter().collect();
    completed
        .into_iter()
        .filter(|(id, run, attempt, worker)| {
            let pid = worker_pid(worker).unwrap_or(0);
            !successes.contains(&(*id, *run, *attempt, pid))
        })
        .count()
}

/// Worker ids read `host:pid:nonce`.
fn worker_pid(worker_id: &str) -> Option<u32> {
    worker_id.split(':').nth(1)?.parse().ok()
}

/// Longest time from a worker's death (or freeze) to the recovery of a job it held.
async fn slowest_rescue(
    pool: &PgPool,
    ids: &[Uuid],
    deaths: &HashMap<u32, DateTime<Utc>>,
) -> Duration {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT worker_id, finished_at FROM job_executions WHERE job_id = ANY($1) AND status = 'LOST'",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .filter_map(|(worker, recovered)| {
            let died = deaths.get(&worker_pid(&worker)?)?;
            (recovered - *died).to_std().ok()
        })
        .max()
        .unwrap_or_default()
}

/// ZMSCORE's answer: each member's score, or None when it is not in the set.
type Scores = Vec<Option<f64>>;

/// Waits until every job of `ids` accepted before `since` that PostgreSQL says is
/// waiting is in Redis again (ready, delayed or in flight); returns how long from
/// `since` that took.
async fn until_back_in_redis(
    env: &TestEnv,
    ids: &[Uuid],
    since: Instant,
    since_utc: DateTime<Utc>,
) -> Duration {
    let keys = env.conveyor.broker().keys(Q);
    let mut redis = redis::Client::open(env.redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable");
    let deadline = since + Duration::from_secs(60);
    loop {
        let waiting: Result<Vec<(Uuid, i32)>, _> = sqlx::query_as(
            "SELECT id, priority FROM jobs WHERE id = ANY($1) AND created_at < $2
               AND status IN ('PENDING', 'DELAYED', 'RETRYING')",
        )
        .bind(ids)
        .bind(since_utc)
        .fetch_all(&env.pool)
        .await;
        // A failed read (PostgreSQL still coming back) proves nothing yet.
        let Ok(waiting) = waiting else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut missing = Vec::new();
        for chunk in waiting.chunks(1_000) {
            let members: Vec<String> = chunk.iter().map(|(id, _)| id.to_string()).collect();
            let delayed: Vec<String> = chunk.iter().map(|(id, p)| format!("{p}|{id}")).collect();
            let (ready, inflight, later): (Scores, Scores, Scores) = redis::pipe()
                .cmd("ZMSCORE")
                .arg(&keys.ready)
                .arg(&members)
                .cmd("ZMSCORE")
                .arg(&keys.inflight)
                .arg(&members)
                .cmd("ZMSCORE")
                .arg(&keys.delayed)
                .arg(&delayed)
                .query_async(&mut redis)
                .await
                .unwrap_or_else(|_| {
                    (
                        vec![None; chunk.len()],
                        vec![None; chunk.len()],
                        vec![None; chunk.len()],
                    )
                });
            missing.extend(
                (0..chunk.len())
                    .filter(|&i| ready[i].is_none() && inflight[i].is_none() && later[i].is_none())
                    .map(|i| chunk[i].0),
            );
        }
        // An id read as waiting may have been claimed, run and acknowledged before
        // Redis was asked (a busy queue always has a few): only those PostgreSQL
        // still calls waiting are missing.
        let still: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status IN ('PENDING', 'DELAYED', 'RETRYING')",
        )
        .bind(&missing)
        .fetch_one(&env.pool)
        .await;
        if still.is_ok_and(|n| n == 0) || Instant::now() > deadline {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a job of `ids` claimed after `back` (PostgreSQL's return) has
/// completed; returns how long after `back` it completed.
async fn until_work_resumes(pool: &PgPool, ids: &[Uuid], back: DateTime<Utc>) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let first: Result<Option<DateTime<Utc>>, _> = sqlx::query_scalar(
            "SELECT min(completed_at) FROM jobs
             WHERE id = ANY($1) AND status = 'COMPLETED' AND started_at > $2",
        )
        .bind(ids)
        .bind(back)
        .fetch_one(pool)
        .await;
        if let Ok(Some(at)) = first {
            return (at - back).to_std().unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "no job ran within 60 s of PostgreSQL's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test]
async fn kill_nine_a_random_worker_every_second(pool: PgPool) {
    let s = Scenario::new(TestEnv::new(pool).await);
    let ids = enqueue_sleepers(&s.env.conveyor, 5_000).await;
    let mut workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(8, &[])).collect();
    let mut deaths = HashMap::new();
    let deadline = Instant::now() + SETTLE;
    while s.env.count(JobStatus::Completed).await < ids.len() as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let victim = random(3) as usize;
        s.env.signal(&workers[victim], "KILL");
        deaths.insert(workers[victim].pid, Utc::now());
        workers[victim] = s.spawn_worker(8, &[]);
    }
    settle(&s.env.pool, &ids).await;
    let report = Report {
        scenario: "kill-9 every second",
        jobs: ids.len(),
        faults: deaths.len(),
        recovery: slowest_rescue(&s.env.pool, &ids, &deaths).await,
        bound: RESCUE_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
    assert!(
        deaths.len() >= 2,
        "the run lasted long enough to kill workers"
    );
}

#[sqlx::test]
async fn a_frozen_worker_that_wakes_up_cannot_complete_what_another_finished(pool: PgPool) {
    let s = Scenario::new(TestEnv::new(pool).await);
    let jobs = (0..20)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": 2_000})).max_attempts(5))
        .collect();
    let ids = s.env.conveyor.enqueue_many(jobs).await.unwrap();
    let frozen = s.spawn_worker(20, &[]);
    s.env.wait_count(JobStatus::Running, 20, SETTLE).await;
    s.env.signal(&frozen, "STOP");
    let deaths = HashMap::from([(frozen.pid, Utc::now())]);
    let _other = s.spawn_worker(20, &[]);
    s.env.wait_count(JobStatus::Completed, 20, SETTLE).await;
    // The frozen worker wakes, its handlers return success and it reports them.
    s.env.signal(&frozen, "CONT");
    wait_for(Duration::from_secs(20), || async {
        let done = s.successes().iter().filter(|t| t.3 == frozen.pid).count();
        if done >= 20 {
            Ok(())
        } else {
            Err(format!("{done} of the woken worker's 20 handlers finished"))
        }
    })
    .await;
    // Proves what does not happen: nothing shows its completer trying to write the
    // stale successes, so give it two seconds; the audit finds no completion of it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        s.successes().len(),
        40,
        "every job's handler succeeded twice"
    );
    let report = Report {
        scenario: "zombie wakes after a rescue",
        jobs: ids.len(),
        faults: 1,
        recovery: slowest_rescue(&s.env.pool, &ids, &deaths).await,
        bound: RESCUE_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn a_frozen_worker_cannot_complete_the_run_an_admin_retry_started(pool: PgPool) {
    let s = Scenario::new(TestEnv::new(pool).await);
    let jobs = (0..20)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": 2_500})).max_attempts(1))
        .collect();
    let ids = s.env.conveyor.enqueue_many(jobs).await.unwrap();
    let frozen = s.spawn_worker(20, &[]);
    s.env.wait_count(JobStatus::Running, 20, SETTLE).await;
    s.env.signal(&frozen, "STOP");
    let deaths = HashMap::from([(frozen.pid, Utc::now())]);
    // Its lease runs out and the other worker's recovery fails the jobs (one
    // attempt each); an admin retries them and the other worker runs the new run.
    let _other = s.spawn_worker(20, &[]);
    s.env.wait_count(JobStatus::Failed, 20, SETTLE).await;
    for id in &ids {
        s.env.conveyor.retry(*id).await.unwrap();
    }
    s.env.wait_count(JobStatus::Running, 20, SETTLE).await;
    s.env.signal(&frozen, "CONT");
    settle(&s.env.pool, &ids).await;
    assert_eq!(s.env.count(JobStatus::Completed).await, 20);
    let report = Report {
        scenario: "zombie from an earlier run",
        jobs: ids.len(),
        faults: 1,
        recovery: slowest_rescue(&s.env.pool, &ids, &deaths).await,
        bound: RESCUE_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn redis_loses_all_its_data_mid_run(pool: PgPool) {
    let redis = RedisServer::start();
    let db_url = conveyor_tests::test_db_url(&pool);
    let s = Scenario::new(TestEnv::with_services(pool, db_url, redis.url(), |_| {}).await);
    let ids = enqueue_sleepers(&s.env.conveyor, 5_000).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(8, &[])).collect();
    s.env
        .wait_count_at_least(JobStatus::Completed, 500, SETTLE)
        .await;
    // Just before the flush: the jobs PostgreSQL says have not run yet (PENDING,
    // no attempt), and the length of the queue's ready set in Redis, read in the
    // same MULTI as the FLUSHALL (so it is what the flush took).
    let waiting: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE id = ANY($1) AND status = 'PENDING' AND attempts = 0",
    )
    .bind(&ids)
    .fetch_all(&s.env.pool)
    .await
    .unwrap();
    let flushed_at = Utc::now();
    let (queued, ()): (i64, ()) = redis::pipe()
        .atomic()
        .zcard(s.env.conveyor.broker().keys(Q).ready)
        .cmd("FLUSHALL")
        .query_async(&mut s.env.redis().await)
        .await
        .unwrap();
    let flushed = Instant::now();
    assert!(
        !waiting.is_empty(),
        "no job was waiting in PostgreSQL when the flush hit"
    );
    assert!(
        queued > 0,
        "the queue was empty in Redis when the flush hit"
    );
    let recovery = until_back_in_redis(&s.env, &ids, flushed, flushed_at).await;
    settle(&s.env.pool, &ids).await;
    // Every job completed; each one that had not run when the flush hit completed
    // once, and (taken from Redis by the flush) most ran only after it.
    assert_eq!(
        s.env.count(JobStatus::Completed).await,
        ids.len() as i64,
        "every job completed"
    );
    let (completed, attempts, started_after): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'COMPLETED'),
                (SELECT count(*) FROM job_attempts WHERE job_id = ANY($1) AND status = 'COMPLETED'),
                (SELECT count(*) FROM job_attempts
                 WHERE job_id = ANY($1) AND status = 'COMPLETED' AND started_at > $2)",
    )
    .bind(&waiting)
    .bind(flushed_at)
    .fetch_one(&s.env.pool)
    .await
    .unwrap();
    let n = waiting.len() as i64;
    assert_eq!(
        (completed, attempts),
        (n, n),
        "of the {n} jobs waiting at the flush: completed, completed attempts"
    );
    assert!(
        started_after * 2 > n,
        "only {started_after} of the {n} jobs waiting at the flush ran after it"
    );
    let report = Report {
        scenario: "redis FLUSHALL",
        jobs: ids.len(),
        faults: 1,
        recovery,
        bound: REDISPATCH_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn redis_restored_from_an_older_snapshot(pool: PgPool) {
    let mut redis = RedisServer::start_with_snapshots();
    let db_url = conveyor_tests::test_db_url(&pool);
    let s = Scenario::new(TestEnv::with_services(pool, db_url, redis.url(), |_| {}).await);
    let _workers: Vec<WorkerProcess> = (0..2).map(|_| s.spawn_worker(8, &[])).collect();
    s.env.wait_queue_known_to_redis(Q).await;
    // Paused, so the jobs wait in Redis while the snapshot is taken and lost.
    s.env.conveyor.set_paused(Q, true).await.unwrap();
    let mut ids = enqueue_sleepers(&s.env.conveyor, 1_000).await;
    redis.save();
    ids.extend(enqueue_sleepers(&s.env.conveyor, 1_000).await);
    let later = (0..200)
        .map(|_| {
            NewJob::new(Q, "SLEEP", json!({"ms": 5}))
                .run_at(Utc::now() + chrono::Duration::seconds(3))
        })
        .collect();
    ids.extend(s.env.conveyor.enqueue_many(later).await.unwrap());
    // Restored from the snapshot: the queue's marker and the first 1 000 jobs are
    // there, the 1 200 enqueued after it are not.
    redis.stop();
    redis.restart();
    let restored = (Instant::now(), Utc::now());
    // The client's connection comes back on its own within a moment.
    wait_for(Duration::from_secs(10), || async {
        s.env
            .conveyor
            .set_paused(Q, false)
            .await
            .map_err(|e| format!("resume failed: {e}"))
    })
    .await;
    let recovery = until_back_in_redis(&s.env, &ids, restored.0, restored.1).await;
    settle(&s.env.pool, &ids).await;
    let report = Report {
        scenario: "redis restored from older snapshot",
        jobs: ids.len(),
        faults: 1,
        recovery,
        bound: PARTIAL_LOSS_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn redis_clock_ahead_of_postgres(pool: PgPool) {
    let s = Scenario::new(TestEnv::new(pool).await);
    let _workers: Vec<WorkerProcess> = (0..2).map(|_| s.spawn_worker(8, &[])).collect();
    s.env.wait_queue_known_to_redis(Q).await;
    let due = Utc::now() + chrono::Duration::seconds(4);
    let jobs = (0..1_000)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": random(21)})).run_at(due))
        .collect();
    let ids = s.env.conveyor.enqueue_many(jobs).await.unwrap();
    // What a Redis clock 3 s ahead does: delayed ids become ready 3 s before
    // PostgreSQL thinks they are due (the claim script promotes by Redis's TIME).
    let skew = 3_000;
    let keys = s.env.conveyor.broker().keys(Q);
    let mut redis = s.env.redis().await;
    let until = Instant::now() + Duration::from_secs(8);
    let mut promoted_ids = HashSet::new();
    while Instant::now() < until {
        let now = Utc::now().timestamp_millis();
        let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&keys.delayed)
            .arg("-inf")
            .arg(now + skew)
            .query_async(&mut redis)
            .await
            .unwrap();
        // Once each: the id a refused claim pushes back is scored by Redis's own
        // TIME, which in this simulation is not skewed.
        let early: Vec<String> = due
            .into_iter()
            .filter(|m| promoted_ids.insert(m.clone()))
            .collect();
        if !early.is_empty() {
            let mut pipe = redis::pipe();
            for member in &early {
                let id = member.split('|').nth(1).unwrap_or_default();
                pipe.zadd(&keys.ready, id, 0).ignore();
                pipe.zrem(&keys.delayed, member).ignore();
            }
            pipe.zadd(&keys.marker, "0", 0).ignore();
            let _: () = pipe.query_async(&mut redis).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = promoted_ids.len();
    settle(&s.env.pool, &ids).await;
    let (early, latest): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE started_at < run_at - interval '1 second'),
                max(extract(epoch FROM started_at - run_at) * 1000)::float8
         FROM jobs WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&s.env.pool)
    .await
    .unwrap();
    assert_eq!(early, 0, "jobs started more than 1 s before they were due");
    assert!(promoted > 0, "the skewed promotion took ids early");
    let report = Report {
        scenario: "redis clock 3 s ahead",
        jobs: ids.len(),
        faults: promoted,
        recovery: Duration::from_millis(latest.unwrap_or(0.0).max(0.0) as u64),
        bound: RESUME_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn redis_down_for_ten_seconds_while_the_api_takes_jobs(pool: PgPool) {
    let mut redis = RedisServer::start();
    let db_url = conveyor_tests::test_db_url(&pool);
    let s = Scenario::new(TestEnv::with_services(pool, db_url, redis.url(), |_| {}).await);
    let api = s.env.spawn_api(&[]).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(8, &[])).collect();

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
                fault_end = Some((Instant::now(), Utc::now()));
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
    let (end, end_utc) = fault_end.expect("redis restarted");
    let recovery = until_back_in_redis(&s.env, &ids, end, end_utc).await;
    settle(&s.env.pool, &ids).await;
    let report = Report {
        scenario: "redis down 10 s",
        jobs: ids.len(),
        faults: 1,
        recovery,
        bound: REDISPATCH_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

/// An environment on a private PostgreSQL (which the test stops) and `redis_url`.
async fn on_private_postgres(pg: &PgServer, redis_url: String) -> Scenario {
    let pool = PgPool::connect(&pg.url()).await.unwrap();
    queue_core::store::MIGRATOR.run(&pool).await.unwrap();
    Scenario::new(TestEnv::with_services(pool, pg.url(), redis_url, |_| {}).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_ten_seconds_mid_run() {
    let pg = PgServer::start();
    let s = on_private_postgres(&pg, conveyor_tests::redis_url()).await;
    let api = s.env.spawn_api(&[]).await;
    let ids = enqueue_sleepers(&s.env.conveyor, 5_000).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(8, &[])).collect();
    s.env
        .wait_count_at_least(JobStatus::Completed, 500, SETTLE)
        .await;

    pg.stop();
    let down = tokio::time::Instant::now();
    // Writes answer 503 and /health says why while PostgreSQL is down (once the
    // API has seen it go).
    wait_for(Duration::from_secs(10), || async {
        let (status, health) = api.call(Method::GET, "/health", None).await;
        if status == 503 {
            Ok(())
        } else {
            Err(format!("/health answers {status} {health}"))
        }
    })
    .await;
    let body = json!({"queueName": Q, "jobType": "NOOP", "payload": {}});
    let (status, error) = api.call(Method::POST, "/api/admin/jobs", Some(body)).await;
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["error"]["code"], "database_unavailable");
    let (status, health) = api.call(Method::GET, "/health", None).await;
    assert_eq!(status, 503);
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["details"]["postgres"]["status"], "down");
    // The outage lasts ten seconds.
    tokio::time::sleep_until(down + Duration::from_secs(10)).await;
    pg.restart();
    let back = Utc::now();

    let pool = PgPool::connect(&pg.url()).await.unwrap();
    let recovery = until_work_resumes(&pool, &ids, back).await;
    settle(&pool, &ids).await;
    let (status, _) = api.call(Method::GET, "/health", None).await;
    assert_eq!(status, 200, "healthy again");
    let report = Report {
        scenario: "postgres down 10 s",
        jobs: ids.len(),
        faults: 1,
        recovery,
        bound: RESUME_BOUND,
    };
    audit(&pool, &s, &ids, report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_longer_than_the_lease_keeps_the_work_finished_meanwhile() {
    let pg = PgServer::start();
    let s = on_private_postgres(&pg, conveyor_tests::redis_url()).await;
    // One attempt each: a finished attempt thrown away would fail its job.
    let jobs = (0..60)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": 1_500})).max_attempts(1))
        .collect();
    let ids = s.env.conveyor.enqueue_many(jobs).await.unwrap();
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(8, &[])).collect();
    s.env.wait_count(JobStatus::Running, 24, SETTLE).await;
    pg.stop();
    // Two and a half leases: the running attempts finish while nothing can be written.
    tokio::time::sleep(LEASE * 5 / 2).await;
    pg.restart();
    let back = Utc::now();
    let pool = PgPool::connect(&pg.url()).await.unwrap();
    let recovery = until_work_resumes(&pool, &ids, back).await;
    settle(&pool, &ids).await;
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status <> 'COMPLETED'",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(failed, 0, "every job completed on its one attempt");
    let report = Report {
        scenario: "postgres down 2.5 leases",
        jobs: ids.len(),
        faults: 1,
        recovery,
        bound: RESUME_BOUND,
    };
    audit(&pool, &s, &ids, report).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flushed_while_postgres_is_down() {
    let pg = PgServer::start();
    let redis = RedisServer::start();
    let s = on_private_postgres(&pg, redis.url()).await;
    let ids = enqueue_sleepers(&s.env.conveyor, 3_000).await;
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(8, &[])).collect();
    s.env
        .wait_count_at_least(JobStatus::Completed, 300, SETTLE)
        .await;
    pg.stop();
    redis.flushall();
    // Several reconcile rounds see the queue's marker gone while PostgreSQL is down.
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg.restart();
    let back = (Instant::now(), Utc::now());
    let pool = PgPool::connect(&pg.url()).await.unwrap();
    let recovery = until_back_in_redis(&s.env, &ids, back.0, back.1).await;
    settle(&pool, &ids).await;
    let report = Report {
        scenario: "redis flushed while postgres down",
        jobs: ids.len(),
        faults: 2,
        recovery,
        bound: REDISPATCH_BOUND,
    };
    audit(&pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn an_aborted_drain_with_retries_and_releases_in_flight_ends(pool: PgPool) {
    let s = Scenario::new(TestEnv::new(pool).await);
    // Long sleepers hold slots (given back at the abort) while failures retry at
    // once in the others, so the completer's batches mix retries and releases.
    let mut jobs: Vec<NewJob> = (0..20)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": 8_000})).max_attempts(5))
        .collect();
    jobs.extend((0..400).map(|_| {
        let mut job = NewJob::new(Q, "FAIL", json!({"failTimes": 3})).max_attempts(5);
        job.backoff = Some(Backoff::Fixed { delay_ms: 0 });
        job
    }));
    let ids = s.env.conveyor.enqueue_many(jobs).await.unwrap();
    let worker = s.spawn_worker(30, &[]);
    s.env.wait_count(JobStatus::Running, 30, SETTLE).await;
    // The scenario's timing: half a second of retries beside the long sleepers,
    // then the drain, aborted by a second TERM 200 ms into it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.env.signal(&worker, "TERM");
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.env.signal(&worker, "TERM");
    s.env.wait_exit(&worker, Duration::from_secs(30)).await;
    let drained = signalled.elapsed();
    let _next = s.spawn_worker(30, &[]);
    settle(&s.env.pool, &ids).await;
    let report = Report {
        scenario: "drain aborted mid-retries",
        jobs: ids.len(),
        faults: 1,
        recovery: drained,
        bound: Duration::from_secs(10),
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn a_job_that_crashes_its_worker_ends_failed_and_spares_the_rest(pool: PgPool) {
    let s = Scenario::new(TestEnv::new(pool).await);
    let crashing = s.env.conveyor_with_crash();
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
    ids.extend(enqueue_sleepers(&s.env.conveyor, 500).await);
    let mut workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(8, &crash)).collect();

    // A supervisor, like systemd's Restart=always.
    let mut deaths = HashMap::new();
    let deadline = Instant::now() + SETTLE;
    loop {
        for w in workers.iter_mut() {
            if !s.env.is_running(w) {
                deaths.insert(w.pid, Utc::now());
                *w = s.spawn_worker(8, &crash);
            }
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')",
        )
        .bind(&ids)
        .fetch_one(&s.env.pool)
        .await
        .unwrap();
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &crash_ids {
        let job = s.env.job(*id).await;
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Failed, 3),
            "{job:?}"
        );
        let lost = s
            .env
            .executions(*id)
            .await
            .iter()
            .filter(|e| e.status == ExecutionStatus::Lost)
            .count();
        assert_eq!(lost, 3);
    }
    assert_eq!(s.env.count(JobStatus::Completed).await, 500);
    let report = Report {
        scenario: "job crashes its worker",
        jobs: ids.len(),
        faults: deaths.len(),
        recovery: slowest_rescue(&s.env.pool, &ids, &deaths).await,
        bound: RESCUE_BOUND,
    };
    audit(&s.env.pool, &s, &ids, report).await;
}

#[sqlx::test]
async fn cancelling_a_hundred_running_jobs_cancels_them_all(pool: PgPool) {
    let s = Scenario::new(TestEnv::new(pool).await);
    let api = s.env.spawn_api(&[]).await;
    let jobs = (0..100)
        .map(|_| NewJob::new(Q, "SLEEP", json!({"ms": 600_000})))
        .collect();
    let ids = s.env.conveyor.enqueue_many(jobs).await.unwrap();
    let grace = [("CONVEYOR__WORKER__ABORT_GRACE_MS", "1000")];
    let _workers: Vec<WorkerProcess> = (0..3).map(|_| s.spawn_worker(40, &grace)).collect();
    s.env.wait_count(JobStatus::Running, 100, SETTLE).await;

    let requested = Utc::now();
    for id in &ids {
        let (status, job) = api
            .call(Method::DELETE, &format!("/api/admin/jobs/{id}"), None)
            .await;
        assert_eq!(status, 202, "{job}");
        assert_eq!(job["cancelRequested"], true);
    }
    s.env
        .wait_count(JobStatus::Cancelled, 100, Duration::from_secs(20))
        .await;
    let slowest: Option<f64> = sqlx::query_scalar(
        "SELECT max(extract(epoch FROM completed_at - $2) * 1000)::float8 FROM jobs WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(requested)
    .fetch_one(&s.env.pool)
    .await
    .unwrap();
    // Stay cancelled: proves what does not happen (nothing restarts or completes
    // them afterwards), so a short look.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.env.count(JobStatus::Cancelled).await, 100);
    for id in &ids {
        let executions = s.env.executions(*id).await;
        assert_eq!(executions.len(), 1);
        assert_eq!(executions[0].status, ExecutionStatus::Cancelled);
    }
    let report = Report {
        scenario: "cancel 100 running",
        jobs: ids.len(),
        faults: 100,
        recovery: Duration::from_millis(slowest.unwrap_or(0.0) as u64),
        bound: Duration::from_secs(5),
    };
    audit(&s.env.pool, &s, &ids, report).await;
}
