//! `GET /openapi.json` documents the routes the router serves: the router registers
//! each handler together with its operation, and every documented operation is
//! served (not the fallback); every admin route names the bearer scheme and its
//! error answers use the one `ErrorBody` schema.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use conveyor_api::{AppState, Auth};
use conveyor_tests::http::documented_routes;
use conveyor_tests::TestEnv;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

const ADMIN: &str = "a";

fn app(env: &TestEnv) -> Router {
    conveyor_api::router(AppState::new(
        env.conveyor.clone(),
        Auth::Tokens {
            admin: vec![ADMIN.into()],
            viewer: vec![],
        },
    ))
}

async fn call(app: &Router, method: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if is_stream {
        return (status, Value::Null);
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Fills the path parameters of an OpenAPI path with values that route.
fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::new_v4().to_string())
        .replace("{name}", "diagnostics")
        .replace("{queue}", "diagnostics")
}

#[sqlx::test]
async fn every_documented_route_is_served(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let (status, doc) = call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK, "served without a token");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let routes = documented_routes(&app).await;
    // The admin routes, `/health`, `/metrics` and this document.
    assert!(routes.len() >= 30, "{} operations documented", routes.len());
    for (method, path) in &routes {
        let (status, body) = call(&app, method, &concrete(path), Some(ADMIN)).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            body["error"]["message"] != "no such route",
            "{method} {path} is not served: {body}"
        );
    }
    // An unknown route does hit the fallback (so the check above means something).
    let (status, body) = call(&app, "GET", "/api/admin/nope", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "no such route");
}

#[sqlx::test]
async fn admin_routes_name_the_bearer_scheme_and_the_error_body(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let (_, doc) = call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error_body["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    for (method, path) in documented_routes(&app).await {
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        if !path.starts_with("/api/admin/") {
            assert!(op.get("security").is_none(), "{path} is open");
            continue;
        }
        assert_eq!(
            op["security"][0]["bearer"],
            Value::Array(vec![]),
            "{method} {path}"
        );
        assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        for (code, response) in responses {
            if code.starts_with('4') || code.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
        }
    }
}
