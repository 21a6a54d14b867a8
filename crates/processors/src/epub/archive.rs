//! The ZIP container, read within limits. The central directory is checked before any
//! entry is decompressed (names, declared sizes, declared ratios); each read then counts
//! the bytes that really come out, because declared sizes are only claims.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use zip::ZipArchive;

use super::path::is_safe_entry_name;
use super::{EpubError, EpubLimits};

/// Far more files than any book has; bounds the work done on a central directory.
const MAX_ENTRIES: usize = 65_536;

/// Entries that expand to less than this are not held to the ratio: they cannot
/// exhaust anything, and a short run of whitespace alone compresses past 100:1.
const RATIO_FLOOR_BYTES: u64 = 64 * 1024;

const READ_CHUNK: usize = 64 * 1024;

pub(crate) struct Archive {
    zip: ZipArchive<BufReader<File>>,
    limits: EpubLimits,
    /// Entry name → index, and the same with names lower-cased: some books get the
    /// case of their references wrong, which case-insensitive readers forgive.
    names: HashMap<String, usize>,
    folded: HashMap<String, usize>,
    /// Bytes decompressed so far, across all entries.
    read_total: u64,
}

impl Archive {
    pub(crate) fn open(path: &Path, limits: EpubLimits) -> Result<Self, EpubError> {
        let file = File::open(path).map_err(|source| io_error(path, source))?;
        let zip = ZipArchive::new(BufReader::new(file)).map_err(|err| EpubError::NotZip {
            reason: err.to_string(),
        })?;
        if zip.len() > MAX_ENTRIES {
            return Err(EpubError::TooManyEntries {
                count: zip.len(),
                limit: MAX_ENTRIES,
            });
        }
        let mut names = HashMap::with_capacity(zip.len());
        let mut folded = HashMap::with_capacity(zip.len());
        let mut declared_total: u64 = 0;
        for index in 0..zip.len() {
            let entry = zip.by_index_data(index).map_err(|err| EpubError::NotZip {
                reason: err.to_string(),
            })?;
            let name = match entry.name() {
                Ok(name) => name.into_owned(),
                Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
            };
            if !is_safe_entry_name(&name) {
                return Err(EpubError::UnsafeEntryName { name });
            }
            check_size(&name, entry.size(), entry.compressed_size(), &limits)?;
            declared_total = declared_total.saturating_add(entry.size());
            if declared_total > limits.max_total_bytes {
                return Err(EpubError::ArchiveTooLarge {
                    limit: limits.max_total_bytes,
                });
            }
            if !entry.is_dir() {
                folded.entry(name.to_lowercase()).or_insert(index);
                names.insert(name, index);
            }
        }
        Ok(Archive {
            zip,
            limits,
            names,
            folded,
            read_total: 0,
        })
    }

    /// The entry's index, matching the name exactly or else ignoring case.
    fn index_of(&self, name: &str) -> Option<usize> {
        self.names
            .get(name)
            .or_else(|| self.folded.get(&name.to_lowercase()))
            .copied()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    /// The entry's bytes, or `None` when there is no such entry.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, EpubError> {
        match self.index_of(name) {
            Some(index) => self.read_index(index, name).map(Some),
            None => Ok(None),
        }
    }

    fn read_index(&mut self, index: usize, name: &str) -> Result<Vec<u8>, EpubError> {
        let file = self
            .zip
            .by_index(index)
            .map_err(|err| EpubError::CorruptEntry {
                entry: name.to_owned(),
                reason: err.to_string(),
            })?;
        let compressed = file.compressed_size();
        let bytes = read_limited(file, name, compressed, self.read_total, &self.limits)?;
        self.read_total = self.read_total.saturating_add(bytes.len() as u64);
        Ok(bytes)
    }
}

