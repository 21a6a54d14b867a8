//! The parts of Wikidata's JSON the client reads. Unknown fields are ignored, and
//! values the client does not understand are kept as raw JSON, so that one odd
//! statement cannot make a whole entity unreadable.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

/// `wbsearchentities`: `{"searchinfo":…,"search":[{"id","label",…}],"success":1}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchResponse {
    #[serde(default)]
    pub(crate) search: Vec<SearchHit>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchHit {
    pub(crate) id: String,
}

/// `Special:EntityData/{id}.json` and `wbgetentities`: `{"entities":{id: entity}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct EntitiesResponse {
    #[serde(default, deserialize_with = "map_or_empty_list")]
    pub(crate) entities: HashMap<String, Entity>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Entity {
    #[serde(default)]
    pub(crate) id: String,
    /// Present (as `""`) when `wbgetentities` knows no such entity.
    #[serde(default)]
    pub(crate) missing: Option<serde_json::Value>,
    /// `wbgetentities` names the id asked for when it answers with a redirect's target.
    #[serde(default)]
    pub(crate) redirects: Option<Redirect>,
    #[serde(default, deserialize_with = "map_or_empty_list")]
    pub(crate) labels: HashMap<String, LangValue>,
    #[serde(default, deserialize_with = "map_or_empty_list")]
    pub(crate) descriptions: HashMap<String, LangValue>,
    #[serde(default, deserialize_with = "map_or_empty_list")]
    pub(crate) claims: HashMap<String, Vec<Statement>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Redirect {
    pub(crate) from: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LangValue {
    pub(crate) value: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Statement {
    #[serde(default)]
    pub(crate) mainsnak: Snak,
    /// `preferred`, `normal` or `deprecated`.
    #[serde(default)]
    pub(crate) rank: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Snak {
    /// `value`, or `somevalue` (unknown) / `novalue`, which carry no datavalue.
    #[serde(default)]
    pub(crate) snaktype: String,
    #[serde(default)]
    pub(crate) datavalue: Option<DataValue>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DataValue {
    pub(crate) value: serde_json::Value,
}

/// PHP serialises an empty map as `[]`; read that as an empty map.
fn map_or_empty_list<'de, D, T>(deserializer: D) -> Result<HashMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum MapOrList<T> {
        Map(HashMap<String, T>),
        List(Vec<serde::de::IgnoredAny>),
    }
    match MapOrList::deserialize(deserializer)? {
        MapOrList::Map(map) => Ok(map),
        MapOrList::List(list) if list.is_empty() => Ok(HashMap::new()),
        MapOrList::List(_) => Err(serde::de::Error::custom("expected a map, found a list")),
    }
}
