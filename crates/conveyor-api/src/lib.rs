//! Conveyor's admin HTTP API. [`router`] builds the whole application from an
//! [`AppState`]; `main.rs` only loads configuration and serves it.

pub mod auth;
pub mod error;
pub mod extract;
pub mod routes;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use queue_core::Conveyor;

pub use auth::Auth;
pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub conveyor: Conveyor,
    pub auth: Arc<Auth>,
    pub started: Instant,
}

impl AppState {
    pub fn new(conveyor: Conveyor, auth: Auth) -> Self {
        Self {
            conveyor,
            auth: Arc::new(auth),
            started: Instant::now(),
        }
    }
}

/// The application: admin routes behind auth, `/health` open, errors in the
/// `{"error": {"code", "message"}}` shape everywhere (also for unknown routes).
pub fn router(state: AppState) -> Router {
    let body_limit = state.conveyor.config().api.body_limit_bytes;
    let admin = Router::new()
        .route("/jobs", post(routes::jobs::create).get(routes::jobs::list))
        .route("/jobs/bulk", post(routes::jobs::create_bulk))
        .route(
            "/jobs/{id}",
            get(routes::jobs::get_one).delete(routes::jobs::cancel),
        )
        .route("/jobs/{id}/children", get(routes::jobs::children))
        .route("/jobs/{id}/retry", post(routes::jobs::retry))
        .route("/queues", get(routes::queues::list))
        .route("/jobs/queue/{name}/stats", get(routes::queues::stats))
        .route("/jobs/queue/{name}/pause", post(routes::queues::pause))
        .route("/jobs/queue/{name}/resume", post(routes::queues::resume))
        .route("/jobs/queue/{name}/clean", post(routes::queues::clean))
        .route("/dlq/{queue}", get(routes::dlq::list))
        .route("/dlq/{queue}/replay", post(routes::dlq::replay))
        .route("/workers", get(routes::workers::list))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/api/admin", admin)
        .route("/health", get(routes::health::health))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