/// Reads one entry's decompressed bytes, counting what really comes out: over
/// `max_entry_bytes`, over `max_ratio` times `compressed`, or over what is left of
/// `max_total_bytes` after `read_before`, and reading stops with an error. The ZIP
/// reader also refuses output beyond the declared size; this does not rely on it.
fn read_limited(
    source: impl Read,
    name: &str,
    compressed: u64,
    read_before: u64,
    limits: &EpubLimits,
) -> Result<Vec<u8>, EpubError> {
    let ratio_cap = ratio_cap(compressed, limits);
    // One byte past the limit is enough to prove the entry too big.
    let mut reader = source.take(limits.max_entry_bytes.saturating_add(1));
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(EpubError::CorruptEntry {
                    entry: name.to_owned(),
                    reason: err.to_string(),
                })
            }
        };
        let len = bytes.len() as u64 + n as u64;
        if len > limits.max_entry_bytes {
            return Err(EpubError::EntryTooLarge {
                entry: name.to_owned(),
                limit: limits.max_entry_bytes,
            });
        }
        if len > ratio_cap {
            return Err(EpubError::CompressionRatio {
                entry: name.to_owned(),
                limit: limits.max_ratio,
            });
        }
        if read_before.saturating_add(len) > limits.max_total_bytes {
            return Err(EpubError::ArchiveTooLarge {
                limit: limits.max_total_bytes,
            });
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// Refuses an entry on what the central directory declares, before reading it.
fn check_size(
    name: &str,
    size: u64,
    compressed: u64,
    limits: &EpubLimits,
) -> Result<(), EpubError> {
    if size > limits.max_entry_bytes {
        return Err(EpubError::EntryTooLarge {
            entry: name.to_owned(),
            limit: limits.max_entry_bytes,
        });
    }
    if size > ratio_cap(compressed, limits) {
        return Err(EpubError::CompressionRatio {
            entry: name.to_owned(),
            limit: limits.max_ratio,
        });
    }
    Ok(())
}

/// The most an entry of this compressed size may expand to.
fn ratio_cap(compressed: u64, limits: &EpubLimits) -> u64 {
    compressed
        .saturating_mul(limits.max_ratio)
        .max(RATIO_FLOOR_BYTES)
}

fn io_error(path: &Path, source: std::io::Error) -> EpubError {
    EpubError::Io {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::io::repeat;

    use super::*;

    const LIMITS: EpubLimits = EpubLimits {
        max_entry_bytes: 1_000_000,
        max_total_bytes: 3_000_000,
        max_ratio: 100,
    };

    /// A source yielding `len` bytes, whatever any header claimed.
    fn source(len: u64) -> impl Read {
        repeat(b'a').take(len)
    }

    #[test]
    fn reads_within_limits() {
        let bytes = read_limited(source(500_000), "e", 10_000, 0, &LIMITS).unwrap();
        assert_eq!(bytes.len(), 500_000);
    }

    #[test]
    fn stops_one_byte_past_the_entry_limit() {
        let err = read_limited(source(u64::MAX), "e", u64::MAX / 200, 0, &LIMITS).unwrap_err();
        assert!(
            matches!(
                err,
                EpubError::EntryTooLarge {
                    limit: 1_000_000,
                    ..
                }
            ),
            "{err:?}"
        );
        let exact = read_limited(source(1_000_000), "e", 1_000_000, 0, &LIMITS).unwrap();
        assert_eq!(exact.len(), 1_000_000);
    }

    #[test]
    fn stops_when_output_outgrows_the_compressed_size() {
        let err = read_limited(source(u64::MAX), "e", 1_000, 0, &LIMITS).unwrap_err();
        assert!(
            matches!(err, EpubError::CompressionRatio { limit: 100, .. }),
            "{err:?}"
        );
        // Small entries are not held to the ratio.
        assert!(read_limited(source(RATIO_FLOOR_BYTES), "e", 1, 0, &LIMITS).is_ok());
    }

    #[test]
    fn stops_when_the_archive_total_is_reached() {
        let err = read_limited(source(600_000), "e", 600_000, 2_500_000, &LIMITS).unwrap_err();
        assert!(
            matches!(err, EpubError::ArchiveTooLarge { limit: 3_000_000 }),
            "{err:?}"
        );
    }

    #[test]
    fn declared_sizes_are_checked_before_reading() {
        assert!(check_size("e", 1_000_000, 10_000, &LIMITS).is_ok());
        assert!(matches!(
            check_size("e", 1_000_001, 1_000_001, &LIMITS),
            Err(EpubError::EntryTooLarge { .. })
        ));
        assert!(matches!(
            check_size("e", 200_000, 1_000, &LIMITS),
            Err(EpubError::CompressionRatio { .. })
        ));
    }
}
