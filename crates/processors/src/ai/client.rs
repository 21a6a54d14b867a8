//! The typed call: one JSON object asked of a job type's provider, with one repair
//! request, fallback along the route, and the provider limits around every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::answer::{parse_answer, repair_prompt, JSON_INSTRUCTION};
use super::classify::classify;
use super::config::{AiConfig, ConfigError, ProviderConfig};
use super::error::AiError;
use super::keys::{ApiKey, KeySource};
use super::limits::SharedLimits;
use super::metrics::AiMetrics;
use super::transport::{auth_headers, read, transport_error};
use super::wire::{endpoint, parse_reply, request_body, Reply, Role, Turn};

/// Tokens and the provider that answered, summed over every request of one call
/// (the repair request included). Serialises as a job result's `usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The provider's name in the configuration.
    pub provider: String,
    /// The model configured for that provider.
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A parsed answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub value: T,
    pub usage: Usage,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Calls language models for job handlers. Build one per process and clone it: the
/// per-provider `concurrency` bound is per client.
#[derive(Clone, Debug)]
pub struct AiClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: AiConfig,
    http: reqwest::Client,
    keys: KeySource,
    in_flight: HashMap<String, Arc<Semaphore>>,
    limits: Option<SharedLimits>,
    metrics: Option<AiMetrics>,
}

/// Options of an [`AiClient`].
pub struct AiClientBuilder {
    config: AiConfig,
    keys: KeySource,
    redis: Option<(ConnectionManager, String)>,
    window: Duration,
    max_wait: Duration,
    metrics: Option<AiMetrics>,
}

impl std::fmt::Debug for AiClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiClientBuilder")
            .field("config", &self.config)
            .field(
                "shared_limits",
                &self.redis.as_ref().map(|(_, prefix)| prefix),
            )
            .field("window", &self.window)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

impl AiClientBuilder {
    /// Where keys come from (default: the process environment).
    pub fn keys(mut self, keys: KeySource) -> Self {
        self.keys = keys;
        self
    }

    /// Shares `requests_per_minute` and `tokens_per_minute` with every process using
    /// the same Redis and key `prefix`. Without it only `concurrency` applies.
    pub fn shared_limits(mut self, redis: ConnectionManager, prefix: impl Into<String>) -> Self {
        self.redis = Some((redis, prefix.into()));
        self
    }

    /// The window the per-minute limits count over (default 60 s; shorter in tests).
    pub fn rate_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long a request may wait for room in the shared window before the call
    /// fails with a retryable `Throttled` (default 60 s).
    pub fn max_rate_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Counts requests and tokens into these metrics.
    pub fn metrics(mut self, metrics: AiMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Validates the configuration and builds the client.
    pub fn build(self) -> Result<AiClient, BuildError> {
        self.config.validate()?;
        let http = reqwest::Client::builder().build()?;
        let in_flight = self
            .config
            .providers
            .iter()
            .map(|(name, p)| {
                let permits = usize::try_from(p.concurrency).unwrap_or(Semaphore::MAX_PERMITS);
                (
                    name.clone(),
                    Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS))),
                )
            })
            .collect();
        let limits = self
            .redis
            .map(|(redis, prefix)| SharedLimits::new(redis, prefix, self.window, self.max_wait));
        Ok(AiClient {
            inner: Arc::new(Inner {
                config: self.config,
                http,
                keys: self.keys,
                in_flight,
                limits,
                metrics: self.metrics,
            }),
        })
    }
}

