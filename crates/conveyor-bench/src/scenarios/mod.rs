//! The scenarios, one file each, and what they share: NOOP jobs, chunking and
//! the completion polls that time them.
//!
//! 1. `bulk`: bulk enqueue, library and API
//! 2. `drain`: one worker drains a backlog
//! 3. `end_to_end`: a producer enqueues while a worker drains
//! 4. `pickup`: pickup latency of an idle worker
//! 5. `single_post`: single-job POSTs from many connections
//! 6. worker resources: CPU and memory of the worker in 2 to 4 (`Report::worker_resources`)
//! 7. `big_table`: admin reads over a big jobs table
//! 8. `history`: the drain beside a long history of finished jobs, and its retention

mod big_table;
mod bulk;
mod drain;
mod end_to_end;
mod history;
mod pickup;
mod single_post;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use queue_core::{Conveyor, EnqueueError, NewJob};
use serde_json::{json, Value};

use crate::measure::{cpu_snapshot, proc_status_kb, CpuSnapshot, CpuUse};
use crate::setup::{Bench, Proc, ADMIN_TOKEN, QUEUE};

pub(crate) use history::Pruned;

/// What the drain and end-to-end scenarios measured of their worker.
pub(crate) struct WorkerFigures {
    pub(crate) jobs: usize,
    pub(crate) cpu: CpuUse,
    pub(crate) peak_rss_kb: u64,
}

impl Bench {
    /// The CPU time used so far by the worker, Redis, PostgreSQL and the machine.
    fn cpu_now(&self, worker: &Proc) -> CpuSnapshot {
        cpu_snapshot(worker.pid(), self.redis_pid, self.poll_pid)
    }

    /// The worker's CPU since `cpu0` and its peak RSS, for `jobs` jobs; then stops it.
    async fn finish_worker(
        &self,
        worker: Proc,
        cpu0: &CpuSnapshot,
        jobs: usize,
    ) -> Result<WorkerFigures> {
        let cpu = self.cpu_now(&worker).since(cpu0, self.ticks);
        let peak_rss_kb = proc_status_kb(worker.pid(), "VmHWM")?;
        worker.stop().await?;
        Ok(WorkerFigures {
            jobs,
            cpu,
            peak_rss_kb,
        })
    }

    pub(crate) async fn count(&self, status: &str) -> Result<usize> {
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
}

fn noop() -> NewJob {
    NewJob::new(QUEUE, "NOOP", json!({}))
}

/// A NOOP job as the admin API takes it.
fn noop_json() -> Value {
    json!({ "queueName": QUEUE, "jobType": "NOOP", "payload": {} })
}

/// Enqueues `n` NOOP jobs through the library, `chunk` per `enqueue_many`.
async fn enqueue_noops(conveyor: &Conveyor, n: usize, chunk: usize) -> Result<(), EnqueueError> {
    for size in chunks(n, chunk) {
        conveyor
            .enqueue_many((0..size).map(|_| noop()).collect())
            .await?;
    }
    Ok(())
}

/// An authenticated JSON `POST` to the admin API.
fn post_json(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    client
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
}

fn bytes_of(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Sizes of the chunks that make up `n` (all `chunk` but maybe the last).
fn chunks(n: usize, chunk: usize) -> impl Iterator<Item = usize> {
    (0..n).step_by(chunk.max(1)).map(move |i| chunk.min(n - i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_n() {
        assert_eq!(
            chunks(25_000, 10_000).collect::<Vec<_>>(),
            [10_000, 10_000, 5_000]
        );
        assert_eq!(chunks(2_000, 10_000).collect::<Vec<_>>(), [2_000]);
        assert_eq!(chunks(0, 10).count(), 0);
    }
}
