//! `conveyor-scheduler`'s loop: fires cron schedules and runs the maintenance
//! (retention) that must not live in every worker.
//!
//! Exactly once per tick without a leader: a tick's job is enqueued with the
//! idempotency key `schedule:{schedule id}:{tick unix ms}`, so the jobs table's
//! unique index turns a second fire of the same tick (another scheduler, or this
//! one after a crash before it moved the schedule on) into the existing job. Due
//! schedules are locked `FOR UPDATE SKIP LOCKED`, so schedulers share the work, and
//! moved on with an `UPDATE` guarded by the tick they fired. A scheduler that dies
//! mid-tick leaves the row unchanged; the next one fires the same key.
//!
//! The loop wakes at the earliest next tick, at most every `[scheduler] tick_ms`,
//! and at once on a NOTIFY `conveyor_schedules` (sent by every create, change and
//! delete), so a schedule change takes effect well within 2 s.
//!
//! Retention runs in a task of its own every `[scheduler] retention_interval_ms`,
//! so however long a pass takes (a backlog of millions of finished records) or
//! however it fails, no tick waits for it. A pass deletes in batches and pauses
//! between them, holding one connection at a time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::{Conveyor, Enqueued};
use crate::config::SchedulerConfig;
use crate::cron::{self, Clock, SystemClock};
use crate::error::{EnqueueError, StoreError};
use crate::job::{Backoff, JobStatus, NewJob, Priority};
use crate::service::{self, Liveness};
use crate::store::schedules::{self, Schedule, ScheduleSpec, ScheduleStatus, SCHEDULES_CHANNEL};
use crate::store::{DueRecords, PARTITION_DROP_MIN_AGE_S};

/// The least pause between two retention batches; a batch that took longer is
/// followed by a pause as long as itself, so retention keeps to about half of one
/// connection however slow the database is.
pub const RETENTION_PAUSE: Duration = Duration::from_millis(50);

/// The idempotency key of a cron tick's job.
pub fn tick_key(schedule: Uuid, tick: DateTime<Utc>) -> String {
    format!("schedule:{schedule}:{}", tick.timestamp_millis())
}

/// The job a schedule enqueues, with its retry attempts, fixed retry delay,
/// timeout and priority.
pub fn job_for(schedule: &Schedule, idempotency_key: String) -> NewJob {
    job_for_spec(&ScheduleSpec::from(schedule), idempotency_key)
}

fn job_for_spec(spec: &ScheduleSpec, idempotency_key: String) -> NewJob {
    NewJob {
        queue: spec.queue_name.clone(),
        job_type: spec.job_type.clone(),
        payload: spec.payload.clone(),
        priority: Priority::new(spec.priority).unwrap_or_default(),
        max_attempts: spec.retry_attempts.map(|n| n.max(0) as u32),
        run_at: None,
        timeout_ms: spec.timeout_ms.map(|ms| ms.max(0) as u64),
        idempotency_key: Some(idempotency_key),
        backoff: spec.retry_delay_ms.map(|ms| Backoff::Fixed {
            delay_ms: ms.max(0) as u64,
        }),
        parent_id: None,
    }
}

