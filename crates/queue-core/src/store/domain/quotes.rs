//! `quotes`: extracted from a book by EXTRACT_QUOTES, then categorized and
//! translated by the quote_data handlers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{is_foreign_key_violation, no_nul, DomainError};
use crate::error::StoreError;
use crate::store::Store;

/// A quote as stored, serialized in the API's camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    pub id: Uuid,
    pub book_id: Uuid,
    pub text: String,
    pub chapter: Option<i32>,
    pub categories: Vec<String>,
    /// Language code → translated text.
    #[sqlx(json)]
    pub translations: BTreeMap<String, String>,
}

/// A quote to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQuote {
    pub text: String,
    pub chapter: Option<i32>,
}

const QUOTE_COLUMNS: &str = "id, book_id, text, chapter, categories, translations";

fn not_found(id: Uuid) -> DomainError {
    DomainError::NotFound { kind: "quote", id }
}

impl Store {
    /// Records quotes of book `book_id` and answers their ids: one per distinct
    /// text (blanks trimmed; blank texts skipped), in order of first appearance. A
    /// text the book already has keeps its row and id, so extracting again records
    /// nothing new.
    pub async fn insert_quotes(
        &self,
        book_id: Uuid,
        quotes: &[NewQuote],
    ) -> Result<Vec<Uuid>, DomainError> {
        let mut texts: Vec<&str> = Vec::with_capacity(quotes.len());
        let mut chapters: Vec<Option<i32>> = Vec::with_capacity(quotes.len());
        for (i, q) in quotes.iter().enumerate() {
            let text = q.text.trim();
            no_nul(&format!("quotes[{i}].text"), text)?;
            if !text.is_empty() && !texts.contains(&text) {
                texts.push(text);
                chapters.push(q.chapter);
            }
        }
        if texts.is_empty() {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM books WHERE id = $1)")
                    .bind(book_id)
                    .fetch_one(&self.pool)
                    .await?;
            return if exists {
                Ok(Vec::new())
            } else {
                Err(DomainError::NotFound {
                    kind: "book",
                    id: book_id,
                })
            };
        }
        let ids: Vec<Uuid> = texts.iter().map(|_| Uuid::now_v7()).collect();
        // DO UPDATE (not DO NOTHING) so that a text already stored, even by a
        // transaction that committed after this statement began, returns its row.
        // The input holds each text once: one statement may not update a row twice.
        let rows: Result<Vec<(Uuid, i64)>, sqlx::Error> = sqlx::query_as(
            "WITH input AS (
                 SELECT * FROM unnest($2::uuid[], $3::text[], $4::int[])
                     WITH ORDINALITY AS t(id, text, chapter, ord)
             ), stored AS (
                 INSERT INTO quotes (id, book_id, text, chapter)
                 SELECT id, $1, text, chapter FROM input ORDER BY ord
                 ON CONFLICT (book_id, md5(text))
                     DO UPDATE SET chapter = COALESCE(quotes.chapter, EXCLUDED.chapter)
                 RETURNING id, text
             )
             SELECT stored.id, input.ord FROM stored JOIN input USING (text)
             ORDER BY input.ord",
        )
        .bind(book_id)
        .bind(&ids)
        .bind(&texts)
        .bind(&chapters)
        .fetch_all(&self.pool)
        .await;
        match rows {
            Ok(rows) => Ok(rows.into_iter().map(|(id, _)| id).collect()),
            Err(e) if is_foreign_key_violation(&e) => Err(DomainError::NotFound {
                kind: "book",
                id: book_id,
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_quote(&self, id: Uuid) -> Result<Option<Quote>, StoreError> {
        let sql = format!("SELECT {QUOTE_COLUMNS} FROM quotes WHERE id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A page of quotes, newest first (only `book_id`'s when given), and the number
    /// of all that match.
    pub async fn quote_page(
        &self,
        book_id: Option<Uuid>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Quote>, i64), StoreError> {
        let only = book_id.map(|id| ("book_id", id));
        super::page(&self.pool, "quotes", QUOTE_COLUMNS, only, limit, offset).await
    }

    /// CATEGORIZE_QUOTE's outcome: replaces the categories.
    pub async fn set_quote_categories(
        &self,
        id: Uuid,
        categories: &[String],
    ) -> Result<Quote, DomainError> {
        for (i, c) in categories.iter().enumerate() {
            no_nul(&format!("categories[{i}]"), c)?;
        }
        let sql =
            format!("UPDATE quotes SET categories = $2 WHERE id = $1 RETURNING {QUOTE_COLUMNS}");
        let row: Option<Quote> = sqlx::query_as(&sql)
            .bind(id)
            .bind(categories)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| not_found(id))
    }

    /// TRANSLATE_QUOTE's outcome: sets the translation into `language`, keeping the
    /// others (a jsonb merge in one statement, so parallel translations into other
    /// languages are all kept).
    pub async fn set_quote_translation(
        &self,
        id: Uuid,
        language: &str,
        translation: &str,
    ) -> Result<Quote, DomainError> {
        if language.trim().is_empty() {
            return Err(DomainError::invalid("targetLanguage", "must not be empty"));
        }
        no_nul("targetLanguage", language)?;
        no_nul("translation", translation)?;
        let sql = format!(
            "UPDATE quotes SET translations = translations || jsonb_build_object($2::text, $3::text)
             WHERE id = $1 RETURNING {QUOTE_COLUMNS}"
        );
        let row: Option<Quote> = sqlx::query_as(&sql)
            .bind(id)
            .bind(language)
            .bind(translation)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| not_found(id))
    }
}
