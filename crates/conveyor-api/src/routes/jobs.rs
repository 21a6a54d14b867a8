//! Job routes: create, read, cancel, list, retry; bulk create, a parent's children
//! and a job's event stream in the submodules.

pub mod bulk;
pub mod children;
pub mod events;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use queue_core::broker::JobEvent;
use queue_core::job::{Backoff, Execution, Job, JobStatus, NewJob, Priority};
use queue_core::store::JobFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, BodyErrors, ErrorBody, ReadErrors, WriteErrors};
use crate::extract::{parse_id, parse_query_id, ApiJson, ApiQuery, NoQuery};
use crate::paging::{page_schema, Page, Window};
use crate::routes::queues::known_queue;
use crate::schemas::{JobSchema, JobWithExecutionsSchema};
use crate::AppState;

/// Body of `POST /api/admin/jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"queueName": "diagnostics", "jobType": "ECHO", "payload": {"hello": "world"}}))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateJob {
    pub queue_name: String,
    pub job_type: String,
    /// Any JSON value; the job type validates it.
    pub payload: Value,
    /// An integer from -1000 to 1000 or LOW, NORMAL, HIGH, CRITICAL (default NORMAL).
    #[schema(value_type = Option<i32>, minimum = -1000, maximum = 1000)]
    pub priority: Option<Priority>,
    pub max_attempts: Option<u32>,
    pub delay_ms: Option<u64>,
    pub run_at: Option<DateTime<Utc>>,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    pub backoff: Option<BackoffBody>,
}

/// `backoff` of a create body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackoffBody {
    #[serde(rename = "type")]
    pub kind: BackoffKind,
    pub delay_ms: u64,
    pub max_delay_ms: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackoffKind {
    Fixed,
    Exponential,
}

/// Longest delay accepted (one year), so run-at arithmetic cannot overflow.
const MAX_DELAY_MS: u64 = 365 * 24 * 3_600_000;

impl CreateJob {
    pub fn into_new_job(self) -> Result<NewJob, ApiError> {
        let run_at = match (self.delay_ms, self.run_at) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "delayMs",
                    "give delayMs or runAt, not both",
                ))
            }
            (Some(ms), None) if ms > MAX_DELAY_MS => {
                return Err(ApiError::invalid(
                    "delayMs",
                    format!("must be at most {MAX_DELAY_MS}"),
                ))
            }
            (Some(ms), None) => Some(Utc::now() + chrono::Duration::milliseconds(ms as i64)),
            (None, at) => at,
        };
        let backoff = self.backoff.map(|b| match b.kind {
            BackoffKind::Fixed => Backoff::Fixed {
                delay_ms: b.delay_ms,
            },
            BackoffKind::Exponential => Backoff::Exponential {
                delay_ms: b.delay_ms,
                max_delay_ms: b.max_delay_ms.unwrap_or(600_000.max(b.delay_ms)),
                jitter: true,
            },
        });
        Ok(NewJob {
            queue: self.queue_name,
            job_type: self.job_type,
            payload: self.payload,
            priority: self.priority.unwrap_or_default(),
            max_attempts: self.max_attempts,
            run_at,
            timeout_ms: self.timeout_ms,
            idempotency_key: self.idempotency_key,
            backoff,
            parent_id: None,
        })
    }
}

/// `POST /api/admin/jobs` → 201 with the job (200 with the existing one when the
/// idempotency key matched).
#[utoipa::path(post, path = "/api/admin/jobs", operation_id = "createJob", tag = "jobs", security(("bearer" = [])),
    request_body = CreateJob,
    responses(
        (status = 201, description = "Created; `Location` names the job", body = JobSchema),
        (status = 200, description = "A job with this idempotency key exists already", body = JobSchema),
        BodyErrors
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateJob>,
) -> Result<Response, ApiError> {
    let enqueued = state.conveyor.enqueue(body.into_new_job()?).await?;
    let status = if enqueued.created {
        let job = &enqueued.job;
        state
            .metrics
            .enqueued
            .with_label_values(&[job.queue_name.as_str(), job.job_type.as_str()])
            .inc();
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/api/admin/jobs/{}", enqueued.job.id);
    Ok((status, [(header::LOCATION, location)], Json(enqueued.job)).into_response())
}

/// A job with its attempts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobWithExecutions {
    #[serde(flatten)]
    pub job: Job,
    pub executions: Vec<Execution>,
}

