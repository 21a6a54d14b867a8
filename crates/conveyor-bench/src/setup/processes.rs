//! The spawned `conveyor-api` and `conveyor-worker`: started with the run's
//! database, Redis prefix and configuration, waited for until they are up, and
//! stopped (SIGTERM, then SIGKILL) and never leaked.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{Bench, ADMIN_TOKEN, QUEUE};

/// A child process; killed when dropped while still running.
pub(crate) struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    pub(crate) fn spawn(name: &'static str, mut cmd: Command) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {name} ({:?})", cmd.get_program()))?;
        Ok(Self { name, child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status once it has ended.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM (the binaries drain), then SIGKILL after 40 s.
    pub(crate) async fn stop(mut self) -> Result<()> {
        if self.exited().is_some() {
            return Ok(());
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "[bench] warning: {} did not stop within 40 s of SIGTERM; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A spawned `conveyor-api` and how to reach it.
pub(crate) struct Api {
    pub(crate) proc: Proc,
    pub(crate) url: String,
    pub(crate) client: reqwest::Client,
}

impl Bench {
    /// Waits until the worker has registered itself (its claim loops are up).
    pub(crate) async fn wait_worker_ready(&self, worker: &mut Proc) -> Result<()> {
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

    fn command(&self, binary: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(binary));
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

    pub(crate) fn spawn_worker(&self) -> Result<Proc> {
        let mut cmd = self.command("conveyor-worker");
        cmd.args([
            "--queues",
            QUEUE,
            "--concurrency",
            &self.plan.worker_concurrency.to_string(),
        ]);
        Proc::spawn("conveyor-worker", cmd)
    }

    pub(crate) async fn spawn_api(&self) -> Result<Api> {
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
}
