//! Errors of the Wikidata client. Policy: each variant is either passing (the same
//! request may succeed later: lag, throttling, server trouble, timeouts, the network)
//! or permanent (the answer will not change: a missing entity, a refused request, an
//! image that breaks the rules). Messages name the request or the id, so a job that
//! fails with one can be understood from its record alone.

use std::path::PathBuf;
use std::time::Duration;

/// A failed request to Wikidata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WikidataError {
    /// Replication lag: MediaWiki answers HTTP 200 with `error.code = "maxlag"`.
    #[error("Wikidata is lagging (maxlag) and refused {what}; retry in {}s", .retry_after.as_secs())]
    Maxlag { what: String, retry_after: Duration },
    /// HTTP 429, or the API's `ratelimited` error.
    #[error("Wikidata rate-limited {what}")]
    RateLimited {
        what: String,
        retry_after: Option<Duration>,
    },
    /// HTTP 5xx.
    #[error("Wikidata answered HTTP {status} to {what}")]
    Server {
        what: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{what} timed out")]
    Timeout { what: String },
    /// The connection failed or broke before a whole answer arrived.
    #[error("could not reach Wikidata for {what}: {source}")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Wikidata has no entity {id}")]
    NoSuchEntity { id: String },
    #[error("{id:?} is not a Wikidata item id (Q followed by digits)")]
    InvalidId { id: String },
    /// Any other 4xx.
    #[error("Wikidata refused {what} with HTTP {status}")]
    Rejected { what: String, status: u16 },
    /// An API error other than the ones above, e.g. `nosearch`.
    #[error("Wikidata answered {what} with error {code}: {info}")]
    Api {
        what: String,
        code: String,
        info: String,
    },
    #[error("Wikidata's answer to {what} could not be read: {detail}")]
    Malformed { what: String, detail: String },
    #[error("wikidata.{key} is invalid: {detail}")]
    Config { key: &'static str, detail: String },
}

impl WikidataError {
    /// True when the same request may succeed if tried again later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Maxlag { .. }
                | Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Transport { .. }
        )
    }

    /// How long the service asked us to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Maxlag { retry_after, .. } => Some(*retry_after),
            Self::RateLimited { retry_after, .. } | Self::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// A failed image download.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    #[error("the image at {url} is not an image: its Content-Type is {content_type}")]
    NotAnImage { url: String, content_type: String },
    /// `declared` is the Content-Length when that alone gave it away; `None` when the
    /// body was counted while streaming.
    #[error("the image at {url} is larger than the limit of {max_bytes} bytes{}", declared_note(.declared))]
    TooLarge {
        url: String,
        max_bytes: u64,
        declared: Option<u64>,
    },
    #[error("{name:?} cannot name an image file: use letters, digits, '-' and '_'")]
    InvalidName { name: String },
    #[error("{url:?} is not an http(s) URL")]
    InvalidUrl { url: String },
    #[error("the image server answered HTTP {status} for {url}")]
    Status {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("downloading {url} timed out")]
    Timeout { url: String },
    #[error("could not download {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("could not write the image into {}: {source}", .dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn declared_note(declared: &Option<u64>) -> String {
    match declared {
        Some(n) => format!(" (Content-Length {n})"),
        None => " (counted while downloading)".to_owned(),
    }
}

impl DownloadError {
    /// True when the same download may succeed if tried again later. A full disk or
    /// a missing permission is an operator's fix, after which a retry succeeds.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Timeout { .. } | Self::Transport { .. } | Self::Io { .. } => true,
            _ => false,
        }
    }

    /// How long the server asked us to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
