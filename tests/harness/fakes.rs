//! Fake providers on 127.0.0.1 that speak the real wire formats (the real ones
//! cannot be reached from tests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

/// One answer with every key the LLM job types read; each reads its own.
pub fn fake_answer() -> Value {
    json!({
        "persona": "A sharp, ironic observer of his country.",
        "traits": ["ironic", "compassionate"],
        "bio": "Lu Xun (1881-1936) was a Chinese writer.",
        "events": [{"year": 1881, "event": "born in Shaoxing"}, {"year": 1918, "event": "A Madman's Diary"}],
        "summary": "Stories of village life.",
        "level": "B2",
        "rationale": "Plain prose, some idioms.",
        "characters": [{"name": "Ah Q", "description": "a labourer"}],
        "chineseTitle": "呐喊",
        "quotes": [
            {"text": "Hope is like a path in the countryside.", "chapter": 0},
            {"text": "Where there are many walkers, a road appears.", "chapter": 0},
            {"text": "A third quote.", "chapter": 0}
        ],
        "categories": ["hope"],
        "translation": "希望本是无所谓有，无所谓无的。"
    })
}

/// A chat-completions server on 127.0.0.1:0 answering `fake_answer`; counts requests.
pub async fn fake_chat_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/chat/completions",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": fake_answer().to_string()}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hits)
}
