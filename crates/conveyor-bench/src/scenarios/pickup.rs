//! Scenario 4: pickup latency, ECHO jobs sent one at a time to an idle worker.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use queue_core::NewJob;
use serde_json::json;
use uuid::Uuid;

use crate::measure::{percentile, proc_status_kb};
use crate::report::Report;
use crate::setup::{Bench, QUEUE};

impl Bench {
    /// Scenario 4: ECHO jobs one at a time at 200/s to an idle worker: the attempt's
    /// end (`completed_at`, the worker's clock when the ECHO handler returned, so
    /// never earlier than the handler's start) minus the client's clock just before
    /// the enqueue call. Prints where the time went. Returns the worker's RSS when
    /// idle (after start, before any job).
    pub(crate) async fn pickup(&mut self, report: &mut Report) -> Result<u64> {
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
}
