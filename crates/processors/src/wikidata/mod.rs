//! The Wikidata and Commons client.
//!
//! [`WikidataClient`] finds a writer's item by name ([`WikidataClient::search_human`]),
//! reads the facts an author record needs from the item's entity JSON
//! ([`WikidataClient::entity`]) and downloads the portrait named by the item's image
//! ([`WikidataClient::download_image`]). Every request carries the configured
//! User-Agent, which Wikimedia requires of Wikidata and Commons alike.
//!
//! Errors say whether trying again can help ([`WikidataError::retryable`]) and how
//! long to wait first ([`WikidataError::retry_after`]): replication lag (`maxlag`),
//! 429, 5xx and timeouts are passing; a missing entity or a refused request is not.

mod claims;
mod client;
mod config;
mod entity;
mod error;
mod http;
mod image;
mod search;
mod time;
mod wire;

pub use client::WikidataClient;
pub use config::WikidataConfig;
pub use entity::AuthorFacts;
pub use error::{DownloadError, WikidataError};
pub use image::{commons_file_url, Downloaded};
