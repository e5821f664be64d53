//! `GET /v1/live`: the live camera filter, a WebSocket. The handler checks the query and the
//! caller, upgrades, and pumps messages between the socket and the stream of
//! [`crate::jobs::live`], which resolves the style, drops frames it has no time for and
//! stylises the newest.
//!
//! Protocol:
//! - **Authentication** as for the other routes: `Authorization: Bearer <key>` (or `X-API-Key`)
//!   on the handshake; or, for browsers, which cannot set headers on a WebSocket, a first text
//!   message `{"type":"auth","key":"sf_…"}` (a publishable `pk_` key is checked against the
//!   handshake's `Origin`). The key never travels in the URL. When the handshake carries no key,
//!   the client speaks first: an `auth` message (whose `key` may be left out where the server
//!   allows anonymous use) or straight away a frame (anonymous); the server waits 15 s for it.
//! - **Frames:** the client sends binary messages, each one JPEG, PNG or WebP frame of at most
//!   1280×720 pixels (either orientation) and 4 MiB; the server answers binary messages, each
//!   the newest frame stylised, as JPEG, in the frame's size.
//! - **Text from the server** ([`ServerMessage`]): `{"type":"ready",…}` once the style is
//!   loaded; `{"type":"stats","fps":…,"received":…,"processed":…,"dropped":…,"ms":…}` about
//!   once a second; `{"type":"error","code":…,"message":…}` just before the server closes the
//!   connection (a frame that is not an image or is too large, an unknown style, a refused key).
//! - **Flow:** the server never queues. Frames that arrive while it is busy replace the one
//!   waiting, and count as `dropped`; clients should keep one or two frames in flight. A stream
//!   with no frame for 30 s is closed (`idle`).

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::ApiQuery;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
pub use crate::jobs::live::{ClientMessage, LiveQuery, LiveStats, ServerMessage};
use crate::jobs::live::{self, MAX_FRAME_BYTES, Output, Stream};
use crate::state::AppState;

/// How long the server waits for a client without a key on the handshake to send its first
/// message (an `auth` message or a frame).
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(15);

/// How long the server waits for the client to answer its close before dropping the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A stream that receives no frame for this long is closed (it holds one of the server's few
/// live-stream places).
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// How often the server sends [`LiveStats`].
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Stylise a camera stream live, over a WebSocket: send frames (binary messages: JPEG, PNG or
/// WebP, at most 1280×720 and 4 MiB each), receive the newest frame stylised (binary, JPEG), with
/// `ready`, `stats` and `error` text messages. Frames that arrive while the server is busy are
/// dropped, not queued. Outputs follow the previous output along the optical flow
/// (`temporal_weight`). Browsers, which cannot set headers on a WebSocket, send the key as a
/// first text message `{"type":"auth","key":"…"}`; without a key on the handshake, the client
/// speaks first (`auth`, or a frame). A plain request, not a WebSocket handshake, is answered 426.
#[utoipa::path(
    get,
    path = "/v1/live",
    operation_id = "live",
    tag = "stylize",
    params(LiveQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Invalid query, or a malformed WebSocket handshake", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key (in the handshake's headers)", body = crate::error::ErrorBody),
        (status = 403, description = "A publishable key from an origin it does not list", body = crate::error::ErrorBody),
        (status = 426, description = "Not a WebSocket handshake", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
        (status = 503, description = "Too many live streams, or shutting down", body = crate::error::ErrorBody),
    )
)]
pub async fn live(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LiveQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    parts: Parts,
) -> ApiResult<Response> {
    q.check().map_err(|e| ApiError::bad_request(&e.code, e.message))?;
    // A key in the headers is checked now, so that the client sees the refusal as a status.
    let caller = if has_key(&parts) { Some(Caller::from_request_parts(&mut parts.clone(), &state).await?) } else { None };
    let ws = ws.map_err(|e| {
        let mut err = ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            format!("GET /v1/live is a WebSocket: connect with a WebSocket client ({})", e.body_text()),
        );
        if e.status() == StatusCode::METHOD_NOT_ALLOWED {
            err.status = StatusCode::METHOD_NOT_ALLOWED;
        }
        err
    })?;
    if state.shutting_down() {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    let permit = state.live.clone().try_acquire_owned().map_err(|_| {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("this server runs {} live streams at most; try again shortly", live::SESSIONS_PER_SLOT * state.config.inference_slots()),
        );
        e.retry_after = Some(5);
        e
    })?;
    // Frames over MAX_FRAME_BYTES but within the socket's limit get a `frame_too_large` error.
    let mut resp = ws
        .max_message_size(2 * MAX_FRAME_BYTES)
        .max_frame_size(2 * MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session(state, socket, parts, caller, q, permit));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Whether the handshake carries a key.
