//! Reading the one JSON object a prompt asked for out of the model's text.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Appended to every system prompt; DeepSeek's JSON mode also needs the word "JSON" in it.
pub(crate) const JSON_INSTRUCTION: &str =
    "Answer with exactly one JSON object and nothing else: no prose, no code fences.";

/// The follow-up that asks the model to fix an answer that did not parse.
pub(crate) fn repair_prompt(reason: &str) -> String {
    format!(
        "Your previous answer could not be used ({reason}). Reply again with only the \
         JSON object that was asked for: no prose, no code fences."
    )
}

/// Parses the answer into `T`, tolerating leading blank lines (DeepSeek sends them
/// while a request waits), code fences and a sentence around the object.
pub(crate) fn parse_answer<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the answer is empty".to_string());
    }
    // Valid JSON that is not an object (a list, a string) is refused, not dug into.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if !value.is_object() {
            return Err("the answer is JSON but not an object".to_string());
        }
    }
    let object = candidates(text)
        .into_iter()
        .find_map(|c| match serde_json::from_str::<Value>(c) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => None,
        })
        .ok_or_else(|| "the answer holds no JSON object".to_string())?;
    serde_json::from_value(object).map_err(|e| format!("the JSON object does not fit: {e}"))
}

/// The whole text, the inside of a code fence, then the span from the first `{` to the last `}`.
fn candidates(text: &str) -> Vec<&str> {
    let mut out = vec![text];
    if let Some(start) = text.find("```") {
        let after = &text[start + 3..];
        // Skip the fence's language tag up to the end of its line.
        let body = after.find('\n').map_or(after, |nl| &after[nl + 1..]);
        let body = body.find("```").map_or(body, |end| &body[..end]);
        out.push(body.trim());
    }
    if let (Some(open), Some(close)) = (text.find('{'), text.rfind('}')) {
        if open < close {
            out.push(&text[open..=close]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Bio {
        bio: String,
    }

    #[test]
    fn accepts_the_common_wrappings() {
        let want = Bio { bio: "x".into() };
        for text in [
            r#"{"bio":"x"}"#,
            "\n\n\n  {\"bio\":\"x\"}\n",
            "```json\n{\"bio\":\"x\"}\n```",
            "```\n{\"bio\": \"x\"}\n```",
            "Here it is:\n```json\n{\"bio\":\"x\"}\n```\nHope this helps.",
            "Sure! {\"bio\":\"x\", \"extra\": [1]} That's all.",
        ] {
            assert_eq!(parse_answer::<Bio>(text).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_the_object() {
        assert!(parse_answer::<Bio>("   ").is_err());
        assert!(parse_answer::<Bio>("I cannot help with that.").is_err());
        assert!(parse_answer::<Bio>("[{\"bio\":\"x\"}]").is_err());
        assert!(parse_answer::<Bio>("{\"bio\": 3}").is_err());
        assert!(parse_answer::<Bio>("{\"bio\": \"x\"").is_err());
    }
}
