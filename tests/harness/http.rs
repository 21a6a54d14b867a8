//! Requests to the API router in-process, as the route tests send them.
//!
//! [`TestApi`] is the one client every route test uses: it sends a request with a
//! token and a JSON body through `tower::ServiceExt::oneshot` (no socket) and
//! answers a [`Reply`] (status, headers, JSON body), whose
//! [`Reply::assert_error`] checks the one error shape
//! `{"error": {"code", "message"}}`.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, Response, StatusCode};
use axum::Router;
use conveyor_api::{AppState, Auth};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::types::chrono::{DateTime, Utc};
use tower::ServiceExt;
use uuid::Uuid;

use crate::TestEnv;

/// The admin token of [`TestApi::new`] (and of [`TestEnv::spawn_api`]).
pub const ADMIN: &str = "admin-token";
/// The viewer token of [`TestApi::new`].
pub const VIEWER: &str = "viewer-token";

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
    let bytes = body.map(|v| v.to_string().into_bytes());
    let response = oneshot(app, method, path, token, bytes).await;
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

/// Sends one request with a raw body (sent as `application/json`) and answers the
/// response as it comes (its body not read yet).
async fn oneshot(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> Response<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(bytes) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    app.clone()
        .oneshot(req.body(body).expect("request builds"))
        .await
        .expect("the router is infallible")
}

/// The real router over a test's engine, and the requests route tests send it.
#[derive(Clone)]
pub struct TestApi {
    pub router: Router,
}

impl TestApi {
    /// The router over `env`, accepting [`ADMIN`] and [`VIEWER`].
    pub fn new(env: &TestEnv) -> Self {
        Self::from_router(router(env, &[ADMIN], &[VIEWER]))
    }

    /// A router built by the test itself (another engine or auth).
    pub fn from_router(router: Router) -> Self {
        Self { router }
    }

    /// Sends `method path` with `token` (None: no `Authorization` header) and
    /// `body` as JSON (None: empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let bytes = body.map(|b| serde_json::to_vec(&b).expect("serializes"));
        self.send_raw(method, path, token, bytes).await
    }

    /// Like [`TestApi::send`] with a body of raw bytes (sent as
    /// `application/json`, whatever they are).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let response = oneshot(&self.router, method, path, token, body).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body reads")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Opens `GET path` and answers the response with its body unread (for
    /// streams).
    pub async fn open(&self, path: &str, token: Option<&str>) -> Response<Body> {
        oneshot(&self.router, Method::GET, path, token, None).await
    }

    /// `GET path` as the admin.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(ADMIN), None).await
    }

    /// `GET path` with `token` (None: no token).
    pub async fn get_as(&self, token: Option<&str>, path: &str) -> Reply {
        self.send(Method::GET, path, token, None).await
    }

    /// `POST path` with a JSON body, as the admin.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(ADMIN), Some(body)).await
    }

    /// `POST path` without a body, as the admin.
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, Some(ADMIN), None).await
    }

    /// `PATCH path` with a JSON body, as the admin.
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(ADMIN), Some(body))
            .await
    }

    /// `DELETE path` as the admin.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some(ADMIN), None).await
    }
}

/// One answer of the router.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The parsed JSON body (`Null` when empty; the text as a JSON string when it
    /// is not JSON, so assertions print it).
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header(header::LOCATION)
    }

    /// The body as text (a body that is not JSON).
    pub fn text(&self) -> &str {
        self.body
            .as_str()
            .unwrap_or_else(|| panic!("the body is JSON, not text: {self:?}"))
    }

    /// The `id` of the record the body is.
    #[track_caller]
    pub fn id(&self) -> Uuid {
        self.body["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no id in {self:?}"))
    }

    /// Asserts `status`, then answers the body.
    #[track_caller]
    pub fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        &self.body
    }

    /// Asserts `status` and the error shape: a JSON body that is only
    /// `{"error": {"code", "message"}}`, a snake_case code and a message that is
    /// not empty. Answers (code, message).
    #[track_caller]
    pub fn error(&self, status: StatusCode) -> (&str, &str) {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        assert!(
            self.header(header::CONTENT_TYPE)
                .is_some_and(|ct| ct.starts_with("application/json")),
            "error bodies are JSON: {self:?}"
        );
        let obj = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("the error body is not an object: {self:?}"));
        assert_eq!(obj.len(), 1, "only `error` at the top: {self:?}");
        let error = self.body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("no `error` object: {self:?}"));
        let code = error
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("`error.code` is not a string: {self:?}"));
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "`error.code` is not snake_case: {self:?}"
        );
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("`error.message` is not a string: {self:?}"));
        assert!(!message.is_empty(), "empty error message: {self:?}");
        (code, message)
    }

    /// Asserts an error answer of `status` with `code` in the error shape (see
    /// [`Reply::error`]); answers its message.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) -> &str {
        let (actual, message) = self.error(status);
        assert_eq!(actual, code, "unexpected error code: {self:?}");
        message
    }

    /// [`Reply::assert_error`], and the message mentions each of `mentions`.
    #[track_caller]
    pub fn assert_error_naming(&self, status: StatusCode, code: &str, mentions: &[&str]) -> &str {
        let message = self.assert_error(status, code);
        for m in mentions {
            assert!(
                message.contains(m),
                "error message {message:?} does not mention {m:?}"
            );
        }
        message
    }
}

/// An RFC 3339 time of a JSON answer.
#[track_caller]
pub fn time_of(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {value}"))
}

/// The ids of a JSON array of records.
#[track_caller]
pub fn ids_of(items: &Value) -> Vec<Uuid> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|j| {
            j["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no id in {j}"))
        })
        .collect()
}

/// Asserts a refusal as [`Reply::assert_error_naming`] does, and that no job was
/// recorded; answers the message.
pub async fn assert_refused(
    env: &TestEnv,
    reply: &Reply,
    status: StatusCode,
    code: &str,
    mentions: &[&str],
) -> String {
    let message = reply
        .assert_error_naming(status, code, mentions)
        .to_string();
    assert_eq!(env.job_rows().await, 0, "a refused request recorded a job");
    message
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
