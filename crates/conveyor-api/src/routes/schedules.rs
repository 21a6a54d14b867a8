//! Scheduled-jobs routes (cron schedules that enqueue a job on each tick): list,
//! create, read, change, remove, trigger.
//! Every create, change and removal sends NOTIFY `conveyor_schedules`, so running
//! schedulers take it into account at once.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use queue_core::cron::MisfirePolicy;
use queue_core::scheduler;
use queue_core::store::{Schedule, ScheduleSpec, ScheduleStatus, ScheduleWrite};
use queue_core::{Job, Priority};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, BodyErrors, ErrorBody, ReadErrors, WriteErrors};
use crate::extract::{parse_id, ApiJson, ApiQuery, NoQuery};
use crate::schemas::JobSchema;
use crate::AppState;

const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// A scheduled job (mirrors `queue_core::store::Schedule`).
#[derive(ToSchema)]
#[schema(as = ScheduledJob)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ScheduleSchema {
    id: Uuid,
    name: String,
    description: Option<String>,
    queue_name: String,
    job_type: String,
    /// 6 fields with seconds, 7 with a year, or classic 5 fields.
    cron_expression: String,
    /// IANA time zone.
    timezone: String,
    /// 1 enabled, 0 disabled, 2 paused.
    status: i16,
    #[schema(value_type = Value)]
    payload: Value,
    /// Max attempts of each job (null: the queue's).
    retry_attempts: Option<i32>,
    /// Fixed backoff between attempts in ms (null: the queue's backoff).
    #[serde(rename = "retryDelay")]
    retry_delay: Option<i64>,
    /// Timeout of each attempt in ms (null: the queue's).
    timeout: Option<i32>,
    priority: i32,
    /// coalesce, skip or all (null: the scheduler's default).
    misfire_policy: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_run_at: Option<DateTime<Utc>>,
    next_run_at: Option<DateTime<Utc>>,
    last_job_id: Option<Uuid>,
}

/// Body of `POST /api/admin/scheduled-jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateSchedule {
    pub name: String,
    pub description: Option<String>,
    pub queue_name: String,
    pub job_type: String,
    pub cron_expression: String,
    /// Default Asia/Shanghai.
    pub timezone: Option<String>,
    #[schema(value_type = Option<Value>)]
    pub payload: Option<Value>,
    pub retry_attempts: Option<i32>,
    /// ms, fixed backoff.
    pub retry_delay: Option<i64>,
    /// ms.
    pub timeout: Option<i32>,
    /// An integer or LOW, NORMAL, HIGH, CRITICAL (default NORMAL).
    #[schema(value_type = Option<Value>)]
    pub priority: Option<Priority>,
    /// 1 enabled (default), 0 disabled, 2 paused.
    #[schema(value_type = Option<i16>)]
    pub status: Option<ScheduleStatus>,
    /// coalesce (default), skip or all.
    #[schema(value_type = Option<String>)]
    pub misfire_policy: Option<MisfirePolicy>,
}

/// Reads a present field (even `null`) as `Some`, so a change can clear it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PATCH /api/admin/scheduled-jobs/:id`: the fields to change; `null`
/// clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchSchedule {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub queue_name: Option<String>,
    pub job_type: Option<String>,
    pub cron_expression: Option<String>,
    pub timezone: Option<String>,
    #[schema(value_type = Option<Value>)]
    pub payload: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub retry_attempts: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub retry_delay: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub timeout: Option<Option<i32>>,
    #[schema(value_type = Option<Value>)]
    pub priority: Option<Priority>,
    #[schema(value_type = Option<i16>)]
    pub status: Option<ScheduleStatus>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub misfire_policy: Option<Option<MisfirePolicy>>,
}

/// Replaces `slot` with a given value.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("scheduled job {id} not found"))
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "name: a scheduled job named `{name}` already exists"
    ))
}

/// `GET /api/admin/scheduled-jobs`: every scheduled job, by name.
#[utoipa::path(get, path = "/api/admin/scheduled-jobs", operation_id = "listScheduledJobs", tag = "schedules", security(("bearer" = [])),
    responses(
        (status = 200, description = "Scheduled jobs, by name", body = Vec<ScheduleSchema>),
        ReadErrors
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Vec<Schedule>>, ApiError> {
    Ok(Json(state.conveyor.store().list_schedules().await?))
}

/// `POST /api/admin/scheduled-jobs`: creates a scheduled job (201, with its
/// `nextRunAt`); an invalid `cronExpression` or `timezone` is a 400 naming it.
#[utoipa::path(post, path = "/api/admin/scheduled-jobs", operation_id = "createScheduledJob", tag = "schedules", security(("bearer" = [])),
    request_body = CreateSchedule,
    responses(
        (status = 201, description = "Created", body = ScheduleSchema),
        (status = 409, description = "The name is taken", body = ErrorBody),
        BodyErrors
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<CreateSchedule>,
) -> Result<Response, ApiError> {
    let spec = ScheduleSpec {
        name: body.name,
        description: body.description,
        queue_name: body.queue_name,
        job_type: body.job_type,
        cron_expression: body.cron_expression,
        timezone: body.timezone.unwrap_or_else(|| DEFAULT_TIMEZONE.into()),
        status: body.status.unwrap_or_default(),
        payload: body
            .payload
            .unwrap_or_else(|| Value::Object(Default::default())),
        retry_attempts: body.retry_attempts,
        retry_delay_ms: body.retry_delay,
        timeout_ms: body.timeout,
        priority: body.priority.unwrap_or_default().get(),
        misfire_policy: body.misfire_policy,
    };
    let next = scheduler::validate(&state.conveyor, &spec, Utc::now())?;
    match state.conveyor.store().insert_schedule(&spec, next).await? {
        ScheduleWrite::Written(s) => {
            let location = format!("/api/admin/scheduled-jobs/{}", s.id);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(*s),
            )
                .into_response())
        }
        ScheduleWrite::NameTaken => Err(name_taken(&spec.name)),
        ScheduleWrite::NotFound => Err(ApiError::conflict("scheduled job vanished")),
    }
}

