//! The hot path in Redis: pushing ids, claiming them, waiting for work, and the
//! acknowledgements the completer sends after PostgreSQL committed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use redis::aio::MultiplexedConnection;
use uuid::Uuid;

use super::{
    evalsha, parse_claim, scripts, Ack, Broker, ClaimReply, Dispatch, JobEvent, DLQ_MAX_LEN,
    PROMOTE_LIMIT, PUSH_CHUNK,
};
use crate::config::RateLimit;
use crate::error::BrokerError;

impl Broker {
    /// Pushes ids into their queues: one pipeline, one script call per 1 000 ids.
    pub async fn push(&self, items: &[Dispatch]) -> Result<(), BrokerError> {
        if items.is_empty() {
            return Ok(());
        }
        if Utc::now().timestamp_millis() < self.open_until_ms.load(Ordering::Relaxed) {
            return Err(BrokerError::Unavailable);
        }
        let mut by_queue: BTreeMap<&str, Vec<&Dispatch>> = BTreeMap::new();
        for item in items {
            by_queue.entry(item.queue.as_str()).or_default().push(item);
        }
        let mut pipe = redis::pipe();
        for (queue, items) in by_queue {
            let k = self.keys(queue);
            for chunk in items.chunks(PUSH_CHUNK) {
                let mut cmd = evalsha(
                    &scripts::ENQUEUE,
                    &[&k.ready, &k.delayed, &k.seq, &k.marker],
                );
                for item in chunk {
                    cmd.arg(item.id.to_string())
                        .arg(item.priority)
                        .arg(item.run_at.map_or(0, |t| t.timestamp_millis()));
                }
                pipe.add_command(cmd).ignore();
            }
        }
        self.run_pipeline(&pipe).await
    }

    /// Leases up to `max` ready ids of `queue` (see `lua/claim.lua`).
    pub async fn claim(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
        rate: RateLimit,
    ) -> Result<ClaimReply, BrokerError> {
        let k = self.keys(queue);
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> = scripts::CLAIM
            .key(&k.ready)
            .key(&k.delayed)
            .key(&k.inflight)
            .key(&k.paused)
            .key(&k.rate)
            .key(&k.marker)
            .key(&k.seq)
            .arg(max)
            .arg(lease.as_millis() as u64)
            .arg(rate.max)
            .arg(rate.duration_ms)
            .arg(PROMOTE_LIMIT)
            .invoke_async(&mut conn)
            .await?;
        parse_claim(reply)
    }

    /// Blocks on `queue`'s wake-up marker for at most `timeout`, on `conn` (a
    /// dedicated connection). Returns true when woken by new work.
    pub async fn wait_for_work(
        &self,
        conn: &mut MultiplexedConnection,
        queue: &str,
        timeout: Duration,
    ) -> Result<bool, BrokerError> {
        let secs = timeout.as_secs_f64().max(0.001);
        let reply: Option<(String, String, f64)> = redis::cmd("BZPOPMIN")
            .arg(self.keys(queue).marker)
            .arg(secs)
            .query_async(conn)
            .await?;
        Ok(reply.is_some())
    }

    /// Tells Redis about attempts PostgreSQL has recorded as finished.
    pub async fn ack(&self, acks: &[(String, Uuid, Ack)]) -> Result<(), BrokerError> {
        self.ack_and_publish(acks, &[]).await
    }

    /// [`Broker::ack`] plus the jobs' status events, in one pipeline: the
    /// completer's one Redis round trip per batch.
    pub async fn ack_and_publish(
        &self,
        acks: &[(String, Uuid, Ack)],
        events: &[(Uuid, JobEvent)],
    ) -> Result<(), BrokerError> {
        if acks.is_empty() && events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.add_job_events(&mut pipe, events)?;
        for (queue, id, ack) in acks {
            let k = self.keys(queue);
            let member = id.to_string();
            pipe.zrem(&k.inflight, &member).ignore();
            match ack {
                Ack::Done => {}
                Ack::Retry { run_at, priority } => {
                    pipe.zadd(
                        &k.delayed,
                        format!("{priority}|{member}"),
                        run_at.timestamp_millis(),
                    )
                    .ignore();
                    pipe.zadd(&k.marker, "0", 0).ignore();
                }
                Ack::DeadLetter {
                    job_type,
                    error,
                    run,
                    attempts,
                    failed_at,
                } => {
                    let mut cmd = evalsha(&scripts::DEAD_LETTER, &[&k.dlq, &k.dlq_added]);
                    cmd.arg(format!("{member}:{run}"))
                        .arg(DLQ_MAX_LEN)
                        .arg("jobId")
                        .arg(&member)
                        .arg("jobType")
                        .arg(job_type)
                        .arg("error")
                        .arg(error)
                        .arg("attempts")
                        .arg(attempts)
                        .arg("failedAt")
                        .arg(failed_at.to_rfc3339_opts(SecondsFormat::Millis, true));
                    pipe.add_command(cmd).ignore();
                }
                Ack::Release { priority, delay_ms } => {
                    let mut cmd = evalsha(
                        &scripts::ENQUEUE,
                        &[&k.ready, &k.delayed, &k.seq, &k.marker],
                    );
                    cmd.arg(&member).arg(priority).arg((*delay_ms).max(0));
                    pipe.add_command(cmd).ignore();
                }
            }
        }
        self.run_pipeline(&pipe).await
    }
}
