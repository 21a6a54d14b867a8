//! Author routes: create, list (newest first), read.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use queue_core::store::domain::is_wikidata_id;
use queue_core::store::Author;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, BodyErrors, ErrorBody, Postgres, ReadErrors};
use crate::extract::{parse_id, ApiJson, ApiQuery, NoQuery};
use crate::paging::{page_schema, Page, PageQuery, Window};
use crate::AppState;

/// Longest author name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 500;

/// An author (mirrors `queue_core::store::Author`).
#[derive(ToSchema)]
#[schema(as = Author)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct AuthorSchema {
    id: Uuid,
    name: String,
    /// A Wikidata item id (`Q42`).
    wikidata_id: Option<String>,
    /// `YYYY-MM-DD`, `YYYY-MM` or `YYYY`; a leading `-` for BCE.
    birth_date: Option<String>,
    /// Same form as `birthDate`.
    death_date: Option<String>,
    countries: Vec<String>,
    occupations: Vec<String>,
    description: Option<String>,
    image_url: Option<String>,
    avatar_path: Option<String>,
    bio: Option<String>,
    /// GENERATE_PERSONA's answer.
    #[schema(value_type = Option<Value>)]
    persona: Option<Value>,
    /// GENERATE_TIMELINE's answer.
    #[schema(value_type = Option<Value>)]
    timeline: Option<Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Body of `POST /api/admin/authors`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Jane Austen", "wikidataId": "Q36322"}))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateAuthor {
    /// 1 to 500 characters (surrounding blanks are dropped).
    #[schema(min_length = 1, max_length = 500)]
    pub name: String,
    /// A Wikidata item id; unique among authors.
    #[schema(pattern = "^Q[1-9][0-9]*$", max_length = 20)]
    pub wikidata_id: Option<String>,
}

page_schema! {
    /// One page of authors, newest first.
    AuthorPage of AuthorSchema, total: " Authors on every page."
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("author {id} not found"))
}

/// The name to store: trimmed, 1 to 500 characters, no NUL.
fn checked_name(raw: &str) -> Result<&str, ApiError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.contains('\0') {
        return Err(ApiError::invalid("name", "must not contain NUL characters"));
    }
    Ok(name)
}

/// `POST /api/admin/authors`: 201 with the author and its `Location`; a
/// `wikidataId` another author holds is a 409.
#[utoipa::path(post, path = "/api/admin/authors", operation_id = "createAuthor", tag = "authors", security(("bearer" = [])),
    request_body = CreateAuthor,
    responses(
        (status = 201, description = "Created; `Location` names the author", body = AuthorSchema),
        (status = 409, description = "Another author has this wikidataId", body = ErrorBody),
        BodyErrors<Postgres>
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
    ApiJson(body): ApiJson<CreateAuthor>,
) -> Result<Response, ApiError> {
    let name = checked_name(&body.name)?;
    if let Some(qid) = body.wikidata_id.as_deref() {
        if !is_wikidata_id(qid) {
            return Err(ApiError::invalid(
                "wikidataId",
                "must be a Wikidata item id matching ^Q[1-9][0-9]*$ (e.g. Q42), at most 20 characters",
            ));
        }
    }
    let author = state
        .conveyor
        .store()
        .create_author(name, body.wikidata_id.as_deref())
        .await?;
    let location = format!("/api/admin/authors/{}", author.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(author),
    )
        .into_response())
}

/// `GET /api/admin/authors?page=&limit=`: newest first.
#[utoipa::path(get, path = "/api/admin/authors", operation_id = "listAuthors", tag = "authors", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "One page of authors, newest first", body = AuthorPage),
        ReadErrors<Postgres>
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<Author>>, ApiError> {
    let window = Window::new(query.page, query.limit)?;
    let store = state.conveyor.store();
    Ok(window.answer(store.author_page(window.limit, window.offset).await?))
}

/// `GET /api/admin/authors/:id`.
#[utoipa::path(get, path = "/api/admin/authors/{id}", operation_id = "getAuthor", tag = "authors", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The author id")),
    responses(
        (status = 200, description = "The author", body = AuthorSchema),
        (status = 404, description = "No such author", body = ErrorBody),
        ReadErrors<Postgres>
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Author>, ApiError> {
    let id = parse_id(&id)?;
    let author = state.conveyor.store().get_author(id).await?;
    Ok(Json(author.ok_or_else(|| not_found(id))?))
}
