//! `POST /api/admin/jobs/bulk`: many jobs in one transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, BodyErrors};
use crate::extract::ApiJson;
use crate::routes::jobs::CreateJob;
use crate::AppState;

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
pub async fn create(
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
