//! Everything Conveyor does in Redis. Redis is the fast path only: losing any of it
//! loses no job, because PostgreSQL holds every record and the reconciler pushes
//! waiting jobs back.

mod admin;
mod dispatch;
mod events;
pub mod keys;
mod maintenance;
mod scripts;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Pipeline, Script};
use uuid::Uuid;

pub use admin::{DeadLetter, DeadLetterEntry, WorkerInfo};
pub use events::{JobEvent, JobEventHub, JobEventSubscription, JobNotice};
pub use keys::QueueKeys;

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
