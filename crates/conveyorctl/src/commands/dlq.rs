//! Dead-letter commands: `dlq list`, `dlq replay`.

use clap::Subcommand;

use crate::client::Client;
use crate::output::{self, Output, Table};
use crate::Error;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead letters of a queue, oldest first.
    List {
        /// Queue name.
        queue: String,
        /// At most this many entries (API default 100, at most 1000).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
    /// Retry dead-lettered jobs (all of the queue's unless --job-id is given).
    Replay {
        /// Queue name.
        queue: String,
        /// Replay only this job (repeatable).
        #[arg(long = "job-id", value_name = "ID")]
        job_ids: Vec<String>,
    },
}

pub async fn run(client: &Client, out: Output, cmd: DlqCommand) -> Result<(), Error> {
    match cmd {
        DlqCommand::List { queue, limit } => {
            let reply = client.dead_letters(&queue, limit).await?;
            out.emit(&reply.raw, || {
                if reply.value.is_empty() {
                    return format!("no dead letters in queue {queue}\n");
                }
                let mut table = Table::new(&["JOB ID", "TYPE", "ATTEMPTS", "FAILED AT", "ERROR"]);
                for d in &reply.value {
                    table.row(vec![
                        d.job_id.to_string(),
                        d.job_type.clone(),
                        d.attempts.to_string(),
                        output::time(&d.failed_at),
                        d.error.replace('\n', " "),
                    ]);
                }
                table.render()
            });
        }
        DlqCommand::Replay { queue, job_ids } => {
            let reply = client.replay(&queue, &job_ids).await?;
            out.emit(&reply.raw, || {
                format!("replayed: {}\n", reply.value.replayed)
            });
        }
    }
    Ok(())
}
