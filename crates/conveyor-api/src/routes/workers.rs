//! `GET /api/admin/workers`: live workers, from their Redis heartbeat keys.

use axum::extract::State;
use axum::Json;
use queue_core::broker::WorkerInfo;

use crate::error::{ApiError, ReadErrors};
use crate::extract::{ApiQuery, NoQuery};
use crate::schemas::WorkerInfoSchema;
use crate::AppState;

/// Every worker whose heartbeat has not expired, by id.
#[utoipa::path(get, path = "/api/admin/workers", operation_id = "listWorkers", tag = "workers", security(("bearer" = [])),
    responses(
        (status = 200, description = "Live workers", body = Vec<WorkerInfoSchema>),
        ReadErrors
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Vec<WorkerInfo>>, ApiError> {
    Ok(Json(state.conveyor.broker().live_workers().await?))
}
