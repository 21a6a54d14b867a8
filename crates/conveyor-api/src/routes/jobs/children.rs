//! `GET /api/admin/jobs/:id/children`: the jobs a batch parent made.

use axum::extract::{Path, State};
use axum::Json;
use queue_core::job::Job;
use queue_core::store::JobFilter;

use crate::error::{ApiError, ErrorBody, ReadErrors};
use crate::extract::{parse_id, ApiQuery};
use crate::paging::{Page, PageQuery, Window};
use crate::routes::jobs::{job_page, JobPage};
use crate::AppState;

/// `GET /api/admin/jobs/:id/children?page=&limit=`: a parent's children, newest
/// first (404 when the parent does not exist).
#[utoipa::path(get, path = "/api/admin/jobs/{id}/children", operation_id = "listChildren", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job id"), PageQuery),
    responses(
        (status = 200, description = "One page of the parent's children, newest first", body = JobPage),
        (status = 404, description = "No such job", body = ErrorBody),
        ReadErrors
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<Job>>, ApiError> {
    let id = parse_id(&id)?;
    let window = Window::new(query.page, query.limit)?;
    if !state.conveyor.store().job_exists(id).await? {
        return Err(ApiError::not_found(format!("job {id} not found")));
    }
    let filter = JobFilter {
        parent_id: Some(id),
        ..JobFilter::default()
    };
    job_page(&state, filter, window).await
}
