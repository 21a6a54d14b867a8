//! Retention of finished job records (`[queues.*] retention`): per queue and state, a record is
//! deleted when it finished more than the maximum age ago and is not among the
//! newest `keep` records of its queue and state (keep 0: no such floor).
//!
//! Both conditions are one bound on the key `(completed_at, id)` of the index
//! `jobs_finished_idx`: the older of "finished at the cutoff" and "the keep-th
//! newest record", found once per pass. Records strictly below it go in batches,
//! newest first, each batch starting where the previous one stopped, so no
//! statement sorts or rereads the rows of a queue and state. A finished record
//! without a finish time (only ever written by hand) is never pruned.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Store;
use crate::error::StoreError;
use crate::job::JobStatus;

/// Records deleted per statement.
pub const RETENTION_BATCH: i64 = 1_000;

/// Ages beyond this keep everything anyway; larger ones would overflow the
/// timestamp arithmetic.
const MAX_AGE_CAP_S: u64 = 100 * 366 * 86_400;

// Every statement repeats the index predicate: with `status = $2` alone a generic
// plan (after a few executions PostgreSQL may plan without the parameter's value)
// could not prove the partial index applies.

/// The keep-th newest record of a queue and state ($3 = keep - 1).
const KEEP_BOUNDARY_SQL: &str = "SELECT completed_at, id FROM jobs
     WHERE queue_name = $1 AND status = $2 AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
     ORDER BY completed_at DESC, id DESC
     OFFSET $3 LIMIT 1";

/// One batch: the newest $5 records below ($3, $4) of `$table`. The ids go
/// through an array so the deletion looks each one up by its id index whatever
/// the plan's guess of their number (joined as `IN`, a generic plan hashed a scan
/// of the whole table); `completed_at <= $3` spares it the look-ups in the
/// partitions of later days. A macro so that `concat!` can name the table.
macro_rules! prune_batch_sql {
    ($table:literal) => {
        concat!(
            "DELETE FROM jobs WHERE completed_at <= $3 AND id = ANY(ARRAY(
               SELECT id FROM ",
            $table,
            "
               WHERE queue_name = $1 AND status = $2 AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
                 AND (completed_at, id) < ($3, $4)
               ORDER BY completed_at DESC, id DESC
               LIMIT $5
               FOR UPDATE SKIP LOCKED))
             RETURNING completed_at, id"
        )
    };
}

/// A batch from all of the history.
const PRUNE_BATCH_SQL: &str = prune_batch_sql!("jobs");

/// A batch from the default partition of the history only: with a maximum age of
/// a day or more, the records of a dated partition go with their partition (see
/// [`PARTITION_DROP_MIN_AGE_S`]).
const PRUNE_DEFAULT_BATCH_SQL: &str = prune_batch_sql!("jobs_history_default");

/// Maximum ages from a day up leave the records of the history's dated (daily)
/// partitions to the partition's drop: deleted with their day, up to a day after
/// their age is reached, instead of one by one as each comes due. Shorter ages
/// are applied to each record.
pub const PARTITION_DROP_MIN_AGE_S: u64 = 86_400;

/// Where a prune of one queue and state stands: records strictly below this
/// `(completed_at, id)` are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PruneCursor {
    completed_at: DateTime<Utc>,
    id: Uuid,
    /// Records of the history's default partition only (see
    /// [`PARTITION_DROP_MIN_AGE_S`]); the same for every cursor of one prune.
    default_partition_only: bool,
}

impl PruneCursor {
    pub fn completed_at(&self) -> DateTime<Utc> {
        self.completed_at
    }

    pub fn id(&self) -> Uuid {
        self.id
    }
}

impl Store {
    /// Where pruning `status` records of `queue` starts: below the older of
    /// `max_age_s` ago and the `keep`-th newest record. None when nothing can be
    /// due (fewer than `keep` records, or a state that is not finished).
    pub async fn prune_start(
        &self,
        queue: &str,
        status: JobStatus,
        max_age_s: u64,
        keep: u64,
    ) -> Result<Option<PruneCursor>, StoreError> {
        if !status.is_terminal() {
            return Ok(None);
        }
        let cutoff: DateTime<Utc> = sqlx::query_scalar("SELECT now() - make_interval(secs => $1)")
            .bind(max_age_s.min(MAX_AGE_CAP_S) as f64)
            .fetch_one(&self.pool)
            .await?;
        let default_partition_only = max_age_s >= PARTITION_DROP_MIN_AGE_S;
        // Uuid::nil() sorts first: every record finished before the cutoff is below.
        let by_age = PruneCursor {
            completed_at: cutoff,
            id: Uuid::nil(),
            default_partition_only,
        };
        if keep == 0 {
            return Ok(Some(by_age));
        }
        let nth: Option<(Option<DateTime<Utc>>, Uuid)> = sqlx::query_as(KEEP_BOUNDARY_SQL)
            .bind(queue)
            .bind(status.as_str())
            .bind(i64::try_from(keep - 1).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match nth {
            None => None,
            // Records without a finish time sort first (newest): every dated one
            // is below the keep-th.
            Some((None, _)) => Some(by_age),
            Some((Some(completed_at), id)) => Some(by_age.min(PruneCursor {
                completed_at,
                id,
                default_partition_only,
            })),
        })
    }

