//! Queue commands: queues, stats, pause, resume, clean.

use clap::Args;

use crate::client::{CleanRequest, Client};
use crate::output::{object_lines, Output, Table};
use crate::Error;

#[derive(Args)]
pub struct CleanArgs {
    /// Queue name.
    pub queue: String,
    /// Which finished records: COMPLETED, FAILED or CANCELLED.
    #[arg(long, value_name = "S")]
    pub status: String,
    /// Only records that finished more than this many milliseconds ago.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub grace_ms: u64,
    /// Delete at most this many records (at most 10000 per call).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: u64,
}

pub async fn all(client: &Client, out: Output) -> Result<(), Error> {
    let reply = client.queues().await?;
    out.emit(&reply.raw, || {
        let mut table = Table::new(&[
            "QUEUE",
            "PAUSED",
            "WAITING",
            "ACTIVE",
            "DELAYED",
            "RETRYING",
            "COMPLETED",
            "FAILED",
            "CANCELLED",
        ]);
        for q in &reply.value {
            table.row(vec![
                q.queue.clone(),
                q.paused.to_string(),
                q.waiting.to_string(),
                q.active.to_string(),
                q.delayed.to_string(),
                q.retrying.to_string(),
                q.completed.to_string(),
                q.failed.to_string(),
                q.cancelled.to_string(),
            ]);
        }
        if table.is_empty() {
            "no queues\n".into()
        } else {
            table.render()
        }
    });
    Ok(())
}

pub async fn stats(client: &Client, out: Output, queue: &str) -> Result<(), Error> {
    let reply = client.queue_stats(queue).await?;
    out.emit(&reply.raw, || object_lines(&reply.raw, &[]));
    Ok(())
}

pub async fn set_paused(
    client: &Client,
    out: Output,
    queue: &str,
    paused: bool,
) -> Result<(), Error> {
    let reply = client.set_paused(queue, paused).await?;
    out.emit(&reply.raw, || object_lines(&reply.raw, &[]));
    Ok(())
}

pub async fn clean(client: &Client, out: Output, args: CleanArgs) -> Result<(), Error> {
    let req = CleanRequest {
        status: args.status,
        grace_ms: args.grace_ms,
        limit: args.limit,
    };
    let reply = client.clean(&args.queue, &req).await?;
    out.emit(&reply.raw, || format!("removed: {}\n", reply.value.removed));
    Ok(())
}