impl AiClient {
    /// A builder with keys from the environment, no shared limits and no metrics.
    pub fn builder(config: AiConfig) -> AiClientBuilder {
        AiClientBuilder {
            config,
            keys: KeySource::env(),
            redis: None,
            window: Duration::from_secs(60),
            max_wait: Duration::from_secs(60),
            metrics: None,
        }
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &AiConfig {
        &self.inner.config
    }

    /// Asks the job type's provider for one JSON object and parses it into `T`.
    ///
    /// An answer that does not parse gets one repair request; if that fails too the
    /// call fails with the retryable `BadAnswer`. A provider that is busy or
    /// unreachable (429, 5xx, 529, timeout, full shared window) or has no key passes
    /// the call to the next provider of the route. When none is left the primary's
    /// retryable error is returned (its `retry_after` matters most, as the next
    /// attempt starts there), or `MissingKey` naming the primary's variable when no
    /// provider had a key. A permanent error ends the call when it comes from the first
    /// provider tried; from a fallback it is logged and the chain goes on, so a broken
    /// fallback cannot fail for good a job whose primary is only busy.
    pub async fn ask<T: DeserializeOwned>(
        &self,
        job_type: &str,
        system: &str,
        user: &str,
    ) -> Result<Answer<T>, AiError> {
        let route = self.inner.config.route(job_type);
        let chain = route.chain();
        let primary = self.provider(chain[0])?;
        let mut tokens = Tokens::default();
        let mut held: Option<AiError> = None;
        let mut tried = false;

        for name in chain {
            let config = self.provider(name)?;
            let Some(key) = self.inner.keys.get(&config.api_key_env) else {
                tracing::warn!(
                    provider = name,
                    variable = %config.api_key_env,
                    "no API key for the provider; trying the next one"
                );
                continue;
            };
            let first = !tried;
            tried = true;
            match self
                .exchange::<T>(name, config, &key, system, user, &mut tokens)
                .await
            {
                Ok(value) => {
                    return Ok(Answer {
                        value,
                        usage: Usage {
                            provider: name.to_string(),
                            model: config.model.clone(),
                            input_tokens: tokens.input,
                            output_tokens: tokens.output,
                        },
                    })
                }
                Err(e) if e.falls_back() => {
                    tracing::warn!(provider = name, error = %e, "provider failed; trying the next one");
                    held.get_or_insert(e);
                }
                Err(e) if first || e.retryable() => return Err(e),
                Err(e) => {
                    tracing::warn!(provider = name, error = %e, "fallback provider refused the call");
                }
            }
        }
        Err(held.unwrap_or_else(|| AiError::MissingKey {
            variable: primary.api_key_env.clone(),
        }))
    }

    fn provider(&self, name: &str) -> Result<&ProviderConfig, AiError> {
        self.inner
            .config
            .providers
            .get(name)
            .ok_or_else(|| AiError::UnknownProvider {
                provider: name.to_string(),
            })
    }

    /// The question, and if its answer does not parse, one repair request.
    async fn exchange<T: DeserializeOwned>(
        &self,
        name: &str,
        config: &ProviderConfig,
        key: &ApiKey,
        system: &str,
        user: &str,
        tokens: &mut Tokens,
    ) -> Result<T, AiError> {
        let system = format!("{system}\n\n{JSON_INSTRUCTION}");
        let mut turns = vec![Turn {
            role: Role::User,
            content: user.to_string(),
        }];
        let reply = self
            .send(name, config, key, &system, &turns, tokens)
            .await?;
        let reason = match parse_answer::<T>(&reply.text) {
            Ok(value) => return Ok(value),
            Err(reason) => reason,
        };
        tracing::info!(provider = name, %reason, "answer did not parse; asking for a repair");
        let previous = if reply.text.trim().is_empty() {
            // Anthropic refuses empty turns; DeepSeek's JSON mode can answer blank.
            "(empty answer)".to_string()
        } else {
            reply.text
        };
        turns.push(Turn {
            role: Role::Assistant,
            content: previous,
        });
        turns.push(Turn {
            role: Role::User,
            content: repair_prompt(&reason),
        });
        let reply = self
            .send(name, config, key, &system, &turns, tokens)
            .await?;
        parse_answer::<T>(&reply.text).map_err(|reason| AiError::BadAnswer {
            provider: name.to_string(),
            reason,
        })
    }

    /// One HTTP request inside the provider's limits.
    async fn send(
        &self,
        name: &str,
        config: &ProviderConfig,
        key: &ApiKey,
        system: &str,
        turns: &[Turn],
        tokens: &mut Tokens,
    ) -> Result<Reply, AiError> {
        let headers = auth_headers(config, key)?;
        let semaphore = self.inner.in_flight.get(name).cloned();
        let _permit = match &semaphore {
            Some(s) => Some(s.acquire().await.map_err(|_| AiError::Connection {
                provider: name.to_string(),
                message: "the client is shutting down".to_string(),
            })?),
            None => None,
        };
        if let Some(limits) = &self.inner.limits {
            limits.acquire(name, config).await?;
        }

        let timeout = Duration::from_millis(config.timeout_ms);
        let request = self
            .inner
            .http
            .post(endpoint(config))
            .headers(headers)
            .timeout(timeout)
            .json(&request_body(config, system, turns));
        let outcome = match read(request).await {
            Err(e) => Err(transport_error(name, timeout, key, &e)),
            Ok((status, _, body)) if (200..300).contains(&status) => {
                parse_reply(config.kind, &body).map_err(|reason| AiError::BadResponse {
                    provider: name.to_string(),
                    reason: key.scrub(&reason),
                })
            }
            Ok((status, headers, body)) => {
                Err(classify(name, config, key, status, &headers, &body))
            }
        };

        if let Some(metrics) = &self.inner.metrics {
            let status = outcome.as_ref().map_or_else(|e| e.class(), |_| "ok");
            metrics.request(name, status);
        }
        if let Ok(reply) = &outcome {
            tokens.input += reply.input_tokens;
            tokens.output += reply.output_tokens;
            if let Some(metrics) = &self.inner.metrics {
                metrics.tokens(name, &config.model, reply.input_tokens, reply.output_tokens);
            }
            if let Some(limits) = &self.inner.limits {
                limits
                    .add_tokens(name, reply.input_tokens + reply.output_tokens)
                    .await;
            }
        }
        outcome
    }
}

#[derive(Debug, Default)]
struct Tokens {
    input: u64,
    output: u64,
}
