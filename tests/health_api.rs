//! `GET /health` in-process (up, and a stopped or unreachable service named in
//! fixed words), and what the router answers for unknown routes and wrong methods:
//! the one error shape, and no job recorded.

use axum::http::{Method, StatusCode};
use conveyor_api::{AppState, Auth};
use conveyor_tests::http::{assert_refused, Reply, TestApi, ADMIN};
use conveyor_tests::TestEnv;
use sqlx::PgPool;
use uuid::Uuid;

const JOBS: &str = "/api/admin/jobs";
const BULK: &str = "/api/admin/jobs/bulk";

// ---------------------------------------------------------------------------------
// GET /health
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn health_needs_no_token(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let reply = api.get_as(None, "/health").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    // A bad token does not matter there either.
    let reply = api.get_as(Some("wrong-token"), "/health").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[sqlx::test]
async fn health_is_200_healthy_with_postgres_and_redis_up(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let reply = api.get_as(None, "/health").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["status"], "healthy", "{reply:?}");
    for service in ["postgres", "redis"] {
        let detail = &reply.body["details"][service];
        assert_eq!(detail["status"], "up", "{service}: {reply:?}");
        let latency = detail["latencyMs"]
            .as_f64()
            .unwrap_or_else(|| panic!("{service} has no latencyMs: {reply:?}"));
        assert!((0.0..2_000.0).contains(&latency), "{service}: {latency}");
    }
}

/// The fixed reasons `/health` may give (never a driver's or a client's text).
const HEALTH_REASONS: &[&str] = &[
    "connection refused",
    "no answer within 2 s",
    "no answer in time",
    "connection lost",
    "unreachable",
    "unexpected answer",
];

/// Checks a 503 `/health` answer naming `down` with a fixed reason and no
/// internals, and the other service up.
#[track_caller]
fn assert_down(reply: &Reply, down: &str, up: &str, secrets: &[&str]) {
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.body["status"], "unhealthy", "{reply:?}");
    assert_eq!(reply.body["details"][down]["status"], "down", "{reply:?}");
    assert_eq!(reply.body["details"][up]["status"], "up", "{reply:?}");
    let reason = reply.body["details"][down]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {reply:?}"));
    assert!(
        HEALTH_REASONS.contains(&reason),
        "{down}: reason {reason:?} is not one of the fixed phrases"
    );
    let text = reply.body.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked: {text}");
    }
}

#[sqlx::test]
async fn health_names_an_unreachable_postgres_in_fixed_words(pool: PgPool) {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use std::str::FromStr;
    let env = TestEnv::new(pool).await;
    let port = conveyor_tests::services::free_port();
    let options = PgConnectOptions::from_str(&format!(
        "postgres://conveyor:hunter2@127.0.0.1:{port}/nowhere"
    ))
    .unwrap();
    let dead = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(300))
        .connect_lazy_with(options);
    let conveyor = queue_core::Conveyor::new(
        queue_core::store::Store::new(dead),
        env.conveyor.broker().clone(),
        env.config.clone(),
        std::sync::Arc::new(queue_core::Catalog::builtin()),
    );
    let api = TestApi::from_router(conveyor_api::router(AppState::new(
        conveyor,
        Auth::Disabled,
    )));
    let reply = api.get_as(None, "/health").await;
    assert_down(
        &reply,
        "postgres",
        "redis",
        &[
            &port.to_string(),
            "hunter2",
            "nowhere",
            "pool",
            "error",
            "database",
        ],
    );
}

#[sqlx::test]
async fn health_names_a_stopped_redis_in_fixed_words(pool: PgPool) {
    let mut redis = conveyor_tests::services::RedisServer::start();
    let db_url = conveyor_tests::test_db_url(&pool);
    let env = TestEnv::with_services(pool, db_url, redis.url(), |_| {}).await;
    let api = TestApi::from_router(conveyor_api::router(AppState::new(
        env.conveyor.clone(),
        Auth::Disabled,
    )));
    assert_eq!(api.get_as(None, "/health").await.status, StatusCode::OK);
    redis.stop();
    let reply = api.get_as(None, "/health").await;
    assert_down(
        &reply,
        "redis",
        "postgres",
        &[
            &redis.port.to_string(),
            "os error",
            "redis error",
            "refused (",
        ],
    );
}

// ---------------------------------------------------------------------------------
// Unknown routes and methods
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn unknown_route_is_404_in_the_error_shape(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    for (method, path, token) in [
        (Method::GET, "/no/such/route", None),
        (Method::GET, "/api/admin/no-such-route", Some(ADMIN)),
        (Method::POST, "/api/admin/jobs/bulk/extra", Some(ADMIN)),
        (Method::GET, "/api/admin", Some(ADMIN)),
    ] {
        let reply = api.send(method, path, token, None).await;
        assert_refused(&env, &reply, StatusCode::NOT_FOUND, "not_found", &[]).await;
    }
}

#[sqlx::test]
async fn wrong_method_on_a_known_route_is_405_in_the_error_shape(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    for (method, path) in [
        (Method::PUT, JOBS.to_string()),
        (Method::GET, BULK.to_string()),
        (Method::PATCH, format!("{JOBS}/{}", Uuid::new_v4())),
    ] {
        let reply = api.send(method, &path, Some(ADMIN), None).await;
        // Any code, in the one error shape.
        reply.error(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(env.job_rows().await, 0);
    }
}
