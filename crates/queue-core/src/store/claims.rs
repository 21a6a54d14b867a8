//! The claim (the fence) and every later write of an attempt, each guarded by the
//! attempt the claim returned: its run, its attempt number and its worker. A
//! write of a worker that lost its attempt (its lease was recovered, or an admin
//! retry started a new run) changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::dispatch::outbox_cte;
use super::{retry_if_moved, Store, RELAXED_COMMIT};
use crate::error::StoreError;
use crate::job::{ExecutionStatus, JobStatus};

/// The claim: one key look-up per id whatever the statistics say (see `waits!`),
/// each row locked in id order. A join with the ids keeps the look-ups in the
/// array's order.
///
/// `j.id = ANY($1)` repeats the join for the planner, as every statement here
/// that names its jobs by id does: the waiting-and-running half of `jobs` is
/// often analysed while empty (after a drain), and with "no rows" in its
/// statistics the planner made it the outer side of the join, a whole scan of
/// the half for each statement. With the ids as an index condition, each plan
/// it can choose looks them up.
///
/// It commits without waiting for the disk (one durable commit fewer between an
/// enqueue and its handler): a PostgreSQL crash may undo it, leaving the job
/// waiting at its previous attempt while the worker runs it. The worker's
/// outcome is still written then (see [`Store::finish`]); nothing else of that
/// attempt needed the claim to be durable (its lease lives in Redis too).
const CLAIM_SQL: &str = concat!(
    "WITH ",
    relaxed_commit!(),
    "
 UPDATE jobs j SET status = 'RUNNING', attempts = j.attempts + 1, started_at = now(), worker_id = $2,
                   progress = 0, progress_message = NULL,
                   lease_expires_at = now() + make_interval(secs => $3)
 FROM unnest($1::uuid[]) AS c(id), relaxed
 WHERE j.id = c.id AND j.id = ANY($1) AND j.completed_at IS NULL AND ",
    waits!("j.status"),
    " AND NOT j.cancel_requested
   AND j.run_at <= now() + interval '1 second'
 RETURNING j.id, j.job_type, j.payload, j.runs, j.attempts, j.max_attempts, j.priority, j.timeout_ms, j.backoff,
           j.started_at"
);

/// The guard of an attempt's outcome and of its release: the job is still
/// RUNNING this attempt for this worker, or still waiting at the attempt before
/// (a PostgreSQL crash undid the claim, which commits without waiting for the
/// disk). The run is checked by the statement.
macro_rules! still_held {
    ($attempt:literal, $worker:literal) => {
        concat!(
            "((j.status = 'RUNNING' AND j.attempts = ",
            $attempt,
            " AND j.worker_id = ",
            $worker,
            ") OR (",
            waits!("j.status"),
            " AND j.attempts = ",
            $attempt,
            " - 1 AND NOT j.cancel_requested))"
        )
    };
}

/// A job a worker now holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub job_type: String,
    pub payload: Value,
    /// The run this attempt belongs to (an admin retry starts a new one).
    pub runs: i32,
    /// The attempt this claim started (with `runs` and the worker, the fencing token).
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i32,
    pub timeout_ms: Option<i32>,
    pub backoff: Option<Value>,
    pub started_at: DateTime<Utc>,
}

/// Where a finished attempt leaves its job.
#[derive(Debug, Clone)]
pub enum FinalState {
    Completed(Value),
    /// Failed with attempts left: RETRYING until `run_at`.
    Retrying {
        error: String,
        run_at: DateTime<Utc>,
    },
    /// FAILED for good.
    Failed(String),
    Cancelled(String),
}

/// How a [`FinalState`] is written: the job's columns and its execution row's status.
struct StateColumns<'a> {
    status: JobStatus,
    result: Option<&'a Value>,
    error: Option<&'a str>,
    run_at: Option<DateTime<Utc>>,
    /// The attempt's outcome in `job_executions` (a retry logs a FAILED attempt).
    execution: ExecutionStatus,
}

impl FinalState {
    fn columns(&self) -> StateColumns<'_> {
        let (status, result, error, run_at, execution) = match self {
            Self::Completed(v) => (
                JobStatus::Completed,
                Some(v),
                None,
                None,
                ExecutionStatus::Completed,
            ),
            Self::Retrying { error, run_at } => (
                JobStatus::Retrying,
                None,
                Some(error.as_str()),
                Some(*run_at),
                ExecutionStatus::Failed,
            ),
            Self::Failed(e) => (
                JobStatus::Failed,
                None,
                Some(e.as_str()),
                None,
                ExecutionStatus::Failed,
            ),
            Self::Cancelled(e) => (
                JobStatus::Cancelled,
                None,
                Some(e.as_str()),
                None,
                ExecutionStatus::Cancelled,
            ),
        };
        StateColumns {
            status,
            result,
            error,
            run_at,
            execution,
        }
    }
}

