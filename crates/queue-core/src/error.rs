//! Error types of the engine's layers. Policy: libraries return these typed enums;
//! binaries wrap them in `anyhow` at the edge; the API maps them to status codes in
//! one place. Messages name the field and the reason, never internals of a store.

use uuid::Uuid;

/// A PostgreSQL failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
}

impl StoreError {
    /// True when the database could not be reached (as opposed to a bad query).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// True when the same statement may succeed if tried again: the database is
    /// unreachable, or it refused for a passing reason (serialization failure,
    /// deadlock, lock timeout, resources, cancelled statement). False for errors in
    /// the data itself (a value PostgreSQL cannot store), which no retry fixes.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Query(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
                matches!(c.as_ref(), "40001" | "40P01" | "55P03" | "57014") || c.starts_with("53")
            }),
            Self::Query(sqlx::Error::Protocol(_)) => true,
            Self::Query(_) => false,
        }
    }

    /// Why PostgreSQL refused a statement, in its own words (message and detail),
    /// without the driver's framing; for errors stored in a job's record.
    pub fn refusal(&self) -> String {
        let (Self::Unavailable(e) | Self::Query(e)) = self;
        match e {
            sqlx::Error::Database(db) => {
                let detail = db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .and_then(|pg| pg.detail());
                match detail {
                    Some(detail) => format!("{} ({detail})", db.message()),
                    None => db.message().to_string(),
                }
            }
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
            {
                Self::Unavailable(e)
            }
            other => Self::Query(other),
        }
    }
}

/// Why a service did not answer, in fixed words that reveal nothing of it (no
/// address, no driver text), for health answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Refused,
    TimedOut,
    Lost,
    Unreachable,
    Failed,
}

impl Outage {
    pub fn reason(self) -> &'static str {
        match self {
            Outage::Refused => "connection refused",
            Outage::TimedOut => "no answer in time",
            Outage::Lost => "connection lost",
            Outage::Unreachable => "unreachable",
            Outage::Failed => "unexpected answer",
        }
    }
}

impl StoreError {
    /// What kind of failure this is, for a health answer.
    pub fn outage(&self) -> Outage {
        let (Self::Unavailable(e) | Self::Query(e)) = self;
        match e {
            sqlx::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Outage::Refused,
                std::io::ErrorKind::TimedOut => Outage::TimedOut,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => Outage::Lost,
                _ => Outage::Unreachable,
            },
            // sqlx retries refused connections until the pool's wait runs out.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Outage::Unreachable,
            _ if self.is_unavailable() => Outage::Unreachable,
            _ => Outage::Failed,
        }
    }
}

/// A Redis failure.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis is unavailable (recent connection failure)")]
    Unavailable,
    #[error("unexpected reply from redis script: {0}")]
    Protocol(String),
}

impl BrokerError {
    /// What kind of failure this is, for a health answer.
    pub fn outage(&self) -> Outage {
        match self {
            Self::Redis(e) if e.is_connection_refusal() => Outage::Refused,
            Self::Redis(e) if e.is_timeout() => Outage::TimedOut,
            Self::Redis(e) if e.is_connection_dropped() => Outage::Lost,
            Self::Redis(e) if e.is_io_error() => Outage::Unreachable,
            Self::Unavailable => Outage::Unreachable,
            Self::Redis(_) | Self::Protocol(_) => Outage::Failed,
        }
    }
}

/// Why an enqueue was refused. Every variant but `Store` is the caller's fault and
/// left nothing behind.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("queueName: unknown queue `{queue}`; valid values: {valid}")]
    UnknownQueue { queue: String, valid: String },
    #[error("jobType: unknown job type `{job_type}` for queue `{queue}`; valid values: {valid}")]
    UnknownJobType {
        queue: String,
        job_type: String,
        valid: String,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("jobs: a bulk holds at most {max} jobs, got {got}")]
    TooMany { max: usize, got: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EnqueueError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error for the job at `index` of a bulk.
    pub fn in_bulk(self, index: usize) -> Self {
        let prefix = |f: &str| format!("jobs[{index}].{f}");
        match self {
            Self::UnknownQueue { queue, valid } => Self::Invalid {
                field: prefix("queueName"),
                message: format!("unknown queue `{queue}`; valid values: {valid}"),
            },
            Self::UnknownJobType {
                queue,
                job_type,
                valid,
            } => Self::Invalid {
                field: prefix("jobType"),
                message: format!(
                    "unknown job type `{job_type}` for queue `{queue}`; valid values: {valid}"
                ),
            },
            Self::Invalid { field, message } => Self::Invalid {
                field: prefix(&field),
                message,
            },
            other => other,
        }
    }
}

/// A job that is not where an operation needs it.
#[derive(Debug, thiserror::Error)]
pub enum JobStateError {
    #[error("job {0} not found")]
    NotFound(Uuid),
    #[error("job {id} is {status}: {message}")]
    Conflict {
        id: Uuid,
        status: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
