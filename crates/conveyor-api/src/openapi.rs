//! `GET /openapi.json`: the OpenAPI 3 document. [`ApiDoc`] holds what is not
//! about one route (title, tags, the bearer scheme, the error body); the router
//! adds each route's `#[utoipa::path]` operation as it registers the handler
//! (`crate::router`), and [`Document::new`] fills in this deployment's queues and
//! job types.

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conveyor admin API",
        description = "Admin routes need `Authorization: Bearer <token>`; viewer tokens may only GET. Errors answer `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Create, read, list, retry and cancel jobs"),
        (name = "queues", description = "Queue stats, pause, resume, clean"),
        (name = "dlq", description = "Dead letters"),
        (name = "workers", description = "Live workers"),
        (name = "schedules", description = "Cron-scheduled jobs"),
        (name = "system", description = "Health, status, metrics, this document"),
        (name = "authors", description = "Authors of the domain queues' books"),
        (name = "books", description = "Imported books (without their text)"),
        (name = "quotes", description = "Quotes extracted from books, with categories and translations"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme the admin routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The served document, as JSON text.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    /// The router's document with the queues and job types this deployment
    /// configures filled in as the valid values of the fields naming them.
    pub fn new(doc: utoipa::openapi::OpenApi, state: &AppState) -> Self {
        let mut doc = serde_json::to_value(doc).unwrap_or_default();
        let queues: Vec<Value> = state
            .conveyor
            .config()
            .queues
            .keys()
            .map(|q| Value::from(q.as_str()))
            .collect();
        let mut types: Vec<Value> = queues
            .iter()
            .filter_map(Value::as_str)
            .flat_map(|q| state.conveyor.catalog().types_of(q))
            .map(Value::from)
            .collect();
        types.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        types.dedup();
        name_values(&mut doc, &queues, &types);
        Self(Bytes::from(doc.to_string()))
    }
}

/// The OpenAPI 3 document of this API, with the queues and job types this
/// deployment configures filled in as the valid values of the fields naming them.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi_json(Extension(Document(doc)): Extension<Document>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc)
}

/// Sets `enum` on the path and query parameters naming a queue and on the
/// `queueName` and `jobType` fields of the create body.
fn name_values(doc: &mut Value, queues: &[Value], types: &[Value]) {
    // (`get_mut`, not indexing: indexing a missing key would insert a null.)
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(ops) = item.as_object_mut() else {
                continue;
            };
            for op in ops.values_mut() {
                let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                    continue;
                };
                for param in params {
                    let names_queue = match (param["name"].as_str(), param["in"].as_str()) {
                        (Some("name" | "queue"), Some("path")) => true,
                        (Some("queue"), Some("query")) => path == "/api/admin/jobs",
                        _ => false,
                    };
                    if names_queue {
                        param["schema"]["enum"] = Value::from(queues.to_vec());
                    }
                }
            }
        }
    }
    // Links from a created job or author to the routes that take its id (not to a
    // job's event stream, which stays open while the job waits), so fuzzers reach
    // them.
    let link = |op: &str| json!({"operationId": op, "parameters": {"id": "$response.body#/id"}});
    if let Some(created) = doc.pointer_mut("/paths/~1api~1admin~1authors/post/responses/201") {
        created["links"] = json!({ "GetAuthor": link("getAuthor") });
    }
    if let Some(created) = doc.pointer_mut("/paths/~1api~1admin~1jobs/post/responses/201") {
        created["links"] = json!({
            "GetJob": link("getJob"),
            "ListChildren": link("listChildren"),
            "RetryJob": link("retryJob"),
            "CancelJob": link("cancelJob"),
        });
    }
    let create = doc
        .pointer_mut("/components/schemas/CreateJob/properties")
        .and_then(Value::as_object_mut);
    if let Some(create) = create {
        create["queueName"]["enum"] = Value::from(queues.to_vec());
        create["jobType"]["enum"] = Value::from(types.to_vec());
    }
}
