//! The domain tables the domain queues work on: `authors`, `books` (with their
//! chapters' text in `book_chapters`) and `quotes`. The admin API reads them; the
//! handlers write them.
//!
//! Handlers run at least once, so every writer here is idempotent: it lands on a
//! natural key (an author's Wikidata id or name, a book's identifier, a quote's book
//! and text) in one statement or one transaction, and running it twice leaves one
//! row. Writers that name a row by id answer [`DomainError::NotFound`] when there is
//! none, which a handler turns into a permanent failure naming the kind and id.

mod authors;
mod books;
mod quotes;

pub use authors::{is_wikidata_id, Author, AuthorEnrichment};
pub use books::{Book, CefrLevel, Chapter, NewBook, NewChapter, UpsertedBook};
pub use quotes::{NewQuote, Quote};

use uuid::Uuid;

use crate::error::StoreError;

/// Why a domain write was refused. Every variant but `Store` is final: the same
/// write would be refused again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The row named by id does not exist (`kind` is author, book or quote).
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: Uuid },
    /// A value the tables cannot hold; `field` is its camelCase name.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Another author holds this Wikidata id.
    #[error("wikidataId: {wikidata_id} already belongs to another author")]
    WikidataIdTaken { wikidata_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for DomainError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// True when PostgreSQL refused a statement for a duplicate key.
/// One list page of `table` (its columns `columns`), newest first, only the rows
/// whose `column` is `id` when `only` is given, and the number of all that match.
/// Two statements per filter rather than `$1 IS NULL OR …`, so a generic plan still
/// reads the filter's index.
async fn page<T>(
    pool: &sqlx::PgPool,
    table: &str,
    columns: &str,
    only: Option<(&str, Uuid)>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<T>, i64), StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let (filter, total) = match only {
        Some((column, _)) => (
            format!("WHERE {column} = $3"),
            format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
        ),
        None => (String::new(), format!("SELECT count(*) FROM {table}")),
    };
    let sql = format!(
        "SELECT {columns} FROM {table} {filter}
         ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    );
    let mut items = sqlx::query_as(&sql).bind(limit).bind(offset);
    let mut count = sqlx::query_scalar(&total);
    if let Some((_, id)) = only {
        items = items.bind(id);
        count = count.bind(id);
    }
    Ok(tokio::try_join!(
        items.fetch_all(pool),
        count.fetch_one(pool)
    )?)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// True when PostgreSQL refused a statement for a reference to a missing row.
fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23503"))
}

/// Refuses text PostgreSQL cannot store (it has no NUL character).
fn no_nul(field: &str, value: &str) -> Result<(), DomainError> {
    if value.contains('\0') {
        return Err(DomainError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

fn no_nul_opt(field: &str, value: Option<&str>) -> Result<(), DomainError> {
    value.map_or(Ok(()), |v| no_nul(field, v))
}

/// Refuses JSON holding a NUL character (jsonb cannot store `\u0000`).
fn no_nul_json(field: &str, value: &serde_json::Value) -> Result<(), DomainError> {
    if value.to_string().contains("\\u0000") {
        return Err(DomainError::invalid(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(())
}
