//! The batch job types: each names one child per entry of its payload (the
//! distinct ones, in order); the engine records them, waits for them and completes
//! the parent with the tally (see `queue_core::handler::BatchHandler`).

use std::collections::HashSet;
use std::hash::Hash;

use queue_core::{BatchHandler, HandlerRegistry, JobContext, JobError, JobType, NewJob};
use serde_json::{json, Value};

use super::types::*;

/// Every batch handler: it needs nothing but its payload.
#[derive(Clone, Copy)]
pub(crate) struct Batches;

pub(crate) fn register(registry: &mut HandlerRegistry) {
    registry
        .register_batch::<BatchImportBooks, _>(Batches)
        .register_batch::<BatchEnrichAuthors, _>(Batches)
        .register_batch::<BatchGenerateCefr, _>(Batches);
}

/// One child of type `J` per distinct entry, its payload built by `payload`.
fn children<J: JobType, T: Eq + Hash + Clone>(
    entries: &[T],
    payload: impl Fn(&T) -> Value,
) -> Vec<NewJob> {
    let mut seen = HashSet::with_capacity(entries.len());
    entries
        .iter()
        .filter(|e| seen.insert((*e).clone()))
        .map(|e| NewJob::new(J::QUEUE, J::NAME, payload(e)))
        .collect()
}

impl BatchHandler<BatchImportBooks> for Batches {
    async fn children(
        &self,
        p: BatchImportBooksPayload,
        _ctx: JobContext,
    ) -> Result<Vec<NewJob>, JobError> {
        Ok(children::<ProcessEpub, _>(&p.paths, |path| {
            if p.then.is_empty() {
                json!({ "path": path })
            } else {
                json!({ "path": path, "then": p.then })
            }
        }))
    }
}

impl BatchHandler<BatchEnrichAuthors> for Batches {
    async fn children(
        &self,
        p: BatchAuthorsPayload,
        _ctx: JobContext,
    ) -> Result<Vec<NewJob>, JobError> {
        Ok(children::<GeneratePersona, _>(
            &p.author_ids,
            |id| json!({ "authorId": id }),
        ))
    }
}

impl BatchHandler<BatchGenerateCefr> for Batches {
    async fn children(
        &self,
        p: BatchBooksPayload,
        _ctx: JobContext,
    ) -> Result<Vec<NewJob>, JobError> {
        Ok(children::<GenerateCefr, _>(
            &p.book_ids,
            |id| json!({ "bookId": id }),
        ))
    }
}
