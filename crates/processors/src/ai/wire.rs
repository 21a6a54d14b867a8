//! Request and response bodies of the two wire formats.

use serde::Deserialize;
use serde_json::{json, Value};

use super::config::{ProviderConfig, ProviderKind};

/// The `anthropic-version` header pinned by this client.
pub(crate) const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the provider sets none.
const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 4096;

/// Who said a turn of the conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn after the system prompt.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    pub(crate) role: Role,
    pub(crate) content: String,
}

/// The model's text and the tokens the request used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) text: String,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

/// The endpoint a provider's requests go to.
pub(crate) fn endpoint(config: &ProviderConfig) -> String {
    let base = config.base_url.trim_end_matches('/');
    match config.kind {
        ProviderKind::Openai => format!("{base}/chat/completions"),
        ProviderKind::Anthropic => format!("{base}/v1/messages"),
    }
}

/// The JSON body of one non-streamed request.
pub(crate) fn request_body(config: &ProviderConfig, system: &str, turns: &[Turn]) -> Value {
    let turns: Vec<Value> = turns
        .iter()
        .map(|t| json!({"role": t.role.as_str(), "content": t.content}))
        .collect();
    match config.kind {
        ProviderKind::Openai => {
            let mut messages = vec![json!({"role": "system", "content": system})];
            messages.extend(turns);
            let mut body = json!({
                "model": config.model,
                "messages": messages,
                "stream": false,
            });
            if config.json_mode {
                body["response_format"] = json!({"type": "json_object"});
            }
            if let Some(max) = config.max_tokens {
                body["max_tokens"] = json!(max);
            }
            body
        }
        ProviderKind::Anthropic => json!({
            "model": config.model,
            "system": system,
            "messages": turns,
            "max_tokens": config.max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
        }),
    }
}

#[derive(Deserialize)]
struct ChatCompletion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChatMessage,
}

#[derive(Deserialize)]
struct ChatMessage {
    // null when the model answered with tool calls instead of text.
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct Message {
    content: Vec<ContentBlock>,
    #[serde(default)]
    usage: Option<MessageUsage>,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct MessageUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// Reads a 2xx body. Leading whitespace is allowed: DeepSeek sends blank lines to
/// keep a waiting request open before the JSON.
pub(crate) fn parse_reply(kind: ProviderKind, body: &str) -> Result<Reply, String> {
    let body = body.trim_start();
    match kind {
        ProviderKind::Openai => {
            let completion: ChatCompletion =
                serde_json::from_str(body).map_err(|e| format!("not a chat completion: {e}"))?;
            let usage = completion.usage.unwrap_or(ChatUsage {
                prompt_tokens: 0,
                completion_tokens: 0,
            });
            let text = completion
                .choices
                .into_iter()
                .next()
                .ok_or("the completion has no choices")?
                .message
                .content
                .unwrap_or_default();
            Ok(Reply {
                text,
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
            })
        }
        ProviderKind::Anthropic => {
            let message: Message =
                serde_json::from_str(body).map_err(|e| format!("not a message: {e}"))?;
            let usage = message.usage.unwrap_or(MessageUsage {
                input_tokens: 0,
                output_tokens: 0,
            });
            let text = message
                .content
                .into_iter()
                .filter(|b| b.kind == "text")
                .filter_map(|b| b.text)
                .collect::<String>();
            Ok(Reply {
                text,
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats() {
        let deepseek = "\n\n\n{\"id\":\"b55e6172\",\"object\":\"chat.completion\",\"model\":\"deepseek-chat\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"{}\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":9,\"total_tokens\":23,\"prompt_cache_hit_tokens\":0,\"prompt_cache_miss_tokens\":14}}";
        let reply = parse_reply(ProviderKind::Openai, deepseek).unwrap();
        assert_eq!((reply.input_tokens, reply.output_tokens), (14, 9));
        let tool_turn = r#"{"choices":[{"message":{"content":null,"role":"assistant"}}]}"#;
        assert_eq!(
            parse_reply(ProviderKind::Openai, tool_turn).unwrap().text,
            ""
        );
        let claude = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"thinking","thinking":"…"},{"type":"text","text":"{\"a\":"},{"type":"text","text":"1}"}],"stop_reason":"end_turn","usage":{"input_tokens":16,"output_tokens":24}}"#;
        let reply = parse_reply(ProviderKind::Anthropic, claude).unwrap();
        assert_eq!(reply.text, "{\"a\":1}");
        assert_eq!((reply.input_tokens, reply.output_tokens), (16, 24));
        assert!(parse_reply(ProviderKind::Openai, "<html>").is_err());
        assert!(parse_reply(ProviderKind::Openai, r#"{"choices":[]}"#).is_err());
    }
}
