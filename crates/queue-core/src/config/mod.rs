//! Configuration: `config/conveyor.toml` (or `--config` / `CONVEYOR_CONFIG`), then
//! `CONVEYOR__SECTION__KEY` environment overrides, then the shorthands (`DATABASE_URL`, `REDIS_URL`, …; docs/configuration.md).
//! A bad value stops the binary at start with one line naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod sections;

pub use sections::*;

/// The default configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/conveyor.toml";

/// Everything a Conveyor binary can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Sections owned by other crates (providers, wikidata, storage, …),
    /// kept as raw values so this crate does not reject them.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A configuration value that cannot be used, naming its key.
#[derive(Debug, thiserror::Error)]
#[error("configuration key `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Loads the file at `path` (or `CONVEYOR_CONFIG`, or the default path), then the
    /// environment. A missing default file is allowed (built-in defaults apply); a
    /// missing file that was asked for is an error.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env_path = std::env::var_os("CONVEYOR_CONFIG").map(PathBuf::from);
        let explicit = path.map(Path::to_path_buf).or(env_path);
        let file = match &explicit {
            Some(p) if !p.exists() => {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", p.display()),
                ))
            }
            Some(p) => p.clone(),
            None => PathBuf::from(DEFAULT_CONFIG_PATH),
        };
        Self::from_figment(Figment::new().merge(Toml::file(file)))
    }

    /// Builds from a TOML string plus the environment (used by tests).
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(toml)))
    }

    fn from_figment(base: Figment) -> Result<Self, ConfigError> {
        let mut figment = base.merge(Env::prefixed("CONVEYOR__").split("__"));
        for (var, key) in [
            ("DATABASE_URL", "database.url"),
            ("REDIS_URL", "redis.url"),
            ("CONVEYOR_API_ADDR", "api.addr"),
            ("CONVEYOR_REDIS_PREFIX", "redis.prefix"),
        ] {
            if let Ok(value) = std::env::var(var) {
                figment = figment.merge(Serialized::default(key, value));
            }
        }
        for (var, key) in [
            ("CONVEYOR_ADMIN_TOKENS", "api.admin_tokens"),
            ("CONVEYOR_VIEWER_TOKENS", "api.viewer_tokens"),
        ] {
            if let Ok(value) = std::env::var(var) {
                let tokens: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect();
                figment = figment.merge(Serialized::default(key, tokens));
            }
        }
        let config: Config = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            ConfigError::new(
                if key.is_empty() {
                    "(file)".to_string()
                } else {
                    key
                },
                e.kind.to_string(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(['{', '}']) {
            return Err(ConfigError::new(
                "redis.prefix",
                "must be non-empty and contain no braces",
            ));
        }
        if self.database.max_connections < 2 {
            return Err(ConfigError::new(
                "database.max_connections",
                "must be at least 2",
            ));
        }
        for (key, value) in [
            ("api.max_streams_per_token", self.api.max_streams_per_token),
            ("api.max_streams", self.api.max_streams),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        if self.api.max_streams_per_token > self.api.max_streams {
            return Err(ConfigError::new(
                "api.max_streams_per_token",
                "must not exceed api.max_streams",
            ));
        }
        let w = &self.worker;
        for (key, value) in [
            ("worker.lease_ms", w.lease_ms),
            ("worker.heartbeat_ms", w.heartbeat_ms),
            ("worker.reconcile_ms", w.reconcile_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        if w.heartbeat_ms >= w.lease_ms {
            return Err(ConfigError::new(
                "worker.heartbeat_ms",
                "must be shorter than worker.lease_ms",
            ));
        }
        for (key, value) in [
            ("scheduler.tick_ms", self.scheduler.tick_ms),
            (
                "scheduler.retention_interval_ms",
                self.scheduler.retention_interval_ms,
            ),
            ("scheduler.batch_size", u64::from(self.scheduler.batch_size)),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        for (name, q) in &self.queues {
            let key = |k: &str| format!("queues.{name}.{k}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError::new(
                    format!("queues.{name}"),
                    "queue names use letters, digits, '_' and '-'",
                ));
            }
            if let Err((sub, message)) = q.concurrency.check() {
                return Err(ConfigError::new(
                    format!("{}{sub}", key("concurrency")),
                    message,
                ));
            }
            if let Some((t, _)) = q.type_concurrency.iter().find(|(_, n)| **n == 0) {
                return Err(ConfigError::new(
                    key(&format!("type_concurrency.{t}")),
                    "must be at least 1",
                ));
            }
            if q.attempts == 0 {
                return Err(ConfigError::new(key("attempts"), "must be at least 1"));
            }
            if q.timeout_ms == 0 {
                return Err(ConfigError::new(
                    key("timeout_ms"),
                    "must be greater than 0",
                ));
            }
            if q.rate_limit.max > 0 && q.rate_limit.duration_ms == 0 {
                return Err(ConfigError::new(
                    key("rate_limit.duration_ms"),
                    "must be greater than 0",
                ));
            }
            q.backoff
                .validate()
                .map_err(|m| ConfigError::new(key("backoff"), m))?;
        }
        Ok(())
    }

    /// The settings of `queue`, if it is configured.
    pub fn queue(&self, queue: &str) -> Option<&QueueConfig> {
        self.queues.get(queue)
    }
}

#[cfg(test)]
mod tests {
    //! nextest runs every test in its own process, so setting variables is safe here.
    use super::*;

    const FILE: &str = r#"
        [queues.book_data]
        concurrency = 5
        backoff = { type = "exponential", delay_ms = 5000, max_delay_ms = 600000, jitter = true }
        rate_limit = { max = 10, duration_ms = 1000 }
    "#;

    #[test]
    fn concurrency_is_a_number_or_an_adaptive_table() {
        let config = Config::from_toml_str(
            "[queues.a]\nconcurrency = 7\n[queues.b]\nconcurrency = { min = 2, max = 20, step = 2 }",
        )
        .unwrap();
        assert_eq!(
            config.queue("a").unwrap().concurrency,
            Concurrency::Fixed(7)
        );
        let b = config.queue("b").unwrap().concurrency;
        assert_eq!(
            b,
            Concurrency::Adaptive(AdaptiveConcurrency {
                min: 2,
                max: 20,
                step: 2,
                scale_up_interval_ms: 5_000,
                scale_down_interval_ms: 30_000,
            })
        );
        assert_eq!((b.initial(), b.max()), (2, 20));
    }

    #[test]
    fn environment_overrides_nested_keys_and_shorthands() {
        std::env::set_var("CONVEYOR__QUEUES__BOOK_DATA__CONCURRENCY", "9");
        std::env::set_var("CONVEYOR__WORKER__LEASE_MS", "45000");
        std::env::set_var("DATABASE_URL", "postgres://db.example/conveyor");
        std::env::set_var("CONVEYOR_ADMIN_TOKENS", "one, two ,");
        let config = Config::from_toml_str(FILE).unwrap();
        assert_eq!(
            config.queue("book_data").unwrap().concurrency,
            Concurrency::Fixed(9)
        );
        assert_eq!(
            config.queue("book_data").unwrap().rate_limit,
            RateLimit {
                max: 10,
                duration_ms: 1000
            }
        );
        assert_eq!(config.worker.lease_ms, 45_000);
        assert_eq!(config.database.url, "postgres://db.example/conveyor");
        assert_eq!(
            config.api.admin_tokens,
            vec!["one".to_string(), "two".to_string()]
        );
    }

    #[test]
    fn a_bad_value_is_one_error_naming_its_key() {
        std::env::set_var("CONVEYOR__QUEUES__BOOK_DATA__CONCURRENCY", "many");
        let err = Config::from_toml_str(FILE).unwrap_err();
        assert_eq!(err.key, "queues.book_data.concurrency", "{err}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
    }

    #[test]
    fn invalid_settings_name_their_key() {
        let cases = [
            ("[queues.q]\nconcurrency = 0", "queues.q.concurrency"),
            (
                "[queues.q]\nconcurrency = { min = 4, max = 2 }",
                "queues.q.concurrency.max",
            ),
            (
                "[queues.q]\nconcurrency = { min = 1, max = 2, step = 0 }",
                "queues.q.concurrency.step",
            ),
            (
                "[queues.q]\nconcurrency = { min = 1, max = 2, steps = 1 }",
                "queues.q.concurrency",
            ),
            ("[queues.q]\nattempts = 0", "queues.q.attempts"),
            (
                "[queues.q]\nbackoff = { type = \"exponential\", delay_ms = 10, max_delay_ms = 5 }",
                "queues.q.backoff",
            ),
            ("[queues.\"a:b\"]\nconcurrency = 1", "queues.a:b"),
            ("[worker]\nheartbeat_ms = 40000", "worker.heartbeat_ms"),
            ("[worker]\nlease_msec = 1", "worker"),
            ("[scheduler]\ntick_ms = 0", "scheduler.tick_ms"),
            ("[api]\nmax_streams = 0", "api.max_streams"),
            (
                "[api]\nmax_streams_per_token = 0",
                "api.max_streams_per_token",
            ),
            (
                "[api]\nmax_streams = 4\nmax_streams_per_token = 8",
                "api.max_streams_per_token",
            ),
            ("[scheduler]\nmisfire = \"often\"", "scheduler.misfire"),
        ];
        for (toml, key) in cases {
            let err = Config::from_toml_str(toml).unwrap_err();
            assert!(
                err.key.starts_with(key),
                "{toml:?}: got key {} ({err})",
                err.key
            );
        }
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/conveyor.toml"))).unwrap_err();
        assert_eq!(err.key, "--config");
    }
}
