//! `conveyor-scheduler` end to end: cron ticks fire on time and exactly once with
//! several scheduler processes (one of them killed), status 0 stops a schedule,
//! trigger enqueues at once, and missed ticks coalesce (or are skipped, or all
//! fired, as the schedule's misfire policy says).

use std::time::Duration;

use chrono::{TimeZone, Utc};
use conveyor_tests::schedules::{assert_contiguous, assert_on_time, create, spec, ticks, within};
use conveyor_tests::{wait_for, TestEnv};
use queue_core::cron::MisfirePolicy;
use queue_core::job::JobStatus;
use queue_core::scheduler::{self, Scheduler};
use queue_core::store::{ScheduleSpec, ScheduleStatus, ScheduleWrite};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const Q: &str = "diagnostics";

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

/// Waits until `schedule` has fired at least `n` ticks later than `after`.
async fn wait_ticks(
    env: &TestEnv,
    schedule: Uuid,
    n: usize,
    after: chrono::DateTime<Utc>,
    timeout: Duration,
) {
    wait_for(timeout, || async move {
        let all = ticks(env, schedule).await;
        let fired = all.iter().filter(|(t, _)| *t > after).count();
        if fired >= n {
            Ok(())
        } else {
            Err(format!("{fired} ticks fired, expected {n}: {all:?}"))
        }
    })
    .await
}

#[sqlx::test]
async fn a_two_second_schedule_fires_on_time_for_ten_seconds(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-2s", Q, "*/2 * * * * *")).await;
    let created = Utc::now() - chrono::Duration::seconds(1);
    let _scheduler = env.spawn_scheduler();
    // The window opens once the scheduler has fired its first tick.
    wait_ticks(&env, s.id, 1, created, Duration::from_secs(30)).await;
    let start = Utc::now();
    // A measurement, not a wait: the ticks of ten seconds.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let end = Utc::now();

    let all = ticks(&env, s.id).await;
    let window = within(&all, start, end);
    assert!(
        (4..=6).contains(&window.len()),
        "{} ticks in 10 s: {window:?}",
        window.len()
    );
    assert_on_time(&window, 500);
    for (tick, _) in &window {
        assert_eq!(tick.timestamp() % 2, 0);
    }
    assert_contiguous(&all, Duration::from_secs(2));
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
    let s = create(&env, &spec("every-1s", Q, "* * * * * *")).await;
    let created = Utc::now() - chrono::Duration::seconds(1);
    let _scheduler = env.spawn_scheduler();
    wait_ticks(&env, s.id, 2, created, Duration::from_secs(20)).await;
    let mut off = ScheduleSpec::from(&s);
    off.status = ScheduleStatus::Disabled;
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
    // Proves what does not happen: no tick fires in the next three seconds (a
    // change takes effect at once, on its NOTIFY).
    tokio::time::sleep(Duration::from_secs(3)).await;
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
    let mut sp = spec("yearly", Q, "0 0 0 1 1 *");
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
    let s = create(&env, &spec("every-2s", Q, "*/2 * * * * *")).await;
    let created = Utc::now() - chrono::Duration::seconds(1);
    let _a = env.spawn_scheduler();
    let _b = env.spawn_scheduler();
    // The window opens once a scheduler has fired its first tick.
    wait_ticks(&env, s.id, 1, created, Duration::from_secs(30)).await;
    let start = Utc::now();
    // A measurement, not a wait: the ticks of twenty seconds.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let end = Utc::now();
    let all = ticks(&env, s.id).await;
    let window = within(&all, start, end).len();
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
    assert_contiguous(&all, Duration::from_secs(2));
}

#[sqlx::test]
async fn killing_one_of_two_schedulers_loses_no_tick(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-1s", Q, "* * * * * *")).await;
    let created = Utc::now() - chrono::Duration::seconds(1);
    let a = env.spawn_scheduler();
    let _b = env.spawn_scheduler();
    // Both at work for a few ticks, then one dies mid-second.
    wait_ticks(&env, s.id, 4, created, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.signal(&a, "KILL");
    env.wait_exit(&a, Duration::from_secs(10)).await;
    let killed = Utc::now();
    // The survivor goes on: five ticks within six seconds.
    wait_ticks(&env, s.id, 5, killed, Duration::from_secs(6)).await;
    let all = ticks(&env, s.id).await;
    assert_contiguous(&all, Duration::from_secs(1));
    assert_eq!(duplicate_keys(&env, s.id).await, 0);
}

#[sqlx::test]
async fn concurrent_schedulers_in_one_process_fire_a_due_tick_once(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let s = create(&env, &spec("every-1s", Q, "* * * * * *")).await;
    // Until its first tick is due (and 100 ms more).
    let due = s.next_run_at.expect("an enabled schedule has a next tick") - Utc::now();
    tokio::time::sleep(due.to_std().unwrap_or_default() + Duration::from_millis(100)).await;
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
    let coalesce = create(&env, &spec("coalesce", Q, "*/10 * * * * *")).await;
    let mut sp = spec("skip", Q, "*/10 * * * * *");
    sp.misfire_policy = Some(MisfirePolicy::Skip);
    let skip = create(&env, &sp).await;
    let mut sp = spec("all", Q, "*/10 * * * * *");
    sp.misfire_policy = Some(MisfirePolicy::All);
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
    assert_contiguous(&a, Duration::from_secs(10));
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
