//! The bad-input corpus (`tests/corpus/`) against the service: every unusual valid image is
//! uploaded (201) and stylised at exactly its size (200) by the fast and the built-in MicroAST
//! methods; every bad image and every malformed request gets a 4xx with a JSON `{code, message}`
//! body: no request of the corpus gets a 5xx, and nothing half-written is left in the store.

#[path = "../../../tests/corpus/generate.rs"]
mod corpus;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use serde_json::json;

fn mime(name: &str) -> &'static str {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("jpg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => "image/png",
    }
}

#[track_caller]
fn assert_4xx_json(r: &Resp, what: &str) {
    assert!((400..500).contains(&r.status), "{what}: status {} {}", r.status, String::from_utf8_lossy(&r.body));
    assert!(r.content_type.starts_with("application/json"), "{what}: JSON body, got {:?}", r.content_type);
    let v = r.json();
    assert!(v["code"].is_string() && v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
}

/// Sends a raw HTTP/1.1 request and returns the status and the body.
fn raw(base: &str, text: &str) -> (u16, String, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let head = head.replace('\n', "\r\n");
    let body = body.replace('\n', "\r\n");
    // Content lengths in the corpus count bare newlines; recount them for CRLF.
    let head: String = head
        .split("\r\n")
        .map(|l| match l.split_once(": ") {
            Some((k, _)) if k.eq_ignore_ascii_case("content-length") => format!("{k}: {}", body.len()),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let req = format!("{head}\r\nconnection: close\r\n\r\n{body}");
    let _ = s.write_all(req.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ctype = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_default();
    (status, ctype, body.to_string())
}

/// Expands `{IMAGE}` and `{LONG:N}` in a corpus request.
fn expand(text: &str, image: &str) -> String {
    let mut t = text.replace("{IMAGE}", image);
    while let Some(i) = t.find("{LONG:") {
        let end = i + t[i..].find('}').unwrap();
        let n: usize = t[i + 6..end].parse().unwrap();
        t.replace_range(i..=end, &"a".repeat(n));
    }
    t
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(leftovers(&p));
        } else {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains(".tmp") || name.starts_with('#') || name.ends_with(".part") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn no_corpus_request_gets_a_5xx() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(models_home(), data.path()));
    let (mut stylised, mut refused) = (0, 0);
    let files = corpus::files();
    for (name, bytes) in files.iter().filter(|(n, _)| n.starts_with("images/")) {
        let r = post_bytes(&server.url("/v1/images"), mime(name), bytes, None);
        let file = Path::new(name).file_name().unwrap().to_str().unwrap();
        if file.starts_with("animated") || file.ends_with(".gif") {
            // Animations (and GIF stills) are accepted and stylised frame by frame as jobs.
            let v = r.ok_json(201);
            assert_eq!(v["media"], "animation", "{name}: {v}");
            let want = styleforge_core::animation::probe(bytes).unwrap().unwrap();
            let job = post_json(&server.url("/v1/stylize"), &json!({"image": v["id"], "style": "candy"}), None).ok_json(202);
            let done = wait_job(&server, job["job"].as_str().unwrap(), None, Duration::from_secs(120), |j| j["state"] != "queued" && j["state"] != "running");
            assert_eq!(done["state"], "succeeded", "{name}: {done}");
            let out = get(&server.url(done["result_url"].as_str().unwrap()), None);
            let got = styleforge_core::animation::probe(&out.body).unwrap().unwrap_or_else(|| panic!("{name}: an animation back"));
            assert_eq!((got.format, got.frames, got.width, got.height), (want.format, want.frames, want.width, want.height), "{name}");
            stylised += 1;
            continue;
        }
        if !file.starts_with("ok_") {
            assert_4xx_json(&r, name);
            refused += 1;
            continue;
        }
        let id = r.ok_json(201)["id"].as_str().unwrap().to_string();
        let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().unwrap().into_dimensions().unwrap();
        for style in ["candy", "starry-night"] {
            let r = post_json(&server.url("/v1/stylize"), &json!({"image": id, "style": style}), None);
            let v = r.ok_json(200);
            assert_eq!((v["width"].as_u64().unwrap() as u32, v["height"].as_u64().unwrap() as u32), (w, h), "{name} with {style}");
            let out = get(&server.url(v["url"].as_str().unwrap()), None);
            assert_eq!(out.status, 200);
            assert_eq!(image::load_from_memory(&out.body).unwrap().into_rgb8().dimensions(), (w, h), "{name} with {style}");
        }
        stylised += 1;
    }
    // A valid image for the requests that name one.
    let image = upload(&server, &files.iter().find(|(n, _)| n == "images/ok_101x75.png").unwrap().1, None);
    for (name, text) in files.iter().filter(|(n, _)| n.starts_with("requests/")) {
        let text = expand(&String::from_utf8_lossy(text), &image);
        let (status, ctype, body) = raw(&server.base, &text);
        assert!((400..500).contains(&status), "{name}: status {status}: {body}");
        // An oversized head is refused by the HTTP layer (431) before any handler, without a body.
        if status != 431 {
            assert!(ctype.starts_with("application/json"), "{name}: JSON body, got {ctype:?}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
            assert!(v["code"].is_string() && v["message"].is_string(), "{name}: {v}");
        }
        refused += 1;
    }
    eprintln!("service: {stylised} images stylised at their size, {refused} requests refused with a 4xx");
    let left = leftovers(data.path());
    assert!(left.is_empty(), "nothing half-written: {left:?}");
}
