//! Job commands: enqueue, get, list, retry, cancel.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use crate::client::{CancelOutcome, Client, Job, ListFilter, NewJob};
use crate::output::{self, object_lines, Output, Table};
use crate::Error;

#[derive(Args)]
pub struct EnqueueArgs {
    /// Queue name (e.g. diagnostics).
    pub queue: String,
    /// Job type (e.g. NOOP).
    pub job_type: String,
    /// Payload as JSON text (default {}).
    #[arg(long, conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the JSON payload from a file (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    pub payload_file: Option<PathBuf>,
    /// Priority: a number (-1000..1000) or LOW, NORMAL, HIGH, CRITICAL.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub priority: Option<String>,
    /// Attempts before the job fails for good.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Run no sooner than this many milliseconds from now.
    #[arg(long, value_name = "N")]
    pub delay_ms: Option<u64>,
    /// Enqueue at most once per key and queue.
    #[arg(long, value_name = "K")]
    pub idempotency_key: Option<String>,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only this queue.
    #[arg(long, value_name = "Q")]
    pub queue: Option<String>,
    /// Only this status (PENDING, DELAYED, RUNNING, RETRYING, COMPLETED, FAILED, CANCELLED).
    #[arg(long, value_name = "S")]
    pub status: Option<String>,
    /// Only this job type.
    #[arg(long, value_name = "T")]
    pub job_type: Option<String>,
    /// Page number, from 1.
    #[arg(long, value_name = "N")]
    pub page: Option<u64>,
    /// Jobs per page (at most 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

/// The payload from `--payload`, `--payload-file` or `{}`.
fn payload(args: &EnqueueArgs) -> Result<Value, Error> {
    let (text, source) = match (&args.payload, &args.payload_file) {
        (Some(text), _) => (text.clone(), "--payload".to_string()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Error::Usage(format!("cannot read the payload from stdin: {e}")))?;
            (text, "standard input".to_string())
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Usage(format!("cannot read payload file {}: {e}", path.display()))
            })?;
            (text, path.display().to_string())
        }
        (None, None) => return Ok(json!({})),
    };
    serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("the payload from {source} is not valid JSON: {e}")))
}

/// A priority given as a number or a name.
fn priority(raw: &str) -> Value {
    match raw.trim().parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(raw.trim().to_ascii_uppercase()),
    }
}

pub async fn enqueue(client: &Client, out: Output, args: EnqueueArgs) -> Result<(), Error> {
    let job = NewJob {
        payload: payload(&args)?,
        queue_name: args.queue,
        job_type: args.job_type,
        priority: args.priority.as_deref().map(priority),
        max_attempts: args.max_attempts,
        delay_ms: args.delay_ms,
        idempotency_key: args.idempotency_key,
    };
    let reply = client.create_job(&job).await?;
    if reply.status == 200 && !out.json {
        eprintln!(
            "note: job {} already exists with this idempotency key; nothing enqueued",
            reply.value.id
        );
    }
    out.emit(&reply.raw, || object_lines(&reply.raw, &[]));
    Ok(())
}

pub async fn get(client: &Client, out: Output, id: &str) -> Result<(), Error> {
    let reply = client.get_job(id).await?;
    out.emit(&reply.raw, || {
        let mut text = object_lines(&reply.raw, &["executions"]);
        let executions = &reply.value.executions;
        if executions.is_empty() {
            text.push_str("executions: none\n");
        } else {
            let mut table = Table::new(&[
                "ATTEMPT", "WORKER", "STATUS", "STARTED", "FINISHED", "ERROR",
            ]);
            for e in executions {
                table.row(vec![
                    e.attempt.to_string(),
                    e.worker_id.clone(),
                    e.status.clone(),
                    output::time(&e.started_at),
                    e.finished_at.as_ref().map_or("-".into(), output::time),
                    e.error.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            text.push_str("\nexecutions:\n");
            text.push_str(&table.render());
        }
        text
    });
    Ok(())
}

/// The job table of a person's list.
pub fn job_table(jobs: &[Job]) -> Table {
    let mut table = Table::new(&["ID", "QUEUE", "TYPE", "STATUS", "ATTEMPTS", "CREATED AT"]);
    for job in jobs {
        table.row(vec![
            job.id.to_string(),
            job.queue_name.clone(),
            job.job_type.clone(),
            job.status.clone(),
            format!("{}/{}", job.attempts, job.max_attempts),
            output::time(&job.created_at),
        ]);
    }
    table
}

pub async fn list(client: &Client, out: Output, args: ListArgs) -> Result<(), Error> {
    let filter = ListFilter {
        queue: args.queue,
        status: args.status,
        job_type: args.job_type,
        page: args.page,
        limit: args.limit,
    };
    let reply = client.list_jobs(&filter).await?;
    out.emit(&reply.raw, || {
        let page = &reply.value;
        if page.items.is_empty() {
            return format!("no jobs (page {}, {} in all)\n", page.page, page.total);
        }
        let pages = (page.total + page.limit - 1) / page.limit.max(1);
        format!(
            "{}page {} of {}, {} jobs in all\n",
            job_table(&page.items).render(),
            page.page,
            pages.max(1),
            page.total
        )
    });
    Ok(())
}

pub async fn retry(client: &Client, out: Output, id: &str) -> Result<(), Error> {
    let reply = client.retry_job(id).await?;
    out.emit(&reply.raw, || object_lines(&reply.raw, &[]));
    Ok(())
}

pub async fn cancel(client: &Client, out: Output, id: &str) -> Result<(), Error> {
    match client.cancel_job(id).await? {
        CancelOutcome::Cancelled(reply) => out.emit(&reply.raw, || {
            format!(
                "cancelled job {}\n{}",
                reply.value.id,
                object_lines(&reply.raw, &[])
            )
        }),
        CancelOutcome::Requested(reply) => out.emit(&reply.raw, || {
            format!(
                "cancellation requested for running job {}\n{}",
                reply.value.id,
                object_lines(&reply.raw, &[])
            )
        }),
        CancelOutcome::Deleted => {
            let raw = json!({ "id": id, "deleted": true });
            out.emit(&raw, || format!("deleted job {id} (it had finished)\n"));
        }
    }
    Ok(())
}
