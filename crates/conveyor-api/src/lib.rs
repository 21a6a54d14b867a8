//! Conveyor's admin HTTP API. [`router`] builds the whole application from an
//! [`AppState`]; `main.rs` only loads configuration and serves it.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod openapi;
pub mod paging;
pub mod routes;
pub mod schemas;
pub mod streams;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use queue_core::broker::JobEventHub;
use queue_core::metrics::Metrics;
use queue_core::Conveyor;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

    /// The names of the configured queues, in order.
    pub fn queue_names(&self) -> Vec<String> {
        self.conveyor.config().queues.keys().cloned().collect()
    }
}

/// The application: admin routes behind auth, `/health` open, errors in the
/// `{"error": {"code", "message"}}` shape everywhere (also for unknown routes).
/// `GET /openapi.json` serves the document [`api`] builds with the routes.
pub fn router(state: AppState) -> Router {
    let body_limit = state.conveyor.config().api.body_limit_bytes;
    let (app, doc) = api(&state).split_for_parts();
    let doc = openapi::Document::new(doc, &state);
    app
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
        .layer(Extension(doc))
        .with_state(state)
}

/// Every route with its OpenAPI description: `routes!` registers each handler at
/// the path and method of its `#[utoipa::path]` and adds that operation to the
/// document, so what is served and what is documented cannot drift apart. Handlers
/// sharing a path go into one `routes!`.
fn api(state: &AppState) -> OpenApiRouter<AppState> {
    use routes::{
        authors, books, dlq, health, jobs, queues, quotes, schedules, session, system, workers,
    };
    let admin = OpenApiRouter::default()
        .routes(routes!(jobs::create, jobs::list))
        .routes(routes!(jobs::bulk::create))
        .routes(routes!(jobs::get_one, jobs::cancel))
        .routes(routes!(jobs::children::list))
        .routes(routes!(jobs::events::stream))
        .routes(routes!(jobs::retry))
        .routes(routes!(queues::list))
        .routes(routes!(queues::stats))
        .routes(routes!(queues::pause))
        .routes(routes!(queues::resume))
        .routes(routes!(queues::clean))
        .routes(routes!(dlq::list))
        .routes(routes!(dlq::replay))
        .routes(routes!(workers::list))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(
            schedules::get_one,
            schedules::update,
            schedules::delete
        ))
        .routes(routes!(schedules::trigger))
        .routes(routes!(system::status))
        .routes(routes!(system::summary))
        .routes(routes!(system::errors))
        .routes(routes!(authors::create, authors::list))
        .routes(routes!(authors::get_one))
        .routes(routes!(books::list))
        .routes(routes!(books::get_one))
        .routes(routes!(quotes::list))
        .routes(routes!(quotes::get_one))
        .routes(routes!(session::session))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(admin)
        .routes(routes!(health::health))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(system::metrics))
}
