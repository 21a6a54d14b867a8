//! The daily partitions of finished records (`jobs_history_pYYYYMMDD`, one per
//! UTC day of `completed_at`): created ahead of the days they will hold, and
//! dropped whole by retention once the day is past the retention age, so a day
//! of history costs one `DROP TABLE`, not a `DELETE` per record.

use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::retention::PruneCursor;
use super::Store;
use crate::error::StoreError;
use crate::job::JobStatus;

/// Days of partitions kept ready beyond today.
pub const HISTORY_DAYS_AHEAD: i64 = 3;

/// How long retention's partition maintenance waits for a lock on the history
/// before giving up until its next pass: a detach waits for every transaction
/// writing the history, and every completion queues behind it meanwhile.
const PARTITION_LOCK_TIMEOUT: &str = "2s";

/// One daily partition of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPartition {
    pub name: String,
    /// The first instant of its UTC day; it holds records finished before the next.
    pub day_start: DateTime<Utc>,
}

impl HistoryPartition {
    /// The instant its day ends (exclusive).
    pub fn day_end(&self) -> DateTime<Utc> {
        self.day_start + Span::days(1)
    }
}

/// What retention would delete of one queue and state: records strictly below
/// `cursor` (the older of its age cutoff and its keep-th newest record).
#[derive(Debug, Clone)]
pub struct DueRecords {
    pub queue: String,
    pub status: JobStatus,
    pub cursor: PruneCursor,
}

impl Store {
    /// A transaction for creating or dropping partitions, giving up on a lock
    /// after [`PARTITION_LOCK_TIMEOUT`].
    async fn partition_maintenance(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT}'"
        ))
        .execute(&mut *tx)
        .await?;
        Ok(tx)
    }

    /// Creates the missing daily partitions from `first_day` to `last_day` (UTC),
    /// moving records of those days out of the default partition. Returns how
    /// many were created.
    pub async fn add_history_partitions(
        &self,
        first_day: NaiveDate,
        last_day: NaiveDate,
    ) -> Result<i32, StoreError> {
        let mut tx = self.partition_maintenance().await?;
        let created: i32 = sqlx::query_scalar("SELECT conveyor_add_history_partitions($1, $2)")
            .bind(first_day)
            .bind(last_day)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Today's partition and [`HISTORY_DAYS_AHEAD`] more (by the database's clock).
    pub async fn prepare_history_partitions(&self) -> Result<i32, StoreError> {
        let today: NaiveDate = sqlx::query_scalar("SELECT (now() AT TIME ZONE 'UTC')::date")
            .fetch_one(&self.pool)
            .await?;
        self.add_history_partitions(today, today + Span::days(HISTORY_DAYS_AHEAD))
            .await
    }

    /// The daily partitions, oldest first.
    pub async fn history_partitions(&self) -> Result<Vec<HistoryPartition>, StoreError> {
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT partition_name, first_instant FROM conveyor_history_partitions()",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, day_start)| HistoryPartition { name, day_start })
            .collect())
    }

    /// Drops every daily partition whose day ended `older_than_s` or more ago (by
    /// the database's clock), oldest first, as [`Store::drop_history_partition`]
    /// does. Returns the records dropped.
    pub async fn drop_expired_history(
        &self,
        due: &[DueRecords],
        older_than_s: u64,
    ) -> Result<i64, StoreError> {
        let cutoff: DateTime<Utc> = sqlx::query_scalar("SELECT now() - make_interval(secs => $1)")
            .bind(older_than_s as f64)
            .fetch_one(&self.pool)
            .await?;
        let mut dropped = 0;
        for partition in self.history_partitions().await? {
            if partition.day_end() > cutoff {
                break;
            }
            dropped += self.drop_history_partition(&partition, due).await?;
        }
        Ok(dropped)
    }

    /// Drops `partition`: its records that `due` names go with it (the counters,
    /// idempotency keys and attempt log with them); every other record of it
    /// moves to the default partition, where retention deletes it by the record
    /// when its time comes. Returns the records dropped (0 if another pass
    /// dropped it first).
    pub async fn drop_history_partition(
        &self,
        partition: &HistoryPartition,
        due: &[DueRecords],
    ) -> Result<i64, StoreError> {
        let queues: Vec<&str> = due.iter().map(|d| d.queue.as_str()).collect();
        let statuses: Vec<&str> = due.iter().map(|d| d.status.as_str()).collect();
        let cut_at: Vec<DateTime<Utc>> = due.iter().map(|d| d.cursor.completed_at()).collect();
        let cut_id: Vec<Uuid> = due.iter().map(|d| d.cursor.id()).collect();
        let mut tx = self.partition_maintenance().await?;
        let dropped: i64 =
            sqlx::query_scalar("SELECT conveyor_drop_history_partition($1, $2, $3, $4, $5)")
                .bind(&partition.name)
                .bind(&queues)
                .bind(&statuses)
                .bind(&cut_at)
                .bind(&cut_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(dropped)
    }
}
