//! `processors::ai` against local fake providers that answer in the real wire shapes
//! of DeepSeek, Qwen (DashScope compatible mode), OpenAI and Anthropic.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use processors::ai::{
    AiClient, AiClientBuilder, AiConfig, AiError, AiMetrics, JobTypeRoute, KeySource,
    ProviderConfig, ProviderKind,
};
use serde::Deserialize;
use serde_json::{json, Value};

// ---------------------------------------------------------------- fake provider

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct FakeState {
    script: Mutex<VecDeque<Reply>>,
    otherwise: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A provider on 127.0.0.1:0 answering scripted replies in order, then `otherwise`.
struct Fake {
    url: String,
    state: Arc<FakeState>,
}

impl Fake {
    async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }
    fn then(&self, reply: Reply) -> &Self {
        self.state.script.lock().unwrap().push_back(reply);
        self
    }
    fn always(&self, reply: Reply) -> &Self {
        *self.state.otherwise.lock().unwrap() = Some(reply);
        self
    }
    fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
    fn request(&self, i: usize) -> (String, HeaderMap, Value) {
        let seen = self.state.seen.lock().unwrap();
        let s = &seen[i];
        (s.path.clone(), s.headers.clone(), s.body.clone())
    }
}

async fn answer(
    State(state): State<Arc<FakeState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = state.script.lock().unwrap().pop_front();
    let reply = reply.or_else(|| state.otherwise.lock().unwrap().clone());
    let Some(reply) = reply else {
        return (StatusCode::IM_A_TEAPOT, "no scripted reply").into_response();
    };
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(reply.delay).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

// ------------------------------------------------- bodies in the providers' shapes

/// OpenAI: pretty-printed, `chatcmpl-` id, usage with details.
fn openai_ok(content: &str, prompt: u64, completion: u64) -> Reply {
    let body = json!({
        "id": "chatcmpl-CcWj9dBmozYrIh53F5tkednY14t4r",
        "object": "chat.completion",
        "created": 1763298303,
        "model": "gpt-5.1-chat-latest",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                     "refusal": null, "annotations": []}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                     "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default",
        "system_fingerprint": null
    });
    Reply::new(200, serde_json::to_string_pretty(&body).unwrap() + "\n")
}

/// DeepSeek: compact, UUID id, cache hit/miss counters.
fn deepseek_ok(content: &str, prompt: u64, completion: u64) -> Reply {
    let body = json!({
        "id": "b55e6172-d379-4806-b4e0-d21dd4b243b7", "object": "chat.completion",
        "created": 1755780061, "model": "deepseek-chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": prompt},
        "system_fingerprint": "fp_feb633d1f5_prod0820_fp8_kvcache"
    });
    Reply::new(200, body.to_string())
}

/// Qwen compatible mode: `model` first, `chatcmpl-<request id>`.
fn qwen_ok(content: &str, prompt: u64, completion: u64) -> Reply {
    let body = format!(
        r#"{{"model":"qwen-plus","usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0}}}},"choices":[{{"message":{{"content":{},"role":"assistant"}},"finish_reason":"stop","index":0,"logprobs":null}}],"object":"chat.completion","created":1766635351,"system_fingerprint":null,"id":"chatcmpl-120e5847-3394-923c-a494-8eb9f81cb36e"}}"#,
        prompt + completion,
        Value::from(content)
    );
    Reply::new(200, body)
        .header("x-request-id", "120e5847-3394-923c-a494-8eb9f81cb36e")
        .header("x-dashscope-call-gateway", "true")
}

/// Anthropic Messages: content blocks, input/output tokens, no total.
fn anthropic_ok(text: &str, input: u64, output: u64) -> Reply {
    let body = json!({
        "id": "msg_01QgNtCXZKCJgpWHW3NEwmdP", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": input, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0,
                  "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                  "output_tokens": output, "service_tier": "standard"}
    });
    Reply::new(200, body.to_string()).header("request-id", "req_011CSLsW7mFqvHHnzrKdKjAE")
}

fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    Reply::new(status, serde_json::to_string_pretty(&body).unwrap())
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
    let body = json!({"type": "error", "error": {"type": kind, "message": message},
                      "request_id": "req_011CcR9mkMvXdaiWP4739PSN"});
    Reply::new(status, body.to_string())
}

// ------------------------------------------------------------------ set-up

#[derive(Debug, Deserialize, PartialEq)]
struct Bio {
    bio: String,
}

