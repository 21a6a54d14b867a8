//! The provider limits: `concurrency` per process (a semaphore), `requests_per_minute`
//! and `tokens_per_minute` across all worker processes (a Redis window per provider).
//!
//! Redis trouble fails open: the request goes ahead and a warning is logged. The
//! window only smooths our own traffic; the provider still enforces its limits with
//! 429s, which are retried, so a Redis outage costs some 429s rather than every call.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::time::Instant;

use super::config::ProviderConfig;
use super::error::AiError;

static RATE_WINDOW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("rate_window.lua")));

/// How long one Redis round trip may take before the limiter gives up on it.
const REDIS_DEADLINE: Duration = Duration::from_secs(2);

/// Where and how the shared windows are kept.
#[derive(Clone)]
pub(crate) struct SharedLimits {
    redis: ConnectionManager,
    prefix: String,
    window: Duration,
    max_wait: Duration,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("prefix", &self.prefix)
            .field("window", &self.window)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

impl SharedLimits {
    pub(crate) fn new(
        redis: ConnectionManager,
        prefix: String,
        window: Duration,
        max_wait: Duration,
    ) -> Self {
        Self {
            redis,
            prefix,
            window,
            max_wait,
        }
    }

    fn key(&self, provider: &str) -> String {
        format!("{}:ai:rate:{provider}", self.prefix)
    }

    fn window_ms(&self) -> u64 {
        (self.window.as_millis() as u64).max(1)
    }

    /// Waits until the provider's window has room for one more request and counts it.
    /// Waits at most `max_wait`, then returns `Throttled` (retryable).
    pub(crate) async fn acquire(&self, name: &str, config: &ProviderConfig) -> Result<(), AiError> {
        let started = Instant::now();
        loop {
            let mut redis = self.redis.clone();
            let mut invocation = RATE_WINDOW.key(self.key(name));
            let call = invocation
                .arg("acquire")
                .arg(self.window_ms())
                .arg(config.requests_per_minute)
                .arg(config.tokens_per_minute)
                .invoke_async::<u64>(&mut redis);
            let wait_ms = match tokio::time::timeout(REDIS_DEADLINE, call).await {
                Ok(Ok(wait_ms)) => wait_ms,
                Ok(Err(e)) => {
                    tracing::warn!(provider = name, error = %e, "shared rate limit unavailable; sending without it");
                    return Ok(());
                }
                Err(_) => {
                    tracing::warn!(
                        provider = name,
                        "shared rate limit timed out; sending without it"
                    );
                    return Ok(());
                }
            };
            if wait_ms == 0 {
                return Ok(());
            }
            let wait = Duration::from_millis(wait_ms);
            if started.elapsed() + wait > self.max_wait {
                return Err(AiError::Throttled {
                    provider: name.to_string(),
                    retry_after: wait,
                });
            }
            tracing::debug!(provider = name, wait_ms, "shared rate limit full; waiting");
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts an answer's tokens against the provider's window.
    pub(crate) async fn add_tokens(&self, name: &str, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let mut redis = self.redis.clone();
        let mut invocation = RATE_WINDOW.key(self.key(name));
        let call = invocation
            .arg("tokens")
            .arg(self.window_ms())
            .arg(tokens)
            .invoke_async::<u64>(&mut redis);
        match tokio::time::timeout(REDIS_DEADLINE, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(provider = name, error = %e, "could not count tokens in the shared rate limit")
            }
            Err(_) => {
                tracing::warn!(
                    provider = name,
                    "counting tokens in the shared rate limit timed out"
                )
            }
        }
    }
}
