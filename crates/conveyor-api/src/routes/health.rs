//! `GET /health`: PostgreSQL and Redis reachability with latency.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

/// `{status: "healthy" | "unhealthy", details}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthBody {
    /// `healthy` or `unhealthy`.
    status: String,
    /// `postgres` and `redis` (`{status, latencyMs}` or `{status, reason}`),
    /// `uptimeSeconds`, `version`.
    #[schema(value_type = Object)]
    details: Value,
}

/// PostgreSQL and Redis reachability, with latency.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "system",
    responses(
        (status = 200, description = "Both services answer", body = HealthBody),
        (status = 503, description = "A service does not answer", body = HealthBody)
    ))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let c = &state.conveyor;
    let started = Instant::now();
    let pg = tokio::time::timeout(std::time::Duration::from_secs(2), c.store().ping()).await;
    let pg_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let redis = tokio::time::timeout(std::time::Duration::from_secs(2), c.broker().ping()).await;
    let redis_ms = started.elapsed().as_secs_f64() * 1e3;

    let describe = |ok: bool, ms: f64, reason: Option<String>| match reason {
        None if ok => json!({ "status": "up", "latencyMs": (ms * 100.0).round() / 100.0 }),
        reason => json!({ "status": "down", "reason": reason.unwrap_or_default() }),
    };
    let pg_reason = match &pg {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 2 s".into()),
    };
    let redis_reason = match &redis {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 2 s".into()),
    };
    let healthy = pg_reason.is_none() && redis_reason.is_none();
    let details = json!({
        "postgres": describe(pg_reason.is_none(), pg_ms, pg_reason),
        "redis": describe(redis_reason.is_none(), redis_ms, redis_reason),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if healthy {
        (
            StatusCode::OK,
            Json(json!({ "status": "healthy", "details": details })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "details": details })),
        )
    }
}
