//! Everything Conveyor does in Redis. Redis is the fast path only: losing any of it
//! loses no job, because PostgreSQL holds every record and the reconciler pushes
//! waiting jobs back.

mod admin;
mod events;
pub mod keys;
mod scripts;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Pipeline, Script};
use uuid::Uuid;

pub use admin::{DeadLetter, DeadLetterEntry, WorkerInfo};
pub use events::{JobEvent, JobEventHub, JobEventSubscription, JobNotice};
pub use keys::QueueKeys;

use crate::config::RateLimit;
use crate::error::BrokerError;

/// Ids pushed per script call (keeps each script short).
const PUSH_CHUNK: usize = 1_000;
/// Delayed ids promoted per claim call.
const PROMOTE_LIMIT: u32 = 200;
/// Dead-letter streams are trimmed to about this many entries (PG keeps all).
const DLQ_MAX_LEN: usize = 100_000;

/// One id to push into a queue.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub queue: String,
    pub id: Uuid,
    pub priority: i32,
    /// None: ready now.
    pub run_at: Option<DateTime<Utc>>,
}

/// What a claim call found.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimReply {
    Paused,
    /// Try again after this long.
    RateLimited(Duration),
    /// Ids leased to the caller (maybe none) and the wait until the next delayed id.
    Claimed {
        ids: Vec<Uuid>,
        next_delayed: Option<Duration>,
    },
}

/// How Redis should learn of a finished attempt (sent after PostgreSQL committed it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Done for good: drop the lease.
    Done,
    /// Retry at `run_at`.
    Retry {
        run_at: DateTime<Utc>,
        priority: i32,
    },
    /// FAILED: drop the lease and add a dead letter (once per job and run).
    DeadLetter {
        job_type: String,
        error: String,
        run: i32,
        attempts: i32,
        failed_at: DateTime<Utc>,
    },
    /// Given back without counting an attempt: ready again after `delay_ms`.
    Release { priority: i32, delay_ms: i64 },
}

/// A connection to Redis with Conveyor's key layout.
#[derive(Clone)]
pub struct Broker {
    client: Client,
    conn: ConnectionManager,
    prefix: String,
    /// Until when (ms since the epoch) pushes fail fast after a connection failure,
    /// so an enqueue does not wait on a Redis that is down: the record is already
    /// safe in PostgreSQL and the reconciler dispatches it later.
    open_until_ms: Arc<AtomicI64>,
}

/// How long pushes fail fast after Redis was found unreachable.
const BREAKER_OPEN: Duration = Duration::from_secs(1);

