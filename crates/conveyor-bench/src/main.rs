//! `conveyor-bench`: drives the real `conveyor-api` and `conveyor-worker` binaries
//! through the scenarios of issue 6 and reports throughput, latency and resources,
//! plus the admin reads over 1 000 000 records of issue 5 (`big_table`).
//!
//! It makes its own database (dropped and created afresh, migrated with
//! `queue_core::store::MIGRATOR`) on the PostgreSQL server of `DATABASE_URL` and uses
//! a Redis key prefix of its own, so it never touches other data. Between scenarios
//! the job tables are truncated and the prefix's Redis keys deleted.
//!
//! Output: a markdown table on stdout, progress on stderr, and the figures as JSON
//! (`--output`, default `target/bench/results.json`).

mod big_table;
mod bullmq;
mod measure;
mod procs;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, Utc};
use clap::Parser;
use queue_core::{broker::Broker, store::Store, Catalog, Config, Conveyor, NewJob};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use measure::{cpu_snapshot, is_process, percentile, proc_status_kb, ticks_per_second, CpuUse};
use procs::Proc;
use report::{Report, Target};

/// Bearer token given to the spawned `conveyor-api`.
const ADMIN_TOKEN: &str = "bench-token";
/// The queue every scenario uses (NOOP and ECHO live there).
const QUEUE: &str = "diagnostics";

#[derive(Parser, Debug)]
#[command(version, about = "Benchmarks Conveyor's binaries (issue 6 scenarios)")]
struct Args {
    /// Small counts and short runs (2 000 jobs), no targets: the CI check.
    #[arg(long)]
    quick: bool,
    /// Jobs per throughput scenario (default 100 000, or 2 000 with --quick).
    #[arg(long)]
    jobs: Option<usize>,
    /// Directory holding conveyor-api and conveyor-worker.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Database created (dropped first if it exists) on DATABASE_URL's server.
    #[arg(long, default_value = "conveyor_bench")]
    database: String,
    /// Keep the database after the run (default: drop it).
    #[arg(long)]
    keep_database: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    output: PathBuf,
    /// Configuration file given to the binaries and the in-process client.
    #[arg(long, default_value = "config/conveyor.toml")]
    config: PathBuf,
    /// Also run BullMQ (Node script in --bullmq-dir) on the same Redis and print ratios.
    #[arg(long)]
    with_bullmq: bool,
    /// Directory of the BullMQ benchmark (package.json, bench.mjs).
    #[arg(long, default_value = "bench/bullmq")]
    bullmq_dir: PathBuf,
    /// Run only these scenarios (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
}

/// Scenario groups `--only` selects (scenarios that share processes go together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// 1: bulk enqueue, library and API.
    Bulk,
    /// 5: single POST /api/admin/jobs.
    Post,
    /// 2, 3, 4 and 6: drain, end to end, pickup latency, worker resources.
    Worker,
    /// 7: admin list and stats routes over 1 000 000 records.
    BigTable,
}

impl Args {
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    quick: bool,
    jobs: usize,
    bulk_chunk: usize,
    e2e_chunk: usize,
    pickup_jobs: usize,
    pickup_rate: f64,
    post_connections: usize,
    post_duration: Duration,
    worker_concurrency: u32,
}

impl Plan {
    fn new(args: &Args) -> Self {
        let quick = args.quick;
        Self {
            quick,
            jobs: args
                .jobs
                .unwrap_or(if quick { 2_000 } else { 100_000 })
                .max(1),
            bulk_chunk: queue_core::client::MAX_BULK,
            e2e_chunk: 1_000,
            pickup_jobs: if quick { 200 } else { 2_000 },
            pickup_rate: 200.0,
            post_connections: 64,
            post_duration: Duration::from_secs(if quick { 2 } else { 10 }),
            worker_concurrency: 100,
        }
    }

    /// How long a drain of `jobs` may take before the run is declared stuck.
    fn drain_timeout(&self, jobs: usize) -> Duration {
        Duration::from_secs(60) + Duration::from_millis(jobs as u64 * 5)
    }
}

