//! Reading an author's facts from an item's entity data.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::client::{item_id, WikidataClient};
use super::error::WikidataError;
use super::image::commons_file_url;
use super::wire::{EntitiesResponse, Entity};

/// `wbgetentities` takes at most 50 ids per request.
const MAX_IDS_PER_REQUEST: usize = 50;

/// What an author record takes from Wikidata; serialised as the ENRICH_FROM_WIKIDATA
/// job's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorFacts {
    /// The item's id after redirects (a merged item answers with its target).
    pub wikidata_id: String,
    /// Date of birth (P569) at its precision: `YYYY-MM-DD`, `YYYY-MM` or `YYYY`,
    /// with a leading `-` before the common era; `None` when absent or unknown.
    pub birth_date: Option<String>,
    /// Date of death (P570), as `birth_date`.
    pub death_date: Option<String>,
    /// English labels of the countries of citizenship (P27), in statement order.
    pub countries: Vec<String>,
    /// English labels of the occupations (P106), in statement order.
    pub occupations: Vec<String>,
    /// The English description.
    pub description: Option<String>,
    /// `{commons_base_url}/wiki/Special:FilePath/{file}` for the image (P18).
    pub image_url: Option<String>,
}

impl WikidataClient {
    /// Reads the item `id` (e.g. `Q42`) and the English labels of the items it
    /// links to as countries and occupations.
    ///
    /// Statements are read as Wikidata's truthy view does: preferred ones when a
    /// property has any, else normal ones; deprecated ones never. Linked items
    /// without an English label are left out of the lists.
    pub async fn entity(&self, id: &str) -> Result<AuthorFacts, WikidataError> {
        let entity = self.fetch_entity(id).await?;
        let countries = entity.item_ids("P27");
        let occupations = entity.item_ids("P106");
        let labels = self.labels(countries.iter().chain(&occupations)).await?;
        let labelled = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .filter_map(|id| labels.get(id).cloned())
                .collect()
        };
        Ok(AuthorFacts {
            birth_date: entity.date("P569"),
            death_date: entity.date("P570"),
            countries: labelled(&countries),
            occupations: labelled(&occupations),
            description: Entity::english(&entity.descriptions),
            image_url: entity
                .string("P18")
                .map(|file| commons_file_url(&self.config.commons_base_url, &file)),
            wikidata_id: entity.id,
        })
    }

    /// The item's entity data, following redirects: HTTP ones are followed by the
    /// client, and a merged item answers under its target's id. The returned
    /// entity's `id` is the final one.
    pub(crate) async fn fetch_entity(&self, id: &str) -> Result<Entity, WikidataError> {
        let id = item_id(id)?;
        let url = self.url(&format!("/wiki/Special:EntityData/{id}.json"), &[]);
        let not_found = || WikidataError::NoSuchEntity { id: id.clone() };
        let response: EntitiesResponse = match self.get_json(url, &format!("the entity {id}")).await
        {
            Ok(response) => response,
            // Special:EntityData answers 404 for an id it does not know.
            Err(
                WikidataError::Rejected { status: 404, .. } | WikidataError::NoSuchEntity { .. },
            ) => return Err(not_found()),
            Err(e) => return Err(e),
        };
        let mut entities = response.entities;
        let (key, mut entity) = match entities.remove(&id) {
            Some(entity) => (id.clone(), entity),
            // A redirect answers with exactly one entity, under the target's id.
            None if entities.len() == 1 => entities.into_iter().next().ok_or_else(not_found)?,
            None => return Err(not_found()),
        };
        if entity.missing.is_some() {
            return Err(not_found());
        }
        if entity.id.is_empty() {
            entity.id = key;
        }
        Ok(entity)
    }

    /// English labels of the given items, in as few `wbgetentities` requests as the
    /// 50-id limit allows. Items without an English label are absent from the map.
    async fn labels<'a>(
        &self,
        ids: impl Iterator<Item = &'a String>,
    ) -> Result<HashMap<String, String>, WikidataError> {
        let mut seen = HashSet::new();
        let unique: Vec<&str> = ids
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        let mut labels = HashMap::new();
        for batch in unique.chunks(MAX_IDS_PER_REQUEST) {
            let ids = batch.join("|");
            let url = self.url(
                "/w/api.php",
                &[
                    ("action", "wbgetentities"),
                    ("ids", &ids),
                    ("props", "labels"),
                    ("languages", "en"),
                    ("format", "json"),
                ],
            );
            let response: EntitiesResponse =
                self.get_json(url, &format!("the labels of {ids}")).await?;
            for (key, entity) in response.entities {
                let Some(label) = Entity::english(&entity.labels) else {
                    continue;
                };
                // A redirected item may be keyed by either id; answer for all of them.
                let redirected_from = entity.redirects.map(|r| r.from);
                for alias in [Some(entity.id), redirected_from].into_iter().flatten() {
                    if !alias.is_empty() && alias != key {
                        labels.insert(alias, label.clone());
                    }
                }
                labels.insert(key, label);
            }
        }
        Ok(labels)
    }
}
