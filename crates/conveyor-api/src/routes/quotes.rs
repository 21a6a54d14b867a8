//! Quote routes: list (newest first, `?bookId=`), read. Quotes are written by
//! EXTRACT_QUOTES, CATEGORIZE_QUOTE and TRANSLATE_QUOTE, not through the API.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use queue_core::store::Quote;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody, Postgres, ReadErrors};
use crate::extract::{parse_id, parse_query_id, ApiQuery, NoQuery};
use crate::paging::{page_schema, Page, Window};
use crate::AppState;

/// A quote (mirrors `queue_core::store::Quote`).
#[derive(ToSchema)]
#[schema(as = Quote)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct QuoteSchema {
    id: Uuid,
    book_id: Uuid,
    text: String,
    /// The chapter it was found in, when known.
    chapter: Option<i32>,
    categories: Vec<String>,
    /// Language code → translated text.
    translations: BTreeMap<String, String>,
}

/// Query of `GET /api/admin/quotes`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct QuoteListQuery {
    /// Only this book's quotes (UUID).
    #[param(value_type = Option<Uuid>)]
    pub book_id: Option<String>,
    /// From 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

page_schema! {
    /// One page of quotes, newest first.
    QuotePage of QuoteSchema, total: " Matching quotes on every page."
}

/// `GET /api/admin/quotes?bookId=&page=&limit=`: newest first.
#[utoipa::path(get, path = "/api/admin/quotes", operation_id = "listQuotes", tag = "quotes", security(("bearer" = [])),
    params(QuoteListQuery),
    responses(
        (status = 200, description = "One page of quotes, newest first", body = QuotePage),
        ReadErrors<Postgres>
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<QuoteListQuery>,
) -> Result<Json<Page<Quote>>, ApiError> {
    let book_id = parse_query_id("bookId", query.book_id.as_deref())?;
    let window = Window::new(query.page, query.limit)?;
    let store = state.conveyor.store();
    Ok(window.answer(
        store
            .quote_page(book_id, window.limit, window.offset)
            .await?,
    ))
}

/// `GET /api/admin/quotes/:id`.
#[utoipa::path(get, path = "/api/admin/quotes/{id}", operation_id = "getQuote", tag = "quotes", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The quote id")),
    responses(
        (status = 200, description = "The quote", body = QuoteSchema),
        (status = 404, description = "No such quote", body = ErrorBody),
        ReadErrors<Postgres>
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
) -> Result<Json<Quote>, ApiError> {
    let id = parse_id(&id)?;
    let quote = state.conveyor.store().get_quote(id).await?;
    Ok(Json(quote.ok_or_else(|| {
        ApiError::not_found(format!("quote {id} not found"))
    })?))
}
