//! A typed HTTP client of the admin API. Every call answers the raw JSON
//! body (for `--json`) beside the typed value (for tables), or a [`ClientError`]
//! that says which exit code it deserves. The token goes into the `Authorization`
//! header only; nothing here formats it into a message.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

mod calls;
mod wire;

pub use wire::*;

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
