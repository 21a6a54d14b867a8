//! Cron-scheduled jobs (`scheduled_jobs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Store;
use crate::cron::MisfirePolicy;
use crate::error::StoreError;

/// Channel that tells schedulers a schedule was created, changed or removed.
pub const SCHEDULES_CHANNEL: &str = "conveyor_schedules";

/// A schedule's state; the API and the table write it as an integer (1 enabled,
/// 0 disabled, 2 paused). Only an enabled schedule fires by itself; a trigger
/// runs any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScheduleStatus {
    Disabled,
    #[default]
    Enabled,
    Paused,
}

impl ScheduleStatus {
    pub fn code(self) -> i16 {
        match self {
            Self::Disabled => 0,
            Self::Enabled => 1,
            Self::Paused => 2,
        }
    }
}

impl TryFrom<i16> for ScheduleStatus {
    type Error = String;
    fn try_from(code: i16) -> Result<Self, Self::Error> {
        match code {
            0 => Ok(Self::Disabled),
            1 => Ok(Self::Enabled),
            2 => Ok(Self::Paused),
            _ => Err("must be 1 (enabled), 0 (disabled) or 2 (paused)".into()),
        }
    }
}

impl Serialize for ScheduleStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i16(self.code())
    }
}

impl<'de> Deserialize<'de> for ScheduleStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = i16::deserialize(d)?;
        Self::try_from(code).map_err(serde::de::Error::custom)
    }
}

/// A scheduled job as stored, serialized in the API's camelCase.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub queue_name: String,
    pub job_type: String,
    pub cron_expression: String,
    pub timezone: String,
    #[sqlx(try_from = "i16")]
    pub status: ScheduleStatus,
    pub payload: Value,
    /// Max attempts of each job (None: the queue's).
    pub retry_attempts: Option<i32>,
    /// Fixed backoff between attempts, in ms (None: the queue's backoff).
    #[serde(rename = "retryDelay")]
    pub retry_delay_ms: Option<i64>,
    /// Timeout of each attempt, in ms (None: the queue's).
    #[serde(rename = "timeout")]
    pub timeout_ms: Option<i32>,
    pub priority: i32,
    /// None: the scheduler's configured default.
    pub misfire_policy: Option<MisfirePolicy>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
}

/// The fields a caller sets (create, or the whole state after a change).
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub description: Option<String>,
    pub queue_name: String,
    pub job_type: String,
    pub cron_expression: String,
    pub timezone: String,
    pub status: ScheduleStatus,
    pub payload: Value,
    pub retry_attempts: Option<i32>,
    pub retry_delay_ms: Option<i64>,
    pub timeout_ms: Option<i32>,
    pub priority: i32,
    pub misfire_policy: Option<MisfirePolicy>,
}

impl From<&Schedule> for ScheduleSpec {
    fn from(s: &Schedule) -> Self {
        Self {
            name: s.name.clone(),
            description: s.description.clone(),
            queue_name: s.queue_name.clone(),
            job_type: s.job_type.clone(),
            cron_expression: s.cron_expression.clone(),
            timezone: s.timezone.clone(),
            status: s.status,
            payload: s.payload.clone(),
            retry_attempts: s.retry_attempts,
            retry_delay_ms: s.retry_delay_ms,
            timeout_ms: s.timeout_ms,
            priority: s.priority,
            misfire_policy: s.misfire_policy,
        }
    }
}

/// The result of a create or a change.
#[derive(Debug)]
pub enum ScheduleWrite {
    Written(Box<Schedule>),
    /// Another schedule has this name.
    NameTaken,
    NotFound,
}

const COLUMNS: &str =
    "id, name, description, queue_name, job_type, cron_expression, timezone, status, \
     payload, retry_attempts, retry_delay_ms, timeout_ms, priority, misfire_policy, created_at, \
     updated_at, last_run_at, next_run_at, last_job_id";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

