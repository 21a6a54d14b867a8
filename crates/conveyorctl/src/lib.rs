//! `conveyorctl`, the command-line client of Conveyor's admin API (`/api/admin`).
//!
//! [`Cli`] is the whole command line; [`run`] executes it and answers the process
//! exit code. [`client::Client`] is the typed HTTP client, `commands` holds one
//! module per command group and [`output`] prints tables or `--json`.

pub mod client;
pub mod commands;
pub mod output;

use clap::{Parser, Subcommand};
use reqwest::Url;

use client::{Client, ClientError};
use output::Output;

/// Exit codes, as documented in `--help`.
pub mod exit {
    pub const OK: u8 = 0;
    pub const REFUSED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNAVAILABLE: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the API refused the request (4xx other than 404); stderr says
     `error: <code>: <message>` from the API's error body
  2  usage error (bad arguments, a payload that is not JSON, an unreadable file)
  3  the API cannot be reached or answered 5xx (`status`: the API is unhealthy)
  4  not found (404: no such job, author, book or quote, or a route this API
     does not serve)

Environment:
  CONVEYOR_URL    base URL of the API (default http://127.0.0.1:8080)
  CONVEYOR_TOKEN  bearer token (admin, or viewer for read-only commands)

With --json every command prints the API's JSON answer as sent (`cancel` of a
finished job, which the API answers with 204 and no body, prints
{\"id\": ..., \"deleted\": true}; `status` prints {\"health\": ..., \"system\": ...}).";

/// Command-line client of Conveyor's admin API.
#[derive(Parser)]
#[command(name = "conveyorctl", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Base URL of the API.
    #[arg(
        long,
        env = "CONVEYOR_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: Url,

    /// Bearer token (never printed).
    #[arg(long, env = "CONVEYOR_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// Print the API's raw JSON answer instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Enqueue a job.
    Enqueue(commands::jobs::EnqueueArgs),
    /// Show one job with its attempts.
    Get {
        /// Job id (UUID).
        id: String,
    },
    /// List jobs, newest first.
    List(commands::jobs::ListArgs),
    /// Retry a FAILED or CANCELLED job (attempts reset).
    Retry {
        /// Job id (UUID).
        id: String,
    },
    /// Cancel a waiting job, ask a running one to stop, or delete a finished one.
    Cancel {
        /// Job id (UUID).
        id: String,
    },
    /// Stats of every queue.
    Queues,
    /// Stats of one queue.
    Stats {
        /// Queue name.
        queue: String,
    },
    /// Stop taking new jobs from a queue (running ones finish).
    Pause {
        /// Queue name.
        queue: String,
    },
    /// Take new jobs from a paused queue again.
    Resume {
        /// Queue name.
        queue: String,
    },
    /// Delete finished job records of a queue.
    Clean(commands::queues::CleanArgs),
    /// Dead-letter queue: list or replay.
    #[command(subcommand)]
    Dlq(commands::dlq::DlqCommand),
    /// Cron-scheduled jobs: list, create, enable, disable, pause, trigger, delete.
    #[command(subcommand)]
    Scheduled(commands::scheduled::ScheduledCommand),
    /// Live workers.
    Workers,
    /// Authors: list (the default), get, create.
    Authors(commands::domain::AuthorsArgs),
    /// Imported books: list (the default, `--author-id`), get.
    Books(commands::domain::BooksArgs),
    /// Extracted quotes: list (the default, `--book-id`), get.
    Quotes(commands::domain::QuotesArgs),
    /// Health of the API and its services (plus system status when served).
    Status,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Bad input found before any request was sent.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Client(e) => e.exit_code(),
            Error::Usage(_) => exit::USAGE,
        }
    }
}

/// Runs the command line; answers the exit code (errors are printed to stderr).
pub fn run(cli: Cli) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::UNAVAILABLE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Executes one command.
pub async fn execute(cli: Cli) -> Result<(), Error> {
    let client = Client::new(cli.url, cli.token)?;
    let out = Output { json: cli.json };
    match cli.command {
        Command::Enqueue(args) => commands::jobs::enqueue(&client, out, args).await,
        Command::Get { id } => commands::jobs::get(&client, out, &id).await,
        Command::List(args) => commands::jobs::list(&client, out, args).await,
        Command::Retry { id } => commands::jobs::retry(&client, out, &id).await,
        Command::Cancel { id } => commands::jobs::cancel(&client, out, &id).await,
        Command::Queues => commands::queues::all(&client, out).await,
        Command::Stats { queue } => commands::queues::stats(&client, out, &queue).await,
        Command::Pause { queue } => commands::queues::set_paused(&client, out, &queue, true).await,
        Command::Resume { queue } => {
            commands::queues::set_paused(&client, out, &queue, false).await
        }
        Command::Clean(args) => commands::queues::clean(&client, out, args).await,
        Command::Dlq(cmd) => commands::dlq::run(&client, out, cmd).await,
        Command::Scheduled(cmd) => commands::scheduled::run(&client, out, cmd).await,
        Command::Workers => commands::workers::list(&client, out).await,
        Command::Authors(args) => commands::domain::authors(&client, out, args).await,
        Command::Books(args) => commands::domain::books(&client, out, args).await,
        Command::Quotes(args) => commands::domain::quotes(&client, out, args).await,
        Command::Status => commands::status::show(&client, out).await,
    }
}
