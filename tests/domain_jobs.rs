//! The domain job types end to end: payloads checked at enqueue by the API's
//! catalog, and the handlers run by the real `conveyor-worker` binary against fake
//! providers on 127.0.0.1, writing the domain tables.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use conveyor_tests::fakes::{fake_answer, fake_chat_server};
use conveyor_tests::http::{Reply, TestApi};
use conveyor_tests::TestEnv;
use queue_core::store::{NewBook, NewChapter, NewQuote};
use queue_core::{JobStatus, NewJob};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

async fn create(api: &TestApi, queue: &str, job_type: &str, payload: Value) -> Reply {
    let body = json!({"queueName": queue, "jobType": job_type, "payload": payload});
    api.post("/api/admin/jobs", body).await
}

#[sqlx::test]
async fn enqueue_checks_domain_payloads_and_records_nothing_it_refuses(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
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
        let reply = create(&api, queue, job_type, payload.clone()).await;
        let (_, message) = reply.error(StatusCode::BAD_REQUEST);
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
        let reply = create(&api, queue, job_type, payload.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{job_type} {payload}: {reply:?}"
        );
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

// ---------------------------------------------------------------------------------
// Language-model handlers, against a fake OpenAI-compatible server
// ---------------------------------------------------------------------------------

/// An author, a book by them with one chapter, and one quote of it.
async fn seed(env: &TestEnv) -> (Uuid, Uuid, Uuid) {
    let store = env.conveyor.store();
    let book = store
        .upsert_book(&NewBook {
            identifier: "urn:test:call-to-arms".into(),
            title: "Call to Arms".into(),
            author: Some("Lu Xun".into()),
            language: Some("en".into()),
            source_path: None,
            chapters: vec![NewChapter::new(
                Some("A Madman's Diary".into()),
                "Tonight the moon is very bright. ".repeat(2_000),
            )],
        })
        .await
        .unwrap();
    let quote = store
        .insert_quotes(
            book.book_id,
            &[NewQuote {
                text: "Hope is like a path in the countryside.".into(),
                chapter: Some(0),
            }],
        )
        .await
        .unwrap()[0];
    (book.author_id.unwrap(), book.book_id, quote)
}

async fn enqueue(env: &TestEnv, queue: &str, job_type: &str, payload: Value) -> Uuid {
    env.enqueue(NewJob::new(queue, job_type, payload)).await
}

const WAIT: Duration = Duration::from_secs(60);

#[sqlx::test]
async fn llm_handlers_write_their_answers_and_report_usage(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let (url, hits) = fake_chat_server().await;
    let (author, book, quote) = seed(&env).await;
    let _worker = env.spawn_worker(
        &["--queues", "author_data,book_data,quote_data"],
        &[
            ("CONVEYOR__PROVIDERS__DEEPSEEK__BASE_URL", &url),
            ("CONVEYOR__PROVIDERS__QWEN__BASE_URL", &url),
            // No Anthropic key: EXTRACT_CHARACTERS falls back to deepseek.
            (
                "CONVEYOR__PROVIDERS__ANTHROPIC__API_KEY_ENV",
                "CONVEYOR_TEST_NO_SUCH_KEY",
            ),
            ("DEEPSEEK_API_KEY", "test-deepseek"),
            ("DASHSCOPE_API_KEY", "test-qwen"),
        ],
    );
    let a = json!({"authorId": author});
    let b = json!({"bookId": book});
    let q = json!({"quoteId": quote});
    let jobs = [
        ("author_data", "GENERATE_PERSONA", a.clone()),
        ("author_data", "GENERATE_BIO", a.clone()),
        ("author_data", "GENERATE_TIMELINE", a),
        ("book_data", "GENERATE_SUMMARY", b.clone()),
        ("book_data", "GENERATE_CEFR", b.clone()),
        ("book_data", "EXTRACT_CHARACTERS", b.clone()),
        ("book_data", "GENERATE_CHINESE_TITLE", b),
        (
            "quote_data",
            "EXTRACT_QUOTES",
            json!({"bookId": book, "max": 2}),
        ),
        ("quote_data", "CATEGORIZE_QUOTE", q.clone()),
        ("quote_data", "TRANSLATE_QUOTE", q),
    ];
    let mut results = std::collections::HashMap::new();
    for (queue, job_type, payload) in jobs {
        let id = enqueue(&env, queue, job_type, payload).await;
        results.insert(job_type, id);
    }
    let mut result = std::collections::HashMap::new();
    for (job_type, id) in &results {
        let job = env.wait_status(*id, JobStatus::Completed, WAIT).await;
        result.insert(*job_type, job.result.expect("a result"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 10, "one request per job");

    let usage = |provider: &str, model: &str| json!({"provider": provider, "model": model, "inputTokens": 10, "outputTokens": 5});
    let deepseek = usage("deepseek", "deepseek-v4-flash");
    let qwen = usage("qwen", "qwen-plus");
    let answer = fake_answer();
    assert_eq!(
        result["GENERATE_BIO"],
        json!({"bio": answer["bio"], "usage": deepseek})
    );
    assert_eq!(
        result["GENERATE_PERSONA"],
        json!({"persona": answer["persona"], "traits": answer["traits"], "usage": deepseek})
    );
    assert_eq!(
        result["GENERATE_TIMELINE"],
        json!({"events": answer["events"], "usage": deepseek})
    );
    assert_eq!(
        result["GENERATE_CEFR"],
        json!({"level": "B2", "rationale": answer["rationale"], "usage": deepseek})
    );
    assert_eq!(
        result["EXTRACT_CHARACTERS"],
        json!({"characters": answer["characters"], "usage": deepseek}),
        "answered by the fallback"
    );
    assert_eq!(
        result["GENERATE_CHINESE_TITLE"],
        json!({"chineseTitle": "呐喊", "usage": qwen})
    );
    assert_eq!(
        result["CATEGORIZE_QUOTE"],
        json!({"categories": ["hope"], "usage": deepseek})
    );
    assert_eq!(
        result["TRANSLATE_QUOTE"],
        json!({"translation": answer["translation"], "usage": qwen})
    );
    let quote_ids = result["EXTRACT_QUOTES"]["quoteIds"].as_array().unwrap();
    assert_eq!(
        quote_ids.len(),
        2,
        "max = 2: {:?}",
        result["EXTRACT_QUOTES"]
    );
    assert_eq!(quote_ids[0], json!(quote), "a known text keeps its row");

    let store = env.conveyor.store();
    let author = store.get_author(author).await.unwrap().unwrap();
    assert_eq!(author.bio.as_deref(), answer["bio"].as_str());
    assert_eq!(
        author.persona,
        Some(json!({"persona": answer["persona"], "traits": answer["traits"]}))
    );
    assert_eq!(author.timeline, Some(answer["events"].clone()));
    let book = store.get_book(book).await.unwrap().unwrap();
    assert_eq!(book.summary.as_deref(), answer["summary"].as_str());
    assert_eq!(book.cefr_level.as_deref(), Some("B2"));
    assert_eq!(book.characters, Some(answer["characters"].clone()));
    assert_eq!(book.chinese_title.as_deref(), Some("呐喊"));
    let quote = store.get_quote(quote).await.unwrap().unwrap();
    assert_eq!(quote.categories, ["hope"]);
    assert_eq!(
        quote.translations.get("zh").map(String::as_str),
        answer["translation"].as_str()
    );
    let quotes: i64 = sqlx::query_scalar("SELECT count(*) FROM quotes")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(quotes, 2);
}

#[sqlx::test]
async fn llm_jobs_fail_permanently_without_a_key_or_their_row(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let (url, hits) = fake_chat_server().await;
    let (author, _, _) = seed(&env).await;
    let _worker = env.spawn_worker(
        &["--queues", "author_data,book_data"],
        &[
            ("CONVEYOR__PROVIDERS__DEEPSEEK__BASE_URL", &url),
            // Blank counts as missing, whatever the test's own environment holds.
            ("DEEPSEEK_API_KEY", ""),
        ],
    );
    let no_key = enqueue(
        &env,
        "author_data",
        "GENERATE_BIO",
        json!({"authorId": author}),
    )
    .await;
    let missing = Uuid::new_v4();
    let no_book = enqueue(
        &env,
        "book_data",
        "GENERATE_SUMMARY",
        json!({"bookId": missing}),
    )
    .await;

    let job = env.wait_status(no_key, JobStatus::Failed, WAIT).await;
    assert_eq!(job.attempts, 1, "permanent: no retry");
    assert!(
        job.error
            .as_deref()
            .unwrap_or_default()
            .contains("DEEPSEEK_API_KEY"),
        "{job:?}"
    );
    let job = env.wait_status(no_book, JobStatus::Failed, WAIT).await;
    assert_eq!(job.attempts, 1, "permanent: no retry");
    assert_eq!(
        job.error.as_deref(),
        Some(format!("book {missing} not found").as_str())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request was sent");
}

// ---------------------------------------------------------------------------------
// Wikidata handlers, against a fake Wikidata and Commons
// ---------------------------------------------------------------------------------

mod fake_wikidata {
    use std::collections::HashMap;

    use axum::extract::{Path, Query};
    use axum::http::{header, StatusCode};
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::get;
    use axum::Json;
    use serde_json::{json, Value};

    pub(crate) const PORTRAIT: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00 a pretend JPEG \xFF\xD9";

    /// Serves Wikidata's search, labels and entity data, and Commons' files.
    pub(crate) async fn start() -> String {
        let app = axum::Router::new()
            .route("/w/api.php", get(api))
            .route("/wiki/Special:EntityData/{file}", get(entity_data))
            .route(
                "/wiki/Special:FilePath/{file}",
                get(|| async { Redirect::to("/img/portrait") }),
            )
            .route("/img/{name}", get(image));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    async fn api(Query(params): Query<HashMap<String, String>>) -> Response {
        let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
        match param("action") {
            "wbsearchentities" => {
                let ids: &[&str] = if param("search") == "Lu Xun" {
                    &["Q23114"]
                } else {
                    &[]
                };
                let hits: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"id": id, "title": id, "label": param("search")}))
                    .collect();
                Json(json!({"searchinfo": {"search": param("search")}, "search": hits, "success": 1}))
                    .into_response()
            }
            "wbgetentities" => {
                let entities: serde_json::Map<String, Value> = param("ids")
                    .split('|')
                    .map(|id| {
                        let label = match id {
                            "Q148" => "People's Republic of China",
                            "Q36180" => "writer",
                            _ => "essayist",
                        };
                        (
                            id.to_string(),
                            json!({"type": "item", "id": id,
                            "labels": {"en": {"language": "en", "value": label}}}),
                        )
                    })
                    .collect();
                Json(json!({"entities": entities, "success": 1})).into_response()
            }
            _ => StatusCode::BAD_REQUEST.into_response(),
        }
    }

    fn statement(property: &str, datatype: &str, value: Value, value_type: &str) -> Value {
        json!({"mainsnak": {"snaktype": "value", "property": property, "datatype": datatype,
                            "datavalue": {"value": value, "type": value_type}},
               "type": "statement", "rank": "normal"})
    }

    fn item(property: &str, id: &str) -> Value {
        let numeric: u64 = id[1..].parse().unwrap();
        statement(
            property,
            "wikibase-item",
            json!({"entity-type": "item", "numeric-id": numeric, "id": id}),
            "wikibase-entityid",
        )
    }

    fn time(property: &str, time: &str, precision: u8) -> Value {
        statement(
            property,
            "time",
            json!({"time": time, "timezone": 0, "before": 0, "after": 0,
            "precision": precision, "calendarmodel": "http://www.wikidata.org/entity/Q1985727"}),
            "time",
        )
    }

    async fn entity_data(Path(file): Path<String>) -> Response {
        if file != "Q23114.json" {
            return StatusCode::NOT_FOUND.into_response();
        }
        let claims = json!({
            "P31": [item("P31", "Q5")],
            "P569": [time("P569", "+1881-09-25T00:00:00Z", 11)],
            "P570": [time("P570", "+1936-10-00T00:00:00Z", 10)],
            "P27": [item("P27", "Q148")],
            "P106": [item("P106", "Q36180"), item("P106", "Q4964182")],
            "P18": [statement("P18", "commonsMedia", json!("Lu Xun 1930.jpg"), "string")],
        });
        Json(json!({"entities": {"Q23114": {
            "type": "item", "id": "Q23114",
            "labels": {"en": {"language": "en", "value": "Lu Xun"}},
            "descriptions": {"en": {"language": "en", "value": "Chinese writer (1881–1936)"}},
            "claims": claims,
        }}}))
        .into_response()
    }

    async fn image(Path(name): Path<String>) -> Response {
        match name.as_str() {
            "portrait" => ([(header::CONTENT_TYPE, "image/jpeg")], PORTRAIT).into_response(),
            "large" => ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 5000]).into_response(),
            "page" => ([(header::CONTENT_TYPE, "text/html")], "<html></html>").into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

#[sqlx::test]
async fn wikidata_handlers_enrich_the_author_and_save_the_portrait(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let url = fake_wikidata::start().await;
    let avatars = std::env::temp_dir().join(format!("conveyor-avatars-{}", Uuid::new_v4()));
    let store = env.conveyor.store();
    let lu_xun = store.create_author("Lu Xun", None).await.unwrap().id;
    let nobody = store
        .create_author("Nobody Anyone Knows", None)
        .await
        .unwrap()
        .id;
    let with_image = |qid: &str, image: &str| queue_core::store::AuthorEnrichment {
        wikidata_id: qid.into(),
        image_url: Some(format!("{url}/img/{image}")),
        ..Default::default()
    };
    let large = store
        .create_author("Large Portrait", None)
        .await
        .unwrap()
        .id;
    store
        .enrich_author(large, &with_image("Q901", "large"))
        .await
        .unwrap();
    let page = store.create_author("Not A Picture", None).await.unwrap().id;
    store
        .enrich_author(page, &with_image("Q902", "page"))
        .await
        .unwrap();

    let avatar_dir = avatars.to_string_lossy().into_owned();
    let _worker = env.spawn_worker(
        &["--queues", "author_data"],
        &[
            ("CONVEYOR__WIKIDATA__BASE_URL", &url),
            ("CONVEYOR__WIKIDATA__COMMONS_BASE_URL", &url),
            ("CONVEYOR__STORAGE__AVATAR_DIR", &avatar_dir),
            ("CONVEYOR__STORAGE__AVATAR_MAX_BYTES", "1000"),
        ],
    );
    let enrich = enqueue(
        &env,
        "author_data",
        "ENRICH_FROM_WIKIDATA",
        json!({"authorId": lu_xun}),
    )
    .await;
    let job = env.wait_status(enrich, JobStatus::Completed, WAIT).await;
    let image_url = format!("{url}/wiki/Special:FilePath/Lu_Xun_1930.jpg");
    assert_eq!(
        job.result,
        Some(json!({
            "wikidataId": "Q23114",
            "birthDate": "1881-09-25",
            "deathDate": "1936-10",
            "countries": ["People's Republic of China"],
            "occupations": ["writer", "essayist"],
            "description": "Chinese writer (1881–1936)",
            "imageUrl": image_url,
        }))
    );
    let author = store.get_author(lu_xun).await.unwrap().unwrap();
    assert_eq!(author.wikidata_id.as_deref(), Some("Q23114"));
    assert_eq!(author.birth_date.as_deref(), Some("1881-09-25"));
    assert_eq!(author.occupations, ["writer", "essayist"]);
    assert_eq!(author.image_url.as_deref(), Some(image_url.as_str()));

    let fetch = enqueue(
        &env,
        "author_data",
        "FETCH_AVATAR",
        json!({"authorId": lu_xun}),
    )
    .await;
    let job = env.wait_status(fetch, JobStatus::Completed, WAIT).await;
    let result = job.result.expect("a result");
    assert_eq!(result["contentType"], "image/jpeg");
    assert_eq!(result["bytes"], fake_wikidata::PORTRAIT.len());
    let saved = std::path::PathBuf::from(result["avatarPath"].as_str().unwrap());
    assert!(saved.starts_with(&avatars), "{saved:?}");
    assert_eq!(std::fs::read(&saved).unwrap(), fake_wikidata::PORTRAIT);
    let author = store.get_author(lu_xun).await.unwrap().unwrap();
    assert_eq!(author.avatar_path.as_deref(), result["avatarPath"].as_str());

    // Permanent failures: no human of that name, an image over the limit, not an image.
    let cases = [
        ("ENRICH_FROM_WIKIDATA", nobody, "Nobody Anyone Knows"),
        ("FETCH_AVATAR", large, "larger than the limit of 1000 bytes"),
        ("FETCH_AVATAR", page, "is not an image"),
    ];
    for (job_type, author, says) in cases {
        let id = enqueue(&env, "author_data", job_type, json!({"authorId": author})).await;
        let job = env.wait_status(id, JobStatus::Failed, WAIT).await;
        assert_eq!(job.attempts, 1, "{job_type}: permanent");
        let error = job.error.unwrap_or_default();
        assert!(error.contains(says), "{job_type}: {error}");
    }
    let files: Vec<_> = std::fs::read_dir(&avatars).unwrap().collect();
    assert_eq!(files.len(), 1, "only the good portrait is kept: {files:?}");
    let _ = std::fs::remove_dir_all(&avatars);
}

// ---------------------------------------------------------------------------------
// PROCESS_EPUB, on a book written by the test
// ---------------------------------------------------------------------------------

/// A two-chapter EPUB 3 by Lu Xun: a stored `mimetype` first, then the rest deflated.
fn small_epub() -> Vec<u8> {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    let container = r#"<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OPS/package.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"#;
    let opf = r#"<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:test:call-to-arms</dc:identifier>
    <dc:title>Call to Arms</dc:title>
    <dc:creator>Lu Xun</dc:creator>
    <dc:language>en</dc:language>
  </metadata>
  <manifest>
    <item id="c1" href="one.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="two.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine><itemref idref="c1"/><itemref idref="c2"/></spine>
</package>"#;
    let chapter = |title: &str, text: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>"#
        )
    };
    let one = chapter("A Madman's Diary", "Tonight the moon is very bright.");
    let two = chapter(
        "Kong Yiji",
        "The wine shops in Luzhen are not like those elsewhere.",
    );
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/epub+zip").unwrap();
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in [
        ("META-INF/container.xml", container.as_bytes()),
        ("OPS/package.opf", opf.as_bytes()),
        ("OPS/one.xhtml", one.as_bytes()),
        ("OPS/two.xhtml", two.as_bytes()),
    ] {
        zip.start_file(name, deflated).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[sqlx::test]
async fn process_epub_records_the_book_once_and_enqueues_its_follow_ups(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let epub_dir = std::env::temp_dir().join(format!("conveyor-epub-{}", Uuid::new_v4()));
    std::fs::create_dir_all(epub_dir.join("shelf")).unwrap();
    std::fs::write(epub_dir.join("shelf/call.epub"), small_epub()).unwrap();
    let dir = epub_dir.to_string_lossy().into_owned();
    // Only book_data: the follow-ups are checked as records, not run.
    let _worker = env.spawn_worker(
        &["--queues", "book_data"],
        &[("CONVEYOR__STORAGE__EPUB_DIR", &dir)],
    );
    let payload = json!({"path": "shelf/call.epub", "then": ["EXTRACT_QUOTES", "GENERATE_CEFR", "EXTRACT_QUOTES"]});
    let first = enqueue(&env, "book_data", "PROCESS_EPUB", payload.clone()).await;
    let first = env.wait_status(first, JobStatus::Completed, WAIT).await;
    let result = first.result.expect("a result");
    let store = env.conveyor.store();
    let book_id: Uuid = serde_json::from_value(result["bookId"].clone()).unwrap();
    let book = store.get_book(book_id).await.unwrap().expect("the book");
    assert_eq!(
        result,
        json!({
            "bookId": book_id,
            "authorId": book.author_id,
            "title": "Call to Arms",
            "language": "en",
            "chapterCount": 2,
            "wordCount": book.word_count,
            "followUps": result["followUps"],
        })
    );
    assert!(book.word_count > 10, "{book:?}");
    assert_eq!(book.source_path.as_deref(), Some("shelf/call.epub"));
    let author = store
        .get_author(book.author_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(author.name, "Lu Xun");
    let chapters = store.book_chapters(book_id).await.unwrap();
    assert_eq!(chapters.len(), 2);
    assert!(chapters[1].text.contains("Luzhen"), "{chapters:?}");

    let follow_ups: Vec<Uuid> = serde_json::from_value(result["followUps"].clone()).unwrap();
    assert_eq!(follow_ups.len(), 2, "a type named twice is enqueued once");
    for (id, (queue, job_type)) in follow_ups.iter().zip([
        ("quote_data", "EXTRACT_QUOTES"),
        ("book_data", "GENERATE_CEFR"),
    ]) {
        let job = env.job(*id).await;
        assert_eq!(
            (job.queue_name.as_str(), job.job_type.as_str()),
            (queue, job_type)
        );
        assert_eq!(job.payload, json!({"bookId": book_id}));
    }

    // Importing the same book again updates the same book and author.
    let again = enqueue(&env, "book_data", "PROCESS_EPUB", payload).await;
    let again = env.wait_status(again, JobStatus::Completed, WAIT).await;
    let again = again.result.unwrap();
    assert_eq!(again["bookId"], result["bookId"]);
    assert_eq!(again["authorId"], result["authorId"]);
    for table in ["books", "authors"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&env.pool)
            .await
            .unwrap();
        assert_eq!(n, 1, "one row in {table}");
    }

    // A file that is not there fails at once, naming it.
    let missing = enqueue(
        &env,
        "book_data",
        "PROCESS_EPUB",
        json!({"path": "shelf/none.epub"}),
    )
    .await;
    let job = env.wait_status(missing, JobStatus::Failed, WAIT).await;
    assert_eq!(job.attempts, 1, "permanent");
    assert!(job.error.unwrap_or_default().contains("shelf/none.epub"));
    let _ = std::fs::remove_dir_all(&epub_dir);
}

#[sqlx::test]
async fn a_throttled_provider_retries_the_job_after_its_retry_after(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = axum::Router::new().route(
        "/chat/completions",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, "120")],
                axum::Json(
                    json!({"error": {"message": "Rate limit reached", "type": "rate_limit"}}),
                ),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (author, _, _) = seed(&env).await;
    let _worker = env.spawn_worker(
        &["--queues", "author_data"],
        &[
            ("CONVEYOR__PROVIDERS__DEEPSEEK__BASE_URL", &url),
            ("DEEPSEEK_API_KEY", "test-deepseek"),
        ],
    );
    let id = enqueue(
        &env,
        "author_data",
        "GENERATE_BIO",
        json!({"authorId": author}),
    )
    .await;
    let job = env.wait_status(id, JobStatus::Retrying, WAIT).await;
    let wait = job.run_at - chrono::Utc::now();
    assert!(
        wait > chrono::Duration::seconds(100),
        "waits at least the provider's Retry-After: {wait:?} {job:?}"
    );
    assert!(job.error.unwrap_or_default().contains("rate limited"));
}
