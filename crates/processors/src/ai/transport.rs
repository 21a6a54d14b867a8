//! The HTTP side of a provider call: the key's headers, reading an answer, and a
//! transport failure said plainly (with the key scrubbed from it).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

use super::config::{ProviderConfig, ProviderKind};
use super::error::AiError;
use super::keys::ApiKey;
use super::wire::ANTHROPIC_VERSION;

pub(super) async fn read(
    request: reqwest::RequestBuilder,
) -> Result<(u16, HeaderMap, String), reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await?;
    Ok((status, headers, body))
}

/// The key's headers, marked sensitive so no debug output of the request shows them.
pub(super) fn auth_headers(config: &ProviderConfig, key: &ApiKey) -> Result<HeaderMap, AiError> {
    let invalid = || AiError::InvalidKey {
        variable: config.api_key_env.clone(),
    };
    let mut headers = HeaderMap::new();
    match config.kind {
        ProviderKind::Openai => {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| invalid())?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        ProviderKind::Anthropic => {
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| invalid())?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
    }
    Ok(headers)
}

pub(super) fn transport_error(
    name: &str,
    timeout: Duration,
    key: &ApiKey,
    e: &reqwest::Error,
) -> AiError {
    if e.is_timeout() {
        return AiError::Timeout {
            provider: name.to_string(),
            timeout,
        };
    }
    // The chain of causes says what broke (refused, reset, DNS).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    AiError::Connection {
        provider: name.to_string(),
        message: key.scrub(&message),
    }
}
