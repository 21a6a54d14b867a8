//! A typed HTTP client of the admin API. Every call answers the raw JSON
//! body (for `--json`) beside the typed value (for tables), or a [`ClientError`]
//! that says which exit code it deserves. The token goes into the `Authorization`
//! header only; nothing here formats it into a message.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API refused the request (4xx other than 404).
    #[error("{code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// 404: no such job, queue route or resource.
    #[error("{code}: {message}")]
    NotFound { code: String, message: String },
    /// The API answered 5xx.
    #[error("{code}: {message} (HTTP {status})")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, DNS, timeout, broken connection.
    #[error("cannot reach the API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// A 2xx answer whose body is not what the API documents.
    #[error("unexpected answer from {path}: {reason}")]
    Decode { path: String, reason: String },
}

impl ClientError {
    /// The exit code documented in `conveyorctl --help`.
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            ClientError::Refused { .. } | ClientError::Decode { .. } => exit::REFUSED,
            ClientError::Unreachable { .. } | ClientError::Server { .. } => exit::UNAVAILABLE,
            ClientError::NotFound { .. } => exit::NOT_FOUND,
        }
    }
}

/// One successful answer: its status, its body as sent and its typed reading.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub status: u16,
    pub raw: Value,
    pub value: T,
}

/// The client of one API base URL.
#[derive(Clone)]
pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A job as the API serializes it (fields the CLI does not show are kept in `raw`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: Uuid,
    pub queue_name: String,
    pub job_type: String,
    pub status: String,
    #[serde(default)]
    pub attempts: i64,
    #[serde(default)]
    pub max_attempts: i64,
    pub created_at: DateTime<Utc>,
}

