//! Provider and routing configuration: the `[providers.*]` and `[job_types.*]`
//! sections of the configuration, with their defaults applied key by key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod values;

use values::{merge, parse, to_object};

/// The provider every LLM job type without a route of its own uses.
pub const DEFAULT_PROVIDER: &str = "deepseek";

/// The LLM job types, each given a route by default.
pub const LLM_JOB_TYPES: [&str; 10] = [
    "GENERATE_PERSONA",
    "GENERATE_BIO",
    "GENERATE_TIMELINE",
    "GENERATE_SUMMARY",
    "GENERATE_CEFR",
    "EXTRACT_CHARACTERS",
    "GENERATE_CHINESE_TITLE",
    "EXTRACT_QUOTES",
    "CATEGORIZE_QUOTE",
    "TRANSLATE_QUOTE",
];

/// Which wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// `POST {base_url}/chat/completions`, bearer auth (OpenAI, DeepSeek, Qwen).
    Openai,
    /// `POST {base_url}/v1/messages`, `x-api-key` and `anthropic-version` headers.
    Anthropic,
}

/// Error handling that differs between providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderErrors {
    /// Error codes (`error.code` or `error.type`) that this provider uses for a
    /// passing throttle, so they are retried although they read as permanent.
    #[serde(deserialize_with = "values::list")]
    pub retryable_codes: Vec<String>,
}

/// One `[providers.NAME]` table. The key itself is never here: only the name of
/// the environment variable that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key_env: String,
    pub model: String,
    #[serde(default = "default_timeout_ms", deserialize_with = "values::number")]
    pub timeout_ms: u64,
    /// In-flight requests per worker process.
    #[serde(default = "default_concurrency", deserialize_with = "values::number")]
    pub concurrency: u64,
    /// Shared by all worker processes (through Redis).
    #[serde(default = "default_rpm", deserialize_with = "values::number")]
    pub requests_per_minute: u64,
    /// Shared by all worker processes (through Redis); counted from each answer's usage.
    #[serde(default = "default_tpm", deserialize_with = "values::number")]
    pub tokens_per_minute: u64,
    /// Upper bound on the answer's length; Anthropic requires one (4096 when unset),
    /// OpenAI-compatible requests omit it when unset.
    #[serde(default, deserialize_with = "values::optional_number")]
    pub max_tokens: Option<u64>,
    /// Send `response_format: {type: json_object}` (OpenAI-compatible only); turn off
    /// for a compatible server that rejects it.
    #[serde(default = "yes", deserialize_with = "values::boolean")]
    pub json_mode: bool,
    #[serde(default)]
    pub errors: ProviderErrors,
}

fn default_timeout_ms() -> u64 {
    60_000
}
fn default_concurrency() -> u64 {
    4
}
fn default_rpm() -> u64 {
    60
}
fn default_tpm() -> u64 {
    200_000
}
fn yes() -> bool {
    true
}

impl ProviderConfig {
    /// A provider with every optional key at its default.
    pub fn new(
        kind: ProviderKind,
        base_url: impl Into<String>,
        api_key_env: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            base_url: base_url.into(),
            api_key_env: api_key_env.into(),
            model: model.into(),
            timeout_ms: default_timeout_ms(),
            concurrency: default_concurrency(),
            requests_per_minute: default_rpm(),
            tokens_per_minute: default_tpm(),
            max_tokens: None,
            json_mode: true,
            errors: ProviderErrors::default(),
        }
    }
}

/// One `[job_types.NAME]` table: the provider a job type uses, then its fallbacks in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTypeRoute {
    pub provider: String,
    #[serde(default, deserialize_with = "values::list")]
    pub fallback: Vec<String>,
}

