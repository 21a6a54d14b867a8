//! Where API keys come from, and the one type that holds a key.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Looks up a key by the name of its environment variable. Read at each call, so a
/// key set or rotated in the environment is used without rebuilding the client.
#[derive(Clone)]
pub struct KeySource(Arc<Lookup>);

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl KeySource {
    /// The process environment (the default).
    pub fn env() -> Self {
        Self(Arc::new(|variable| std::env::var(variable).ok()))
    }

    /// Fixed keys, as `(variable, key)` pairs: lets tests avoid mutating the environment.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self(Arc::new(move |variable| map.get(variable).cloned()))
    }

    /// The key in `variable`; an empty or blank value counts as missing.
    pub(crate) fn get(&self, variable: &str) -> Option<ApiKey> {
        (self.0)(variable)
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(ApiKey)
    }
}

impl Default for KeySource {
    fn default() -> Self {
        Self::env()
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySource(..)")
    }
}

/// A key, kept out of `Debug` output.
#[derive(Clone)]
pub(crate) struct ApiKey(String);

impl ApiKey {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with any copy of the key replaced, for provider messages that echo it.
    pub(crate) fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_keys_are_missing_and_keys_are_redacted() {
        let keys = KeySource::from_pairs([("A", "sk-secret-1"), ("B", "  ")]);
        assert!(keys.get("B").is_none());
        assert!(keys.get("C").is_none());
        let key = keys.get("A").unwrap();
        assert_eq!(key.expose(), "sk-secret-1");
        assert!(!format!("{key:?} {keys:?}").contains("sk-secret-1"));
        assert_eq!(key.scrub("bad key sk-secret-1."), "bad key [redacted].");
    }
}
