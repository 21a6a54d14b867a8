//! The dispatch outbox: which recorded jobs Redis may not know about yet. Every write
//! that makes jobs wait (enqueue, retry, release, recovery) or fails them for good
//! adds one outbox row naming them, in the same statement; the writer deletes it
//! after telling Redis, and the reconciler handles what is left (Redis was down, the
//! writer died, or nobody was going to: transactional enqueue, lease recovery, Redis
//! lost its data): waiting jobs are pushed, FAILED ones get their dead letter.

use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

use super::{Store, RELAXED_COMMIT};
use crate::broker::{Ack, Broker, Dispatch};
use crate::error::StoreError;
use crate::job::JobStatus;

/// The outbox row a write adds for the jobs it makes wait.
#[derive(Debug, Clone, Copy)]
pub struct OutboxEntry {
    pub id: Uuid,
    /// The writer pushes the jobs itself and then deletes the row
    /// ([`Store::outbox_done`]); the reconciler waits a grace period before it
    /// takes such a row.
    pub writer_pushes: bool,
}

impl OutboxEntry {
    /// A row the writer will push and delete itself.
    pub fn pushed_by_writer() -> Self {
        Self {
            id: Uuid::new_v4(),
            writer_pushes: true,
        }
    }

    /// A row only the reconciler pushes (e.g. a job recorded inside a caller's
    /// transaction).
    pub fn for_reconciler() -> Self {
        Self {
            id: Uuid::new_v4(),
            writer_pushes: false,
        }
    }
}

/// The SQL of a CTE step that records the ids of CTE `source` (column `id`) as outbox
/// row `$id_param` (nothing when `source` is empty). `filter` narrows the rows.
pub(crate) fn outbox_cte(source: &str, filter: &str, id_param: &str, writer_param: &str) -> String {
    format!(
        "INSERT INTO dispatch_outbox (id, job_ids, writer_pushes)
         SELECT {id_param}, array_agg(id), {writer_param} FROM {source} {filter} HAVING count(*) > 0"
    )
}

/// A job named by an outbox row: waiting (to push) or FAILED (to dead-letter).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Undispatched {
    pub id: Uuid,
    pub queue_name: String,
    pub job_type: String,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub runs: i32,
    pub attempts: i32,
    pub error: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The jobs that outbox rows `$1` name and that Redis should hold: waiting ones
/// (to push) and FAILED ones (to dead-letter). The ids are index conditions
/// (whatever the statistics say of the active half's size), waiting jobs are
/// looked up in the active half only, and only the ids not found there (the
/// dead letters) in the history's days: a rebuild's rows name a thousand
/// waiting jobs each.
const UNDISPATCHED_SQL: &str = "WITH named AS (
        SELECT array_agg(u.job_id) AS ids
        FROM dispatch_outbox o CROSS JOIN LATERAL unnest(o.job_ids) AS u(job_id)
        WHERE o.id = ANY($1)
     ), active AS (
        SELECT j.id, j.queue_name, j.job_type, j.status, j.priority, j.run_at, j.runs, j.attempts,
               j.error, j.completed_at
        FROM jobs j WHERE j.id = ANY((SELECT ids FROM named)::uuid[]) AND j.completed_at IS NULL
     )
     SELECT * FROM active WHERE status IN ('PENDING', 'DELAYED', 'RETRYING')
     UNION ALL
     SELECT j.id, j.queue_name, j.job_type, j.status, j.priority, j.run_at, j.runs, j.attempts,
            j.error, j.completed_at
     FROM jobs_history j
     WHERE j.id = ANY((SELECT array_agg(u.id) FROM unnest((SELECT ids FROM named)) AS u(id)
                       WHERE u.id NOT IN (SELECT id FROM active))::uuid[])
       AND j.status = 'FAILED'";

