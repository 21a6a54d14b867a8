//! `authors`: created by the API or by a book import, enriched from Wikidata, given
//! a bio, persona, timeline and avatar by the author_data handlers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{is_unique_violation, no_nul, no_nul_json, no_nul_opt, DomainError};
use crate::error::StoreError;
use crate::store::Store;

/// An author as stored, serialized in the API's camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Author {
    pub id: Uuid,
    pub name: String,
    pub wikidata_id: Option<String>,
    /// `YYYY-MM-DD`, `YYYY-MM` or `YYYY` (a leading `-` for BCE).
    pub birth_date: Option<String>,
    pub death_date: Option<String>,
    pub countries: Vec<String>,
    pub occupations: Vec<String>,
    pub description: Option<String>,
    pub image_url: Option<String>,
    pub avatar_path: Option<String>,
    pub bio: Option<String>,
    pub persona: Option<Value>,
    pub timeline: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What ENRICH_FROM_WIKIDATA found; [`Store::enrich_author`] writes all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorEnrichment {
    pub wikidata_id: String,
    pub birth_date: Option<String>,
    pub death_date: Option<String>,
    pub countries: Vec<String>,
    pub occupations: Vec<String>,
    pub description: Option<String>,
    pub image_url: Option<String>,
}

pub(crate) const AUTHOR_COLUMNS: &str =
    "id, name, wikidata_id, birth_date, death_date, countries, occupations, description, \
     image_url, avatar_path, bio, persona, timeline, created_at, updated_at";

/// Longest Wikidata id accepted (`Q` and 19 digits: more than Wikidata will mint).
const MAX_WIKIDATA_ID_LEN: usize = 20;

/// True for a Wikidata item id: `^Q[1-9][0-9]*$`, at most 20 characters.
pub fn is_wikidata_id(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('Q') else {
        return false;
    };
    s.len() <= MAX_WIKIDATA_ID_LEN
        && digits
            .bytes()
            .next()
            .is_some_and(|b| (b'1'..=b'9').contains(&b))
        && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_wikidata_id(id: &str) -> Result<(), DomainError> {
    if is_wikidata_id(id) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "wikidataId",
            format!("`{id}` is not a Wikidata item id (Q followed by digits, e.g. Q42)"),
        ))
    }
}

fn check_name(name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    no_nul("name", name)
}

fn not_found(id: Uuid) -> DomainError {
    DomainError::NotFound { kind: "author", id }
}

/// The author named `name` (with `wikidata_id` when given), created when missing,
/// inside the caller's transaction. With a Wikidata id: the author holding it, else
/// the oldest author of that name without one (who gets it), else a new author.
/// Without: the oldest author of that name, else a new one.
pub(super) async fn upsert_author_in(
    conn: &mut PgConnection,
    name: &str,
    wikidata_id: Option<&str>,
) -> Result<Author, DomainError> {
    check_name(name)?;
    if let Some(qid) = wikidata_id {
        check_wikidata_id(qid)?;
    }
    // Two imports of one new author at once would both miss the name and insert it
    // twice; holding the name's lock until commit makes the second find the first's.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('conveyor.authors:' || $1, 0))")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    if let Some(qid) = wikidata_id {
        let sql = format!("SELECT {AUTHOR_COLUMNS} FROM authors WHERE wikidata_id = $1");
        let found: Option<Author> = sqlx::query_as(&sql)
            .bind(qid)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(author) = found {
            return Ok(author);
        }
        let sql = format!(
            "UPDATE authors SET wikidata_id = $2, updated_at = now()
             WHERE id = (SELECT id FROM authors WHERE name = $1 AND wikidata_id IS NULL
                         ORDER BY created_at, id LIMIT 1)
             RETURNING {AUTHOR_COLUMNS}"
        );
        let adopted = sqlx::query_as(&sql)
            .bind(name)
            .bind(qid)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| taken_or(e, qid))?;
        if let Some(author) = adopted {
            return Ok(author);
        }
        // Another name may have taken the id since the lookup: answer that author.
        let sql = format!(
            "INSERT INTO authors (id, name, wikidata_id) VALUES ($1, $2, $3)
             ON CONFLICT (wikidata_id) DO UPDATE SET updated_at = authors.updated_at
             RETURNING {AUTHOR_COLUMNS}"
        );
        return Ok(sqlx::query_as(&sql)
            .bind(Uuid::now_v7())
            .bind(name)
            .bind(qid)
            .fetch_one(&mut *conn)
            .await?);
    }
    let sql = format!(
        "SELECT {AUTHOR_COLUMNS} FROM authors WHERE name = $1 ORDER BY created_at, id LIMIT 1"
    );
    let found: Option<Author> = sqlx::query_as(&sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(author) = found {
        return Ok(author);
    }
    let sql = format!("INSERT INTO authors (id, name) VALUES ($1, $2) RETURNING {AUTHOR_COLUMNS}");
    Ok(sqlx::query_as(&sql)
        .bind(Uuid::now_v7())
        .bind(name)
        .fetch_one(&mut *conn)
        .await?)
}