/// Checks a schedule as a create or change would store it: expression, zone,
/// misfire policy, priority, and its job against the queue and the catalog (errors
/// name the API field). Returns the next tick after `now` (None while the schedule
/// is not enabled).
pub fn validate(
    conveyor: &Conveyor,
    spec: &ScheduleSpec,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, EnqueueError> {
    let bad = |field: &str, message: String| EnqueueError::invalid(field, message);
    if spec.name.trim().is_empty() || spec.name.len() > 200 {
        return Err(bad("name", "must be 1 to 200 characters".into()));
    }
    let parsed = cron::parse(&spec.cron_expression, &spec.timezone).map_err(|e| {
        let message = e.to_string();
        let message = message
            .split_once(": ")
            .map(|(_, m)| m.to_string())
            .unwrap_or(message);
        bad(e.field(), message)
    })?;
    Priority::new(spec.priority).map_err(|m| bad("priority", m))?;
    if let Some(n) = spec.retry_attempts {
        if !(1..=1_000).contains(&n) {
            return Err(bad("retryAttempts", "must be between 1 and 1000".into()));
        }
    }
    if spec.retry_delay_ms.is_some_and(|ms| ms < 0) {
        return Err(bad("retryDelay", "must be 0 or more (ms)".into()));
    }
    if spec.timeout_ms.is_some_and(|ms| ms < 1) {
        return Err(bad("timeout", "must be at least 1 (ms)".into()));
    }
    conveyor
        .prepare(job_for_spec(spec, "schedule:check".into()))
        .map_err(|e| match e {
            EnqueueError::Invalid { field, message } => EnqueueError::Invalid {
                field: match field.as_str() {
                    "maxAttempts" => "retryAttempts".into(),
                    "timeoutMs" => "timeout".into(),
                    "backoff" => "retryDelay".into(),
                    _ => field,
                },
                message,
            },
            other => other,
        })?;
    Ok(if spec.status == ScheduleStatus::Enabled {
        parsed.next_after(now)
    } else {
        None
    })
}

/// Enqueues a schedule's job now, outside its cron (`POST …/trigger`).
pub async fn trigger(conveyor: &Conveyor, schedule: &Schedule) -> Result<Enqueued, EnqueueError> {
    let key = format!("schedule:{}:manual:{}", schedule.id, Uuid::new_v4());
    let enqueued = conveyor.enqueue(job_for(schedule, key)).await?;
    conveyor
        .store()
        .record_schedule_run(schedule.id, Utc::now(), enqueued.job.id)
        .await?;
    Ok(enqueued)
}

/// Fires due schedules and runs retention. Several may run at once.
pub struct Scheduler {
    conveyor: Conveyor,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
}

impl Scheduler {
    pub fn new(conveyor: Conveyor) -> Self {
        Self::with_clock(conveyor, Arc::new(SystemClock))
    }

    pub fn with_clock(conveyor: Conveyor, clock: Arc<dyn Clock>) -> Self {
        let config = conveyor.config().scheduler.clone();
        Self {
            conveyor,
            clock,
            config,
        }
    }

    /// Runs until `stop`: fires due schedules and, each in a task of its own,
    /// prunes finished records every `retention_interval_ms` and compacts the job
    /// counters every second. Returns once retention has stopped too (at its next
    /// batch boundary).
    pub async fn run(self, stop: CancellationToken) {
        let compaction = tokio::spawn(
            self.conveyor
                .store()
                .clone()
                .run_counter_compaction(stop.child_token()),
        );
        let retention = tokio::spawn(run_retention(
            self.conveyor.clone(),
            self.config.retention_interval(),
            stop.child_token(),
        ));
        let mut listener = match PgListener::connect_with(self.conveyor.store().pool()).await {
            Ok(mut l) => match l.listen(SCHEDULES_CHANNEL).await {
                Ok(()) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for schedule changes; polling");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for schedule changes; polling");
                None
            }
        };
        let tick = self.config.tick();
        tracing::info!("scheduler running");
        let liveness = Liveness::new();
        let probe = liveness.probe("cron loop");
        tokio::spawn(liveness.run_watchdog(stop.child_token()));
        service::ready("firing schedules");
        while !stop.is_cancelled() {
            probe.beat();
            if let Err(e) = self.fire_due().await {
                tracing::warn!(error = %e, "firing due schedules failed; retrying");
            }
            let wait = match self.conveyor.store().next_schedule_due().await {
                Ok(Some(due)) => (due - self.clock.now())
                    .to_std()
                    .map(|d| d + Duration::from_millis(1))
                    .unwrap_or(Duration::ZERO)
                    .min(tick),
                _ => tick,
            };
            if wait.is_zero() {
                continue;
            }
            match listener.as_mut() {
                Some(l) => {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                        n = l.recv() => if let Err(e) = n {
                            tracing::warn!(error = %e, "schedule listener failed");
                            tokio::time::sleep(wait).await;
                        },
                    }
                }
                None => {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        service::stopping("finishing retention's batch");
        compaction.abort();
        // `stop` is cancelled here, so retention ends at its next batch boundary.
        if let Err(e) = retention.await {
            tracing::warn!(error = %e, "retention task ended abnormally");
        }
        tracing::info!("scheduler stopped");
    }

    /// Fires every schedule due now, in batches; returns how many jobs it enqueued
    /// (a tick another scheduler already fired counts too).
    pub async fn fire_due(&self) -> Result<usize, StoreError> {
        let mut fired = 0;
        loop {
            let (n, locked) = self.fire_batch().await?;
            fired += n;
            if locked < self.config.batch_size as usize {
                return Ok(fired);
            }
        }
    }

    async fn fire_batch(&self) -> Result<(usize, usize), StoreError> {
        let now = self.clock.now();
        let grace = chrono::Duration::milliseconds(self.config.misfire_grace_ms as i64);
        let mut tx = self.conveyor.store().pool().begin().await?;
        let due = schedules::lock_due(&mut tx, now, i64::from(self.config.batch_size)).await?;
        let mut fired = 0;
        for s in &due {
            let Some(due_at) = s.next_run_at else {
                continue;
            };
            let parsed = match cron::parse(&s.cron_expression, &s.timezone) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(schedule = %s.id, error = %e, "schedule cannot be evaluated; stopping it");
                    schedules::advance(&mut tx, s.id, due_at, None, None).await?;
                    continue;
                }
            };
            let policy = s.misfire_policy.unwrap_or(self.config.misfire);
            let plan = cron::plan(&parsed, due_at, now, policy, grace);
            let mut last_run = None;
            for tick in plan.fire {
                match self
                    .conveyor
                    .enqueue(job_for(s, tick_key(s.id, tick)))
                    .await
                {
                    Ok(e) => {
                        fired += 1;
                        last_run = Some((tick, e.job.id));
                    }
                    // The database failed: roll back; this tick fires again later
                    // under the same key.
                    Err(EnqueueError::Store(e)) => return Err(e),
                    Err(e) => tracing::warn!(
                        schedule = %s.id, name = %s.name, error = %e,
                        "schedule's job refused; tick skipped"
                    ),
                }
            }
            schedules::advance(&mut tx, s.id, due_at, plan.next, last_run).await?;
        }
        tx.commit().await?;
        Ok((fired, due.len()))
    }

    /// Applies every configured queue's retention once, without pausing between
    /// batches; returns the records deleted.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        prune_pass(&self.conveyor, None).await
    }
}

