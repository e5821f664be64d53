//! `Idempotency-Key` on POST requests (as in Stripe's and Replicate's APIs): the first request
//! with a key runs and its answer is kept (24 hours by default, `idempotency_ttl_secs`); a retry
//! with the same key and the same request gets that answer again, with `Idempotent-Replayed:
//! true`, and creates nothing; the same key with a different request is a 409
//! `idempotency_key_reused`. A retry that arrives while the first request is still running waits
//! for its answer (up to 30 s, then 409 `idempotency_key_in_use` with `Retry-After`). The first
//! request runs to its end and its answer is kept even when its client disconnects meanwhile.
//!
//! A key is any header value (a UUID is a good choice); it is kept as its sha256, and an empty
//! one counts as none. Keys are scoped to the caller (the API key presented, or anonymous). The request is
//! identified by its method, path, query and body; for a `multipart/form-data` body the
//! boundary is left out, since clients draw a new one on each try. Answers that a retry should
//! not get back are not kept, so the retry runs afresh: 401, 403, 408, 429 and 5xx.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::db::{self, IdempotencyRow, Taken};
use crate::error::ApiError;
use crate::state::AppState;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The header on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// Largest answer kept (bigger ones are not replayable and the key is released).
const MAX_STORED_BODY: usize = 1 << 20;

/// How long a retry waits for the first request's answer.
const WAIT: Duration = Duration::from_secs(30);

/// Headers of an answer that are replayed with it.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// The middleware (every route; only POSTs with the header are affected).
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(IDEMPOTENCY_KEY) else {
        return next.run(req).await;
    };
    let trimmed = raw.as_bytes().trim_ascii();
    if trimmed.is_empty() {
        return next.run(req).await;
    }
    let key = hex::encode(Sha256::digest(trimmed));
    let scope = scope_of(req.headers());
    // From here on the request is handled in a task of its own: a client that goes away does
    // not cancel it between taking the key and keeping the answer (which would leave the key
    // held until its lock ran out); its retry gets the answer.
    let task = tokio::spawn(keyed(state, req, next, scope, key));
    match task.await {
        Ok(resp) => resp,
        Err(e) => ApiError::internal(format!("the request failed: {e}")).into_response(),
    }
}

