//! What a run sets up around the scenarios: its sizes ([`Plan`]), the bench
//! database and its connections, the Redis key prefix and the spawned binaries
//! ([`Bench`]), and the clean slate each scenario starts from.

mod database;
mod processes;
mod redis_prefix;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use queue_core::{broker::Broker, store::Store, Catalog, Config, Conveyor};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};

use crate::measure::{is_process, ticks_per_second};

pub(crate) use database::{drop_database, recreate_database, split_pg_url, validate_db_name};
pub(crate) use processes::{Api, Proc};
pub(crate) use redis_prefix::delete_redis_prefix;

/// Bearer token given to the spawned `conveyor-api`.
pub(crate) const ADMIN_TOKEN: &str = "bench-token";
/// The queue every scenario uses (NOOP and ECHO live there).
pub(crate) const QUEUE: &str = "diagnostics";

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    pub(crate) jobs: usize,
    pub(crate) bulk_chunk: usize,
    pub(crate) e2e_chunk: usize,
    pub(crate) pickup_jobs: usize,
    pub(crate) pickup_rate: f64,
    pub(crate) post_connections: usize,
    pub(crate) post_duration: Duration,
    pub(crate) worker_concurrency: u32,
}

impl Plan {
    /// The sizes for `--quick` (or not) and `--jobs`.
    pub(crate) fn new(quick: bool, jobs: Option<usize>) -> Self {
        Self {
            quick,
            jobs: jobs.unwrap_or(if quick { 2_000 } else { 100_000 }).max(1),
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
    pub(crate) fn drain_timeout(&self, jobs: usize) -> Duration {
        Duration::from_secs(60) + Duration::from_millis(jobs as u64 * 5)
    }
}

/// The services, the client and the spawn settings of a run.
pub(crate) struct Bench {
    pub(crate) plan: Plan,
    db_url: String,
    pub(crate) redis_url: String,
    pub(crate) prefix: String,
    config_path: PathBuf,
    bin_dir: PathBuf,
    pub(crate) conveyor: Conveyor,
    pub(crate) pool: PgPool,
    redis: redis::aio::MultiplexedConnection,
    pub(crate) ticks: f64,
    /// The connection the completion polls use, and its backend's pid (its CPU is
    /// the cost of measuring, kept apart).
    pub(crate) poll: tokio::sync::Mutex<PgConnection>,
    pub(crate) poll_pid: Option<u32>,
    /// The local redis-server's pid, for its CPU time.
    pub(crate) redis_pid: Option<u32>,
}

impl Bench {
    /// Connects to the (freshly created) bench database, migrates it and connects
    /// to Redis under `prefix`.
    pub(crate) async fn connect(
        plan: Plan,
        db_url: &str,
        redis_url: &str,
        prefix: &str,
        config_path: PathBuf,
        bin_dir: PathBuf,
    ) -> Result<Self> {
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
        Ok(bench)
    }

    /// Starts and stops one worker before anything is measured. The first worker
    /// on a fresh Redis prefix finds the queue's generation marker missing, takes
    /// Redis for lost and re-dispatches every waiting job from PostgreSQL: a
    /// one-time recovery that no scenario should time.
    pub(crate) async fn warm_up(&mut self) -> Result<()> {
        self.reset().await?;
        let mut worker = self.spawn_worker()?;
        self.wait_worker_ready(&mut worker).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        worker.stop().await
    }

    /// Empties the job tables and the prefix's Redis keys.
    pub(crate) async fn reset(&mut self) -> Result<()> {
        sqlx::query("TRUNCATE jobs, job_executions")
            .execute(&self.pool)
            .await
            .context("truncating the job tables")?;
        // A queue's generation marker stays: without it the next worker would take
        // Redis for lost and re-dispatch every waiting job (see `warm_up`).
        redis_prefix::delete_keys(&mut self.redis, &self.prefix, |k| {
            !k.ends_with(":generation")
        })
        .await?;
        self.settle().await;
        Ok(())
    }

    /// Writes every dirty buffer out now (CHECKPOINT), so the checkpointer does not
    /// flush what an earlier scenario wrote while the next one is timed (pgbench
    /// does the same before its runs). Needs a superuser or `pg_checkpoint`; without
    /// one the run goes on and says so.
    pub(crate) async fn settle(&self) {
        if let Err(e) = sqlx::query("CHECKPOINT").execute(&self.pool).await {
            eprintln!("[bench] CHECKPOINT refused ({e}); figures may carry earlier writes");
        }
    }

    /// Machine, versions and date, for the report.
    pub(crate) async fn environment(&mut self) -> Value {
        let pg: Option<String> = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.pool)
            .await
            .ok();
        let redis_version = self.redis_server_info("redis_version").await;
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

/// `p` made absolute against the current directory.
pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}
