//! Scenario 7: the admin API's list and stats routes over a big jobs table (target:
//! p99 ≤ 50 ms at 1 000 000 records).
//!
//! The records are written with `INSERT … SELECT … FROM generate_series` through the
//! real tables, so the counter triggers see them as they would see any writer. Then
//! a spawned `conveyor-api` answers each route sequentially: warm-up requests, then
//! the timed ones.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use chrono::Utc;

use crate::report::{group_digits, Report};
use crate::setup::{Bench, ADMIN_TOKEN};

/// Records inserted per statement.
const FILL_CHUNK: usize = 100_000;
/// The domain's queues and their job types (the diagnostics queue takes the
/// catalog's), busiest first; queues the configuration lacks are left out.
const DOMAIN_TYPES: &[(&str, &[&str])] = &[
    ("quote_data", &["CATEGORIZE_QUOTE", "TRANSLATE_QUOTE"]),
    (
        "book_data",
        &[
            "GENERATE_SUMMARY",
            "GENERATE_CEFR",
            "EXTRACT_CHARACTERS",
            "GENERATE_CHINESE_TITLE",
            "EXTRACT_QUOTES",
            "PROCESS_EPUB",
        ],
    ),
    (
        "author_data",
        &[
            "ENRICH_FROM_WIKIDATA",
            "FETCH_AVATAR",
            "GENERATE_PERSONA",
            "GENERATE_BIO",
            "GENERATE_TIMELINE",
        ],
    ),
    ("diagnostics", &[]),
    (
        "batch_orchestrator",
        &[
            "BATCH_IMPORT_BOOKS",
            "BATCH_ENRICH_AUTHORS",
            "BATCH_GENERATE_CEFR",
        ],
    ),
];
/// Distinct error messages of failed attempts.
const ERROR_MESSAGES: i32 = 25;

/// Sizes of the scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BigTablePlan {
    pub records: usize,
    pub warm_up: usize,
    pub requests: usize,
}

impl BigTablePlan {
    /// The sizes for `--quick` (or not), with `records` records if given.
    pub(crate) fn new(quick: bool, records: Option<usize>) -> Self {
        let plan = if quick {
            Self {
                records: 10_000,
                warm_up: 3,
                requests: 20,
            }
        } else {
            Self {
                records: 1_000_000,
                warm_up: 20,
                requests: 200,
            }
        };
        Self {
            records: records.unwrap_or(plan.records).max(1),
            ..plan
        }
    }
}

