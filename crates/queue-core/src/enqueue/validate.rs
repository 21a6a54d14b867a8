//! Checking a job before anything is recorded: its queue and type against the
//! configuration and the catalog, its payload against the type's shape, and every
//! option's bounds; defaults resolved. Field names in errors are the API's.

use serde_json::Value;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::EnqueueError;
use crate::job::NewJob;
use crate::store::InsertedJob;

/// Most jobs one bulk enqueue takes.
pub const MAX_BULK: usize = 10_000;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Channel that tells workers a transaction committed new jobs.
pub const DISPATCH_CHANNEL: &str = "conveyor_dispatch";
/// PostgreSQL's text and jsonb cannot hold U+0000.
const NUL_REFUSED: &str = "must not contain the NUL character (\\u0000)";

/// The dotted path (under `root`) of the first string, key or value, in `value`
/// that holds U+0000. Allocates only when one is found (enqueue's hot path).
fn nul_in(value: &Value, root: &str) -> Option<String> {
    fn segments(value: &Value) -> Option<Vec<String>> {
        match value {
            Value::String(s) => s.contains('\0').then(Vec::new),
            Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
                let mut path = segments(v)?;
                path.push(format!("[{i}]"));
                Some(path)
            }),
            Value::Object(fields) => fields.iter().find_map(|(k, v)| {
                let mut path = if k.contains('\0') {
                    Vec::new()
                } else {
                    segments(v)?
                };
                path.push(format!(".{k}"));
                Some(path)
            }),
            _ => None,
        }
    }
    let mut path = segments(value)?;
    path.push(root.to_string());
    path.reverse();
    Some(path.concat())
}

/// Checks `job` against the configuration and the catalog, and resolves its
/// defaults. Field names in errors are the API's (camelCase).
pub fn prepare(
    config: &Config,
    catalog: &Catalog,
    job: NewJob,
) -> Result<InsertedJob, EnqueueError> {
    let Some(queue) = config.queue(&job.queue) else {
        return Err(EnqueueError::UnknownQueue {
            queue: job.queue,
            valid: config.queues.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    };
    if catalog.queue_of(&job.job_type) != Some(job.queue.as_str()) {
        let valid = catalog.types_of(&job.queue);
        return Err(EnqueueError::UnknownJobType {
            job_type: job.job_type,
            valid: if valid.is_empty() {
                "(none yet)".into()
            } else {
                valid.join(", ")
            },
            queue: job.queue,
        });
    }
    if let Some(field) = nul_in(&job.payload, "payload") {
        return Err(EnqueueError::invalid(field, NUL_REFUSED));
    }
    if let Some(Err(e)) = catalog.validate(&job.job_type, &job.payload) {
        return Err(EnqueueError::invalid(e.field, e.message));
    }
    let max_attempts = job.max_attempts.unwrap_or(queue.attempts);
    if !(1..=1_000).contains(&max_attempts) {
        return Err(EnqueueError::invalid(
            "maxAttempts",
            "must be between 1 and 1000",
        ));
    }
    let timeout_ms = match job.timeout_ms {
        Some(ms) if ms == 0 || ms > i32::MAX as u64 => {
            return Err(EnqueueError::invalid(
                "timeoutMs",
                format!("must be between 1 and {}", i32::MAX),
            ))
        }
        other => other.map(|ms| ms as i32),
    };
    if let Some(key) = &job.idempotency_key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(EnqueueError::invalid(
                "idempotencyKey",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} bytes long"),
            ));
        }
        if key.contains('\0') {
            return Err(EnqueueError::invalid("idempotencyKey", NUL_REFUSED));
        }
    }
    if let Some(b) = &job.backoff {
        b.validate()
            .map_err(|m| EnqueueError::invalid("backoff", m))?;
    }
    Ok(InsertedJob {
        id: Uuid::now_v7(),
        queue: job.queue,
        job_type: job.job_type,
        payload: job.payload,
        max_attempts: max_attempts as i32,
        priority: job.priority.get(),
        parent_id: job.parent_id,
        idempotency_key: job.idempotency_key,
        run_at: job.run_at,
        timeout_ms,
        backoff: job
            .backoff
            .map(|b| serde_json::to_value(b).unwrap_or(Value::Null)),
    })
}
