//! `books` and `book_chapters`: written by an EPUB import (book, author and text
//! in one transaction), then given a summary, CEFR level, characters and Chinese
//! title by the book_data handlers.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::authors::upsert_author_in;
use super::{no_nul, no_nul_json, no_nul_opt, DomainError};
use crate::error::StoreError;
use crate::store::Store;

/// A book as stored (without its text), serialized in the API's camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Book {
    pub id: Uuid,
    pub title: String,
    pub author_id: Option<Uuid>,
    pub language: Option<String>,
    pub chapter_count: i32,
    pub word_count: i64,
    pub summary: Option<String>,
    /// A1, A2, B1, B2, C1 or C2.
    pub cefr_level: Option<String>,
    pub characters: Option<Value>,
    pub chinese_title: Option<String>,
    pub source_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One chapter of a book's text, in reading order from 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Chapter {
    pub index: i32,
    pub title: Option<String>,
    pub text: String,
    pub word_count: i32,
}

/// A chapter to store with its book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChapter {
    pub title: Option<String>,
    pub text: String,
    pub word_count: i32,
}

impl NewChapter {
    /// A chapter whose words are counted as whitespace-separated runs.
    pub fn new(title: Option<String>, text: String) -> Self {
        let words = text.split_whitespace().count();
        Self {
            title,
            text,
            word_count: i32::try_from(words).unwrap_or(i32::MAX),
        }
    }
}

/// What an import read from an EPUB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBook {
    /// `dc:identifier`, else the source path: the key a re-import lands on.
    pub identifier: String,
    pub title: String,
    /// The author's name (`dc:creator`); found or created by name.
    pub author: Option<String>,
    pub language: Option<String>,
    pub source_path: Option<String>,
    pub chapters: Vec<NewChapter>,
}

/// What [`Store::upsert_book`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertedBook {
    pub book_id: Uuid,
    pub author_id: Option<Uuid>,
    /// False when the identifier was known and that book was updated.
    pub created: bool,
    pub chapter_count: i32,
    pub word_count: i64,
}

/// A CEFR level, as GENERATE_CEFR answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CefrLevel {
    A1,
    A2,
    B1,
    B2,
    C1,
    C2,
}

impl CefrLevel {
    pub const ALL: [CefrLevel; 6] = [Self::A1, Self::A2, Self::B1, Self::B2, Self::C1, Self::C2];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A1 => "A1",
            Self::A2 => "A2",
            Self::B1 => "B1",
            Self::B2 => "B2",
            Self::C1 => "C1",
            Self::C2 => "C2",
        }
    }
}

impl std::fmt::Display for CefrLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CefrLevel {
    type Err = String;

    /// Reads `B2` (any case, surrounding blanks ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| format!("`{s}` is not a CEFR level (A1, A2, B1, B2, C1 or C2)"))
    }
}

pub(crate) const BOOK_COLUMNS: &str =
    "id, title, author_id, language, chapter_count, word_count, summary, cefr_level, \
     characters, chinese_title, source_path, created_at, updated_at";

fn not_found(id: Uuid) -> DomainError {
    DomainError::NotFound { kind: "book", id }
}

fn check_new_book(book: &NewBook) -> Result<(), DomainError> {
    if book.identifier.trim().is_empty() {
        return Err(DomainError::invalid("identifier", "must not be empty"));
    }
    if book.title.trim().is_empty() {
        return Err(DomainError::invalid("title", "must not be empty"));
    }
    no_nul("identifier", &book.identifier)?;
    no_nul("title", &book.title)?;
    no_nul_opt("language", book.language.as_deref())?;
    no_nul_opt("sourcePath", book.source_path.as_deref())?;
    for (i, c) in book.chapters.iter().enumerate() {
        no_nul_opt(&format!("chapters[{i}].title"), c.title.as_deref())?;
        no_nul(&format!("chapters[{i}].text"), &c.text)?;
    }
    Ok(())
}

