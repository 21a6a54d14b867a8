//! The Wikidata client against a local fake that answers in Wikidata's and Commons'
//! real wire shapes: `wbsearchentities`, `Special:EntityData`, `wbgetentities`
//! labels, MediaWiki's HTTP-200 error envelope (`no-such-entity`, `maxlag`), HTTP
//! redirects, throttling, server errors and image files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use processors::wikidata::{
    AuthorFacts, DownloadError, WikidataClient, WikidataConfig, WikidataError,
};

const AGENT: &str = "Conveyor/0.1 (admin@example.org)";

// ---------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Seen {
    /// `path?query` of every request that passed the User-Agent check.
    requests: Mutex<Vec<String>>,
    /// User-Agents that were refused.
    refused_agents: Mutex<Vec<String>>,
}

struct Fake {
    base_url: String,
    seen: Arc<Seen>,
}

impl Fake {
    async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route("/w/api.php", get(api))
            .route("/wiki/Special:EntityData/{file}", get(entity_data))
            .route("/wiki/Special:FilePath/{file}", get(file_path))
            .route("/img/{name}", get(image))
            .layer(middleware::from_fn_with_state(seen.clone(), check_agent))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base_url: format!("http://{addr}"),
            seen,
        }
    }

    fn config(&self) -> WikidataConfig {
        WikidataConfig {
            base_url: self.base_url.clone(),
            commons_base_url: self.base_url.clone(),
            user_agent: AGENT.to_owned(),
            timeout_ms: 2_000,
        }
    }

    fn client(&self) -> WikidataClient {
        WikidataClient::new(self.config()).unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.seen.requests.lock().unwrap().clone()
    }

    /// Every test ends here: no request may have reached the fake without the agent.
    fn assert_agents_ok(&self) {
        assert!(
            self.seen.refused_agents.lock().unwrap().is_empty(),
            "requests without the configured User-Agent: {:?}",
            self.seen.refused_agents.lock().unwrap()
        );
    }
}

/// Wikimedia refuses clients that do not identify themselves; so does the fake.
async fn check_agent(State(seen): State<Arc<Seen>>, request: Request, next: Next) -> Response {
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if agent != AGENT {
        seen.refused_agents.lock().unwrap().push(agent);
        return (
            StatusCode::FORBIDDEN,
            "Please set a user-agent and respect our robot policy.",
        )
            .into_response();
    }
    let uri = request.uri();
    let line = match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_owned(),
    };
    seen.requests.lock().unwrap().push(line);
    next.run(request).await
}

async fn api(Query(params): Query<HashMap<String, String>>) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    assert_eq!(param("format"), "json");
    match param("action") {
        "wbsearchentities" => {
            assert_eq!(
                (param("language"), param("type")),
                ("en", "item"),
                "search parameters"
            );
            search(param("search"))
        }
        "wbgetentities" => {
            assert_eq!(
                (param("props"), param("languages")),
                ("labels", "en"),
                "labels parameters"
            );
            let ids: Vec<&str> = param("ids").split('|').collect();
            assert!(ids.len() <= 50, "wbgetentities takes at most 50 ids");
            labels(&ids)
        }
        other => panic!("unexpected action {other:?}"),
    }
}

fn search(name: &str) -> Response {
    let ids: &[&str] = match name {
        "Ada Writer" => &["Q42", "Q1001"],
        "Attila the Hun" => &["Q17987270", "Q36724", "Q4818461"],
        "Only Namesakes" => &["Q9001", "Q9002", "Q9003", "Q9004"],
        "Gone Then Found" => &["Q404", "Q36724"],
        "lagging" => return maxlag(None),
        "lagging politely" => return maxlag(Some("17")),
        _ => &[],
    };
    let hits: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "id": id, "title": id, "pageid": 1, "repository": "wikidata",
                "url": format!("//www.wikidata.org/wiki/{id}"),
                "concepturi": format!("http://www.wikidata.org/entity/{id}"),
                "display": {"label": {"value": name, "language": "en"}},
                "label": name,
                "match": {"type": "label", "language": "en", "text": name},
            })
        })
        .collect();
    Json(json!({"searchinfo": {"search": name}, "search": hits, "success": 1})).into_response()
}

