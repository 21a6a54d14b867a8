//! `conveyor-scheduler` end to end: cron ticks fire on time and exactly once with
//! several scheduler processes (one of them killed), status 0 stops a schedule,
//! trigger enqueues at once, missed ticks coalesce, and retention deletes exactly
//! what its policy names.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use conveyor_tests::{bin_path, repo_root, TestEnv};
use queue_core::config::Retention;
use queue_core::job::JobStatus;
use queue_core::scheduler::{self, Scheduler};
use queue_core::store::{Schedule, ScheduleSpec, ScheduleWrite, STATUS_DISABLED};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";

/// A spawned `conveyor-scheduler`, killed when dropped.
struct SchedulerProcess {
    child: Child,
}

impl SchedulerProcess {
    fn kill9(&mut self) {
        let status = Command::new("kill")
            .arg("-KILL")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let _ = self.child.wait();
    }
}

impl Drop for SchedulerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns the real `conveyor-scheduler` on this test's database and prefix (the
/// pattern of `TestEnv::spawn_worker`).
fn spawn_scheduler(env: &TestEnv) -> SchedulerProcess {
    let child = Command::new(bin_path("conveyor-scheduler"))
        .current_dir(repo_root())
        .env("DATABASE_URL", &env.db_url)
        .env("REDIS_URL", &env.redis_url)
        .env("CONVEYOR_REDIS_PREFIX", &env.prefix)
        .env("CONVEYOR_CONFIG", repo_root().join("config/conveyor.toml"))
        .env(
            "RUST_LOG",
            std::env::var("TEST_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn conveyor-scheduler");
    SchedulerProcess { child }
}

fn spec(name: &str, cron: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        description: None,
        queue_name: Q.into(),
        job_type: "NOOP".into(),
        cron_expression: cron.into(),
        timezone: "Asia/Shanghai".into(),
        status: 1,
        payload: json!({}),
        retry_attempts: None,
        retry_delay_ms: None,
        timeout_ms: None,
        priority: 5,
        misfire_policy: None,
    }
}

async fn create(env: &TestEnv, spec: &ScheduleSpec) -> Schedule {
    let next = scheduler::validate(&env.conveyor, spec, Utc::now()).expect("valid schedule");
    match env
        .conveyor
        .store()
        .insert_schedule(spec, next)
        .await
        .unwrap()
    {
        ScheduleWrite::Written(s) => *s,
        other => panic!("create: {other:?}"),
    }
}

/// (tick, job created_at) of every cron job of `schedule`, by tick.
async fn ticks(env: &TestEnv, schedule: Uuid) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT idempotency_key, created_at FROM jobs WHERE idempotency_key LIKE $1",
    )
    .bind(format!("schedule:{schedule}:%"))
    .fetch_all(&env.pool)
    .await
    .unwrap();
    let mut out: Vec<_> = rows
        .into_iter()
        .filter_map(|(key, created)| {
            let ms: i64 = key.rsplit(':').next()?.parse().ok()?;
            Some((Utc.timestamp_millis_opt(ms).single()?, created))
        })
        .collect();
    out.sort();
    out
}

/// Jobs per idempotency key of `schedule` that occur more than once.
async fn duplicate_keys(env: &TestEnv, schedule: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT idempotency_key FROM jobs WHERE idempotency_key LIKE $1
           GROUP BY idempotency_key HAVING count(*) > 1) d",
    )
    .bind(format!("schedule:{schedule}:%"))
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// Asserts the ticks form an unbroken run `step` apart.
fn assert_contiguous(ticks: &[(DateTime<Utc>, DateTime<Utc>)], step: chrono::Duration) {
    for w in ticks.windows(2) {
        assert_eq!(w[1].0 - w[0].0, step, "a tick is missing between {w:?}");
    }
}