impl Store {
    /// Records an imported book: finds or creates its author by name, inserts the
    /// book or updates the one with the same identifier (keeping what the book_data
    /// handlers wrote), and replaces its chapters, all in one transaction. Importing
    /// the same book again answers the same book and author ids.
    pub async fn upsert_book(&self, book: &NewBook) -> Result<UpsertedBook, DomainError> {
        check_new_book(book)?;
        let chapter_count = i32::try_from(book.chapters.len())
            .map_err(|_| DomainError::invalid("chapters", "too many chapters"))?;
        let word_count: i64 = book.chapters.iter().map(|c| i64::from(c.word_count)).sum();

        let mut tx = self.pool.begin().await?;
        let author_id = match &book.author {
            Some(name) if !name.trim().is_empty() => Some(
                upsert_author_in(&mut tx, name.trim(), None)
                    .await
                    .map_err(|e| match e {
                        DomainError::Invalid { field, message } => DomainError::Invalid {
                            field: format!("author.{field}"),
                            message,
                        },
                        other => other,
                    })?
                    .id,
            ),
            _ => None,
        };
        // `xmax = 0` only on a row this statement inserted (an update sets it).
        let (book_id, author_id, created): (Uuid, Option<Uuid>, bool) = sqlx::query_as(
            "INSERT INTO books (id, title, author_id, identifier, language, chapter_count,
                                word_count, source_path)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (identifier) DO UPDATE SET
                 title = EXCLUDED.title,
                 author_id = COALESCE(EXCLUDED.author_id, books.author_id),
                 language = EXCLUDED.language,
                 chapter_count = EXCLUDED.chapter_count,
                 word_count = EXCLUDED.word_count,
                 source_path = EXCLUDED.source_path,
                 updated_at = now()
             RETURNING id, author_id, xmax = 0",
        )
        .bind(Uuid::now_v7())
        .bind(&book.title)
        .bind(author_id)
        .bind(&book.identifier)
        .bind(&book.language)
        .bind(chapter_count)
        .bind(word_count)
        .bind(&book.source_path)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM book_chapters WHERE book_id = $1")
            .bind(book_id)
            .execute(&mut *tx)
            .await?;
        if !book.chapters.is_empty() {
            let titles: Vec<Option<&str>> =
                book.chapters.iter().map(|c| c.title.as_deref()).collect();
            let texts: Vec<&str> = book.chapters.iter().map(|c| c.text.as_str()).collect();
            let words: Vec<i32> = book.chapters.iter().map(|c| c.word_count).collect();
            sqlx::query(
                "INSERT INTO book_chapters (book_id, index, title, text, word_count)
                 SELECT $1, (ord - 1)::int, title, text, word_count
                 FROM unnest($2::text[], $3::text[], $4::int[])
                      WITH ORDINALITY AS t(title, text, word_count, ord)",
            )
            .bind(book_id)
            .bind(&titles)
            .bind(&texts)
            .bind(&words)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(UpsertedBook {
            book_id,
            author_id,
            created,
            chapter_count,
            word_count,
        })
    }

    pub async fn get_book(&self, id: Uuid) -> Result<Option<Book>, StoreError> {
        let sql = format!("SELECT {BOOK_COLUMNS} FROM books WHERE id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A book's chapters in reading order (empty for an unknown book).
    pub async fn book_chapters(&self, book_id: Uuid) -> Result<Vec<Chapter>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT index, title, text, word_count FROM book_chapters
             WHERE book_id = $1 ORDER BY index",
        )
        .bind(book_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of books, newest first (only `author_id`'s when given), and the number
    /// of all that match.
    pub async fn book_page(
        &self,
        author_id: Option<Uuid>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Book>, i64), StoreError> {
        let only = author_id.map(|id| ("author_id", id));
        super::page(&self.pool, "books", BOOK_COLUMNS, only, limit, offset).await
    }

    /// GENERATE_SUMMARY's outcome.
    pub async fn set_book_summary(&self, id: Uuid, summary: &str) -> Result<Book, DomainError> {
        no_nul("summary", summary)?;
        self.set_book("summary = $2", id, summary).await
    }

    /// GENERATE_CEFR's outcome.
    pub async fn set_book_cefr(&self, id: Uuid, level: CefrLevel) -> Result<Book, DomainError> {
        self.set_book("cefr_level = $2", id, level.as_str()).await
    }

    /// GENERATE_CHINESE_TITLE's outcome.
    pub async fn set_book_chinese_title(
        &self,
        id: Uuid,
        chinese_title: &str,
    ) -> Result<Book, DomainError> {
        no_nul("chineseTitle", chinese_title)?;
        self.set_book("chinese_title = $2", id, chinese_title).await
    }

    /// EXTRACT_CHARACTERS's outcome (e.g. `[{name, description}]`).
    pub async fn set_book_characters(
        &self,
        id: Uuid,
        characters: &Value,
    ) -> Result<Book, DomainError> {
        no_nul_json("characters", characters)?;
        self.set_book("characters = $2", id, characters).await
    }

    /// Sets one column (`assignment` is a fixed string of this module) of book `id`.
    async fn set_book<T>(
        &self,
        assignment: &'static str,
        id: Uuid,
        value: T,
    ) -> Result<Book, DomainError>
    where
        T: Send + for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        let sql = format!(
            "UPDATE books SET {assignment}, updated_at = now() WHERE id = $1
             RETURNING {BOOK_COLUMNS}"
        );
        let row: Option<Book> = sqlx::query_as(&sql)
            .bind(id)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| not_found(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cefr_levels_parse_in_any_case() {
        assert_eq!("b2".parse::<CefrLevel>(), Ok(CefrLevel::B2));
        assert_eq!(" C1 ".parse::<CefrLevel>(), Ok(CefrLevel::C1));
        assert!("B3".parse::<CefrLevel>().is_err());
        assert!("".parse::<CefrLevel>().is_err());
    }

    #[test]
    fn chapters_count_their_words() {
        let c = NewChapter::new(None, "It was  the best\nof times".into());
        assert_eq!(c.word_count, 6);
    }
}
