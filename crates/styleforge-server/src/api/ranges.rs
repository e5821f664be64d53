//! Byte ranges on stored media (RFC 9110 §14): uploads and results answer `Range: bytes=…` with
//! `206 Partial Content`, so a `<video>` pointed at a result URL can seek (Safari will not play
//! an MP4 without ranges). One range per request; a set of several is answered whole, as the RFC
//! allows. `If-Range` with another ETag gets the whole representation.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// Bytes `start..=end`.
    Range(u64, u64),
    /// No byte in it: `416 Range Not Satisfiable`.
    Unsatisfiable,
    /// Not a single byte range styleforge serves (another unit, several ranges, malformed):
    /// the whole representation.
    Whole,
}

fn asked(spec: &str, len: u64) -> Asked {
    let Some(set) = spec.trim().strip_prefix("bytes=") else { return Asked::Whole };
    if set.contains(',') {
        return Asked::Whole;
    }
    let Some((a, b)) = set.split_once('-') else { return Asked::Whole };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // A suffix: the last N bytes.
        let Ok(n) = b.parse::<u64>() else { return Asked::Whole };
        if n == 0 || len == 0 {
            return Asked::Unsatisfiable;
        }
        return Asked::Range(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else { return Asked::Whole };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return Asked::Whole,
        }
    };
    if start >= len {
        return Asked::Unsatisfiable;
    }
    Asked::Range(start, end.min(len - 1))
}

/// Middleware for the media routes: marks `200` answers `Accept-Ranges: bytes` and cuts the
/// range a request asks for.
pub async fn byte_ranges(req: Request, next: Next) -> Response {
    let (range, if_range) = {
        let text = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (text(header::RANGE), text(header::IF_RANGE))
    };
    let resp = next.run(req).await;
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    parts.headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let Some(range) = range else { return Response::from_parts(parts, body) };
    if if_range.is_some_and(|tag| parts.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) != Some(tag.as_str())) {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("reading a stored body: {e}")).into_response(),
    };
    let len = bytes.len() as u64;
    match asked(&range, len) {
        Asked::Whole => Response::from_parts(parts, Body::from(bytes)),
        Asked::Unsatisfiable => {
            let mut r = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", format!("`{range}` asks for no byte of the {len}")).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r
        }
        Asked::Range(start, end) => {
            parts.status = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                parts.headers.insert(header::CONTENT_RANGE, v);
            }
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            Response::from_parts(parts, Body::from(bytes.slice(start as usize..=end as usize)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_the_rfc_says() {
        assert_eq!(asked("bytes=0-99", 1000), Asked::Range(0, 99));
        assert_eq!(asked("bytes=990-2000", 1000), Asked::Range(990, 999));
        assert_eq!(asked("bytes=500-", 1000), Asked::Range(500, 999));
        assert_eq!(asked("bytes=-100", 1000), Asked::Range(900, 999));
        assert_eq!(asked("bytes=-5000", 1000), Asked::Range(0, 999));
        assert_eq!(asked("bytes=1000-", 1000), Asked::Unsatisfiable);
        assert_eq!(asked("bytes=-0", 1000), Asked::Unsatisfiable);
        assert_eq!(asked("bytes=0-1,5-9", 1000), Asked::Whole);
        assert_eq!(asked("bytes=9-1", 1000), Asked::Whole);
        assert_eq!(asked("items=0-1", 1000), Asked::Whole);
        assert_eq!(asked("bytes=x-1", 1000), Asked::Whole);
        assert_eq!(asked("bytes=0-0", 0), Asked::Unsatisfiable);
    }
}
