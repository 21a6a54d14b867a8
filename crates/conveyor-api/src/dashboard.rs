//! The web dashboard: one HTML page, a stylesheet, its script (ES modules: the
//! entry `app.js` and the modules it imports) and an icon, all embedded in the
//! binary (`crates/conveyor-api/dashboard/`), served without a token (the page
//! asks for one and sends it to `/api/admin/*` as the bearer token).
//!
//! Every page path ([`PAGES`]) answers the same HTML; the script routes on the
//! client. Assets live under `/dashboard/` and the page references them with
//! `?v=<hash of their content>`, so a versioned request may be cached for a year
//! while the page itself is revalidated (ETag) on every load. The modules that
//! `app.js` imports are asked for without a version and revalidated the same way. Bodies are gzip-compressed once, on
//! first use, and sent compressed to clients that accept gzip. Every answer carries
//! a Content-Security-Policy that allows only the dashboard's own origin.
//!
//! None of these routes is in the OpenAPI document or in [`crate::ROUTES`].

use std::io::Write;
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;

/// The page paths (axum syntax); each answers the dashboard's HTML.
pub const PAGES: &[&str] = &[
    "/",
    "/jobs",
    "/jobs/{id}",
    "/queues/{name}",
    "/dead-letters",
    "/scheduled",
    "/workers",
    "/authors",
    "/books",
    "/quotes",
];

/// Only this origin, for everything; no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const JS: &str = "text/javascript; charset=utf-8";
/// The embedded assets: (path under `/dashboard/`, content type, content). The
/// page loads `app.js` as a module; the other scripts are the modules it imports
/// (relative imports, so each path here is the one its importer asks for).
const FILES: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../dashboard/app.js")),
    ("api.js", JS, include_str!("../dashboard/api.js")),
    ("ui.js", JS, include_str!("../dashboard/ui.js")),
    ("view.js", JS, include_str!("../dashboard/view.js")),
    ("router.js", JS, include_str!("../dashboard/router.js")),
    (
        "pages/overview.js",
        JS,
        include_str!("../dashboard/pages/overview.js"),
    ),
    (
        "pages/jobs.js",
        JS,
        include_str!("../dashboard/pages/jobs.js"),
    ),
    (
        "pages/job.js",
        JS,
        include_str!("../dashboard/pages/job.js"),
    ),
    (
        "pages/queues.js",
        JS,
        include_str!("../dashboard/pages/queues.js"),
    ),
    (
        "pages/dead_letters.js",
        JS,
        include_str!("../dashboard/pages/dead_letters.js"),
    ),
    (
        "pages/scheduled.js",
        JS,
        include_str!("../dashboard/pages/scheduled.js"),
    ),
    (
        "pages/workers.js",
        JS,
        include_str!("../dashboard/pages/workers.js"),
    ),
    (
        "pages/domain.js",
        JS,
        include_str!("../dashboard/pages/domain.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/app.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../dashboard/icon.svg"),
    ),
];

/// One servable body, raw and gzip-compressed.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub raw: Vec<u8>,
    pub gzip: Vec<u8>,
    /// A hash of `raw`: the ETag (quoted) and the `v` of versioned URLs.
    pub version: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, raw: Vec<u8>) -> Self {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let gzip = encoder
            .write_all(&raw)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        Self {
            version: format!("{:016x}", fnv1a(&raw)),
            name,
            content_type,
            raw,
            gzip,
        }
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, enough to tell versions apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The page and the assets, built on first use.
pub struct Assets {
    pub index: Asset,
    pub files: Vec<Asset>,
}

pub static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let files: Vec<Asset> = FILES
        .iter()
        .map(|(name, ty, text)| Asset::new(name, ty, text.as_bytes().to_vec()))
        .collect();
    // `{{v:app.js}}` in the page becomes that file's version.
    let mut html = INDEX_HTML.to_string();
    for file in &files {
        html = html.replace(&format!("{{{{v:{}}}}}", file.name), &file.version);
    }
    Assets {
        index: Asset::new("index.html", "text/html; charset=utf-8", html.into_bytes()),
        files,
    }
});

/// The dashboard's routes, to merge into the application's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let router = PAGES
        .iter()
        .fold(Router::new(), |router, path| router.route(path, get(page)));
    router.route("/dashboard/{*file}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    serve(&ASSETS.index, &headers, "no-cache")
}

