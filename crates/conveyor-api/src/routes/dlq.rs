//! Dead-letter routes: read a queue's dead-letter stream and replay it.

use axum::extract::{Path, State};
use axum::Json;
use queue_core::broker::DeadLetter;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, BodyErrors, ReadErrors};
use crate::extract::{ApiJsonOrEmpty, ApiQuery, NoQuery};
use crate::routes::queues::known_queue;
use crate::schemas::DeadLetterSchema;
use crate::AppState;
use utoipa::{IntoParams, ToSchema};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1_000;
/// Most ids one replay names (like a bulk enqueue).
const MAX_REPLAY_IDS: usize = queue_core::client::MAX_BULK;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DlqQuery {
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// `GET /api/admin/dlq/:queue?limit=`: the oldest `limit` dead letters (default
/// 100, at most 1000).
#[utoipa::path(get, path = "/api/admin/dlq/{queue}", operation_id = "listDeadLetters", tag = "dlq", security(("bearer" = [])),
    params(("queue" = String, Path, description = "A configured queue"), DlqQuery),
    responses(
        (status = 200, description = "Dead letters, oldest first", body = Vec<DeadLetterSchema>),
        ReadErrors
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(query): ApiQuery<DlqQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    known_queue(&state, "queue", &queue)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let (entries, _) = state
        .conveyor
        .broker()
        .dead_letters(&queue, None, limit as usize)
        .await?;
    Ok(Json(entries.into_iter().map(|e| e.letter).collect()))
}

/// Body of `POST /api/admin/dlq/:queue/replay` (an empty body replays all).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplayBody {
    pub job_ids: Option<Vec<Uuid>>,
}

/// How many dead jobs went back to PENDING.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub replayed: usize,
}

/// `POST /api/admin/dlq/:queue/replay`: retries the named FAILED jobs (all FAILED
/// jobs with a dead letter when `jobIds` is absent) and removes their dead letters.
#[utoipa::path(post, path = "/api/admin/dlq/{queue}/replay", operation_id = "replayDeadLetters", tag = "dlq", security(("bearer" = [])),
    params(("queue" = String, Path, description = "A configured queue")),
    request_body(content = Option<ReplayBody>, description = "Empty body: replay all"),
    responses(
        (status = 200, description = "Jobs replayed", body = Replayed),
        BodyErrors
    ))]
pub async fn replay(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<ReplayBody>,
) -> Result<Json<Replayed>, ApiError> {
    known_queue(&state, "queue", &queue)?;
    if let Some(ids) = &body.job_ids {
        if ids.is_empty() || ids.len() > MAX_REPLAY_IDS {
            return Err(ApiError::invalid(
                "jobIds",
                format!("must hold 1 to {MAX_REPLAY_IDS} ids (leave it out to replay all)"),
            ));
        }
    }
    let replayed = state
        .conveyor
        .replay_dead_letters(&queue, body.job_ids.as_deref())
        .await?;
    Ok(Json(Replayed { replayed }))
}
