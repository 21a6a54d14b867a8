//! The domain sections of the configuration: `[providers.*]`,
//! `[job_types.*]`, `[wikidata]` and `[storage]`. queue-core keeps them as raw
//! values (`Config::other`), already merged from the file and the `CONVEYOR__`
//! environment; they are read here, over their defaults, key by key.

use std::path::PathBuf;

use queue_core::config::ConfigError;
use queue_core::Config;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ai::AiConfig;
use crate::epub::EpubLimits;
use crate::wikidata::WikidataConfig;

/// The `[storage]` section: where books are read from and avatars written to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// PROCESS_EPUB paths are relative to this directory and may not leave it.
    pub epub_dir: PathBuf,
    /// FETCH_AVATAR saves `{authorId}.{ext}` here.
    pub avatar_dir: PathBuf,
    pub avatar_max_bytes: u64,
    /// One archive entry, uncompressed.
    pub epub_max_entry_bytes: u64,
    /// The whole archive, uncompressed.
    pub epub_max_total_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            epub_dir: PathBuf::from("data/epub"),
            avatar_dir: PathBuf::from("data/avatars"),
            avatar_max_bytes: 5_242_880,
            epub_max_entry_bytes: 67_108_864,
            epub_max_total_bytes: 536_870_912,
        }
    }
}

impl StorageConfig {
    /// The reader's limits (compression ratio at most 100).
    pub fn epub_limits(&self) -> EpubLimits {
        EpubLimits {
            max_entry_bytes: self.epub_max_entry_bytes,
            max_total_bytes: self.epub_max_total_bytes,
            ..EpubLimits::default()
        }
    }
}

/// Everything the domain handlers are configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSettings {
    pub ai: AiConfig,
    pub wikidata: WikidataConfig,
    pub storage: StorageConfig,
}

impl DomainSettings {
    /// Reads and checks the domain sections of `config`; the error names the key.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let section = |name: &str| config.other.get(name);
        let ai =
            AiConfig::from_sections(section("providers"), section("job_types")).map_err(|e| {
                ConfigError {
                    key: e.key,
                    message: e.reason,
                }
            })?;
        let wikidata: WikidataConfig = read_section("wikidata", section("wikidata"))?;
        for (key, url) in [
            ("wikidata.base_url", &wikidata.base_url),
            ("wikidata.commons_base_url", &wikidata.commons_base_url),
        ] {
            check_http_url(key, url)?;
        }
        if wikidata.user_agent.trim().is_empty() {
            return Err(error("wikidata.user_agent", "must not be empty"));
        }
        if wikidata.timeout_ms == 0 {
            return Err(error("wikidata.timeout_ms", "must be greater than 0"));
        }
        let storage: StorageConfig = read_section("storage", section("storage"))?;
        for (key, value) in [
            ("storage.avatar_max_bytes", storage.avatar_max_bytes),
            ("storage.epub_max_entry_bytes", storage.epub_max_entry_bytes),
            ("storage.epub_max_total_bytes", storage.epub_max_total_bytes),
        ] {
            if value == 0 {
                return Err(error(key, "must be greater than 0"));
            }
        }
        for (key, dir) in [
            ("storage.epub_dir", &storage.epub_dir),
            ("storage.avatar_dir", &storage.avatar_dir),
        ] {
            if dir.as_os_str().is_empty() {
                return Err(error(key, "must not be empty"));
            }
        }
        Ok(Self {
            ai,
            wikidata,
            storage,
        })
    }
}

fn error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// Deserializes one section (absent: all defaults), naming the key that does not fit.
fn read_section<T: DeserializeOwned + Default>(
    name: &str,
    raw: Option<&Value>,
) -> Result<T, ConfigError> {
    let Some(raw) = raw else {
        return Ok(T::default());
    };
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{name}.{path}")
        };
        error(key, e.into_inner().to_string())
    })
}

fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(error(key, format!("{url:?} is not an http(s) URL"))),
    }
}

#[cfg(test)]
mod tests {
    //! nextest runs every test in its own process, so setting variables is safe here.
    use super::*;

    #[test]
    fn defaults_apply_without_any_section() {
        let settings = DomainSettings::from_config(&Config::from_toml_str("").unwrap()).unwrap();
        assert_eq!(settings.storage, StorageConfig::default());
        assert_eq!(settings.wikidata, WikidataConfig::default());
        assert_eq!(settings.ai, AiConfig::default());
    }

    #[test]
    fn environment_overrides_reach_the_domain_sections() {
        std::env::set_var(
            "CONVEYOR__PROVIDERS__DEEPSEEK__BASE_URL",
            "http://127.0.0.1:9/v1",
        );
        std::env::set_var(
            "CONVEYOR__JOB_TYPES__EXTRACT_CHARACTERS__FALLBACK",
            "deepseek,qwen",
        );
        std::env::set_var("CONVEYOR__STORAGE__AVATAR_MAX_BYTES", "1024");
        std::env::set_var("CONVEYOR__WIKIDATA__BASE_URL", "http://127.0.0.1:9");
        let toml = "[storage]\nepub_dir = \"/srv/books\"\n";
        let settings = DomainSettings::from_config(&Config::from_toml_str(toml).unwrap()).unwrap();
        assert_eq!(
            settings.ai.providers["deepseek"].base_url,
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(settings.ai.providers["deepseek"].model, "deepseek-v4-flash");
        assert_eq!(
            settings.ai.job_types["EXTRACT_CHARACTERS"].fallback,
            vec!["deepseek".to_string(), "qwen".to_string()]
        );
        assert_eq!(settings.storage.avatar_max_bytes, 1024);
        assert_eq!(settings.storage.epub_dir, PathBuf::from("/srv/books"));
        assert_eq!(settings.wikidata.base_url, "http://127.0.0.1:9");
    }

    #[test]
    fn the_shipped_file_holds_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/conveyor.toml");
        let config = Config::load(Some(std::path::Path::new(path))).unwrap();
        let settings = DomainSettings::from_config(&config).unwrap();
        assert_eq!(settings.ai, AiConfig::default());
        assert_eq!(settings.wikidata, WikidataConfig::default());
        assert_eq!(settings.storage, StorageConfig::default());
    }

    #[test]
    fn a_bad_value_names_its_key_on_one_line() {
        let cases = [
            (
                "[storage]\navatar_max_bytes = \"big\"",
                "storage.avatar_max_bytes",
            ),
            (
                "[storage]\nepub_max_entry_bytes = 0",
                "storage.epub_max_entry_bytes",
            ),
            ("[storage]\nepub_folder = \"x\"", "storage"),
            ("[wikidata]\nbase_url = \"ftp://x\"", "wikidata.base_url"),
            ("[wikidata]\ntimeout_ms = \"soon\"", "wikidata.timeout_ms"),
            (
                "[providers.deepseek]\ntimeout_ms = \"x\"",
                "providers.deepseek.timeout_ms",
            ),
        ];
        for (toml, key) in cases {
            let config = Config::from_toml_str(toml).unwrap();
            let err = DomainSettings::from_config(&config).unwrap_err();
            assert!(err.key.starts_with(key), "{toml:?}: got {err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }
}
