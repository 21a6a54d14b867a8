//! `GET /health`: PostgreSQL and Redis reachability with latency.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

/// How long each service may take to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
const NO_ANSWER: &str = "no answer within 2 s";

/// `{status: "healthy" | "unhealthy", details}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthBody {
    /// `healthy` or `unhealthy`.
    status: String,
    /// `postgres` and `redis` (`{status, latencyMs}` or `{status, reason}`; the
    /// reason is one of "connection refused", "no answer within 2 s", "no answer in
    /// time", "connection lost", "unreachable", "unexpected answer"),
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
    let pg = tokio::time::timeout(CHECK_TIMEOUT, c.store().ping()).await;
    let pg_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let redis = tokio::time::timeout(CHECK_TIMEOUT, c.broker().ping()).await;
    let redis_ms = started.elapsed().as_secs_f64() * 1e3;

    let describe = |ms: f64, reason: Option<&str>| match reason {
        None => json!({ "status": "up", "latencyMs": (ms * 100.0).round() / 100.0 }),
        Some(reason) => json!({ "status": "down", "reason": reason }),
    };
    // Fixed words only: the error's own text may name addresses or driver internals.
    let pg_reason = match &pg {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: postgres check failed");
            Some(e.outage().reason())
        }
        Err(_) => Some(NO_ANSWER),
    };
    let redis_reason = match &redis {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: redis check failed");
            Some(e.outage().reason())
        }
        Err(_) => Some(NO_ANSWER),
    };
    let healthy = pg_reason.is_none() && redis_reason.is_none();
    let details = json!({
        "postgres": describe(pg_ms, pg_reason),
        "redis": describe(redis_ms, redis_reason),
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
