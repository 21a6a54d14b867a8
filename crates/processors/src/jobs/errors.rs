//! How the clients' and the store's errors become job outcomes.

use queue_core::store::domain::DomainError;
use queue_core::{JobError, StoreError};

use crate::ai::AiError;

/// Retryable errors wait at least what the provider asked; `MissingKey` is
/// permanent and names the variable (its message does).
pub(crate) fn from_ai(e: AiError) -> JobError {
    match (e.retryable(), e.retry_after()) {
        (true, Some(after)) => JobError::retry_after(after, e.to_string()),
        (true, None) => JobError::retryable(e.to_string()),
        (false, _) => JobError::permanent(e.to_string()),
    }
}

/// A missing row or a value the tables refuse is final; the database may come back.
pub(crate) fn from_domain(e: DomainError) -> JobError {
    match e {
        DomainError::Store(e) => from_store(e),
        e => JobError::permanent(e.to_string()),
    }
}

pub(crate) fn from_store(e: StoreError) -> JobError {
    JobError::retryable(format!("database: {e}"))
}

/// The permanent failure for a row that does not exist.
pub(crate) fn not_found(kind: &str, id: uuid::Uuid) -> JobError {
    JobError::permanent(format!("{kind} {id} not found"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ai_errors_become_outcomes() {
        let throttled = AiError::RateLimited {
            provider: "deepseek".into(),
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert!(matches!(
            from_ai(throttled),
            JobError::RetryAfter { after, .. } if after == Duration::from_secs(7)
        ));
        let timeout = AiError::Timeout {
            provider: "qwen".into(),
            timeout: Duration::from_secs(60),
        };
        assert!(matches!(from_ai(timeout), JobError::Retryable(_)));
        let missing = AiError::MissingKey {
            variable: "DEEPSEEK_API_KEY".into(),
        };
        assert!(
            matches!(from_ai(missing), JobError::Permanent(m) if m.contains("DEEPSEEK_API_KEY"))
        );
        let refused = AiError::Unauthorized {
            provider: "deepseek".into(),
            status: 401,
            reason: "key refused",
            message: "bad key".into(),
        };
        assert!(matches!(from_ai(refused), JobError::Permanent(_)));
    }

    #[test]
    fn a_missing_row_is_permanent_and_named() {
        let id = uuid::Uuid::nil();
        let e = from_domain(DomainError::NotFound { kind: "quote", id });
        assert!(matches!(e, JobError::Permanent(m) if m == format!("quote {id} not found")));
    }
}
