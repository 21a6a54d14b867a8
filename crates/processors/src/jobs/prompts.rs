//! Prompts built from the rows. A book's text is cut to a budget, so a long novel
//! costs a bounded number of tokens (about a quarter of the characters).

use std::fmt::Write as _;

use queue_core::store::domain::{Author, Book, Chapter, Quote};

/// Characters of chapter text sent for a whole-book question.
pub(crate) const BOOK_TEXT_BUDGET: usize = 24_000;
/// Characters of text sent to title a book.
pub(crate) const TITLE_TEXT_BUDGET: usize = 2_000;

/// What is known of an author, one fact a line.
pub(crate) fn author_facts(author: &Author) -> String {
    let mut out = format!("Name: {}\n", author.name);
    let lines = [
        ("Wikidata item", author.wikidata_id.clone()),
        ("Born", author.birth_date.clone()),
        ("Died", author.death_date.clone()),
        ("Countries", join(&author.countries)),
        ("Occupations", join(&author.occupations)),
        ("Description", author.description.clone()),
        ("Biography", author.bio.clone()),
    ];
    for (label, value) in lines {
        if let Some(value) = value {
            let _ = writeln!(out, "{label}: {value}");
        }
    }
    out
}

fn join(list: &[String]) -> Option<String> {
    (!list.is_empty()).then(|| list.join(", "))
}

/// The book's title, language and chapters' text, cut at `budget` characters.
pub(crate) fn book_excerpt(book: &Book, chapters: &[Chapter], budget: usize) -> String {
    let mut out = format!("Title: {}\n", book.title);
    if let Some(language) = &book.language {
        let _ = writeln!(out, "Language: {language}");
    }
    let _ = writeln!(
        out,
        "Chapters: {}, words: {}\n",
        book.chapter_count, book.word_count
    );
    let mut left = budget;
    for chapter in chapters {
        if left == 0 {
            out.push_str("\n[the rest of the book is left out]\n");
            break;
        }
        let heading = match &chapter.title {
            Some(title) => format!("--- Chapter {}: {title} ---\n", chapter.index),
            None => format!("--- Chapter {} ---\n", chapter.index),
        };
        out.push_str(&heading);
        let text = truncate_chars(&chapter.text, left);
        left -= text.chars().count();
        out.push_str(text);
        out.push_str("\n\n");
    }
    out
}

/// The longest prefix of `s` with at most `max` characters.
pub(crate) fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

pub(crate) fn quote_text(quote: &Quote) -> String {
    format!("Quote: {}", quote.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate_chars("魯迅文集", 2), "魯迅");
        assert_eq!(truncate_chars("abc", 10), "abc");
        assert_eq!(truncate_chars("abc", 0), "");
    }
}
