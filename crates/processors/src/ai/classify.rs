//! Turns a provider's non-2xx answer into an `AiError`, per provider: the same
//! status means different things (OpenAI's `insufficient_quota` 429 is billing, Qwen's
//! is a passing throttle; Anthropic reports a spent credit balance as a 400).

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::config::{ProviderConfig, ProviderKind};
use super::error::AiError;
use super::keys::ApiKey;

/// Longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// Both providers' error bodies: `{"error": {"type", "code", "message", "details"}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<ErrorDetails>,
}

/// Anthropic's spend-cap 429 carries `error.details.error_code`.
#[derive(Debug, Default, Deserialize)]
struct ErrorDetails {
    #[serde(default)]
    error_code: Option<String>,
}

/// `code` is a string, null, or (on some relays) a number.
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Classifies a non-2xx response of provider `name`.
pub(crate) fn classify(
    name: &str,
    config: &ProviderConfig,
    key: &ApiKey,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> AiError {
    let detail = serde_json::from_str::<ErrorBody>(body.trim_start())
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    let kind = detail.kind.as_deref().unwrap_or("");
    let code = detail.code.as_deref().unwrap_or("");
    let message = match detail.message.as_deref() {
        Some(m) if !m.trim().is_empty() => clean(key, m),
        _ if body.trim().is_empty() => "(empty body)".to_string(),
        _ => clean(key, body),
    };
    let provider = name.to_string();
    let retry_after = retry_after(headers);

    let listed = |c: &str| !c.is_empty() && config.errors.retryable_codes.iter().any(|r| r == c);
    if listed(code) || listed(kind) {
        return if status == 429 {
            AiError::RateLimited {
                provider,
                status,
                message,
                retry_after,
            }
        } else {
            AiError::Unavailable {
                provider,
                status,
                message,
                retry_after,
            }
        };
    }

    if let Some(reason) = billing_reason(config.kind, status, kind, code, &detail, &message) {
        return AiError::Billing {
            provider,
            status,
            reason,
            message,
        };
    }

    match status {
        429 => AiError::RateLimited {
            provider,
            status,
            message,
            retry_after,
        },
        // 529 is Anthropic's "overloaded"; 408 and 409 are retried by the official SDKs.
        408 | 409 | 500..=599 => AiError::Unavailable {
            provider,
            status,
            message,
            retry_after,
        },
        401 => AiError::Unauthorized {
            provider,
            status,
            reason: "the API key was refused",
            message,
        },
        403 => AiError::Unauthorized {
            provider,
            status,
            reason: "permission denied",
            message,
        },
        _ => AiError::Rejected {
            provider,
            status,
            message,
        },
    }
}

/// The reason when the error says the account cannot pay, else `None`.
fn billing_reason(
    kind: ProviderKind,
    status: u16,
    error_type: &str,
    code: &str,
    detail: &ErrorDetail,
    message: &str,
) -> Option<&'static str> {
    // DeepSeek's "Insufficient Balance", Anthropic's billing_error.
    if status == 402 || error_type == "billing_error" {
        return Some("insufficient balance");
    }
    match kind {
        ProviderKind::Openai => {
            // OpenAI puts it in code, or (older bodies, code null) only in type.
            (code == "insufficient_quota" || error_type == "insufficient_quota")
                .then_some("quota exhausted")
        }
        ProviderKind::Anthropic => {
            let spend_cap = detail
                .details
                .as_ref()
                .and_then(|d| d.error_code.as_deref())
                == Some("enforced_spend_limit_reached");
            let lower = message.to_ascii_lowercase();
            // Anthropic answers a spent credit balance or a reached spend limit with a 400.
            let billing_text = lower.contains("credit balance")
                || lower.contains("spend limit")
                || lower.contains("usage limits");
            (spend_cap || (status == 400 && billing_text))
                .then_some("credit balance or spend limit exhausted")
        }
    }
}

/// The provider's message with the key scrubbed, on one line, cut to a readable length.
fn clean(key: &ApiKey, text: &str) -> String {
    let one_line = key
        .scrub(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if one_line.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = one_line.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// `retry-after-ms`, else `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && (0.0..1e9).contains(&secs))
            .then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::config::AiConfig;
    use crate::ai::keys::KeySource;
    use reqwest::header::HeaderValue;

    fn run(provider: &str, status: u16, body: &str) -> AiError {
        let config = AiConfig::default();
        let key = KeySource::from_pairs([("K", "sk-live-123")])
            .get("K")
            .unwrap();
        classify(
            provider,
            &config.providers[provider],
            &key,
            status,
            &HeaderMap::new(),
            body,
        )
    }

    #[test]
    fn openai_shapes() {
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let e = run("deepseek", 429, quota);
        assert_eq!(e.class(), "billing");
        assert!(!e.retryable());
        let legacy = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":null}}"#;
        assert_eq!(run("deepseek", 429, legacy).class(), "billing");
        // The same body from Qwen is its token throttle.
        let e = run("qwen", 429, quota);
        assert_eq!(e.class(), "rate_limited");
        assert!(e.retryable());
        let tokens = r#"{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(run("deepseek", 429, tokens).class(), "rate_limited");
        let balance = r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#;
        let e = run("deepseek", 402, balance);
        assert_eq!(e.class(), "billing");
        assert_eq!(
            e.to_string(),
            "deepseek: insufficient balance (HTTP 402): Insufficient Balance"
        );
        let moderation = r#"{"error":{"code":"data_inspection_failed","param":null,"message":"Input data may contain inappropriate content.","type":"data_inspection_failed"},"id":"chatcmpl-1","request_id":"1"}"#;
        assert_eq!(run("qwen", 400, moderation).class(), "rejected");
        assert_eq!(run("deepseek", 503, "").class(), "unavailable");
        assert_eq!(run("deepseek", 422, "not json").class(), "rejected");
    }

    #[test]
    fn anthropic_shapes() {
        let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."},"request_id":"req_1"}"#;
        assert_eq!(run("anthropic", 400, credit).class(), "billing");
        let spend = r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        assert_eq!(run("anthropic", 429, spend).class(), "billing");
        let overloaded =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = run("anthropic", 529, overloaded);
        assert_eq!(e.class(), "unavailable");
        assert!(e.retryable());
        let legacy = r#"{"error":{"type":"forbidden","message":"Request not allowed"}}"#;
        assert_eq!(run("anthropic", 403, legacy).class(), "unauthorized");
        let bad = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: required"}}"#;
        assert_eq!(run("anthropic", 400, bad).class(), "rejected");
    }

    #[test]
    fn echoed_keys_are_scrubbed() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-live-123.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let e = run("deepseek", 401, body);
        assert!(!e.to_string().contains("sk-live-123"));
        assert!(!format!("{e:?}").contains("sk-live-123"));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let later = later.replace("+0000", "GMT");
        h.insert("retry-after", HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Thu, 01 Jan 2015 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }
}
