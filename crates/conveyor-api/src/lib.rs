//! Conveyor's admin HTTP API. [`router`] builds the whole application from an
//! [`AppState`]; `main.rs` only loads configuration and serves it.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod openapi;
pub mod routes;
pub mod schemas;
pub mod streams;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use queue_core::broker::JobEventHub;
use queue_core::metrics::Metrics;
use queue_core::Conveyor;

pub use auth::Auth;
pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub conveyor: Conveyor,
    pub auth: Arc<Auth>,
    pub started: Instant,
    /// The API's own metrics (`GET /metrics`).
    pub metrics: Metrics,
    /// The one Redis subscription every job event stream reads from.
    pub events: JobEventHub,
    /// Caps on open job event streams.
    pub streams: Arc<streams::StreamLimits>,
    /// Request counts and latencies, in `metrics`' registry.
    pub http: http_metrics::HttpMetrics,
}

impl AppState {
    pub fn new(conveyor: Conveyor, auth: Auth) -> Self {
        let api = &conveyor.config().api;
        let metrics = Metrics::new();
        Self {
            events: JobEventHub::new(conveyor.broker()),
            streams: streams::StreamLimits::new(api.max_streams_per_token, api.max_streams),
            conveyor,
            auth: Arc::new(auth),
            started: Instant::now(),
            http: http_metrics::HttpMetrics::register(metrics.registry())
                .expect("the request metrics register once per state"),
            metrics,
        }
    }
}

/// Every (method, path) the router serves, in OpenAPI path syntax. The `openapi`
/// test checks that each is served and documented, and that nothing else is
/// documented; add new routes here too.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/admin/jobs"),
    ("GET", "/api/admin/jobs"),
    ("POST", "/api/admin/jobs/bulk"),
    ("GET", "/api/admin/jobs/{id}"),
    ("DELETE", "/api/admin/jobs/{id}"),
    ("GET", "/api/admin/jobs/{id}/children"),
    ("GET", "/api/admin/jobs/{id}/events"),
    ("POST", "/api/admin/jobs/{id}/retry"),
    ("GET", "/api/admin/queues"),
    ("GET", "/api/admin/jobs/queue/{name}/stats"),
    ("POST", "/api/admin/jobs/queue/{name}/pause"),
    ("POST", "/api/admin/jobs/queue/{name}/resume"),
    ("POST", "/api/admin/jobs/queue/{name}/clean"),
    ("GET", "/api/admin/dlq/{queue}"),
    ("POST", "/api/admin/dlq/{queue}/replay"),
    ("GET", "/api/admin/workers"),
    ("GET", "/api/admin/scheduled-jobs"),
    ("POST", "/api/admin/scheduled-jobs"),
    ("GET", "/api/admin/scheduled-jobs/{id}"),
    ("PATCH", "/api/admin/scheduled-jobs/{id}"),
    ("DELETE", "/api/admin/scheduled-jobs/{id}"),
    ("POST", "/api/admin/scheduled-jobs/{id}/trigger"),
    ("GET", "/api/admin/system/status"),
    ("GET", "/api/admin/metrics/summary"),
    ("GET", "/api/admin/errors"),
    ("POST", "/api/admin/authors"),
    ("GET", "/api/admin/authors"),
    ("GET", "/api/admin/authors/{id}"),
    ("GET", "/api/admin/books"),
    ("GET", "/api/admin/books/{id}"),
    ("GET", "/api/admin/quotes"),
    ("GET", "/api/admin/quotes/{id}"),
    ("GET", "/api/admin/session"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
];

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
        .route("/jobs/{id}/events", get(routes::events::events))
        .route("/jobs/{id}/retry", post(routes::jobs::retry))
        .route("/queues", get(routes::queues::list))
        .route("/jobs/queue/{name}/stats", get(routes::queues::stats))
        .route("/jobs/queue/{name}/pause", post(routes::queues::pause))
        .route("/jobs/queue/{name}/resume", post(routes::queues::resume))
        .route("/jobs/queue/{name}/clean", post(routes::queues::clean))
        .route("/dlq/{queue}", get(routes::dlq::list))
        .route("/dlq/{queue}/replay", post(routes::dlq::replay))
        .route("/workers", get(routes::workers::list))
        .route(
            "/scheduled-jobs",
            get(routes::schedules::list).post(routes::schedules::create),
        )
        .route(
            "/scheduled-jobs/{id}",
            get(routes::schedules::get_one)
                .patch(routes::schedules::update)
                .delete(routes::schedules::delete),
        )
        .route(
            "/scheduled-jobs/{id}/trigger",
            post(routes::schedules::trigger),
        )
        .route("/system/status", get(routes::system::status))
        .route("/metrics/summary", get(routes::system::summary))
        .route("/errors", get(routes::system::errors))
        .route(
            "/authors",
            post(routes::authors::create).get(routes::authors::list),
        )
        .route("/authors/{id}", get(routes::authors::get_one))
        .route("/books", get(routes::books::list))
        .route("/books/{id}", get(routes::books::get_one))
        .route("/quotes", get(routes::quotes::list))
        .route("/quotes/{id}", get(routes::quotes::get_one))
        .route("/session", get(routes::session::session))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/api/admin", admin)
        .route("/health", get(routes::health::health))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(routes::system::metrics))
        // After the routes: a route layer sees the matched route's template.
        .route_layer(axum::middleware::from_fn_with_state(
            state.http.clone(),
            http_metrics::track,
        ))
        // The web dashboard's pages and assets: open (the page asks for a token),
        // not in the OpenAPI document, and not counted in the request metrics.
        .merge(dashboard::routes())
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