/// `GET /api/admin/jobs/:id`.
#[utoipa::path(get, path = "/api/admin/jobs/{id}", operation_id = "getJob", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job with its attempts", body = JobWithExecutionsSchema),
        (status = 404, description = "No such job", body = ErrorBody),
        ReadErrors
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobWithExecutions>, ApiError> {
    let id = parse_id(&id)?;
    let store = state.conveyor.store();
    let job = store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
    let executions = store.executions(id).await?;
    Ok(Json(JobWithExecutions { job, executions }))
}

/// `DELETE /api/admin/jobs/:id`: waiting → CANCELLED (200 with the job); running →
/// cancellation requested (202 with the job); finished → record deleted (204).
#[utoipa::path(delete, path = "/api/admin/jobs/{id}", operation_id = "cancelJob", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "Waiting job cancelled", body = JobSchema),
        (status = 202, description = "Running job: cancellation requested", body = JobSchema),
        (status = 204, description = "Finished job: record deleted"),
        (status = 404, description = "No such job", body = ErrorBody),
        WriteErrors
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    use queue_core::store::CancelOutcome;
    let id = parse_id(&id)?;
    let store = state.conveyor.store();
    let status = match store.cancel_or_delete(id).await? {
        CancelOutcome::NotFound => return Err(ApiError::not_found(format!("job {id} not found"))),
        CancelOutcome::Deleted => return Ok(StatusCode::NO_CONTENT.into_response()),
        CancelOutcome::Cancelled => StatusCode::OK,
        CancelOutcome::Requested => StatusCode::ACCEPTED,
    };
    let job = store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))?;
    if job.status == JobStatus::Cancelled {
        // No worker writes this outcome, so tell event streams here.
        let event = JobEvent::Status {
            status: job.status,
            attempts: job.attempts,
            error: job.error.clone(),
        };
        if let Err(e) = state
            .conveyor
            .broker()
            .publish_job_events(&[(id, event)])
            .await
        {
            tracing::debug!(error = %e, "cancel publish failed");
        }
    }
    Ok((status, Json(job)).into_response())
}

/// Query of `GET /api/admin/jobs`. Numbers are read as signed so that a negative
/// one gets the range message rather than a parse error.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ListQuery {
    /// A configured queue.
    pub queue: Option<String>,
    /// PENDING, DELAYED, RUNNING, RETRYING, COMPLETED, FAILED or CANCELLED.
    pub status: Option<String>,
    pub job_type: Option<String>,
    /// A parent job's id (UUID).
    pub parent_id: Option<String>,
    /// From 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

page_schema! {
    /// One page of a job list, newest first.
    JobPage of JobSchema, total: " Matching jobs on every page."
}

/// The `window` of the jobs `filter` matches.
pub(crate) async fn job_page(
    state: &AppState,
    filter: JobFilter,
    window: Window,
) -> Result<Json<Page<Job>>, ApiError> {
    let store = state.conveyor.store();
    let found = store.job_page(&filter, window.limit, window.offset).await?;
    Ok(window.answer(found))
}

/// `GET /api/admin/jobs?queue=&status=&jobType=&parentId=&page=&limit=`.
#[utoipa::path(get, path = "/api/admin/jobs", operation_id = "listJobs", tag = "jobs", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page of jobs, newest first", body = JobPage),
        ReadErrors
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<Job>>, ApiError> {
    if let Some(queue) = &query.queue {
        known_queue(&state, "queue", queue)?;
    }
    let status = query
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("status", e))?;
    let parent_id = parse_query_id("parentId", query.parent_id.as_deref())?;
    let filter = JobFilter {
        queue: query.queue,
        status,
        job_type: query.job_type,
        parent_id,
    };
    job_page(&state, filter, Window::new(query.page, query.limit)?).await
}

/// `POST /api/admin/jobs/:id/retry`: FAILED or CANCELLED → PENDING with attempts
/// reset, pushed again (200 with the job); any other state is a 409.
#[utoipa::path(post, path = "/api/admin/jobs/{id}/retry", operation_id = "retryJob", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "FAILED or CANCELLED job back to PENDING", body = JobSchema),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job's state does not allow it", body = ErrorBody),
        WriteErrors
    ))]
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Job>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.conveyor.retry(id).await?))
}