/// The services, the client and the spawn settings of a run.
struct Bench {
    plan: Plan,
    db_url: String,
    redis_url: String,
    prefix: String,
    config_path: PathBuf,
    bin_dir: PathBuf,
    conveyor: Conveyor,
    pool: PgPool,
    redis: redis::aio::MultiplexedConnection,
    ticks: f64,
    /// The connection the completion polls use, and its backend's pid (its CPU is
    /// the cost of measuring, kept apart).
    poll: tokio::sync::Mutex<PgConnection>,
    poll_pid: Option<u32>,
    /// The local redis-server's pid, for its CPU time.
    redis_pid: Option<u32>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let plan = Plan::new(&args);
    validate_db_name(&args.database)?;
    let bin_dir = absolute(&args.bin_dir)?;
    for bin in ["conveyor-api", "conveyor-worker"] {
        ensure!(
            bin_dir.join(bin).exists(),
            "{} is missing: build the binaries first (scripts/bench.sh does) or pass --bin-dir",
            bin_dir.join(bin).display()
        );
    }
    let config_path = absolute(&args.config)?;
    ensure!(
        config_path.exists(),
        "--config: {} does not exist",
        config_path.display()
    );

    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let (base, query) = split_pg_url(&server)?;
    let admin_url = format!("{base}/postgres{query}");
    let db_url = format!("{base}/{}{query}", args.database);

    eprintln!("[bench] recreating database {}", args.database);
    recreate_database(&admin_url, &args.database).await?;
    let prefix = format!("bench-{}", Uuid::new_v4().simple());

    let result = run(
        &args,
        plan,
        &db_url,
        &redis_url,
        &prefix,
        config_path,
        bin_dir,
    )
    .await;

    // Clean up whatever happened.
    if let Err(e) = delete_redis_prefix(&redis_url, &prefix).await {
        eprintln!("[bench] warning: could not delete redis keys {prefix}:*: {e:#}");
    }
    if !args.keep_database {
        if let Err(e) = drop_database(&admin_url, &args.database).await {
            eprintln!(
                "[bench] warning: could not drop database {}: {e:#}",
                args.database
            );
        }
    }
    result
}

async fn run(
    args: &Args,
    plan: Plan,
    db_url: &str,
    redis_url: &str,
    prefix: &str,
    config_path: PathBuf,
    bin_dir: PathBuf,
) -> Result<()> {
    let mut config = Config::load(Some(&config_path)).context("loading the configuration")?;
    config.database.url = db_url.to_string();
    config.redis.url = redis_url.to_string();
    config.redis.prefix = prefix.to_string();
    let config = Arc::new(config);
    let store = Store::connect(db_url, 16)
        .await
        .context("connecting to the bench database")?;
    queue_core::store::MIGRATOR
        .run(store.pool())
        .await
        .context("migrating the bench database")?;
    let broker = Broker::connect(redis_url, prefix)
        .await
        .context("connecting to redis")?;
    let pool = store.pool().clone();
    let conveyor = Conveyor::new(store, broker, config, Arc::new(Catalog::builtin()));
    let redis = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to redis")?;

    let mut poll = PgConnection::connect(db_url)
        .await
        .context("connecting to the bench database")?;
    let poll_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut poll)
        .await?;
    let poll_pid = Some(poll_pid as u32).filter(|p| is_process(*p, "postgres"));
    let mut bench = Bench {
        plan,
        db_url: db_url.to_string(),
        redis_url: redis_url.to_string(),
        prefix: prefix.to_string(),
        config_path,
        bin_dir,
        conveyor,
        pool,
        redis,
        ticks: ticks_per_second(),
        poll: tokio::sync::Mutex::new(poll),
        poll_pid,
        redis_pid: None,
    };
    bench.redis_pid = bench.find_redis_pid().await;
    let mut report = Report::new(plan.quick, plan.jobs);
    report.set_environment(bench.environment().await);

    eprintln!(
        "[bench] {} mode: {} jobs per throughput scenario, prefix {prefix}",
        if plan.quick { "quick" } else { "full" },
        plan.jobs
    );

    bench.warm_up().await?;
    if args.runs(Scenario::Bulk) {
        bench.bulk_library(&mut report).await?;
    }
    if args.runs(Scenario::Bulk) || args.runs(Scenario::Post) {
        let api = bench.spawn_api().await?;
        if args.runs(Scenario::Bulk) {
            bench.bulk_api(&mut report, &api).await?;
        }
        if args.runs(Scenario::Post) {
            bench.single_posts(&mut report, &api).await?;
        }
        api.proc.stop().await?;
    }
    if args.runs(Scenario::Worker) {
        bench.reset().await?;
        let drain_worker = bench.drain(&mut report).await?;
        let e2e_worker = bench.end_to_end(&mut report).await?;
        let idle_rss_kb = bench.pickup(&mut report).await?;
        report.worker_resources(
            &drain_worker,
            e2e_worker.peak_rss_kb,
            idle_rss_kb,
            plan.jobs,
        );
    }
    if args.runs(Scenario::BigTable) {
        bench.admin_reads(&mut report).await?;
    }

    if args.with_bullmq {
        // BullMQ must not pay for the flush of what Conveyor's scenarios wrote.
        bench.settle().await;
        let dir = absolute(&args.bullmq_dir)?;
        match bullmq::run(&dir, redis_url, &plan).await {
            Ok(figures) => report.set_bullmq(figures),
            Err(e) => {
                eprintln!("[bench] BullMQ run failed: {e:#}");
                report.set_bullmq(json!({ "error": format!("{e:#}") }));
            }
        }
    }

    let table = report.markdown();
    println!("{table}");
    let output = &args.output;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(output, serde_json::to_string_pretty(&report.json())?)
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!("[bench] results written to {}", output.display());
    Ok(())
}

