//! One module per command group.

pub mod dlq;
pub mod domain;
pub mod jobs;
pub mod queues;
pub mod scheduled;
pub mod status;
pub mod workers;
