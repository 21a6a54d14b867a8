//! The domain job types: names, queues and typed payloads, checked at
//! enqueue (API and library alike) and again when a worker decodes them.

use queue_core::JobType;
use serde::Deserialize;
use uuid::Uuid;

use crate::epub::check_relative_path;

pub const AUTHOR_DATA: &str = "author_data";
pub const BOOK_DATA: &str = "book_data";
pub const QUOTE_DATA: &str = "quote_data";
pub const BATCH_ORCHESTRATOR: &str = "batch_orchestrator";

/// Most entries a batch payload takes (each becomes one child).
pub const MAX_BATCH_ENTRIES: usize = queue_core::client::MAX_BULK;

/// The job types PROCESS_EPUB's `then` may name: they all take `{bookId}`.
pub const BOOK_JOB_TYPES: [&str; 5] = [
    "GENERATE_SUMMARY",
    "GENERATE_CEFR",
    "EXTRACT_CHARACTERS",
    "GENERATE_CHINESE_TITLE",
    "EXTRACT_QUOTES",
];

/// EXTRACT_QUOTES' `max` when absent, and its bounds.
pub const DEFAULT_MAX_QUOTES: u32 = 20;
pub const MAX_QUOTES_LIMIT: u32 = 100;

/// TRANSLATE_QUOTE's `targetLanguage` when absent.
pub const DEFAULT_TARGET_LANGUAGE: &str = "zh";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorPayload {
    pub author_id: Uuid,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BookPayload {
    pub book_id: Uuid,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtractQuotesPayload {
    pub book_id: Uuid,
    pub max: Option<u32>,
}

impl ExtractQuotesPayload {
    pub fn max(&self) -> u32 {
        self.max.unwrap_or(DEFAULT_MAX_QUOTES)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuotePayload {
    pub quote_id: Uuid,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TranslateQuotePayload {
    pub quote_id: Uuid,
    pub target_language: Option<String>,
}

impl TranslateQuotePayload {
    pub fn target_language(&self) -> &str {
        self.target_language
            .as_deref()
            .unwrap_or(DEFAULT_TARGET_LANGUAGE)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessEpubPayload {
    /// Relative to `[storage] epub_dir`.
    pub path: String,
    /// Book job types to enqueue for the imported book.
    #[serde(default)]
    pub then: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchImportBooksPayload {
    /// EPUBs relative to `[storage] epub_dir`: one PROCESS_EPUB child each.
    pub paths: Vec<String>,
    /// Book job types every child enqueues for its book (PROCESS_EPUB's `then`).
    #[serde(default)]
    pub then: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchAuthorsPayload {
    /// One GENERATE_PERSONA child each.
    pub author_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchBooksPayload {
    /// One GENERATE_CEFR child each.
    pub book_ids: Vec<Uuid>,
}

/// A batch names 1 to [`MAX_BATCH_ENTRIES`] entries.
fn check_entries<T>(field: &str, entries: &[T]) -> Result<(), (String, String)> {
    if entries.is_empty() || entries.len() > MAX_BATCH_ENTRIES {
        return Err((
            field.into(),
            format!(
                "must hold 1 to {MAX_BATCH_ENTRIES} entries (it holds {})",
                entries.len()
            ),
        ));
    }
    Ok(())
}

/// `then` names only book job types.
fn check_then(then: &[String]) -> Result<(), (String, String)> {
    for (i, job_type) in then.iter().enumerate() {
        if !BOOK_JOB_TYPES.contains(&job_type.as_str()) {
            return Err((
                format!("then[{i}]"),
                format!(
                    "{job_type:?} is not a book job type (one of {})",
                    BOOK_JOB_TYPES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A language tag such as `zh`, `en-US` or `zh-Hant`: letters, digits and `-`.
fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 35
        && tag.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric())
        })
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

macro_rules! job_type {
    ($(#[$doc:meta])* $name:ident, $job:literal, $queue:expr, $payload:ty) => {
        $(#[$doc])*
        pub struct $name;
        impl JobType for $name {
            const NAME: &'static str = $job;
            const QUEUE: &'static str = $queue;
            type Payload = $payload;
        }
    };
}

job_type!(
    /// An author's enrichment from their Wikidata item.
    EnrichFromWikidata, "ENRICH_FROM_WIKIDATA", AUTHOR_DATA, AuthorPayload);
job_type!(
    /// The download of an author's portrait.
    FetchAvatar, "FETCH_AVATAR", AUTHOR_DATA, AuthorPayload);
job_type!(
    GeneratePersona,
    "GENERATE_PERSONA",
    AUTHOR_DATA,
    AuthorPayload
);
job_type!(GenerateBio, "GENERATE_BIO", AUTHOR_DATA, AuthorPayload);
job_type!(
    GenerateTimeline,
    "GENERATE_TIMELINE",
    AUTHOR_DATA,
    AuthorPayload
);
job_type!(GenerateSummary, "GENERATE_SUMMARY", BOOK_DATA, BookPayload);
job_type!(GenerateCefr, "GENERATE_CEFR", BOOK_DATA, BookPayload);
job_type!(
    ExtractCharacters,
    "EXTRACT_CHARACTERS",
    BOOK_DATA,
    BookPayload
);
job_type!(
    GenerateChineseTitle,
    "GENERATE_CHINESE_TITLE",
    BOOK_DATA,
    BookPayload
);
job_type!(
    CategorizeQuote,
    "CATEGORIZE_QUOTE",
    QUOTE_DATA,
    QuotePayload
);

/// Quotes picked from a book's text.
pub struct ExtractQuotes;
impl JobType for ExtractQuotes {
    const NAME: &'static str = "EXTRACT_QUOTES";
    const QUEUE: &'static str = QUOTE_DATA;
    type Payload = ExtractQuotesPayload;
    fn check(p: &ExtractQuotesPayload) -> Result<(), (String, String)> {
        match p.max {
            Some(n) if n == 0 || n > MAX_QUOTES_LIMIT => Err((
                "max".into(),
                format!("must be between 1 and {MAX_QUOTES_LIMIT}"),
            )),
            _ => Ok(()),
        }
    }
}

/// A quote's translation into `targetLanguage`.
pub struct TranslateQuote;
impl JobType for TranslateQuote {
    const NAME: &'static str = "TRANSLATE_QUOTE";
    const QUEUE: &'static str = QUOTE_DATA;
    type Payload = TranslateQuotePayload;
    fn check(p: &TranslateQuotePayload) -> Result<(), (String, String)> {
        match &p.target_language {
            Some(tag) if !is_language_tag(tag) => Err((
                "targetLanguage".into(),
                "must be a language tag such as \"zh\" or \"en-US\"".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The import of one EPUB under `[storage] epub_dir`.
pub struct ProcessEpub;
impl JobType for ProcessEpub {
    const NAME: &'static str = "PROCESS_EPUB";
    const QUEUE: &'static str = BOOK_DATA;
    type Payload = ProcessEpubPayload;
    fn check(p: &ProcessEpubPayload) -> Result<(), (String, String)> {
        check_relative_path(&p.path).map_err(|e| ("path".to_string(), e.to_string()))?;
        check_then(&p.then)
    }
}

/// PROCESS_EPUB for each of `paths`, as one batch.
pub struct BatchImportBooks;
impl JobType for BatchImportBooks {
    const NAME: &'static str = "BATCH_IMPORT_BOOKS";
    const QUEUE: &'static str = BATCH_ORCHESTRATOR;
    type Payload = BatchImportBooksPayload;
    fn check(p: &BatchImportBooksPayload) -> Result<(), (String, String)> {
        check_entries("paths", &p.paths)?;
        for (i, path) in p.paths.iter().enumerate() {
            check_relative_path(path).map_err(|e| (format!("paths[{i}]"), e.to_string()))?;
        }
        check_then(&p.then)
    }
}

/// GENERATE_PERSONA for each of `authorIds`, as one batch.
pub struct BatchEnrichAuthors;
impl JobType for BatchEnrichAuthors {
    const NAME: &'static str = "BATCH_ENRICH_AUTHORS";
    const QUEUE: &'static str = BATCH_ORCHESTRATOR;
    type Payload = BatchAuthorsPayload;
    fn check(p: &BatchAuthorsPayload) -> Result<(), (String, String)> {
        check_entries("authorIds", &p.author_ids)
    }
}

/// GENERATE_CEFR for each of `bookIds`, as one batch.
pub struct BatchGenerateCefr;
impl JobType for BatchGenerateCefr {
    const NAME: &'static str = "BATCH_GENERATE_CEFR";
    const QUEUE: &'static str = BATCH_ORCHESTRATOR;
    type Payload = BatchBooksPayload;
    fn check(p: &BatchBooksPayload) -> Result<(), (String, String)> {
        check_entries("bookIds", &p.book_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in ["zh", "en-US", "zh-Hant", "pt-BR"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "-", "en-", "1en", "en us", "<script>", "abcdefghi"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