async fn notify(conn: &mut PgConnection, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(SCHEDULES_CHANNEL)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Schedules that are due at `now` (enabled, `next_run_at <= now`), locked for the
/// caller's transaction; rows another scheduler holds are skipped.
pub(crate) async fn lock_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Schedule>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM scheduled_jobs
         WHERE status = 1 AND next_run_at <= $1
         ORDER BY next_run_at
         LIMIT $2
         FOR UPDATE SKIP LOCKED"
    );
    Ok(sqlx::query_as(&sql)
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Moves a schedule on from tick `due` to `next`, recording its last run; guarded by
/// `due` so a schedule already moved on (or changed meanwhile) is left alone.
pub(crate) async fn advance(
    conn: &mut PgConnection,
    id: Uuid,
    due: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    last_run: Option<(DateTime<Utc>, Uuid)>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE scheduled_jobs
         SET next_run_at = $3,
             last_run_at = COALESCE($4, last_run_at),
             last_job_id = COALESCE($5, last_job_id)
         WHERE id = $1 AND next_run_at = $2",
    )
    .bind(id)
    .bind(due)
    .bind(next)
    .bind(last_run.map(|(t, _)| t))
    .bind(last_run.map(|(_, j)| j))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// Records a new schedule and tells the schedulers.
    pub async fn insert_schedule(
        &self,
        spec: &ScheduleSpec,
        next_run_at: Option<DateTime<Utc>>,
    ) -> Result<ScheduleWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "INSERT INTO scheduled_jobs (id, name, description, queue_name, job_type, cron_expression,
                 timezone, status, payload, retry_attempts, retry_delay_ms, timeout_ms, priority,
                 misfire_policy, next_run_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (name) DO NOTHING
             RETURNING {COLUMNS}"
        );
        let query = sqlx::query_as(&sql).bind(Uuid::now_v7());
        let row: Option<Schedule> = bind_spec(query, spec, next_run_at)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(ScheduleWrite::NameTaken);
        };
        notify(&mut tx, row.id).await?;
        tx.commit().await?;
        Ok(ScheduleWrite::Written(Box::new(row)))
    }

    /// Replaces the settable fields of schedule `id` and its next run, and tells
    /// the schedulers.
    pub async fn update_schedule(
        &self,
        id: Uuid,
        spec: &ScheduleSpec,
        next_run_at: Option<DateTime<Utc>>,
    ) -> Result<ScheduleWrite, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE scheduled_jobs SET name = $2, description = $3, queue_name = $4, job_type = $5,
                 cron_expression = $6, timezone = $7, status = $8, payload = $9,
                 retry_attempts = $10, retry_delay_ms = $11, timeout_ms = $12, priority = $13,
                 misfire_policy = $14, next_run_at = $15, updated_at = now()
             WHERE id = $1
             RETURNING {COLUMNS}"
        );
        let query = sqlx::query_as(&sql).bind(id);
        let row: Result<Option<Schedule>, _> = bind_spec(query, spec, next_run_at)
            .fetch_optional(&mut *tx)
            .await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(ScheduleWrite::NotFound),
            Err(e) if is_unique_violation(&e) => return Ok(ScheduleWrite::NameTaken),
            Err(e) => return Err(e.into()),
        };
        notify(&mut tx, id).await?;
        tx.commit().await?;
        Ok(ScheduleWrite::Written(Box::new(row)))
    }

    /// Removes schedule `id` (its jobs stay); false when there was none.
    pub async fn delete_schedule(&self, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM scheduled_jobs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        notify(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get_schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM scheduled_jobs WHERE id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every schedule, by name.
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM scheduled_jobs ORDER BY name");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    /// The earliest next run of an enabled schedule (the scheduler sleeps until it).
    pub async fn next_schedule_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT min(next_run_at) FROM scheduled_jobs WHERE status = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records a run outside the cron (a manual trigger).
    pub async fn record_schedule_run(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        job_id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE scheduled_jobs SET last_run_at = $2, last_job_id = $3 WHERE id = $1")
            .bind(id)
            .bind(at)
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Binds a schedule's settable fields as parameters $2 to $15 (create and update
/// list them in the same order).
fn bind_spec<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, Schedule, sqlx::postgres::PgArguments>,
    spec: &'q ScheduleSpec,
    next_run_at: Option<DateTime<Utc>>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Schedule, sqlx::postgres::PgArguments> {
    query
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(&spec.queue_name)
        .bind(&spec.job_type)
        .bind(&spec.cron_expression)
        .bind(&spec.timezone)
        .bind(spec.status.code())
        .bind(&spec.payload)
        .bind(spec.retry_attempts)
        .bind(spec.retry_delay_ms)
        .bind(spec.timeout_ms)
        .bind(spec.priority)
        .bind(spec.misfire_policy.map(MisfirePolicy::as_str))
        .bind(next_run_at)
}