/// What the drain scenario measured of its worker.
struct WorkerFigures {
    jobs: usize,
    cpu: CpuUse,
    peak_rss_kb: u64,
}

/// A spawned `conveyor-api` and how to reach it.
struct Api {
    proc: Proc,
    url: String,
    client: reqwest::Client,
}

impl Bench {
    // ---------------------------------------------------------------- scenarios

    /// Scenario 1a: `Conveyor::enqueue_many` in chunks of 10 000.
    async fn bulk_library(&mut self, report: &mut Report) -> Result<()> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 1. bulk enqueue (library): {n} NOOP jobs");
        let started = Instant::now();
        for size in chunks(n, self.plan.bulk_chunk) {
            let jobs = (0..size).map(|_| noop()).collect();
            self.conveyor
                .enqueue_many(jobs)
                .await
                .context("enqueue_many")?;
        }
        let secs = started.elapsed().as_secs_f64();
        self.expect_count("PENDING", n).await?;
        report.throughput(
            "bulk_enqueue_library",
            "1. bulk enqueue, library (enqueue_many × 10 000)",
            n,
            secs,
            Target::TimesBullmq(2.0),
        );
        Ok(())
    }

    /// Scenario 1b: `POST /api/admin/jobs/bulk` in chunks of 10 000.
    async fn bulk_api(&mut self, report: &mut Report, api: &Api) -> Result<()> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 1. bulk enqueue (POST /api/admin/jobs/bulk): {n} NOOP jobs");
        let one = json!({ "queueName": QUEUE, "jobType": "NOOP", "payload": {} });
        let mut bodies: std::collections::HashMap<usize, Vec<u8>> = Default::default();
        for size in chunks(n, self.plan.bulk_chunk) {
            bodies.entry(size).or_insert_with(|| {
                json!({ "jobs": vec![one.clone(); size] })
                    .to_string()
                    .into()
            });
        }
        let url = format!("{}/api/admin/jobs/bulk", api.url);
        let started = Instant::now();
        for size in chunks(n, self.plan.bulk_chunk) {
            let resp = api
                .client
                .post(&url)
                .bearer_auth(ADMIN_TOKEN)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bodies[&size].clone())
                .send()
                .await
                .context("POST /api/admin/jobs/bulk")?;
            let status = resp.status();
            let body = resp.bytes().await?;
            if status.as_u16() != 201 {
                bail!(
                    "POST /api/admin/jobs/bulk answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
        let secs = started.elapsed().as_secs_f64();
        self.expect_count("PENDING", n).await?;
        report.throughput(
            "bulk_enqueue_api",
            "1. bulk enqueue, POST /api/admin/jobs/bulk × 10 000",
            n,
            secs,
            Target::TimesBullmq(2.0),
        );
        Ok(())
    }

    /// Scenario 2 + 6: N queued NOOP jobs, one worker started on them, timed to the last
    /// COMPLETED record; the worker's CPU and peak RSS.
    async fn drain(&mut self, report: &mut Report) -> Result<WorkerFigures> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 2. drain: {n} queued NOOP jobs, one worker");
        self.enqueue_noops(n, self.plan.bulk_chunk).await?;
        let started = Instant::now();
        let mut worker = self.spawn_worker()?;
        let cpu0 = cpu_snapshot(worker.pid(), self.redis_pid, self.poll_pid);
        let done = self
            .wait_completed(n, &mut worker, self.plan.drain_timeout(n))
            .await?;
        let secs = done.duration_since(started).as_secs_f64();
        let cpu =
            cpu_snapshot(worker.pid(), self.redis_pid, self.poll_pid).since(&cpu0, self.ticks);
        let peak = proc_status_kb(worker.pid(), "VmHWM")?;
        worker.stop().await?;
        report.throughput(
            "drain",
            "2. drain (queued → all COMPLETED, 1 worker × 100)",
            n,
            secs,
            Target::TimesBullmq(1.5),
        );
        Ok(WorkerFigures {
            jobs: n,
            cpu,
            peak_rss_kb: peak,
        })
    }

    /// Scenario 3: A producer enqueueing N (library, chunks of 1 000) while a worker drains.
    async fn end_to_end(&mut self, report: &mut Report) -> Result<WorkerFigures> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 3. end to end: producing {n} NOOP jobs while one worker drains");
        let mut worker = self.spawn_worker()?;
        self.wait_worker_ready(&mut worker).await?;
        let cpu0 = cpu_snapshot(worker.pid(), self.redis_pid, self.poll_pid);
        let started = Instant::now();
        let mut producer = {
            let conveyor = self.conveyor.clone();
            let chunk = self.plan.e2e_chunk;
            tokio::spawn(async move {
                for size in chunks(n, chunk) {
                    conveyor
                        .enqueue_many((0..size).map(|_| noop()).collect())
                        .await?;
                }
                Ok::<_, queue_core::EnqueueError>(Instant::now())
            })
        };
        // Wait for the last COMPLETED record, but stop at once if the producer fails.
        let timeout = self.plan.drain_timeout(n);
        let mut produced = None;
        let done = {
            let wait = self.wait_completed(n, &mut worker, timeout);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    done = &mut wait => break done?,
                    p = &mut producer, if produced.is_none() => {
                        produced = Some(p.context("producer task")?.context("producer")?);
                    }
                }
            }
        };
        let produced = match produced {
            Some(at) => at,
            None => producer
                .await
                .context("producer task")?
                .context("producer")?,
        };
        let secs = done.duration_since(started).as_secs_f64();
        let cpu =
            cpu_snapshot(worker.pid(), self.redis_pid, self.poll_pid).since(&cpu0, self.ticks);
        let peak = proc_status_kb(worker.pid(), "VmHWM")?;
        worker.stop().await?;
        report.throughput(
            "end_to_end",
            "3. end to end (produce × 1 000 while working → all COMPLETED)",
            n,
            secs,
            Target::TimesBullmq(2.0),
        );
        report.extend(
            "end_to_end",
            json!({
                "producer_seconds": produced.duration_since(started).as_secs_f64(),
                "worker_cpu_seconds": cpu.worker,
                "redis_cpu_seconds": cpu.redis,
                "postgres_cpu_seconds": cpu.postgres,
                "poll_backend_cpu_seconds": cpu.poller,
                "machine_cpu_seconds": cpu.machine,
                "worker_peak_rss_kb": peak,
            }),
        );
        Ok(WorkerFigures {
            jobs: n,
            cpu,
            peak_rss_kb: peak,
        })
    }

    /// Scenario 4: ECHO jobs one at a time at 200/s to an idle worker: the attempt's
    /// end (`completed_at`, the worker's clock when the ECHO handler returned, so
    /// never earlier than the handler's start) minus the client's clock just before
    /// the enqueue call. Prints where the time went. Returns the worker's RSS when
    /// idle (after start, before any job).
    async fn pickup(&mut self, report: &mut Report) -> Result<u64> {
        self.reset().await?;
        let k = self.plan.pickup_jobs;
        eprintln!(
            "[bench] 4. pickup latency: {k} ECHO jobs at {}/s to an idle worker",
            self.plan.pickup_rate
        );
        let mut worker = self.spawn_worker()?;
        self.wait_worker_ready(&mut worker).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_rss = proc_status_kb(worker.pid(), "VmRSS")?;

        let interval = Duration::from_secs_f64(1.0 / self.plan.pickup_rate);
        let start = tokio::time::Instant::now();
        // (job, clock before the enqueue call, clock when it returned)
        let mut sent: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(k);
        for i in 0..k {
            tokio::time::sleep_until(start + interval * i as u32).await;
            let before = Utc::now();
            let job = self
                .conveyor
                .enqueue(NewJob::new(QUEUE, "ECHO", json!({ "i": i })))
                .await
                .context("enqueue ECHO")?;
            sent.push((job.job.id, before, Utc::now()));
        }
        self.wait_completed(k, &mut worker, Duration::from_secs(60))
            .await?;
        worker.stop().await?;

        let ids: Vec<Uuid> = sent.iter().map(|(id, ..)| *id).collect();
        type Times = (Uuid, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let rows: Vec<Times> =
            sqlx::query_as("SELECT id, started_at, completed_at FROM jobs WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?;
        let times: std::collections::HashMap<Uuid, (DateTime<Utc>, DateTime<Utc>)> = rows
            .into_iter()
            .filter_map(|(id, started, completed)| Some((id, (started?, completed?))))
            .collect();
        let ms = |from: DateTime<Utc>, to: DateTime<Utc>| {
            (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1_000.0
        };
        // Per job: the headline, and its three legs.
        let (mut latencies, mut enqueue_calls, mut to_claims, mut claim_to_ends) =
            (Vec::with_capacity(k), Vec::new(), Vec::new(), Vec::new());
        for (id, before, returned) in &sent {
            let (started, completed) = times
                .get(id)
                .with_context(|| format!("job {id} has no started_at or completed_at"))?;
            latencies.push(ms(*before, *completed));
            enqueue_calls.push(ms(*before, *returned));
            to_claims.push(ms(*returned, *started));
            claim_to_ends.push(ms(*started, *completed));
        }
        for (leg, values) in [
            (
                "enqueue call (INSERT committed, pushed to Redis)",
                &mut enqueue_calls,
            ),
            (
                "enqueue returned → claim statement started (started_at)",
                &mut to_claims,
            ),
            (
                "claim statement started → ECHO handler returned",
                &mut claim_to_ends,
            ),
        ] {
            values.sort_by(f64::total_cmp);
            eprintln!(
                "[bench]    {leg}: p50 {:.3} ms, p99 {:.3} ms",
                percentile(values, 0.50),
                percentile(values, 0.99)
            );
        }
        latencies.sort_by(f64::total_cmp);
        report.latency(
            "pickup_latency",
            "4. pickup latency (enqueue call → handler returned)",
            k,
            &latencies,
            Some(0.5),
            Some(2.5),
        );
        Ok(idle_rss)
    }

    /// Scenario 5: Single-job `POST /api/admin/jobs` from 64 concurrent connections.
    async fn single_posts(&mut self, report: &mut Report, api: &Api) -> Result<()> {
        self.reset().await?;
        let conns = self.plan.post_connections;
        let duration = self.plan.post_duration;
        eprintln!("[bench] 5. single POST /api/admin/jobs: {conns} connections for {duration:?}");
        let body = bytes_of(&json!({ "queueName": QUEUE, "jobType": "NOOP", "payload": {} }));
        let url = format!("{}/api/admin/jobs", api.url);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(conns)
            .build()?;
        let started = Instant::now();
        let end = started + duration;
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < end {
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .bearer_auth(ADMIN_TOKEN)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let ok = match resp {
                        Ok(r) => r.status().as_u16() == 201 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(t.elapsed().as_secs_f64() * 1_000.0);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (l, e) = task.await?;
            latencies.extend(l);
            errors += e;
        }
        let secs = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        ensure!(!latencies.is_empty(), "no POST /api/admin/jobs succeeded");
        report.requests(
            "single_post",
            "5. single POST /api/admin/jobs, 64 connections",
            conns,
            secs,
            &latencies,
            errors,
        );
        Ok(())
    }

    // ---------------------------------------------------------------- helpers

    /// Starts and stops one worker before anything is measured. The first worker
    /// on a fresh Redis prefix finds the queue's generation marker missing, takes
    /// Redis for lost and re-dispatches every waiting job from PostgreSQL: a
    /// one-time recovery that no scenario should time.
    async fn warm_up(&mut self) -> Result<()> {
        self.reset().await?;
        let mut worker = self.spawn_worker()?;
        self.wait_worker_ready(&mut worker).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        worker.stop().await
    }

    /// Empties the job tables and the prefix's Redis keys.
    async fn reset(&mut self) -> Result<()> {
        sqlx::query("TRUNCATE jobs, job_executions")
            .execute(&self.pool)
            .await
            .context("truncating the job tables")?;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut self.redis)
            .await?;
        // A queue's generation marker stays: without it the next worker would take
        // Redis for lost and re-dispatch every waiting job (see `warm_up`).
        keys.retain(|k| !k.ends_with(":generation"));
        for batch in keys.chunks(1_000) {
            let () = redis::cmd("DEL")
                .arg(batch)
                .query_async(&mut self.redis)
                .await?;
        }
        self.settle().await;
        Ok(())
    }

    /// Writes every dirty buffer out now (CHECKPOINT), so the checkpointer does not
    /// flush what an earlier scenario wrote while the next one is timed (pgbench
    /// does the same before its runs). Needs a superuser or `pg_checkpoint`; without
    /// one the run goes on and says so.
    async fn settle(&self) {
        if let Err(e) = sqlx::query("CHECKPOINT").execute(&self.pool).await {
            eprintln!("[bench] CHECKPOINT refused ({e}); figures may carry earlier writes");
        }
    }

    async fn enqueue_noops(&self, n: usize, chunk: usize) -> Result<()> {
        for size in chunks(n, chunk) {
            self.conveyor
                .enqueue_many((0..size).map(|_| noop()).collect())
                .await
                .context("enqueue_many")?;
        }
        Ok(())
    }

    async fn count(&self, status: &str) -> Result<usize> {
        // From the trigger-kept counters: counting the jobs table on every poll would
        // cost PostgreSQL more than the jobs being measured.
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(n), 0)::bigint FROM (
                SELECT n FROM job_counts WHERE status = $1
                UNION ALL
                SELECT n FROM job_count_deltas WHERE status = $1) AS c",
        )
        .bind(status)
        .fetch_one(&mut *self.poll.lock().await)
        .await?;
        Ok(n as usize)
    }

    async fn expect_count(&self, status: &str, n: usize) -> Result<()> {
        let got = self.count(status).await?;
        ensure!(got == n, "{got} jobs are {status}, expected {n}");
        Ok(())
    }

    /// Polls every 20 ms until `n` records are COMPLETED; returns that moment.
    async fn wait_completed(
        &self,
        n: usize,
        worker: &mut Proc,
        timeout: Duration,
    ) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.count("COMPLETED").await?;
            if done >= n {
                return Ok(Instant::now());
            }
            if let Some(status) = worker.exited() {
                bail!("conveyor-worker exited ({status}) with {done}/{n} jobs COMPLETED");
            }
            if Instant::now() > deadline {
                let failed = self.count("FAILED").await?;
                bail!("only {done}/{n} jobs COMPLETED ({failed} FAILED) after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the worker has registered itself (its claim loops are up).
    async fn wait_worker_ready(&self, worker: &mut Proc) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM workers WHERE pid = $1")
                .bind(worker.pid() as i32)
                .fetch_one(&self.pool)
                .await?;
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(());
            }
            if let Some(status) = worker.exited() {
                bail!("conveyor-worker exited ({status}) before registering");
            }
            ensure!(
                Instant::now() < deadline,
                "conveyor-worker did not register within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn command(&self, binary: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin_dir.join(binary));
        cmd.env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", &self.redis_url)
            .env("CONVEYOR_REDIS_PREFIX", &self.prefix)
            .env("CONVEYOR_CONFIG", &self.config_path)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(std::process::Stdio::null())
            // Their logs go to our stderr: stdout carries the table.
            .stdout(std::io::stderr());
        cmd
    }

    fn spawn_worker(&self) -> Result<Proc> {
        let mut cmd = self.command("conveyor-worker");
        cmd.args([
            "--queues",
            QUEUE,
            "--concurrency",
            &self.plan.worker_concurrency.to_string(),
        ]);
        Proc::spawn("conveyor-worker", cmd)
    }

    async fn spawn_api(&self) -> Result<Api> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = self.command("conveyor-api");
        cmd.env("CONVEYOR_API_ADDR", &addr)
            .env("CONVEYOR_ADMIN_TOKENS", ADMIN_TOKEN);
        let mut proc = Proc::spawn("conveyor-api", cmd)?;
        let url = format!("http://{addr}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{url}/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Some(status) = proc.exited() {
                bail!("conveyor-api exited ({status}) before answering /health");
            }
            ensure!(
                Instant::now() < deadline,
                "conveyor-api did not answer /health within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Api { proc, url, client })
    }

    /// The pid of the redis-server we talk to, when it runs on this machine.
    async fn find_redis_pid(&mut self) -> Option<u32> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.redis)
            .await
            .ok()?;
        let pid: u32 = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))?
            .trim()
            .parse()
            .ok()?;
        is_process(pid, "redis").then_some(pid)
    }

    /// Machine, versions and date, for the report.
    async fn environment(&mut self) -> Value {
        let pg: Option<String> = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.pool)
            .await
            .ok();
        let info: Option<String> = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.redis)
            .await
            .ok();
        let redis_version = info.as_deref().and_then(|i| {
            i.lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .map(|v| v.trim().to_string())
        });
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        });
        json!({
            "date": Utc::now().to_rfc3339(),
            "conveyor": env!("CARGO_PKG_VERSION"),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "cpu_model": cpu_model,
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
            "postgres": pg,
            "redis": redis_version,
            "bin_dir": self.bin_dir.display().to_string(),
        })
    }
}

