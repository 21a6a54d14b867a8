//! The EPUB reader: container, package document, spine and chapter text, within limits.
