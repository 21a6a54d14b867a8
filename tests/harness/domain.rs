//! Domain records (books and quotes) as the import and extraction handlers hand
//! them to the store, for the tests that write them directly.

use queue_core::store::{NewBook, NewChapter, NewQuote};

/// A book `identifier` titled after it, in English, with one chapter per text
/// (titled "Chapter n").
pub fn book(identifier: &str, author: Option<&str>, chapters: &[&str]) -> NewBook {
    NewBook {
        identifier: identifier.into(),
        title: format!("Title of {identifier}"),
        author: author.map(str::to_string),
        language: Some("en".into()),
        source_path: Some(format!("{identifier}.epub")),
        chapters: chapters
            .iter()
            .enumerate()
            .map(|(i, text)| NewChapter::new(Some(format!("Chapter {}", i + 1)), text.to_string()))
            .collect(),
    }
}

/// Quotes of these texts, the i-th from chapter i.
pub fn quotes(texts: &[&str]) -> Vec<NewQuote> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| NewQuote {
            text: t.to_string(),
            chapter: Some(i as i32),
        })
        .collect()
}

/// How many rows `table` has.
pub async fn count_rows(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count rows")
}
