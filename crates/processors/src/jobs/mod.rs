//! The domain job types and their handlers, for the binaries to register.
//!
//! queue-core knows no domain job type: `conveyor-api` and `conveyor-scheduler`
//! build their catalog with [`catalog`] (diagnostics plus [`register_types`]), so
//! enqueue checks domain payloads; `conveyor-worker` adds [`register_handlers`]
//! with the clients in [`Deps`]. Handlers run at least once: each writes its outcome
//! through the store's idempotent writers.

mod batches;
mod epub;
mod errors;
mod llm;
mod prompts;
mod settings;
mod types;
mod wikidata;

use std::sync::Arc;

use queue_core::{Catalog, Conveyor, HandlerRegistry};

use crate::ai::{AiClient, AiMetrics, BuildError};
use crate::wikidata::{WikidataClient, WikidataError};

pub use settings::{DomainSettings, StorageConfig};
pub use types::*;

/// Adds the domain job types to a catalog.
pub fn register_types(catalog: &mut Catalog) {
    catalog
        .add::<EnrichFromWikidata>()
        .add::<FetchAvatar>()
        .add::<GeneratePersona>()
        .add::<GenerateBio>()
        .add::<GenerateTimeline>()
        .add::<GenerateSummary>()
        .add::<GenerateCefr>()
        .add::<ExtractCharacters>()
        .add::<GenerateChineseTitle>()
        .add::<ProcessEpub>()
        .add::<ExtractQuotes>()
        .add::<CategorizeQuote>()
        .add::<TranslateQuote>()
        .add::<BatchImportBooks>()
        .add::<BatchEnrichAuthors>()
        .add::<BatchGenerateCefr>();
}

/// The catalog of every job type the binaries know: diagnostics and domain.
pub fn catalog() -> Catalog {
    let mut catalog = Catalog::builtin();
    register_types(&mut catalog);
    catalog
}

/// What the domain handlers work with. Cheap to clone.
#[derive(Clone)]
pub struct Deps {
    /// Reads and writes the domain tables; enqueues follow-ups (its catalog must
    /// know the domain types).
    pub conveyor: Conveyor,
    pub ai: AiClient,
    pub wikidata: WikidataClient,
    pub storage: StorageConfig,
}

/// Why the handlers' clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error("language-model client: {0}")]
    Ai(#[from] BuildError),
    #[error("Wikidata client: {0}")]
    Wikidata(#[from] WikidataError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Deps {
    /// Builds the clients: the AI client shares its rate windows through the
    /// conveyor's Redis and counts into `metrics`.
    pub fn new(
        conveyor: Conveyor,
        settings: DomainSettings,
        metrics: &prometheus::Registry,
    ) -> Result<Self, DepsError> {
        let broker = conveyor.broker();
        let ai = AiClient::builder(settings.ai)
            .shared_limits(broker.connection(), broker.prefix())
            .metrics(AiMetrics::register(metrics)?)
            .build()?;
        let wikidata = WikidataClient::new(settings.wikidata)?;
        Ok(Self {
            conveyor,
            ai,
            wikidata,
            storage: settings.storage,
        })
    }
}

/// Registers the domain handlers.
pub fn register_handlers(registry: &mut HandlerRegistry, deps: Deps) {
    let deps = Arc::new(deps);
    llm::register(registry, deps.clone());
    wikidata::register(registry, deps.clone());
    epub::register(registry, deps);
    batches::register(registry);
}