/// MediaWiki's replication-lag refusal: HTTP 200, an error envelope, and headers.
fn maxlag(retry_after: Option<&str>) -> Response {
    let body = json!({"error": {
        "code": "maxlag",
        "info": "Waiting for 10.64.48.35: 6.2 seconds lagged.",
        "host": "10.64.48.35", "lag": 6.2, "type": "db",
        "*": "See https://www.wikidata.org/w/api.php for API usage."
    }, "servedby": "mw1432"});
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert("x-database-lag", HeaderValue::from_static("6"));
    headers.insert("mediawiki-api-error", HeaderValue::from_static("maxlag"));
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(seconds).unwrap());
    }
    response
}

fn label_of(id: &str) -> Option<String> {
    let known = match id {
        "Q145" => "United Kingdom",
        "Q30" => "United States",
        "Q16" => "Canada",
        "Q36180" => "writer",
        "Q6625963" => "novelist",
        "Q214917" => "playwright",
        "Q4964182" => "philosopher",
        "Q29" => "Spain",
        _ => {
            // The many-occupations item links to Q10000…Q10059.
            let n: u32 = id.strip_prefix("Q1")?.parse().ok()?;
            return (n < 100).then(|| format!("occupation {n}"));
        }
    };
    Some(known.to_owned())
}

fn labels(ids: &[&str]) -> Response {
    let entities: serde_json::Map<String, Value> = ids
        .iter()
        .map(|id| {
            let entity = match (label_of(id), *id) {
                // An item with labels, but none in English.
                (_, "Q77") => json!({"type": "item", "id": id, "labels": {}}),
                (Some(label), _) => json!({
                    "type": "item", "id": id,
                    "labels": {"en": {"language": "en", "value": label}}
                }),
                (None, _) => json!({"id": id, "missing": ""}),
            };
            (id.to_string(), entity)
        })
        .collect();
    Json(json!({"entities": entities, "success": 1})).into_response()
}

async fn entity_data(UrlPath(file): UrlPath<String>) -> Response {
    let Some(id) = file.strip_suffix(".json") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match id {
        // Merged into Q3571994: the answer is keyed by the target.
        "Q16231742" => entity_response("Q3571994", singer()),
        // Merged too, but told by an HTTP redirect.
        "Q500" => Redirect::to("/wiki/Special:EntityData/Q1001.json").into_response(),
        // Special:EntityData's own answer for an unknown id.
        "Q404" => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html><html><body>Not Found: No entity with ID Q404</body></html>",
        )
            .into_response(),
        // The API's envelope for the same (real shape of wbgetentities' answer).
        "Q400" => Json(json!({
            "servedby": "mw1193",
            "error": {
                "code": "no-such-entity",
                "info": "Could not find such an entity. (Invalid id: Q400)",
                "id": "Q400",
                "messages": [{"name": "wikibase-api-no-such-entity", "parameters": [],
                              "html": {"*": "Could not find such an entity."}}],
                "*": "See https://www.wikidata.org/w/api.php for API usage"
            }
        }))
        .into_response(),
        "Q403" => (StatusCode::FORBIDDEN, "Forbidden").into_response(),
        "Q429" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "30")],
            "Too many requests",
        )
            .into_response(),
        "Q5000" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream connect error").into_response(),
        "Q5030" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "12")],
            "",
        )
            .into_response(),
        "Q408" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            entity_response("Q408", ada())
        }
        "Q200" => (StatusCode::OK, "<html>not json</html>").into_response(),
        _ => match claims_of(id) {
            Some(entity) => entity_response(id, entity),
            None => StatusCode::NOT_FOUND.into_response(),
        },
    }
}

