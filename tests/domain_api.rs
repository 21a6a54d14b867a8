//! The domain routes in-process (real router, `oneshot`): creating, listing and
//! reading authors; listing and reading books and quotes the store wrote; unknown
//! and malformed ids; tokens; and the OpenAPI shapes of these routes.

use axum::http::{Method, StatusCode};
use conveyor_tests::domain::{book, count_rows as count, quotes};
use conveyor_tests::http::{ids_of, TestApi, ADMIN, VIEWER};
use conveyor_tests::TestEnv;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

// ---------------------------------------------------------------------------------
// Authors
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn create_author_answers_201_with_its_location_and_reads_back(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let created = api
        .post(
            "/api/admin/authors",
            json!({"name": "  Jane Austen ", "wikidataId": "Q36322"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let author = &created.body;
    let id = author["id"].as_str().expect("id");
    assert_eq!(
        created.location(),
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
    let read = api.get(&format!("/api/admin/authors/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(&read.body, author);

    // wikidataId is optional (null is the same as absent).
    for body in [
        json!({"name": "Anonymous"}),
        json!({"name": "Anon", "wikidataId": null}),
    ] {
        let created = api.post("/api/admin/authors", body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        assert_eq!(created.body["wikidataId"], Value::Null);
    }
    // 500 characters (not bytes) is the longest name.
    let long = "é".repeat(500);
    let created = api
        .post("/api/admin/authors", json!({ "name": long }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(count(&env.pool, "authors").await, 4);
}

#[sqlx::test]
async fn create_author_refuses_bad_input_naming_the_field_and_records_nothing(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
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
        let reply = api.post("/api/admin/authors", body.clone()).await;
        reply.assert_error_naming(StatusCode::BAD_REQUEST, code, &[field]);
    }
    let reply = api
        .send_raw(
            Method::POST,
            "/api/admin/authors",
            Some(ADMIN),
            Some(b"{\"name\": ".to_vec()),
        )
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    let reply = api
        .post("/api/admin/authors?force=1", json!({"name": "A"}))
        .await;
    reply.assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["force"]);
    assert_eq!(count(&env.pool, "authors").await, 0);
}

#[sqlx::test]
async fn a_wikidata_id_taken_by_another_author_is_409(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let first = api
        .post(
            "/api/admin/authors",
            json!({"name": "Douglas Adams", "wikidataId": "Q42"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = api
        .post(
            "/api/admin/authors",
            json!({"name": "D. Adams", "wikidataId": "Q42"}),
        )
        .await;
    again.assert_error_naming(StatusCode::CONFLICT, "conflict", &["wikidataId", "Q42"]);
    assert_eq!(count(&env.pool, "authors").await, 1);
    // Names are not unique: two authors may share one.
    let same_name = api
        .post("/api/admin/authors", json!({"name": "Douglas Adams"}))
        .await;
    assert_eq!(same_name.status, StatusCode::CREATED);
}

#[sqlx::test]
async fn author_list_pages_newest_first_and_checks_its_query(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = api
            .post("/api/admin/authors", json!({"name": format!("A{i}")}))
            .await;
        ids.push(created.id());
    }
    ids.reverse();
    let first = api.get("/api/admin/authors?page=1&limit=2").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(ids_of(&first.body["items"]), ids[..2]);
    assert_eq!(
        (
            &first.body["page"],
            &first.body["limit"],
            &first.body["total"]
        ),
        (&json!(1), &json!(2), &json!(5))
    );
    let last = api.get("/api/admin/authors?page=3&limit=2").await;
    assert_eq!(ids_of(&last.body["items"]), ids[4..]);
    let past = api.get("/api/admin/authors?page=9&limit=2").await;
    assert_eq!(ids_of(&past.body["items"]), Vec::<Uuid>::new());
    assert_eq!(past.body["total"], 5);
    let default = api.get("/api/admin/authors").await;
    assert_eq!(default.body["limit"], 20);
    assert_eq!(ids_of(&default.body["items"]), ids);

    api.get("/api/admin/authors?limit=101")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_field", &["limit"]);
    api.get("/api/admin/authors?page=0")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_field", &["page"]);
    api.get("/api/admin/authors?limit=many")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["limit"]);
    api.get("/api/admin/authors?authorId=1")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["authorId"]);
}

// ---------------------------------------------------------------------------------
// Books and quotes
// ---------------------------------------------------------------------------------

#[sqlx::test]
async fn books_list_filters_by_author_and_reads_one(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
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

    let page = api
        .get(&format!("/api/admin/books?authorId={author}&limit=2"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(page.body["total"], 3);
    let newest: Vec<Uuid> = austen.iter().rev().map(|b| b.book_id).collect();
    assert_eq!(ids_of(&page.body["items"]), newest[..2]);
    let all = api.get("/api/admin/books").await;
    assert_eq!(all.body["total"], 4);
    assert_eq!(all.body["items"][0]["id"], other.book_id.to_string());
    let nobody = api
        .get(&format!("/api/admin/books?authorId={}", Uuid::new_v4()))
        .await;
    assert_eq!(nobody.status, StatusCode::OK);
    assert_eq!(nobody.body["total"], 0);

    let read = api
        .get(&format!("/api/admin/books/{}", other.book_id))
        .await;
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

    api.get("/api/admin/books?authorId=nope")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_field", &["authorId"]);
    api.get("/api/admin/books?bookId=x")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["bookId"]);
    api.get("/api/admin/books?limit=0")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_field", &["limit"]);
}

#[sqlx::test]
async fn quotes_list_filters_by_book_and_reads_one(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
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

    let page = api
        .get(&format!("/api/admin/quotes?bookId={}", first.book_id))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(page.body["total"], 2);
    assert_eq!(
        ids_of(&page.body["items"]),
        [ids[1], ids[0]],
        "newest first"
    );
    let all = api.get("/api/admin/quotes?limit=1&page=2").await;
    assert_eq!(all.body["total"], 3);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);

    let read = api.get(&format!("/api/admin/quotes/{}", ids[0])).await;
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
    api.get("/api/admin/quotes?bookId=12")
        .await
        .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_field", &["bookId"]);
}

#[sqlx::test]
async fn unknown_ids_are_404_and_malformed_ones_400(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
    for kind in ["authors", "books", "quotes"] {
        let id = Uuid::new_v4();
        let singular = kind.trim_end_matches('s');
        api.get(&format!("/api/admin/{kind}/{id}"))
            .await
            .assert_error_naming(
                StatusCode::NOT_FOUND,
                "not_found",
                &[singular, &id.to_string()],
            );
        api.get(&format!("/api/admin/{kind}/not-a-uuid"))
            .await
            .assert_error_naming(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                &["id", "not-a-uuid"],
            );
        api.get(&format!("/api/admin/{kind}/{id}?full=1"))
            .await
            .assert_error_naming(StatusCode::BAD_REQUEST, "invalid_query", &["full"]);
    }
}

#[sqlx::test]
async fn domain_routes_need_a_token_and_viewers_only_read(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let api = TestApi::new(&env);
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
        let anonymous = api.send(Method::GET, path, None, None).await;
        anonymous.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let wrong = api.send(Method::GET, path, Some("nope"), None).await;
        wrong.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        let viewer = api.send(Method::GET, path, Some(VIEWER), None).await;
        assert!(
            viewer.status == StatusCode::OK || viewer.status == StatusCode::NOT_FOUND,
            "{path}: {viewer:?}"
        );
    }
    let body = json!({"name": "Viewer's author"});
    let viewer = api
        .send(
            Method::POST,
            "/api/admin/authors",
            Some(VIEWER),
            Some(body.clone()),
        )
        .await;
    viewer.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let anonymous = api
        .send(Method::POST, "/api/admin/authors", None, Some(body))
        .await;
    anonymous.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(count(&env.pool, "authors").await, 0);
    // Only GET and POST are served on the collection.
    let delete = api
        .send(Method::DELETE, "/api/admin/authors", Some(ADMIN), None)
        .await;
    delete.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[sqlx::test]
async fn the_openapi_document_describes_the_domain_shapes(pool: PgPool) {
    let env = TestEnv::new(pool).await;
    let doc = TestApi::new(&env).get_as(None, "/openapi.json").await.body;
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
