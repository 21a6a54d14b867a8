//! Job routes: create, bulk create, read, list, children, retry.

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
use uuid::Uuid;

use crate::error::{ApiError, BodyErrors, ErrorBody, ReadErrors, WriteErrors};
use crate::extract::{ApiJson, ApiQuery, NoQuery};
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

/// Body of `POST /api/admin/jobs/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    pub jobs: Vec<CreateJob>,
}

/// Ids of the jobs a bulk create made, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkCreated {
    pub ids: Vec<Uuid>,
}

/// `POST /api/admin/jobs/bulk` → 201 `{ids}`; all or nothing.
#[utoipa::path(post, path = "/api/admin/jobs/bulk", operation_id = "createJobsBulk", tag = "jobs", security(("bearer" = [])),
    request_body = BulkBody,
    responses(
        (status = 201, description = "Every job created (all or nothing)", body = BulkCreated),
        BodyErrors
    ))]
pub async fn create_bulk(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Response, ApiError> {
    if body.jobs.is_empty() {
        return Err(ApiError::invalid("jobs", "must hold at least one job"));
    }
    let jobs = body
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, j)| {
            j.into_new_job().map_err(|mut e| {
                e.message = format!("jobs[{i}].{}", e.message);
                e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let labels: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j.queue.clone(), j.job_type.clone()))
        .collect();
    let ids = state.conveyor.enqueue_many(jobs).await?;
    for (queue, job_type) in &labels {
        state
            .metrics
            .enqueued
            .with_label_values(&[queue.as_str(), job_type.as_str()])
            .inc();
    }
    Ok((StatusCode::CREATED, Json(BulkCreated { ids })).into_response())
}

/// A job with its attempts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobWithExecutions {
    #[serde(flatten)]
    pub job: Job,
    pub executions: Vec<Execution>,
}

/// Parses a path id, naming it when malformed.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::invalid("id", format!("`{raw}` is not a valid UUID")))
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

/// Largest page size of the job lists.
pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;

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

/// Query of `GET /api/admin/jobs/:id/children`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// One page of a job list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    #[schema(value_type = Vec<JobSchema>)]
    pub items: Vec<Job>,
    pub page: i64,
    pub limit: i64,
    /// Matching jobs on every page.
    pub total: i64,
}

/// Checks `page` (from 1) and `limit` (1 to 100); returns (page, limit, offset).
pub fn page_window(page: Option<i64>, limit: Option<i64>) -> Result<(i64, i64, i64), ApiError> {
    let page = page.unwrap_or(1);
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if page < 1 {
        return Err(ApiError::invalid("page", "must be at least 1"));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    let offset = (page - 1)
        .checked_mul(limit)
        .ok_or_else(|| ApiError::invalid("page", "is too large"))?;
    Ok((page, limit, offset))
}

async fn job_page(
    state: &AppState,
    filter: JobFilter,
    page: Option<i64>,
    limit: Option<i64>,
) -> Result<Json<JobPage>, ApiError> {
    let (page, limit, offset) = page_window(page, limit)?;
    let (items, total) = state
        .conveyor
        .store()
        .job_page(&filter, limit, offset)
        .await?;
    Ok(Json(JobPage {
        items,
        page,
        limit,
        total,
    }))
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
) -> Result<Json<JobPage>, ApiError> {
    if let Some(queue) = &query.queue {
        known_queue(&state, "queue", queue)?;
    }
    let status = query
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("status", e))?;
    let parent_id = query
        .parent_id
        .as_deref()
        .map(|raw| {
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::invalid("parentId", format!("`{raw}` is not a valid UUID")))
        })
        .transpose()?;
    let filter = JobFilter {
        queue: query.queue,
        status,
        job_type: query.job_type,
        parent_id,
    };
    job_page(&state, filter, query.page, query.limit).await
}

/// `GET /api/admin/jobs/:id/children?page=&limit=`: a parent's children, newest
/// first (404 when the parent does not exist).
#[utoipa::path(get, path = "/api/admin/jobs/{id}/children", operation_id = "listChildren", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id"), PageQuery),
    responses(
        (status = 200, description = "One page of the parent's children, newest first", body = JobPage),
        (status = 404, description = "No such job", body = ErrorBody),
        ReadErrors
    ))]
pub async fn children(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<JobPage>, ApiError> {
    let id = parse_id(&id)?;
    page_window(query.page, query.limit)?;
    if !state.conveyor.store().job_exists(id).await? {
        return Err(ApiError::not_found(format!("job {id} not found")));
    }
    let filter = JobFilter {
        parent_id: Some(id),
        ..JobFilter::default()
    };
    job_page(&state, filter, query.page, query.limit).await
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