/// The entity under `{"entities": {id: …}}`, with the envelope fields of the real dump.
fn entity_response(id: &str, (description, claims): (Option<&str>, Value)) -> Response {
    let descriptions = match description {
        Some(text) => json!({
            "en": {"language": "en", "value": text},
            "fr": {"language": "fr", "value": "texte en français"}
        }),
        // PHP writes an empty map as a list.
        None => json!([]),
    };
    Json(json!({"entities": {id: {
        "pageid": 138, "ns": 0, "title": id, "lastrevid": 1_424_191_116_u64,
        "modified": "2021-05-29T08:15:14Z", "type": "item", "id": id,
        "labels": {"en": {"language": "en", "value": "Some Name"}},
        "descriptions": descriptions,
        "aliases": {},
        "claims": claims,
        "sitelinks": {"enwiki": {"site": "enwiki", "title": "Some Name", "badges": []}}
    }}}))
    .into_response()
}

fn snak(property: &str, datatype: &str, value: Value, value_type: &str) -> Value {
    json!({"snaktype": "value", "property": property, "hash": "0d2e",
           "datavalue": {"value": value, "type": value_type}, "datatype": datatype})
}

fn statement(mainsnak: Value, rank: &str) -> Value {
    json!({"mainsnak": mainsnak, "type": "statement", "id": "Q$1", "rank": rank,
           "references": [{"hash": "2b36", "snaks": {}, "snaks-order": []}]})
}

fn item(property: &str, id: &str, rank: &str) -> Value {
    let numeric: u64 = id[1..].parse().unwrap();
    let value = json!({"entity-type": "item", "numeric-id": numeric, "id": id});
    statement(
        snak(property, "wikibase-item", value, "wikibase-entityid"),
        rank,
    )
}

fn time(property: &str, time: &str, precision: u8, rank: &str) -> Value {
    let value = json!({"time": time, "timezone": 0, "before": 0, "after": 0,
        "precision": precision, "calendarmodel": "http://www.wikidata.org/entity/Q1985727"});
    statement(snak(property, "time", value, "time"), rank)
}

fn image_file(file: &str) -> Value {
    statement(snak("P18", "commonsMedia", json!(file), "string"), "normal")
}

fn unknown(property: &str) -> Value {
    json!({"mainsnak": {"snaktype": "somevalue", "property": property, "datatype": "time"},
           "type": "statement", "rank": "normal"})
}

fn human() -> Value {
    item("P31", "Q5", "normal")
}

/// A writer: day-precision birth (a preferred statement over an older normal one),
/// no death, two countries and a deprecated third, three occupations and a
/// deprecated fourth, an image whose name needs encoding.
fn ada() -> (Option<&'static str>, Value) {
    let claims = json!({
        "P31": [human()],
        "P569": [time("P569", "+1950-01-01T00:00:00Z", 11, "normal"),
                 time("P569", "+1952-03-11T00:00:00Z", 11, "preferred")],
        "P27": [item("P27", "Q145", "normal"), item("P27", "Q16", "deprecated"),
                item("P27", "Q30", "normal")],
        "P106": [item("P106", "Q6625963", "normal"), item("P106", "Q36180", "normal"),
                 item("P106", "Q4964182", "deprecated"), item("P106", "Q214917", "normal")],
        "P18": [image_file("Ada Writer (portrait), 1990.jpg")],
    });
    (Some("English writer and humorist"), claims)
}