const BIO: &str = r#"{"bio": "Lu Xun was a writer."}"#;

fn provider(kind: ProviderKind, url: &str, variable: &str, model: &str) -> ProviderConfig {
    let mut p = ProviderConfig::new(kind, url, variable, model);
    p.timeout_ms = 5_000;
    p
}

/// The default configuration with its providers pointed at fakes, and job type TEST
/// routed to `primary` then `fallback`.
fn config(urls: &[(&str, &str)], primary: &str, fallback: &[&str]) -> AiConfig {
    let mut c = AiConfig::default();
    for (name, url) in urls {
        let p = c.providers.get_mut(*name).expect("a default provider");
        p.base_url = url.to_string();
        p.timeout_ms = 5_000;
    }
    c.job_types
        .insert("TEST".into(), JobTypeRoute::new(primary, fallback));
    c
}

fn all_keys() -> KeySource {
    KeySource::from_pairs([
        ("DEEPSEEK_API_KEY", "sk-ds-test"),
        ("DASHSCOPE_API_KEY", "sk-qwen-test"),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("OPENAI_API_KEY", "sk-oai-test"),
    ])
}

fn client(config: AiConfig) -> AiClient {
    builder(config).build().unwrap()
}

fn builder(config: AiConfig) -> AiClientBuilder {
    AiClient::builder(config).keys(all_keys())
}

async fn ask(client: &AiClient) -> Result<processors::ai::Answer<Bio>, AiError> {
    client
        .ask::<Bio>(
            "TEST",
            "You write short biographies.",
            "Write one for Lu Xun.",
        )
        .await
}

/// The error of a call to a single provider answering `reply`.
async fn error_of(name: &str, reply: Reply) -> AiError {
    let fake = Fake::start().await;
    fake.always(reply);
    let c = client(config(&[(name, &fake.url)], name, &[]));
    ask(&c).await.unwrap_err()
}

// ------------------------------------------------------------------ success

#[tokio::test]
async fn openai_format_sends_bearer_json_mode_and_reads_usage() {
    let fake = Fake::start().await;
    fake.then(deepseek_ok(BIO, 14, 9));
    let c = client(config(&[("deepseek", &fake.url)], "deepseek", &[]));

    let answer = ask(&c).await.unwrap();
    assert_eq!(answer.value.bio, "Lu Xun was a writer.");
    assert_eq!(answer.usage.provider, "deepseek");
    assert_eq!(answer.usage.model, "deepseek-v4-flash");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (14, 9)
    );
    assert_eq!(
        serde_json::to_value(&answer.usage).unwrap(),
        json!({"provider": "deepseek", "model": "deepseek-v4-flash", "inputTokens": 14, "outputTokens": 9})
    );

    let (path, headers, body) = fake.request(0);
    assert_eq!(path, "/chat/completions");
    assert_eq!(headers["authorization"], "Bearer sk-ds-test");
    assert_eq!(body["model"], "deepseek-v4-flash");
    assert_eq!(body["stream"], false);
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(body["messages"][0]["role"], "system");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("You write short biographies."));
    assert!(system.contains("JSON object"), "{system}");
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "Write one for Lu Xun."})
    );
}

#[tokio::test]
async fn qwen_compatible_mode_path_and_openai_pretty_body() {
    let fake = Fake::start().await;
    fake.then(qwen_ok(r#"{"bio": "鲁迅是作家。"}"#, 10, 20));
    let url = format!("{}/compatible-mode/v1", fake.url);
    let c = client(config(&[("qwen", &url)], "qwen", &[]));
    let answer = ask(&c).await.unwrap();
    assert_eq!(answer.value.bio, "鲁迅是作家。");
    assert_eq!(answer.usage.provider, "qwen");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (10, 20)
    );
    assert_eq!(fake.request(0).0, "/compatible-mode/v1/chat/completions");
    assert_eq!(fake.request(0).1["authorization"], "Bearer sk-qwen-test");

    // A plain OpenAI provider added by configuration, pretty-printed body.
    let openai = Fake::start().await;
    openai.then(openai_ok(BIO, 20, 18));
    let mut c = config(&[], "openai", &[]);
    c.providers.insert(
        "openai".into(),
        provider(
            ProviderKind::Openai,
            &format!("{}/v1/", openai.url),
            "OPENAI_API_KEY",
            "gpt-4o-mini",
        ),
    );
    let answer = ask(&client(c)).await.unwrap();
    assert_eq!(answer.usage.model, "gpt-4o-mini");
    assert_eq!(answer.usage.output_tokens, 18);
    assert_eq!(openai.request(0).0, "/v1/chat/completions");
}

#[tokio::test]
async fn anthropic_format_sends_its_headers_and_reads_usage() {
    let fake = Fake::start().await;
    fake.then(anthropic_ok(BIO, 16, 24));
    let c = client(config(&[("anthropic", &fake.url)], "anthropic", &[]));

    let answer = ask(&c).await.unwrap();
    assert_eq!(answer.value.bio, "Lu Xun was a writer.");
    assert_eq!(answer.usage.provider, "anthropic");
    assert_eq!(answer.usage.model, "claude-sonnet-4-5");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (16, 24)
    );

    let (path, headers, body) = fake.request(0);
    assert_eq!(path, "/v1/messages");
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert!(headers.get("authorization").is_none());
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 4096);
    assert!(body["system"].as_str().unwrap().contains("JSON object"));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Write one for Lu Xun."}])
    );
}