/// A job a batch of finished attempts changed, and the status it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Written {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
}

/// An attempt a worker holds: the fencing token of every write after the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldAttempt {
    pub id: Uuid,
    pub run: i32,
    pub attempt: i32,
}

/// One finished attempt, ready to be written.
#[derive(Debug, Clone)]
pub struct FinishedAttempt {
    pub id: Uuid,
    pub run: i32,
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub state: FinalState,
}

/// The latest progress of a running attempt.
#[derive(Debug, Clone)]
pub struct ProgressUpdate {
    pub id: Uuid,
    pub run: i32,
    pub attempt: i32,
    pub percent: i16,
    pub message: String,
}

impl Store {
    /// Claims `ids` for `worker_id` in one statement: RUNNING, attempts + 1. Ids whose
    /// record is not waiting (done, cancelled, running elsewhere, not due yet) are
    /// left out of the answer; the caller drops them.
    pub async fn claim(
        &self,
        ids: &[Uuid],
        worker_id: &str,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let ids = sorted(ids);
        retry_if_moved(|| {
            sqlx::query_as(CLAIM_SQL)
                .bind(&ids)
                .bind(worker_id)
                .bind(lease.as_secs_f64())
                .fetch_all(&self.pool)
        })
        .await
    }

    /// Extends the leases of the attempts a live worker still runs.
    pub async fn renew_leases(
        &self,
        held: &[HeldAttempt],
        worker_id: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let (ids, runs, attempts) = unzip_held(&in_id_order(held, |h| h.id));
        retry_if_moved(|| {
            sqlx::query(
                "UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => $5)
                 FROM unnest($1::uuid[], $2::int[], $3::int[]) AS h(id, run, attempt)
                 WHERE j.id = h.id AND j.id = ANY($1) AND j.runs = h.run AND j.attempts = h.attempt
                   AND j.status = 'RUNNING' AND j.completed_at IS NULL AND j.worker_id = $4",
            )
            .bind(&ids)
            .bind(&runs)
            .bind(&attempts)
            .bind(worker_id)
            .bind(lease.as_secs_f64())
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// Writes finished attempts in one statement (job rows, and an execution row for
    /// each attempt that did not complete: a completed one is its job's record).
    /// Only rows still RUNNING the same attempt for the same worker change, or
    /// rows still waiting at the attempt before, in the same run: the claim
    /// commits without waiting for the disk, and a PostgreSQL crash may have undone
    /// it while the worker ran the attempt (whoever else claimed or finished the
    /// job meanwhile moved it past both). A retry of a job whose cancellation was
    /// requested meanwhile ends CANCELLED. The jobs that go to
    /// RETRYING (to push) or FAILED (to dead-letter) are named in outbox row
    /// `outbox` (the caller tells Redis, then deletes it). Returns the ids written
    /// with the status they got.
    pub async fn finish(
        &self,
        batch: &[FinishedAttempt],
        outbox: Uuid,
    ) -> Result<Vec<Written>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let n = batch.len();
        let mut runs = Vec::with_capacity(n);
        let (mut ids, mut attempts, mut workers, mut started, mut finished) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut statuses, mut results, mut errors, mut run_ats, mut exec_statuses) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for f in in_id_order(batch, |f| f.id) {
            let c = f.state.columns();
            ids.push(f.id);
            runs.push(f.run);
            attempts.push(f.attempt);
            workers.push(f.worker_id.as_str());
            started.push(f.started_at);
            finished.push(f.finished_at);
            statuses.push(c.status.as_str());
            results.push(c.result);
            errors.push(c.error);
            run_ats.push(c.run_at);
            exec_statuses.push(c.execution.as_str());
        }
        Ok(sqlx::query_as(&format!(
            "WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                                     $6::text[], $7::jsonb[], $8::text[], $9::timestamptz[], $10::text[], $12::int[])
                    AS t(id, attempt, worker_id, started_at, finished_at, status, result, error, run_at, exec_status, run)
             ), updated AS (
                UPDATE jobs j SET
                    status = CASE WHEN j.cancel_requested AND i.status = 'RETRYING' THEN 'CANCELLED' ELSE i.status END,
                    result = i.result,
                    error = i.error,
                    run_at = COALESCE(i.run_at, j.run_at),
                    completed_at = CASE WHEN i.status = 'RETRYING' AND NOT j.cancel_requested THEN NULL ELSE i.finished_at END,
                    progress = CASE WHEN i.status = 'COMPLETED' THEN 100 ELSE j.progress END,
                    lease_expires_at = NULL,
                    -- The claim's own values, unless a crash undid the claim.
                    attempts = i.attempt, started_at = i.started_at, worker_id = i.worker_id
                FROM input i
                WHERE j.id = i.id AND j.id = ANY($1) AND j.completed_at IS NULL AND j.runs = i.run
                  AND {}
                RETURNING j.id, j.job_type, j.status, j.runs, j.started_at, j.completed_at
             ), logged AS (
                INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at, finished_at,
                                            duration_ms, error)
                SELECT i.id, u.job_type, u.runs, i.attempt, i.worker_id, i.exec_status, i.started_at, i.finished_at,
                       conveyor_duration_ms(i.started_at, i.finished_at), i.error
                FROM input i JOIN updated u ON u.id = i.id
                WHERE i.exec_status <> 'COMPLETED'
                ON CONFLICT (job_id, run, attempt) DO NOTHING
             ), counted AS (
                -- Completed attempts, which no row logs, counted for the activity report.
                INSERT INTO job_activity_deltas (kind, bucket, n, total_ms)
                SELECT 'completed', date_trunc('second', completed_at), count(*),
                       sum(conveyor_duration_ms(started_at, completed_at))
                FROM updated
                WHERE status = 'COMPLETED' AND completed_at > now() - interval '25 hours'
                GROUP BY 2
             ), outbox AS ({})
             SELECT id, status FROM updated",
            still_held!("i.attempt", "i.worker_id"),
            outbox_cte("updated", "WHERE status IN ('RETRYING', 'FAILED')", "$11", "true")
        ))
        .bind(&ids)
        .bind(&attempts)
        .bind(&workers)
        .bind(&started)
        .bind(&finished)
        .bind(&statuses)
        .bind(&results)
        .bind(&errors)
        .bind(&run_ats)
        .bind(&exec_statuses)
        .bind(outbox)
        .bind(&runs)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Gives attempts back without counting them (graceful shutdown, or a job type
    /// at its cap): waiting again after `delays_ms` (PENDING, or DELAYED), attempts −
    /// 1, named in outbox row `outbox` (the caller pushes them, then deletes it).
    /// Guarded as [`Store::finish`] is, so an attempt whose claim a crash undid
    /// is given back too. Returns the ids given back.
    pub async fn release(
        &self,
        held: &[HeldAttempt],
        delays_ms: &[i64],
        worker_id: &str,
        outbox: Uuid,
    ) -> Result<Vec<Uuid>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<(HeldAttempt, i64)> = held
            .iter()
            .copied()
            .zip(delays_ms.iter().copied())
            .collect();
        let order = in_id_order(&pairs, |(h, _)| h.id);
        let (ids, runs, attempts) = unzip_held(&order.iter().map(|(h, _)| h).collect::<Vec<_>>());
        let delays_ms: Vec<i64> = order.iter().map(|(_, d)| *d).collect();
        let sql = format!(
            "WITH released AS (
                UPDATE jobs j SET status = CASE WHEN j.cancel_requested THEN 'CANCELLED'
                                                WHEN h.delay_ms > 0 THEN 'DELAYED' ELSE 'PENDING' END,
                        completed_at = CASE WHEN j.cancel_requested THEN now() END,
                        attempts = h.attempt - 1, started_at = NULL, worker_id = NULL,
                        run_at = now() + make_interval(secs => h.delay_ms / 1000.0),
                        lease_expires_at = NULL
                FROM unnest($1::uuid[], $2::int[], $3::int[], $6::bigint[]) AS h(id, run, attempt, delay_ms)
                WHERE j.id = h.id AND j.id = ANY($1) AND j.completed_at IS NULL AND j.runs = h.run
                  AND {}
                RETURNING j.id, j.status
             ), outbox AS ({})
             SELECT id FROM released",
            still_held!("h.attempt", "$4"),
            outbox_cte("released", "WHERE status IN ('PENDING', 'DELAYED')", "$5", "true")
        );
        retry_if_moved(|| {
            sqlx::query_scalar(&sql)
                .bind(&ids)
                .bind(&runs)
                .bind(&attempts)
                .bind(worker_id)
                .bind(outbox)
                .bind(&delays_ms)
                .fetch_all(&self.pool)
        })
        .await
    }

