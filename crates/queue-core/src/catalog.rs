//! The catalog of job types: which queue each belongs to and how its payload is
//! checked. The API and the library validate every enqueue against it, so a payload
//! that does not fit its type is refused before anything is recorded.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A job type: its name, its queue and the typed shape of its payload.
pub trait JobType: Send + Sync + 'static {
    /// The `jobType` string, e.g. `"ECHO"`.
    const NAME: &'static str;
    /// The queue whose workers run it.
    const QUEUE: &'static str;
    /// The payload; deserializing it is the first check.
    type Payload: DeserializeOwned + Send + 'static;

    /// Checks serde cannot express (ranges, paths). Returns (field, reason).
    fn check(_payload: &Self::Payload) -> Result<(), (String, String)> {
        Ok(())
    }
}

/// A payload that does not fit its job type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PayloadError {
    /// Dotted path of the field, starting with `payload`.
    pub field: String,
    pub message: String,
}

type Validator = fn(&Value) -> Result<(), PayloadError>;

/// Deserializes `payload` as `J::Payload`, naming the field that does not fit.
pub fn decode_payload<J: JobType>(payload: &Value) -> Result<J::Payload, PayloadError> {
    let decoded: J::Payload = serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            "payload".to_string()
        } else {
            format!("payload.{path}")
        };
        PayloadError {
            field,
            message: e.into_inner().to_string(),
        }
    })?;
    J::check(&decoded).map_err(|(field, message)| PayloadError {
        field: format!("payload.{field}"),
        message,
    })?;
    Ok(decoded)
}

fn validate<J: JobType>(payload: &Value) -> Result<(), PayloadError> {
    decode_payload::<J>(payload).map(|_| ())
}

#[derive(Clone, Copy)]
struct Entry {
    queue: &'static str,
    validate: Validator,
}

/// Job type name → queue and validator.
#[derive(Clone, Default)]
pub struct Catalog {
    types: BTreeMap<&'static str, Entry>,
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// The engine's own job types (diagnostics). The binaries add the domain types
    /// they register (`processors::jobs`); this crate names none of them.
    pub fn builtin() -> Self {
        let mut catalog = Self::new();
        crate::diagnostics::register_types(&mut catalog);
        catalog
    }

    pub fn add<J: JobType>(&mut self) -> &mut Self {
        self.types.insert(
            J::NAME,
            Entry {
                queue: J::QUEUE,
                validate: validate::<J>,
            },
        );
        self
    }

    /// The queue a job type belongs to.
    pub fn queue_of(&self, job_type: &str) -> Option<&'static str> {
        self.types.get(job_type).map(|e| e.queue)
    }

    /// Job types of `queue`, sorted.
    pub fn types_of(&self, queue: &str) -> Vec<&'static str> {
        self.types
            .iter()
            .filter(|(_, e)| e.queue == queue)
            .map(|(n, _)| *n)
            .collect()
    }

    pub fn validate(&self, job_type: &str, payload: &Value) -> Option<Result<(), PayloadError>> {
        self.types.get(job_type).map(|e| (e.validate)(payload))
    }
}