/// One attempt of a job (`executions` of `GET /jobs/:id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub attempt: i64,
    pub worker_id: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /jobs/:id`: the job plus its attempts.
#[derive(Debug, Clone, Deserialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    #[serde(default)]
    pub executions: Vec<Execution>,
}

/// A page of the job list.
#[derive(Debug, Clone, Deserialize)]
pub struct JobPage {
    pub items: Vec<Job>,
    pub page: i64,
    pub limit: i64,
    pub total: i64,
}

/// Counts of one queue.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    pub paused: bool,
    pub waiting: i64,
    pub active: i64,
    pub delayed: i64,
    pub retrying: i64,
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// Answer of pause and resume.
#[derive(Debug, Clone, Deserialize)]
pub struct Paused {
    pub queue: String,
    pub paused: bool,
}

/// Answer of clean.
#[derive(Debug, Clone, Deserialize)]
pub struct Cleaned {
    pub removed: u64,
}

/// One dead letter.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub job_id: Uuid,
    pub job_type: String,
    pub error: String,
    pub attempts: i64,
    pub failed_at: DateTime<Utc>,
}

/// Answer of a dead-letter replay.
#[derive(Debug, Clone, Deserialize)]
pub struct Replayed {
    pub replayed: u64,
}

/// A live worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<String>,
    pub concurrency: u32,
    pub running: u32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

/// Body of `POST /api/admin/jobs`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewJob {
    pub queue_name: String,
    pub job_type: String,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Filters and window of the job list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub queue: Option<String>,
    pub status: Option<String>,
    pub job_type: Option<String>,
    pub page: Option<u64>,
    pub limit: Option<u64>,
}

/// A page of the authors, books or quotes list (rows kept as sent).
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    pub items: Vec<Value>,
    pub page: i64,
    pub limit: i64,
    pub total: i64,
}

/// Body of the clean route.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanRequest {
    pub status: String,
    pub grace_ms: u64,
    pub limit: u64,
}

/// What `DELETE /jobs/:id` did.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// 200: the waiting job is now CANCELLED.
    Cancelled(Reply<Job>),
    /// 202: the running job was asked to stop.
    Requested(Reply<Job>),
    /// 204: the finished job's record was deleted.
    Deleted,
}

impl Client {
    /// A client of `base` (e.g. `http://127.0.0.1:8080`), sending `token` when given.
    pub fn new(base: Url, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("conveyorctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Unreachable {
                url: base.to_string(),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// True when a token will be sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The base URL with `segments` appended (each percent-encoded).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one request; answers its status and body (parsed when it is JSON).
    /// Only a failure to get an answer is an error here.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<Value>, Vec<u8>), ClientError> {
        let mut req = self.http.request(method, url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.unreachable(&e))?
            .to_vec();
        let raw = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        Ok((status, raw, bytes))
    }

    /// Sends one request and reads its answer; errors by status class.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let path = url.path().to_string();
        let (status, raw, bytes) = self.exchange(method, url, body).await?;
        if status.is_success() {
            let raw = raw.ok_or_else(|| ClientError::Decode {
                path,
                reason: "the body is not JSON".into(),
            })?;
            return Ok((status, raw));
        }
        Err(classify(status, raw.as_ref(), &bytes))
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        // The error's own text repeats the URL; name it once and give the cause.
        let mut reason = if e.is_timeout() {
            "no answer in time".to_string()
        } else if e.is_connect() {
            "connection failed".to_string()
        } else {
            "the request failed".to_string()
        };
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            reason.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        ClientError::Unreachable {
            url: self.base.to_string(),
            reason,
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Reply<T>, ClientError> {
        let path = url.path().to_string();
        let (status, raw) = self.send(method, url, body).await?;
        let value = serde_json::from_value(raw.clone()).map_err(|e| ClientError::Decode {
            path,
            reason: e.to_string(),
        })?;
        Ok(Reply {
            status: status.as_u16(),
            raw,
            value,
        })
    }

    fn admin(&self, segments: &[&str]) -> Url {
        let mut all = vec!["api", "admin"];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    /// `POST /api/admin/jobs` (201 created, 200 when the idempotency key matched).
    pub async fn create_job(&self, job: &NewJob) -> Result<Reply<Job>, ClientError> {
        let body = serde_json::to_value(job).expect("a job serializes");
        self.call(Method::POST, self.admin(&["jobs"]), Some(&body))
            .await
    }

    /// `GET /api/admin/jobs/:id`.
    pub async fn get_job(&self, id: &str) -> Result<Reply<JobDetail>, ClientError> {
        self.call(Method::GET, self.admin(&["jobs", id]), None)
            .await
    }

    /// `GET /api/admin/jobs?…`.
    pub async fn list_jobs(&self, filter: &ListFilter) -> Result<Reply<JobPage>, ClientError> {
        let mut url = self.admin(&["jobs"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(v) = &filter.queue {
                q.append_pair("queue", v);
            }
            if let Some(v) = &filter.status {
                q.append_pair("status", v);
            }
            if let Some(v) = &filter.job_type {
                q.append_pair("jobType", v);
            }
            if let Some(v) = filter.page {
                q.append_pair("page", &v.to_string());
            }
            if let Some(v) = filter.limit {
                q.append_pair("limit", &v.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.call(Method::GET, url, None).await
    }

    /// `POST /api/admin/jobs/:id/retry`.
    pub async fn retry_job(&self, id: &str) -> Result<Reply<Job>, ClientError> {
        self.call(Method::POST, self.admin(&["jobs", id, "retry"]), None)
            .await
    }

    /// `DELETE /api/admin/jobs/:id`.
    pub async fn cancel_job(&self, id: &str) -> Result<CancelOutcome, ClientError> {
        let url = self.admin(&["jobs", id]);
        let path = url.path().to_string();
        let (status, raw) = self.send(Method::DELETE, url, None).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(CancelOutcome::Deleted);
        }
        let value: Job = serde_json::from_value(raw.clone()).map_err(|e| ClientError::Decode {
            path,
            reason: e.to_string(),
        })?;
        let reply = Reply {
            status: status.as_u16(),
            raw,
            value,
        };
        Ok(if status == StatusCode::ACCEPTED {
            CancelOutcome::Requested(reply)
        } else {
            CancelOutcome::Cancelled(reply)
        })
    }

    /// `GET /api/admin/queues`.
    pub async fn queues(&self) -> Result<Reply<Vec<QueueStats>>, ClientError> {
        self.call(Method::GET, self.admin(&["queues"]), None).await
    }

    /// `GET /api/admin/jobs/queue/:name/stats`.
    pub async fn queue_stats(&self, queue: &str) -> Result<Reply<QueueStats>, ClientError> {
        self.call(
            Method::GET,
            self.admin(&["jobs", "queue", queue, "stats"]),
            None,
        )
        .await
    }

    /// `POST /api/admin/jobs/queue/:name/pause` or `/resume`.
    pub async fn set_paused(
        &self,
        queue: &str,
        paused: bool,
    ) -> Result<Reply<Paused>, ClientError> {
        let action = if paused { "pause" } else { "resume" };
        self.call(
            Method::POST,
            self.admin(&["jobs", "queue", queue, action]),
            None,
        )
        .await
    }

    /// `POST /api/admin/jobs/queue/:name/clean`.
    pub async fn clean(
        &self,
        queue: &str,
        req: &CleanRequest,
    ) -> Result<Reply<Cleaned>, ClientError> {
        let body = serde_json::to_value(req).expect("a clean request serializes");
        self.call(
            Method::POST,
            self.admin(&["jobs", "queue", queue, "clean"]),
            Some(&body),
        )
        .await
    }

    /// `GET /api/admin/dlq/:queue`.
    pub async fn dead_letters(
        &self,
        queue: &str,
        limit: Option<u64>,
    ) -> Result<Reply<Vec<DeadLetter>>, ClientError> {
        let mut url = self.admin(&["dlq", queue]);
        if let Some(limit) = limit {
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
        }
        self.call(Method::GET, url, None).await
    }

    /// `POST /api/admin/dlq/:queue/replay` (every dead letter when `job_ids` is empty).
    pub async fn replay(
        &self,
        queue: &str,
        job_ids: &[String],
    ) -> Result<Reply<Replayed>, ClientError> {
        let body = if job_ids.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "jobIds": job_ids })
        };
        self.call(
            Method::POST,
            self.admin(&["dlq", queue, "replay"]),
            Some(&body),
        )
        .await
    }

    /// `GET /api/admin/scheduled-jobs`.
    pub async fn schedules(&self) -> Result<Reply<Vec<Value>>, ClientError> {
        self.call(Method::GET, self.admin(&["scheduled-jobs"]), None)
            .await
    }

    /// `POST /api/admin/scheduled-jobs`.
    pub async fn create_schedule(&self, body: &Value) -> Result<Reply<Value>, ClientError> {
        self.call(Method::POST, self.admin(&["scheduled-jobs"]), Some(body))
            .await
    }

    /// `GET /api/admin/scheduled-jobs/:id`.
    pub async fn get_schedule(&self, id: &str) -> Result<Reply<Value>, ClientError> {
        self.call(Method::GET, self.admin(&["scheduled-jobs", id]), None)
            .await
    }

    /// `PATCH /api/admin/scheduled-jobs/:id`.
    pub async fn update_schedule(
        &self,
        id: &str,
        body: &Value,
    ) -> Result<Reply<Value>, ClientError> {
        self.call(
            Method::PATCH,
            self.admin(&["scheduled-jobs", id]),
            Some(body),
        )
        .await
    }

    /// `DELETE /api/admin/scheduled-jobs/:id` (204).
    pub async fn delete_schedule(&self, id: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, self.admin(&["scheduled-jobs", id]), None)
            .await
            .map(|_| ())
    }

    /// `POST /api/admin/scheduled-jobs/:id/trigger`: the job enqueued.
    pub async fn trigger_schedule(&self, id: &str) -> Result<Reply<Job>, ClientError> {
        self.call(
            Method::POST,
            self.admin(&["scheduled-jobs", id, "trigger"]),
            None,
        )
        .await
    }

    /// `GET /api/admin/{authors|books|quotes}?…`; `query` holds the filters given.
    pub async fn list_page(
        &self,
        resource: &str,
        query: &[(&str, String)],
    ) -> Result<Reply<Page>, ClientError> {
        let mut url = self.admin(&[resource]);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.call(Method::GET, url, None).await
    }

    /// `GET /api/admin/{authors|books|quotes}/:id`.
    pub async fn get_one(&self, resource: &str, id: &str) -> Result<Reply<Value>, ClientError> {
        self.call(Method::GET, self.admin(&[resource, id]), None)
            .await
    }

    /// `POST /api/admin/authors`.
    pub async fn create_author(&self, body: &Value) -> Result<Reply<Value>, ClientError> {
        self.call(Method::POST, self.admin(&["authors"]), Some(body))
            .await
    }

    /// `GET /api/admin/workers`.
    pub async fn workers(&self) -> Result<Reply<Vec<Worker>>, ClientError> {
        self.call(Method::GET, self.admin(&["workers"]), None).await
    }

    /// `GET /health`: 200 healthy or 503 unhealthy, both with a JSON body; answers
    /// the status and the body either way (any other answer is an error).
    pub async fn health(&self) -> Result<(u16, Value), ClientError> {
        let url = self.url(&["health"]);
        let (status, raw, bytes) = self.exchange(Method::GET, url, None).await?;
        match (status.as_u16(), raw) {
            (200 | 503, Some(raw)) => Ok((status.as_u16(), raw)),
            (s, _) if s < 300 => Err(ClientError::Decode {
                path: "/health".into(),
                reason: "the body is not JSON".into(),
            }),
            (_, raw) => Err(classify(status, raw.as_ref(), &bytes)),
        }
    }

    /// `GET /api/admin/system/status`; `None` when the API does not serve it (404).
    pub async fn system_status(&self) -> Result<Option<Value>, ClientError> {
        match self
            .send(Method::GET, self.admin(&["system", "status"]), None)
            .await
        {
            Ok((_, raw)) => Ok(Some(raw)),
            Err(ClientError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The error a non-2xx answer deserves, by status class.
fn classify(status: StatusCode, raw: Option<&Value>, bytes: &[u8]) -> ClientError {
    let (code, message) = error_of(status, raw, bytes);
    match status.as_u16() {
        404 => ClientError::NotFound { code, message },
        s if s >= 500 => ClientError::Server {
            status: s,
            code,
            message,
        },
        s => ClientError::Refused {
            status: s,
            code,
            message,
        },
    }
}

/// The `{"error": {"code", "message"}}` of a refused request, or a stand-in naming
/// the HTTP status when the body has another shape.
fn error_of(status: StatusCode, raw: Option<&Value>, bytes: &[u8]) -> (String, String) {
    let err = raw.and_then(|v| v.get("error"));
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match (code, message) {
        (Some(code), Some(message)) => (code, message),
        (code, message) => {
            let fallback = || {
                let text = String::from_utf8_lossy(bytes);
                let text = text.trim();
                if text.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("no explanation")
                        .to_string()
                } else {
                    text.chars().take(300).collect()
                }
            };
            (
                code.unwrap_or_else(|| format!("http_{}", status.as_u16())),
                message.unwrap_or_else(fallback),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_and_the_base_path_kept() {
        let base = Url::parse("http://h:1/prefix/").unwrap();
        let client = Client::new(base, Some("t".into())).unwrap();
        assert_eq!(
            client.admin(&["jobs", "queue", "a b/c", "stats"]).as_str(),
            "http://h:1/prefix/api/admin/jobs/queue/a%20b%2Fc/stats"
        );
        assert_eq!(client.url(&["health"]).as_str(), "http://h:1/prefix/health");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new(Url::parse("http://h/").unwrap(), Some("s3cret".into())).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
    }

    #[test]
    fn errors_read_the_api_shape_or_name_the_status() {
        let body = serde_json::json!({"error": {"code": "conflict", "message": "no"}});
        let e = classify(StatusCode::CONFLICT, Some(&body), b"");
        assert_eq!(e.to_string(), "conflict: no");
        assert_eq!(e.exit_code(), crate::exit::REFUSED);
        let e = classify(StatusCode::BAD_GATEWAY, None, b"upstream down");
        assert_eq!(e.to_string(), "http_502: upstream down (HTTP 502)");
        assert_eq!(e.exit_code(), crate::exit::UNAVAILABLE);
        let e = classify(StatusCode::NOT_FOUND, Some(&Value::Null), b"");
        assert_eq!(e.exit_code(), crate::exit::NOT_FOUND);
    }
}
