//! What the admin API reads from Redis: dead-letter streams and the heartbeat keys
//! of live workers.

use chrono::{DateTime, TimeZone, Utc};
use redis::streams::{StreamId, StreamRangeReply};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{keys, Broker};
use crate::error::BrokerError;

/// Keys looked at per SCAN call.
const SCAN_COUNT: usize = 500;
/// Stream entries deleted per XDEL call.
const XDEL_CHUNK: usize = 1_000;

/// One entry of a queue's dead-letter stream (written when a job ends FAILED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub job_id: Uuid,
    pub job_type: String,
    pub error: String,
    pub attempts: i32,
    pub failed_at: DateTime<Utc>,
}

/// A dead letter with its stream entry id (for paging and deleting).
#[derive(Debug, Clone)]
pub struct DeadLetterEntry {
    pub entry_id: String,
    pub letter: DeadLetter,
}

/// A live worker, as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<String>,
    pub concurrency: u32,
    pub running: u32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

impl Broker {
    /// Up to `count` dead letters of `queue`, oldest first, starting after the entry
    /// `after` (None: from the start). Entries this code did not write (no readable
    /// job id) are skipped but still advance the page.
    pub async fn dead_letters(
        &self,
        queue: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<(Vec<DeadLetterEntry>, Option<String>), BrokerError> {
        let start = after.map_or_else(|| "-".to_string(), |id| format!("({id}"));
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys(queue).dlq)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let last = reply.ids.last().map(|e| e.id.clone());
        let entries = reply
            .ids
            .iter()
            .filter_map(|e| {
                parse_dead_letter(e).map(|letter| DeadLetterEntry {
                    entry_id: e.id.clone(),
                    letter,
                })
            })
            .collect();
        Ok((entries, last))
    }

    /// Deletes dead-letter entries of `queue` by entry id.
    pub async fn delete_dead_letters(
        &self,
        queue: &str,
        entry_ids: &[String],
    ) -> Result<(), BrokerError> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let key = self.keys(queue).dlq;
        let mut pipe = redis::pipe();
        for chunk in entry_ids.chunks(XDEL_CHUNK) {
            pipe.cmd("XDEL").arg(&key).arg(chunk).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Jobs of `queue` ready to be claimed (its backlog).
    pub async fn ready_len(&self, queue: &str) -> Result<u64, BrokerError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("ZCARD")
            .arg(self.keys(queue).ready)
            .query_async(&mut conn)
            .await?)
    }

    /// Every live worker of this prefix (SCAN over the heartbeat keys, never KEYS),
    /// sorted by id. A key that expires mid-scan or does not hold a worker's JSON is
    /// skipped.
    pub async fn live_workers(&self) -> Result<Vec<WorkerInfo>, BrokerError> {
        let pattern = keys::worker_pattern(&glob_escape(&self.prefix));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut workers = Vec::new();
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await?;
            if !found.is_empty() {
                let values: Vec<Option<String>> = redis::cmd("MGET")
                    .arg(&found)
                    .query_async(&mut conn)
                    .await?;
                for (key, value) in found.iter().zip(values) {
                    match value.map(|v| serde_json::from_str::<WorkerInfo>(&v)) {
                        Some(Ok(info)) => workers.push(info),
                        Some(Err(e)) => {
                            tracing::debug!(key, error = %e, "skipping unreadable worker key")
                        }
                        None => {}
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        workers.dedup_by(|a, b| a.id == b.id);
        Ok(workers)
    }
}

fn parse_dead_letter(entry: &StreamId) -> Option<DeadLetter> {
    let job_id = entry
        .get::<String>("jobId")
        .and_then(|s| Uuid::parse_str(&s).ok())?;
    // The entry id starts with its insertion time in ms: the fallback failure time.
    let inserted = entry
        .id
        .split('-')
        .next()
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    let failed_at = entry
        .get::<String>("failedAt")
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(inserted)?;
    Some(DeadLetter {
        job_id,
        job_type: entry.get("jobType").unwrap_or_default(),
        error: entry.get("error").unwrap_or_default(),
        attempts: entry.get("attempts").unwrap_or_default(),
        failed_at,
    })
}

/// Escapes the glob characters of SCAN's MATCH so a prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn glob_characters_of_a_prefix_are_escaped() {
        assert_eq!(glob_escape("conveyor"), "conveyor");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
