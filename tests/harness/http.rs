//! Requests to the API router in-process, as the route tests send them.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use conveyor_api::{AppState, Auth};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::TestEnv;

/// The API router over `env`'s engine, accepting these admin and viewer tokens.
pub fn router(env: &TestEnv, admin: &[&str], viewer: &[&str]) -> Router {
    let auth = Auth::Tokens {
        admin: admin.iter().map(|t| t.to_string()).collect(),
        viewer: viewer.iter().map(|t| t.to_string()).collect(),
    };
    conveyor_api::router(AppState::new(env.conveyor.clone(), auth))
}

/// Sends one request (a JSON body if given, a bearer token if given) and returns
/// the status and the body as text.
pub async fn send_text(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Like [`send_text`], with the body parsed as JSON (a JSON string of the text when
/// it is not JSON).
pub async fn send_json(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, text) = send_text(app, method, path, token, body).await;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// The keys of an OpenAPI path item that name an operation.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the document at `/openapi.json` as (METHOD, path), the path
/// in OpenAPI syntax (`/api/admin/jobs/{id}`). The router registers each handler
/// together with its operation, so these are the routes it serves.
pub async fn documented_routes(app: &Router) -> Vec<(String, String)> {
    let (status, doc) = send_json(app, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut routes = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item");
        for method in item.keys().filter(|key| METHODS.contains(&key.as_str())) {
            routes.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}