async fn asset(
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = ASSETS.files.iter().find(|a| a.name == file) else {
        return ApiError::not_found("no such route").into_response();
    };
    // A URL naming the current version never changes; any other is revalidated.
    let versioned = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.strip_prefix("v=") == Some(asset.version.as_str()))
    });
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    serve(asset, &headers, cache)
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*` with a q-value above 0).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

fn serve(asset: &Asset, headers: &HeaderMap, cache_control: &'static str) -> Response {
    let etag = asset.etag();
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers) {
        let mut r = Response::new(Body::from(asset.gzip.clone()));
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        Response::new(Body::from(asset.raw.clone()))
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_with(path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::builder().uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body.to_vec())
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn every_page_path_answers_the_page_with_its_policy() {
        for path in [
            "/",
            "/jobs",
            "/jobs?queue=diagnostics&status=FAILED&page=2",
            "/jobs/0190a1b2-0000-7000-8000-000000000000",
            "/queues/diagnostics",
            "/dead-letters",
            "/scheduled",
            "/workers",
            "/authors",
            "/books",
            "/quotes",
        ] {
            let (status, headers, body) = get_with(path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(body, ASSETS.index.raw, "{path}");
        }
    }

    #[tokio::test]
    async fn the_page_names_each_asset_by_its_version() {
        let html = String::from_utf8(ASSETS.index.raw.clone()).unwrap();
        assert!(!html.contains("{{"), "an unreplaced placeholder: {html}");
        let imported = imported_modules();
        for file in &ASSETS.files {
            let url = format!("/dashboard/{}?v={}", file.name, file.version);
            if imported.contains(&file.name.to_string()) {
                // A module is asked for by its importer, without a version.
                let (status, headers, body) =
                    get_with(&format!("/dashboard/{}", file.name), &[]).await;
                assert_eq!(status, StatusCode::OK, "{}", file.name);
                assert_eq!(headers[header::CONTENT_TYPE], file.content_type);
                assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
                assert_eq!(body, file.raw);
                continue;
            }
            assert!(html.contains(&url), "the page does not load {url}");
            let (status, headers, body) = get_with(&url, &[]).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers[header::CONTENT_TYPE], file.content_type);
            assert_eq!(
                headers[header::CACHE_CONTROL],
                "public, max-age=31536000, immutable"
            );
            assert_eq!(body, file.raw);
        }
        // An old or missing version is revalidated rather than kept.
        let (_, headers, _) = get_with("/dashboard/app.js?v=0", &[]).await;
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let (status, _, _) = get_with("/dashboard/nope.js", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    /// Resolves `import ... from "<relative path>"` of every script against the
    /// importing script's path (as a browser does with its URL).
    fn resolve_imports(name: &str, text: &str) -> Vec<String> {
        let dir: Vec<&str> = name.split('/').collect();
        let dir = &dir[..dir.len() - 1];
        text.lines()
            .filter(|line| line.starts_with("import "))
            .filter_map(|line| line.split(" from \"").nth(1)?.split('"').next())
            .map(|spec| {
                let mut parts: Vec<&str> = dir.to_vec();
                for segment in spec.split('/') {
                    match segment {
                        "." => {}
                        ".." => {
                            assert!(parts.pop().is_some(), "{name} imports {spec}");
                        }
                        s => parts.push(s),
                    }
                }
                parts.join("/")
            })
            .collect()
    }

    fn imported_modules() -> Vec<String> {
        ASSETS
            .files
            .iter()
            .filter(|f| f.name.ends_with(".js"))
            .flat_map(|f| resolve_imports(f.name, &String::from_utf8_lossy(&f.raw)))
            .collect()
    }

    #[test]
    fn every_import_is_an_embedded_module_and_every_module_is_used() {
        let imported = imported_modules();
        for path in &imported {
            let file = ASSETS.files.iter().find(|f| f.name == path);
            let file = file.unwrap_or_else(|| panic!("{path} is imported but not embedded"));
            assert!(file.content_type.starts_with("text/javascript"), "{path}");
        }
        for file in ASSETS.files.iter().filter(|f| f.name.ends_with(".js")) {
            assert!(
                file.name == "app.js" || imported.iter().any(|p| p == file.name),
                "{} is embedded but nothing imports it",
                file.name
            );
        }
        assert!(!imported.iter().any(|p| p == "app.js"));
        assert_eq!(
            resolve_imports(
                "pages/job.js",
                "import { a } from \"../ui.js\";\nimport { b } from \"./jobs.js\";"
            ),
            ["ui.js", "pages/jobs.js"]
        );
    }

    #[tokio::test]
    async fn gzip_when_accepted_and_304_when_unchanged() {
        let (_, headers, body) = get_with("/", &[("accept-encoding", "gzip, deflate, br")]).await;
        assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
        assert_eq!(headers[header::VARY], "Accept-Encoding");
        assert_eq!(gunzip(&body), ASSETS.index.raw);
        let (_, headers, _) = get_with("/", &[("accept-encoding", "gzip;q=0, identity")]).await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none());

        let etag = ASSETS.index.etag();
        let (status, headers, body) = get_with("/jobs", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(headers[header::ETAG], etag.as_str());
        assert!(body.is_empty());
    }

    #[test]
    fn the_first_page_stays_under_100_kb_compressed() {
        let total: usize =
            ASSETS.index.gzip.len() + ASSETS.files.iter().map(|f| f.gzip.len()).sum::<usize>();
        assert!(total < 100_000, "{total} bytes gzip");
    }

    #[test]
    fn no_asset_names_another_origin() {
        for asset in std::iter::once(&ASSETS.index).chain(&ASSETS.files) {
            // The SVG namespace is a name, not a request.
            let text =
                String::from_utf8_lossy(&asset.raw).replace("http://www.w3.org/2000/svg", "");
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(needle), "{} mentions {needle}", asset.name);
            }
        }
    }
}