impl JobTypeRoute {
    /// A route to `provider`, then to each of `fallback` in order.
    pub fn new(provider: impl Into<String>, fallback: &[&str]) -> Self {
        Self {
            provider: provider.into(),
            fallback: fallback.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The provider, then each fallback, without repeats.
    pub fn chain(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(1 + self.fallback.len());
        for name in std::iter::once(&self.provider).chain(&self.fallback) {
            if !out.contains(&name.as_str()) {
                out.push(name);
            }
        }
        out
    }
}

/// The providers and the job-type routes together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiConfig {
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Keys are job type names in upper case.
    pub job_types: BTreeMap<String, JobTypeRoute>,
}

/// A configuration value that cannot be used, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration key {key}: {reason}")]
pub struct ConfigError {
    /// Dotted path, e.g. `providers.qwen.base_url`.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl Default for AiConfig {
    fn default() -> Self {
        let mut providers = BTreeMap::new();
        providers.insert(
            "deepseek".to_string(),
            ProviderConfig::new(
                ProviderKind::Openai,
                "https://api.deepseek.com",
                "DEEPSEEK_API_KEY",
                "deepseek-v4-flash",
            ),
        );
        let mut qwen = ProviderConfig::new(
            ProviderKind::Openai,
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "DASHSCOPE_API_KEY",
            "qwen-plus",
        );
        // DashScope's token throttle answers 429 insufficient_quota and passes within a minute.
        qwen.errors.retryable_codes = vec!["insufficient_quota".to_string()];
        providers.insert("qwen".to_string(), qwen);
        providers.insert(
            "anthropic".to_string(),
            ProviderConfig::new(
                ProviderKind::Anthropic,
                "https://api.anthropic.com",
                "ANTHROPIC_API_KEY",
                "claude-sonnet-4-5",
            ),
        );

        let job_types = LLM_JOB_TYPES
            .iter()
            .map(|&job_type| {
                let route = match job_type {
                    "GENERATE_CHINESE_TITLE" | "TRANSLATE_QUOTE" => JobTypeRoute::new("qwen", &[]),
                    "EXTRACT_CHARACTERS" => JobTypeRoute::new("anthropic", &["deepseek"]),
                    _ => JobTypeRoute::new(DEFAULT_PROVIDER, &[]),
                };
                (job_type.to_string(), route)
            })
            .collect();
        Self {
            providers,
            job_types,
        }
    }
}

impl AiConfig {
    /// Builds the configuration from the raw `providers` and `job_types` sections
    /// (as a file plus environment overrides produced them), laid key by key over
    /// the defaults: a section that sets one key of one provider leaves every other
    /// key, provider and job type at its default. Job type names are case-insensitive;
    /// lists may be written comma-separated. The result is validated.
    pub fn from_sections(
        providers: Option<&Value>,
        job_types: Option<&Value>,
    ) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let mut provider_values = to_object(&defaults.providers);
        if let Some(raw) = providers {
            let raw = raw
                .as_object()
                .ok_or_else(|| ConfigError::new("providers", "must be a table"))?;
            for (name, value) in raw {
                merge(
                    provider_values
                        .entry(name.clone())
                        .or_insert(Value::Object(Default::default())),
                    value,
                );
            }
        }
        let mut route_values = to_object(&defaults.job_types);
        if let Some(raw) = job_types {
            let raw = raw
                .as_object()
                .ok_or_else(|| ConfigError::new("job_types", "must be a table"))?;
            for (name, value) in raw {
                merge(
                    route_values
                        .entry(name.to_ascii_uppercase())
                        .or_insert(Value::Object(Default::default())),
                    value,
                );
            }
        }

