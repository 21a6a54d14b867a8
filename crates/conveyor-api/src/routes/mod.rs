//! One module per route group.

pub mod health;
pub mod jobs;
