//! The language-model handlers: a prompt from the rows, one typed answer, the
//! outcome written through the store's idempotent writers, and as result the
//! answer's keys plus `usage`.

use std::sync::Arc;

use queue_core::store::domain::{Author, Book, CefrLevel, NewQuote, Quote};
use queue_core::{Handler, HandlerRegistry, JobContext, JobError, JobType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::errors::{from_ai, from_domain, from_store, not_found};
use super::prompts::{
    author_facts, book_excerpt, quote_text, truncate_chars, BOOK_TEXT_BUDGET, TITLE_TEXT_BUDGET,
};
use super::types::*;
use super::Deps;
use crate::ai::{Answer, Usage};

/// Every LLM handler; one value serves all of their job types.
#[derive(Clone)]
pub(crate) struct Llm(Arc<Deps>);

pub(crate) fn register(registry: &mut HandlerRegistry, deps: Arc<Deps>) {
    let llm = Llm(deps);
    registry
        .register::<GeneratePersona, _>(llm.clone())
        .register::<GenerateBio, _>(llm.clone())
        .register::<GenerateTimeline, _>(llm.clone())
        .register::<GenerateSummary, _>(llm.clone())
        .register::<GenerateCefr, _>(llm.clone())
        .register::<ExtractCharacters, _>(llm.clone())
        .register::<GenerateChineseTitle, _>(llm.clone())
        .register::<ExtractQuotes, _>(llm.clone())
        .register::<CategorizeQuote, _>(llm.clone())
        .register::<TranslateQuote, _>(llm);
}

/// `answer`'s keys at top level, plus `usage`.
fn result(answer: &impl Serialize, usage: &Usage) -> Value {
    let mut value = serde_json::to_value(answer).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("usage".into(), json!(usage));
    }
    value
}

impl Llm {
    async fn ask<T: DeserializeOwned>(
        &self,
        ctx: &JobContext,
        job_type: &str,
        system: &str,
        user: &str,
    ) -> Result<Answer<T>, JobError> {
        tokio::select! {
            answer = self.0.ai.ask::<T>(job_type, system, user) => answer.map_err(from_ai),
            _ = ctx.cancelled() => Err(JobError::retryable("cancelled while waiting for the model")),
        }
    }

    async fn author(&self, id: Uuid) -> Result<Author, JobError> {
        let store = self.0.conveyor.store();
        store
            .get_author(id)
            .await
            .map_err(from_store)?
            .ok_or_else(|| not_found("author", id))
    }

    async fn book(&self, id: Uuid) -> Result<Book, JobError> {
        let store = self.0.conveyor.store();
        store
            .get_book(id)
            .await
            .map_err(from_store)?
            .ok_or_else(|| not_found("book", id))
    }

    /// The book and its text cut to `budget` characters.
    async fn book_with_text(&self, id: Uuid, budget: usize) -> Result<(Book, String), JobError> {
        let book = self.book(id).await?;
        let chapters = self
            .0
            .conveyor
            .store()
            .book_chapters(id)
            .await
            .map_err(from_store)?;
        let text = book_excerpt(&book, &chapters, budget);
        Ok((book, text))
    }

    async fn quote(&self, id: Uuid) -> Result<Quote, JobError> {
        let store = self.0.conveyor.store();
        store
            .get_quote(id)
            .await
            .map_err(from_store)?
            .ok_or_else(|| not_found("quote", id))
    }
}

const JSON_ONLY: &str = "Answer with one JSON object and nothing else.";

#[derive(Debug, Serialize, Deserialize)]
struct PersonaAnswer {
    persona: String,
    traits: Vec<String>,
}

