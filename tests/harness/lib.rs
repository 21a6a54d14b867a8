//! Test harness for Conveyor's end-to-end suite.
//!
//! Each test gets its own PostgreSQL database (from `#[sqlx::test]`) and its own
//! Redis key prefix, so tests run in parallel on one PostgreSQL and one Redis.
//! Workers run in-process ([`TestEnv::worker`]) or as the real `conveyor-worker`
//! binary ([`TestEnv::spawn_worker`]) for tests that signal or kill processes.
//! Nothing here skips: a test that cannot reach a service fails.
//!
//! Tests wait for conditions ([`wait_for`], [`TestEnv::wait_status`],
//! [`TestEnv::wait_count`] …), not for fixed times.

pub mod ctl;
pub mod domain;
pub mod fakes;
pub mod http;
pub mod schedules;
pub mod services;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use queue_core::job::{Execution, Job, JobStatus, NewJob};
use queue_core::metrics::Metrics;
use queue_core::worker::{Shutdown, Worker};
use queue_core::{broker::Broker, diagnostics, store::Store, Config, Conveyor, HandlerRegistry};
use sqlx::PgPool;
use uuid::Uuid;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the built binaries are (`scripts/test.sh` builds them first).
pub fn bin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("CONVEYOR_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"))
                .join("debug")
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The URL of the database `#[sqlx::test]` made for this test.
pub fn test_db_url(pool: &PgPool) -> String {
    let db_name = pool
        .connect_options()
        .get_database()
        .expect("test database name")
        .to_string();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let base = base.split('?').next().unwrap_or_default();
    format!(
        "{}/{db_name}",
        &base[..base.rfind('/').expect("DATABASE_URL has a path")]
    )
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// How often the waiting helpers look again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it answers `Ok`, and answers its value; fails the test with
/// the last `Err` (what it saw instead) after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "after {timeout:?}: {seen}"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One test's isolated world.
pub struct TestEnv {
    /// Pool on the test's own database (for assertions).
    pub pool: PgPool,
    pub db_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub config: Arc<Config>,
    pub conveyor: Conveyor,
    children: Mutex<Vec<Child>>,
}

impl TestEnv {
    pub async fn new(pool: PgPool) -> Self {
        Self::with_config(pool, |_| {}).await
    }

    /// `adjust` changes the configuration used in-process (spawned workers get the
    /// repository's file plus the environment passed to [`TestEnv::spawn_worker`]).
    pub async fn with_config(pool: PgPool, adjust: impl FnOnce(&mut Config)) -> Self {
        let db_url = test_db_url(&pool);
        Self::with_services(pool, db_url, redis_url(), adjust).await
    }

    /// An environment on the given database and Redis (fault tests use private
    /// instances of both).
    pub async fn with_services(
        pool: PgPool,
        db_url: String,
        redis_url: String,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let prefix = format!("test-{}", Uuid::new_v4().simple());

        let mut config =
            Config::load(Some(&repo_root().join("config/conveyor.toml"))).expect("config loads");
        config.database.url = db_url.clone();
        config.redis.url = redis_url.clone();
        config.redis.prefix = prefix.clone();
        adjust(&mut config);
        let config = Arc::new(config);
        let store = Store::connect(&db_url, 8)
            .await
            .expect("postgres reachable");
        let broker = Broker::connect(&config.redis.url, &prefix)
            .await
            .expect("redis reachable");
        let conveyor = Conveyor::new(
            store,
            broker,
            config.clone(),
            Arc::new(processors::jobs::catalog()),
        );
        Self {
            pool,
            db_url,
            redis_url,
            prefix,
            config,
            conveyor,
            children: Mutex::new(Vec::new()),
        }
    }

    /// A client whose catalog also knows CRASH (a job that aborts its worker);
    /// workers run it only with `CONVEYOR_DIAGNOSTICS_CRASH=1`.
    pub fn conveyor_with_crash(&self) -> Conveyor {
        let mut catalog = processors::jobs::catalog();
        catalog.add::<diagnostics::Crash>();
        Conveyor::new(
            self.conveyor.store().clone(),
            self.conveyor.broker().clone(),
            self.config.clone(),
            Arc::new(catalog),
        )
    }

    /// Starts an in-process worker on `queues` (diagnostics handlers).
    pub fn worker(&self, queues: &[&str], concurrency: Option<u32>) -> InProcessWorker {
        let mut registry = HandlerRegistry::new();
        diagnostics::register_handlers(&mut registry);
        let worker = Worker::new(
            self.config.clone(),
            self.conveyor.store().clone(),
            self.conveyor.broker().clone(),
            registry,
            queues.iter().map(|q| q.to_string()).collect(),
            concurrency,
            Metrics::new(),
        )
        .expect("worker builds");
        let id = worker.id().to_string();
        let shutdown = Shutdown::default();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        InProcessWorker {
            id,
            shutdown,
            handle,
        }
    }

    /// Spawns the real `conveyor-worker` binary on this test's database and prefix.
    pub fn spawn_worker(&self, args: &[&str], env: &[(&str, &str)]) -> WorkerProcess {
        self.spawn("conveyor-worker", args, env)
    }

    /// Spawns the real `conveyor-scheduler` on this test's database and prefix.
    pub fn spawn_scheduler(&self) -> WorkerProcess {
        self.spawn("conveyor-scheduler", &[], &[])
    }

    /// Spawns the real `conveyor-api` on a free port with admin token [`http::ADMIN`];
    /// returns once `/health` answers.
    pub async fn spawn_api(&self, env: &[(&str, &str)]) -> ApiProcess {
        let port = services::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut all = vec![
            ("CONVEYOR_API_ADDR", addr.as_str()),
            ("CONVEYOR_ADMIN_TOKENS", http::ADMIN),
        ];
        all.extend_from_slice(env);
        let process = self.spawn("conveyor-api", &[], &all);
        let url = format!("http://{addr}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{url}/health")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "conveyor-api did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ApiProcess {
            pid: process.pid,
            url,
            token: http::ADMIN.into(),
            client,
        }
    }

    /// Spawns the real binary `binary` on this test's database and prefix.
    pub fn spawn(&self, binary: &str, args: &[&str], env: &[(&str, &str)]) -> WorkerProcess {
        let mut cmd = Command::new(bin_path(binary));
        cmd.args(args)
            .current_dir(repo_root())
            .env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", &self.redis_url)
            .env("CONVEYOR_REDIS_PREFIX", &self.prefix)
            .env("CONVEYOR_CONFIG", repo_root().join("config/conveyor.toml"))
            .env(
                "RUST_LOG",
                std::env::var("TEST_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        WorkerProcess { pid }
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to a spawned worker.
    pub fn signal(&self, worker: &WorkerProcess, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(worker.pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", worker.pid);
    }

    /// Waits for a spawned worker to exit; returns its exit success.
    pub async fn wait_exit(&self, worker: &WorkerProcess, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut children = self.children.lock().unwrap();
                if let Some(child) = children.iter_mut().find(|c| c.id() == worker.pid) {
                    if let Some(status) = child.try_wait().expect("try_wait") {
                        return status.success();
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "worker {} did not exit within {timeout:?}",
                worker.pid
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn job(&self, id: Uuid) -> Job {
        self.conveyor
            .store()
            .get_job(id)
            .await
            .expect("read job")
            .expect("job exists")
    }

    /// Writes an attempt of job `id` that finished `secs_ago` seconds ago (for
    /// routes that only read attempts a worker would have written).
    pub async fn record_attempt(
        &self,
        id: Uuid,
        attempt: i32,
        status: &str,
        duration_ms: i64,
        error: Option<&str>,
        secs_ago: f64,
    ) {
        let written = sqlx::query(
            "INSERT INTO job_executions
                 (job_id, job_type, attempt, worker_id, status, started_at, finished_at, duration_ms, error)
             SELECT $1, job_type, $2, 'w', $3, now() - make_interval(secs => $4),
                    now() - make_interval(secs => $4), $5, $6
             FROM jobs WHERE id = $1",
        )
        .bind(id)
        .bind(attempt)
        .bind(status)
        .bind(secs_ago)
        .bind(duration_ms)
        .bind(error)
        .execute(&self.pool)
        .await
        .expect("insert attempt");
        assert_eq!(written.rows_affected(), 1, "attempt of an unknown job {id}");
    }

    pub async fn executions(&self, id: Uuid) -> Vec<Execution> {
        self.conveyor
            .store()
            .executions(id)
            .await
            .expect("read executions")
    }

    /// Waits until job `id` has `status`, failing the test after `timeout`.
    pub async fn wait_status(&self, id: Uuid, status: JobStatus, timeout: Duration) -> Job {
        wait_for(timeout, || async move {
            let job = self.job(id).await;
            if job.status == status {
                Ok(job)
            } else {
                Err(format!(
                    "job {id} is {}, expected {status}: {job:?}",
                    job.status
                ))
            }
        })
        .await
    }

    /// Waits until `count` jobs have `status`.
    pub async fn wait_count(&self, status: JobStatus, count: i64, timeout: Duration) {
        wait_for(timeout, || async move {
            let n = self.count(status).await;
            if n == count {
                Ok(())
            } else {
                Err(format!("{n} jobs are {status}, expected {count}"))
            }
        })
        .await
    }

    /// Waits until at least `count` jobs have `status`.
    pub async fn wait_count_at_least(&self, status: JobStatus, count: i64, timeout: Duration) {
        wait_for(timeout, || async move {
            let n = self.count(status).await;
            if n >= count {
                Ok(())
            } else {
                Err(format!("{n} jobs are {status}, expected at least {count}"))
            }
        })
        .await
    }

    /// Waits until a worker has looked at `queue` in Redis once (it set the queue's
    /// generation marker, rebuilding the queue from PostgreSQL if it was missing).
    pub async fn wait_queue_known_to_redis(&self, queue: &str) {
        let key = format!("{}:{{{queue}}}:generation", self.prefix);
        let redis = &self.redis().await;
        let key = &key;
        wait_for(Duration::from_secs(30), || async move {
            let exists: bool = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut redis.clone())
                .await
                .expect("redis reachable");
            exists
                .then_some(())
                .ok_or_else(|| format!("no worker looked at {queue}"))
        })
        .await
    }

    /// Waits until `n` live workers are recorded in PostgreSQL.
    pub async fn wait_workers(&self, n: i64, timeout: Duration) {
        wait_for(timeout, || async move {
            let live: i64 = sqlx::query_scalar("SELECT count(*) FROM workers")
                .fetch_one(&self.pool)
                .await
                .expect("count workers");
            if live == n {
                Ok(())
            } else {
                Err(format!("{live} workers are recorded, expected {n}"))
            }
        })
        .await
    }

    /// True while the spawned process runs.
    pub fn is_running(&self, process: &WorkerProcess) -> bool {
        let mut children = self.children.lock().unwrap();
        children
            .iter_mut()
            .find(|c| c.id() == process.pid)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub async fn count(&self, status: JobStatus) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Every job record, whatever its state.
    pub async fn job_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(&self.pool)
            .await
            .expect("count jobs")
    }

    /// Enqueues `job` through the library; answers its id.
    pub async fn enqueue(&self, job: NewJob) -> Uuid {
        let what = format!("{} {}", job.queue, job.job_type);
        self.conveyor
            .enqueue(job)
            .await
            .unwrap_or_else(|e| panic!("enqueue {what}: {e}"))
            .job
            .id
    }

    /// The state of job `id` as PostgreSQL has it (None: no such record).
    pub async fn status_of(&self, id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .expect("read status")
    }

    /// Puts job `id` in `status` as a worker would have left it (terminal states
    /// get a completion time; waiting ones no attempt), for routes that only read
    /// or act on that state.
    pub async fn set_status(&self, id: Uuid, status: JobStatus) {
        sqlx::query(
            "UPDATE jobs SET status = $2, completed_at = CASE WHEN $3 THEN now() END,
                             attempts = CASE WHEN $2 = 'PENDING' OR $2 = 'DELAYED' THEN 0 ELSE 1 END
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(status.is_terminal())
        .execute(&self.pool)
        .await
        .expect("set status");
    }

    /// Inserts a NOOP record of `queue` in `status` directly (any queue, even one
    /// the configuration does not have), created `secs_ago` seconds ago; a finished
    /// one finished then.
    pub async fn insert_job(&self, queue: &str, status: &str, secs_ago: i64) -> Uuid {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO jobs (id, queue_name, job_type, status, payload, max_attempts, run_at,
                               created_at, completed_at)
             VALUES ($1, $2, 'NOOP', $3, '{}', 1, now() - make_interval(secs => $4),
                     now() - make_interval(secs => $4),
                     CASE WHEN $3 IN ('COMPLETED','FAILED','CANCELLED')
                          THEN now() - make_interval(secs => $4) END)",
        )
        .bind(id)
        .bind(queue)
        .bind(status)
        .bind(secs_ago as f64)
        .execute(&self.pool)
        .await
        .expect("insert job");
        id
    }

    /// The score of `member` in the sorted set `key` (None: not in it).
    pub async fn zscore(&self, key: &str, member: &str) -> Option<f64> {
        redis::cmd("ZSCORE")
            .arg(key)
            .arg(member)
            .query_async(&mut self.redis().await)
            .await
            .expect("ZSCORE")
    }

    /// How many members the sorted set `key` has.
    pub async fn zcard(&self, key: &str) -> i64 {
        redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut self.redis().await)
            .await
            .expect("ZCARD")
    }

    /// True when job `id` waits in `queue`'s ready set in Redis.
    pub async fn in_ready_set(&self, queue: &str, id: Uuid) -> bool {
        let ready = self.conveyor.broker().keys(queue).ready;
        self.zscore(&ready, &id.to_string()).await.is_some()
    }

    /// The entries of `queue`'s dead-letter stream, in stream order, each as its
    /// fields (`jobId`, `jobType`, `error`, `attempts`, `failedAt`).
    pub async fn dead_letters(
        &self,
        queue: &str,
    ) -> Vec<std::collections::HashMap<String, String>> {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(self.conveyor.broker().keys(queue).dlq)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis().await)
            .await
            .expect("XRANGE");
        entries
            .into_iter()
            .map(|(_, fields)| fields.into_iter().collect())
            .collect()
    }

    /// The job ids of `queue`'s dead-letter stream, in stream order.
    pub async fn dead_letter_ids(&self, queue: &str) -> Vec<Uuid> {
        self.dead_letters(queue)
            .await
            .iter()
            .map(|fields| fields["jobId"].parse().expect("a job id"))
            .collect()
    }

    /// A plain Redis connection (for assertions on keys).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("redis reachable")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for child in self.children.lock().unwrap().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Leave Redis as we found it.
        if let Ok(mut conn) = redis::Client::open(self.redis_url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

/// A worker running inside the test process.
pub struct InProcessWorker {
    pub id: String,
    pub shutdown: Shutdown,
    pub handle: tokio::task::JoinHandle<()>,
}

impl InProcessWorker {
    /// Drains and waits for the worker to stop.
    pub async fn stop(self) {
        self.shutdown.drain.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("worker stops")
            .expect("worker task");
    }
}

/// A spawned process (`conveyor-worker`, `conveyor-scheduler` or `conveyor-api`).
pub struct WorkerProcess {
    pub pid: u32,
}

/// A spawned `conveyor-api` and a client for it.
pub struct ApiProcess {
    pub pid: u32,
    pub url: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl ApiProcess {
    /// Sends `method path` with the admin token and an optional JSON body; returns
    /// the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        match req.timeout(Duration::from_secs(30)).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
                )
            }
            Err(e) => panic!("{path}: request failed: {e}"),
        }
    }
}
