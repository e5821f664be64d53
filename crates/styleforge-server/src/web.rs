//! The web page served at `/` and the embeddable widget at `/widget.js`.
//!
//! Plain ES modules, CSS and an SVG icon compiled into the binary (`include_bytes!` of
//! `crates/styleforge-server/web/`): no build step, and nothing fetched from elsewhere at run time.
//! Every asset carries an `ETag` (its sha256), so browsers revalidate with `If-None-Match` and get
//! `304 Not Modified` while it is unchanged.
//!
//! For work on the page itself, `STYLEFORGE_WEB_DIR=crates/styleforge-server/web` makes the
//! server read the files from that directory on every request instead, so a reload shows an edit
//! without rebuilding.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::store::sha256_hex;

/// The page's content security policy: everything from this origin, images and videos also from
/// `blob:` URLs (results are fetched with the API key and shown as blobs).
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    cache: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    const fn new(path: &'static str, content_type: &'static str, cache: &'static str, bytes: &'static [u8]) -> Self {
        Self { path, content_type, cache, bytes }
    }
}

const NO_CACHE: &str = "no-cache";
/// The widget is loaded by other sites on every page view: cached for a few minutes.
const WIDGET_CACHE: &str = "public, max-age=300";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

static ASSETS: &[Asset] = &[
    Asset::new("/", HTML, NO_CACHE, include_bytes!("../web/index.html")),
    Asset::new("/index.html", HTML, NO_CACHE, include_bytes!("../web/index.html")),
    Asset::new("/app/app.css", CSS, NO_CACHE, include_bytes!("../web/app.css")),
    Asset::new("/app/app.js", JS, NO_CACHE, include_bytes!("../web/app.js")),
    Asset::new("/app/api.js", JS, NO_CACHE, include_bytes!("../web/api.js")),
    Asset::new("/app/dom.js", JS, NO_CACHE, include_bytes!("../web/dom.js")),
    Asset::new("/app/client.js", JS, NO_CACHE, include_bytes!("../web/client.js")),
    Asset::new("/app/live.js", JS, NO_CACHE, include_bytes!("../web/live.js")),
    Asset::new("/app/compare.js", JS, NO_CACHE, include_bytes!("../web/compare.js")),
    Asset::new("/app/icon.svg", SVG, NO_CACHE, include_bytes!("../web/icon.svg")),
    Asset::new("/widget.js", JS, WIDGET_CACHE, include_bytes!("../web/widget.js")),
];

static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            HeaderValue::from_str(&format!("\"{}\"", &sha256_hex(a.bytes)[..32]))
                .expect("an ETag is ASCII")
        })
        .collect()
});

/// The routes of the page and the widget.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let dir = std::env::var_os("STYLEFORGE_WEB_DIR").map(std::path::PathBuf::from);
    let mut r = Router::new();
    for (i, a) in ASSETS.iter().enumerate() {
        let dir = dir.clone();
        r = r.route(
            a.path,
            get(move |h: HeaderMap| async move {
                match dir.as_deref().and_then(|d| from_dir(d, i)) {
                    Some(bytes) => {
                        let etag =
                            HeaderValue::from_str(&format!("\"{}\"", &sha256_hex(&bytes)[..32]))
                                .expect("an ETag is ASCII");
                        serve(i, bytes.into(), &etag, &h)
                    }
                    None => serve(i, a.bytes.into(), &ETAGS[i], &h),
                }
            }),
        );
    }
    r
}

/// The asset's file in a development directory (`STYLEFORGE_WEB_DIR`).
fn from_dir(dir: &std::path::Path, i: usize) -> Option<Vec<u8>> {
    let name = match ASSETS[i].path {
        "/" | "/index.html" => "index.html",
        p => p.rsplit('/').next()?,
    };
    std::fs::read(dir.join(name)).ok()
}

fn serve(i: usize, body: axum::body::Body, etag: &HeaderValue, req: &HeaderMap) -> Response {
    let a = &ASSETS[i];
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == etag.to_str().unwrap_or(""))
        });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(a.cache));
    h.insert(header::ETAG, etag.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.content_type.starts_with("text/html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    if a.path == "/widget.js" {
        h.insert(
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        );
    }
    resp
}

/// The embedded file served at `path`, if any (for tests and tools).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|a| a.path == path).map(|a| a.bytes)
}
