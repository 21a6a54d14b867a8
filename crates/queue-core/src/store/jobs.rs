//! Inserting and reading job records.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::dispatch::{outbox_cte, OutboxEntry};
use super::Store;
use crate::error::StoreError;
use crate::job::{Execution, Job, JobStatus};

/// A record to insert, with every default already resolved.
#[derive(Debug, Clone)]
pub struct InsertedJob {
    pub id: Uuid,
    pub queue: String,
    pub job_type: String,
    pub payload: Value,
    pub max_attempts: i32,
    pub priority: i32,
    pub parent_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub run_at: Option<DateTime<Utc>>,
    pub timeout_ms: Option<i32>,
    pub backoff: Option<Value>,
}

/// Windows of the history, in days back from now, that a job list reads before
/// the whole of it (see [`Store::list_jobs`]).
const RECENT_HISTORY_DAYS: [i64; 2] = [2, 8];

/// How much earlier than a job's creation its recorded finish may be: the
/// finish time is the worker's clock, the creation time PostgreSQL's.
const FINISH_CLOCK_MARGIN_DAYS: i64 = 1;

/// Filters of the job list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub queue: Option<String>,
    pub status: Option<JobStatus>,
    pub job_type: Option<String>,
    pub parent_id: Option<Uuid>,
}

pub(crate) const JOB_COLUMNS: &str = "id, queue_name, job_type, status, payload, result, error, attempts, max_attempts, \
     priority, progress, progress_message, parent_id, idempotency_key, run_at, timeout_ms, created_at, \
     started_at, completed_at, cancel_requested";

/// [`JOB_COLUMNS`] qualified with a table alias.
fn qualified_job_columns(alias: &str) -> String {
    JOB_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `jobs` in one statement and returns the records created, naming them in
/// outbox row `outbox` (same statement). A job whose idempotency key already has a
/// job in its queue is left out (see [`existing_by_key`]).
pub(crate) async fn insert_many(
    conn: &mut PgConnection,
    jobs: &[InsertedJob],
    outbox: OutboxEntry,
) -> Result<Vec<Job>, StoreError> {
    let n = jobs.len();
    let (mut ids, mut queues, mut types, mut payloads) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut max_attempts, mut priorities, mut parents, mut keys) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut run_ats, mut timeouts, mut backoffs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for j in jobs {
        ids.push(j.id);
        queues.push(j.queue.as_str());
        types.push(j.job_type.as_str());
        payloads.push(&j.payload);
        max_attempts.push(j.max_attempts);
        priorities.push(j.priority);
        parents.push(j.parent_id);
        keys.push(j.idempotency_key.as_deref());
        run_ats.push(j.run_at);
        timeouts.push(j.timeout_ms);
        backoffs.push(j.backoff.as_ref());
    }
    // A job with a key is written only if its key was free: the key's row is
    // taken first, in the same statement (a concurrent writer of the same key
    // waits for this transaction and then finds it taken).
    let sql = format!(
        "WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::int[],
                                 $7::uuid[], $8::text[], $9::timestamptz[], $10::int[], $11::jsonb[])
                 WITH ORDINALITY AS t(id, queue_name, job_type, payload, max_attempts, priority, parent_id,
                      idempotency_key, run_at, timeout_ms, backoff, ord)
         ), keyed AS (
            INSERT INTO job_idempotency_keys (queue_name, idempotency_key, job_id)
            SELECT queue_name, idempotency_key, id FROM input
            WHERE idempotency_key IS NOT NULL
            ORDER BY ord
            ON CONFLICT (queue_name, idempotency_key) DO NOTHING
            RETURNING job_id
         ), inserted AS (
            INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, priority, parent_id, \
                              idempotency_key, run_at, timeout_ms, backoff)
            SELECT id, queue_name, job_type,
                   CASE WHEN run_at > now() THEN 'DELAYED' ELSE 'PENDING' END,
                   payload, max_attempts, priority, parent_id, idempotency_key, COALESCE(run_at, now()),
                   timeout_ms, backoff
            FROM input
            WHERE idempotency_key IS NULL OR id IN (SELECT job_id FROM keyed)
            ORDER BY ord
            RETURNING {JOB_COLUMNS}
         ), outbox AS ({})
         SELECT * FROM inserted",
        outbox_cte("inserted", "", "$12", "$13")
    );
    Ok(sqlx::query_as(&sql)
        .bind(&ids)
        .bind(&queues)
        .bind(&types)
        .bind(&payloads)
        .bind(&max_attempts)
        .bind(&priorities)
        .bind(&parents)
        .bind(&keys)
        .bind(&run_ats)
        .bind(&timeouts)
        .bind(&backoffs)
        .bind(outbox.id)
        .bind(outbox.writer_pushes)
        .fetch_all(&mut *conn)
        .await?)
}