impl Bench {
    /// Scenario 7: fills `jobs` and `job_executions`, then times the admin reads.
    pub(crate) async fn admin_reads(
        &mut self,
        report: &mut Report,
        records: Option<usize>,
    ) -> Result<()> {
        let plan = BigTablePlan::new(self.plan.quick, records);
        self.reset().await?;
        eprintln!(
            "[bench] 7. admin reads: filling {} job records",
            plan.records
        );
        let Filled {
            queue,
            job_type,
            rare_queue,
            seconds: fill_s,
            ..
        } = self.fill(plan.records, false).await?;
        eprintln!("[bench]    filled in {fill_s:.1} s");

        let api = self.spawn_api().await?;
        // Let the API's first compaction fold the fill's deltas, as it would have
        // long done in a running deployment.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let paths = [
            "/api/admin/jobs".to_string(),
            format!("/api/admin/jobs?queue={queue}"),
            format!("/api/admin/jobs?queue={rare_queue}"),
            "/api/admin/jobs?status=FAILED".to_string(),
            format!("/api/admin/jobs?jobType={job_type}"),
            format!("/api/admin/jobs?queue={queue}&status=FAILED"),
            format!("/api/admin/jobs?queue={queue}&status=COMPLETED&jobType={job_type}"),
            format!("/api/admin/jobs?queue={rare_queue}&status=RETRYING"),
            "/api/admin/queues".to_string(),
            format!("/api/admin/jobs/queue/{queue}/stats"),
            "/api/admin/metrics/summary".to_string(),
            "/api/admin/system/status".to_string(),
            "/api/admin/errors".to_string(),
        ];
        let mut routes = Vec::with_capacity(paths.len());
        for path in paths {
            let url = format!("{}{path}", api.url);
            for _ in 0..plan.warm_up {
                get(&api.client, &url).await?;
            }
            let mut ms = Vec::with_capacity(plan.requests);
            for _ in 0..plan.requests {
                let t = Instant::now();
                get(&api.client, &url).await?;
                ms.push(t.elapsed().as_secs_f64() * 1_000.0);
            }
            ms.sort_by(f64::total_cmp);
            routes.push((path, ms));
        }
        api.proc.stop().await?;
        report.route_latencies(
            "admin_reads",
            &format!(
                "7. admin reads, {} records",
                group_digits(&plan.records.to_string())
            ),
            plan.records,
            fill_s,
            &routes,
            50.0,
        );
        Ok(())
    }

    /// Inserts `n` records with a realistic mix (every configured queue and its job
    /// types, skewed; mostly COMPLETED; created over 30 days, in creation order as
    /// a live table grows) and, as the engine logs them, an execution row per
    /// finished attempt that did not complete, in finishing order (FAILED jobs:
    /// three failed attempts with errors; a completed attempt is told by its
    /// record). Ids are UUIDv7 of
    /// their creation time, as the engine makes them. `finished_only`
    /// leaves out waiting and running records (a history). Returns the busiest
    /// queue and its busiest type, and the least busy queue, for the filters.
    pub(super) async fn fill(&self, n: usize, finished_only: bool) -> Result<Filled> {
        let started = Instant::now();
        // Cumulative shares of COMPLETED, FAILED, CANCELLED, PENDING, DELAYED and
        // RUNNING; the rest is RETRYING.
        let mix: [f64; 6] = if finished_only {
            [0.940, 0.990, 1.0, 1.0, 1.0, 1.0]
        } else {
            [0.880, 0.930, 0.950, 0.980, 0.990, 0.995]
        };
        let (mut queues, mut types) = (Vec::new(), Vec::new());
        // Listed busiest first: the skew below favours the front.
        let config = self.conveyor.config();
        for (queue, names) in DOMAIN_TYPES {
            if queue == &queue_core::diagnostics::QUEUE {
                for job_type in self.conveyor.catalog().types_of(queue) {
                    queues.push(queue.to_string());
                    types.push(job_type.to_string());
                }
            } else if config.queue(queue).is_some() {
                for job_type in *names {
                    queues.push(queue.to_string());
                    types.push(job_type.to_string());
                }
            }
        }
        ensure!(!queues.is_empty(), "the catalog has no job types");
        // The days the fill's records finished on get their partitions first, as
        // a deployment's retention pass made them day by day.
        let today = Utc::now().date_naive();
        self.conveyor
            .store()
            .add_history_partitions(today - chrono::Duration::days(31), today)
            .await
            .context("creating the history's daily partitions")?;
        let mut done = 0;
        while done < n {
            let size = FILL_CHUNK.min(n - done);
            sqlx::query(
                "INSERT INTO jobs (id, queue_name, job_type, status, payload, result, error,
                                   attempts, max_attempts, priority, progress, run_at,
                                   created_at, started_at, completed_at, worker_id)
                 SELECT (lpad(to_hex((extract(epoch FROM created) * 1000)::bigint), 12, '0') || '7'
                         || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid,
                        ($1::text[])[k], ($2::text[])[k], status,
                        jsonb_build_object('n', g, 'text', md5(g::text)),
                        CASE WHEN status = 'COMPLETED' THEN '{\"ok\":true}'::jsonb END,
                        CASE WHEN status = 'FAILED' THEN 'error ' || (g % $4) END,
                        CASE WHEN status = 'FAILED' THEN 3
                             WHEN status IN ('PENDING', 'DELAYED') THEN 0 ELSE 1 END,
                        3, 5, CASE WHEN status = 'COMPLETED' THEN 100 ELSE 0 END,
                        created + interval '1 second', created,
                        CASE WHEN status NOT IN ('PENDING', 'DELAYED') THEN created + interval '1 second' END,
                        CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED')
                             THEN created + interval '1 second' + (r * 2000) * interval '1 millisecond' END,
                        CASE WHEN status NOT IN ('PENDING', 'DELAYED') THEN 'bench-worker' END
                 FROM (
                     SELECT g,
                            1 + floor(power(random(), 1.5) * array_length($1::text[], 1))::int AS k,
                            now() - (1 - (g + random()) / $6) * interval '30 days' AS created,
                            random() AS r,
                            CASE WHEN s < ($7::float8[])[1] THEN 'COMPLETED'
                                 WHEN s < ($7::float8[])[2] THEN 'FAILED'
                                 WHEN s < ($7::float8[])[3] THEN 'CANCELLED'
                                 WHEN s < ($7::float8[])[4] THEN 'PENDING'
                                 WHEN s < ($7::float8[])[5] THEN 'DELAYED'
                                 WHEN s < ($7::float8[])[6] THEN 'RUNNING'
                                 ELSE 'RETRYING' END AS status
                     FROM (SELECT g, random() AS s FROM generate_series($3::bigint, $3::bigint + $5 - 1) AS g) x
                 ) y",
            )
            .bind(&queues)
            .bind(&types)
            .bind(done as i64)
            .bind(ERROR_MESSAGES)
            .bind(size as i64)
            .bind(n as f64)
            .bind(&mix[..])
            .execute(&self.pool)
            .await
            .context("filling jobs")?;
            done += size;
        }
        sqlx::query(
            "INSERT INTO job_executions (job_id, job_type, run, attempt, worker_id, status, started_at,
                                         finished_at, duration_ms, error)
             SELECT id, job_type, 1, a, 'bench-worker',
                    status,
                    started_at - (attempts - a) * interval '1 minute',
                    completed_at - (attempts - a) * interval '1 minute',
                    conveyor_duration_ms(started_at, completed_at),
                    error
             FROM jobs CROSS JOIN LATERAL generate_series(1, attempts) AS a
             WHERE status IN ('FAILED', 'CANCELLED')
             ORDER BY 8",
        )
        .execute(&self.pool)
        .await
        .context("filling job_executions")?;
        // What autovacuum would long have done on a table this old.
        for table in ["jobs", "job_executions"] {
            sqlx::query(&format!("VACUUM ANALYZE {table}"))
                .execute(&self.pool)
                .await
                .with_context(|| format!("vacuuming {table}"))?;
        }
        let busiest: (String, String) = sqlx::query_as(
            "SELECT queue_name, job_type FROM jobs
             GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1",
        )
        .fetch_one(&self.pool)
        .await?;
        let rarest: String = sqlx::query_scalar(
            "SELECT queue_name FROM jobs GROUP BY 1 ORDER BY count(*), 1 LIMIT 1",
        )
        .fetch_one(&self.pool)
        .await?;
        // One entry per job type above, a queue's next to each other.
        queues.dedup();
        Ok(Filled {
            queue: busiest.0,
            job_type: busiest.1,
            rare_queue: rarest,
            queues,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// What [`Bench::fill`] wrote: the filters worth timing and how long it took.
pub(super) struct Filled {
    queue: String,
    job_type: String,
    rare_queue: String,
    /// Every queue the fill wrote records of.
    pub(super) queues: Vec<String>,
    pub(super) seconds: f64,
}

async fn get(client: &reqwest::Client, url: &str) -> Result<()> {
    let resp = client
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(
        status.is_success(),
        "GET {url}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}