fn has_key(parts: &Parts) -> bool {
    parts.headers.contains_key(header::AUTHORIZATION) || parts.headers.contains_key("x-api-key")
}

/// The caller of an in-band `auth` message: the handshake as if it had carried the key.
async fn authenticate(state: &AppState, parts: &Parts, key: Option<&str>) -> Result<Caller, ApiError> {
    let mut parts = parts.clone();
    if let Some(k) = key.map(str::trim).filter(|k| !k.is_empty()) {
        let v = HeaderValue::from_str(&format!("Bearer {k}"))
            .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_key", "unknown API key"))?;
        parts.headers.insert(header::AUTHORIZATION, v);
    }
    Caller::from_request_parts(&mut parts, state).await
}

/// The close code for an error ending a stream.
fn close_code_for(e: &ApiError) -> u16 {
    match e.status {
        StatusCode::PAYLOAD_TOO_LARGE => close_code::SIZE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => close_code::UNSUPPORTED,
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY if e.code == "invalid_image" || e.code == "empty_body" => {
            close_code::UNSUPPORTED
        }
        StatusCode::REQUEST_TIMEOUT => close_code::NORMAL,
        StatusCode::SERVICE_UNAVAILABLE if e.code == "unavailable" => close_code::AWAY,
        StatusCode::SERVICE_UNAVAILABLE => close_code::AGAIN,
        s if s.is_server_error() => close_code::ERROR,
        _ => close_code::POLICY,
    }
}

/// Sends the error as a text message, then closes with the matching code.
async fn fail<S>(sink: &mut S, e: ApiError)
where
    S: SinkExt<Message> + Unpin,
{
    let text = ServerMessage::Error { code: e.code.clone(), message: e.message.clone() }.to_json();
    let _ = sink.send(Message::Text(text.into())).await;
    let reason: String = e.code.chars().take(120).collect();
    let _ = sink.send(Message::Close(Some(CloseFrame { code: close_code_for(&e), reason: Utf8Bytes::from(reason) }))).await;
}

/// Ends a stream before it started: the error, the close, and the client's answer (read for at
/// most [`CLOSE_WAIT`], ignoring frames).
async fn refuse(mut socket: WebSocket, e: ApiError) {
    fail(&mut socket, e).await;
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// What a client without a key on the handshake sent first.
enum First {
    /// An `auth` message, with its key if any.
    Auth(Option<String>),
    /// A frame: no key.
    Frame(bytes::Bytes),
    /// The connection ended.
    Gone,
}

async fn first_message(socket: &mut WebSocket) -> Result<First, ApiError> {
    let deadline = tokio::time::Instant::now() + FIRST_MESSAGE_WAIT;
    loop {
        let msg = match tokio::time::timeout_at(deadline, socket.recv()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    "send an `auth` message or a frame within 15 s of connecting",
                ));
            }
            Ok(None | Some(Err(_))) => return Ok(First::Gone),
            Ok(Some(Ok(m))) => m,
        };
        return match msg {
            Message::Binary(b) => Ok(First::Frame(b)),
            Message::Text(t) => match serde_json::from_str::<ClientMessage>(t.as_str()) {
                Ok(ClientMessage::Auth { key }) => Ok(First::Auth(key)),
                Err(e) => Err(ApiError::bad_request(
                    "invalid_message",
                    format!("the first text message is `{{\"type\":\"auth\",\"key\":\"…\"}}` ({e}); frames are binary messages"),
                )),
            },
            Message::Close(_) => Ok(First::Gone),
            Message::Ping(_) | Message::Pong(_) => continue,
        };
    }
}

