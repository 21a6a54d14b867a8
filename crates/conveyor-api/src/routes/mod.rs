//! One module per route group.

pub mod dlq;
pub mod health;
pub mod jobs;
pub mod queues;
pub mod workers;