#[sqlx::test]
async fn a_two_second_schedule_fires_on_time_for_ten_seconds(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-2s", "*/2 * * * * *")).await;
    let _scheduler = spawn_scheduler(&env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Utc::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let end = Utc::now();

    let all = ticks(&env, s.id).await;
    let window: Vec<_> = all
        .iter()
        .filter(|(t, _)| *t >= start && *t < end)
        .copied()
        .collect();
    assert!(
        (4..=6).contains(&window.len()),
        "{} ticks in 10 s: {window:?}",
        window.len()
    );
    for (tick, created) in &window {
        let late = *created - *tick;
        assert!(
            late >= chrono::Duration::zero() && late <= chrono::Duration::milliseconds(500),
            "tick {tick} enqueued at {created} ({} ms late)",
            late.num_milliseconds()
        );
        assert_eq!(tick.timestamp() % 2, 0);
    }
    assert_contiguous(&all, chrono::Duration::seconds(2));
    assert_eq!(duplicate_keys(&env, s.id).await, 0);
    // The schedule records its last run and its next tick.
    let now = env
        .conveyor
        .store()
        .get_schedule(s.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.last_run_at, all.last().map(|(t, _)| *t));
    assert!(now.last_job_id.is_some());
    assert!(now.next_run_at.unwrap() > all.last().unwrap().0);
}

#[sqlx::test]
async fn status_zero_stops_a_schedule(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-1s", "* * * * * *")).await;
    let _scheduler = spawn_scheduler(&env);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ticks(&env, s.id).await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule never fired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut off = ScheduleSpec::from(&s);
    off.status = STATUS_DISABLED;
    let next = scheduler::validate(&env.conveyor, &off, Utc::now()).unwrap();
    assert_eq!(next, None);
    let changed_at = Utc::now();
    match env
        .conveyor
        .store()
        .update_schedule(s.id, &off, next)
        .await
        .unwrap()
    {
        ScheduleWrite::Written(_) => {}
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = ticks(&env, s.id).await;
    let after: Vec<_> = all.iter().filter(|(t, _)| *t > changed_at).collect();
    assert!(
        after.is_empty(),
        "ticks fired after status 0 at {changed_at}: {after:?}"
    );
}

#[sqlx::test]
async fn trigger_enqueues_at_once_with_the_schedules_job_settings(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let mut sp = spec("yearly", "0 0 0 1 1 *");
    sp.retry_attempts = Some(7);
    sp.retry_delay_ms = Some(1234);
    sp.timeout_ms = Some(4321);
    sp.priority = 10;
    sp.payload = json!({"hello": "world"});
    sp.job_type = "ECHO".into();
    let s = create(&env, &sp).await;
    let before = Utc::now();
    let enqueued = scheduler::trigger(&env.conveyor, &s).await.unwrap();
    assert!(enqueued.created);
    let job = env.job(enqueued.job.id).await;
    assert!(job.created_at - before < chrono::Duration::seconds(1));
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.job_type, "ECHO");
    assert_eq!(job.payload, json!({"hello": "world"}));
    assert_eq!(job.max_attempts, 7);
    assert_eq!(job.timeout_ms, Some(4321));
    assert_eq!(job.priority, 10);
    assert!(job
        .idempotency_key
        .as_deref()
        .unwrap()
        .starts_with(&format!("schedule:{}:manual:", s.id)));
    let backoff: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT backoff FROM jobs WHERE id = $1")
            .bind(job.id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(backoff, Some(json!({"type": "fixed", "delay_ms": 1234})));
    // A second trigger is a second job; the schedule records the last.
    let second = scheduler::trigger(&env.conveyor, &s).await.unwrap();
    assert_ne!(second.job.id, job.id);
    let s = env
        .conveyor
        .store()
        .get_schedule(s.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_job_id, Some(second.job.id));
}

#[sqlx::test]
async fn two_scheduler_processes_fire_each_tick_once(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-2s", "*/2 * * * * *")).await;
    let _a = spawn_scheduler(&env);
    let _b = spawn_scheduler(&env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Utc::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let end = Utc::now();
    let all = ticks(&env, s.id).await;
    let window = all.iter().filter(|(t, _)| *t >= start && *t < end).count();
    assert!(
        (9..=11).contains(&window),
        "{window} ticks in 20 s: {all:?}"
    );
    assert_eq!(duplicate_keys(&env, s.id).await, 0);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(jobs as usize, all.len(), "one job per tick");
    assert_contiguous(&all, chrono::Duration::seconds(2));
}

#[sqlx::test]
async fn killing_one_of_two_schedulers_loses_no_tick(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-1s", "* * * * * *")).await;
    let mut a = spawn_scheduler(&env);
    let _b = spawn_scheduler(&env);
    tokio::time::sleep(Duration::from_millis(4_300)).await;
    a.kill9();
    let killed = Utc::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let all = ticks(&env, s.id).await;
    assert!(
        all.iter().filter(|(t, _)| *t > killed).count() >= 5,
        "the survivor goes on: {all:?}"
    );
    assert_contiguous(&all, chrono::Duration::seconds(1));
    assert_eq!(duplicate_keys(&env, s.id).await, 0);
}

#[sqlx::test]
async fn concurrent_schedulers_in_one_process_fire_a_due_tick_once(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-1s", "* * * * * *")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let schedulers: Vec<Scheduler> = (0..4)
        .map(|_| Scheduler::new(env.conveyor.clone()))
        .collect();
    let fired = futures::future::join_all(schedulers.iter().map(|s| s.fire_due())).await;
    let fired: usize = fired.into_iter().map(Result::unwrap).sum();
    // On a loaded machine the four calls can straddle a second, and the next tick
    // is then due (and rightly fired) too; what must never happen is one tick twice.
    let ticks = ticks(&env, s.id).await;
    let distinct: std::collections::HashSet<_> = ticks.iter().map(|(tick, _)| *tick).collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {ticks:?}");
    assert_eq!(fired, ticks.len(), "each firing recorded one tick");
    assert!(
        (1..=2).contains(&fired),
        "one scheduler fired the due tick, the others skipped it: {ticks:?}"
    );
}

#[sqlx::test]
async fn missed_ticks_coalesce_into_one_run_by_default(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let coalesce = create(&env, &spec("coalesce", "*/10 * * * * *")).await;
    let mut sp = spec("skip", "*/10 * * * * *");
    sp.misfire_policy = Some("skip".into());
    let skip = create(&env, &sp).await;
    let mut sp = spec("all", "*/10 * * * * *");
    sp.misfire_policy = Some("all".into());
    let all = create(&env, &sp).await;
    // The scheduler was down for five minutes: every schedule's next tick is old.
    let due = Utc
        .timestamp_opt((Utc::now().timestamp() / 10) * 10 - 300, 0)
        .unwrap();
    sqlx::query("UPDATE scheduled_jobs SET next_run_at = $1")
        .bind(due)
        .execute(&env.pool)
        .await
        .unwrap();
    Scheduler::new(env.conveyor.clone())
        .fire_due()
        .await
        .unwrap();

    let c = ticks(&env, coalesce.id).await;
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        Utc::now() - c[0].0 < chrono::Duration::seconds(11),
        "the latest tick"
    );
    assert!(
        ticks(&env, skip.id).await.len() <= 1,
        "only an on-time tick"
    );
    let a = ticks(&env, all.id).await;
    assert!((30..=31).contains(&a.len()), "{}", a.len());
    assert_contiguous(&a, chrono::Duration::seconds(10));
    for id in [coalesce.id, skip.id, all.id] {
        let s = env
            .conveyor
            .store()
            .get_schedule(id)
            .await
            .unwrap()
            .unwrap();
        assert!(s.next_run_at.unwrap() > Utc::now() - chrono::Duration::seconds(1));
    }
}

/// Inserts a finished (or other) job record directly.
async fn record(env: &TestEnv, queue: &str, status: &str, finished_ago_s: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at,
                           created_at, completed_at)
         VALUES ($1, $2, 'NOOP', $3, '{}', 1, now() - make_interval(secs => $4),
                 now() - make_interval(secs => $4),
                 CASE WHEN $3 IN ('COMPLETED','FAILED','CANCELLED')
                      THEN now() - make_interval(secs => $4) END)",
    )
    .bind(id)
    .bind(queue)
    .bind(status)
    .bind(finished_ago_s as f64)
    .execute(&env.pool)
    .await
    .unwrap();
    id
}