    /// Deletes up to [`RETENTION_BATCH`] `status` records of `queue` below `from`,
    /// newest first (records locked by another transaction are skipped). Returns
    /// how many went and where the next batch starts (None: nothing more is due).
    pub async fn prune_batch(
        &self,
        queue: &str,
        status: JobStatus,
        from: PruneCursor,
    ) -> Result<(u64, Option<PruneCursor>), StoreError> {
        let sql = if from.default_partition_only {
            PRUNE_DEFAULT_BATCH_SQL
        } else {
            PRUNE_BATCH_SQL
        };
        let gone: Vec<(Option<DateTime<Utc>>, Uuid)> = sqlx::query_as(sql)
            .bind(queue)
            .bind(status.as_str())
            .bind(from.completed_at)
            .bind(from.id)
            .bind(RETENTION_BATCH)
            .fetch_all(&self.pool)
            .await?;
        let deleted = gone.len() as u64;
        let next = gone
            .into_iter()
            .filter_map(|(t, id)| {
                t.map(|completed_at| PruneCursor {
                    completed_at,
                    id,
                    default_partition_only: from.default_partition_only,
                })
            })
            .min();
        Ok(match next {
            Some(next) if deleted >= RETENTION_BATCH as u64 => (deleted, Some(next)),
            _ => (deleted, None),
        })
    }

    /// Deletes `status` records of `queue` older than `max_age_s` (by finish time)
    /// that are not among its newest `keep`, in batches of [`RETENTION_BATCH`]
    /// without pausing between them. Safe to run from several processes at once.
    /// Returns how many were deleted.
    pub async fn prune_finished(
        &self,
        queue: &str,
        status: JobStatus,
        max_age_s: u64,
        keep: u64,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        let mut cursor = self.prune_start(queue, status, max_age_s, keep).await?;
        while let Some(from) = cursor {
            let (n, next) = self.prune_batch(queue, status, from).await?;
            total += n;
            cursor = next;
        }
        Ok(total)
    }

    /// The plans (`EXPLAIN (FORMAT JSON)`) of retention's two statements for
    /// `queue` and `status`: finding the keep-th newest record and deleting a
    /// batch. `generic`: as PostgreSQL plans them without the parameters' values
    /// (what a prepared statement may switch to after a few executions). For
    /// tests and for checking a database's plans by hand; deletes nothing.
    pub async fn explain_prune(
        &self,
        queue: &str,
        status: JobStatus,
        generic: bool,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut plans = Vec::with_capacity(2);
        if !generic {
            plans.push(
                sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {KEEP_BOUNDARY_SQL}"))
                    .bind(queue)
                    .bind(status.as_str())
                    .bind(99_i64)
                    .fetch_one(&mut *tx)
                    .await?,
            );
            plans.push(
                sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {PRUNE_BATCH_SQL}"))
                    .bind(queue)
                    .bind(status.as_str())
                    .bind(Utc::now())
                    .bind(Uuid::nil())
                    .bind(RETENTION_BATCH)
                    .fetch_one(&mut *tx)
                    .await?,
            );
        } else {
            sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
                .execute(&mut *tx)
                .await?;
            let batch_args = format!("%L, %L, now(), '{}', {RETENTION_BATCH}", Uuid::nil());
            for (types, sql, args) in [
                (
                    "text, text, bigint",
                    KEEP_BOUNDARY_SQL,
                    "%L, %L, 99".to_string(),
                ),
                (
                    "text, text, timestamptz, uuid, bigint",
                    PRUNE_BATCH_SQL,
                    batch_args,
                ),
            ] {
                // A name of its own: a statement left behind by an error (PREPARE
                // outlives the transaction) never blocks the next call.
                let name = format!("conveyor_explain_{}", Uuid::new_v4().simple());
                sqlx::raw_sql(&format!("PREPARE {name} ({types}) AS {sql}"))
                    .execute(&mut *tx)
                    .await?;
                // The server quotes the values into the EXECUTE (it takes no
                // parameters of its own).
                let explain: String = sqlx::query_scalar(
                    "SELECT format('EXPLAIN (FORMAT JSON) EXECUTE %s (' || $3 || ')', $4::text, $1::text, $2::text)",
                )
                .bind(queue)
                .bind(status.as_str())
                .bind(args)
                .bind(&name)
                .fetch_one(&mut *tx)
                .await?;
                plans.push(
                    sqlx::query_scalar(&explain)
                        .persistent(false)
                        .fetch_one(&mut *tx)
                        .await?,
                );
                sqlx::raw_sql(&format!("DEALLOCATE {name}"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.rollback().await?;
        Ok(plans)
    }
}