/// The jobs holding these (queue, idempotency key) pairs.
pub(crate) async fn existing_by_key(
    conn: &mut PgConnection,
    pairs: &[(&str, &str)],
) -> Result<Vec<Job>, StoreError> {
    let (queues, keys): (Vec<&str>, Vec<&str>) = pairs.iter().copied().unzip();
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN
           (SELECT k.job_id FROM job_idempotency_keys k
            JOIN unnest($1::text[], $2::text[]) AS p(queue_name, idempotency_key)
              ON k.queue_name = p.queue_name AND k.idempotency_key = p.idempotency_key)"
    );
    Ok(sqlx::query_as(&sql)
        .bind(&queues)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?)
}

impl Store {
    pub async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn get_jobs(&self, ids: &[Uuid]) -> Result<Vec<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1)");
        Ok(sqlx::query_as(&sql).bind(ids).fetch_all(&self.pool).await?)
    }

    pub async fn executions(&self, id: Uuid) -> Result<Vec<Execution>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT job_id, run, attempt, worker_id, status, started_at, finished_at, duration_ms, error
             FROM job_attempts WHERE job_id = $1 ORDER BY run, attempt",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of jobs, newest first.
    ///
    /// The jobs table has one list index, (queue, status, type, created_at): every
    /// index on it is rewritten by each claim and completion, so the hot path pays
    /// for each one. A page is therefore a merge: the (queue, status, type) groups
    /// that match the filter and hold jobs (read from the trigger-kept counters, a
    /// few small rows) each give the keys of their newest `offset + limit` jobs from
    /// that index, the merged keys are cut to the page, and only then are whole rows
    /// read. A deep page costs about (groups × (offset + limit)) index entries. A
    /// parent's children are read over the parent index.
    ///
    /// Every day of the history is a partition with its own list index, so the
    /// merge first reads only the waiting and running jobs and the last few days
    /// of the history ([`RECENT_HISTORY_DAYS`]). Such a page is the page of all
    /// records when it is full and its last job was created after the window
    /// began plus [`FINISH_CLOCK_MARGIN_DAYS`]: a job left out finished before
    /// the window, so it was created before that. Otherwise a wider window, and
    /// at last the whole history, is read.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Job>, StoreError> {
        if filter.parent_id.is_some() {
            let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
            push_filter(&mut q, filter);
            q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                .push_bind(limit)
                .push(" OFFSET ")
                .push_bind(offset);
            return Ok(q.build_query_as().fetch_all(&self.pool).await?);
        }
        if limit <= 0 {
            return Ok(Vec::new());
        }
        for days in RECENT_HISTORY_DAYS {
            let finished_since = Utc::now() - chrono::Duration::days(days);
            let page = self
                .merged_page(filter, limit, offset, Some(finished_since))
                .await?;
            let proven_from = finished_since + chrono::Duration::days(FINISH_CLOCK_MARGIN_DAYS);
            let full = page.len() as i64 == limit;
            if full && page.last().is_some_and(|job| job.created_at >= proven_from) {
                return Ok(page);
            }
        }
        self.merged_page(filter, limit, offset, None).await
    }

    /// The merge of [`Store::list_jobs`] over the waiting and running jobs and
    /// the history of jobs finished at or after `finished_since` (all of it when
    /// None).
    async fn merged_page(
        &self,
        filter: &JobFilter,
        limit: i64,
        offset: i64,
        finished_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Job>, StoreError> {
        // `completed_at >= $7` prunes the history's partitions when the plan is
        // made (or, for a cached plan, when it starts).
        let sql = format!(
            "WITH groups AS (
                SELECT queue_name, status, job_type FROM (
                    SELECT queue_name, status, job_type, n FROM job_counts
                    UNION ALL
                    SELECT queue_name, status, job_type, n FROM job_count_deltas
                ) AS c
                WHERE ($1::text IS NULL OR queue_name = $1) AND ($2::text IS NULL OR status = $2)
                  AND ($3::text IS NULL OR job_type = $3)
                GROUP BY 1, 2, 3 HAVING sum(n) > 0
             ), page AS (
                SELECT k.created_at, k.id FROM groups g CROSS JOIN LATERAL (
                    SELECT created_at, id FROM jobs
                    WHERE queue_name = g.queue_name AND status = g.status AND job_type = g.job_type
                      AND (completed_at IS NULL OR completed_at >= COALESCE($7, '-infinity'))
                    ORDER BY created_at DESC, id DESC LIMIT $4
                ) AS k
                ORDER BY k.created_at DESC, k.id DESC LIMIT $5 OFFSET $6
             )
             SELECT {columns} FROM page JOIN jobs j ON j.id = page.id
               -- A job finishes after it is created (give or take the workers'
               -- clocks): each row is looked up in the active half and the days
               -- of the history from its creation on, not in every day.
               AND (j.completed_at IS NULL
                    OR (j.completed_at >= COALESCE($7, '-infinity')
                        AND j.completed_at >= page.created_at - make_interval(days => $8)))
             ORDER BY page.created_at DESC, page.id DESC",
            columns = qualified_job_columns("j")
        );
        Ok(sqlx::query_as(&sql)
            .bind(filter.queue.as_deref())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.job_type.as_deref())
            .bind(offset.saturating_add(limit))
            .bind(limit)
            .bind(offset)
            .bind(finished_since)
            .bind(FINISH_CLOCK_MARGIN_DAYS as i32)
            .fetch_all(&self.pool)
            .await?)
    }

    /// A page of jobs with the number of all matching jobs. The total comes first
    /// (from the counters, or the parent index for children): a page that starts
    /// at or past it is empty, and reading it would skip `offset` index entries of
    /// every group for nothing.
    pub async fn job_page(
        &self,
        filter: &JobFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Job>, i64), StoreError> {
        if offset == 0 {
            // The first page starts inside the data whenever there is any.
            return tokio::try_join!(
                self.list_jobs(filter, limit, 0),
                self.count_jobs_indexed(filter)
            );
        }
        let total = self.count_jobs_indexed(filter).await?;
        if offset >= total {
            return Ok((Vec::new(), total));
        }
        Ok((self.list_jobs(filter, limit, offset).await?, total))
    }

    pub async fn count_jobs(&self, filter: &JobFilter) -> Result<i64, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT count(*) FROM jobs");
        push_filter(&mut q, filter);
        Ok(q.build_query_scalar().fetch_one(&self.pool).await?)
    }
}

fn push_filter(q: &mut QueryBuilder<'_, Postgres>, f: &JobFilter) {
    let mut sep = " WHERE ";
    if let Some(v) = &f.queue {
        q.push(sep).push("queue_name = ").push_bind(v.clone());
        sep = " AND ";
    }
    if let Some(v) = f.status {
        q.push(sep).push("status = ").push_bind(v.as_str());
        sep = " AND ";
    }
    if let Some(v) = &f.job_type {
        q.push(sep).push("job_type = ").push_bind(v.clone());
        sep = " AND ";
    }
    if let Some(v) = f.parent_id {
        q.push(sep).push("parent_id = ").push_bind(v);
    }
}
