//! The HTTP client and the one place that turns Wikidata's answers into errors.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::config::WikidataConfig;
use super::error::WikidataError;
use super::http::retry_after;

/// How long to wait after a `maxlag` answer that names no `Retry-After`
/// (MediaWiki's guidance: at least 5 s, never a tight loop).
const MAXLAG_DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// Large items' entity JSON runs to a few megabytes; far beyond that is not an entity.
const MAX_JSON_BYTES: usize = 32 * 1024 * 1024;

/// A client for Wikidata's API and entity data, and for Commons images.
#[derive(Debug, Clone)]
pub struct WikidataClient {
    pub(crate) http: reqwest::Client,
    pub(crate) config: WikidataConfig,
    base: Url,
}

impl WikidataClient {
    /// Builds the client. Fails when a base URL is not an http(s) URL or the
    /// User-Agent cannot be sent as a header.
    pub fn new(config: WikidataConfig) -> Result<Self, WikidataError> {
        let base = parse_base("base_url", &config.base_url)?;
        parse_base("commons_base_url", &config.commons_base_url)?;
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| WikidataError::Config {
                key: "user_agent",
                detail: e.to_string(),
            })?;
        Ok(Self { http, config, base })
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &WikidataConfig {
        &self.config
    }

    /// `{base_url}{path}` with the given query parameters, encoded.
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// GETs a JSON document and decodes it, classifying every way it can fail.
    /// `what` names the request in error messages ("the entity Q42").
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        what: &str,
    ) -> Result<T, WikidataError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                WikidataError::Timeout {
                    what: what.to_owned(),
                }
            } else {
                WikidataError::Transport {
                    what: what.to_owned(),
                    source,
                }
            }
        };
        let mut response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status();
        let wait = retry_after(response.headers());
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(WikidataError::RateLimited {
                what: what.to_owned(),
                retry_after: wait,
            });
        }
        if status.is_server_error() {
            return Err(WikidataError::Server {
                what: what.to_owned(),
                status: status.as_u16(),
                retry_after: wait,
            });
        }
        if !status.is_success() {
            return Err(WikidataError::Rejected {
                what: what.to_owned(),
                status: status.as_u16(),
            });
        }

        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_JSON_BYTES {
                return Err(malformed(
                    what,
                    format!("the answer exceeds {MAX_JSON_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| malformed(what, e.to_string()))?;
        if let Some(error) = json.get("error") {
            return Err(api_error(error, what, wait));
        }
        serde_json::from_value(json).map_err(|e| malformed(what, e.to_string()))
    }
}

/// MediaWiki reports API errors as HTTP 200 with `{"error":{"code","info",…}}`.
fn api_error(error: &serde_json::Value, what: &str, wait: Option<Duration>) -> WikidataError {
    let field = |name: &str| error.get(name).and_then(|v| v.as_str()).unwrap_or_default();
    let what = what.to_owned();
    match field("code") {
        "maxlag" => WikidataError::Maxlag {
            what,
            retry_after: wait.unwrap_or(MAXLAG_DEFAULT_WAIT),
        },
        "ratelimited" => WikidataError::RateLimited {
            what,
            retry_after: wait,
        },
        "no-such-entity" => WikidataError::NoSuchEntity {
            id: field("id").to_owned(),
        },
        code => WikidataError::Api {
            what,
            code: code.to_owned(),
            info: field("info").to_owned(),
        },
    }
}

fn malformed(what: &str, detail: String) -> WikidataError {
    WikidataError::Malformed {
        what: what.to_owned(),
        detail,
    }
}

fn parse_base(key: &'static str, value: &str) -> Result<Url, WikidataError> {
    let url = Url::parse(value).map_err(|e| WikidataError::Config {
        key,
        detail: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(WikidataError::Config {
            key,
            detail: format!("{value:?} is not an http(s) URL"),
        });
    }
    Ok(url)
}

/// Normalises an item id (`q42` → `Q42`), refusing anything but `Q` and digits, so
/// an id can never change the path it is put into.
pub(crate) fn item_id(id: &str) -> Result<String, WikidataError> {
    let trimmed = id.trim();
    let digits = trimmed.strip_prefix(['Q', 'q']).unwrap_or("");
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WikidataError::InvalidId { id: id.to_owned() });
    }
    Ok(format!("Q{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_are_normalised_or_refused() {
        assert_eq!(item_id(" q42 ").unwrap(), "Q42");
        for bad in [
            "",
            "Q",
            "P31",
            "Q4x",
            "Q42/../x",
            "../Q42",
            "Q1234567890123",
            "Ｑ42",
        ] {
            assert!(
                matches!(item_id(bad), Err(WikidataError::InvalidId { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_the_query() {
        let config = WikidataConfig {
            base_url: "http://127.0.0.1:9/mirror/".into(),
            ..Default::default()
        };
        let client = WikidataClient::new(config).unwrap();
        let url = client.url("/w/api.php", &[("search", "Lu Xun & co")]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/mirror/w/api.php?search=Lu+Xun+%26+co"
        );
    }

    #[test]
    fn a_base_url_that_is_not_http_is_a_config_error() {
        let config = WikidataConfig {
            commons_base_url: "ftp://x".into(),
            ..Default::default()
        };
        let err = WikidataClient::new(config).unwrap_err();
        assert!(
            matches!(
                err,
                WikidataError::Config {
                    key: "commons_base_url",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn maxlag_without_retry_after_waits_five_seconds() {
        let error =
            serde_json::json!({"code": "maxlag", "info": "Waiting for db: 6 seconds lagged"});
        let err = api_error(&error, "the search", None);
        assert!(err.retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    }
}
