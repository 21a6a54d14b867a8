//! Language-model provider clients (OpenAI-compatible chat completions, Anthropic Messages).
//!
//! [`AiClient::ask`] sends a job type's prompt to the provider its route names, asks
//! for one JSON object and parses it into the caller's type, repairing a bad answer
//! once and falling back along the route when a provider is busy or has no key.
//! Around every request: a per-process `concurrency` bound and, with Redis, the
//! `requests_per_minute` / `tokens_per_minute` windows shared by all workers.
//! Errors are classified per provider ([`AiError::retryable`], [`AiError::retry_after`]).
//! Keys are read from the environment variables the configuration names, at each call,
//! and never appear in `Debug` output or error messages.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use processors::ai::{AiClient, AiConfig, AiMetrics};
//!
//! #[derive(serde::Deserialize)]
//! struct Bio {
//!     bio: String,
//! }
//!
//! let registry = prometheus::Registry::new();
//! let redis = redis::aio::ConnectionManager::new(redis::Client::open("redis://127.0.0.1")?).await?;
//! let client = AiClient::builder(AiConfig::from_sections(None, None)?)
//!     .shared_limits(redis, "conveyor")
//!     .metrics(AiMetrics::register(&registry)?)
//!     .build()?;
//! let answer = client
//!     .ask::<Bio>("GENERATE_BIO", "You write short biographies.", "Lu Xun")
//!     .await?;
//! println!("{} ({} output tokens)", answer.value.bio, answer.usage.output_tokens);
//! # Ok(())
//! # }
//! ```
//!
//! When Redis fails, the shared windows fail open: the request is sent and a warning
//! logged (see `limits.rs`), because the provider still enforces its own limits.

mod answer;
mod classify;
mod client;
mod config;
mod error;
mod keys;
mod limits;
mod metrics;
mod transport;
mod wire;

pub use client::{AiClient, AiClientBuilder, Answer, BuildError, Usage};
pub use config::{
    AiConfig, ConfigError, JobTypeRoute, ProviderConfig, ProviderErrors, ProviderKind,
    DEFAULT_PROVIDER, LLM_JOB_TYPES,
};
pub use error::AiError;
pub use keys::KeySource;
pub use metrics::AiMetrics;