/// `GET /api/admin/scheduled-jobs/:id`.
#[utoipa::path(get, path = "/api/admin/scheduled-jobs/{id}", operation_id = "getScheduledJob", tag = "schedules", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The scheduled job id")),
    responses(
        (status = 200, description = "The scheduled job", body = ScheduleSchema),
        (status = 404, description = "No such scheduled job", body = ErrorBody),
        ReadErrors
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Schedule>, ApiError> {
    let id = parse_id(&id)?;
    let s = state.conveyor.store().get_schedule(id).await?;
    Ok(Json(s.ok_or_else(|| not_found(id))?))
}

/// `PATCH /api/admin/scheduled-jobs/:id`: changes the given fields. A new
/// expression, zone or status recomputes `nextRunAt` from now (re-enabling does
/// not fire the ticks missed while disabled).
#[utoipa::path(patch, path = "/api/admin/scheduled-jobs/{id}", operation_id = "updateScheduledJob", tag = "schedules", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The scheduled job id")),
    request_body = PatchSchedule,
    responses(
        (status = 200, description = "The changed scheduled job", body = ScheduleSchema),
        (status = 404, description = "No such scheduled job", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        BodyErrors
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<PatchSchedule>,
) -> Result<Json<Schedule>, ApiError> {
    let id = parse_id(&id)?;
    let store = state.conveyor.store();
    let current = store.get_schedule(id).await?.ok_or_else(|| not_found(id))?;
    let mut spec = ScheduleSpec::from(&current);
    let timing_changed = body
        .cron_expression
        .as_ref()
        .is_some_and(|c| *c != spec.cron_expression)
        || body.timezone.as_ref().is_some_and(|t| *t != spec.timezone)
        || body.status.is_some_and(|s| s != spec.status);
    set(&mut spec.name, body.name);
    set(&mut spec.description, body.description);
    set(&mut spec.queue_name, body.queue_name);
    set(&mut spec.job_type, body.job_type);
    set(&mut spec.cron_expression, body.cron_expression);
    set(&mut spec.timezone, body.timezone);
    set(&mut spec.payload, body.payload);
    set(&mut spec.retry_attempts, body.retry_attempts);
    set(&mut spec.retry_delay_ms, body.retry_delay);
    set(&mut spec.timeout_ms, body.timeout);
    set(&mut spec.priority, body.priority.map(Priority::get));
    set(&mut spec.status, body.status);
    set(&mut spec.misfire_policy, body.misfire_policy);
    let computed = scheduler::validate(&state.conveyor, &spec, Utc::now())?;
    let next = if timing_changed || current.next_run_at.is_none() {
        computed
    } else {
        current.next_run_at
    };
    match store.update_schedule(id, &spec, next).await? {
        ScheduleWrite::Written(s) => Ok(Json(*s)),
        ScheduleWrite::NameTaken => Err(name_taken(&spec.name)),
        ScheduleWrite::NotFound => Err(not_found(id)),
    }
}

/// `DELETE /api/admin/scheduled-jobs/:id`: removes it (jobs it enqueued stay).
#[utoipa::path(delete, path = "/api/admin/scheduled-jobs/{id}", operation_id = "deleteScheduledJob", tag = "schedules", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The scheduled job id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such scheduled job", body = ErrorBody),
        WriteErrors
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    if state.conveyor.store().delete_schedule(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(id))
    }
}

/// `POST /api/admin/scheduled-jobs/:id/trigger`: enqueues its job now (201, the
/// job), whatever its status and cron.
#[utoipa::path(post, path = "/api/admin/scheduled-jobs/{id}/trigger", operation_id = "triggerScheduledJob", tag = "schedules", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The scheduled job id")),
    responses(
        (status = 201, description = "The job enqueued", body = JobSchema),
        (status = 404, description = "No such scheduled job", body = ErrorBody),
        WriteErrors
    ))]
pub async fn trigger(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let s = state
        .conveyor
        .store()
        .get_schedule(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let enqueued = scheduler::trigger(&state.conveyor, &s).await?;
    let job: Job = enqueued.job;
    let location = format!("/api/admin/jobs/{}", job.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}
