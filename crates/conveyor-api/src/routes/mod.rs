//! One module per route group.

pub mod authors;
pub mod books;
pub mod dlq;
pub mod health;
pub mod jobs;
pub mod queues;
pub mod quotes;
pub mod schedules;
pub mod session;
pub mod system;
pub mod workers;
