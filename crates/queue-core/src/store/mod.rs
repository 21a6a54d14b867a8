//! Everything Conveyor does in PostgreSQL. All SQL lives in this module.

mod admin;
mod cancel;
mod claims;
mod counters;
mod dispatch;
pub(crate) mod jobs;
mod queues;
mod recovery;
mod reports;
mod retention;
pub(crate) mod schedules;
mod workers;

pub use admin::{QueueStats, RetryOutcome};
pub use cancel::CancelOutcome;
pub use claims::{ClaimedJob, FinalState, FinishedAttempt, ProgressUpdate};
pub use counters::{Compacted, COMPACT_EVERY};
pub use dispatch::{DispatchError, OutboxEntry, Undispatched};
pub use jobs::{InsertedJob, JobFilter};
pub use recovery::Recovered;
pub use reports::{ErrorGroup, ERROR_WINDOW};
pub use retention::RETENTION_BATCH;
pub use schedules::{
    Schedule, ScheduleSpec, ScheduleWrite, SCHEDULES_CHANNEL, STATUS_DISABLED, STATUS_ENABLED,
    STATUS_PAUSED,
};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

use crate::error::StoreError;

/// Migrations embedded from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The job store over a connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a pool that fails fast when the database is down (callers retry).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::Query)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        Ok(Self::new(pool))
    }

    /// Applies pending migrations (API and scheduler do this at start).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// True once every embedded migration has been applied (workers wait for it).
    pub async fn schema_is_current(&self) -> Result<bool, StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .or_else(|e| match e {
                    sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                        Ok(Vec::new())
                    }
                    other => Err(other),
                })?;
        Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
    }

    /// A trivial round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