impl Broker {
    /// Connects (the connection reconnects by itself after Redis comes back).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BrokerError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(5))
            .set_number_of_retries(1)
            .set_max_delay(100);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_string(),
            open_until_ms: Arc::new(AtomicI64::new(0)),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn keys(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    /// A shared, multiplexed connection for ordinary commands.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A connection of its own for blocking reads, which would stall a shared one.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection, BrokerError> {
        let config = AsyncConnectionConfig::new().set_connection_timeout(Duration::from_secs(2));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

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
        if acks.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
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

    /// Drops leases of ids the PostgreSQL claim refused.
    pub async fn drop_leases(&self, queue: &str, ids: &[Uuid]) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("ZREM")
            .arg(self.keys(queue).inflight)
            .arg(members)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Puts back ids the PostgreSQL claim refused although their jobs still wait
    /// (Redis promoted them before PostgreSQL's clock says they are due): each is
    /// dropped from the in-flight set and pushed again to run `wait` later, counted
    /// by Redis's clock, so a skew between the two clocks costs one refusal per
    /// job, not a loop.
    pub async fn requeue_refused(
        &self,
        queue: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> Result<(), BrokerError> {
        if waiting.is_empty() {
            return Ok(());
        }
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        let members: Vec<String> = waiting.iter().map(|(id, _, _)| id.to_string()).collect();
        pipe.cmd("ZREM").arg(&k.inflight).arg(&members).ignore();
        pipe.add_command(self.audit_cmd(&k, "put", waiting))
            .ignore();
        self.run_pipeline(&pipe).await
    }

    /// Those of `waiting` (waiting jobs by PostgreSQL) that are nowhere in the
    /// queue's keys: not ready, delayed or in flight.
    pub async fn missing(
        &self,
        queue: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> Result<Vec<Uuid>, BrokerError> {
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        for chunk in waiting.chunks(PUSH_CHUNK) {
            pipe.add_command(self.audit_cmd(&k, "find", chunk));
        }
        let found: Vec<Vec<String>> = self.query_pipeline(&pipe).await?;
        Ok(found
            .iter()
            .flatten()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    /// Puts back those of `waiting` that are nowhere in the queue's keys (each
    /// checked again, atomically, as it is put back). Returns how many were.
    pub async fn put_back(
        &self,
        queue: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> Result<u64, BrokerError> {
        if waiting.is_empty() {
            return Ok(0);
        }
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        for chunk in waiting.chunks(PUSH_CHUNK) {
            pipe.add_command(self.audit_cmd(&k, "put", chunk));
        }
        let put_back: Vec<u64> = self.query_pipeline(&pipe).await?;
        Ok(put_back.iter().sum())
    }

    fn audit_cmd(
        &self,
        k: &QueueKeys,
        mode: &str,
        waiting: &[(Uuid, i32, Duration)],
    ) -> redis::Cmd {
        let mut cmd = evalsha(
            &scripts::AUDIT,
            &[&k.ready, &k.delayed, &k.inflight, &k.seq, &k.marker],
        );
        cmd.arg(mode);
        for (id, priority, wait) in waiting {
            cmd.arg(id.to_string())
                .arg(priority)
                .arg(wait.as_millis() as u64);
        }
        cmd
    }

    /// Extends the leases of ids still held by a live worker.
    pub async fn renew_leases(
        &self,
        leases: &BTreeMap<String, Vec<Uuid>>,
        lease: Duration,
    ) -> Result<(), BrokerError> {
        let deadline = Utc::now().timestamp_millis() + lease.as_millis() as i64;
        let mut pipe = redis::pipe();
        for (queue, ids) in leases.iter().filter(|(_, ids)| !ids.is_empty()) {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(self.keys(queue).inflight).arg("XX");
            for id in ids {
                cmd.arg(deadline).arg(id.to_string());
            }
            pipe.add_command(cmd).ignore();
        }
        self.run_pipeline(&pipe).await
    }

    /// Sets or clears the pause flag; resuming wakes a blocked worker.
    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), BrokerError> {
        let k = self.keys(queue);
        let mut pipe = redis::pipe();
        if paused {
            pipe.set(&k.paused, 1).ignore();
        } else {
            pipe.del(&k.paused)
                .ignore()
                .zadd(&k.marker, "0", 0)
                .ignore();
        }
        self.run_pipeline(&pipe).await
    }

    /// Records a live worker for `ttl`.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        info: &str,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(keys::worker_key(&self.prefix, worker_id))
            .arg(info)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn remove_worker(&self, worker_id: &str) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(keys::worker_key(&self.prefix, worker_id))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// PING, for health checks.
    pub async fn ping(&self) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Runs a pipeline that may call scripts by SHA, loading them if Redis lost them
    /// (restart, FLUSHALL, SCRIPT FLUSH). The pipeline is then sent again whole, so
    /// every command in one must be safe to run twice.
    async fn run_pipeline(&self, pipe: &Pipeline) -> Result<(), BrokerError> {
        self.query_pipeline(pipe).await
    }

    async fn query_pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, BrokerError> {
        let result = self.query_pipeline_once(pipe).await;
        if let Err(BrokerError::Redis(e)) = &result {
            if e.is_io_error()
                || e.is_connection_refusal()
                || e.is_connection_dropped()
                || e.is_timeout()
            {
                let until = Utc::now().timestamp_millis() + BREAKER_OPEN.as_millis() as i64;
                self.open_until_ms.store(until, Ordering::Relaxed);
            }
        }
        result
    }

    async fn query_pipeline_once<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, BrokerError> {
        let mut conn = self.conn.clone();
        match pipe.query_async::<T>(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                for script in scripts::all() {
                    script.prepare_invoke().load_async(&mut conn).await?;
                }
                Ok(pipe.query_async::<T>(&mut conn).await?)
            }
            other => Ok(other?),
        }
    }
}

fn evalsha(script: &Script, keys: &[&String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

fn parse_claim(reply: Vec<redis::Value>) -> Result<ClaimReply, BrokerError> {
    use redis::FromRedisValue;
    let int = |v: &redis::Value| {
        i64::from_redis_value(v).map_err(|e| BrokerError::Protocol(e.to_string()))
    };
    let (Some(status), Some(wait)) = (reply.first(), reply.get(1)) else {
        return Err(BrokerError::Protocol("claim reply shorter than 2".into()));
    };
    let (status, wait) = (int(status)?, int(wait)?);
    match status {
        -1 => Ok(ClaimReply::Paused),
        -2 => Ok(ClaimReply::RateLimited(Duration::from_millis(
            wait.max(1) as u64
        ))),
        _ => {
            let ids = reply[2..]
                .iter()
                .map(|v| {
                    let s = String::from_redis_value(v)
                        .map_err(|e| BrokerError::Protocol(e.to_string()))?;
                    Uuid::parse_str(&s).map_err(|e| BrokerError::Protocol(format!("id {s}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let next_delayed = (wait >= 0).then(|| Duration::from_millis(wait as u64));
            Ok(ClaimReply::Claimed { ids, next_delayed })
        }
    }
}

impl Broker {
    /// Claims the queue's generation marker. Returns true when it was missing, i.e.
    /// Redis lost this queue's keys (flush, restart) or never had them.
    pub async fn claim_generation(
        &self,
        queue: &str,
        generation: &str,
    ) -> Result<bool, BrokerError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}:{{{queue}}}:generation", self.prefix))
            .arg(generation)
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Gives the generation marker back, so the next round tries the queue's
    /// re-dispatch again (it could not be recorded in PostgreSQL).
    pub async fn release_generation(&self, queue: &str) -> Result<(), BrokerError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{}:{{{queue}}}:generation", self.prefix))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Up to `limit` in-flight ids whose lease ran out.
    pub async fn expired_leases(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<Uuid>, BrokerError> {
        let k = self.keys(queue);
        let now = Utc::now().timestamp_millis();
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&k.inflight)
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| Uuid::parse_str(m).ok())
            .collect())
    }

    /// Makes Redis's pause flags match PostgreSQL's for `queues`.
    pub async fn sync_paused(
        &self,
        queues: &[String],
        paused: &[String],
    ) -> Result<(), BrokerError> {
        let mut pipe = redis::pipe();
        for q in queues {
            let k = self.keys(q);
            if paused.contains(q) {
                pipe.set(&k.paused, 1).ignore();
            } else {
                pipe.del(&k.paused).ignore();
            }
        }
        self.run_pipeline(&pipe).await
    }
}