async fn existing(env: &TestEnv) -> BTreeSet<Uuid> {
    sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(&env.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[sqlx::test]
async fn retention_removes_exactly_what_its_policy_names(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| {
        c.queues.get_mut(Q).unwrap().retention = Retention {
            completed_max_age_s: 3_600,
            failed_max_age_s: 7_200,
            keep_completed: 2,
            keep_failed: 0,
        };
        c.queues.get_mut("book_data").unwrap().retention = Retention {
            completed_max_age_s: 3_600,
            failed_max_age_s: 3_600,
            keep_completed: 100,
            keep_failed: 0,
        };
    })
    .await;
    let h = 3_600;
    // diagnostics COMPLETED: older than 1 h and not among the newest 2 go.
    let c1 = record(&env, Q, "COMPLETED", 5 * h).await;
    let c2 = record(&env, Q, "COMPLETED", 4 * h).await;
    let c3 = record(&env, Q, "COMPLETED", 3 * h).await;
    let c4 = record(&env, Q, "COMPLETED", 2 * h).await; // old, but among the newest 2
    let c5 = record(&env, Q, "COMPLETED", 600).await; // young
                                                      // diagnostics FAILED: older than 2 h go (no floor).
    let f1 = record(&env, Q, "FAILED", 3 * h).await;
    let f2 = record(&env, Q, "FAILED", h).await;
    // Other states are never pruned, however old.
    let cancelled = record(&env, Q, "CANCELLED", 100 * h).await;
    let pending = record(&env, Q, "PENDING", 100 * h).await;
    let running = record(&env, Q, "RUNNING", 100 * h).await;
    // book_data keeps its newest 100 completed; its old FAILED goes.
    let b1 = record(&env, "book_data", "COMPLETED", 100 * h).await;
    let b2 = record(&env, "book_data", "FAILED", 100 * h).await;
    // A queue without configuration is left alone.
    let legacy = record(&env, "legacy", "COMPLETED", 1_000 * h).await;

    let deleted = Scheduler::new(env.conveyor.clone()).prune().await.unwrap();
    assert_eq!(deleted, 5);
    let left = existing(&env).await;
    let expected: BTreeSet<Uuid> = [c4, c5, f2, cancelled, pending, running, b1, legacy]
        .into_iter()
        .collect();
    assert_eq!(left, expected);
    for gone in [c1, c2, c3, f1, b2] {
        assert!(!left.contains(&gone));
    }
    // Idempotent: a second pass (or another scheduler) deletes nothing more.
    assert_eq!(
        Scheduler::new(env.conveyor.clone()).prune().await.unwrap(),
        0
    );
}

#[sqlx::test]
async fn retention_deletes_in_batches(pool: PgPool) {
    let env = TestEnv::with_config(pool, |c| {
        c.queues.get_mut(Q).unwrap().retention = Retention {
            completed_max_age_s: 60,
            failed_max_age_s: 60,
            keep_completed: 10,
            keep_failed: 0,
        };
    })
    .await;
    sqlx::query(
        "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at, completed_at)
         SELECT gen_random_uuid(), $1, 'NOOP', 'COMPLETED', '{}', 1, now(),
                now() - make_interval(secs => 3600 + g)
         FROM generate_series(1, 2500) g",
    )
    .bind(Q)
    .execute(&env.pool)
    .await
    .unwrap();
    let deleted = env
        .conveyor
        .store()
        .prune_finished(Q, JobStatus::Completed, 60, 10)
        .await
        .unwrap();
    assert_eq!(deleted, 2490);
    let newest: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE completed_at > now() - make_interval(secs => 3611)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(newest, 10, "the newest 10 are kept");
}
