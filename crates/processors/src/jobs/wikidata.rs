//! ENRICH_FROM_WIKIDATA and FETCH_AVATAR: an author's facts from their Wikidata
//! item, and their portrait from Commons, written to the author row.

use std::sync::Arc;

use queue_core::store::domain::{Author, AuthorEnrichment};
use queue_core::{Handler, HandlerRegistry, JobContext, JobError};
use serde_json::{json, Value};
use uuid::Uuid;

use super::errors::{from_domain, from_store, not_found};
use super::types::{AuthorPayload, EnrichFromWikidata, FetchAvatar};
use super::Deps;
use crate::wikidata::{DownloadError, WikidataError};

/// Both handlers; one value serves the two job types.
#[derive(Clone)]
pub(crate) struct Wikidata(Arc<Deps>);

pub(crate) fn register(registry: &mut HandlerRegistry, deps: Arc<Deps>) {
    let handler = Wikidata(deps);
    registry
        .register::<EnrichFromWikidata, _>(handler.clone())
        .register::<FetchAvatar, _>(handler);
}

fn from_wikidata(e: WikidataError) -> JobError {
    match (e.retryable(), e.retry_after()) {
        (true, Some(after)) => JobError::retry_after(after, e.to_string()),
        (true, None) => JobError::retryable(e.to_string()),
        (false, _) => JobError::permanent(e.to_string()),
    }
}

fn from_download(e: DownloadError) -> JobError {
    match (e.retryable(), e.retry_after()) {
        (true, Some(after)) => JobError::retry_after(after, e.to_string()),
        (true, None) => JobError::retryable(e.to_string()),
        (false, _) => JobError::permanent(e.to_string()),
    }
}

impl Wikidata {
    async fn author(&self, id: Uuid) -> Result<Author, JobError> {
        self.0
            .conveyor
            .store()
            .get_author(id)
            .await
            .map_err(from_store)?
            .ok_or_else(|| not_found("author", id))
    }
}

impl Handler<EnrichFromWikidata> for Wikidata {
    async fn run(&self, p: AuthorPayload, ctx: JobContext) -> Result<Value, JobError> {
        let author = self.author(p.author_id).await?;
        let client = &self.0.wikidata;
        let work = async {
            let qid = match &author.wikidata_id {
                Some(qid) => qid.clone(),
                None => client
                    .search_human(&author.name)
                    .await
                    .map_err(from_wikidata)?
                    .ok_or_else(|| {
                        JobError::permanent(format!(
                            "Wikidata has no human named {:?} (author {})",
                            author.name, author.id
                        ))
                    })?,
            };
            client.entity(&qid).await.map_err(from_wikidata)
        };
        let facts = tokio::select! {
            facts = work => facts?,
            _ = ctx.cancelled() => return Err(JobError::retryable("cancelled while asking Wikidata")),
        };
        let enrichment = AuthorEnrichment {
            wikidata_id: facts.wikidata_id.clone(),
            birth_date: facts.birth_date.clone(),
            death_date: facts.death_date.clone(),
            countries: facts.countries.clone(),
            occupations: facts.occupations.clone(),
            description: facts.description.clone(),
            image_url: facts.image_url.clone(),
        };
        self.0
            .conveyor
            .store()
            .enrich_author(author.id, &enrichment)
            .await
            .map_err(from_domain)?;
        Ok(json!(facts))
    }
}

impl Handler<FetchAvatar> for Wikidata {
    async fn run(&self, p: AuthorPayload, ctx: JobContext) -> Result<Value, JobError> {
        let author = self.author(p.author_id).await?;
        let Some(url) = author.image_url.as_deref() else {
            return Err(JobError::permanent(format!(
                "author {} has no imageUrl (ENRICH_FROM_WIKIDATA sets it when Wikidata has a portrait)",
                author.id
            )));
        };
        let storage = &self.0.storage;
        // Named by the author's id: a second run replaces the same file.
        let name = author.id.to_string();
        let download = self.0.wikidata.download_image(
            url,
            &storage.avatar_dir,
            &name,
            storage.avatar_max_bytes,
        );
        // Cancelling drops the download, which removes its partial file.
        let saved = tokio::select! {
            saved = download => saved.map_err(from_download)?,
            _ = ctx.cancelled() => return Err(JobError::retryable("cancelled while downloading the avatar")),
        };
        let avatar_path = saved.path.to_string_lossy().into_owned();
        self.0
            .conveyor
            .store()
            .set_author_avatar(author.id, &avatar_path)
            .await
            .map_err(from_domain)?;
        Ok(json!({
            "avatarPath": avatar_path,
            "contentType": saved.content_type,
            "bytes": saved.bytes,
        }))
    }
}
