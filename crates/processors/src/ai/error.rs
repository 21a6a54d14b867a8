//! What a call to a language model can fail with.
//!
//! Policy: every variant says whether retrying the job can help (`retryable`) and how
//! long to wait first when the provider said (`retry_after`). Messages name the
//! provider and the reason and never carry a key: provider text passes through
//! `scrub` before it lands here. Variants are classified per provider in
//! `classify.rs`, not by HTTP status alone.

use std::time::Duration;

/// A failed call. `retryable()` tells the job runner whether another attempt can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AiError {
    /// No provider of the route had a key; names the primary provider's variable.
    #[error("no API key: the environment variable {variable} is not set")]
    MissingKey { variable: String },

    /// The provider throttled us (HTTP 429, or a code listed in `retryable_codes`).
    #[error("{provider}: rate limited (HTTP {status}): {message}")]
    RateLimited {
        provider: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },

    /// The provider failed or is overloaded (5xx, Anthropic's 529, 408, 409).
    #[error("{provider}: unavailable (HTTP {status}): {message}")]
    Unavailable {
        provider: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },

    /// No complete answer within the provider's `timeout_ms`.
    #[error("{provider}: no answer within {timeout:?}")]
    Timeout { provider: String, timeout: Duration },

    /// The request did not reach the provider, or the connection broke.
    #[error("{provider}: connection failed: {message}")]
    Connection { provider: String, message: String },

    /// A 2xx whose body is not the provider's response shape.
    #[error("{provider}: unreadable response: {reason}")]
    BadResponse { provider: String, reason: String },

    /// The model's answer is not the JSON object asked for, even after the repair request.
    #[error("{provider}: the answer is not the JSON object asked for, even after a repair request: {reason}")]
    BadAnswer { provider: String, reason: String },

    /// The shared requests/tokens window stayed full for longer than the client may wait.
    #[error("{provider}: the shared rate limit stayed full; next room in {retry_after:?}")]
    Throttled {
        provider: String,
        retry_after: Duration,
    },

    /// Out of balance, quota or spend limit: nothing changes until someone pays.
    #[error("{provider}: {reason} (HTTP {status}): {message}")]
    Billing {
        provider: String,
        status: u16,
        reason: &'static str,
        message: String,
    },

    /// The key was refused (401) or lacks permission (403).
    #[error("{provider}: {reason} (HTTP {status}): {message}")]
    Unauthorized {
        provider: String,
        status: u16,
        reason: &'static str,
        message: String,
    },

    /// The provider refused the request itself (400, 404, 422, …).
    #[error("{provider}: request refused (HTTP {status}): {message}")]
    Rejected {
        provider: String,
        status: u16,
        message: String,
    },

    /// The key in the variable cannot be sent (not a valid HTTP header value).
    #[error("the key in {variable} is not a valid HTTP header value")]
    InvalidKey { variable: String },

    /// A route names a provider the configuration does not have.
    #[error("no provider named {provider:?} is configured")]
    UnknownProvider { provider: String },
}

impl AiError {
    /// Whether another attempt of the job can succeed without anyone acting.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable { .. }
                | Self::Timeout { .. }
                | Self::Connection { .. }
                | Self::BadResponse { .. }
                | Self::BadAnswer { .. }
                | Self::Throttled { .. }
        )
    }

    /// How long the provider (or the shared limit) asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same call goes on to the route's next provider: the provider is
    /// busy or unreachable. A model that answered badly is not sent elsewhere.
    pub(crate) fn falls_back(&self) -> bool {
        self.retryable() && !matches!(self, Self::BadAnswer { .. })
    }

    /// A closed set of names, for metric labels and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::MissingKey { .. } => "missing_key",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout { .. } => "timeout",
            Self::Connection { .. } => "connection",
            Self::BadResponse { .. } => "bad_response",
            Self::BadAnswer { .. } => "bad_answer",
            Self::Throttled { .. } => "throttled",
            Self::Billing { .. } => "billing",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Rejected { .. } => "rejected",
            Self::InvalidKey { .. } => "invalid_key",
            Self::UnknownProvider { .. } => "unknown_provider",
        }
    }
}
