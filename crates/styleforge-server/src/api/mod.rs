//! The HTTP API: routes, middleware (errors as JSON, metrics, CORS, limits, timeouts) and the
//! extractors that turn framework rejections into `{code, message}` errors.

pub mod batches;
pub mod faces;
pub mod generate;
pub mod idempotency;
pub mod images;
pub mod jobs;
pub mod links;
pub mod live;
pub mod methods;
pub mod models;
pub mod ops;
pub mod preferences;
pub mod ranges;
pub mod results;
pub mod styles;
pub mod stylize;
pub mod trainings;
pub mod webhooks;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult, code_for_status};
use crate::state::AppState;

/// Builds the application.
pub fn router(state: AppState) -> Router {
    let cfg = &state.config;
    let v1 = Router::new()
        .route("/images", post(images::upload).get(images::list))
        .route("/images/{id}", get(images::content).layer(middleware::from_fn(ranges::byte_ranges)).delete(images::delete))
        .route("/images/{id}/info", get(images::info))
        .route("/images/{id}/thumbnail", get(images::thumbnail))
        .route("/styles", get(styles::list).post(styles::upload))
        .route(
            "/styles/{name}",
            get(styles::get_one).delete(styles::delete),
        )
        .route("/styles/{name}/thumbnail", get(styles::thumbnail))
        .route("/styles/{name}/onnx", get(styles::onnx))
        .route("/models", post(models::upload))
        .route("/generators/{name}/samples", get(generate::samples))
        .route("/methods", get(methods::list))
        .route("/stylize", post(stylize::stylize))
        .route("/live", get(live::live))
        .route("/faces", post(faces::detect))
        .route("/trainings", post(trainings::create))
        .route("/jobs/{id}", get(jobs::status))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/jobs/{id}/result", get(jobs::result).layer(middleware::from_fn(ranges::byte_ranges)))
        .route("/jobs/{id}/deliveries", get(webhooks::deliveries))
        .route("/webhook-secret", get(webhooks::secret).post(webhooks::rotate))
        .route("/batches", post(batches::create))
        .route("/batches/{id}", get(batches::get_one))
        .route("/batches/{id}/cancel", post(batches::cancel))
        .route("/batches/{id}/results.zip", get(batches::results_zip))
        .route("/history", get(jobs::history))
        .route("/results/{id}", get(results::content).layer(middleware::from_fn(ranges::byte_ranges)))
        .route("/results/{id}/info", get(results::info))
        .route("/results/{id}/links", post(links::create))
        .route("/public/results/{id}", get(links::public_content).layer(middleware::from_fn(ranges::byte_ranges)))
        .route("/results/{id}/rating", put(results::rate))
        .route("/ratings", get(results::ratings))
        .route("/stats/ratings", get(results::stats))
        .route("/preferences", post(preferences::create))
        .route("/stats/preferences", get(preferences::stats))
        .route("/openapi.json", get(ops::openapi));
    let web = if cfg.web {
        crate::web::router()
    } else {
        Router::new()
    };
    Router::new()
        .nest("/v1", v1)
        .merge(web)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_upload_bytes))
        .layer(middleware::from_fn(not_modified))
        .layer(middleware::from_fn_with_state(state.clone(), idempotency::idempotency))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            cfg.body_timeout_secs,
        )))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(cfg.request_timeout_secs),
        ))
        .layer(crate::auth::cors_layer(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(middleware::from_fn(limit_headers))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Answers a `GET` or `HEAD` whose `If-None-Match` names the ETag of the 200 it would get with
/// 304 Not Modified and no body (RFC 9110 §13.1.2: weak comparison, `*` matches any).
async fn not_modified(req: Request, next: Next) -> Response {
    let conditional = matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD)
        .then(|| req.headers().get(header::IF_NONE_MATCH).cloned())
        .flatten();
    let resp = next.run(req).await;
    let Some(inm) = conditional else { return resp };
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let Some(etag) = resp.headers().get(header::ETAG).and_then(|v| v.to_str().ok()) else {
        return resp;
    };
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let matched = inm
        .to_str()
        .map(|v| v.split(',').any(|t| t.trim() == "*" || weak(t) == weak(etag)))
        .unwrap_or(false);
    if !matched {
        return resp;
    }
    let mut out = StatusCode::NOT_MODIFIED.into_response();
    for name in [header::ETAG, header::CACHE_CONTROL, header::VARY, header::EXPIRES, header::CONTENT_LOCATION] {
        if let Some(v) = resp.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// The most bytes of request line and headers the service reads (names, values and the URI).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses requests whose head is over [`MAX_HEADER_BYTES`] with 431 and a JSON error (the
/// HTTP layer itself only refuses heads beyond its buffer, or with over 100 headers).
async fn limit_headers(req: Request, next: Next) -> Response {
    let size = req.uri().to_string().len() + req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
    if size > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request's headers are {size} bytes, over the limit of {MAX_HEADER_BYTES}"),
        )
        .into_response();
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint (see /v1/openapi.json)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method (see /v1/openapi.json)",
    )
}

/// Request count and latency by route.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let t = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.http_requests
        .with_label_values(&[method.as_str(), route.as_str(), resp.status().as_str()])
        .inc();
    m.http_seconds
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(t.elapsed().as_secs_f64());
    resp
}