        let mut config = Self {
            providers: BTreeMap::new(),
            job_types: BTreeMap::new(),
        };
        for (name, value) in provider_values {
            let key = format!("providers.{name}");
            config.providers.insert(name, parse(&key, value)?);
        }
        for (name, value) in route_values {
            let key = format!("job_types.{name}");
            config.job_types.insert(name, parse(&key, value)?);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, p) in &self.providers {
            let key = |field: &str| format!("providers.{name}.{field}");
            if name.is_empty() {
                return Err(ConfigError::new("providers", "a provider name is empty"));
            }
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://"))
                || reqwest::Url::parse(&p.base_url).is_err()
            {
                return Err(ConfigError::new(
                    key("base_url"),
                    format!("{:?} is not an http(s) URL", p.base_url),
                ));
            }
            if p.api_key_env.trim().is_empty() || p.api_key_env.contains('=') {
                return Err(ConfigError::new(
                    key("api_key_env"),
                    "must name an environment variable",
                ));
            }
            if p.model.trim().is_empty() {
                return Err(ConfigError::new(key("model"), "must not be empty"));
            }
            for (field, value) in [
                ("timeout_ms", p.timeout_ms),
                ("concurrency", p.concurrency),
                ("requests_per_minute", p.requests_per_minute),
                ("tokens_per_minute", p.tokens_per_minute),
            ] {
                if value == 0 {
                    return Err(ConfigError::new(key(field), "must be at least 1"));
                }
            }
            if p.concurrency > u32::MAX as u64 {
                return Err(ConfigError::new(key("concurrency"), "is too large"));
            }
            if p.max_tokens == Some(0) {
                return Err(ConfigError::new(key("max_tokens"), "must be at least 1"));
            }
        }
        for (job_type, route) in &self.job_types {
            if *job_type != job_type.to_ascii_uppercase() {
                return Err(ConfigError::new(
                    format!("job_types.{job_type}"),
                    "job type names are kept in upper case",
                ));
            }
            if !self.providers.contains_key(&route.provider) {
                return Err(ConfigError::new(
                    format!("job_types.{job_type}.provider"),
                    format!("no provider named {:?}", route.provider),
                ));
            }
            if let Some(bad) = route
                .fallback
                .iter()
                .find(|f| !self.providers.contains_key(*f))
            {
                return Err(ConfigError::new(
                    format!("job_types.{job_type}.fallback"),
                    format!("no provider named {bad:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The route of a job type (any case); job types without one use the default provider.
    pub fn route(&self, job_type: &str) -> JobTypeRoute {
        self.job_types
            .get(&job_type.to_ascii_uppercase())
            .cloned()
            .unwrap_or_else(|| JobTypeRoute::new(DEFAULT_PROVIDER, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_the_spec() {
        let c = AiConfig::default();
        c.validate().unwrap();
        assert_eq!(c.providers["deepseek"].model, "deepseek-v4-flash");
        assert_eq!(c.providers["deepseek"].timeout_ms, 60_000);
        assert_eq!(c.providers["deepseek"].concurrency, 4);
        assert_eq!(c.providers["deepseek"].requests_per_minute, 60);
        assert_eq!(c.providers["deepseek"].tokens_per_minute, 200_000);
        assert_eq!(
            c.providers["qwen"].errors.retryable_codes,
            ["insufficient_quota"]
        );
        assert!(c.providers["deepseek"].errors.retryable_codes.is_empty());
        assert_eq!(c.providers["anthropic"].kind, ProviderKind::Anthropic);
        assert_eq!(c.route("translate_quote").provider, "qwen");
        assert_eq!(c.route("GENERATE_CHINESE_TITLE").provider, "qwen");
        assert_eq!(
            c.route("EXTRACT_CHARACTERS").chain(),
            ["anthropic", "deepseek"]
        );
        assert_eq!(c.route("GENERATE_BIO").chain(), ["deepseek"]);
        assert_eq!(c.route("SOMETHING_NEW").provider, "deepseek");
    }

    #[test]
    fn sections_apply_key_by_key() {
        let providers = json!({
            "deepseek": {"base_url": "http://127.0.0.1:1", "concurrency": "2"},
            "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1",
                       "api_key_env": "OPENAI_API_KEY", "model": "gpt-4o-mini"}
        });
        let job_types = json!({"extract_characters": {"fallback": "deepseek, openai"}});
        let c = AiConfig::from_sections(Some(&providers), Some(&job_types)).unwrap();
        let ds = &c.providers["deepseek"];
        assert_eq!(ds.base_url, "http://127.0.0.1:1");
        assert_eq!(ds.concurrency, 2);
        assert_eq!(ds.model, "deepseek-v4-flash");
        assert_eq!(c.providers["openai"].timeout_ms, 60_000);
        assert_eq!(c.providers["qwen"], AiConfig::default().providers["qwen"]);
        let route = c.route("EXTRACT_CHARACTERS");
        assert_eq!(route.provider, "anthropic");
        assert_eq!(route.fallback, ["deepseek", "openai"]);
    }

    #[test]
    fn errors_name_the_key() {
        let bad = |providers: Value, job_types: Value| {
            AiConfig::from_sections(Some(&providers), Some(&job_types))
                .unwrap_err()
                .key
        };
        assert_eq!(
            bad(json!({"qwen": {"base_url": "ftp://x"}}), json!({})),
            "providers.qwen.base_url"
        );
        assert_eq!(
            bad(json!({"qwen": {"timeout_ms": "soon"}}), json!({})),
            "providers.qwen.timeout_ms"
        );
        assert_eq!(
            bad(json!({"qwen": {"concurrency": 0}}), json!({})),
            "providers.qwen.concurrency"
        );
        assert_eq!(
            bad(json!({"mistral": {"kind": "openai"}}), json!({})),
            "providers.mistral"
        );
        assert_eq!(
            bad(json!({"qwen": {"kind": "gemini"}}), json!({})),
            "providers.qwen.kind"
        );
        assert_eq!(
            bad(json!({}), json!({"GENERATE_BIO": {"fallback": ["nobody"]}})),
            "job_types.GENERATE_BIO.fallback"
        );
        assert_eq!(
            bad(json!({}), json!({"NEW_JOB": {"fallback": ["qwen"]}})),
            "job_types.NEW_JOB"
        );
    }
}
