//! Everything Conveyor does in PostgreSQL. All SQL lives in this module.

/// The test "the job still waits" for statements that look jobs up by id, written
/// as "not running and not finished" on purpose. As `status IN ('PENDING',
/// 'DELAYED', 'RETRYING')` it matches the predicate of the partial index of waiting
/// jobs, and a planner whose statistics predate the backlog (a long history of
/// finished jobs, analysed before the backlog came) took that index for nearly
/// empty and read all of it, every waiting job, for each look-up: 45 ms for a
/// claim of 40 ids beside 20 000 waiting jobs. No partial index matches this form,
/// so the plan stays a key look-up per id. A macro so that `concat!` can put it
/// into the statements' literals.
macro_rules! waits {
    ($column:literal) => {
        concat!(
            $column,
            " NOT IN ('RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')"
        )
    };
}

/// A CTE that makes the statement joining it (`FROM …, relaxed`) commit without
/// waiting for its WAL to reach the disk (`synchronous_commit = off` for that one
/// transaction, with no extra round trip). Only for writes a PostgreSQL crash may
/// undo without harm: a progress figure (the next one replaces it), an outbox
/// deletion (the reconciler pushes those jobs again; the fence refuses what ran)
/// and a claim (its attempt's outcome is still written: the completion's fence
/// takes a job still waiting at the attempt before, see `Store::finish`). A macro
/// so that `concat!` can put it into the statements' literals.
macro_rules! relaxed_commit {
    () => {
        "relaxed AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))"
    };
}

mod admin;
mod batches;
mod cancel;
mod claims;
mod counters;
mod dispatch;
pub mod domain;
mod history;
pub(crate) mod jobs;
mod queues;
mod recovery;
mod reports;
mod retention;
pub(crate) mod schedules;
mod workers;

pub use admin::{QueueStats, RetryOutcome};
pub use batches::Spawned;
pub use cancel::CancelOutcome;
pub use claims::{ClaimedJob, FinalState, FinishedAttempt, HeldAttempt, ProgressUpdate, Written};
pub use counters::{Compacted, COMPACT_EVERY};
pub use dispatch::{DispatchError, OutboxEntry, Undispatched};
pub use domain::{
    Author, AuthorEnrichment, Book, CefrLevel, Chapter, DomainError, NewBook, NewChapter, NewQuote,
    Quote, UpsertedBook,
};
pub use history::{DueRecords, HistoryPartition, HISTORY_DAYS_AHEAD};
pub use jobs::{InsertedJob, JobFilter};
pub use recovery::{Recovered, WaitingJob};
pub use reports::{ErrorGroup, ERROR_WINDOW};
pub use retention::{PruneCursor, PARTITION_DROP_MIN_AGE_S, RETENTION_BATCH};
pub use schedules::{Schedule, ScheduleSpec, ScheduleStatus, ScheduleWrite, SCHEDULES_CHANNEL};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

use crate::error::StoreError;

/// See `relaxed_commit!`.
const RELAXED_COMMIT: &str = relaxed_commit!();

/// How often a statement refused because its row moved is tried again.
const MOVED_ROW_TRIES: usize = 5;

/// Runs `statement` again while PostgreSQL refuses it because a row it waited for
/// was moved to the other half of `jobs` by the transaction it waited for (a
/// completion, a cancel or a retry moves a record between the waiting-and-running
/// half and the history; SQLSTATE 40001, "tuple to be locked was already moved to
/// another partition"). Every statement wrapped here is guarded by the state it
/// expects, so run again it simply no longer matches the moved record.
async fn retry_if_moved<T, F, Fut>(mut statement: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 1;
    loop {
        match statement().await {
            Err(sqlx::Error::Database(db))
                if tries < MOVED_ROW_TRIES && db.code().as_deref() == Some("40001") =>
            {
                tries += 1;
            }
            other => return Ok(other?),
        }
    }
}

/// Pooled connections idle longer than this are pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

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
            // sqlx pings every connection it hands out by default: one more round
            // trip before each statement of the hot paths. Ping only connections
            // that sat idle (as pgx does); a connection that broke while busy fails
            // its statement, which every caller handles, and is then dropped.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
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

/// Every node of an `EXPLAIN (FORMAT JSON)` plan (for the plan tests).
#[cfg(test)]
pub(crate) fn plan_nodes(plan: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut nodes = Vec::new();
    let mut stack = vec![&plan[0]["Plan"]];
    while let Some(node) = stack.pop() {
        nodes.push(node);
        if let Some(children) = node["Plans"].as_array() {
            stack.extend(children);
        }
    }
    nodes
}
