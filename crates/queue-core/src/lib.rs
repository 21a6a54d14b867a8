//! Conveyor's engine.
//!
//! PostgreSQL holds every job record and is the source of truth; Redis carries job
//! ids for fast dispatch. A job's life:
//!
//! 1. [`Conveyor::enqueue`] validates it against the [`Catalog`], inserts the record
//!    (`store`), then pushes the id to the queue's Redis keys (`broker`).
//! 2. A [`worker::Worker`] blocks on the queue's wake-up marker, claims a batch of ids
//!    in Redis (one Lua script), then fences them in PostgreSQL with one `UPDATE`
//!    (`RUNNING`, `attempts + 1`): ids whose record is not claimable are dropped.
//! 3. The handler registered for the job type runs (`handler`), with a timeout, a
//!    cancellation token and progress reporting.
//! 4. The completer writes outcomes in batches, each guarded by the attempt it
//!    claimed, then acknowledges Redis (retries go to the delayed set, failures to the
//!    dead-letter stream).

pub mod bootstrap;
pub mod broker;
pub mod catalog;
pub mod client;
pub mod config;
pub mod cron;
pub mod diagnostics;
pub mod enqueue;
pub mod error;
pub mod handler;
pub mod job;
pub mod metrics;
pub mod retry;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod worker;

pub use catalog::{Catalog, JobType};
pub use client::Conveyor;
pub use config::Config;
pub use error::{BrokerError, EnqueueError, StoreError};
pub use handler::{BatchHandler, Handler, HandlerRegistry, JobContext, JobError};
pub use job::{Backoff, Execution, Job, JobStatus, NewJob, Priority};
