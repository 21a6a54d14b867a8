//! The auth matrix: every route the router serves (the operations of its OpenAPI
//! document, which it registers together with the handlers), called with no token,
//! a viewer token and an admin token. Admin routes need a token; viewers may only
//! GET; the open routes (`/health`, `/metrics`, `/openapi.json`) need none.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use conveyor_api::{AppState, Auth};
use conveyor_tests::http::documented_routes;
use conveyor_tests::TestEnv;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

const ADMIN: &str = "admin-token";
const VIEWER: &str = "viewer-token";

/// A concrete path for a route pattern: a random id, the diagnostics queue.
fn concrete(pattern: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    pattern
        .replace("{id}", &id)
        .replace("{name}", "diagnostics")
        .replace("{queue}", "diagnostics")
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = if method == "GET" || method == "DELETE" {
        Body::empty()
    } else {
        Body::from("{}")
    };
    let req = req
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    // Only the head of a stream (SSE) is read: the status says what we need.
    let bytes = match tokio::time::timeout(
        std::time::Duration::from_secs(2),
        resp.into_body().collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Default::default(),
    };
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[sqlx::test]
async fn every_route_with_no_token_a_viewer_token_and_an_admin_token(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let auth = Auth::Tokens {
        admin: vec![ADMIN.into()],
        viewer: vec![VIEWER.into()],
    };
    let app = conveyor_api::router(AppState::new(env.conveyor.clone(), auth));
    let denied = |s: StatusCode| s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN;

    let mut admin_routes = 0;
    for (method, pattern) in documented_routes(&app).await {
        let (method, pattern) = (method.as_str(), pattern.as_str());
        let path = concrete(pattern);
        let (anonymous, body) = call(&app, method, &path, None).await;
        let (viewer, viewer_body) = call(&app, method, &path, Some(VIEWER)).await;
        let (admin, _) = call(&app, method, &path, Some(ADMIN)).await;
        if !pattern.starts_with("/api/admin") {
            assert!(
                !denied(anonymous),
                "{method} {pattern} is open, got {anonymous}"
            );
            continue;
        }
        admin_routes += 1;
        assert_eq!(
            anonymous,
            StatusCode::UNAUTHORIZED,
            "{method} {pattern} without a token"
        );
        assert_eq!(
            body["error"]["code"], "unauthorized",
            "{method} {pattern}: {body}"
        );
        if method == "GET" {
            assert!(
                !denied(viewer),
                "{method} {pattern}: a viewer may read, got {viewer}"
            );
        } else {
            assert_eq!(
                viewer,
                StatusCode::FORBIDDEN,
                "{method} {pattern}: a viewer may not write"
            );
            assert_eq!(
                viewer_body["error"]["code"], "forbidden",
                "{method} {pattern}: {viewer_body}"
            );
        }
        assert!(
            !denied(admin),
            "{method} {pattern}: an admin may do anything, got {admin}"
        );
    }
    assert!(
        admin_routes >= 20,
        "the matrix covered {admin_routes} admin routes"
    );
}
