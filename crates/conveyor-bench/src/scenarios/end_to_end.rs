//! Scenario 3: a producer enqueues NOOP jobs while one worker drains them.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use super::{enqueue_noops, WorkerFigures};
use crate::report::{Report, Target};
use crate::setup::Bench;

impl Bench {
    /// Scenario 3: A producer enqueueing N (library, chunks of 1 000) while a worker drains.
    pub(crate) async fn end_to_end(&mut self, report: &mut Report) -> Result<WorkerFigures> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 3. end to end: producing {n} NOOP jobs while one worker drains");
        let mut worker = self.spawn_worker()?;
        self.wait_worker_ready(&mut worker).await?;
        let cpu0 = self.cpu_now(&worker);
        let started = Instant::now();
        let mut producer = {
            let conveyor = self.conveyor.clone();
            let chunk = self.plan.e2e_chunk;
            tokio::spawn(async move {
                enqueue_noops(&conveyor, n, chunk).await?;
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
        let figures = self.finish_worker(worker, &cpu0, n).await?;
        let cpu = &figures.cpu;
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
                "worker_peak_rss_kb": figures.peak_rss_kb,
            }),
        );
        Ok(figures)
    }
}
