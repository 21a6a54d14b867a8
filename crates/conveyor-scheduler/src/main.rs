//! `conveyor-scheduler`: applies pending migrations, then fires cron schedules and
//! runs retention until SIGTERM. Any number may run at once: each tick still fires
//! once (see `queue_core::scheduler`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use processors::jobs::{self, DomainSettings};
use queue_core::{bootstrap, scheduler::Scheduler, Config, Conveyor};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Fires Conveyor's cron-scheduled jobs and runs retention"
)]
struct Args {
    /// Configuration file (default: $CONVEYOR_CONFIG or config/conveyor.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Arc::new(Config::load(args.config.as_deref())?);
    DomainSettings::from_config(&config)?;
    bootstrap::init_tracing(config.log.format);

    let shutdown = bootstrap::shutdown_on_signals();
    let store = bootstrap::connect_store(&config, false).await?;
    store.migrate().await?;
    let broker = bootstrap::connect_broker(&config).await?;
    let conveyor = Conveyor::new(store, broker, config, Arc::new(jobs::catalog()));
    Scheduler::new(conveyor).run(shutdown.drain.clone()).await;
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
