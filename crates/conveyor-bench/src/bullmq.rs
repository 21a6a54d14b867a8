//! Runs the BullMQ side of the comparison (`bench/bullmq/bench.mjs`, Node).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::setup::Plan;

/// Installs the script's packages when missing, runs it on `redis_url` with a
/// fresh prefix and returns the JSON it prints.
pub(crate) async fn run(dir: &Path, redis_url: &str, plan: &Plan) -> Result<Value> {
    let script = dir.join("bench.mjs");
    if !script.exists() {
        bail!("{} is missing", script.display());
    }
    if !dir.join("node_modules").exists() {
        eprintln!("[bench] npm install --prefix {}", dir.display());
        let status = tokio::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir)
            .stdout(std::io::stderr())
            .status()
            .await
            .context("running npm (is Node.js installed?)")?;
        if !status.success() {
            bail!("npm install failed ({status})");
        }
    }
    eprintln!("[bench] BullMQ: node {}", script.display());
    let prefix = format!("bench-bull-{}", uuid::Uuid::new_v4().simple());
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("REDIS_URL", redis_url)
        .env("BULL_PREFIX", &prefix)
        .env("BENCH_JOBS", plan.jobs.to_string())
        .env("BENCH_PICKUP_JOBS", plan.pickup_jobs.to_string())
        .env("BENCH_PICKUP_RATE", plan.pickup_rate.to_string())
        .env("BENCH_CONCURRENCY", plan.worker_concurrency.to_string())
        // Progress on our stderr; `output()` would capture it.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("running node (is Node.js installed?)")?
        .wait_with_output()
        .await
        .context("running node")?;
    if !output.status.success() {
        bail!("bench.mjs failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("bench.mjs printed no JSON")?;
    serde_json::from_str(last).context("bench.mjs printed malformed JSON")
}