#[tokio::test]
async fn blank_lines_before_the_body_and_the_answer_are_tolerated() {
    let fake = Fake::start().await;
    // DeepSeek keeps a waiting request open with blank lines before the JSON body.
    let mut reply = deepseek_ok(&format!("\n\n  \n```json\n{BIO}\n```\n"), 5, 5);
    reply.body = format!("\n\n\n\n{}", reply.body);
    fake.then(reply);
    let c = client(config(&[("deepseek", &fake.url)], "deepseek", &[]));
    assert_eq!(ask(&c).await.unwrap().value.bio, "Lu Xun was a writer.");
    assert_eq!(fake.count(), 1);
}

// ------------------------------------------------------------------ repair

#[tokio::test]
async fn a_bad_answer_is_repaired_by_a_second_request_and_usage_sums_both() {
    let fake = Fake::start().await;
    fake.then(deepseek_ok("Lu Xun was a writer from Shaoxing.", 30, 12))
        .then(deepseek_ok(BIO, 50, 8));
    let c = client(config(&[("deepseek", &fake.url)], "deepseek", &[]));

    let answer = ask(&c).await.unwrap();
    assert_eq!(answer.value.bio, "Lu Xun was a writer.");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (80, 20)
    );
    assert_eq!(fake.count(), 2);
    let (_, _, repair) = fake.request(1);
    let messages = repair["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "Lu Xun was a writer from Shaoxing."})
    );
    assert_eq!(messages[3]["role"], "user");
    assert!(messages[3]["content"]
        .as_str()
        .unwrap()
        .contains("only the JSON object"));
}

