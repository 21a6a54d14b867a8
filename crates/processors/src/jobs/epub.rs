//! PROCESS_EPUB: reads a book under `[storage] epub_dir` (on a blocking thread),
//! records it with its author and chapters, then enqueues the follow-ups `then`
//! names, in one bulk.

use std::sync::Arc;

use queue_core::store::domain::{NewBook, NewChapter};
use queue_core::{EnqueueError, Handler, HandlerRegistry, JobContext, JobError, NewJob};
use serde_json::{json, Value};

use super::errors::from_domain;
use super::types::{ProcessEpub, ProcessEpubPayload};
use super::Deps;
use crate::epub::{read_epub, EpubError};

#[derive(Clone)]
pub(crate) struct Epub(Arc<Deps>);

pub(crate) fn register(registry: &mut HandlerRegistry, deps: Arc<Deps>) {
    registry.register::<ProcessEpub, _>(Epub(deps));
}

fn from_epub(e: EpubError) -> JobError {
    if e.is_retryable() {
        JobError::retryable(e.to_string())
    } else {
        JobError::permanent(e.to_string())
    }
}

fn from_enqueue(e: EnqueueError) -> JobError {
    match e {
        EnqueueError::Store(e) => JobError::retryable(format!("enqueueing the follow-ups: {e}")),
        e => JobError::permanent(format!("enqueueing the follow-ups: {e}")),
    }
}

impl Handler<ProcessEpub> for Epub {
    async fn run(&self, p: ProcessEpubPayload, ctx: JobContext) -> Result<Value, JobError> {
        let storage = &self.0.storage;
        let (dir, limits, path) = (
            storage.epub_dir.clone(),
            storage.epub_limits(),
            p.path.clone(),
        );
        let book = tokio::task::spawn_blocking(move || read_epub(&dir, &path, limits))
            .await
            .map_err(|e| JobError::retryable(format!("the EPUB reader stopped: {e}")))?
            .map_err(from_epub)?;

        let identifier = book
            .identifier
            .clone()
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| p.path.clone());
        let new_book = NewBook {
            identifier,
            title: book.title.clone(),
            author: book.author.clone(),
            language: book.language.clone(),
            source_path: Some(p.path.clone()),
            chapters: book
                .chapters
                .into_iter()
                .map(|c| NewChapter {
                    title: c.title,
                    word_count: i32::try_from(c.word_count).unwrap_or(i32::MAX),
                    text: c.text,
                })
                .collect(),
        };
        let conveyor = &self.0.conveyor;
        let saved = conveyor
            .store()
            .upsert_book(&new_book)
            .await
            .map_err(from_domain)?;

        // Keyed by this job's run, so an attempt that repeats after its enqueue
        // succeeded finds the same follow-ups instead of adding more.
        let mut follow_ups = Vec::with_capacity(p.then.len());
        for (i, job_type) in p.then.iter().enumerate() {
            // A type named twice is enqueued once (its key would repeat anyway).
            if p.then[..i].contains(job_type) {
                continue;
            }
            let queue = conveyor.catalog().queue_of(job_type).ok_or_else(|| {
                JobError::permanent(format!("then: unknown job type {job_type:?}"))
            })?;
            let mut job = NewJob::new(queue, job_type.as_str(), json!({ "bookId": saved.book_id }));
            job.idempotency_key = Some(format!("{}:{}:{job_type}", ctx.job_id, ctx.run()));
            follow_ups.push(job);
        }
        let follow_up_ids = if follow_ups.is_empty() {
            Vec::new()
        } else {
            conveyor
                .enqueue_many(follow_ups)
                .await
                .map_err(from_enqueue)?
        };
        Ok(json!({
            "bookId": saved.book_id,
            "authorId": saved.author_id,
            "title": new_book.title,
            "language": new_book.language,
            "chapterCount": saved.chapter_count,
            "wordCount": saved.word_count,
            "followUps": follow_up_ids,
        }))
    }
}
