//! The `[wikidata]` configuration section.

use serde::{Deserialize, Serialize};

/// Where Wikidata and Commons live and how Conveyor introduces itself to them.
/// Every key has a default, so a file may set only the keys it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WikidataConfig {
    /// Wikidata's origin: `{base_url}/w/api.php` and `{base_url}/wiki/Special:EntityData/{id}.json`.
    pub base_url: String,
    /// Commons' origin: image URLs are `{commons_base_url}/wiki/Special:FilePath/{file}`.
    pub commons_base_url: String,
    /// Sent on every request: Wikimedia blocks clients without a descriptive agent and a contact.
    pub user_agent: String,
    /// Limit on a whole request, body included, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for WikidataConfig {
    fn default() -> Self {
        Self {
            base_url: "https://www.wikidata.org".to_owned(),
            commons_base_url: "https://commons.wikimedia.org".to_owned(),
            user_agent: "Conveyor/0.1 (admin@example.org)".to_owned(),
            timeout_ms: 30_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_their_defaults() {
        let config: WikidataConfig =
            serde_json::from_str(r#"{"base_url": "http://127.0.0.1:9"}"#).unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:9");
        assert_eq!(config.commons_base_url, "https://commons.wikimedia.org");
        assert_eq!(config.user_agent, "Conveyor/0.1 (admin@example.org)");
        assert_eq!(config.timeout_ms, 30_000);
    }
}