    /// Writes the latest progress of running attempts (stale attempts are ignored).
    pub async fn write_progress(
        &self,
        updates: &[ProgressUpdate],
        worker_id: &str,
    ) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let updates = in_id_order(updates, |u| u.id);
        let ids: Vec<Uuid> = updates.iter().map(|u| u.id).collect();
        let runs: Vec<i32> = updates.iter().map(|u| u.run).collect();
        let attempts: Vec<i32> = updates.iter().map(|u| u.attempt).collect();
        let percents: Vec<i16> = updates.iter().map(|u| u.percent).collect();
        let messages: Vec<&str> = updates.iter().map(|u| u.message.as_str()).collect();
        let sql = format!(
            "WITH {RELAXED_COMMIT}
             UPDATE jobs j SET progress = u.percent, progress_message = u.message
             FROM unnest($1::uuid[], $2::int[], $3::smallint[], $4::text[], $5::int[])
                  AS u(id, attempt, percent, message, run), relaxed
             WHERE j.id = u.id AND j.id = ANY($1) AND j.runs = u.run AND j.attempts = u.attempt
               AND j.status = 'RUNNING' AND j.completed_at IS NULL AND j.worker_id = $6",
        );
        retry_if_moved(|| {
            sqlx::query(&sql)
                .bind(&ids)
                .bind(&attempts)
                .bind(&percents)
                .bind(&messages)
                .bind(&runs)
                .bind(worker_id)
                .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// True while the attempt is still the job's current, running one and nobody
    /// asked to cancel it (polled by workers as a fallback to the cancel channel).
    pub async fn cancel_requested(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM jobs
             WHERE id = ANY($1) AND completed_at IS NULL AND status = 'RUNNING' AND cancel_requested",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// `items` in id order. Every statement that updates several job rows takes their
/// locks in this order (a join with the ids in an array locks in the array's
/// order), so a worker's claim, completer, heartbeat and progress writer never
/// wait for each other in a cycle.
fn in_id_order<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by_key(|item| id(item));
    sorted
}

fn sorted(ids: &[Uuid]) -> Vec<Uuid> {
    in_id_order(ids, |id| *id).into_iter().copied().collect()
}

fn unzip_held(held: &[&HeldAttempt]) -> (Vec<Uuid>, Vec<i32>, Vec<i32>) {
    let ids = held.iter().map(|h| h.id).collect();
    let runs = held.iter().map(|h| h.run).collect();
    let attempts = held.iter().map(|h| h.attempt).collect();
    (ids, runs, attempts)
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    /// Inserts `n` jobs of `status` on the diagnostics queue; returns their ids.
    async fn insert(pool: &PgPool, n: i64, status: &str) -> Vec<Uuid> {
        sqlx::query_scalar(
            "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at, completed_at)
             SELECT gen_random_uuid(), 'diagnostics', 'NOOP', $2, '{}', 3, now(),
                    CASE WHEN $2 = 'COMPLETED' THEN now() END
             FROM generate_series(1, $1)
             RETURNING id",
        )
        .bind(n)
        .bind(status)
        .fetch_all(pool)
        .await
        .unwrap()
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn a_claim_looks_each_id_up_even_when_the_statistics_have_not_seen_the_backlog(
        pool: PgPool,
    ) {
        // A history of finished jobs, analysed; then a backlog the statistics
        // have not seen (autovacuum analyses only after a share of the table changed).
        insert(&pool, 5_000, "COMPLETED").await;
        sqlx::query("ANALYZE jobs").execute(&pool).await.unwrap();
        let waiting = insert(&pool, 5_000, "PENDING").await;

        let mut tx = pool.begin().await.unwrap();
        let plan: serde_json::Value =
            sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {CLAIM_SQL}"))
                .bind(&waiting[..40])
                .bind("w")
                .bind(30.0_f64)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        tx.rollback().await.unwrap();
        // The waiting-and-running half is read once, with the ids as its
        // condition: by its id index, or (while PostgreSQL takes it for nearly
        // empty, as its statistics say) in one pass; never once per id.
        let reads: Vec<_> = crate::store::plan_nodes(&plan)
            .into_iter()
            .filter(|node| node["Relation Name"] == "jobs_active")
            .collect();
        assert_eq!(reads.len(), 1, "{plan}");
        let read = reads[0];
        let condition = match read["Node Type"].as_str() {
            Some("Index Scan") => {
                assert_eq!(read["Index Name"], "jobs_active_id_idx", "{plan}");
                &read["Index Cond"]
            }
            Some("Seq Scan") => {
                assert_ne!(read["Parent Relationship"], "Inner", "{plan}");
                &read["Filter"]
            }
            _ => panic!("{plan}"),
        };
        assert!(
            condition.as_str().is_some_and(|c| c.contains("id = ")),
            "{plan}"
        );
        assert!(!plan.to_string().contains("jobs_waiting_idx"), "{plan}");

        // And it claims what it is given.
        let store = Store::new(pool);
        let claimed = store
            .claim(&waiting[..40], "w", Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 40);
        assert!(claimed.iter().all(|c| c.attempts == 1));
    }

    fn attempt(id: Uuid, attempt: i32, worker: &str, state: FinalState) -> FinishedAttempt {
        let started_at = Utc::now() - chrono::Duration::milliseconds(250);
        FinishedAttempt {
            id,
            run: 1,
            attempt,
            worker_id: worker.into(),
            started_at,
            finished_at: started_at + chrono::Duration::milliseconds(200),
            state,
        }
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn an_attempt_whose_claim_a_crash_undid_writes_its_outcome_once_or_is_given_back(
        pool: PgPool,
    ) {
        let store = Store::new(pool.clone());
        let jobs = insert(&pool, 3, "PENDING").await;
        let (undone, overtaken, recovered) = (jobs[0], jobs[1], jobs[2]);
        let done = || FinalState::Completed(serde_json::json!({"ok": true}));
        let write = |a: FinishedAttempt| {
            let store = store.clone();
            async move { store.finish(&[a], Uuid::new_v4()).await.unwrap() }
        };

        // w1's claim of `undone` was lost: the job still waits at attempt 0.
        let outcome = attempt(undone, 1, "w1", done());
        let written = write(outcome.clone()).await;
        assert_eq!(
            written,
            vec![Written {
                id: undone,
                status: JobStatus::Completed
            }]
        );
        let (attempts, worker, started): (i32, String, DateTime<Utc>) =
            sqlx::query_as("SELECT attempts, worker_id, started_at FROM jobs WHERE id = $1")
                .bind(undone)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((attempts, worker.as_str()), (1, "w1"));
        assert_eq!(
            started.timestamp_micros(),
            outcome.started_at.timestamp_micros()
        );
        // Once: another holder of the same attempt number writes nothing.
        assert!(write(attempt(undone, 1, "w2", done())).await.is_empty());

        // w1's claim of `overtaken` was lost and w2 claimed it since: only w2 writes.
        let claimed = store
            .claim(&[overtaken], "w2", Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(write(attempt(overtaken, 1, "w1", done())).await.is_empty());
        let written = write(attempt(overtaken, 1, "w2", done())).await;
        assert_eq!(written.len(), 1);

        // A release of an attempt whose claim was undone gives the job back at
        // its attempt (nothing counted) and names it for Redis.
        let released_job = insert(&pool, 1, "PENDING").await[0];
        let held = HeldAttempt {
            id: released_job,
            run: 1,
            attempt: 1,
        };
        let outbox = Uuid::new_v4();
        let released = store.release(&[held], &[0], "w1", outbox).await.unwrap();
        assert_eq!(released, vec![released_job]);
        let (status, attempts): (String, i32) =
            sqlx::query_as("SELECT status, attempts FROM jobs WHERE id = $1")
                .bind(released_job)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((status.as_str(), attempts), ("PENDING", 0));
        let named: Vec<Uuid> =
            sqlx::query_scalar("SELECT unnest(job_ids) FROM dispatch_outbox WHERE id = $1")
                .bind(outbox)
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(named, vec![released_job]);

        // An attempt that lease recovery already counted (the job waits at it, not
        // before it) writes nothing; the next attempt's retry is written and logged.
        sqlx::query("UPDATE jobs SET attempts = 1, status = 'RETRYING' WHERE id = $1")
            .bind(recovered)
            .execute(&pool)
            .await
            .unwrap();
        assert!(write(attempt(recovered, 1, "w1", done())).await.is_empty());
        let retry = FinalState::Retrying {
            error: "boom".into(),
            run_at: Utc::now(),
        };
        let written = write(attempt(recovered, 2, "w1", retry)).await;
        assert_eq!(
            written,
            vec![Written {
                id: recovered,
                status: JobStatus::Retrying
            }]
        );
        let logged: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_executions WHERE job_id = $1 AND attempt = 2 AND status = 'FAILED'",
        )
        .bind(recovered)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(logged, 1);
    }
}