/// Runs a request that carries an idempotency key: takes the key, or replays, refuses or waits.
async fn keyed(state: AppState, req: Request, next: Next, scope: String, key: String) -> Response {
    let (parts, body) = req.into_parts();
    let limit = state.config.max_upload_bytes.saturating_add(1 << 20);
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if e.to_string().contains("length limit") => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is over {limit} bytes"),
            )
            .into_response();
        }
        Err(e) => {
            return ApiError::bad_request("invalid_body", format!("the request body could not be read: {e}")).into_response();
        }
    };
    let hash = request_hash(&parts.method, &parts.uri, &parts.headers, &bytes);
    let lock_ms = (state.config.request_timeout_secs as i64 + 5) * 1000;
    let ttl_ms = state.config.idempotency_ttl_secs.max(1) as i64 * 1000;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let taken = match db::take_key(&state.db, &scope, &key, &hash, lock_ms, ttl_ms).await {
            Ok(t) => t,
            Err(e) => return ApiError::from(e).into_response(),
        };
        match taken {
            Taken::Mine => {
                let req = Request::from_parts(parts, Body::from(bytes));
                return run_and_keep(&state, &scope, &key, next.run(req).await).await;
            }
            Taken::Existing(row) if row.request_hash != hash => {
                return ApiError::conflict(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request; use a new key for a new request",
                )
                .into_response();
            }
            Taken::Existing(row) if row.state == "done" => return replay(&row),
            Taken::Existing(_) => {
                if tokio::time::Instant::now() >= deadline {
                    let mut e = ApiError::conflict(
                        "idempotency_key_in_use",
                        "a request with this Idempotency-Key is still running; retry later",
                    );
                    e.retry_after = Some(1);
                    return e.into_response();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The caller a key belongs to: a hash of the presented API key, else `anonymous`.
fn scope_of(headers: &HeaderMap) -> String {
    let presented = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("Bearer ").trim_start_matches("bearer ").trim());
    match presented {
        Some(k) if !k.is_empty() => format!("key:{}", crate::auth::hash_key(k)),
        _ => crate::auth::ANONYMOUS.to_string(),
    }
}

/// sha256 of the method, path with query, and body (a multipart body without its boundary).
fn request_hash(method: &Method, uri: &axum::http::Uri, headers: &HeaderMap, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update(b"\n");
    h.update(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    h.update(b"\n");
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    h.update(content_type.and_then(|c| c.split(';').next()).unwrap_or("").trim().to_ascii_lowercase());
    h.update(b"\n");
    let boundary = content_type
        .filter(|ct| ct.to_ascii_lowercase().starts_with("multipart/"))
        .and_then(|ct| ct.split(';').find_map(|p| p.trim().strip_prefix("boundary=")))
        .map(|b| b.trim_matches('"').as_bytes().to_vec())
        .filter(|b| !b.is_empty());
    match boundary {
        None => h.update(body),
        Some(b) => {
            let mut rest = body;
            while let Some(i) = rest.windows(b.len()).position(|w| w == b.as_slice()) {
                h.update(&rest[..i]);
                rest = &rest[i + b.len()..];
            }
            h.update(rest);
        }
    }
    hex::encode(h.finalize())
}

/// Keeps the first request's answer (or releases the key when it should not be replayed).
async fn run_and_keep(state: &AppState, scope: &str, key: &str, resp: Response) -> Response {
    let status = resp.status();
    let keep = !(status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
        ));
    if !keep {
        if let Err(e) = db::release_key(&state.db, scope, key).await {
            tracing::warn!(error = %e, "releasing an idempotency key");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "an answer too large to keep for Idempotency-Key retries");
            let _ = db::release_key(&state.db, scope, key).await;
            return ApiError::internal("the answer could not be kept for retries").into_response();
        }
    };
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|n| parts.headers.get(n).and_then(|v| v.to_str().ok()).map(|v| (n.to_string(), v.to_string())))
        .collect();
    let stored = db::finish_key(
        &state.db,
        scope,
        key,
        status.as_u16(),
        &serde_json::to_string(&headers).unwrap_or_else(|_| "[]".into()),
        &STANDARD.encode(&bytes),
    )
    .await;
    if let Err(e) = stored {
        tracing::warn!(error = %e, "keeping an answer for Idempotency-Key retries");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The kept answer, marked as replayed.
fn replay(row: &IdempotencyRow) -> Response {
    let status = row
        .status
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = row
        .body
        .as_deref()
        .and_then(|b| STANDARD.decode(b).ok())
        .unwrap_or_default();
    let mut resp = (status, body).into_response();
    let headers: Vec<(String, String)> = row
        .headers
        .as_deref()
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp.headers_mut()
        .insert(HeaderName::from_static(REPLAYED), HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_boundaries_do_not_change_the_hash() {
        let mk = |b: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(&format!("multipart/form-data; boundary={b}")).unwrap());
            let body = format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nDATA\r\n--{b}--\r\n");
            request_hash(&Method::POST, &"/v1/images".parse().unwrap(), &h, body.as_bytes())
        };
        assert_eq!(mk("abc123"), mk("zzzz9999"));
        let json = |b: &str| request_hash(&Method::POST, &"/v1/stylize".parse().unwrap(), &HeaderMap::new(), b.as_bytes());
        assert_ne!(json("{\"a\":1}"), json("{\"a\":2}"));
        assert_ne!(
            request_hash(&Method::POST, &"/v1/a".parse().unwrap(), &HeaderMap::new(), b"x"),
            request_hash(&Method::POST, &"/v1/b".parse().unwrap(), &HeaderMap::new(), b"x")
        );
    }
}
