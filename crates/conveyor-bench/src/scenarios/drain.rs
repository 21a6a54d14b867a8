//! Scenario 2: one worker drains a backlog of queued NOOP jobs.

use std::time::Instant;

use anyhow::{Context, Result};

use super::{enqueue_noops, WorkerFigures};
use crate::report::{Report, Target};
use crate::setup::Bench;

impl Bench {
    /// Scenario 2 + 6: N queued NOOP jobs, one worker started on them, timed to the last
    /// COMPLETED record; the worker's CPU and peak RSS.
    pub(crate) async fn drain(&mut self, report: &mut Report) -> Result<WorkerFigures> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 2. drain: {n} queued NOOP jobs, one worker");
        let (secs, figures) = self.drain_backlog(n, 0).await?;
        report.throughput(
            "drain",
            "2. drain (queued → all COMPLETED, 1 worker × 100)",
            n,
            secs,
            Target::TimesBullmq(1.5),
        );
        Ok(figures)
    }

    /// Enqueues `n` NOOP jobs, starts one worker and waits until `already_done + n`
    /// records are COMPLETED; returns the seconds from the worker's start and its
    /// figures.
    pub(super) async fn drain_backlog(
        &mut self,
        n: usize,
        already_done: usize,
    ) -> Result<(f64, WorkerFigures)> {
        enqueue_noops(&self.conveyor, n, self.plan.bulk_chunk)
            .await
            .context("enqueue_many")?;
        let started = Instant::now();
        let mut worker = self.spawn_worker()?;
        let cpu0 = self.cpu_now(&worker);
        let done = self
            .wait_completed(already_done + n, &mut worker, self.plan.drain_timeout(n))
            .await?;
        let secs = done.duration_since(started).as_secs_f64();
        let figures = self.finish_worker(worker, &cpu0, n).await?;
        Ok((secs, figures))
    }
}
