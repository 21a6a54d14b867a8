//! Strict JSON bodies and query strings, and ids in paths and queries: any parse
//! error, unknown field or over-long body answers in the API's error shape, naming
//! the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;

/// Like `axum::Json`, with errors that name the offending field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit_hint = "the request body is larger than the limit";
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    limit_hint,
                )
            } else {
                ApiError::bad_request("invalid_body", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses `bytes` as `T`; the error names the JSON path of the problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request("invalid_json", format!("body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::bad_request("invalid_body", format!("body: {inner}"))
        } else {
            ApiError::bad_request("invalid_field", format!("{path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

/// Like [`ApiJson`], but an empty body reads as `T::default()` (for bodies whose
/// every field is optional).
pub struct ApiJsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the limit",
                )
            } else {
                ApiError::bad_request("invalid_body", rejection.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        parse_json(&bytes).map(ApiJsonOrEmpty)
    }
}

/// Strict query strings: unknown parameters, repeated ones and values of the wrong
/// type answer 400 naming the parameter (declare `T` with `deny_unknown_fields`).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// The query of a route that takes no parameters: any parameter is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// Parses a path id, naming it when malformed.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_uuid("id", raw)
}

/// Parses an id given in the query string, naming its parameter when malformed.
pub fn parse_query_id(name: &str, raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    raw.map(|raw| parse_uuid(name, raw)).transpose()
}

fn parse_uuid(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::invalid(name, format!("`{raw}` is not a valid UUID")))
}
