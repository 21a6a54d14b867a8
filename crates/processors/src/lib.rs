//! Conveyor's domain processors: the clients of the outside services the domain
//! queues call (language-model providers, Wikidata and Commons) and the EPUB reader.
//! Each module is a library of its own, tested against local servers that speak the
//! service's real wire format; [`jobs`] turns them into the domain queues' handlers.

pub mod ai;
pub mod epub;
pub mod jobs;
pub mod wikidata;
