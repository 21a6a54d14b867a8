//! The domain tables and their admin routes. Route tests build the real router on
//! the test's own database and call it with `oneshot`; store tests call the writers
//! the domain handlers use and count rows in PostgreSQL, proving that running each
//! writer twice (or at once from several tasks) leaves one row.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use conveyor_api::{AppState, Auth};
use conveyor_tests::TestEnv;
use http_body_util::BodyExt;
use queue_core::store::{
    AuthorEnrichment, CefrLevel, DomainError, NewBook, NewChapter, NewQuote, Store,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

const ADMIN: &str = "a";
const VIEWER: &str = "v";

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn app(env: &TestEnv) -> Router {
    conveyor_api::router(AppState::new(
        env.conveyor.clone(),
        Auth::Tokens {
            admin: vec![ADMIN.into()],
            viewer: vec![VIEWER.into()],
        },
    ))
}

/// One answer: status, `Location` header and JSON body (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    location: Option<String>,
    body: Value,
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(text) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(text.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(req.body(body).expect("request builds"))
        .await
        .expect("the router is infallible");
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().expect("ascii location").to_string());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply {
        status,
        location,
        body,
    }
}

async fn get(app: &Router, path: &str) -> Reply {
    call(app, Method::GET, path, Some(ADMIN), None).await
}

async fn post(app: &Router, path: &str, body: Value) -> Reply {
    let text = body.to_string();
    call(app, Method::POST, path, Some(ADMIN), Some(&text)).await
}

/// Checks an error answer: status, code, and that the message names `mentions`.
#[track_caller]
fn assert_error(reply: &Reply, status: StatusCode, code: &str, mentions: &[&str]) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.body["error"]["code"], code, "{reply:?}");
    let message = reply.body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {reply:?}"));
    for m in mentions {
        assert!(
            message.contains(m),
            "message {message:?} does not mention {m:?}"
        );
    }
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .expect("count")
}

fn ids_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|row| row["id"].as_str().expect("id").to_string())
        .collect()
}

fn book(identifier: &str, author: Option<&str>, chapters: &[&str]) -> NewBook {
    NewBook {
        identifier: identifier.into(),
        title: format!("Title of {identifier}"),
        author: author.map(str::to_string),
        language: Some("en".into()),
        source_path: Some(format!("{identifier}.epub")),
        chapters: chapters
            .iter()
            .enumerate()
            .map(|(i, text)| NewChapter::new(Some(format!("Chapter {}", i + 1)), text.to_string()))
            .collect(),
    }
}