fn claims_of(id: &str) -> Option<(Option<&'static str>, Value)> {
    Some(match id {
        "Q42" => ada(),
        // Month-precision birth, day-precision death, no English description, no image,
        // a country whose item has no English label.
        "Q1001" => (
            None,
            json!({
                "P31": [human()],
                "P569": [time("P569", "+1775-12-00T00:00:00Z", 10, "normal")],
                "P570": [time("P570", "+1817-07-18T00:00:00Z", 11, "normal")],
                "P27": [item("P27", "Q77", "normal"), item("P27", "Q145", "normal")],
                "P106": [item("P106", "Q6625963", "normal")],
            }),
        ),
        // Before the common era, at year precision; the death date is unknown.
        "Q36724" => (
            Some("philosopher"),
            json!({
                "P31": [human()],
                "P569": [time("P569", "-0551-00-00T00:00:00Z", 9, "normal")],
                "P570": [unknown("P570")],
                "P106": [item("P106", "Q4964182", "normal")],
            }),
        ),
        // A disambiguation page and other namesakes that are not people.
        "Q17987270" | "Q9001" => (None, json!({"P31": [item("P31", "Q4167410", "normal")]})),
        "Q4818461" | "Q9002" | "Q9003" => {
            (None, json!({"P31": [item("P31", "Q482994", "normal")]}))
        }
        "Q9004" => (None, json!({"P31": [human()]})),
        // Sixty occupations: more than one labels request can carry.
        "Q777" => {
            let occupations: Vec<Value> = (0..60)
                .map(|n| item("P106", &format!("Q1{n:04}"), "normal"))
                .collect();
            (
                None,
                json!({"P31": [human()], "P106": occupations, "P27": [item("P27", "Q29", "normal")]}),
            )
        }
        _ => return None,
    })
}

fn singer() -> (Option<&'static str>, Value) {
    let claims = json!({
        "P31": [human()],
        "P569": [time("P569", "+1989-12-10T00:00:00Z", 11, "normal")],
        "P27": [item("P27", "Q30", "normal")],
        "P106": [item("P106", "Q36180", "normal")],
    });
    (Some("singer"), claims)
}

/// Commons' Special:FilePath redirects to the file on the upload host.
async fn file_path(UrlPath(file): UrlPath<String>) -> Response {
    assert_eq!(file, "Ada_Writer_(portrait),_1990.jpg", "decoded file name");
    Redirect::to("/img/portrait").into_response()
}

const PORTRAIT: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00 a small, pretend JPEG \xFF\xD9";