/// A duplicate Wikidata id as [`DomainError::WikidataIdTaken`], anything else as is.
fn taken_or(e: sqlx::Error, wikidata_id: &str) -> DomainError {
    if is_unique_violation(&e) {
        DomainError::WikidataIdTaken {
            wikidata_id: wikidata_id.to_string(),
        }
    } else {
        e.into()
    }
}

impl Store {
    /// Records a new author (the admin API's create); another author holding
    /// `wikidata_id` is [`DomainError::WikidataIdTaken`].
    pub async fn create_author(
        &self,
        name: &str,
        wikidata_id: Option<&str>,
    ) -> Result<Author, DomainError> {
        check_name(name)?;
        if let Some(qid) = wikidata_id {
            check_wikidata_id(qid)?;
        }
        let sql = format!(
            "INSERT INTO authors (id, name, wikidata_id) VALUES ($1, $2, $3)
             ON CONFLICT (wikidata_id) DO NOTHING
             RETURNING {AUTHOR_COLUMNS}"
        );
        let row: Option<Author> = sqlx::query_as(&sql)
            .bind(Uuid::now_v7())
            .bind(name)
            .bind(wikidata_id)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| DomainError::WikidataIdTaken {
            wikidata_id: wikidata_id.unwrap_or_default().to_string(),
        })
    }

    /// The author with `wikidata_id`, else the oldest of that name, else a new one
    /// (see `upsert_author_in`); running it again answers the same author.
    pub async fn upsert_author(
        &self,
        name: &str,
        wikidata_id: Option<&str>,
    ) -> Result<Author, DomainError> {
        let mut tx = self.pool.begin().await?;
        let author = upsert_author_in(&mut tx, name, wikidata_id).await?;
        tx.commit().await?;
        Ok(author)
    }

    pub async fn get_author(&self, id: Uuid) -> Result<Option<Author>, StoreError> {
        let sql = format!("SELECT {AUTHOR_COLUMNS} FROM authors WHERE id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// A page of authors, newest first, and the number of all authors.
    pub async fn author_page(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Author>, i64), StoreError> {
        super::page(&self.pool, "authors", AUTHOR_COLUMNS, None, limit, offset).await
    }

    /// Writes what Wikidata says about author `id` (every field, replacing the old
    /// values, so a second run leaves the same row).
    pub async fn enrich_author(
        &self,
        id: Uuid,
        found: &AuthorEnrichment,
    ) -> Result<Author, DomainError> {
        check_wikidata_id(&found.wikidata_id)?;
        no_nul_opt("birthDate", found.birth_date.as_deref())?;
        no_nul_opt("deathDate", found.death_date.as_deref())?;
        no_nul_opt("description", found.description.as_deref())?;
        no_nul_opt("imageUrl", found.image_url.as_deref())?;
        for (field, list) in [
            ("countries", &found.countries),
            ("occupations", &found.occupations),
        ] {
            list.iter().try_for_each(|v| no_nul(field, v))?;
        }
        let sql = format!(
            "UPDATE authors SET wikidata_id = $2, birth_date = $3, death_date = $4,
                 countries = $5, occupations = $6, description = $7, image_url = $8,
                 updated_at = now()
             WHERE id = $1
             RETURNING {AUTHOR_COLUMNS}"
        );
        let row: Option<Author> = sqlx::query_as(&sql)
            .bind(id)
            .bind(&found.wikidata_id)
            .bind(&found.birth_date)
            .bind(&found.death_date)
            .bind(&found.countries)
            .bind(&found.occupations)
            .bind(&found.description)
            .bind(&found.image_url)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| taken_or(e, &found.wikidata_id))?;
        row.ok_or_else(|| not_found(id))
    }

    /// GENERATE_BIO's outcome.
    pub async fn set_author_bio(&self, id: Uuid, bio: &str) -> Result<Author, DomainError> {
        self.set_author_text(id, TextColumn::Bio, bio).await
    }

    /// FETCH_AVATAR's outcome: where the image was saved.
    pub async fn set_author_avatar(
        &self,
        id: Uuid,
        avatar_path: &str,
    ) -> Result<Author, DomainError> {
        self.set_author_text(id, TextColumn::AvatarPath, avatar_path)
            .await
    }

    /// GENERATE_PERSONA's outcome (e.g. `{persona, traits}`).
    pub async fn set_author_persona(
        &self,
        id: Uuid,
        persona: &Value,
    ) -> Result<Author, DomainError> {
        self.set_author_json(id, JsonColumn::Persona, persona).await
    }

    /// GENERATE_TIMELINE's outcome (e.g. `[{year, event}]`).
    pub async fn set_author_timeline(
        &self,
        id: Uuid,
        timeline: &Value,
    ) -> Result<Author, DomainError> {
        self.set_author_json(id, JsonColumn::Timeline, timeline)
            .await
    }

    async fn set_author_text(
        &self,
        id: Uuid,
        column: TextColumn,
        value: &str,
    ) -> Result<Author, DomainError> {
        let (name, field) = column.names();
        no_nul(field, value)?;
        self.set_author_column(id, name, value).await
    }

    async fn set_author_json(
        &self,
        id: Uuid,
        column: JsonColumn,
        value: &Value,
    ) -> Result<Author, DomainError> {
        let (name, field) = column.names();
        no_nul_json(field, value)?;
        self.set_author_column(id, name, value).await
    }

    /// Sets column `name` (one of a closed set) of author `id`.
    async fn set_author_column<V>(
        &self,
        id: Uuid,
        name: &str,
        value: V,
    ) -> Result<Author, DomainError>
    where
        V: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
    {
        let sql = format!(
            "UPDATE authors SET {name} = $2, updated_at = now() WHERE id = $1
             RETURNING {AUTHOR_COLUMNS}"
        );
        let row: Option<Author> = sqlx::query_as(&sql)
            .bind(id)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| not_found(id))
    }
}

/// The text columns a handler sets alone (a closed set: the name goes into SQL).
#[derive(Clone, Copy)]
enum TextColumn {
    Bio,
    AvatarPath,
}

impl TextColumn {
    /// (column, API field).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Bio => ("bio", "bio"),
            Self::AvatarPath => ("avatar_path", "avatarPath"),
        }
    }
}

#[derive(Clone, Copy)]
enum JsonColumn {
    Persona,
    Timeline,
}

impl JsonColumn {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Persona => ("persona", "persona"),
            Self::Timeline => ("timeline", "timeline"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wikidata_ids() {
        for ok in ["Q1", "Q42", "Q1234567890"] {
            assert!(is_wikidata_id(ok), "{ok}");
        }
        for bad in [
            "",
            "Q",
            "Q0",
            "Q01",
            "q42",
            "P31",
            "Q4 2",
            "Q42x",
            "Q１",
            "Q12345678901234567890",
        ] {
            assert!(!is_wikidata_id(bad), "{bad}");
        }
    }
}
