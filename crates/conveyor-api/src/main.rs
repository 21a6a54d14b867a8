//! `conveyor-api`: migrates the database, then serves the admin API until SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use conveyor_api::{router, AppState, Auth};
use processors::jobs::{self, DomainSettings};
use queue_core::{bootstrap, service, Config, Conveyor};

/// How often the API checks that it answers (feeding systemd's watchdog).
const SELF_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(version, about = "Conveyor's admin HTTP API")]
struct Args {
    /// Configuration file (default: $CONVEYOR_CONFIG or config/conveyor.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve without any token check. Only for local experiments.
    #[arg(long)]
    insecure_no_auth: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Arc::new(Config::load(args.config.as_deref())?);
    // The domain sections are read by the workers; checking them here too stops a
    // bad deployment before it takes jobs.
    DomainSettings::from_config(&config)?;
    bootstrap::init_tracing(config.log.format);
    let auth = if args.insecure_no_auth {
        tracing::warn!("serving WITHOUT authentication (--insecure-no-auth)");
        Auth::Disabled
    } else if config.api.admin_tokens.is_empty() && config.api.viewer_tokens.is_empty() {
        anyhow::bail!("configuration key `api.admin_tokens`: no token configured (set CONVEYOR_ADMIN_TOKENS, or start with --insecure-no-auth)");
    } else {
        Auth::Tokens {
            admin: config.api.admin_tokens.clone(),
            viewer: config.api.viewer_tokens.clone(),
        }
    };

    let store = bootstrap::connect_store(&config, false).await?;
    store.migrate().await.context("applying migrations")?;
    let broker = bootstrap::connect_broker(&config).await?;
    let conveyor = Conveyor::new(store, broker, config.clone(), Arc::new(jobs::catalog()));

    let listener = tokio::net::TcpListener::bind(&config.api.addr)
        .await
        .with_context(|| {
            format!(
                "configuration key `api.addr`: cannot listen on {}",
                config.api.addr
            )
        })?;
    tracing::info!(addr = %config.api.addr, "conveyor-api listening");
    let shutdown = bootstrap::shutdown_on_signals();
    // Folds the trigger-written count deltas so the stats routes read few rows.
    tokio::spawn(
        conveyor
            .store()
            .clone()
            .run_counter_compaction(shutdown.drain.clone()),
    );
    // Removes the rows of workers that died without saying goodbye (kill -9).
    tokio::spawn(
        conveyor
            .store()
            .clone()
            .run_worker_pruning(config.worker.lease(), shutdown.drain.clone()),
    );
    // systemd: ready once listening; the watchdog is fed while the server answers
    // its own /health.
    let liveness = service::Liveness::new();
    tokio::spawn(service::run_http_self_check(
        listener.local_addr()?,
        liveness.probe("http server"),
        SELF_CHECK_EVERY,
        shutdown.drain.clone(),
    ));
    tokio::spawn(liveness.run_watchdog(shutdown.drain.clone()));
    service::ready(&format!("serving on {}", config.api.addr));
    let stopping = shutdown.drain.clone();
    axum::serve(listener, router(AppState::new(conveyor, auth)))
        .with_graceful_shutdown(async move {
            stopping.cancelled().await;
            service::stopping("finishing open requests");
        })
        .await?;
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
