//! Pages of the list routes: `?page=` (from 1) and `?limit=` (1 to 100), and the
//! `{items, page, limit, total}` answer.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::error::ApiError;

/// Largest page size of the lists.
pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 20;

/// Query of a list that takes only the page window (a parent's children,
/// authors). Numbers are read as signed so that a negative one gets the range
/// message rather than a parse error.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The rows a `page` and `limit` select.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub page: i64,
    pub limit: i64,
    /// Rows before the page.
    pub offset: i64,
}

impl Window {
    /// Checks `page` (from 1, default 1) and `limit` (1 to 100, default 20).
    pub fn new(page: Option<i64>, limit: Option<i64>) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if page < 1 {
            return Err(ApiError::invalid("page", "must be at least 1"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let offset = (page - 1)
            .checked_mul(limit)
            .ok_or_else(|| ApiError::invalid("page", "is too large"))?;
        Ok(Self {
            page,
            limit,
            offset,
        })
    }

    /// The answer: this window's `items` out of `total` matching rows.
    pub fn answer<T>(self, (items, total): (Vec<T>, i64)) -> Json<Page<T>> {
        Json(Page {
            items,
            page: self.page,
            limit: self.limit,
            total,
        })
    }
}

/// One page of a list, newest first. Each list names its OpenAPI schema with
/// [`page_schema!`].
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub limit: i64,
    pub total: i64,
}

/// Declares the OpenAPI schema of one list's [`Page`]: its name, the schema of
/// its items and what `total` counts.
macro_rules! page_schema {
    ($(#[doc = $doc:tt])* $name:ident of $item:ty, total: $total:tt) => {
        $(#[doc = $doc])*
        #[derive(utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct $name {
            items: Vec<$item>,
            page: i64,
            limit: i64,
            #[doc = $total]
            total: i64,
        }
    };
}
pub(crate) use page_schema;
