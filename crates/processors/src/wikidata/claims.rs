//! Reading statements the way Wikidata's "truthy" view does: the preferred statements
//! of a property when it has any, else its normal ones; deprecated ones never.

use super::time::format_time;
use super::wire::{Entity, Statement};

impl Entity {
    /// The property's best-ranked statements, in statement order.
    fn best(&self, property: &str) -> Vec<&Statement> {
        let statements = self.claims.get(property).map(Vec::as_slice).unwrap_or(&[]);
        let preferred: Vec<_> = statements
            .iter()
            .filter(|s| s.rank == "preferred")
            .collect();
        if !preferred.is_empty() {
            return preferred;
        }
        statements
            .iter()
            .filter(|s| s.rank != "deprecated")
            .collect()
    }

    /// The values of the property's best statements, skipping unknown and no value.
    fn values(&self, property: &str) -> impl Iterator<Item = &serde_json::Value> {
        self.best(property).into_iter().filter_map(|s| {
            let snak = &s.mainsnak;
            (snak.snaktype == "value").then_some(())?;
            snak.datavalue.as_ref().map(|d| &d.value)
        })
    }

    /// Ids of the items the property links to (`wikibase-entityid` values).
    pub(crate) fn item_ids(&self, property: &str) -> Vec<String> {
        self.values(property)
            .filter_map(|v| v.get("id")?.as_str())
            .map(str::to_owned)
            .collect()
    }

    /// The first best date of the property, at its precision.
    pub(crate) fn date(&self, property: &str) -> Option<String> {
        self.values(property).find_map(|v| {
            let time = v.get("time")?.as_str()?;
            let precision = v.get("precision")?.as_u64()?;
            format_time(time, precision)
        })
    }

    /// The first best string value of the property (e.g. a Commons file name).
    pub(crate) fn string(&self, property: &str) -> Option<String> {
        self.values(property)
            .find_map(|v| v.as_str())
            .map(str::to_owned)
    }

    /// Whether any non-deprecated "instance of" statement says "human".
    pub(crate) fn is_human(&self) -> bool {
        self.claims.get("P31").is_some_and(|statements| {
            statements.iter().any(|s| {
                s.rank != "deprecated"
                    && s.mainsnak
                        .datavalue
                        .as_ref()
                        .and_then(|d| d.value.get("id")?.as_str())
                        == Some("Q5")
            })
        })
    }

    /// The English value of a label or description map.
    pub(crate) fn english(
        map: &std::collections::HashMap<String, super::wire::LangValue>,
    ) -> Option<String> {
        map.get("en").map(|v| v.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(claims: serde_json::Value) -> Entity {
        serde_json::from_value(json!({"id": "Q1", "claims": claims})).unwrap()
    }

    fn item(id: &str, rank: &str) -> serde_json::Value {
        json!({"mainsnak": {"snaktype": "value", "datavalue": {"value": {"id": id}, "type": "wikibase-entityid"}}, "rank": rank})
    }

    #[test]
    fn preferred_statements_win_and_deprecated_ones_never_count() {
        let e = entity(json!({
            "P106": [item("Q1", "normal"), item("Q2", "preferred"), item("Q3", "preferred")],
            "P27": [item("Q4", "deprecated"), item("Q5", "normal"), item("Q6", "normal")],
        }));
        assert_eq!(e.item_ids("P106"), ["Q2", "Q3"]);
        assert_eq!(e.item_ids("P27"), ["Q5", "Q6"]);
        assert!(e.item_ids("P999").is_empty());
    }

    #[test]
    fn unknown_values_are_skipped_and_an_unknown_only_date_is_none() {
        let e = entity(json!({
            "P570": [{"mainsnak": {"snaktype": "somevalue"}, "rank": "normal"}],
            "P569": [
                {"mainsnak": {"snaktype": "novalue"}, "rank": "normal"},
                {"mainsnak": {"snaktype": "value", "datavalue": {"value": {"time": "+1952-03-11T00:00:00Z", "precision": 11}}}, "rank": "normal"},
            ],
        }));
        assert_eq!(e.date("P570"), None);
        assert_eq!(e.date("P569").as_deref(), Some("1952-03-11"));
    }

    #[test]
    fn human_means_instance_of_q5() {
        assert!(entity(json!({"P31": [item("Q5", "normal")]})).is_human());
        assert!(!entity(json!({"P31": [item("Q5", "deprecated")]})).is_human());
        assert!(!entity(json!({"P31": [item("Q4167410", "normal")]})).is_human());
        assert!(!entity(json!([])).is_human());
    }
}
