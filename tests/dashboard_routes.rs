//! The web dashboard's side of the router: its pages are served without a token
//! and stay out of the OpenAPI document, `/api/admin/*` keeps its auth, and
//! `GET /api/admin/session` names the role of the presented token.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use conveyor_api::dashboard::{ASSETS, PAGES};
use conveyor_api::{AppState, Auth};
use conveyor_tests::TestEnv;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;

const ADMIN: &str = "admin-token";
const VIEWER: &str = "viewer-token";

fn app(env: &TestEnv, auth: Auth) -> Router {
    conveyor_api::router(AppState::new(env.conveyor.clone(), auth))
}

fn tokens() -> Auth {
    Auth::Tokens {
        admin: vec![ADMIN.into()],
        viewer: vec![VIEWER.into()],
    }
}

async fn get(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

async fn get_json(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let (status, body) = get(app, path, token).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[sqlx::test]
async fn session_names_the_role_of_the_token(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env, tokens());
    let path = "/api/admin/session";
    assert_eq!(
        get_json(&app, path, Some(ADMIN)).await,
        (StatusCode::OK, json!({"role": "admin"}))
    );
    assert_eq!(
        get_json(&app, path, Some(VIEWER)).await,
        (StatusCode::OK, json!({"role": "viewer"}))
    );
    for token in [Some("nope"), None] {
        let (status, body) = get_json(&app, path, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let (status, body) = get_json(&app, "/api/admin/session?x=1", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Without auth every caller is an admin.
    let open = self::app(&env, Auth::Disabled);
    assert_eq!(
        get_json(&open, path, None).await,
        (StatusCode::OK, json!({"role": "admin"}))
    );
}

#[sqlx::test]
async fn pages_are_open_and_undocumented_while_the_api_keeps_its_auth(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env, tokens());
    for pattern in PAGES {
        let path = pattern
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{name}", "diagnostics");
        let (status, body) = get(&app, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, ASSETS.index.raw, "{path}");
    }
    for file in &ASSETS.files {
        let (status, body) = get(&app, &format!("/dashboard/{}", file.name), None).await;
        assert_eq!(status, StatusCode::OK, "{}", file.name);
        assert_eq!(body, file.raw);
    }
    let (status, body) = get_json(&app, "/api/admin/queues", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    // Unknown routes still answer in the API's error shape.
    let (status, body) = get_json(&app, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "no such route");

    let (_, doc) = get_json(&app, "/openapi.json", None).await;
    for path in doc["paths"].as_object().unwrap().keys() {
        assert!(
            path.starts_with("/api/admin/")
                || ["/health", "/metrics", "/openapi.json"].contains(&path.as_str()),
            "{path} is documented"
        );
    }
    assert!(doc["paths"]["/api/admin/session"]["get"].is_object());
}
