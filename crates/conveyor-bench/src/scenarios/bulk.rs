//! Scenario 1: bulk enqueue of NOOP jobs, through the library
//! (`Conveyor::enqueue_many`) and through `POST /api/admin/jobs/bulk`.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::{chunks, enqueue_noops, noop_json, post_json};
use crate::report::{Report, Target};
use crate::setup::{Api, Bench};

impl Bench {
    /// Scenario 1a: `Conveyor::enqueue_many` in chunks of 10 000.
    pub(crate) async fn bulk_library(&mut self, report: &mut Report) -> Result<()> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 1. bulk enqueue (library): {n} NOOP jobs");
        let started = Instant::now();
        enqueue_noops(&self.conveyor, n, self.plan.bulk_chunk)
            .await
            .context("enqueue_many")?;
        self.record_bulk(
            report,
            "bulk_enqueue_library",
            "1. bulk enqueue, library (enqueue_many × 10 000)",
            started,
        )
        .await
    }

    /// Scenario 1b: `POST /api/admin/jobs/bulk` in chunks of 10 000.
    pub(crate) async fn bulk_api(&mut self, report: &mut Report, api: &Api) -> Result<()> {
        self.reset().await?;
        let n = self.plan.jobs;
        eprintln!("[bench] 1. bulk enqueue (POST /api/admin/jobs/bulk): {n} NOOP jobs");
        let one = noop_json();
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
            let resp = post_json(&api.client, &url, bodies[&size].clone())
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
        self.record_bulk(
            report,
            "bulk_enqueue_api",
            "1. bulk enqueue, POST /api/admin/jobs/bulk × 10 000",
            started,
        )
        .await
    }

    /// Checks that every job of the run arrived (PENDING) and records the rate
    /// since `started`.
    async fn record_bulk(
        &self,
        report: &mut Report,
        key: &'static str,
        label: &str,
        started: Instant,
    ) -> Result<()> {
        let n = self.plan.jobs;
        let secs = started.elapsed().as_secs_f64();
        self.expect_count("PENDING", n).await?;
        report.throughput(key, label, n, secs, Target::TimesBullmq(2.0));
        Ok(())
    }
}
