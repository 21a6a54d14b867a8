//! The domain job types end to end: payloads checked at enqueue by the API's
//! catalog, and the handlers run by the real `conveyor-worker` binary against fake
//! providers on 127.0.0.1, writing the domain tables.

use axum::http::{Method, StatusCode};
use conveyor_tests::http::{router, send_json};
use conveyor_tests::TestEnv;
use queue_core::JobStatus;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN: &str = "a";

async fn create(
    app: &axum::Router,
    queue: &str,
    job_type: &str,
    payload: Value,
) -> (StatusCode, Value) {
    send_json(
        app,
        Method::POST,
        "/api/admin/jobs",
        Some(ADMIN),
        Some(json!({"queueName": queue, "jobType": job_type, "payload": payload})),
    )
    .await
}

#[sqlx::test]
async fn enqueue_checks_domain_payloads_and_records_nothing_it_refuses(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = router(&env, &[ADMIN], &[]);
    let id = Uuid::new_v4().to_string();
    let refused = [
        (
            "author_data",
            "GENERATE_BIO",
            json!({"authorId": "42"}),
            "payload.authorId",
        ),
        ("author_data", "FETCH_AVATAR", json!({}), "payload"),
        (
            "book_data",
            "GENERATE_CEFR",
            json!({"bookId": id, "extra": 1}),
            "payload",
        ),
        (
            "book_data",
            "PROCESS_EPUB",
            json!({"path": "../etc/passwd.epub"}),
            "payload.path",
        ),
        (
            "book_data",
            "PROCESS_EPUB",
            json!({"path": "/abs/book.epub"}),
            "payload.path",
        ),
        (
            "book_data",
            "PROCESS_EPUB",
            json!({"path": "a.epub", "then": ["GENERATE_SUMMARY", "GENERATE_BIO"]}),
            "payload.then[1]",
        ),
        (
            "quote_data",
            "EXTRACT_QUOTES",
            json!({"bookId": id, "max": 0}),
            "payload.max",
        ),
        (
            "quote_data",
            "EXTRACT_QUOTES",
            json!({"bookId": id, "max": 101}),
            "payload.max",
        ),
        (
            "quote_data",
            "TRANSLATE_QUOTE",
            json!({"quoteId": id, "targetLanguage": "<b>"}),
            "payload.targetLanguage",
        ),
        // A domain type on another queue than its own.
        ("author_data", "GENERATE_SUMMARY", json!({"bookId": id}), ""),
    ];
    for (queue, job_type, payload, field) in refused {
        let (status, body) = create(&app, queue, job_type, payload.clone()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{job_type} {payload}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "{job_type} {payload}: {message} should name {field}"
        );
    }
    assert_eq!(env.count(JobStatus::Pending).await, 0, "nothing recorded");

    let accepted = [
        (
            "author_data",
            "ENRICH_FROM_WIKIDATA",
            json!({"authorId": id}),
        ),
        ("author_data", "GENERATE_PERSONA", json!({"authorId": id})),
        ("book_data", "EXTRACT_CHARACTERS", json!({"bookId": id})),
        (
            "book_data",
            "PROCESS_EPUB",
            json!({"path": "shelf/a.epub", "then": ["GENERATE_CEFR", "EXTRACT_QUOTES"]}),
        ),
        (
            "quote_data",
            "EXTRACT_QUOTES",
            json!({"bookId": id, "max": 5}),
        ),
        ("quote_data", "CATEGORIZE_QUOTE", json!({"quoteId": id})),
        (
            "quote_data",
            "TRANSLATE_QUOTE",
            json!({"quoteId": id, "targetLanguage": "en-US"}),
        ),
    ];
    for (queue, job_type, payload) in accepted {
        let (status, body) = create(&app, queue, job_type, payload.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{job_type} {payload}: {body}");
    }
}

#[test]
fn a_bad_domain_setting_stops_each_binary_naming_its_key() {
    for binary in ["conveyor-worker", "conveyor-api", "conveyor-scheduler"] {
        let mut cmd = std::process::Command::new(conveyor_tests::bin_path(binary));
        if binary == "conveyor-worker" {
            cmd.args(["--queues", "author_data"]);
        }
        let out = cmd
            .current_dir(conveyor_tests::repo_root())
            .env("CONVEYOR_ADMIN_TOKENS", "t")
            .env("CONVEYOR__STORAGE__AVATAR_MAX_BYTES", "lots")
            // A backtrace would add lines to the one the operator reads.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .output()
            .expect("run the binary");
        assert!(!out.status.success(), "{binary} refuses to start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("storage.avatar_max_bytes") && stderr.trim().lines().count() == 1,
            "{binary}: {stderr}"
        );
    }
}
