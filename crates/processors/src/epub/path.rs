//! Paths: the book's place under the EPUB directory, and references inside the archive.
//! Nothing is ever extracted, but a name or reference that climbs out of its root is
//! refused all the same: it only appears in hostile or broken files.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::EpubError;

/// Checks a job's EPUB path without touching the file system: not empty, not absolute,
/// no `..` component (either slash counts as a separator). Enough to refuse a path at
/// enqueue time; [`resolve_path`] adds the checks that need the file.
pub fn check_relative_path(relative: &str) -> Result<(), EpubError> {
    let invalid = |reason| EpubError::InvalidPath {
        path: relative.to_owned(),
        reason,
    };
    if relative.trim().is_empty() {
        return Err(invalid("empty"));
    }
    if relative.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    if is_absolute(relative) || Path::new(relative).is_absolute() {
        return Err(invalid("absolute paths are not allowed"));
    }
    if relative.split(['/', '\\']).any(|part| part == "..") {
        return Err(invalid("`..` is not allowed"));
    }
    Ok(())
}

/// Resolves `relative` under `epub_dir` and proves the result stays inside it once
/// every symbolic link is followed. The file must exist and be a regular file.
pub fn resolve_path(epub_dir: &Path, relative: &str) -> Result<PathBuf, EpubError> {
    check_relative_path(relative)?;
    let root = epub_dir.canonicalize().map_err(|source| EpubError::Io {
        path: epub_dir.to_path_buf(),
        source,
    })?;
    let candidate = root.join(relative);
    let resolved = candidate.canonicalize().map_err(|source| {
        if source.kind() == ErrorKind::NotFound {
            EpubError::NotFound {
                path: relative.to_owned(),
            }
        } else {
            EpubError::Io {
                path: candidate.clone(),
                source,
            }
        }
    })?;
    if !resolved.starts_with(&root) {
        return Err(EpubError::OutsideDir {
            path: relative.to_owned(),
        });
    }
    let metadata = resolved.metadata().map_err(|source| EpubError::Io {
        path: resolved.clone(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(EpubError::NotAFile {
            path: relative.to_owned(),
        });
    }
    Ok(resolved)
}

/// Whether a ZIP entry name stays inside the archive root.
pub(crate) fn is_safe_entry_name(name: &str) -> bool {
    !is_absolute(name) && !name.split(['/', '\\']).any(|part| part == "..")
}

/// Resolves a reference found in the document `entry` against that document's folder,
/// giving the entry name it points at. The fragment and query are dropped and
/// percent-escapes decoded. `Ok(None)` means the reference points outside the book
/// (a URL with a scheme); climbing above the root or an absolute path is an error.
pub(crate) fn resolve_href(entry: &str, href: &str) -> Result<Option<String>, EpubError> {
    resolve_from(parent_dir(entry), href, entry)
}

/// Like [`resolve_href`] for references relative to the archive root, as in
/// `container.xml` and `encryption.xml`.
pub(crate) fn resolve_from_root(entry: &str, href: &str) -> Result<Option<String>, EpubError> {
    resolve_from("", href, entry)
}

fn resolve_from(dir: &str, href: &str, entry: &str) -> Result<Option<String>, EpubError> {
    let unsafe_href = || EpubError::UnsafeHref {
        href: href.to_owned(),
        entry: entry.to_owned(),
    };
    let href_trimmed = href.trim();
    let without_fragment = href_trimmed
        .split(['#', '?'])
        .next()
        .unwrap_or(href_trimmed);
    if has_scheme(without_fragment) {
        return Ok(None);
    }
    if is_absolute(without_fragment) {
        return Err(unsafe_href());
    }
    let decoded = percent_decode_str(without_fragment).decode_utf8_lossy();
    let mut parts: Vec<&str> = dir.split('/').filter(|part| !part.is_empty()).collect();
    for part in decoded.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(unsafe_href)?;
            }
            _ => parts.push(part),
        }
    }
    Ok(Some(parts.join("/")))
}

/// The folder of an entry name, without the trailing slash ("" at the root).
pub(crate) fn parent_dir(entry: &str) -> &str {
    entry.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    path.starts_with(['/', '\\']) || drive
}

/// `scheme:` per RFC 3986, before any slash; a one-letter scheme is a Windows drive
/// and is left to [`is_absolute`].
fn has_scheme(href: &str) -> bool {
    let Some((scheme, _)) = href.split_once(':') else {
        return false;
    };
    scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_the_document_folder() {
        let ok = |entry, href| resolve_href(entry, href).unwrap();
        assert_eq!(
            ok("OEBPS/content.opf", "text/ch1.xhtml").as_deref(),
            Some("OEBPS/text/ch1.xhtml")
        );
        assert_eq!(
            ok("content.opf", "ch%201.xhtml#p3").as_deref(),
            Some("ch 1.xhtml")
        );
        assert_eq!(
            ok("OPS/a/toc.ncx", "../b/./c.xhtml").as_deref(),
            Some("OPS/b/c.xhtml")
        );
        assert_eq!(ok("OPS/p.opf", "https://example.org/x.mp3"), None);
        assert!(resolve_href("EPUB/package.opf", "../../etc/passwd").is_err());
        assert!(resolve_href("EPUB/package.opf", "EPUB/../../../../EPUB/nav.xhtml").is_err());
        assert!(resolve_href("EPUB/package.opf", "/EPUB/nav.xhtml").is_err());
        assert!(resolve_href("EPUB/package.opf", "C:/x.xhtml").is_err());
        assert!(resolve_href("EPUB/package.opf", "..\\..\\x.xhtml").is_err());
    }

    #[test]
    fn entry_names_are_checked_for_both_separators() {
        assert!(is_safe_entry_name("OEBPS/ch1.xhtml"));
        assert!(is_safe_entry_name("a..b/c"));
        assert!(!is_safe_entry_name("../../etc/passwd"));
        assert!(!is_safe_entry_name("..\\..\\Temp\\evil.txt"));
        assert!(!is_safe_entry_name("/etc/passwd"));
        assert!(!is_safe_entry_name("C:\\evil"));
    }
}
