//! Scenario 5: single-job `POST /api/admin/jobs` from many concurrent connections.

use std::time::Instant;

use anyhow::{ensure, Result};

use super::{bytes_of, noop_json, post_json};
use crate::report::Report;
use crate::setup::{Api, Bench};

impl Bench {
    /// Scenario 5: Single-job `POST /api/admin/jobs` from 64 concurrent connections.
    pub(crate) async fn single_posts(&mut self, report: &mut Report, api: &Api) -> Result<()> {
        self.reset().await?;
        let conns = self.plan.post_connections;
        let duration = self.plan.post_duration;
        eprintln!("[bench] 5. single POST /api/admin/jobs: {conns} connections for {duration:?}");
        let body = bytes_of(&noop_json());
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
                    let resp = post_json(&client, &url, body.clone()).send().await;
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
}
