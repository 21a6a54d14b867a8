//! Book routes: list (newest first, `?authorId=`), read. Books are written by
//! imports (PROCESS_EPUB), not through the API.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use queue_core::store::Book;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, Postgres, ReadErrors};
use crate::extract::{parse_id, parse_query_id, ApiQuery, NoQuery};
use crate::paging::{page_schema, Page, Window};
use crate::AppState;

/// A book without its text (mirrors `queue_core::store::Book`).
#[derive(ToSchema)]
#[schema(as = Book)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct BookSchema {
    id: Uuid,
    title: String,
    author_id: Option<Uuid>,
    language: Option<String>,
    chapter_count: i32,
    word_count: i64,
    summary: Option<String>,
    #[schema(value_type = Option<String>, pattern = "^(A1|A2|B1|B2|C1|C2)$")]
    cefr_level: Option<String>,
    /// EXTRACT_CHARACTERS's answer.
    #[schema(value_type = Option<Value>)]
    characters: Option<Value>,
    chinese_title: Option<String>,
    /// The EPUB's path inside the storage directory.
    source_path: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Query of `GET /api/admin/books`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct BookListQuery {
    /// Only this author's books (UUID).
    #[param(value_type = Option<Uuid>)]
    pub author_id: Option<String>,
    /// From 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

page_schema! {
    /// One page of books, newest first.
    BookPage of BookSchema, total: " Matching books on every page."
}

/// `GET /api/admin/books?authorId=&page=&limit=`: newest first.
#[utoipa::path(get, path = "/api/admin/books", operation_id = "listBooks", tag = "books", security(("bearer" = [])),
    params(BookListQuery),
    responses(
        (status = 200, description = "One page of books, newest first", body = BookPage),
        ReadErrors<Postgres>
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BookListQuery>,
) -> Result<Json<Page<Book>>, ApiError> {
    let author_id = parse_query_id("authorId", query.author_id.as_deref())?;
    let window = Window::new(query.page, query.limit)?;
    let store = state.conveyor.store();
    Ok(window.answer(
        store
            .book_page(author_id, window.limit, window.offset)
            .await?,
    ))
}

/// `GET /api/admin/books/:id`.
#[utoipa::path(get, path = "/api/admin/books/{id}", operation_id = "getBook", tag = "books", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The book id")),
    responses(
        (status = 200, description = "The book (without its text)", body = BookSchema),
        (status = 404, description = "No such book", body = ErrorBody),
        ReadErrors<Postgres>
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Book>, ApiError> {
    let id = parse_id(&id)?;
    let book = state.conveyor.store().get_book(id).await?;
    Ok(Json(book.ok_or_else(|| {
        ApiError::not_found(format!("book {id} not found"))
    })?))
}
