//! `conveyor-worker`: runs the queues named by `--queues` until SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use processors::jobs::{self, Deps, DomainSettings};
use queue_core::{
    bootstrap, diagnostics, metrics::Metrics, worker::Worker, Config, Conveyor, HandlerRegistry,
};

#[derive(Parser, Debug)]
#[command(version, about = "Runs Conveyor jobs of the given queues")]
struct Args {
    /// Comma-separated queues to work, e.g. `book_data,diagnostics`.
    #[arg(long, value_delimiter = ',', required = true)]
    queues: Vec<String>,
    /// Jobs run at once per queue (default: each queue's configured concurrency).
    #[arg(long)]
    concurrency: Option<u32>,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9101.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Configuration file (default: $CONVEYOR_CONFIG or config/conveyor.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Arc::new(Config::load(args.config.as_deref())?);
    let settings = DomainSettings::from_config(&config)?;
    bootstrap::init_tracing(config.log.format);

    let shutdown = bootstrap::shutdown_on_signals();
    let store = bootstrap::connect_store(&config, true).await?;
    let broker = bootstrap::connect_broker(&config).await?;
    let metrics = Metrics::new();
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-addr {addr}"))?;
        tokio::spawn(bootstrap::serve_metrics(
            listener,
            metrics.clone(),
            shutdown.drain.clone(),
        ));
    }

    let mut registry = HandlerRegistry::new();
    diagnostics::register_handlers(&mut registry);
    if std::env::var(diagnostics::CRASH_ENV).as_deref() == Ok("1") {
        diagnostics::register_crash(&mut registry);
    }
    // Handlers enqueue follow-ups through a client that knows every job type.
    let conveyor = Conveyor::new(
        store.clone(),
        broker.clone(),
        config.clone(),
        Arc::new(jobs::catalog()),
    );
    let deps = Deps::new(conveyor, settings, metrics.registry()).context("domain handlers")?;
    jobs::register_handlers(&mut registry, deps);
    let worker = Worker::new(
        config,
        store,
        broker,
        registry,
        args.queues,
        args.concurrency,
        metrics,
    )?;
    worker.run(shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
