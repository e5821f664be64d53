//! The live camera filter, `GET /v1/live`, through a WebSocket client: a frame in, a stylised
//! JPEG of its size out; a burst of frames is dropped, not queued, and the stats count the drops;
//! bad frames end the stream with an error message and the server carries on; keys are checked
//! as on the other routes (headers, or a first `auth` message). Servers run with an empty
//! library: the built-in cartoon filters, MicroAST and paintings.


use std::io::Cursor;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;
use styleforge_core::shared;
use styleforge_server::KeyLimits;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// A server with an empty library (built-in models and paintings only), and its folders.
fn server(anonymous: bool) -> (TestServer, [tempfile::TempDir; 2]) {
    let (home, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cfg = config(home.path(), data.path());
    cfg.anonymous = anonymous;
    (TestServer::start(cfg), [home, data])
}

fn ws_url(s: &TestServer, query: &str) -> String {
    format!("{}/v1/live?{query}", s.base.replacen("http://", "ws://", 1))
}

/// Connects with extra handshake headers; panics when the handshake fails.
fn connect(s: &TestServer, query: &str, headers: &[(&str, &str)]) -> Socket {
    try_connect(s, query, headers).unwrap_or_else(|e| panic!("handshake to /v1/live?{query}: {e}"))
}

fn try_connect(s: &TestServer, query: &str, headers: &[(&str, &str)]) -> Result<Socket, tungstenite::Error> {
    let mut req = ws_url(s, query).into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (mut ws, resp) = tungstenite::connect(req)?;
    assert_eq!(resp.status().as_u16(), 101);
    if let MaybeTlsStream::Plain(t) = ws.get_mut() {
        t.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    }
    Ok(ws)
}

/// A camera-like frame: a shared photo scaled to `w`×`h`, as JPEG (quality 80).
fn frame(photo: &str, w: u32, h: u32) -> Vec<u8> {
    let img = image::open(shared::path(&format!("data/content/{photo}"))).unwrap();
    let img = img.resize_to_fill(w, h, image::imageops::FilterType::Triangle).to_rgb8();
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&img).unwrap();
    out.into_inner()
}

/// What the server sent: a frame, or a text message parsed.
#[derive(Debug)]
enum Got {
    Frame(Vec<u8>),
    Text(Value),
    Closed(Option<(CloseCode, String)>),
}

fn next(ws: &mut Socket) -> Got {
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => return Got::Frame(b.to_vec()),
            Ok(Message::Text(t)) => return Got::Text(serde_json::from_str(t.as_str()).expect("text messages are JSON")),
            Ok(Message::Close(c)) => return Got::Closed(c.map(|c| (c.code, c.reason.to_string()))),
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Got::Closed(None),
            Err(e) => panic!("reading the socket: {e}"),
        }
    }
}

