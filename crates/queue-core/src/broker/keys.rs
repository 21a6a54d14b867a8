//! Redis key names. Every key of a queue carries the queue as its hash tag
//! (`{prefix}:{queue}:…`), so a queue's keys share one Redis Cluster slot and each
//! script touches one slot.

/// The keys of one queue.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// ZSET of ready ids; score = priority band + FIFO sequence.
    pub ready: String,
    /// ZSET of `priority|id`; score = run-at in ms.
    pub delayed: String,
    /// ZSET of claimed ids; score = lease deadline in ms.
    pub inflight: String,
    /// STREAM of dead letters.
    pub dlq: String,
    /// ZSET of the `job id:run` pairs added to `dlq` (each is added once).
    pub dlq_added: String,
    /// Present while the queue is paused.
    pub paused: String,
    /// ZSET of recent job starts (sliding-window rate limit).
    pub rate: String,
    /// ZSET with one member; idle workers block on it (BZPOPMIN).
    pub marker: String,
    /// FIFO sequence counter.
    pub seq: String,
}

impl QueueKeys {
    pub fn new(prefix: &str, queue: &str) -> Self {
        let key = |suffix: &str| format!("{prefix}:{{{queue}}}:{suffix}");
        Self {
            ready: key("ready"),
            delayed: key("delayed"),
            inflight: key("inflight"),
            dlq: key("dlq"),
            dlq_added: key("dlq-added"),
            paused: key("paused"),
            rate: key("rate"),
            marker: key("marker"),
            seq: key("seq"),
        }
    }
}

/// The heartbeat key of a live worker (expires when it stops renewing).
pub fn worker_key(prefix: &str, worker_id: &str) -> String {
    format!("{prefix}:worker:{worker_id}")
}

/// Pattern matching every worker key.
pub fn worker_pattern(prefix: &str) -> String {
    format!("{prefix}:worker:*")
}

/// Pub/sub channel carrying ids of jobs whose cancellation was requested.
pub fn cancel_channel(prefix: &str) -> String {
    format!("{prefix}:cancel")
}

/// Pub/sub channel of a job's progress and status events.
pub fn job_events_channel(prefix: &str, job_id: &uuid::Uuid) -> String {
    format!("{}{job_id}", job_events_channel_prefix(prefix))
}

/// What every job's event channel starts with (the job id follows).
pub fn job_events_channel_prefix(prefix: &str) -> String {
    format!("{prefix}:events:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_share_one_hash_tag() {
        let k = QueueKeys::new("conveyor", "book_data");
        for key in [
            &k.ready,
            &k.delayed,
            &k.inflight,
            &k.dlq,
            &k.dlq_added,
            &k.paused,
            &k.rate,
            &k.marker,
            &k.seq,
        ] {
            assert!(key.starts_with("conveyor:{book_data}:"), "{key}");
        }
    }
}
