//! The API's one error type. 4xx bodies say which field and why; 5xx bodies are
//! generic (the cause goes to the log, never to the client).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use queue_core::error::{BrokerError, EnqueueError, JobStateError, StoreError};
use queue_core::store::{DispatchError, DomainError};
use serde::Serialize;
use utoipa::openapi::{self, ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_request("invalid_field", format!("{field}: {reason}"))
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; try again shortly",
            )
        } else {
            tracing::error!(error = %e, "database error");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
        }
    }
}

impl From<EnqueueError> for ApiError {
    fn from(e: EnqueueError) -> Self {
        let message = e.to_string();
        match e {
            EnqueueError::UnknownQueue { .. } => Self::bad_request("unknown_queue", message),
            EnqueueError::UnknownJobType { .. } => Self::bad_request("unknown_job_type", message),
            EnqueueError::Invalid { .. } => Self::bad_request("invalid_field", message),
            EnqueueError::TooMany { .. } => Self::bad_request("too_many_jobs", message),
            EnqueueError::Store(e) => e.into(),
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Protocol(e) => {
                tracing::error!(error = %e, "unexpected redis reply");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error",
                )
            }
            other => {
                tracing::warn!(error = %other, "redis unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "redis_unavailable",
                    "redis is unavailable; try again shortly",
                )
            }
        }
    }
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Store(e) => e.into(),
            DispatchError::Broker(e) => e.into(),
        }
    }
}

impl From<JobStateError> for ApiError {
    fn from(e: JobStateError) -> Self {
        let message = e.to_string();
        match e {
            JobStateError::NotFound(_) => Self::not_found(message),
            JobStateError::Conflict { .. } => Self::conflict(message),
            JobStateError::Store(e) => e.into(),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::NotFound { .. } => Self::not_found(message),
            DomainError::Invalid { .. } => Self::bad_request("invalid_field", message),
            DomainError::WikidataIdTaken { .. } => Self::conflict(message),
            DomainError::Store(e) => e.into(),
            // Future refusals are the caller's input until told otherwise.
            _ => Self::bad_request("invalid_field", message),
        }
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable snake_case code and a sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case (e.g. `invalid_field`, `not_found`).
    pub code: String,
    /// Names the field and the reason for 4xx; generic for 5xx.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

// The error answers as the OpenAPI document lists them. A route's
// `#[utoipa::path(responses(...))]` names its success answers, the errors only it
// gives (404, 409, 429) and one of the sets below.

/// The services behind a route: what its 503 answer says is down.
pub trait Backing {
    const UNAVAILABLE: &'static str;
}

/// The job engine's routes reach PostgreSQL and Redis.
pub struct PostgresAndRedis;

impl Backing for PostgresAndRedis {
    const UNAVAILABLE: &'static str = "PostgreSQL or Redis is unavailable";
}

/// The domain routes (authors, books, quotes) reach PostgreSQL only.
pub struct Postgres;

impl Backing for Postgres {
    const UNAVAILABLE: &'static str = "PostgreSQL is unavailable";
}

/// The errors of an admin route that reads: 400 (a malformed id or query), 401
/// (no token or an unknown one) and 503.
pub struct ReadErrors<B = PostgresAndRedis>(PhantomData<B>);

/// The errors of an admin route that writes without a body: those of
/// [`ReadErrors`] and 403 (a viewer token).
pub struct WriteErrors<B = PostgresAndRedis>(PhantomData<B>);

/// The errors of an admin route that writes a JSON body: those of [`WriteErrors`]
/// and 413 (a body over `api.body_limit_bytes`).
pub struct BodyErrors<B = PostgresAndRedis>(PhantomData<B>);

/// An answer with an [`ErrorBody`].
pub fn error_response(description: &str) -> RefOr<openapi::Response> {
    let body = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ErrorBody::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
        .build()
        .into()
}

type Answers = BTreeMap<String, RefOr<openapi::Response>>;

fn answers(list: &[(StatusCode, &str)]) -> Answers {
    list.iter()
        .map(|(status, description)| (status.as_str().to_owned(), error_response(description)))
        .collect()
}

impl<B: Backing> IntoResponses for ReadErrors<B> {
    fn responses() -> Answers {
        answers(&[
            (
                StatusCode::BAD_REQUEST,
                "Invalid input; the message names the field",
            ),
            (StatusCode::UNAUTHORIZED, "Missing or invalid token"),
            (StatusCode::SERVICE_UNAVAILABLE, B::UNAVAILABLE),
        ])
    }
}

impl<B: Backing> IntoResponses for WriteErrors<B> {
    fn responses() -> Answers {
        let mut all = ReadErrors::<B>::responses();
        all.extend(answers(&[(
            StatusCode::FORBIDDEN,
            "Viewer token on a write",
        )]));
        all
    }
}

impl<B: Backing> IntoResponses for BodyErrors<B> {
    fn responses() -> Answers {
        let mut all = WriteErrors::<B>::responses();
        all.extend(answers(&[(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Body over the limit",
        )]));
        all
    }
}
