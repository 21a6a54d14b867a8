//! `conveyor-bench`: drives the real `conveyor-api` and `conveyor-worker` binaries
//! through the scenarios in `scenarios/` (bulk enqueue, drain, end to end, pickup
//! latency, single POSTs, worker resources) and reports throughput, latency and
//! resources, plus the admin API's reads over 1 000 000 records (`big_table`).
//!
//! It makes its own database (dropped and created afresh, migrated with
//! `queue_core::store::MIGRATOR`) on the PostgreSQL server of `DATABASE_URL` and uses
//! a Redis key prefix of its own, so it never touches other data. Between scenarios
//! the job tables are truncated and the prefix's Redis keys deleted.
//!
//! Output: a markdown table on stdout, progress on stderr, and the figures as JSON
//! (`--output`, default `target/bench/results.json`).

mod bullmq;
mod measure;
mod report;
mod scenarios;
mod setup;

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use serde_json::json;
use uuid::Uuid;

use report::Report;
use setup::{absolute, Bench, Plan};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Benchmarks Conveyor's binaries: throughput, latency, resources and admin reads"
)]
struct Args {
    /// Small counts and short runs (2 000 jobs), no targets: the CI check.
    #[arg(long)]
    quick: bool,
    /// Jobs per throughput scenario (default 100 000, or 2 000 with --quick).
    #[arg(long)]
    jobs: Option<usize>,
    /// Directory holding conveyor-api and conveyor-worker.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Database created (dropped first if it exists) on DATABASE_URL's server.
    #[arg(long, default_value = "conveyor_bench")]
    database: String,
    /// Keep the database after the run (default: drop it).
    #[arg(long)]
    keep_database: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    output: PathBuf,
    /// Configuration file given to the binaries and the in-process client.
    #[arg(long, default_value = "config/conveyor.toml")]
    config: PathBuf,
    /// Also run BullMQ (Node script in --bullmq-dir) on the same Redis and print ratios.
    #[arg(long)]
    with_bullmq: bool,
    /// Directory of the BullMQ benchmark (package.json, bench.mjs).
    #[arg(long, default_value = "bench/bullmq")]
    bullmq_dir: PathBuf,
    /// Job records scenario 7 reads over (default 1 000 000, or 10 000 with --quick).
    #[arg(long)]
    records: Option<usize>,
    /// Finished records written before scenario 8's second drain (default 1 000 000,
    /// or 10 000 with --quick).
    #[arg(long)]
    history: Option<usize>,
    /// Run only these scenarios (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
}

/// Scenario groups `--only` selects (scenarios that share processes go together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// 1: bulk enqueue, library and API.
    Bulk,
    /// 5: single POST /api/admin/jobs.
    Post,
    /// 2, 3, 4 and 6: drain, end to end, pickup latency, worker resources.
    Worker,
    /// 7: admin list and stats routes over 1 000 000 records.
    BigTable,
    /// 8: the drain beside a history of finished records (--history).
    History,
}

impl Args {
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let plan = Plan::new(args.quick, args.jobs);
    setup::validate_db_name(&args.database)?;
    let bin_dir = absolute(&args.bin_dir)?;
    for bin in ["conveyor-api", "conveyor-worker"] {
        ensure!(
            bin_dir.join(bin).exists(),
            "{} is missing: build the binaries first (scripts/bench.sh does) or pass --bin-dir",
            bin_dir.join(bin).display()
        );
    }
    let config_path = absolute(&args.config)?;
    ensure!(
        config_path.exists(),
        "--config: {} does not exist",
        config_path.display()
    );

    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let (base, query) = setup::split_pg_url(&server)?;
    let admin_url = format!("{base}/postgres{query}");
    let db_url = format!("{base}/{}{query}", args.database);

    eprintln!("[bench] recreating database {}", args.database);
    setup::recreate_database(&admin_url, &args.database).await?;
    let prefix = format!("bench-{}", Uuid::new_v4().simple());

    let result = async {
        let bench =
            Bench::connect(plan, &db_url, &redis_url, &prefix, config_path, bin_dir).await?;
        run(&args, bench).await
    }
    .await;

    // Clean up whatever happened.
    if let Err(e) = setup::delete_redis_prefix(&redis_url, &prefix).await {
        eprintln!("[bench] warning: could not delete redis keys {prefix}:*: {e:#}");
    }
    if !args.keep_database {
        if let Err(e) = setup::drop_database(&admin_url, &args.database).await {
            eprintln!(
                "[bench] warning: could not drop database {}: {e:#}",
                args.database
            );
        }
    }
    result
}

/// Runs the scenarios `args` selects (and BullMQ), then prints and writes the report.
async fn run(args: &Args, mut bench: Bench) -> Result<()> {
    let plan = bench.plan;
    let mut report = Report::new(plan.quick, plan.jobs);
    report.set_environment(bench.environment().await);

    eprintln!(
        "[bench] {} mode: {} jobs per throughput scenario, prefix {}",
        if plan.quick { "quick" } else { "full" },
        plan.jobs,
        bench.prefix
    );

    bench.warm_up().await?;
    if args.runs(Scenario::Bulk) {
        bench.bulk_library(&mut report).await?;
    }
    if args.runs(Scenario::Bulk) || args.runs(Scenario::Post) {
        let api = bench.spawn_api().await?;
        if args.runs(Scenario::Bulk) {
            bench.bulk_api(&mut report, &api).await?;
        }
        if args.runs(Scenario::Post) {
            bench.single_posts(&mut report, &api).await?;
        }
        api.proc.stop().await?;
    }
    if args.runs(Scenario::Worker) {
        bench.reset().await?;
        let drain_worker = bench.drain(&mut report).await?;
        let e2e_worker = bench.end_to_end(&mut report).await?;
        let idle_rss_kb = bench.pickup(&mut report).await?;
        report.worker_resources(
            &drain_worker,
            e2e_worker.peak_rss_kb,
            idle_rss_kb,
            plan.jobs,
        );
    }
    if args.runs(Scenario::BigTable) {
        bench.admin_reads(&mut report, args.records).await?;
    }
    if args.runs(Scenario::History) {
        let history = args
            .history
            .unwrap_or(if plan.quick { 10_000 } else { 1_000_000 });
        bench.drain_with_history(&mut report, history).await?;
    }

    if args.with_bullmq {
        // BullMQ must not pay for the flush of what Conveyor's scenarios wrote.
        bench.settle().await;
        let dir = absolute(&args.bullmq_dir)?;
        match bullmq::run(&dir, &bench.redis_url, &plan).await {
            Ok(figures) => report.set_bullmq(figures),
            Err(e) => {
                eprintln!("[bench] BullMQ run failed: {e:#}");
                report.set_bullmq(json!({ "error": format!("{e:#}") }));
            }
        }
    }

    let table = report.markdown();
    println!("{table}");
    let output = &args.output;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(output, serde_json::to_string_pretty(&report.json())?)
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!("[bench] results written to {}", output.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