#[tokio::test]
async fn an_answer_that_stays_bad_fails_retryably_without_falling_back() {
    let primary = Fake::start().await;
    let fallback = Fake::start().await;
    // Blank content, as DeepSeek's JSON mode can send, then a wrong object.
    primary
        .then(deepseek_ok("   ", 30, 0))
        .then(deepseek_ok(r#"{"biography": "x"}"#, 40, 5));
    fallback.always(qwen_ok(BIO, 1, 1));
    let c = client(config(
        &[("deepseek", &primary.url), ("qwen", &fallback.url)],
        "deepseek",
        &["qwen"],
    ));
    let e = ask(&c).await.unwrap_err();
    assert!(matches!(e, AiError::BadAnswer { .. }), "{e:?}");
    assert!(e.retryable());
    assert!(e.to_string().starts_with("deepseek:"), "{e}");
    assert_eq!(primary.count(), 2);
    assert_eq!(fallback.count(), 0);
    // Anthropic refuses empty turns, so a blank answer is sent back as a placeholder.
    let (_, _, repair) = primary.request(1);
    assert_eq!(repair["messages"][2]["content"], "(empty answer)");
}

// ------------------------------------------------------------------ error classes

#[tokio::test]
async fn a_429_is_retryable_and_honours_retry_after_seconds_and_dates() {
    let e = error_of(
        "deepseek",
        openai_error(
            429,
            "Rate limit reached for requests",
            "requests",
            Some("rate_limit_exceeded"),
        )
        .header("retry-after", "7"),
    )
    .await;
    assert!(
        matches!(e, AiError::RateLimited { status: 429, .. }),
        "{e:?}"
    );
    assert!(e.retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    let at = (chrono::Utc::now() + chrono::Duration::seconds(40))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let e = error_of(
        "anthropic",
        anthropic_error(429, "rate_limit_error", "Rate limited").header("retry-after", at),
    )
    .await;
    assert_eq!(e.class(), "rate_limited");
    let wait = e.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(30) && wait <= Duration::from_secs(40),
        "{wait:?}"
    );

    // No hint at all is common (OpenAI sends none on some 429s).
    let e = error_of(
        "deepseek",
        openai_error(
            429,
            "Rate limit reached",
            "tokens",
            Some("rate_limit_exceeded"),
        ),
    )
    .await;
    assert!(e.retryable());
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn server_errors_and_anthropic_overload_are_retryable() {
    let e = error_of(
        "deepseek",
        openai_error(
            500,
            "The server had an error processing your request.",
            "server_error",
            None,
        ),
    )
    .await;
    assert!(
        matches!(e, AiError::Unavailable { status: 500, .. }),
        "{e:?}"
    );
    assert!(e.retryable());

    let e = error_of(
        "anthropic",
        Reply::new(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .header("retry-after", "3"),
    )
    .await;
    assert!(
        matches!(e, AiError::Unavailable { status: 529, .. }),
        "{e:?}"
    );
    assert!(e.retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

    let e = error_of("qwen", Reply::new(503, "upstream connect error")).await;
    assert!(e.retryable());
    assert!(e.to_string().contains("upstream connect error"), "{e}");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retryable() {
    let fake = Fake::start().await;
    fake.always(deepseek_ok(BIO, 1, 1).delay(Duration::from_secs(3)));
    let mut c = config(&[("deepseek", &fake.url)], "deepseek", &[]);
    c.providers.get_mut("deepseek").unwrap().timeout_ms = 200;
    let started = Instant::now();
    let e = ask(&client(c)).await.unwrap_err();
    assert!(matches!(e, AiError::Timeout { .. }), "{e:?}");
    assert!(e.retryable());
    assert!(started.elapsed() < Duration::from_secs(2));

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let c = client(config(&[("deepseek", &closed)], "deepseek", &[]));
    let e = ask(&c).await.unwrap_err();
    assert!(matches!(e, AiError::Connection { .. }), "{e:?}");
    assert!(e.retryable());
}

#[tokio::test]
async fn client_errors_are_permanent() {
    let e = error_of(
        "deepseek",
        openai_error(
            400,
            "This model's maximum context length is 4097 tokens.",
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
    )
    .await;
    assert!(matches!(e, AiError::Rejected { status: 400, .. }), "{e:?}");
    assert!(!e.retryable());

    let e = error_of(
        "deepseek",
        openai_error(
            401,
            "Authentication Fails (no such user)",
            "authentication_error",
            Some("invalid_request_error"),
        ),
    )
    .await;
    assert!(
        matches!(e, AiError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert!(!e.retryable());
    assert!(e.to_string().contains("deepseek"), "{e}");

    let e = error_of(
        "anthropic",
        anthropic_error(403, "permission_error", "Permission denied"),
    )
    .await;
    assert!(
        matches!(e, AiError::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
    assert!(!e.retryable());
}

#[tokio::test]
async fn openai_insufficient_quota_is_permanent_but_qwen_retries_it() {
    let quota = || {
        openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            Some("insufficient_quota"),
        )
    };
    let mut openai = AiConfig::default();
    let fake = Fake::start().await;
    fake.always(quota());
    openai.providers.insert(
        "openai".into(),
        provider(
            ProviderKind::Openai,
            &fake.url,
            "OPENAI_API_KEY",
            "gpt-4o-mini",
        ),
    );
    openai
        .job_types
        .insert("TEST".into(), JobTypeRoute::new("openai", &[]));
    let e = ask(&client(openai)).await.unwrap_err();
    assert!(matches!(e, AiError::Billing { status: 429, .. }), "{e:?}");
    assert!(!e.retryable());
    assert!(e.to_string().starts_with("openai: quota exhausted"), "{e}");

    // The older body with `code: null` says it only in `type`.
    let e = error_of(
        "deepseek",
        openai_error(
            429,
            "You exceeded your current quota",
            "insufficient_quota",
            None,
        ),
    )
    .await;
    assert_eq!(e.class(), "billing");

    // DashScope's token throttle: same words, passing; listed in its retryable_codes.
    let e = error_of("qwen", quota().header("retry-after", "2")).await;
    assert!(
        matches!(e, AiError::RateLimited { status: 429, .. }),
        "{e:?}"
    );
    assert!(e.retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn deepseek_402_and_anthropic_spend_limits_are_permanent() {
    let e = error_of(
        "deepseek",
        Reply::new(
            402,
            r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#,
        ),
    )
    .await;
    assert!(matches!(e, AiError::Billing { status: 402, .. }), "{e:?}");
    assert!(!e.retryable());
    assert_eq!(
        e.to_string(),
        "deepseek: insufficient balance (HTTP 402): Insufficient Balance"
    );

    let e = error_of(
        "anthropic",
        anthropic_error(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        ),
    )
    .await;
    assert!(matches!(e, AiError::Billing { status: 400, .. }), "{e:?}");
    assert!(e
        .to_string()
        .starts_with("anthropic: credit balance or spend limit exhausted"));

    let spend_cap = json!({"type": "error", "error": {"type": "rate_limit_error",
        "message": "You have reached your monthly spend limit.",
        "details": {"error_code": "enforced_spend_limit_reached"}}});
    let e = error_of("anthropic", Reply::new(429, spend_cap.to_string())).await;
    assert!(matches!(e, AiError::Billing { status: 429, .. }), "{e:?}");
    assert!(!e.retryable());
}

// ------------------------------------------------------------------ fallback

#[tokio::test]
async fn a_retryable_error_sends_the_call_to_the_fallback() {
    let anthropic = Fake::start().await;
    let deepseek = Fake::start().await;
    anthropic.always(anthropic_error(529, "overloaded_error", "Overloaded"));
    deepseek.then(deepseek_ok(BIO, 14, 9));
    let mut c = config(
        &[("anthropic", &anthropic.url), ("deepseek", &deepseek.url)],
        "anthropic",
        &[],
    );
    // The default route of EXTRACT_CHARACTERS is anthropic, then deepseek.
    c.job_types.remove("TEST");
    let answer = client(c)
        .ask::<Bio>("extract_characters", "s", "u")
        .await
        .unwrap();
    assert_eq!(answer.usage.provider, "deepseek");
    assert_eq!(answer.usage.model, "deepseek-v4-flash");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (14, 9)
    );
    assert_eq!(anthropic.count(), 1);
    assert_eq!(deepseek.count(), 1);
}

#[tokio::test]
async fn a_missing_key_skips_to_the_fallback() {
    let anthropic = Fake::start().await;
    let deepseek = Fake::start().await;
    deepseek.then(deepseek_ok(BIO, 3, 4));
    let c = builder(config(
        &[("anthropic", &anthropic.url), ("deepseek", &deepseek.url)],
        "anthropic",
        &["deepseek"],
    ))
    .keys(KeySource::from_pairs([("DEEPSEEK_API_KEY", "sk-ds-test")]))
    .build()
    .unwrap();
    let answer = ask(&c).await.unwrap();
    assert_eq!(answer.usage.provider, "deepseek");
    assert_eq!(anthropic.count(), 0);
}

#[tokio::test]
async fn no_key_anywhere_is_a_permanent_missing_key_naming_the_primary() {
    let anthropic = Fake::start().await;
    let deepseek = Fake::start().await;
    let c = builder(config(
        &[("anthropic", &anthropic.url), ("deepseek", &deepseek.url)],
        "anthropic",
        &["deepseek"],
    ))
    .keys(KeySource::from_pairs([
        ("UNRELATED", "x"),
        ("DEEPSEEK_API_KEY", ""),
    ]))
    .build()
    .unwrap();
    let e = ask(&c).await.unwrap_err();
    match &e {
        AiError::MissingKey { variable } => assert_eq!(variable, "ANTHROPIC_API_KEY"),
        other => panic!("expected MissingKey, got {other:?}"),
    }
    assert!(!e.retryable());
    assert_eq!(anthropic.count() + deepseek.count(), 0);
}

#[tokio::test]
async fn when_no_provider_is_left_the_primarys_retryable_error_is_returned() {
    let anthropic = Fake::start().await;
    let deepseek = Fake::start().await;
    anthropic
        .always(anthropic_error(529, "overloaded_error", "Overloaded").header("retry-after", "9"));
    deepseek.always(openai_error(
        429,
        "Rate limit reached",
        "requests",
        Some("rate_limit_exceeded"),
    ));
    let c = client(config(
        &[("anthropic", &anthropic.url), ("deepseek", &deepseek.url)],
        "anthropic",
        &["deepseek"],
    ));
    let e = ask(&c).await.unwrap_err();
    assert!(
        matches!(e, AiError::Unavailable { status: 529, .. }),
        "{e:?}"
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));
    assert_eq!(deepseek.count(), 1);

    // A fallback that refuses for good does not turn the busy primary's error permanent.
    let deepseek = Fake::start().await;
    deepseek.always(openai_error(
        401,
        "Authentication Fails",
        "authentication_error",
        None,
    ));
    let c = client(config(
        &[("anthropic", &anthropic.url), ("deepseek", &deepseek.url)],
        "anthropic",
        &["deepseek"],
    ));
    let e = ask(&c).await.unwrap_err();
    assert!(e.retryable(), "{e:?}");
    assert_eq!(e.class(), "unavailable");
}

#[tokio::test]
async fn a_permanent_error_of_the_primary_does_not_fall_back() {
    let anthropic = Fake::start().await;
    let deepseek = Fake::start().await;
    anthropic.always(anthropic_error(
        401,
        "authentication_error",
        "invalid x-api-key",
    ));
    deepseek.always(deepseek_ok(BIO, 1, 1));
    let c = client(config(
        &[("anthropic", &anthropic.url), ("deepseek", &deepseek.url)],
        "anthropic",
        &["deepseek"],
    ));
    let e = ask(&c).await.unwrap_err();
    assert!(
        matches!(e, AiError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert_eq!(deepseek.count(), 0);
}

// ------------------------------------------------------------------ secrecy

#[tokio::test]
async fn the_key_never_shows_in_debug_output_or_errors() {
    const SECRET: &str = "sk-live-0123456789abcdef";
    let fake = Fake::start().await;
    // Some relays echo the whole key back.
    fake.always(openai_error(
        401,
        &format!("Incorrect API key provided: {SECRET}. You can find your API key at https://platform.openai.com/account/api-keys."),
        "invalid_request_error",
        Some("invalid_api_key"),
    ));
    let keys = KeySource::from_pairs([("DEEPSEEK_API_KEY", SECRET)]);
    let b = AiClient::builder(config(&[("deepseek", &fake.url)], "deepseek", &[])).keys(keys);
    let builder_debug = format!("{b:?}");
    let c = b.build().unwrap();
    let e = ask(&c).await.unwrap_err();
    assert_eq!(
        fake.request(0).1["authorization"],
        format!("Bearer {SECRET}")
    );
    for text in [
        builder_debug,
        format!("{c:?}"),
        format!("{:?}", c.config()),
        e.to_string(),
        format!("{e:?}"),
    ] {
        assert!(!text.contains(SECRET), "the key leaked: {text}");
    }
    assert!(e.to_string().contains("[redacted]"), "{e}");
}

// ------------------------------------------------------------------ limits

#[tokio::test]
async fn concurrency_bounds_in_flight_requests_per_provider() {
    let fake = Fake::start().await;
    fake.always(deepseek_ok(BIO, 1, 1).delay(Duration::from_millis(150)));
    let mut c = config(&[("deepseek", &fake.url)], "deepseek", &[]);
    c.providers.get_mut("deepseek").unwrap().concurrency = 2;
    let c = client(c);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { ask(&c).await.map(|a| a.value) })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(fake.count(), 6);
    assert_eq!(fake.state.max_in_flight.load(Ordering::SeqCst), 2);
}

async fn redis() -> redis::aio::ConnectionManager {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url).unwrap();
    redis::aio::ConnectionManager::new(client).await.unwrap()
}

/// A random key prefix, deleted with everything under it when dropped.
struct Prefix {
    name: String,
    redis: redis::aio::ConnectionManager,
}

impl Prefix {
    async fn new() -> Self {
        Self {
            name: format!("test-ai-{}", uuid::Uuid::new_v4()),
            redis: redis().await,
        }
    }
    async fn cleanup(mut self) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.name))
            .query_async(&mut self.redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut self.redis)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn requests_per_minute_is_shared_by_two_processes() {
    let prefix = Prefix::new().await;
    let fake = Fake::start().await;
    fake.always(deepseek_ok(BIO, 1, 1));
    let mut c = config(&[("deepseek", &fake.url)], "deepseek", &[]);
    c.providers.get_mut("deepseek").unwrap().requests_per_minute = 2;
    // Two clients with their own Redis connections stand for two worker processes;
    // a 1 s window stands for the minute.
    let process = |max_wait: Duration, c: AiConfig| {
        let name = prefix.name.clone();
        async move {
            builder(c)
                .shared_limits(redis().await, name)
                .rate_window(Duration::from_secs(1))
                .max_rate_wait(max_wait)
                .build()
                .unwrap()
        }
    };
    let impatient = process(Duration::ZERO, c.clone()).await;
    let patient = process(Duration::from_secs(5), c).await;

    ask(&impatient).await.unwrap();
    ask(&patient).await.unwrap();
    let e = ask(&impatient).await.unwrap_err();
    assert!(matches!(e, AiError::Throttled { .. }), "{e:?}");
    assert!(e.retryable());
    assert!(e.retry_after().unwrap() > Duration::ZERO);
    assert_eq!(fake.count(), 2);

    // The other process waits for room instead; the two earlier requests weigh in
    // until at least half of the next window has passed.
    let started = Instant::now();
    ask(&patient).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.count(), 3);
    prefix.cleanup().await;
}

#[tokio::test]
async fn tokens_per_minute_counts_each_answers_usage() {
    let prefix = Prefix::new().await;
    let fake = Fake::start().await;
    fake.always(deepseek_ok(BIO, 120, 30));
    let mut c = config(&[("deepseek", &fake.url)], "deepseek", &[]);
    c.providers.get_mut("deepseek").unwrap().tokens_per_minute = 100;
    let c = builder(c)
        .shared_limits(redis().await, prefix.name.clone())
        .max_rate_wait(Duration::ZERO)
        .build()
        .unwrap();
    ask(&c).await.unwrap();
    let e = ask(&c).await.unwrap_err();
    assert!(matches!(e, AiError::Throttled { .. }), "{e:?}");
    assert_eq!(fake.count(), 1);
    prefix.cleanup().await;
}

#[tokio::test]
async fn a_broken_shared_limit_fails_open() {
    let mut prefix = Prefix::new().await;
    // A key of the wrong type makes every script call fail.
    let _: () = redis::cmd("SET")
        .arg(format!("{}:ai:rate:deepseek", prefix.name))
        .arg("not a hash")
        .query_async(&mut prefix.redis)
        .await
        .unwrap();
    let fake = Fake::start().await;
    fake.always(deepseek_ok(BIO, 1, 1));
    let mut c = config(&[("deepseek", &fake.url)], "deepseek", &[]);
    c.providers.get_mut("deepseek").unwrap().requests_per_minute = 1;
    let c = builder(c)
        .shared_limits(redis().await, prefix.name.clone())
        .max_rate_wait(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..3 {
        ask(&c).await.unwrap();
    }
    assert_eq!(fake.count(), 3);
    prefix.cleanup().await;
}

// ------------------------------------------------------------------ metrics

#[tokio::test]
async fn requests_and_tokens_are_counted() {
    let registry = prometheus::Registry::new();
    let metrics = AiMetrics::register(&registry).unwrap();
    let anthropic = Fake::start().await;
    let deepseek = Fake::start().await;
    anthropic.then(anthropic_error(529, "overloaded_error", "Overloaded"));
    deepseek
        .then(deepseek_ok("not json", 10, 5))
        .then(deepseek_ok(BIO, 20, 7));
    let c = builder(config(
        &[("anthropic", &anthropic.url), ("deepseek", &deepseek.url)],
        "anthropic",
        &["deepseek"],
    ))
    .metrics(metrics)
    .build()
    .unwrap();
    ask(&c).await.unwrap();

    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().to_vec())
            .find(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            .map_or(0.0, |m| m.get_counter().get_value())
    };
    let requests = "conveyor_ai_requests_total";
    assert_eq!(
        value(
            requests,
            &[("provider", "anthropic"), ("status", "unavailable")]
        ),
        1.0
    );
    assert_eq!(
        value(requests, &[("provider", "deepseek"), ("status", "ok")]),
        2.0
    );
    let tokens = "conveyor_ai_tokens_total";
    let ds = [("provider", "deepseek"), ("model", "deepseek-v4-flash")];
    assert_eq!(value(tokens, &[ds[0], ds[1], ("kind", "input")]), 30.0);
    assert_eq!(value(tokens, &[ds[0], ds[1], ("kind", "output")]), 12.0);

    // Registering twice into one registry is refused, not silently doubled.
    assert!(AiMetrics::register(&registry).is_err());
}