impl Handler<GeneratePersona> for Llm {
    async fn run(&self, p: AuthorPayload, ctx: JobContext) -> Result<Value, JobError> {
        let author = self.author(p.author_id).await?;
        let system = format!(
            "You describe a writer's persona: how they think, write and speak, in one \
             paragraph, and their main traits. {JSON_ONLY} Keys: \"persona\" (string), \
             \"traits\" (array of short strings)."
        );
        let answer: Answer<PersonaAnswer> = self
            .ask(&ctx, GeneratePersona::NAME, &system, &author_facts(&author))
            .await?;
        let stored = json!({ "persona": answer.value.persona, "traits": answer.value.traits });
        self.0
            .conveyor
            .store()
            .set_author_persona(author.id, &stored)
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct BioAnswer {
    bio: String,
}

impl Handler<GenerateBio> for Llm {
    async fn run(&self, p: AuthorPayload, ctx: JobContext) -> Result<Value, JobError> {
        let author = self.author(p.author_id).await?;
        let system = format!(
            "You write a short, factual biography of a writer (at most 200 words). \
             {JSON_ONLY} Key: \"bio\" (string)."
        );
        let answer: Answer<BioAnswer> = self
            .ask(&ctx, GenerateBio::NAME, &system, &author_facts(&author))
            .await?;
        self.0
            .conveyor
            .store()
            .set_author_bio(author.id, &answer.value.bio)
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TimelineEvent {
    year: i32,
    event: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TimelineAnswer {
    events: Vec<TimelineEvent>,
}

impl Handler<GenerateTimeline> for Llm {
    async fn run(&self, p: AuthorPayload, ctx: JobContext) -> Result<Value, JobError> {
        let author = self.author(p.author_id).await?;
        let system = format!(
            "You list the main events of a writer's life in order. {JSON_ONLY} Key: \
             \"events\" (array of {{\"year\": integer, \"event\": string}})."
        );
        let answer: Answer<TimelineAnswer> = self
            .ask(
                &ctx,
                GenerateTimeline::NAME,
                &system,
                &author_facts(&author),
            )
            .await?;
        self.0
            .conveyor
            .store()
            .set_author_timeline(author.id, &json!(answer.value.events))
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SummaryAnswer {
    summary: String,
}

impl Handler<GenerateSummary> for Llm {
    async fn run(&self, p: BookPayload, ctx: JobContext) -> Result<Value, JobError> {
        let (book, text) = self.book_with_text(p.book_id, BOOK_TEXT_BUDGET).await?;
        let system = format!(
            "You summarise a book in one paragraph (at most 200 words) from its text, \
             which may be cut short. {JSON_ONLY} Key: \"summary\" (string)."
        );
        let answer: Answer<SummaryAnswer> = self
            .ask(&ctx, GenerateSummary::NAME, &system, &text)
            .await?;
        self.0
            .conveyor
            .store()
            .set_book_summary(book.id, &answer.value.summary)
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CefrAnswer {
    level: CefrLevel,
    rationale: String,
}

impl Handler<GenerateCefr> for Llm {
    async fn run(&self, p: BookPayload, ctx: JobContext) -> Result<Value, JobError> {
        let (book, text) = self.book_with_text(p.book_id, BOOK_TEXT_BUDGET).await?;
        let system = format!(
            "You judge the CEFR reading level a learner needs for a book, from its text. \
             {JSON_ONLY} Keys: \"level\" (one of A1, A2, B1, B2, C1, C2), \"rationale\" \
             (one or two sentences)."
        );
        let answer: Answer<CefrAnswer> = self.ask(&ctx, GenerateCefr::NAME, &system, &text).await?;
        self.0
            .conveyor
            .store()
            .set_book_cefr(book.id, answer.value.level)
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Character {
    name: String,
    description: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CharactersAnswer {
    characters: Vec<Character>,
}

impl Handler<ExtractCharacters> for Llm {
    async fn run(&self, p: BookPayload, ctx: JobContext) -> Result<Value, JobError> {
        let (book, text) = self.book_with_text(p.book_id, BOOK_TEXT_BUDGET).await?;
        let system = format!(
            "You list the main characters of a book, from its text. {JSON_ONLY} Key: \
             \"characters\" (array of {{\"name\": string, \"description\": string}})."
        );
        let answer: Answer<CharactersAnswer> = self
            .ask(&ctx, ExtractCharacters::NAME, &system, &text)
            .await?;
        self.0
            .conveyor
            .store()
            .set_book_characters(book.id, &json!(answer.value.characters))
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChineseTitleAnswer {
    chinese_title: String,
}

impl Handler<GenerateChineseTitle> for Llm {
    async fn run(&self, p: BookPayload, ctx: JobContext) -> Result<Value, JobError> {
        let (book, text) = self.book_with_text(p.book_id, TITLE_TEXT_BUDGET).await?;
        let system = format!(
            "You give a book the title it has, or would have, in Simplified Chinese. \
             {JSON_ONLY} Key: \"chineseTitle\" (string)."
        );
        let answer: Answer<ChineseTitleAnswer> = self
            .ask(&ctx, GenerateChineseTitle::NAME, &system, &text)
            .await?;
        self.0
            .conveyor
            .store()
            .set_book_chinese_title(book.id, &answer.value.chinese_title)
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Deserialize)]
struct FoundQuote {
    text: String,
    #[serde(default)]
    chapter: Option<i32>,
}

#[derive(Debug, Deserialize)]
struct QuotesAnswer {
    quotes: Vec<FoundQuote>,
}

/// Longest quote kept, in characters: a quote is a sentence or two, not a page.
const MAX_QUOTE_CHARS: usize = 2_000;

impl Handler<ExtractQuotes> for Llm {
    async fn run(&self, p: ExtractQuotesPayload, ctx: JobContext) -> Result<Value, JobError> {
        let max = p.max();
        let (book, text) = self.book_with_text(p.book_id, BOOK_TEXT_BUDGET).await?;
        let system = format!(
            "You pick at most {max} memorable quotes from a book's text, word for word. \
             {JSON_ONLY} Key: \"quotes\" (array of {{\"text\": string, \"chapter\": \
             integer, the chapter number shown}})."
        );
        let answer: Answer<QuotesAnswer> =
            self.ask(&ctx, ExtractQuotes::NAME, &system, &text).await?;
        let quotes: Vec<NewQuote> = answer
            .value
            .quotes
            .iter()
            .take(max as usize)
            .map(|q| NewQuote {
                text: truncate_chars(&q.text, MAX_QUOTE_CHARS).to_string(),
                chapter: q.chapter,
            })
            .collect();
        let ids = self
            .0
            .conveyor
            .store()
            .insert_quotes(book.id, &quotes)
            .await
            .map_err(from_domain)?;
        Ok(json!({ "quoteIds": ids, "usage": answer.usage }))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CategoriesAnswer {
    categories: Vec<String>,
}

impl Handler<CategorizeQuote> for Llm {
    async fn run(&self, p: QuotePayload, ctx: JobContext) -> Result<Value, JobError> {
        let quote = self.quote(p.quote_id).await?;
        let system = format!(
            "You give a quote from a book one to five short lowercase categories (themes \
             such as love, death, courage). {JSON_ONLY} Key: \"categories\" (array of \
             strings)."
        );
        let answer: Answer<CategoriesAnswer> = self
            .ask(&ctx, CategorizeQuote::NAME, &system, &quote_text(&quote))
            .await?;
        self.0
            .conveyor
            .store()
            .set_quote_categories(quote.id, &answer.value.categories)
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TranslationAnswer {
    translation: String,
}

impl Handler<TranslateQuote> for Llm {
    async fn run(&self, p: TranslateQuotePayload, ctx: JobContext) -> Result<Value, JobError> {
        let quote = self.quote(p.quote_id).await?;
        let language = p.target_language();
        let system = format!(
            "You translate a quote from a book into the language with the tag \
             \"{language}\", keeping its tone. {JSON_ONLY} Key: \"translation\" (string)."
        );
        let answer: Answer<TranslationAnswer> = self
            .ask(&ctx, TranslateQuote::NAME, &system, &quote_text(&quote))
            .await?;
        self.0
            .conveyor
            .store()
            .set_quote_translation(quote.id, language, &answer.value.translation)
            .await
            .map_err(from_domain)?;
        Ok(result(&answer.value, &answer.usage))
    }
}