/// Gives every error response that left without one a JSON `{code, message}` body (framework
/// rejections, body limits, timeouts, panics).
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, code_for_status(status), message).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// `Json<T>` whose rejections are API errors: malformed JSON 400, wrong content type 415,
/// well-formed but invalid 422.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(match &e {
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::bad_request("invalid_json", e.body_text())
                }
                JsonRejection::JsonDataError(_) => {
                    ApiError::unprocessable("invalid_body", e.body_text())
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the request as JSON with `Content-Type: application/json`",
                ),
                other => ApiError::new(
                    other.status(),
                    code_for_status(other.status()),
                    other.body_text(),
                ),
            }),
        }
    }
}

/// `Query<T>` whose rejections are 400 `invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::bad_request(
                "invalid_query",
                match &e {
                    QueryRejection::FailedToDeserializeQueryString(_) => e.body_text(),
                    _ => e.body_text(),
                },
            )),
        }
    }
}

/// Filters of the rating and preference statistics: each endpoint's description says what a
/// filter keeps.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StyleMethodQuery {
    /// Only this style (a style name, as in `GET /v1/styles`).
    pub style: Option<String>,
    /// Only this method (as in `GET /v1/methods`).
    pub method: Option<String>,
}

/// Pagination parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}\.[A-Za-z0-9_]{1,64}$")]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The limit in force and the decoded cursor.
    pub fn resolve(&self) -> Result<(i64, Option<(i64, String)>), ApiError> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be within 1..100",
            ));
        }
        let cursor = match &self.cursor {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "the cursor is not one this server gave")
            })?),
        };
        Ok((limit as i64, cursor))
    }
}

/// The cursor after an item.
pub fn encode_cursor(created_at: i64, id: &str) -> String {
    format!("{created_at}.{id}")
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once('.')?;
    let t: i64 = t.parse().ok()?;
    (!id.is_empty()
        && id.len() <= 64
        && id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
    .then(|| (t, id.to_string()))
}

/// The first `limit` of `rows` (fetched with `limit + 1`) as items, and the cursor of the next
/// page when there is one (`cursor` of the last item).
pub fn paginate<R, T>(
    rows: &[R],
    limit: i64,
    item: impl Fn(&R) -> T,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() as i64 > limit;
    let items: Vec<T> = rows.iter().take(limit as usize).map(item).collect();
    let next_cursor = more.then(|| items.last().map(cursor)).flatten();
    (items, next_cursor)
}

/// A response carrying the bytes of a stored blob.
pub async fn blob_response(state: &AppState, sha: &str) -> ApiResult<Response> {
    let bytes = state.blobs.get(sha).await?;
    Ok(image_response(bytes, sha))
}

/// A response carrying image bytes that are not a stored blob (a thumbnail, a preview), tagged
/// with their own hash.
pub fn hashed_image_response(bytes: bytes::Bytes) -> Response {
    let sha = crate::store::sha256_hex(&bytes);
    image_response(bytes, &sha)
}

/// The MIME type of stored bytes: images by their header, GIF, and video containers.
fn media_mime(bytes: &[u8]) -> &'static str {
    if let Ok((f, _, _)) = styleforge_core::image_io::probe(bytes) {
        return f.mime();
    }
    if bytes.starts_with(b"GIF8") {
        return "image/gif";
    }
    if styleforge_core::video::sniff(bytes) {
        return match bytes {
            [0x1A, 0x45, 0xDF, 0xA3, ..] => "video/webm",
            [_, _, _, _, _, _, _, _, b'q', b't', b' ', b' ', ..] => "video/quicktime",
            [b'R', b'I', b'F', b'F', ..] => "video/x-msvideo",
            _ => "video/mp4",
        };
    }
    "application/octet-stream"
}

/// A response carrying image, animation or video bytes.
pub fn image_response(bytes: bytes::Bytes, sha: &str) -> Response {
    let mime = media_mime(&bytes);
    let mut resp = (StatusCode::OK, bytes).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    resp
}
