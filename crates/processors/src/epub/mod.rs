//! The EPUB reader: container, package document, spine and chapter text, within limits.
//!
//! [`read_epub`] opens a book under the EPUB directory and returns its metadata and the
//! text of its chapters in reading order. It blocks; async callers run it with
//! `spawn_blocking`. Nothing is extracted to disk, and at most one entry is held in
//! memory at a time, never more than [`EpubLimits::max_entry_bytes`] of it.
//!
//! Choices a caller may notice:
//! - Chapters follow the spine. Items marked `linear="no"` (covers, pop-up notes, a
//!   table of contents kept out of the reading flow) are skipped, as are the EPUB 3
//!   navigation document (a list of titles, not text), spine items that are not
//!   (X)HTML and documents without visible text; `index` counts the chapters kept,
//!   from 0.
//! - A chapter's title is the table of contents' label for its document (EPUB 3 nav,
//!   else NCX), else its first heading.
//! - The title falls back to the file name, the language to the package's `xml:lang`
//!   and then to the first chapter's.

mod archive;
mod encryption;
mod error;
mod package;
mod path;
mod text;
mod toc;

use std::path::Path;

use serde::Serialize;

pub use error::EpubError;
pub use path::{check_relative_path, resolve_path};
pub use text::count_words;

use archive::Archive;
use package::{Package, CONTAINER};
use text::decode;
use toc::Labels;

/// Bounds on what one book may make the reader decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpubLimits {
    /// Largest uncompressed size of one entry (`[storage] epub_max_entry_bytes`).
    pub max_entry_bytes: u64,
    /// Largest uncompressed size of the whole archive (`[storage] epub_max_total_bytes`).
    pub max_total_bytes: u64,
    /// Largest uncompressed-to-compressed ratio of one entry.
    pub max_ratio: u64,
}

impl Default for EpubLimits {
    fn default() -> Self {
        EpubLimits {
            max_entry_bytes: 64 * 1024 * 1024,
            max_total_bytes: 512 * 1024 * 1024,
            max_ratio: 100,
        }
    }
}

/// A book's metadata and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Book {
    /// The `dc:identifier` named by the package's `unique-identifier` (else the first).
    pub identifier: Option<String>,
    /// `dc:title`, else the file name without extension.
    pub title: String,
    /// The first `dc:creator` whose role is author, else the first creator.
    pub author: Option<String>,
    /// That creator's sort form (`file-as`), such as "Carroll, Lewis".
    pub author_file_as: Option<String>,
    /// `dc:language` as written (e.g. "en-US").
    pub language: Option<String>,
    /// Chapters with visible text, in reading order.
    pub chapters: Vec<Chapter>,
    /// Sum of the chapters' word counts.
    pub word_count: usize,
}

impl Book {
    /// Chapters with text: the book's `chapterCount`.
    pub fn chapter_count(&self) -> usize {
        self.chapters.len()
    }
}

/// One spine document with visible text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chapter {
    /// Position among the book's chapters, from 0.
    pub index: usize,
    /// Its table-of-contents label or first heading.
    pub title: Option<String>,
    /// Paragraphs separated by a blank line.
    pub text: String,
    /// See [`count_words`].
    pub word_count: usize,
}

/// Reads the book at `relative_path` under `epub_dir`; see the module documentation.
pub fn read_epub(
    epub_dir: &Path,
    relative_path: &str,
    limits: EpubLimits,
) -> Result<Book, EpubError> {
    let path = resolve_path(epub_dir, relative_path)?;
    let mut archive = Archive::open(&path, limits)?;

    let container = archive
        .read(CONTAINER)?
        .ok_or(EpubError::MissingContainer)?;
    let opf_path = package::rootfile(&decode(container))?;
    let opf = archive
        .read(&opf_path)?
        .ok_or_else(|| EpubError::MissingPackage {
            path: opf_path.clone(),
        })?;
    let package = package::parse(&opf_path, &decode(opf))?;

    if let Some(encryption) = archive.read(encryption::ENCRYPTION)? {
        encryption::check(&decode(encryption), &package)?;
    }
    // Every spine document must be there before any is decompressed.
    for spine_ref in &package.spine {
        let Some(item) = package.manifest.get(&spine_ref.idref) else {
            continue;
        };
        if !item.path.as_deref().is_some_and(|p| archive.contains(p)) {
            return Err(EpubError::MissingSpineItem {
                idref: spine_ref.idref.clone(),
                path: item.path.clone().unwrap_or_else(|| item.href.clone()),
            });
        }
    }

    let labels = toc_labels(&mut archive, &package)?;
    let mut chapters = Vec::new();
    let mut first_lang = None;
    for spine_ref in package.spine.iter().filter(|r| r.linear) {
        let Some(item) = package.manifest.get(&spine_ref.idref) else {
            continue;
        };
        let Some(entry) = item.path.as_deref().filter(|_| is_html(&item.media_type)) else {
            continue;
        };
        if package.nav.as_deref() == Some(entry) {
            continue;
        }
        let Some(bytes) = archive.read(entry)? else {
            continue;
        };
        let extracted = text::xhtml_to_text(entry, &decode(bytes))?;
        if first_lang.is_none() {
            first_lang = extracted.lang;
        }
        if extracted.text.is_empty() {
            continue;
        }
        chapters.push(Chapter {
            index: chapters.len(),
            title: labels.get(entry).cloned().or(extracted.heading),
            word_count: count_words(&extracted.text),
            text: extracted.text,
        });
    }

    Ok(Book {
        identifier: package.identifier,
        title: package.title.unwrap_or_else(|| file_stem(relative_path)),
        author: package.author,
        author_file_as: package.author_file_as,
        language: package.language.or(first_lang),
        word_count: chapters.iter().map(|c| c.word_count).sum(),
        chapters,
    })
}

/// Titles from the navigation document, else the NCX. A missing or unreadable table
/// of contents only costs titles; a limit it breaks still fails the import.
fn toc_labels(archive: &mut Archive, package: &Package) -> Result<Labels, EpubError> {
    if let Some(nav) = &package.nav {
        if let Some(bytes) = archive.read(nav)? {
            let labels = toc::nav_labels(nav, &decode(bytes));
            if !labels.is_empty() {
                return Ok(labels);
            }
        }
    }
    if let Some(ncx) = &package.ncx {
        if let Some(bytes) = archive.read(ncx)? {
            return Ok(toc::ncx_labels(ncx, &decode(bytes)));
        }
    }
    Ok(Labels::new())
}

/// Spine documents worth reading for text; an empty media type is given the benefit
/// of the doubt.
fn is_html(media_type: &str) -> bool {
    media_type.is_empty() || media_type.contains("html")
}

fn file_stem(relative_path: &str) -> String {
    Path::new(relative_path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| relative_path.to_owned())
}