fn quotes(texts: &[&str]) -> Vec<NewQuote> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| NewQuote {
            text: t.to_string(),
            chapter: Some(i as i32),
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Routes: authors
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn create_author_answers_201_with_its_location_and_reads_back(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let created = post(
        &app,
        "/api/admin/authors",
        json!({"name": "  Jane Austen ", "wikidataId": "Q36322"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let author = &created.body;
    let id = author["id"].as_str().expect("id");
    assert_eq!(
        created.location.as_deref(),
        Some(format!("/api/admin/authors/{id}").as_str())
    );
    assert_eq!(author["name"], "Jane Austen", "surrounding blanks dropped");
    assert_eq!(author["wikidataId"], "Q36322");
    assert_eq!(author["countries"], json!([]));
    assert_eq!(author["occupations"], json!([]));
    let mut keys: Vec<&str> = author
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "avatarPath",
            "bio",
            "birthDate",
            "countries",
            "createdAt",
            "deathDate",
            "description",
            "id",
            "imageUrl",
            "name",
            "occupations",
            "persona",
            "timeline",
            "updatedAt",
            "wikidataId"
        ]
    );
    let read = get(&app, &format!("/api/admin/authors/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(&read.body, author);

    // wikidataId is optional (null is the same as absent).
    for body in [
        json!({"name": "Anonymous"}),
        json!({"name": "Anon", "wikidataId": null}),
    ] {
        let created = post(&app, "/api/admin/authors", body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        assert_eq!(created.body["wikidataId"], Value::Null);
    }
    // 500 characters (not bytes) is the longest name.
    let long = "é".repeat(500);
    let created = post(&app, "/api/admin/authors", json!({ "name": long })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(count(&env.pool, "authors").await, 4);
}

#[sqlx::test]
async fn create_author_refuses_bad_input_naming_the_field_and_records_nothing(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "invalid_body", "name"),
        (json!({"name": ""}), "invalid_field", "name"),
        (json!({"name": "   "}), "invalid_field", "name"),
        (json!({"name": "x".repeat(501)}), "invalid_field", "name"),
        (json!({"name": "a\u{0}b"}), "invalid_field", "name"),
        (json!({"name": 7}), "invalid_field", "name"),
        (
            json!({"name": "A", "wikidataId": "42"}),
            "invalid_field",
            "wikidataId",
        ),
        (
            json!({"name": "A", "wikidataId": "Q0"}),
            "invalid_field",
            "wikidataId",
        ),
        (
            json!({"name": "A", "wikidataId": "Q042"}),
            "invalid_field",
            "wikidataId",
        ),
        (
            json!({"name": "A", "wikidataId": "q42"}),
            "invalid_field",
            "wikidataId",
        ),
        (
            json!({"name": "A", "wikidataId": "Q42 "}),
            "invalid_field",
            "wikidataId",
        ),
        (
            json!({"name": "A", "wikidataId": "P31"}),
            "invalid_field",
            "wikidataId",
        ),
        (
            json!({"name": "A", "wikidataId": 42}),
            "invalid_field",
            "wikidataId",
        ),
        (
            json!({"name": "A", "nickname": "B"}),
            "invalid_field",
            "nickname",
        ),
    ];
    for (body, code, field) in cases {
        let reply = post(&app, "/api/admin/authors", body.clone()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code, &[field]);
    }
    let reply = call(
        &app,
        Method::POST,
        "/api/admin/authors",
        Some(ADMIN),
        Some("{\"name\": "),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_json", &[]);
    let reply = post(&app, "/api/admin/authors?force=1", json!({"name": "A"})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_query", &["force"]);
    assert_eq!(count(&env.pool, "authors").await, 0);
}

#[sqlx::test]
async fn a_wikidata_id_taken_by_another_author_is_409(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let first = post(
        &app,
        "/api/admin/authors",
        json!({"name": "Douglas Adams", "wikidataId": "Q42"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = post(
        &app,
        "/api/admin/authors",
        json!({"name": "D. Adams", "wikidataId": "Q42"}),
    )
    .await;
    assert_error(
        &again,
        StatusCode::CONFLICT,
        "conflict",
        &["wikidataId", "Q42"],
    );
    assert_eq!(count(&env.pool, "authors").await, 1);
    // Names are not unique: two authors may share one.
    let same_name = post(&app, "/api/admin/authors", json!({"name": "Douglas Adams"})).await;
    assert_eq!(same_name.status, StatusCode::CREATED);
}

#[sqlx::test]
async fn author_list_pages_newest_first_and_checks_its_query(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = post(&app, "/api/admin/authors", json!({"name": format!("A{i}")})).await;
        ids.push(created.body["id"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let first = get(&app, "/api/admin/authors?page=1&limit=2").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(ids_of(&first.body), ids[..2]);
    assert_eq!(
        (
            &first.body["page"],
            &first.body["limit"],
            &first.body["total"]
        ),
        (&json!(1), &json!(2), &json!(5))
    );
    let last = get(&app, "/api/admin/authors?page=3&limit=2").await;
    assert_eq!(ids_of(&last.body), ids[4..]);
    let past = get(&app, "/api/admin/authors?page=9&limit=2").await;
    assert_eq!(ids_of(&past.body), Vec::<String>::new());
    assert_eq!(past.body["total"], 5);
    let default = get(&app, "/api/admin/authors").await;
    assert_eq!(default.body["limit"], 20);
    assert_eq!(ids_of(&default.body), ids);

    assert_error(
        &get(&app, "/api/admin/authors?limit=101").await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["limit"],
    );
    assert_error(
        &get(&app, "/api/admin/authors?page=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["page"],
    );
    assert_error(
        &get(&app, "/api/admin/authors?limit=many").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        &["limit"],
    );
    assert_error(
        &get(&app, "/api/admin/authors?authorId=1").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        &["authorId"],
    );
}

// ---------------------------------------------------------------------------------
// Routes: books and quotes
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn books_list_filters_by_author_and_reads_one(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let store = env.conveyor.store();
    let mut austen = Vec::new();
    for n in 0..3 {
        let b = store
            .upsert_book(&book(
                &format!("austen-{n}"),
                Some("Jane Austen"),
                &["a b c"],
            ))
            .await
            .unwrap();
        austen.push(b);
    }
    let other = store
        .upsert_book(&book(
            "dickens-1",
            Some("Charles Dickens"),
            &["one", "two words"],
        ))
        .await
        .unwrap();
    let author = austen[0].author_id.expect("author");
    assert!(austen.iter().all(|b| b.author_id == Some(author)));

    let page = get(&app, &format!("/api/admin/books?authorId={author}&limit=2")).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(page.body["total"], 3);
    let newest: Vec<String> = austen.iter().rev().map(|b| b.book_id.to_string()).collect();
    assert_eq!(ids_of(&page.body), newest[..2]);
    let all = get(&app, "/api/admin/books").await;
    assert_eq!(all.body["total"], 4);
    assert_eq!(all.body["items"][0]["id"], other.book_id.to_string());
    let nobody = get(
        &app,
        &format!("/api/admin/books?authorId={}", Uuid::new_v4()),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::OK);
    assert_eq!(nobody.body["total"], 0);

    let read = get(&app, &format!("/api/admin/books/{}", other.book_id)).await;
    assert_eq!(read.status, StatusCode::OK);
    let b = &read.body;
    assert_eq!(b["title"], "Title of dickens-1");
    assert_eq!(b["authorId"], other.author_id.unwrap().to_string());
    assert_eq!(b["language"], "en");
    assert_eq!(b["chapterCount"], 2);
    assert_eq!(b["wordCount"], 3);
    assert_eq!(b["sourcePath"], "dickens-1.epub");
    for key in ["summary", "cefrLevel", "characters", "chineseTitle"] {
        assert_eq!(b[key], Value::Null, "{key}");
    }
    assert!(b["createdAt"].is_string() && b["updatedAt"].is_string());
    assert_eq!(b.as_object().unwrap().len(), 13, "{b}");

    assert_error(
        &get(&app, "/api/admin/books?authorId=nope").await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["authorId"],
    );
    assert_error(
        &get(&app, "/api/admin/books?bookId=x").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
        &["bookId"],
    );
    assert_error(
        &get(&app, "/api/admin/books?limit=0").await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["limit"],
    );
}

#[sqlx::test]
async fn quotes_list_filters_by_book_and_reads_one(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let store = env.conveyor.store();
    let first = store.upsert_book(&book("b1", None, &["x"])).await.unwrap();
    let second = store.upsert_book(&book("b2", None, &["y"])).await.unwrap();
    let ids = store
        .insert_quotes(first.book_id, &quotes(&["To be.", "Or not."]))
        .await
        .unwrap();
    store
        .insert_quotes(second.book_id, &quotes(&["Elsewhere."]))
        .await
        .unwrap();
    store
        .set_quote_translation(ids[0], "zh", "生存。")
        .await
        .unwrap();
    store
        .set_quote_categories(ids[0], &["life".into()])
        .await
        .unwrap();

    let page = get(&app, &format!("/api/admin/quotes?bookId={}", first.book_id)).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(page.body["total"], 2);
    assert_eq!(
        ids_of(&page.body),
        [ids[1].to_string(), ids[0].to_string()],
        "newest first"
    );
    let all = get(&app, "/api/admin/quotes?limit=1&page=2").await;
    assert_eq!(all.body["total"], 3);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);

    let read = get(&app, &format!("/api/admin/quotes/{}", ids[0])).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.body,
        json!({
            "id": ids[0].to_string(),
            "bookId": first.book_id.to_string(),
            "text": "To be.",
            "chapter": 0,
            "categories": ["life"],
            "translations": {"zh": "生存。"},
        })
    );
    assert_error(
        &get(&app, "/api/admin/quotes?bookId=12").await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
        &["bookId"],
    );
}

#[sqlx::test]
async fn unknown_ids_are_404_and_malformed_ones_400(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    for kind in ["authors", "books", "quotes"] {
        let id = Uuid::new_v4();
        let singular = kind.trim_end_matches('s');
        assert_error(
            &get(&app, &format!("/api/admin/{kind}/{id}")).await,
            StatusCode::NOT_FOUND,
            "not_found",
            &[singular, &id.to_string()],
        );
        assert_error(
            &get(&app, &format!("/api/admin/{kind}/not-a-uuid")).await,
            StatusCode::BAD_REQUEST,
            "invalid_field",
            &["id", "not-a-uuid"],
        );
        assert_error(
            &get(&app, &format!("/api/admin/{kind}/{id}?full=1")).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            &["full"],
        );
    }
}

#[sqlx::test]
async fn domain_routes_need_a_token_and_viewers_only_read(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let app = app(&env);
    let id = Uuid::new_v4();
    let reads = [
        "/api/admin/authors".to_string(),
        format!("/api/admin/authors/{id}"),
        "/api/admin/books".to_string(),
        format!("/api/admin/books/{id}"),
        "/api/admin/quotes".to_string(),
        format!("/api/admin/quotes/{id}"),
    ];
    for path in &reads {
        let anonymous = call(&app, Method::GET, path, None, None).await;
        assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
        let wrong = call(&app, Method::GET, path, Some("nope"), None).await;
        assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
        let viewer = call(&app, Method::GET, path, Some(VIEWER), None).await;
        assert!(
            viewer.status == StatusCode::OK || viewer.status == StatusCode::NOT_FOUND,
            "{path}: {viewer:?}"
        );
    }
    let body = json!({"name": "Viewer's author"}).to_string();
    let viewer = call(
        &app,
        Method::POST,
        "/api/admin/authors",
        Some(VIEWER),
        Some(&body),
    )
    .await;
    assert_error(&viewer, StatusCode::FORBIDDEN, "forbidden", &[]);
    let anonymous = call(&app, Method::POST, "/api/admin/authors", None, Some(&body)).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized", &[]);
    assert_eq!(count(&env.pool, "authors").await, 0);
    // Only GET and POST are served on the collection.
    let delete = call(
        &app,
        Method::DELETE,
        "/api/admin/authors",
        Some(ADMIN),
        None,
    )
    .await;
    assert_error(
        &delete,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &[],
    );
}

#[sqlx::test]
async fn the_openapi_document_describes_the_domain_shapes(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let doc = call(&app(&env), Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateAuthor"];
    assert_eq!(create["required"], json!(["name"]));
    assert_eq!(create["properties"]["name"]["maxLength"], 500);
    assert_eq!(
        create["properties"]["wikidataId"]["pattern"],
        "^Q[1-9][0-9]*$"
    );
    for (schema, fields) in [("Author", 15), ("Book", 13), ("Quote", 6)] {
        let props = schemas[schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} is not documented"));
        assert_eq!(props.len(), fields, "{schema}: {props:?}");
    }
    let books = &doc["paths"]["/api/admin/books"]["get"]["parameters"];
    assert!(
        books
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "authorId" && p["in"] == "query"),
        "{books}"
    );
    let created = &doc["paths"]["/api/admin/authors"]["post"]["responses"];
    for code in ["201", "400", "401", "403", "409"] {
        assert!(created.get(code).is_some(), "POST /authors lacks {code}");
    }
    // A created author links to its read, so fuzzers reach the id route.
    assert_eq!(
        created["201"]["links"]["GetAuthor"]["operationId"],
        "getAuthor"
    );
}

// ---------------------------------------------------------------------------------
// Store writers: twice leaves one row
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn upsert_author_twice_answers_the_same_author(pool: PgPool) {
    let store = Store::new(pool.clone());
    let by_name = store.upsert_author("Leo Tolstoy", None).await.unwrap();
    let again = store.upsert_author("Leo Tolstoy", None).await.unwrap();
    assert_eq!(again.id, by_name.id);
    assert_eq!(count(&pool, "authors").await, 1);

    // A Wikidata id given later is adopted by the author of that name ...
    let with_id = store
        .upsert_author("Leo Tolstoy", Some("Q7243"))
        .await
        .unwrap();
    assert_eq!(with_id.id, by_name.id);
    assert_eq!(with_id.wikidata_id.as_deref(), Some("Q7243"));
    // ... and the id then finds them under any name.
    let other_name = store
        .upsert_author("Lev Tolstoy", Some("Q7243"))
        .await
        .unwrap();
    assert_eq!(other_name.id, by_name.id);
    assert_eq!(other_name.name, "Leo Tolstoy");
    assert_eq!(count(&pool, "authors").await, 1);

    // A new id and a new name: a new author, once.
    let a = store
        .upsert_author("Anton Chekhov", Some("Q5685"))
        .await
        .unwrap();
    let b = store
        .upsert_author("Anton Chekhov", Some("Q5685"))
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(count(&pool, "authors").await, 2);

    let bad = store.upsert_author("X", Some("Q0")).await.unwrap_err();
    assert!(
        matches!(&bad, DomainError::Invalid { field, .. } if field == "wikidataId"),
        "{bad:?}"
    );
    let bad = store.upsert_author(" ", None).await.unwrap_err();
    assert!(matches!(bad, DomainError::Invalid { .. }), "{bad:?}");
}

#[sqlx::test]
async fn upserting_one_new_author_from_many_tasks_at_once_makes_one_row(pool: PgPool) {
    let store = Store::new(pool.clone());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.upsert_author("Mary Shelley", None).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&pool, "authors").await, 1);
}

#[sqlx::test]
async fn author_setters_twice_leave_one_row_and_name_a_missing_author(pool: PgPool) {
    let store = Store::new(pool.clone());
    let author = store.create_author("Homer", None).await.unwrap();
    let found = AuthorEnrichment {
        wikidata_id: "Q6691".into(),
        birth_date: Some("-0800".into()),
        death_date: Some("-0701".into()),
        countries: vec!["Ancient Greece".into()],
        occupations: vec!["poet".into(), "writer".into()],
        description: Some("ancient Greek epic poet".into()),
        image_url: Some("https://commons.example/wiki/Special:FilePath/Homer.jpg".into()),
    };
    let once = store.enrich_author(author.id, &found).await.unwrap();
    let twice = store.enrich_author(author.id, &found).await.unwrap();
    assert_eq!(once.wikidata_id.as_deref(), Some("Q6691"));
    assert_eq!(twice.birth_date.as_deref(), Some("-0800"));
    assert_eq!(twice.occupations, ["poet", "writer"]);
    assert_eq!(
        (twice.countries.clone(), twice.image_url.clone()),
        (once.countries.clone(), once.image_url.clone())
    );

    let persona = json!({"persona": "a blind bard", "traits": ["oral", "epic"]});
    let timeline = json!([{"year": -750, "event": "the Iliad"}]);
    for _ in 0..2 {
        store
            .set_author_bio(author.id, "Poet of the Iliad.")
            .await
            .unwrap();
        store.set_author_persona(author.id, &persona).await.unwrap();
        store
            .set_author_timeline(author.id, &timeline)
            .await
            .unwrap();
        store
            .set_author_avatar(author.id, "avatars/homer.jpg")
            .await
            .unwrap();
    }
    let read = store.get_author(author.id).await.unwrap().unwrap();
    assert_eq!(read.bio.as_deref(), Some("Poet of the Iliad."));
    assert_eq!(read.persona, Some(persona));
    assert_eq!(read.timeline, Some(timeline));
    assert_eq!(read.avatar_path.as_deref(), Some("avatars/homer.jpg"));
    assert_eq!(count(&pool, "authors").await, 1);

    // Another author cannot take the same Wikidata id.
    let other = store.create_author("Homer (2)", None).await.unwrap();
    let taken = store.enrich_author(other.id, &found).await.unwrap_err();
    assert!(
        matches!(&taken, DomainError::WikidataIdTaken { wikidata_id } if wikidata_id == "Q6691"),
        "{taken:?}"
    );
    let taken = store
        .create_author("Homer (3)", Some("Q6691"))
        .await
        .unwrap_err();
    assert!(
        matches!(taken, DomainError::WikidataIdTaken { .. }),
        "{taken:?}"
    );

    // A missing author is named by kind and id.
    let missing = Uuid::new_v4();
    for e in [
        store.set_author_bio(missing, "x").await.unwrap_err(),
        store.enrich_author(missing, &found).await.unwrap_err(),
        store
            .set_author_persona(missing, &json!({}))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.to_string(), format!("author {missing} not found"));
    }
    // Text PostgreSQL cannot hold is refused naming the field, not a database error.
    let e = store.set_author_bio(author.id, "a\0b").await.unwrap_err();
    assert!(
        matches!(&e, DomainError::Invalid { field, .. } if field == "bio"),
        "{e:?}"
    );
}

#[sqlx::test]
async fn importing_a_book_twice_updates_the_same_book_and_author(pool: PgPool) {
    let store = Store::new(pool.clone());
    let first = store
        .upsert_book(&book(
            "urn:isbn:1",
            Some("Jane Austen"),
            &["It is a truth", "universally acknowledged"],
        ))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!((first.chapter_count, first.word_count), (2, 6));
    store
        .set_book_summary(first.book_id, "Marriage plots.")
        .await
        .unwrap();

    let mut changed = book(
        "urn:isbn:1",
        Some("Jane Austen"),
        &["one", "two", "three four"],
    );
    changed.title = "Pride and Prejudice".into();
    let second = store.upsert_book(&changed).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.book_id, first.book_id);
    assert_eq!(second.author_id, first.author_id);
    assert_eq!((second.chapter_count, second.word_count), (3, 4));
    let third = store.upsert_book(&changed).await.unwrap();
    assert_eq!(third.book_id, first.book_id);

    assert_eq!(count(&pool, "books").await, 1);
    assert_eq!(count(&pool, "authors").await, 1);
    let chapters = store.book_chapters(first.book_id).await.unwrap();
    assert_eq!(
        chapters
            .iter()
            .map(|c| (c.index, c.text.as_str(), c.word_count))
            .collect::<Vec<_>>(),
        [(0, "one", 1), (1, "two", 1), (2, "three four", 2)],
        "the chapters were replaced, not added"
    );
    assert_eq!(chapters[2].title.as_deref(), Some("Chapter 3"));
    let read = store.get_book(first.book_id).await.unwrap().unwrap();
    assert_eq!(read.title, "Pride and Prejudice");
    assert_eq!(read.chapter_count, 3);
    assert_eq!(
        read.summary.as_deref(),
        Some("Marriage plots."),
        "a re-import keeps what the book handlers wrote"
    );

    // A re-import without an author keeps the author it had; a book without one
    // has none.
    let no_author = store
        .upsert_book(&book("urn:isbn:1", None, &["x"]))
        .await
        .unwrap();
    assert_eq!(no_author.author_id, first.author_id);
    let orphan = store
        .upsert_book(&book("path/b.epub", None, &[]))
        .await
        .unwrap();
    assert_eq!(orphan.author_id, None);
    assert_eq!(orphan.chapter_count, 0);
    assert_eq!(count(&pool, "books").await, 2);

    let bad = store.upsert_book(&book("", None, &[])).await.unwrap_err();
    assert!(
        matches!(&bad, DomainError::Invalid { field, .. } if field == "identifier"),
        "{bad:?}"
    );
    let bad = store
        .upsert_book(&book("nul", None, &["a\0b"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, DomainError::Invalid { field, .. } if field == "chapters[0].text"),
        "{bad:?}"
    );
}

#[sqlx::test]
async fn importing_one_book_from_many_tasks_at_once_makes_one_book(pool: PgPool) {
    let store = Store::new(pool.clone());
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .upsert_book(&book("urn:uuid:same", Some("Bram Stoker"), &["a", "b"]))
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let done = task.await.unwrap().unwrap();
        ids.push((done.book_id, done.author_id));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&pool, "books").await, 1);
    assert_eq!(count(&pool, "authors").await, 1);
    assert_eq!(count(&pool, "book_chapters").await, 2);
}

#[sqlx::test]
async fn book_setters_twice_leave_one_row_and_name_a_missing_book(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store.upsert_book(&book("b", None, &["x"])).await.unwrap();
    let characters = json!([{"name": "Elizabeth", "description": "the second daughter"}]);
    for _ in 0..2 {
        store
            .set_book_summary(b.book_id, "A summary.")
            .await
            .unwrap();
        store.set_book_cefr(b.book_id, CefrLevel::B2).await.unwrap();
        store
            .set_book_characters(b.book_id, &characters)
            .await
            .unwrap();
        store
            .set_book_chinese_title(b.book_id, "傲慢与偏见")
            .await
            .unwrap();
    }
    let read = store.get_book(b.book_id).await.unwrap().unwrap();
    assert_eq!(read.summary.as_deref(), Some("A summary."));
    assert_eq!(read.cefr_level.as_deref(), Some("B2"));
    assert_eq!(read.characters, Some(characters));
    assert_eq!(read.chinese_title.as_deref(), Some("傲慢与偏见"));
    assert_eq!(count(&pool, "books").await, 1);

    let missing = Uuid::new_v4();
    for e in [
        store.set_book_summary(missing, "x").await.unwrap_err(),
        store
            .set_book_cefr(missing, CefrLevel::A1)
            .await
            .unwrap_err(),
        store
            .set_book_chinese_title(missing, "x")
            .await
            .unwrap_err(),
        store
            .set_book_characters(missing, &json!([]))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(e, DomainError::NotFound { kind: "book", id } if id == missing),
            "{e:?}"
        );
    }
}

#[sqlx::test]
async fn extracting_quotes_twice_reuses_their_rows(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store.upsert_book(&book("q", None, &["x"])).await.unwrap();
    let first = store
        .insert_quotes(
            b.book_id,
            &quotes(&[
                "Call me Ishmael.",
                "  It was the best of times. ",
                "Call me Ishmael.",
                " ",
            ]),
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 2, "one id per distinct text, blanks skipped");
    assert_eq!(count(&pool, "quotes").await, 2);
    let stored = store.get_quote(first[1]).await.unwrap().unwrap();
    assert_eq!(stored.text, "It was the best of times.", "trimmed");

    // Again, with one new quote between the old ones: old ids reused, in order.
    let second = store
        .insert_quotes(
            b.book_id,
            &quotes(&["It was the best of times.", "New one.", "Call me Ishmael."]),
        )
        .await
        .unwrap();
    assert_eq!(second[0], first[1]);
    assert_eq!(second[2], first[0]);
    assert!(!first.contains(&second[1]));
    assert_eq!(count(&pool, "quotes").await, 3);

    // The same text in another book is another quote.
    let other = store.upsert_book(&book("q2", None, &["x"])).await.unwrap();
    let elsewhere = store
        .insert_quotes(other.book_id, &quotes(&["Call me Ishmael."]))
        .await
        .unwrap();
    assert_ne!(elsewhere[0], first[0]);

    let missing = Uuid::new_v4();
    for input in [quotes(&["x"]), Vec::new()] {
        let e = store.insert_quotes(missing, &input).await.unwrap_err();
        assert_eq!(e.to_string(), format!("book {missing} not found"));
    }
    assert_eq!(
        store.insert_quotes(b.book_id, &[]).await.unwrap(),
        Vec::<Uuid>::new()
    );
}

#[sqlx::test]
async fn extracting_the_same_quotes_from_many_tasks_at_once_makes_one_row_each(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store
        .upsert_book(&book("race", None, &["x"]))
        .await
        .unwrap();
    let texts = ["One.", "Two.", "Three."];
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_quotes(b.book_id, &quotes(&texts)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(answers[0].len(), 3);
    assert_eq!(count(&pool, "quotes").await, 3);
}

#[sqlx::test]
async fn quote_setters_twice_leave_one_row_and_merge_translations(pool: PgPool) {
    let store = Store::new(pool.clone());
    let b = store.upsert_book(&book("t", None, &["x"])).await.unwrap();
    let id = store
        .insert_quotes(b.book_id, &quotes(&["Hope."]))
        .await
        .unwrap()[0];
    let categories = vec!["hope".to_string(), "life".to_string()];
    for _ in 0..2 {
        store.set_quote_categories(id, &categories).await.unwrap();
        store
            .set_quote_translation(id, "zh", "希望。")
            .await
            .unwrap();
    }
    let read = store
        .set_quote_translation(id, "fr", "Espoir.")
        .await
        .unwrap();
    assert_eq!(read.categories, categories);
    assert_eq!(
        serde_json::to_value(&read.translations).unwrap(),
        json!({"zh": "希望。", "fr": "Espoir."})
    );
    // Translating again replaces that language only.
    let read = store
        .set_quote_translation(id, "zh", "盼望。")
        .await
        .unwrap();
    assert_eq!(read.translations.len(), 2);
    assert_eq!(read.translations["zh"], "盼望。");
    assert_eq!(count(&pool, "quotes").await, 1);

    // Parallel translations into different languages are all kept.
    let tasks: Vec<_> = ["de", "es", "it", "ja"]
        .into_iter()
        .map(|lang| {
            let store = store.clone();
            tokio::spawn(async move { store.set_quote_translation(id, lang, lang).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let read = store.get_quote(id).await.unwrap().unwrap();
    assert_eq!(read.translations.len(), 6, "{:?}", read.translations);

    let missing = Uuid::new_v4();
    for e in [
        store.set_quote_categories(missing, &[]).await.unwrap_err(),
        store
            .set_quote_translation(missing, "zh", "x")
            .await
            .unwrap_err(),
    ] {
        assert_eq!(e.to_string(), format!("quote {missing} not found"));
    }
}
