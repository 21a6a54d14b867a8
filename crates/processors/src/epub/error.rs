//! What can go wrong reading an EPUB. Every variant but [`EpubError::Io`] comes from
//! the file itself, so retrying the same file cannot help: see [`EpubError::is_retryable`].

use std::path::PathBuf;

/// Why a book could not be read. Messages name the entry or path at fault and never
/// include file contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EpubError {
    /// The requested path is empty, absolute or climbs with `..`.
    #[error("invalid EPUB path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The path resolves (symbolic links followed) to a place outside the EPUB directory.
    #[error("EPUB path {path:?} leaves the EPUB directory")]
    OutsideDir {
        /// The path as given.
        path: String,
    },
    /// No file at the path.
    #[error("EPUB file {path:?} not found")]
    NotFound {
        /// The path as given.
        path: String,
    },
    /// The path names a directory or a special file.
    #[error("EPUB path {path:?} is not a regular file")]
    NotAFile {
        /// The path as given.
        path: String,
    },
    /// Reading the file failed for a reason outside the file's content.
    #[error("reading {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a readable ZIP archive.
    #[error("not an EPUB: not a readable ZIP archive ({reason})")]
    NotZip {
        /// What the ZIP reader reported.
        reason: String,
    },
    /// An entry could not be decompressed.
    #[error("archive entry {entry:?} is unreadable: {reason}")]
    CorruptEntry {
        /// The entry's name.
        entry: String,
        /// What the ZIP reader reported.
        reason: String,
    },
    /// More entries than any book needs.
    #[error("archive has {count} entries, more than the limit of {limit}")]
    TooManyEntries {
        /// Entries in the central directory.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry name is absolute or climbs out of the archive with `..` (zip slip).
    #[error("archive entry name {name:?} escapes the archive root")]
    UnsafeEntryName {
        /// The entry's name.
        name: String,
    },
    /// A reference inside the book is absolute or climbs out of the archive.
    #[error("reference {href:?} in {entry} escapes the archive root")]
    UnsafeHref {
        /// The reference as written.
        href: String,
        /// The document holding it.
        entry: String,
    },
    /// One entry decompresses to more than `max_entry_bytes`.
    #[error("archive entry {entry:?} is larger than {limit} bytes uncompressed")]
    EntryTooLarge {
        /// The entry's name.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// The archive decompresses to more than `max_total_bytes`.
    #[error("archive is larger than {limit} bytes uncompressed")]
    ArchiveTooLarge {
        /// The limit.
        limit: u64,
    },
    /// An entry expands more than `max_ratio` times its compressed size (a zip bomb).
    #[error("archive entry {entry:?} expands more than {limit} times its compressed size")]
    CompressionRatio {
        /// The entry's name.
        entry: String,
        /// The limit.
        limit: u64,
    },
    /// `META-INF/container.xml` is absent.
    #[error("not an EPUB: META-INF/container.xml is missing")]
    MissingContainer,
    /// `container.xml` names no package document.
    #[error("META-INF/container.xml names no package document (OPF)")]
    NoRootfile,
    /// The package document named by `container.xml` is absent.
    #[error("package document {path:?} is not in the archive")]
    MissingPackage {
        /// The path `container.xml` gives.
        path: String,
    },
    /// An XML document that must be read could not be parsed.
    #[error("{entry} is not well-formed XML: {reason}")]
    Xml {
        /// The entry's name.
        entry: String,
        /// What the parser reported.
        reason: String,
    },
    /// The package document is well-formed but not usable.
    #[error("invalid package document {entry}: {reason}")]
    InvalidPackage {
        /// The package document's entry name.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A spine item is not in the archive.
    #[error("spine item {idref:?} ({path}) is not in the archive")]
    MissingSpineItem {
        /// The item's manifest id.
        idref: String,
        /// Where the manifest says it is.
        path: String,
    },
    /// Content other than fonts is encrypted.
    #[error("book is DRM-protected: {entry} is encrypted")]
    DrmProtected {
        /// The first encrypted resource that is not a font.
        entry: String,
    },
}

impl EpubError {
    /// Whether reading the same file again might succeed. Only failures of the file
    /// system qualify; everything else is a property of the file.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EpubError::Io { .. })
    }
}
