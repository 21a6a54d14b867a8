//! Cron schedules written through the store, and the ticks their jobs record (the
//! scheduler and retention suites share them).

use std::time::Duration;

use queue_core::scheduler;
use queue_core::store::{Schedule, ScheduleSpec, ScheduleStatus, ScheduleWrite};
use sqlx::types::chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::TestEnv;

/// An enabled NOOP schedule of `queue` on `cron` (seconds first), in Shanghai time.
pub fn spec(name: &str, queue: &str, cron: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        description: None,
        queue_name: queue.into(),
        job_type: "NOOP".into(),
        cron_expression: cron.into(),
        timezone: "Asia/Shanghai".into(),
        status: ScheduleStatus::Enabled,
        payload: serde_json::json!({}),
        retry_attempts: None,
        retry_delay_ms: None,
        timeout_ms: None,
        priority: 5,
        misfire_policy: None,
    }
}

/// Records `spec` as the API would (validated, its next tick computed).
pub async fn create(env: &TestEnv, spec: &ScheduleSpec) -> Schedule {
    let next = scheduler::validate(&env.conveyor, spec, Utc::now()).expect("valid schedule");
    match env
        .conveyor
        .store()
        .insert_schedule(spec, next)
        .await
        .expect("insert schedule")
    {
        ScheduleWrite::Written(s) => *s,
        other => panic!("create: {other:?}"),
    }
}

/// (tick, job created_at) of every cron job of `schedule`, by tick.
pub async fn ticks(env: &TestEnv, schedule: Uuid) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT idempotency_key, created_at FROM jobs WHERE idempotency_key LIKE $1",
    )
    .bind(format!("schedule:{schedule}:%"))
    .fetch_all(&env.pool)
    .await
    .expect("read ticks");
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

/// The ticks of `ticks` within [start, end).
pub fn within(
    ticks: &[(DateTime<Utc>, DateTime<Utc>)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    ticks
        .iter()
        .filter(|(t, _)| *t >= start && *t < end)
        .copied()
        .collect()
}

/// Asserts the ticks form an unbroken run `step` apart.
#[track_caller]
pub fn assert_contiguous(ticks: &[(DateTime<Utc>, DateTime<Utc>)], step: Duration) {
    for w in ticks.windows(2) {
        let gap = (w[1].0 - w[0].0).to_std().ok();
        assert_eq!(gap, Some(step), "a tick is missing between {w:?}");
    }
}

/// Asserts every tick's job was created on time: not before its tick and at most
/// `tolerance_ms` after it.
#[track_caller]
pub fn assert_on_time(ticks: &[(DateTime<Utc>, DateTime<Utc>)], tolerance_ms: i64) {
    for (tick, created) in ticks {
        let late_us = (*created - *tick)
            .num_microseconds()
            .expect("a lateness in range");
        assert!(
            (0..=tolerance_ms * 1_000).contains(&late_us),
            "tick {tick} enqueued at {created} ({} ms late)",
            late_us / 1_000
        );
    }
}
