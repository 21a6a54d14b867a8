//! Domain commands: `authors [list|get|create]`, `books [list|get]`,
//! `quotes [list|get]`. With no subcommand each one lists.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{Client, Page};
use crate::output::{self, object_lines, Output, Table};
use crate::Error;

/// Longest quote text shown in a table row, in characters.
const QUOTE_CELL_CHARS: usize = 60;

#[derive(Args)]
pub struct PageArgs {
    /// Page number, from 1.
    #[arg(long, value_name = "N")]
    pub page: Option<u64>,
    /// Rows per page (at most 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

impl PageArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(v) = self.page {
            query.push(("page", v.to_string()));
        }
        if let Some(v) = self.limit {
            query.push(("limit", v.to_string()));
        }
        query
    }
}

#[derive(Args)]
pub struct AuthorsArgs {
    #[command(subcommand)]
    pub command: Option<AuthorsCommand>,
}

#[derive(Subcommand)]
pub enum AuthorsCommand {
    /// Authors, newest first (the default).
    List(PageArgs),
    /// One author.
    Get {
        /// Author id (UUID).
        id: String,
    },
    /// Create an author.
    Create {
        /// Name (1 to 500 characters).
        name: String,
        /// Wikidata item id (e.g. Q42).
        #[arg(long, value_name = "QID")]
        wikidata_id: Option<String>,
    },
}

#[derive(Args)]
pub struct BooksArgs {
    #[command(subcommand)]
    pub command: Option<BooksCommand>,
}

#[derive(Subcommand)]
pub enum BooksCommand {
    /// Books, newest first (the default).
    List {
        /// Only this author's books (UUID).
        #[arg(long, value_name = "ID")]
        author_id: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One book (without its text).
    Get {
        /// Book id (UUID).
        id: String,
    },
}

#[derive(Args)]
pub struct QuotesArgs {
    #[command(subcommand)]
    pub command: Option<QuotesCommand>,
}

#[derive(Subcommand)]
pub enum QuotesCommand {
    /// Quotes, newest first (the default).
    List {
        /// Only this book's quotes (UUID).
        #[arg(long, value_name = "ID")]
        book_id: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One quote with its categories and translations.
    Get {
        /// Quote id (UUID).
        id: String,
    },
}

pub async fn authors(client: &Client, out: Output, args: AuthorsArgs) -> Result<(), Error> {
    match args.command {
        None => list(client, out, "authors", Vec::new(), author_table).await,
        Some(AuthorsCommand::List(page)) => {
            list(client, out, "authors", page.query(), author_table).await
        }
        Some(AuthorsCommand::Get { id }) => get(client, out, "authors", &id).await,
        Some(AuthorsCommand::Create { name, wikidata_id }) => {
            let mut body = json!({ "name": name });
            if let Some(qid) = wikidata_id {
                body["wikidataId"] = json!(qid);
            }
            let reply = client.create_author(&body).await?;
            out.emit(&reply.raw, || object_lines(&reply.raw, &[]));
            Ok(())
        }
    }
}

pub async fn books(client: &Client, out: Output, args: BooksArgs) -> Result<(), Error> {
    match args.command {
        None => list(client, out, "books", Vec::new(), book_table).await,
        Some(BooksCommand::List { author_id, page }) => {
            let mut query = page.query();
            if let Some(id) = author_id {
                query.push(("authorId", id));
            }
            list(client, out, "books", query, book_table).await
        }
        Some(BooksCommand::Get { id }) => get(client, out, "books", &id).await,
    }
}

pub async fn quotes(client: &Client, out: Output, args: QuotesArgs) -> Result<(), Error> {
    match args.command {
        None => list(client, out, "quotes", Vec::new(), quote_table).await,
        Some(QuotesCommand::List { book_id, page }) => {
            let mut query = page.query();
            if let Some(id) = book_id {
                query.push(("bookId", id));
            }
            list(client, out, "quotes", query, quote_table).await
        }
        Some(QuotesCommand::Get { id }) => get(client, out, "quotes", &id).await,
    }
}

async fn get(client: &Client, out: Output, resource: &str, id: &str) -> Result<(), Error> {
    let reply = client.get_one(resource, id).await?;
    out.emit(&reply.raw, || object_lines(&reply.raw, &[]));
    Ok(())
}

/// Prints one page of `resource` as a table with a `page X of Y` line.
async fn list(
    client: &Client,
    out: Output,
    resource: &str,
    query: Vec<(&str, String)>,
    table: fn(&[Value]) -> Table,
) -> Result<(), Error> {
    let reply = client.list_page(resource, &query).await?;
    out.emit(&reply.raw, || page_text(resource, &reply.value, table));
    Ok(())
}

fn page_text(resource: &str, page: &Page, table: fn(&[Value]) -> Table) -> String {
    if page.items.is_empty() {
        return format!(
            "no {resource} (page {}, {} in all)\n",
            page.page, page.total
        );
    }
    let pages = (page.total + page.limit - 1) / page.limit.max(1);
    format!(
        "{}page {} of {}, {} {resource} in all\n",
        table(&page.items).render(),
        page.page,
        pages.max(1),
        page.total
    )
}

fn author_table(items: &[Value]) -> Table {
    let mut table = Table::new(&["ID", "NAME", "WIKIDATA", "BORN", "DIED", "CREATED AT"]);
    for a in items {
        table.row(vec![
            output::cell(&a["id"]),
            output::cell(&a["name"]),
            output::cell(&a["wikidataId"]),
            output::cell(&a["birthDate"]),
            output::cell(&a["deathDate"]),
            time_cell(&a["createdAt"]),
        ]);
    }
    table
}

fn book_table(items: &[Value]) -> Table {
    let mut table = Table::new(&[
        "ID",
        "TITLE",
        "AUTHOR ID",
        "LANGUAGE",
        "CHAPTERS",
        "WORDS",
        "CEFR",
        "CREATED AT",
    ]);
    for b in items {
        table.row(vec![
            output::cell(&b["id"]),
            output::cell(&b["title"]),
            output::cell(&b["authorId"]),
            output::cell(&b["language"]),
            output::cell(&b["chapterCount"]),
            output::cell(&b["wordCount"]),
            output::cell(&b["cefrLevel"]),
            time_cell(&b["createdAt"]),
        ]);
    }
    table
}

fn quote_table(items: &[Value]) -> Table {
    let mut table = Table::new(&["ID", "BOOK ID", "CHAPTER", "CATEGORIES", "TEXT"]);
    for q in items {
        let categories = q["categories"]
            .as_array()
            .map(|c| c.iter().map(output::cell).collect::<Vec<_>>().join(","))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "-".into());
        table.row(vec![
            output::cell(&q["id"]),
            output::cell(&q["bookId"]),
            output::cell(&q["chapter"]),
            categories,
            one_line(q["text"].as_str().unwrap_or_default(), QUOTE_CELL_CHARS),
        ]);
    }
    table
}

/// `text` on one line (blank runs as one space), cut to `max` characters with `…`.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A timestamp of the API (RFC 3339) to the second, as the other tables show it.
fn time_cell(value: &Value) -> String {
    value
        .as_str()
        .and_then(|s| s.parse::<DateTime<Utc>>().ok())
        .map_or_else(|| output::cell(value), |t| output::time(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quotes_are_cut_on_one_line() {
        assert_eq!(one_line("a\n  b", 10), "a b");
        assert_eq!(one_line("abcdefghijk", 5), "abcd…");
    }
}