/// Applies retention at once and then `interval` after each pass ends, until `stop`.
async fn run_retention(conveyor: Conveyor, interval: Duration, stop: CancellationToken) {
    loop {
        match prune_pass(&conveyor, Some(&stop)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "retention pruned finished jobs"),
            Err(e) => tracing::warn!(error = %e, "retention failed; retrying next interval"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One pass over every configured queue's retention. With `paced`, pauses between
/// batches (see [`RETENTION_PAUSE`]) and ends early once that token is cancelled.
///
/// First the history's daily partitions: the coming days' are created, and each
/// day past the shortest retention age (a day at least) is dropped whole, its
/// records that are not due moving to the default partition. Then the records
/// due one by one (see [`PARTITION_DROP_MIN_AGE_S`]).
async fn prune_pass(
    conveyor: &Conveyor,
    paced: Option<&CancellationToken>,
) -> Result<u64, StoreError> {
    let store = conveyor.store();
    if let Err(e) = store.prepare_history_partitions().await {
        tracing::warn!(error = %e, "could not create the coming days' history partitions");
    }
    let mut due = Vec::new();
    let mut drop_after_s: Option<u64> = None;
    for (queue, q) in &conveyor.config().queues {
        let r = q.retention;
        for (status, max_age_s, keep) in [
            (
                JobStatus::Completed,
                r.completed_max_age_s,
                r.keep_completed,
            ),
            (JobStatus::Failed, r.failed_max_age_s, r.keep_failed),
        ] {
            let age = max_age_s.max(PARTITION_DROP_MIN_AGE_S);
            drop_after_s = Some(drop_after_s.map_or(age, |a| a.min(age)));
            if let Some(cursor) = store.prune_start(queue, status, max_age_s, keep).await? {
                due.push(DueRecords {
                    queue: queue.clone(),
                    status,
                    cursor,
                });
            }
        }
    }
    let mut deleted = 0;
    if let Some(after_s) = drop_after_s {
        match store.drop_expired_history(&due, after_s).await {
            Ok(n) => deleted += n as u64,
            // A lock not granted in time (or a concurrent pass): the next pass.
            Err(e) => tracing::warn!(error = %e, "could not drop expired history partitions"),
        }
    }
    for DueRecords {
        queue,
        status,
        cursor,
    } in due
    {
        let mut cursor = Some(cursor);
        while let Some(from) = cursor {
            if paced.is_some_and(CancellationToken::is_cancelled) {
                return Ok(deleted);
            }
            let began = Instant::now();
            let (n, next) = store.prune_batch(&queue, status, from).await?;
            deleted += n;
            cursor = next;
            if let (Some(stop), Some(_)) = (paced, cursor) {
                let pause = began.elapsed().max(RETENTION_PAUSE);
                tokio::select! {
                    _ = stop.cancelled() => return Ok(deleted),
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    Ok(deleted)
}
