//! Scheduled-job commands: `scheduled list|get|create|enable|disable|pause|trigger|delete`.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::{self, Output, Table};
use crate::Error;

#[derive(Subcommand)]
pub enum ScheduledCommand {
    /// Every scheduled job, by name.
    List,
    /// One scheduled job (with its next and last run).
    Get {
        /// Scheduled job id (UUID).
        id: String,
    },
    /// Create a scheduled job.
    Create(Box<CreateArgs>),
    /// Enable (status 1): fires from its next tick on.
    Enable {
        /// Scheduled job id (UUID).
        id: String,
    },
    /// Disable (status 0).
    Disable {
        /// Scheduled job id (UUID).
        id: String,
    },
    /// Pause (status 2).
    Pause {
        /// Scheduled job id (UUID).
        id: String,
    },
    /// Enqueue its job now.
    Trigger {
        /// Scheduled job id (UUID).
        id: String,
    },
    /// Remove it (jobs it enqueued stay).
    Delete {
        /// Scheduled job id (UUID).
        id: String,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Unique name.
    #[arg(long)]
    pub name: String,
    /// Queue of its jobs.
    #[arg(long)]
    pub queue: String,
    /// Job type of its jobs.
    #[arg(long = "type", value_name = "JOB_TYPE")]
    pub job_type: String,
    /// Cron expression: 6 fields with seconds (`0 */30 * * * *`) or classic 5.
    #[arg(long)]
    pub cron: String,
    /// IANA time zone (API default Asia/Shanghai).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Payload as JSON.
    #[arg(long)]
    pub payload: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Max attempts of each job.
    #[arg(long)]
    pub retry_attempts: Option<i64>,
    /// Fixed delay between attempts, in ms.
    #[arg(long)]
    pub retry_delay: Option<i64>,
    /// Timeout of each attempt, in ms.
    #[arg(long)]
    pub timeout: Option<i64>,
    /// A number or LOW, NORMAL, HIGH, CRITICAL.
    #[arg(long)]
    pub priority: Option<String>,
    /// 1 enabled (default), 0 disabled, 2 paused.
    #[arg(long)]
    pub status: Option<i64>,
}

fn create_body(args: CreateArgs) -> Result<Value, Error> {
    let mut body = Map::new();
    body.insert("name".into(), json!(args.name));
    body.insert("queueName".into(), json!(args.queue));
    body.insert("jobType".into(), json!(args.job_type));
    body.insert("cronExpression".into(), json!(args.cron));
    if let Some(p) = args.payload {
        let v: Value = serde_json::from_str(&p)
            .map_err(|e| Error::Usage(format!("--payload is not valid JSON: {e}")))?;
        body.insert("payload".into(), v);
    }
    if let Some(p) = args.priority {
        let v = match p.trim().parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(p.trim().to_ascii_uppercase()),
        };
        body.insert("priority".into(), v);
    }
    for (key, value) in [
        ("timezone", args.timezone.map(Value::from)),
        ("description", args.description.map(Value::from)),
        ("retryAttempts", args.retry_attempts.map(Value::from)),
        ("retryDelay", args.retry_delay.map(Value::from)),
        ("timeout", args.timeout.map(Value::from)),
        ("status", args.status.map(Value::from)),
    ] {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    }
    Ok(Value::Object(body))
}

fn status_name(v: &Value) -> String {
    match v.as_i64() {
        Some(1) => "enabled".into(),
        Some(0) => "disabled".into(),
        Some(2) => "paused".into(),
        _ => output::cell(v),
    }
}

fn detail(s: &Value) -> String {
    output::object_lines(s, &[])
}

pub async fn run(client: &Client, out: Output, cmd: ScheduledCommand) -> Result<(), Error> {
    let set_status = |id: String, status: i64| async move {
        client
            .update_schedule(&id, &json!({ "status": status }))
            .await
    };
    match cmd {
        ScheduledCommand::List => {
            let reply = client.schedules().await?;
            out.emit(&reply.raw, || {
                if reply.value.is_empty() {
                    return "no scheduled jobs\n".to_string();
                }
                let mut table = Table::new(&[
                    "ID", "NAME", "QUEUE", "TYPE", "CRON", "TIMEZONE", "STATUS", "NEXT RUN",
                    "LAST RUN",
                ]);
                for s in &reply.value {
                    table.row(vec![
                        output::cell(&s["id"]),
                        output::cell(&s["name"]),
                        output::cell(&s["queueName"]),
                        output::cell(&s["jobType"]),
                        output::cell(&s["cronExpression"]),
                        output::cell(&s["timezone"]),
                        status_name(&s["status"]),
                        output::cell(&s["nextRunAt"]),
                        output::cell(&s["lastRunAt"]),
                    ]);
                }
                table.render()
            });
        }
        ScheduledCommand::Get { id } => {
            let reply = client.get_schedule(&id).await?;
            out.emit(&reply.raw, || detail(&reply.value));
        }
        ScheduledCommand::Create(args) => {
            let reply = client.create_schedule(&create_body(*args)?).await?;
            out.emit(&reply.raw, || detail(&reply.value));
        }
        ScheduledCommand::Enable { id } => {
            let reply = set_status(id, 1).await?;
            out.emit(&reply.raw, || detail(&reply.value));
        }
        ScheduledCommand::Disable { id } => {
            let reply = set_status(id, 0).await?;
            out.emit(&reply.raw, || detail(&reply.value));
        }
        ScheduledCommand::Pause { id } => {
            let reply = set_status(id, 2).await?;
            out.emit(&reply.raw, || detail(&reply.value));
        }
        ScheduledCommand::Trigger { id } => {
            let reply = client.trigger_schedule(&id).await?;
            out.emit(&reply.raw, || {
                format!(
                    "enqueued job {} ({} on {})\n",
                    reply.value.id, reply.value.job_type, reply.value.queue_name
                )
            });
        }
        ScheduledCommand::Delete { id } => {
            client.delete_schedule(&id).await?;
            let raw = json!({ "id": id, "deleted": true });
            out.emit(&raw, || format!("deleted scheduled job {id}\n"));
        }
    }
    Ok(())
}