impl Store {
    /// Deletes outbox rows whose jobs were pushed.
    pub async fn outbox_done(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        // A deletion a crash undoes only makes the reconciler push those jobs again
        // (the fence refuses what already ran).
        sqlx::query(&format!(
            "WITH {RELAXED_COMMIT} DELETE FROM dispatch_outbox USING relaxed WHERE id = ANY($1)"
        ))
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Pushes the still-waiting jobs of up to `limit` outbox rows and deletes the rows
    /// in the same transaction (so a failed push changes nothing). Rows whose writer
    /// pushes them are taken only once older than `grace`. Safe with many callers at
    /// once (SKIP LOCKED). Returns how many rows were handled.
    pub async fn dispatch_missing(
        &self,
        broker: &Broker,
        grace: Duration,
        limit: i64,
    ) -> Result<usize, DispatchError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let rows: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM dispatch_outbox
             WHERE NOT writer_pushes OR created_at < now() - make_interval(secs => $1)
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(grace.as_secs_f64())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let named: Vec<Undispatched> = sqlx::query_as(UNDISPATCHED_SQL)
            .bind(&rows)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let (failed, waiting): (Vec<_>, Vec<_>) = named
            .into_iter()
            .partition(|r| r.status == JobStatus::Failed);
        let items: Vec<Dispatch> = waiting
            .into_iter()
            .map(|r| Dispatch {
                queue: r.queue_name,
                id: r.id,
                priority: r.priority,
                run_at: Some(r.run_at),
            })
            .collect();
        broker.push(&items).await?;
        // Dead letters are added once per job and run, so re-sending one the
        // completer already sent changes nothing.
        let letters: Vec<(String, Uuid, Ack)> = failed
            .into_iter()
            .map(|r| {
                let ack = Ack::DeadLetter {
                    job_type: r.job_type,
                    error: r.error.unwrap_or_default(),
                    run: r.runs,
                    attempts: r.attempts,
                    failed_at: r.completed_at.unwrap_or_else(Utc::now),
                };
                (r.queue_name, r.id, ack)
            })
            .collect();
        broker.ack(&letters).await?;
        // A deletion a crash undoes only makes the reconciler push those jobs again
        // (the fence refuses what already ran).
        sqlx::query(&format!(
            "WITH {RELAXED_COMMIT} DELETE FROM dispatch_outbox USING relaxed WHERE id = ANY($1)"
        ))
        .bind(&rows)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        if !items.is_empty() || !letters.is_empty() {
            tracing::info!(
                jobs = items.len(),
                dead_letters = letters.len(),
                "sent redis what it was missing"
            );
        }
        Ok(rows.len())
    }
}

/// A dispatch sweep failed in one of the two stores.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] crate::error::BrokerError),
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sqlx::PgPool;

    use super::*;

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn a_sweep_looks_waiting_jobs_up_in_the_active_half_and_only_the_rest_in_the_history(
        pool: PgPool,
    ) {
        let today = Utc::now().date_naive();
        Store::new(pool.clone())
            .add_history_partitions(today - chrono::Duration::days(10), today)
            .await
            .unwrap();
        // Nine whole days of history, analysed.
        sqlx::query(
            "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at, completed_at)
             SELECT gen_random_uuid(), 'diagnostics', 'NOOP', 'COMPLETED', '{}', 3, now(),
                    date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                        - interval '9 days' + g * interval '38 seconds'
             FROM generate_series(1, 20000) g",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE jobs").execute(&pool).await.unwrap();
        // 1 000 waiting jobs, 10 FAILED ones, 5 COMPLETED ones: one outbox row
        // names them all, as a rebuild after a Redis loss does.
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at, completed_at)
             SELECT gen_random_uuid(), 'diagnostics', 'NOOP', s, '{}', 3, now(),
                    CASE WHEN s <> 'PENDING' THEN now() - g * interval '1 hour' END
             FROM generate_series(1, 1015) g,
                  LATERAL (SELECT CASE WHEN g <= 1000 THEN 'PENDING' WHEN g <= 1010 THEN 'FAILED'
                                       ELSE 'COMPLETED' END AS s) st
             RETURNING id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let outbox = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO dispatch_outbox (id, job_ids, writer_pushes) VALUES ($1, $2, false)",
        )
        .bind(outbox)
        .bind(&ids)
        .execute(&pool)
        .await
        .unwrap();

        let named: Vec<Undispatched> = sqlx::query_as(UNDISPATCHED_SQL)
            .bind([outbox])
            .fetch_all(&pool)
            .await
            .unwrap();
        let count = |status: JobStatus| named.iter().filter(|j| j.status == status).count();
        assert_eq!(
            (
                count(JobStatus::Pending),
                count(JobStatus::Failed),
                named.len()
            ),
            (1000, 10, 1010)
        );

        let plan: serde_json::Value = sqlx::query_scalar(&format!(
            "EXPLAIN (ANALYZE, FORMAT JSON) {UNDISPATCHED_SQL}"
        ))
        .bind([outbox])
        .fetch_one(&pool)
        .await
        .unwrap();
        // Each day of the history is read for the 15 ids not waiting at most,
        // never for the 1 000 waiting ones, and never whole.
        let (mut history_reads, mut history_rows) = (0, 0);
        for node in crate::store::plan_nodes(&plan) {
            let relation = node["Relation Name"].as_str().unwrap_or_default();
            if relation.starts_with("jobs_history") {
                history_reads += 1;
                let loops = node["Actual Loops"].as_i64().unwrap_or(0);
                assert!(loops <= 15, "{loops} reads of {relation}: {plan}");
                let rows = node["Actual Rows"].as_i64().unwrap_or(0)
                    + node["Rows Removed by Filter"].as_i64().unwrap_or(0);
                history_rows += rows * loops;
            }
        }
        assert!(
            history_reads > 10,
            "the history's days are in the plan: {plan}"
        );
        assert!(
            history_rows <= 15,
            "{history_rows} history rows read: {plan}"
        );
    }
}
