//! Reading configuration values leniently and naming the key when they do not fit:
//! numbers given as strings (environment overrides are strings), lists given as a
//! comma-separated string, booleans as "true"/"false", and the merge of a section
//! over its defaults, key by key.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::ConfigError;

pub(super) fn to_object<T: Serialize>(map: &BTreeMap<String, T>) -> serde_json::Map<String, Value> {
    map.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::to_value(v).unwrap_or(Value::Object(Default::default())),
            )
        })
        .collect()
}

/// Lays `over` onto `base`: tables merge key by key, anything else replaces.
pub(super) fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (k, v) in over {
                merge(base.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (base, over) => *base = over.clone(),
    }
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    key: &str,
    value: Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." || path.is_empty() {
            key.to_string()
        } else {
            format!("{key}.{path}")
        };
        ConfigError::new(key, e.into_inner().to_string())
    })
}

/// A list written as an array or comma-separated (as environment variables carry it).
pub(super) fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(items) => items,
        Raw::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNumber {
    Number(u64),
    Text(String),
}

fn to_u64<E: serde::de::Error>(raw: RawNumber) -> Result<u64, E> {
    match raw {
        RawNumber::Number(n) => Ok(n),
        RawNumber::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| E::custom(format!("{text:?} is not a non-negative integer"))),
    }
}

/// A number, also when an environment variable carried it as text.
pub(super) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    to_u64(RawNumber::deserialize(d)?)
}

pub(super) fn optional_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<RawNumber>::deserialize(d)?.map(to_u64).transpose()
}

pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bool(b) => Ok(b),
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(serde::de::Error::custom(format!("{t:?} is not a boolean"))),
        },
    }
}