/// One live stream, from the upgrade to the close.
async fn session(state: AppState, mut socket: WebSocket, parts: Parts, caller: Option<Caller>, q: LiveQuery, _permit: OwnedSemaphorePermit) {
    let mut first = None;
    let caller = match caller {
        Some(c) => Ok(c),
        None => match first_message(&mut socket).await {
            Ok(First::Auth(key)) => authenticate(&state, &parts, key.as_deref()).await,
            Ok(First::Frame(b)) => {
                first = Some(b);
                authenticate(&state, &parts, None).await
            }
            Ok(First::Gone) => return,
            Err(e) => Err(e),
        },
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return refuse(socket, e).await,
    };
    let settings = match live::prepare(&state, &caller.owner, &q).await {
        Ok(s) => s,
        Err(e) => return refuse(socket, e.into()).await,
    };
    if socket.send(Message::Text(settings.ready.to_json().into())).await.is_err() {
        return;
    }
    tracing::info!(owner = %caller.owner, ready = ?settings.ready, "live stream started");
    let mut stream = Stream::start(&state, settings);
    let (feed, fed) = (stream.feed(), stream.feed());
    if let Some(b) = first
        && let Err(e) = feed.offer(b)
    {
        return refuse(socket, e.into()).await;
    }
    let (mut sink, mut source) = socket.split();
    // The receive task: every frame into the stream's slot. After a bad frame or message it
    // reads on, ignoring what comes, until the client answers the close: a socket closed with
    // unread data would be reset, and the client might lose the error message.
    let (bad_tx, mut bad_rx) = mpsc::channel::<ApiError>(1);
    let mut receiver = tokio::spawn(async move {
        let mut refused = false;
        while let Some(msg) = source.next().await {
            let e = match msg {
                Ok(Message::Close(_)) => break,
                Err(e) if !refused => Some(ApiError::bad_request("invalid_message", format!("the WebSocket failed: {e}"))),
                Err(_) => break,
                _ if refused => None,
                Ok(Message::Binary(b)) => feed.offer(b).err().map(ApiError::from),
                Ok(Message::Text(_)) => Some(ApiError::bad_request(
                    "invalid_message",
                    "frames are binary messages; the only text message is `auth`, and only first",
                )),
                Ok(Message::Ping(_) | Message::Pong(_)) => None,
            };
            if let Some(e) = e {
                refused = true;
                let _ = bad_tx.send(e).await;
            }
        }
        feed.close();
    });
    let mut stats = tokio::time::interval_at(tokio::time::Instant::now() + STATS_EVERY, STATS_EVERY);
    let mut shutdown = state.shutdown.subscribe();
    // Frames received so far, and when that count last changed.
    let mut seen = (0u64, tokio::time::Instant::now());
    loop {
        tokio::select! {
            out = stream.next() => match out {
                Some(Output::Frame(jpeg)) => {
                    if sink.send(Message::Binary(jpeg.into())).await.is_err() {
                        break;
                    }
                }
                Some(Output::Failed(e)) => {
                    fail(&mut sink, e.into()).await;
                    break;
                }
                None => {
                    if let Ok(e) = bad_rx.try_recv() {
                        fail(&mut sink, e).await;
                    } else if !fed.is_closed() {
                        // Not closed by the client: the stylizer ended without a word (a panic).
                        fail(&mut sink, ApiError::internal("the live stylizer stopped")).await;
                    }
                    break;
                }
            },
            Some(e) = bad_rx.recv() => {
                fail(&mut sink, e).await;
                break;
            }
            _ = stats.tick() => {
                let now = stream.stats();
                if now.received != seen.0 {
                    seen = (now.received, tokio::time::Instant::now());
                } else if seen.1.elapsed() >= IDLE_LIMIT {
                    let message = format!("no frame for {} s: the stream is closed", IDLE_LIMIT.as_secs());
                    fail(&mut sink, ApiError::new(StatusCode::REQUEST_TIMEOUT, "idle", message)).await;
                    break;
                }
                let text = ServerMessage::Stats(now).to_json();
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            // (The watch's guard is dropped inside: it may not live across an await.)
            _ = async { drop(shutdown.wait_for(|v| *v).await) } => {
                fail(&mut sink, ApiError::unavailable("the server is shutting down")).await;
                break;
            }
        }
    }
    let end = stream.stats();
    tracing::info!(owner = %caller.owner, received = end.received, processed = end.processed, dropped = end.dropped, "live stream ended");
    drop(stream);
    // Answers the client's close (or flushes ours), then gives the client a moment to answer ours.
    let _ = sink.close().await;
    if tokio::time::timeout(CLOSE_WAIT, &mut receiver).await.is_err() {
        receiver.abort();
    }
}
