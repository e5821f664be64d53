//! Signed result links: `POST /v1/results/{id}/links` gives a URL that shows the result to
//! anyone holding it, without a key, until it expires (`GET /v1/public/results/{id}?expires=…
//! &kid=…&sig=…`, HMAC-SHA256, see [`crate::signing`]); with S3 storage, optionally a presigned
//! S3 URL instead, which the bucket answers itself.
//!
//! The keys are the configuration's `link_keys` (`kid:secret`; the first signs, all verify, so
//! a key is rotated by adding the new one first and removing the old one after its links have
//! expired), else one key the server makes and keeps in its database (`kid` `default`), shared
//! by every process.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiQuery, blob_response};
use crate::auth::Caller;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::signing::{self, LinkError, LinkKey};
use crate::state::AppState;

/// The path of a result's public (signed) URL.
pub fn public_path(id: &str) -> String {
    format!("/v1/public/results/{id}")
}

/// The keys that sign and verify links: the configured ones, else the server's own.
pub async fn link_keys(state: &AppState) -> ApiResult<Vec<LinkKey>> {
    if !state.config.link_keys.is_empty() {
        return Ok(state
            .config
            .link_keys
            .iter()
            .filter_map(|k| LinkKey::parse(k).ok())
            .collect());
    }
    let fresh = hex::encode(signing::random_bytes(32));
    let secret = db::server_secret(&state.db, "link_key.default", &fresh).await?;
    Ok(vec![LinkKey { id: "default".into(), secret }])
}

/// What a link is asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Seconds the link works for (default 3600; at most the server's `max_link_secs`, 7 days
    /// unless configured).
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    #[schema(minimum = 1, maximum = 604800)]
    pub expires_in: Option<u32>,
    /// With S3 storage: a presigned S3 URL (the bucket serves the bytes) instead of the
    /// service's own signed URL. Refused (422) when the storage is not S3.
    #[serde(default)]
    pub presigned: bool,
}

/// A link to a result that needs no key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResultLink {
    /// The URL: absolute (the server's `public_url`, else the request's host), or the
    /// presigned S3 URL.
    pub url: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
    /// Seconds it works for.
    pub expires_in: u64,
    /// `signed` (the service's URL) or `presigned` (S3).
    pub kind: String,
}

/// Whether a `Host` header is a host and an optional port, and nothing else (no path, query,
/// user or markup).
fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (host, None),
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !name.is_empty()
                && name.len() <= 253
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }
    };
    name_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

/// The service's base URL for absolute links: `public_url`, else the request's `Host` (with
/// `X-Forwarded-Proto` when a proxy sets it). Errors: a `Host` that is not a host and port.
fn base_url(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(u) = &state.config.public_url {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    if !valid_host(host) {
        return Err(ApiError::bad_request(
            "invalid_host",
            "the Host header is not a host and port; links are built from it (or from the server's public_url)",
        ));
    }
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    Ok(format!("{proto}://{host}"))
}

/// Make a link to a result that works without a key until it expires: to hand to a browser,
/// an `<img>`, a CDN or another service.
#[utoipa::path(
    post,
    path = "/v1/results/{id}/links",
    operation_id = "create_result_link",
    tag = "results",
    params(("id" = String, Path, description = "Result id")),
    request_body = LinkRequest,
    responses(
        (status = 201, description = "The link", body = ResultLink),
        (status = 400, description = "Malformed JSON, or a Host header that is not a host and port", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 404, description = "No such result (or not yours)", body = ErrorBody),
        (status = 422, description = "Invalid lifetime, or a presigned URL without S3 storage", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LinkRequest>,
) -> ApiResult<(StatusCode, axum::Json<ResultLink>)> {
    let r = db::get_result(&state.db, &id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("result", &id))?;
    let expires_in = u64::from(req.expires_in.unwrap_or(3600));
    if expires_in == 0 || expires_in > state.config.max_link_secs {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            format!("expires_in must be within 1..{} seconds", state.config.max_link_secs),
        ));
    }
    let expires_at = db::now_ms() / 1000 + expires_in as i64;
    if req.presigned {
        let url = state
            .blobs
            .presigned_get(&r.sha256, std::time::Duration::from_secs(expires_in))
            .await
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "presign_unavailable",
                    "presigned URLs need S3 storage; this server stores results elsewhere (ask for a signed link)",
                )
            })?
            .map_err(ApiError::internal)?;
        return Ok((
            StatusCode::CREATED,
            axum::Json(ResultLink { url, expires_at, expires_in, kind: "presigned".into() }),
        ));
    }
    let keys = link_keys(&state).await?;
    let key = keys.first().ok_or_else(|| ApiError::internal("no link key"))?;
    let path = public_path(&r.id);
    let query = signing::sign_link(key, &path, expires_at);
    let url = format!("{}{path}?{query}", base_url(&state, &headers)?);
    Ok((
        StatusCode::CREATED,
        axum::Json(ResultLink { url, expires_at, expires_in, kind: "signed".into() }),
    ))
}

/// The signature of a public result URL.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Expiry (Unix seconds).
    pub expires: i64,
    /// The id of the key that signed it.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,32}$")]
    pub kid: String,
    /// The signature (base64url).
    #[param(pattern = r"^[A-Za-z0-9_-]{1,100}$")]
    pub sig: String,
}

/// A result through a signed link (no key). Results never change, so the answer may be cached
/// publicly (`Cache-Control: public, immutable`, for as long as the link has left, at most a
/// year) and revalidated with `If-None-Match` (304).
#[utoipa::path(
    get,
    path = "/v1/public/results/{id}",
    operation_id = "get_public_result",
    tag = "results",
    params(("id" = String, Path, description = "Result id"), LinkQuery),
    responses(
        (status = 200, description = "The result", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("video/mp4"), ("video/webm"))),
        (status = 304, description = "Not modified (`If-None-Match` matched)"),
        (status = 400, description = "The query is not a signature", body = ErrorBody),
        (status = 403, description = "The link has expired, or its signature does not match", body = ErrorBody),
        (status = 404, description = "No such result", body = ErrorBody),
    ),
    security(())
)]
pub async fn public_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Response> {
    let now = db::now_ms() / 1000;
    let keys = link_keys(&state).await?;
    match signing::verify_link(&keys, &public_path(&id), q.expires, &q.kid, &q.sig, now) {
        Ok(()) => {}
        Err(LinkError::Expired) => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "link_expired", "this link has expired; ask for a new one"));
        }
        Err(LinkError::BadSignature) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_signature",
                "this link's signature does not match (it was changed, or its key was retired)",
            ));
        }
    }
    let r = db::get_result_by_id(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("result", &id))?;
    let mut resp = blob_response(&state, &r.sha256).await?;
    let max_age = (q.expires - now).clamp(0, 31_536_000);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}, immutable")) {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    Ok(resp)
}
