//! One module per route group.

pub mod dlq;
pub mod events;
pub mod health;
pub mod jobs;
pub mod queues;
pub mod schedules;
pub mod system;
pub mod workers;