fn noop() -> NewJob {
    NewJob::new(QUEUE, "NOOP", json!({}))
}

fn bytes_of(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Sizes of the chunks that make up `n` (all `chunk` but maybe the last).
fn chunks(n: usize, chunk: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by(chunk.max(1)).map(move |i| chunk.min(n - i))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn validate_db_name(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name != "postgres",
        "--database: `{name}` must be 1-63 characters of a-z, 0-9 and _ (not postgres)"
    );
    Ok(())
}

/// `postgres://user@host:5432/db?x=y` → (`postgres://user@host:5432`, `?x=y`).
fn split_pg_url(url: &str) -> Result<(String, String)> {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = main
        .find("://")
        .with_context(|| format!("DATABASE_URL `{url}` is not a URL"))?
        + 3;
    let base = match main[scheme_end..].find('/') {
        Some(i) => &main[..scheme_end + i],
        None => main,
    };
    Ok((base.to_string(), query))
}

async fn recreate_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

async fn delete_redis_prefix(url: &str, prefix: &str) -> Result<()> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    for batch in keys.chunks(1_000) {
        let () = redis::cmd("DEL").arg(batch).query_async(&mut conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::measure::percentile;
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn chunks_cover_n() {
        assert_eq!(
            chunks(25_000, 10_000).collect::<Vec<_>>(),
            [10_000, 10_000, 5_000]
        );
        assert_eq!(chunks(2_000, 10_000).collect::<Vec<_>>(), [2_000]);
        assert_eq!(chunks(0, 10).count(), 0);
    }

    #[test]
    fn pg_url_split() {
        assert_eq!(
            split_pg_url("postgres://postgres@127.0.0.1:5432/conveyor_test?sslmode=disable")
                .unwrap(),
            (
                "postgres://postgres@127.0.0.1:5432".to_string(),
                "?sslmode=disable".to_string()
            )
        );
        assert_eq!(
            split_pg_url("postgres://postgres@127.0.0.1:5432")
                .unwrap()
                .0,
            "postgres://postgres@127.0.0.1:5432"
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
    }
}
