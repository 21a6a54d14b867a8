//! Pages of the list routes: `?page=` (from 1) and `?limit=` (1 to 100).

use serde::Deserialize;
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

/// Checks `page` (from 1) and `limit` (1 to 100); returns (page, limit, offset).
pub fn page_window(page: Option<i64>, limit: Option<i64>) -> Result<(i64, i64, i64), ApiError> {
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
    Ok((page, limit, offset))
}
