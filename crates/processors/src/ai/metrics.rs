//! The AI clients' Prometheus metrics. Labels come from closed sets: provider and
//! model names from the configuration, status from `AiError::class`.

use prometheus::{IntCounterVec, Opts, Registry};

/// Counters shared by every call of one client.
#[derive(Clone)]
pub struct AiMetrics {
    tokens: IntCounterVec,
    requests: IntCounterVec,
}

impl AiMetrics {
    /// Creates the counters and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let tokens = IntCounterVec::new(
            Opts::new(
                "conveyor_ai_tokens_total",
                "Tokens used by language-model requests, by provider, model and kind (input|output).",
            ),
            &["provider", "model", "kind"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "conveyor_ai_requests_total",
                "Language-model HTTP requests, by provider and status (ok or the error class).",
            ),
            &["provider", "status"],
        )?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        Ok(Self { tokens, requests })
    }

    pub(crate) fn request(&self, provider: &str, status: &str) {
        self.requests.with_label_values(&[provider, status]).inc();
    }

    pub(crate) fn tokens(&self, provider: &str, model: &str, input: u64, output: u64) {
        self.tokens
            .with_label_values(&[provider, model, "input"])
            .inc_by(input);
        self.tokens
            .with_label_values(&[provider, model, "output"])
            .inc_by(output);
    }
}

impl std::fmt::Debug for AiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AiMetrics")
    }
}
