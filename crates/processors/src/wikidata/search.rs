//! Finding a writer's item by name.

use super::client::{item_id, WikidataClient};
use super::error::WikidataError;
use super::wire::SearchResponse;

/// How many search hits are checked for being a human. Names of writers usually
/// match the person first; a few more cover disambiguation pages and namesakes
/// (works, places) without turning one search into a crawl.
const MAX_CANDIDATES: usize = 3;

impl WikidataClient {
    /// The id of the first item found for `name` that is a human (P31 = Q5), or
    /// `None` when the search finds none among its first hits.
    ///
    /// Candidates are checked in the search's order by reading their entity data,
    /// one at a time (Wikimedia asks for requests in series); a hit that has been
    /// deleted since it was indexed is passed over.
    pub async fn search_human(&self, name: &str) -> Result<Option<String>, WikidataError> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(None);
        }
        let url = self.url(
            "/w/api.php",
            &[
                ("action", "wbsearchentities"),
                ("search", name),
                ("language", "en"),
                ("type", "item"),
                ("format", "json"),
            ],
        );
        let found: SearchResponse = self
            .get_json(url, &format!("the search for {name:?}"))
            .await?;
        let candidates = found.search.iter().filter_map(|hit| item_id(&hit.id).ok());
        for id in candidates.take(MAX_CANDIDATES) {
            match self.fetch_entity(&id).await {
                Ok(entity) if entity.is_human() => return Ok(Some(entity.id)),
                Ok(_) => tracing::debug!(wikidata.id = %id, "search hit is not a human"),
                Err(WikidataError::NoSuchEntity { .. }) => {
                    tracing::debug!(wikidata.id = %id, "search hit no longer exists")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
