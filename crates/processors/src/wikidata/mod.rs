//! The Wikidata and Commons client.
