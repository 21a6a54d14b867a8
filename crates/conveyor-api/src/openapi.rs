//! `GET /openapi.json`: the OpenAPI 3 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the request and response types. A route added
//! to the router goes into [`crate::ROUTES`] and into [`ApiDoc`]'s `paths`; the
//! `openapi` test fails when either is missing.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conveyor admin API",
        description = "Admin routes need `Authorization: Bearer <token>`; viewer tokens may only GET. Errors answer `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        routes::jobs::create,
        routes::jobs::create_bulk,
        routes::jobs::list,
        routes::jobs::get_one,
        routes::jobs::cancel,
        routes::jobs::children,
        routes::jobs::retry,
        routes::events::events,
        routes::queues::list,
        routes::queues::stats,
        routes::queues::pause,
        routes::queues::resume,
        routes::queues::clean,
        routes::dlq::list,
        routes::dlq::replay,
        routes::workers::list,
        routes::schedules::list,
        routes::schedules::create,
        routes::schedules::get_one,
        routes::schedules::update,
        routes::schedules::delete,
        routes::schedules::trigger,
        routes::system::status,
        routes::system::summary,
        routes::system::errors,
        routes::system::metrics,
        routes::authors::create,
        routes::authors::list,
        routes::authors::get_one,
        routes::books::list,
        routes::books::get_one,
        routes::quotes::list,
        routes::quotes::get_one,
        routes::session::session,
        routes::health::health,
        openapi_json,
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

/// The OpenAPI 3 document of this API, with the queues and job types this
/// deployment configures filled in as the valid values of the fields naming them.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub async fn openapi_json(State(state): State<AppState>) -> Json<Value> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
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
    Json(doc)
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
