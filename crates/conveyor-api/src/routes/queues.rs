//! Queue routes: stats, pause and resume, cleaning finished records.

use axum::extract::{Path, State};
use axum::Json;
use queue_core::job::JobStatus;
use queue_core::store::QueueStats;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, BodyErrors, ReadErrors, WriteErrors};
use crate::extract::{ApiJson, ApiQuery, NoQuery};
use crate::schemas::QueueStatsSchema;
use crate::AppState;
use utoipa::ToSchema;

/// Most records one clean call deletes (one statement; call again for more).
pub const MAX_CLEAN: i64 = 10_000;
/// Longest grace accepted (about 100 years), so the interval cannot overflow.
pub const MAX_GRACE_MS: u64 = 100 * 365 * 24 * 3_600_000;
/// The states `clean` accepts.
const CLEANABLE: [JobStatus; 3] = [
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

/// Refuses a queue the configuration does not define, listing the ones it does.
pub fn known_queue(state: &AppState, field: &str, queue: &str) -> Result<(), ApiError> {
    let config = state.conveyor.config();
    if config.queue(queue).is_some() {
        return Ok(());
    }
    let valid = config.queues.keys().cloned().collect::<Vec<_>>().join(", ");
    Err(ApiError::bad_request(
        "unknown_queue",
        format!("{field}: unknown queue `{queue}`; valid values: {valid}"),
    ))
}

/// `GET /api/admin/queues`: stats of every configured queue, by name.
#[utoipa::path(get, path = "/api/admin/queues", operation_id = "listQueues", tag = "queues", security(("bearer" = [])),
    responses(
        (status = 200, description = "Stats of every configured queue", body = Vec<QueueStatsSchema>),
        ReadErrors
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Vec<QueueStats>>, ApiError> {
    let queues = state.queue_names();
    Ok(Json(state.conveyor.store().queue_stats(&queues).await?))
}

/// `GET /api/admin/jobs/queue/:name/stats`.
#[utoipa::path(get, path = "/api/admin/jobs/queue/{name}/stats", operation_id = "queueStats", tag = "queues", security(("bearer" = [])),
    params(("name" = String, Path, description = "A configured queue")),
    responses(
        (status = 200, description = "Job counts of the queue by state", body = QueueStatsSchema),
        ReadErrors
    ))]
pub async fn stats(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<QueueStats>, ApiError> {
    known_queue(&state, "name", &name)?;
    let stats = state
        .conveyor
        .store()
        .queue_stats(std::slice::from_ref(&name))
        .await?
        .pop()
        .unwrap_or_default();
    Ok(Json(stats))
}

/// Answer of pause and resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paused {
    pub queue: String,
    pub paused: bool,
}

async fn set_paused(state: AppState, name: String, paused: bool) -> Result<Json<Paused>, ApiError> {
    known_queue(&state, "name", &name)?;
    state.conveyor.set_paused(&name, paused).await?;
    Ok(Json(Paused {
        queue: name,
        paused,
    }))
}

/// `POST /api/admin/jobs/queue/:name/pause`: no new claims; running jobs finish.
#[utoipa::path(post, path = "/api/admin/jobs/queue/{name}/pause", operation_id = "pauseQueue", tag = "queues", security(("bearer" = [])),
    params(("name" = String, Path, description = "A configured queue")),
    responses(
        (status = 200, description = "The queue is paused", body = Paused),
        WriteErrors
    ))]
pub async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Paused>, ApiError> {
    set_paused(state, name, true).await
}

/// `POST /api/admin/jobs/queue/:name/resume`.
#[utoipa::path(post, path = "/api/admin/jobs/queue/{name}/resume", operation_id = "resumeQueue", tag = "queues", security(("bearer" = [])),
    params(("name" = String, Path, description = "A configured queue")),
    responses(
        (status = 200, description = "The queue takes jobs again", body = Paused),
        WriteErrors
    ))]
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Paused>, ApiError> {
    set_paused(state, name, false).await
}

/// Body of `POST /api/admin/jobs/queue/:name/clean`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CleanBody {
    /// COMPLETED, FAILED or CANCELLED.
    pub status: String,
    /// Only records finished longer ago than this.
    pub grace_ms: u64,
    /// 1 to 10 000.
    #[schema(minimum = 1, maximum = 10000)]
    pub limit: i64,
}

/// How many records a clean deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cleaned {
    pub removed: u64,
}

/// `POST /api/admin/jobs/queue/:name/clean`: deletes up to `limit` records in a
/// terminal `status` that finished more than `graceMs` ago, oldest first.
#[utoipa::path(post, path = "/api/admin/jobs/queue/{name}/clean", operation_id = "cleanQueue", tag = "queues", security(("bearer" = [])),
    params(("name" = String, Path, description = "A configured queue")),
    request_body = CleanBody,
    responses(
        (status = 200, description = "Finished records deleted", body = Cleaned),
        BodyErrors
    ))]
pub async fn clean(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<CleanBody>,
) -> Result<Json<Cleaned>, ApiError> {
    known_queue(&state, "name", &name)?;
    let valid = || {
        CLEANABLE
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let status = CLEANABLE
        .into_iter()
        .find(|s| s.as_str() == body.status)
        .ok_or_else(|| {
            ApiError::invalid(
                "status",
                format!(
                    "`{}` cannot be cleaned; valid values: {}",
                    body.status,
                    valid()
                ),
            )
        })?;
    if body.grace_ms > MAX_GRACE_MS {
        return Err(ApiError::invalid(
            "graceMs",
            format!("must be at most {MAX_GRACE_MS}"),
        ));
    }
    if !(1..=MAX_CLEAN).contains(&body.limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_CLEAN}"),
        ));
    }
    let removed = state
        .conveyor
        .store()
        .clean(&name, status, body.grace_ms as i64, body.limit)
        .await?;
    Ok(Json(Cleaned { removed }))
}