/// Connects without a key (an anonymous server), says so in the first message, and reads the
/// `ready` message.
fn start(s: &TestServer, query: &str) -> Socket {
    let mut ws = connect(s, query, &[]);
    ws.send(Message::Text(r#"{"type":"auth"}"#.into())).unwrap();
    ready(&mut ws);
    ws
}

/// Reads until the `ready` message, which must come first.
fn ready(ws: &mut Socket) -> Value {
    match next(ws) {
        Got::Text(v) if v["type"] == "ready" => v,
        other => panic!("expected `ready` first, got {other:?}"),
    }
}

/// Reads until the next stylised frame (skipping stats).
fn next_frame(ws: &mut Socket) -> Vec<u8> {
    loop {
        match next(ws) {
            Got::Frame(b) => return b,
            Got::Text(v) if v["type"] == "stats" => {}
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// Reads until an error message and the close that follows; returns the error and the close code.
fn error_and_close(ws: &mut Socket) -> (Value, Option<CloseCode>) {
    let error = loop {
        match next(ws) {
            Got::Text(v) if v["type"] == "error" => break v,
            Got::Text(v) if v["type"] == "stats" || v["type"] == "ready" => {}
            Got::Frame(_) => {}
            other => panic!("expected an error message, got {other:?}"),
        }
    };
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    let code = loop {
        match next(ws) {
            Got::Closed(c) => break c.map(|c| c.0),
            Got::Frame(_) | Got::Text(_) => {}
        }
    };
    (error, code)
}

/// Mean absolute difference per channel (0..255) between two images of one size.
fn mean_diff(a: &[u8], b: &[u8]) -> f64 {
    let (a, b) = (image::load_from_memory(a).unwrap().to_rgb8(), image::load_from_memory(b).unwrap().to_rgb8());
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64
}

fn send(ws: &mut Socket, bytes: &[u8]) {
    ws.send(Message::Binary(bytes.to_vec().into())).unwrap();
}

#[test]
fn a_frame_comes_back_stylised_in_its_size_with_the_filter_and_with_microast() {
    let (s, _dirs) = server(true);
    for (query, method) in [("style=cartoon-paprika", "cartoon"), ("style=starry-night", "microast")] {
        let mut ws = connect(&s, query, &[]);
        ws.send(Message::Text(r#"{"type":"auth","key":null}"#.into())).unwrap();
        let r = ready(&mut ws);
        assert_eq!(r["method"], method, "{r}");
        assert_eq!((r["max_long_side"].as_u64(), r["max_short_side"].as_u64()), (Some(1280), Some(720)), "{r}");
        assert!((r["temporal_weight"].as_f64().unwrap() - 0.7).abs() < 1e-6, "the consistent mode is the default: {r}");
        for (i, photo) in ["lighthouse_kodim21.jpg", "parrots_kodim23.jpg"].into_iter().enumerate() {
            let input = frame(photo, 320, 240);
            let t = Instant::now();
            send(&mut ws, &input);
            let out = next_frame(&mut ws);
            let (f, w, h) = styleforge_core::image_io::probe(&out).unwrap();
            assert_eq!((f.mime(), w, h), ("image/jpeg", 320, 240), "frame {i} of {query}");
            let d = mean_diff(&input, &out);
            println!("{query}: frame {i} in {} ms, mean difference from the camera frame {d:.1}", t.elapsed().as_millis());
            assert!(d > 12.0, "{query}: the frame is stylised (mean difference {d:.1})");
        }
        // A portrait frame, and a frame of another size: the stream starts afresh at that size.
        let input = frame("portrait_woman_kodim04.jpg", 240, 320);
        send(&mut ws, &input);
        let out = next_frame(&mut ws);
        assert_eq!(styleforge_core::image_io::probe(&out).unwrap().1, 240);
        ws.close(None).unwrap();
        while !matches!(next(&mut ws), Got::Closed(_)) {}
    }
    s.shutdown();
}

#[test]
fn a_burst_of_frames_is_dropped_not_queued_and_the_stats_count_the_drops() {
    let (s, _dirs) = server(true);
    let mut ws = start(&s, "style=cartoon-shinkai&temporal_weight=0.5");
    let photos = ["lighthouse_kodim21.jpg", "parrots_kodim23.jpg", "hats_kodim03.jpg", "chicago.jpg"];
    let frames: Vec<Vec<u8>> = photos.iter().map(|p| frame(p, 320, 240)).collect();
    for i in 0..20 {
        send(&mut ws, &frames[i % frames.len()]);
    }
    let t = Instant::now();
    let (mut replies, mut last) = (0u64, Value::Null);
    while t.elapsed() < Duration::from_secs(120) {
        match next(&mut ws) {
            Got::Frame(_) => replies += 1,
            Got::Text(v) if v["type"] == "stats" => {
                println!("stats: {v}");
                let done = v["received"] == 20 && v["processed"].as_u64().unwrap() + v["dropped"].as_u64().unwrap() == 20;
                last = v;
                if done {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let processed = last["processed"].as_u64().unwrap();
    let dropped = last["dropped"].as_u64().unwrap();
    assert_eq!(last["received"], 20, "every frame was counted: {last}");
    assert_eq!(processed + dropped, 20, "each frame was stylised or dropped: {last}");
    assert_eq!(replies, processed, "one reply per stylised frame: {last}");
    assert!(replies < 20 && dropped > 0, "frames sent faster than the server stylises are dropped: {replies} replies, {last}");
    assert!(last["ms"].is_number() || last["ms"].is_null(), "{last}");
    println!("burst of 20: {replies} stylised, {dropped} dropped");
    // The stream goes on: the next frame comes back.
    send(&mut ws, &frames[0]);
    next_frame(&mut ws);
    ws.close(None).unwrap();
    s.shutdown();
}

#[test]
fn bad_frames_end_the_stream_with_an_error_and_the_server_carries_on() {
    let (s, _dirs) = server(true);
    let cases: [(&str, Vec<u8>, &str, CloseCode); 4] = [
        ("garbage", b"this is not a picture, just text pretending to be one".to_vec(), "unsupported_format", CloseCode::Unsupported),
        ("truncated", frame("parrots_kodim23.jpg", 320, 240)[..2000].to_vec(), "invalid_image", CloseCode::Unsupported),
        ("too large", frame("parrots_kodim23.jpg", 1920, 1080), "frame_too_large", CloseCode::Size),
        ("empty", Vec::new(), "empty_body", CloseCode::Unsupported),
    ];
    for (what, bytes, code, close) in cases {
        let mut ws = start(&s, "style=cartoon-paprika");
        send(&mut ws, &bytes);
        let (e, c) = error_and_close(&mut ws);
        println!("{what}: {e}, close {c:?}");
        assert_eq!(e["code"], code, "{what}: {e}");
        assert_eq!(c, Some(close), "{what}");
    }
    // A text message where a frame belongs.
    let mut ws = start(&s, "style=cartoon-paprika");
    ws.send(Message::Text("hello".into())).unwrap();
    assert_eq!(error_and_close(&mut ws).0["code"], "invalid_message");
    // The server is fine: a new stream stylises.
    assert_eq!(get(&s.url("/healthz"), None).status, 200);
    let mut ws = start(&s, "style=cartoon-paprika");
    send(&mut ws, &frame("lighthouse_kodim21.jpg", 320, 240));
    assert_eq!(styleforge_core::image_io::probe(&next_frame(&mut ws)).unwrap().1, 320);
    ws.close(None).unwrap();
    s.shutdown();
}

#[test]
fn styles_and_queries_are_checked() {
    let (s, _dirs) = server(true);
    for (query, code) in [
        ("style=no-such-style", "style_not_found"),
        ("style=starry-night&method=gatys", "wrong_method"),
        ("style=cartoon-paprika&method=microast", "wrong_method"),
    ] {
        let mut ws = connect(&s, query, &[]);
        send(&mut ws, &frame("parrots_kodim23.jpg", 320, 240));
        let (e, close) = error_and_close(&mut ws);
        assert_eq!(e["code"], code, "{query}: {e}");
        assert_eq!(close, Some(CloseCode::Policy), "{query}");
    }
    // Invalid queries and plain requests are refused before the upgrade.
    get(&s.url("/v1/live?style=starry-night&strength=2"), None).assert_error(400, "invalid_parameter");
    get(&s.url("/v1/live?strength=1"), None).assert_error(400, "invalid_query");
    get(&s.url("/v1/live?style=starry-night"), None).assert_error(426, "websocket_required");
    let doc = get(&s.url("/v1/openapi.json"), None).ok_json(200);
    assert!(doc["paths"]["/v1/live"]["get"].is_object(), "documented in the OpenAPI document");
    assert!(doc["components"]["schemas"]["ServerMessage"].is_object());
    s.shutdown();
}

#[test]
fn keys_are_checked_on_the_handshake_or_in_a_first_auth_message() {
    let (s, _dirs) = server(false);
    let cfg = s.config.clone();
    let key = s.block_on(styleforge_server::create_key(&cfg, "live", KeyLimits::default())).unwrap();
    let site = "http://site.example";
    let pk = s
        .block_on(styleforge_server::create_publishable_key(&cfg, "site", KeyLimits::default(), &[site.to_string()]))
        .unwrap();
    let photo = frame("lighthouse_kodim21.jpg", 320, 240);
    let q = "style=cartoon-paprika";

    // A key in the handshake's headers: checked before the upgrade.
    let mut ws = connect(&s, q, &[("authorization", &format!("Bearer {}", key.key))]);
    ready(&mut ws);
    send(&mut ws, &photo);
    next_frame(&mut ws);
    ws.close(None).unwrap();
    match try_connect(&s, q, &[("authorization", "Bearer sf_wrong")]) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        other => panic!("a wrong key is refused at the handshake: {:?}", other.map(|_| ())),
    }

    // Browsers: the key as the first message.
    let mut ws = connect(&s, q, &[]);
    ws.send(Message::Text(format!(r#"{{"type":"auth","key":"{}"}}"#, key.key).into())).unwrap();
    ready(&mut ws);
    send(&mut ws, &photo);
    next_frame(&mut ws);
    ws.close(None).unwrap();

    // No key on a server that needs one; a wrong key; a malformed first message.
    let mut ws = connect(&s, q, &[]);
    send(&mut ws, &photo);
    let (e, close) = error_and_close(&mut ws);
    assert_eq!((e["code"].as_str(), close), (Some("missing_key"), Some(CloseCode::Policy)), "{e}");
    let mut ws = connect(&s, q, &[]);
    ws.send(Message::Text(r#"{"type":"auth","key":"sf_nope"}"#.into())).unwrap();
    assert_eq!(error_and_close(&mut ws).0["code"], "invalid_key");
    let mut ws = connect(&s, q, &[]);
    ws.send(Message::Text(r#"{"key":"x"}"#.into())).unwrap();
    assert_eq!(error_and_close(&mut ws).0["code"], "invalid_message");

    // A publishable key: from its site only (the handshake's Origin).
    let auth = format!(r#"{{"type":"auth","key":"{}"}}"#, pk.key);
    let mut ws = connect(&s, q, &[("origin", site)]);
    ws.send(Message::Text(auth.clone().into())).unwrap();
    ready(&mut ws);
    send(&mut ws, &photo);
    next_frame(&mut ws);
    ws.close(None).unwrap();
    let mut ws = connect(&s, q, &[("origin", "http://elsewhere.example")]);
    ws.send(Message::Text(auth.into())).unwrap();
    assert_eq!(error_and_close(&mut ws).0["code"], "origin_not_allowed");
    s.shutdown();
}