async fn image(UrlPath(name): UrlPath<String>) -> Response {
    match name.as_str() {
        "portrait" => ([(header::CONTENT_TYPE, "image/jpeg")], PORTRAIT).into_response(),
        "png" => ([(header::CONTENT_TYPE, "image/png")], vec![7u8; 1000]).into_response(),
        // Content-Length gives the size away before the body is read.
        "declared-large" => {
            ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 5000]).into_response()
        }
        // No Content-Length: 100 MiB in 64 KiB chunks; only counting can stop it.
        "chunked-large" => {
            let chunks = (0..1600).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 65536])));
            let body = Body::from_stream(futures::stream::iter(chunks));
            ([(header::CONTENT_TYPE, "image/png")], body).into_response()
        }
        // A chunked body that stays under the limit is fine.
        "chunked-small" => {
            let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 250])));
            let body = Body::from_stream(futures::stream::iter(chunks));
            ([(header::CONTENT_TYPE, "image/webp")], body).into_response()
        }
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html>File not found on Commons</html>",
        )
            .into_response(),
        "untyped" => Response::new(Body::from(vec![0u8; 10])),
        "unavailable" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "9")],
            "",
        )
            .into_response(),
        // Any other `.png` name is an image too, whatever the path looks like.
        other if other.ends_with(".png") => {
            ([(header::CONTENT_TYPE, "image/png")], vec![3u8; 10]).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("conveyor-wikidata-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

// ---------------------------------------------------------------------------
// Search and entity
// ---------------------------------------------------------------------------

#[tokio::test]
async fn search_then_entity_gives_the_full_facts_of_a_writer() {
    let fake = Fake::start().await;
    let client = fake.client();

    let id = client.search_human("Ada Writer").await.unwrap();
    assert_eq!(id.as_deref(), Some("Q42"));
    let facts = client.entity("Q42").await.unwrap();

    assert_eq!(
        facts,
        AuthorFacts {
            wikidata_id: "Q42".into(),
            birth_date: Some("1952-03-11".into()),
            death_date: None,
            countries: vec!["United Kingdom".into(), "United States".into()],
            occupations: vec!["novelist".into(), "writer".into(), "playwright".into()],
            description: Some("English writer and humorist".into()),
            image_url: Some(format!(
                "{}/wiki/Special:FilePath/Ada_Writer_%28portrait%29%2C_1990.jpg",
                fake.base_url
            )),
        }
    );
    // The job's result keys, camelCase, nulls included.
    let result = serde_json::to_value(&facts).unwrap();
    assert_eq!(result["wikidataId"], "Q42");
    assert_eq!(result["deathDate"], Value::Null);
    assert!(result.get("imageUrl").is_some());

    // One search, the first hit's entity, the entity again, and one labels request
    // for countries and occupations together.
    let requests = fake.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert!(requests[0].starts_with("/w/api.php?action=wbsearchentities&search=Ada+Writer&"));
    assert_eq!(requests[1], "/wiki/Special:EntityData/Q42.json");
    assert_eq!(requests[2], "/wiki/Special:EntityData/Q42.json");
    assert_eq!(
        requests[3],
        "/w/api.php?action=wbgetentities&ids=Q145%7CQ30%7CQ6625963%7CQ36180%7CQ214917\
         &props=labels&languages=en&format=json"
    );
    fake.assert_agents_ok();
}

#[tokio::test]
async fn month_and_day_precision_and_unlabelled_items() {
    let fake = Fake::start().await;
    let facts = fake.client().entity("q1001").await.unwrap();
    assert_eq!(facts.wikidata_id, "Q1001");
    assert_eq!(facts.birth_date.as_deref(), Some("1775-12"));
    assert_eq!(facts.death_date.as_deref(), Some("1817-07-18"));
    // Q77 has no English label, so it is left out rather than shown as an id.
    assert_eq!(facts.countries, ["United Kingdom"]);
    assert_eq!(facts.occupations, ["novelist"]);
    assert_eq!(facts.description, None);
    assert_eq!(facts.image_url, None);
    fake.assert_agents_ok();
}

#[tokio::test]
async fn a_date_before_the_common_era_and_an_unknown_death() {
    let fake = Fake::start().await;
    let facts = fake.client().entity("Q36724").await.unwrap();
    assert_eq!(facts.birth_date.as_deref(), Some("-0551"));
    assert_eq!(facts.death_date, None);
    assert_eq!(facts.countries, Vec::<String>::new());
    assert_eq!(facts.occupations, ["philosopher"]);
    fake.assert_agents_ok();
}

#[tokio::test]
async fn a_search_whose_first_hit_is_not_human_uses_the_first_human() {
    let fake = Fake::start().await;
    let id = fake.client().search_human("Attila the Hun").await.unwrap();
    assert_eq!(id.as_deref(), Some("Q36724"));
    let requests = fake.requests();
    assert_eq!(requests[1], "/wiki/Special:EntityData/Q17987270.json");
    assert_eq!(requests[2], "/wiki/Special:EntityData/Q36724.json");
    // The third hit is never looked at once a human is found.
    assert_eq!(requests.len(), 3, "{requests:#?}");
    fake.assert_agents_ok();
}

#[tokio::test]
async fn a_hit_deleted_since_indexing_is_passed_over() {
    let fake = Fake::start().await;
    let id = fake.client().search_human("Gone Then Found").await.unwrap();
    assert_eq!(id.as_deref(), Some("Q36724"));
    fake.assert_agents_ok();
}

#[tokio::test]
async fn the_human_check_is_bounded_to_the_first_three_hits() {
    let fake = Fake::start().await;
    let id = fake.client().search_human("Only Namesakes").await.unwrap();
    assert_eq!(id, None);
    let requests = fake.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert!(!requests.iter().any(|r| r.contains("Q9004")));
    fake.assert_agents_ok();
}

#[tokio::test]
async fn an_empty_search_finds_nothing() {
    let fake = Fake::start().await;
    let client = fake.client();
    assert_eq!(client.search_human("jdsakjdnmasdda").await.unwrap(), None);
    // A blank name is not sent at all (the API would answer `nosearch`).
    assert_eq!(client.search_human("   ").await.unwrap(), None);
    assert_eq!(fake.requests().len(), 1);
    fake.assert_agents_ok();
}

#[tokio::test]
async fn a_merged_entity_answers_under_its_target_id() {
    let fake = Fake::start().await;
    let facts = fake.client().entity("Q16231742").await.unwrap();
    assert_eq!(facts.wikidata_id, "Q3571994");
    assert_eq!(facts.birth_date.as_deref(), Some("1989-12-10"));
    assert_eq!(facts.countries, ["United States"]);
    assert_eq!(facts.description.as_deref(), Some("singer"));
    fake.assert_agents_ok();
}

#[tokio::test]
async fn an_http_redirect_is_followed_to_the_final_id() {
    let fake = Fake::start().await;
    let facts = fake.client().entity("Q500").await.unwrap();
    assert_eq!(facts.wikidata_id, "Q1001");
    assert_eq!(facts.birth_date.as_deref(), Some("1775-12"));
    fake.assert_agents_ok();
}

#[tokio::test]
async fn labels_go_in_batches_of_fifty() {
    let fake = Fake::start().await;
    let facts = fake.client().entity("Q777").await.unwrap();
    let expected: Vec<String> = (0..60).map(|n| format!("occupation {n}")).collect();
    assert_eq!(facts.occupations, expected);
    assert_eq!(facts.countries, ["Spain"]);
    let label_requests: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.contains("wbgetentities"))
        .collect();
    assert_eq!(label_requests.len(), 2, "{label_requests:#?}");
    fake.assert_agents_ok();
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_entity_is_permanent_and_names_the_id() {
    let fake = Fake::start().await;
    let client = fake.client();
    // Special:EntityData's 404, and the API's 200 envelope with `no-such-entity`.
    for id in ["Q404", "Q400"] {
        let err = client.entity(id).await.unwrap_err();
        assert!(
            matches!(&err, WikidataError::NoSuchEntity { id: named } if named == id),
            "{err:?}"
        );
        assert!(!err.retryable());
        assert_eq!(err.retry_after(), None);
        assert!(err.to_string().contains(id), "{err}");
    }
    fake.assert_agents_ok();
}

#[tokio::test]
async fn a_malformed_id_is_refused_before_any_request() {
    let fake = Fake::start().await;
    let err = fake.client().entity("../w/api.php?x=Q1").await.unwrap_err();
    assert!(matches!(err, WikidataError::InvalidId { .. }), "{err:?}");
    assert!(!err.retryable());
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn other_4xx_are_permanent_and_name_the_id() {
    let fake = Fake::start().await;
    let err = fake.client().entity("Q403").await.unwrap_err();
    assert!(
        matches!(err, WikidataError::Rejected { status: 403, .. }),
        "{err:?}"
    );
    assert!(!err.retryable());
    assert!(err.to_string().contains("Q403"), "{err}");
}

#[tokio::test]
async fn maxlag_is_retryable_after_five_seconds_by_default() {
    let fake = Fake::start().await;
    let err = fake.client().search_human("lagging").await.unwrap_err();
    assert!(matches!(err, WikidataError::Maxlag { .. }), "{err:?}");
    assert!(err.retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    fake.assert_agents_ok();
}

#[tokio::test]
async fn maxlag_honours_retry_after() {
    let fake = Fake::start().await;
    let err = fake
        .client()
        .search_human("lagging politely")
        .await
        .unwrap_err();
    assert!(matches!(err, WikidataError::Maxlag { .. }), "{err:?}");
    assert!(err.retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));
}

#[tokio::test]
async fn http_429_is_retryable_with_its_retry_after() {
    let fake = Fake::start().await;
    let err = fake.client().entity("Q429").await.unwrap_err();
    assert!(matches!(err, WikidataError::RateLimited { .. }), "{err:?}");
    assert!(err.retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let fake = Fake::start().await;
    let client = fake.client();
    let err = client.entity("Q5000").await.unwrap_err();
    assert!(
        matches!(err, WikidataError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.retryable());
    assert_eq!(err.retry_after(), None);
    let err = client.entity("Q5030").await.unwrap_err();
    assert!(
        matches!(err, WikidataError::Server { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
}

#[tokio::test]
async fn a_timeout_is_retryable() {
    let fake = Fake::start().await;
    let config = WikidataConfig {
        timeout_ms: 200,
        ..fake.config()
    };
    let err = WikidataClient::new(config)
        .unwrap()
        .entity("Q408")
        .await
        .unwrap_err();
    assert!(matches!(err, WikidataError::Timeout { .. }), "{err:?}");
    assert!(err.retryable());
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_permanent() {
    let fake = Fake::start().await;
    let err = fake.client().entity("Q200").await.unwrap_err();
    assert!(matches!(err, WikidataError::Malformed { .. }), "{err:?}");
    assert!(!err.retryable());
}

#[tokio::test]
async fn an_unreachable_wikidata_is_retryable() {
    // Bind, then close, so the port is very likely refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = WikidataConfig {
        base_url: format!("http://{addr}"),
        ..WikidataConfig::default()
    };
    let err = WikidataClient::new(config)
        .unwrap()
        .entity("Q42")
        .await
        .unwrap_err();
    assert!(err.retryable(), "{err:?}");
}

#[tokio::test]
async fn the_fake_refuses_clients_without_the_agent() {
    let fake = Fake::start().await;
    let config = WikidataConfig {
        user_agent: "python-requests/2.31".into(),
        ..fake.config()
    };
    let err = WikidataClient::new(config)
        .unwrap()
        .entity("Q42")
        .await
        .unwrap_err();
    assert!(
        matches!(err, WikidataError::Rejected { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(
        *fake.seen.refused_agents.lock().unwrap(),
        ["python-requests/2.31"]
    );
}

// ---------------------------------------------------------------------------
// Image download
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_entity_image_downloads_through_commons() {
    let fake = Fake::start().await;
    let client = fake.client();
    let dir = TempDir::new();
    let image_url = client.entity("Q42").await.unwrap().image_url.unwrap();

    let got = client
        .download_image(&image_url, &dir.0, "author-42", 1_000_000)
        .await
        .unwrap();

    assert_eq!(got.path, path_of(&dir.0, "author-42.jpg"));
    assert_eq!(got.content_type, "image/jpeg");
    assert_eq!(got.bytes, PORTRAIT.len() as u64);
    assert_eq!(std::fs::read(&got.path).unwrap(), PORTRAIT);
    assert_eq!(dir.files(), ["author-42.jpg"]);
    let requests = fake.requests();
    assert!(requests
        .contains(&"/wiki/Special:FilePath/Ada_Writer_%28portrait%29%2C_1990.jpg".to_owned()));
    assert!(requests.contains(&"/img/portrait".to_owned()));
    fake.assert_agents_ok();
}

#[tokio::test]
async fn a_download_replaces_the_previous_file_of_the_same_name() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    std::fs::write(path_of(&dir.0, "a.png"), b"old").unwrap();
    let got = fake
        .client()
        .download_image(&format!("{}/img/png", fake.base_url), &dir.0, "a", 1000)
        .await
        .unwrap();
    assert_eq!(got.bytes, 1000, "exactly the limit is allowed");
    assert_eq!(std::fs::read(&got.path).unwrap(), vec![7u8; 1000]);
    assert_eq!(dir.files(), ["a.png"]);
}

#[tokio::test]
async fn a_download_of_another_type_removes_the_previous_file() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    std::fs::write(path_of(&dir.0, "a.jpg"), b"an older portrait").unwrap();
    std::fs::write(path_of(&dir.0, "ab.jpg"), b"another author's").unwrap();
    fake.client()
        .download_image(&format!("{}/img/png", fake.base_url), &dir.0, "a", 1000)
        .await
        .unwrap();
    assert_eq!(dir.files(), ["a.png", "ab.jpg"]);
}

#[tokio::test]
async fn a_chunked_body_under_the_limit_is_counted_and_kept() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    let got = fake
        .client()
        .download_image(
            &format!("{}/img/chunked-small", fake.base_url),
            &dir.0,
            "w",
            1000,
        )
        .await
        .unwrap();
    assert_eq!((got.bytes, got.content_type.as_str()), (1000, "image/webp"));
    assert_eq!(dir.files(), ["w.webp"]);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    let url = format!("{}/img/declared-large", fake.base_url);
    let err = fake
        .client()
        .download_image(&url, &dir.0, "a", 1000)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DownloadError::TooLarge {
                max_bytes: 1000,
                declared: Some(5000),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.retryable());
    assert!(
        err.to_string()
            .contains("larger than the limit of 1000 bytes"),
        "{err}"
    );
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_while_streaming() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    let url = format!("{}/img/chunked-large", fake.base_url);
    let started = std::time::Instant::now();
    let err = fake
        .client()
        .download_image(&url, &dir.0, "a", 100_000)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DownloadError::TooLarge {
                max_bytes: 100_000,
                declared: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.retryable());
    // Stopped after the limit, not after the server's 100 MiB.
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[tokio::test]
async fn a_content_type_that_is_not_an_image_is_refused() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    let client = fake.client();
    for (path, shown) in [("html", "text/html; charset=utf-8"), ("untyped", "missing")] {
        let url = format!("{}/img/{path}", fake.base_url);
        let err = client
            .download_image(&url, &dir.0, "a", 1000)
            .await
            .unwrap_err();
        assert!(matches!(err, DownloadError::NotAnImage { .. }), "{err:?}");
        assert!(!err.retryable());
        assert!(err.to_string().contains(shown), "{err}");
    }
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[tokio::test]
async fn download_status_errors_are_classified() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    let client = fake.client();
    let missing = format!("{}/img/nothing-here", fake.base_url);
    let err = client
        .download_image(&missing, &dir.0, "a", 1000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DownloadError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert!(!err.retryable());
    let busy = format!("{}/img/unavailable", fake.base_url);
    let err = client
        .download_image(&busy, &dir.0, "a", 1000)
        .await
        .unwrap_err();
    assert!(err.retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(9)));
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}

#[tokio::test]
async fn the_file_name_never_comes_from_outside() {
    let fake = Fake::start().await;
    let dir = TempDir::new();
    let client = fake.client();
    let url = format!("{}/img/png", fake.base_url);
    for name in ["../escape", "a/b", "", ".hidden"] {
        let err = client
            .download_image(&url, &dir.0, name, 1000)
            .await
            .unwrap_err();
        assert!(matches!(err, DownloadError::InvalidName { .. }), "{err:?}");
    }
    let err = client
        .download_image("file:///etc/passwd", &dir.0, "a", 1000)
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::InvalidUrl { .. }), "{err:?}");
    assert!(fake.requests().is_empty(), "refused before any request");
    // The URL's own path has no say in where the file goes.
    let traversal = format!("{}/img/..%2F..%2Fetc%2Fpasswd.png", fake.base_url);
    let got = client
        .download_image(&traversal, &dir.0, "a", 1000)
        .await
        .unwrap();
    assert_eq!(got.path, path_of(&dir.0, "a.png"));
    assert_eq!(dir.files(), ["a.png"]);
}
