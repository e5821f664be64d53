//! The service for integrators: signed webhooks delivered in order and retried, idempotent
//! creation under concurrency, signed result links (expiry, tampering, key rotation), 304s, and
//! batches with their ZIP archive; on SQLite, and the webhook and batch paths on PostgreSQL.

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{PgDatabase, TestServer, config, content_jpeg, get, models_home, post_json, upload};
use serde_json::{Value, json};
use styleforge_core::library::builtin;
use styleforge_server::Config;
use styleforge_server::signing;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    status: u16,
}

/// A webhook receiver on 127.0.0.1 that answers 500 to its first `fail_first` requests, then 204.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/styleforge", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(i + 4);
                    }
                };
                let Some(head_end) = head_end else { continue };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers: HashMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[head_end..(head_end + len).min(buf.len())].to_vec();
                let mut all = seen.lock().unwrap();
                let status = if all.len() < fail_first { 500 } else { 204 };
                all.push(Received { headers, body, status });
                drop(all);
                let reason = if status == 500 { "Internal Server Error" } else { "No Content" };
                let _ = s.write_all(format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
            }
        });
        Self { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A configuration that may send webhooks to loopback receivers, and retries quickly.
fn hooks_config(mut c: Config) -> Config {
    c.webhook_networks = vec!["127.0.0.0/8".into()];
    c.webhook_backoff_ms = 100;
    c.webhook_backoff_max_secs = 1;
    c
}

/// Waits until every delivery of a job has been delivered or given up.
#[track_caller]
fn wait_deliveries(server: &TestServer, job: &str, n_at_least: usize) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let v = get(&server.url(&format!("/v1/jobs/{job}/deliveries")), None).ok_json(200);
        let items = v["items"].as_array().unwrap().clone();
        let settled = items.iter().all(|d| d["state"] == "delivered" || d["state"] == "failed");
        if items.len() >= n_at_least && settled {
            return items;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "deliveries did not settle: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stylises with a webhook whose receiver fails twice, then checks what it got: every request
/// signed with the owner's secret, the first event retried under the same id until it was
/// taken, events in order (start first, completed last), and the record of each delivery.
fn webhooks_scenario(server: &TestServer) {
    let receiver = Receiver::start(2);
    let secret = get(&server.url("/v1/webhook-secret"), None).ok_json(200)["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = upload(server, &content_jpeg(), None);
    let accepted = post_json(
        &server.url("/v1/stylize"),
        &json!({"image": id, "style": builtin::PAINTINGS[0].name, "max_size": 96,
                "webhook": receiver.url, "webhook_events": ["start", "progress", "completed"]}),
        None,
    )
    .ok_json(202);
    let job = accepted["job"].as_str().unwrap().to_string();
    let done = common::wait_job(server, &job, None, Duration::from_secs(120), |v| v["state"] == "succeeded");
    let deliveries = wait_deliveries(server, &job, 2);
    assert!(deliveries.iter().all(|d| d["state"] == "delivered"), "{deliveries:?}");
    let events: Vec<&str> = deliveries.iter().map(|d| d["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"start"), "{events:?}");
    assert_eq!(events.last(), Some(&"completed"), "{events:?}");
    assert!(events[1..events.len() - 1].iter().all(|e| *e == "progress"), "{events:?}");
    let seqs: Vec<i64> = deliveries.iter().map(|d| d["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    // The first event was refused twice, then taken; its record says so.
    assert_eq!(deliveries[0]["attempts"], 3, "{}", deliveries[0]);
    let statuses: Vec<i64> = deliveries[0]["history"].as_array().unwrap().iter().map(|a| a["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [500, 500, 204]);

    let got = receiver.received();
    assert_eq!(got.len(), deliveries.len() + 2, "{got:?}");
    let now = styleforge_server::db::now_ms() / 1000;
    for r in &got {
        let (mid, ts, sig) = (&r.headers["webhook-id"], &r.headers["webhook-timestamp"], &r.headers["webhook-signature"]);
        let ts: i64 = ts.parse().unwrap();
        assert!(signing::verify_webhook(&secret, mid, ts, &r.body, sig, now, 300), "signature of {mid}");
        assert!(!signing::verify_webhook("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", mid, ts, &r.body, sig, now, 300));
        assert_eq!(r.headers["content-type"], "application/json");
    }
    // The retries carry the first event's id; the taken requests come in event order.
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(got[1].headers["webhook-id"], got[2].headers["webhook-id"]);
    let taken: Vec<&Received> = got.iter().filter(|r| r.status == 204).collect();
    let ids: Vec<&str> = taken.iter().map(|r| r.headers["webhook-id"].as_str()).collect();
    let expected: Vec<&str> = deliveries.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected);
    let last: Value = serde_json::from_slice(&taken.last().unwrap().body).unwrap();
    assert_eq!(last["type"], "job.completed");
    assert_eq!(last["data"]["id"], job.as_str());
    assert_eq!(last["data"]["state"], "succeeded");
    assert_eq!(last["data"]["result"], done["result"]);
    let first: Value = serde_json::from_slice(&taken[0].body).unwrap();
    assert_eq!(first["type"], "job.start");
    assert_eq!(first["data"]["state"], "running");

    // After a rotation, deliveries carry a signature under the new secret and, for a day, one
    // under the old.
    let rotated = post_json(&server.url("/v1/webhook-secret"), &json!({}), None).ok_json(200)["secret"].as_str().unwrap().to_string();
    assert_ne!(rotated, secret);
    let accepted = post_json(
        &server.url("/v1/stylize"),
        &json!({"image": id, "style": builtin::PAINTINGS[0].name, "max_size": 64,
                "webhook": receiver.url, "webhook_events": ["completed"]}),
        None,
    )
    .ok_json(202);
    let job = accepted["job"].as_str().unwrap().to_string();
    let d = wait_deliveries(server, &job, 1);
    assert_eq!(d.len(), 1);
    let r = receiver.received().into_iter().find(|r| r.headers["webhook-id"] == d[0]["id"].as_str().unwrap()).unwrap();
    let (mid, ts, sig) = (&r.headers["webhook-id"], r.headers["webhook-timestamp"].parse::<i64>().unwrap(), &r.headers["webhook-signature"]);
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    let now = styleforge_server::db::now_ms() / 1000;
    assert!(signing::verify_webhook(&rotated, mid, ts, &r.body, sig, now, 300));
    assert!(signing::verify_webhook(&secret, mid, ts, &r.body, sig, now, 300));
}

#[test]
fn webhooks_are_signed_ordered_and_retried_until_taken() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(hooks_config(config(models_home(), data.path())));
    webhooks_scenario(&server);
    server.shutdown();
}

#[test]
fn webhooks_batches_idempotency_and_links_on_postgres() {
    let pg = PgDatabase::create();
    let data = tempfile::tempdir().unwrap();
    let mut c = hooks_config(config(models_home(), data.path()));
    c.database_url = Some(pg.url.clone());
    let server = TestServer::start(c);
    webhooks_scenario(&server);
    batch_scenario(&server);
    idempotency_scenario(&server);
    // A signed link with the key the server makes and keeps in the database.
    let image = upload(&server, &content_jpeg(), None);
    let done = post_json(&server.url("/v1/stylize"), &json!({"image": image, "style": builtin::PAINTINGS[0].name, "max_size": 64}), None).ok_json(200);
    let link = post_json(&server.url(&format!("/v1/results/{}/links", done["result"].as_str().unwrap())), &json!({"expires_in": 60}), None).ok_json(201);
    let url = link["url"].as_str().unwrap();
    assert_eq!(query_of(url)["kid"], "default");
    assert_eq!(get(url, None).status, 200);
    get(&url.replace("expires=", "expires=1"), None).assert_error(403, "invalid_signature");
    server.shutdown();
}

#[test]
fn webhooks_to_addresses_the_operator_has_not_allowed_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(models_home(), data.path()));
    let id = upload(&server, &content_jpeg(), None);
    let stylize = |extra: Value| {
        let mut body = json!({"image": id, "style": builtin::PAINTINGS[0].name, "max_size": 64});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        post_json(&server.url("/v1/stylize"), &body, None)
    };
    let receiver = Receiver::start(0);
    // Loopback, private and link-local (cloud metadata) addresses: refused by default.
    stylize(json!({"webhook": receiver.url})).assert_error(422, "webhook_not_allowed");
    stylize(json!({"webhook": "http://10.0.0.1/hook"})).assert_error(422, "webhook_not_allowed");
    stylize(json!({"webhook": "http://169.254.169.254/latest/meta-data"})).assert_error(422, "webhook_not_allowed");
    stylize(json!({"webhook": "http://[::1]:8080/"})).assert_error(422, "webhook_not_allowed");
    stylize(json!({"webhook": "http://localhost:8080/"})).assert_error(422, "webhook_not_allowed");
    stylize(json!({"webhook": "ftp://example.com/"})).assert_error(422, "invalid_webhook");
    stylize(json!({"webhook": "not a url"})).assert_error(422, "invalid_webhook");
    stylize(json!({"webhook": "http://user:pw@example.com/"})).assert_error(422, "invalid_webhook");
    stylize(json!({"webhook_events": ["completed"]})).assert_error(422, "invalid_webhook");
    stylize(json!({"webhook": "https://example.com/", "webhook_events": []})).assert_error(422, "invalid_webhook");
    stylize(json!({"webhook": "https://example.com/", "webhook_events": ["finished"]})).assert_error(422, "invalid_body");
    assert!(receiver.received().is_empty());
    // A gallery painting's thumbnail is the same for everyone: public, and revalidated by ETag.
    let thumb = get(&server.url(&format!("/v1/styles/{}/thumbnail?size=64", builtin::PAINTINGS[0].name)), None);
    assert_eq!(thumb.status, 200);
    assert!(thumb.header("cache-control").unwrap().starts_with("public"), "{:?}", thumb.headers);
    let etag = thumb.header("etag").unwrap().to_string();
    let again = common::get_with(&server.url(&format!("/v1/styles/{}/thumbnail?size=64", builtin::PAINTINGS[0].name)), None, &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
    server.shutdown();

    // A host allow-list refuses every other host, even a public one.
    let data = tempfile::tempdir().unwrap();
    let mut c = config(models_home(), data.path());
    c.webhook_hosts = vec!["hooks.example.com".into()];
    let server = TestServer::start(c);
    let id = upload(&server, &content_jpeg(), None);
    post_json(
        &server.url("/v1/stylize"),
        &json!({"image": id, "style": builtin::PAINTINGS[0].name, "webhook": "https://example.org/hook"}),
        None,
    )
    .assert_error(422, "webhook_not_allowed");
    server.shutdown();
}

/// POSTs JSON with an `Idempotency-Key`.
fn post_idempotent(url: &str, body: &Value, key: &str) -> common::Resp {
    common::post_bytes_with(url, "application/json", body.to_string().as_bytes(), None, &[("idempotency-key", key)])
}

#[test]
fn idempotent_creation_returns_the_first_answer_under_concurrency() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(models_home(), data.path()));
    idempotency_scenario(&server);
    server.shutdown();
}

/// Eight concurrent tries with one key make one job; the same key with another request is a
/// 409; uploads (raw and multipart) replay; errors that are the request's answer are kept.
fn idempotency_scenario(server: &TestServer) {
    let id = upload(server, &content_jpeg(), None);
    let url = server.url("/v1/stylize");
    let body = json!({"image": id, "style": builtin::PAINTINGS[1].name, "max_size": 64, "async": true});
    let jobs_before = get(&server.url("/v1/history?limit=100"), None).ok_json(200)["items"].as_array().unwrap().len();
    let answers: Vec<common::Resp> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| post_idempotent(&url, &body, "order-42"))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let jobs: Vec<String> = answers.iter().map(|r| r.ok_json(202)["job"].as_str().unwrap().to_string()).collect();
    assert!(jobs.iter().all(|j| *j == jobs[0]), "one job for every retry: {jobs:?}");
    let replayed = answers.iter().filter(|r| r.header("idempotent-replayed") == Some("true")).count();
    assert_eq!(replayed, 7, "all but the first are replays");
    assert!(answers.iter().all(|r| r.header("location") == Some(format!("/v1/jobs/{}", jobs[0]).as_str())));
    let history = get(&server.url("/v1/history?limit=100"), None).ok_json(200);
    let made = history["items"].as_array().unwrap().len();
    assert_eq!(made, jobs_before + 1, "one job in the history: {history}");

    // The same key with another request is refused and creates nothing.
    let other = json!({"image": id, "style": builtin::PAINTINGS[2].name, "max_size": 64, "async": true});
    post_idempotent(&url, &other, "order-42").assert_error(409, "idempotency_key_reused");
    // A new key is a new request.
    let second = post_idempotent(&url, &other, "order-43").ok_json(202);
    assert_ne!(second["job"], jobs[0].as_str());
    // Uploads (multipart with a new boundary on each try as well as raw bytes) are idempotent.
    let jpeg = content_jpeg();
    let up = |k: &str| common::post_bytes_with(&server.url("/v1/images"), "image/jpeg", &jpeg, None, &[("idempotency-key", k)]);
    let a = up("upload-1").ok_json(201);
    let b = up("upload-1");
    assert_eq!(b.ok_json(201)["id"], a["id"]);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    for boundary in ["AAAA1111", "BBBB2222"] {
        let form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        );
        let mut bytes = form.into_bytes();
        bytes.extend_from_slice(&jpeg);
        bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = common::post_bytes_with(
            &server.url("/v1/images"),
            &format!("multipart/form-data; boundary={boundary}"),
            &bytes,
            None,
            &[("idempotency-key", "form-1")],
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("idempotent-replayed").is_some(), boundary == "BBBB2222");
    }
    // Errors a retry should not get back are not kept: the next try runs afresh.
    let missing = json!({"image": "img_nope", "style": builtin::PAINTINGS[1].name});
    post_idempotent(&url, &missing, "bad-1").assert_error(404, "image_not_found");
    let again = post_idempotent(&url, &missing, "bad-1");
    again.assert_error(404, "image_not_found");
    assert_eq!(again.header("idempotent-replayed"), Some("true"), "a 404 is the answer to that request");
    // Any value is a key (kept as its hash), however long; an empty one is none.
    let long = "k".repeat(2000);
    let first = post_idempotent(&url, &body, &long).ok_json(202);
    assert_eq!(post_idempotent(&url, &body, &long).ok_json(202)["job"], first["job"]);
    let a = post_idempotent(&url, &body, "   ");
    let b = post_idempotent(&url, &body, "   ");
    assert_ne!(a.ok_json(202)["job"], b.ok_json(202)["job"]);
    assert!(b.header("idempotent-replayed").is_none());
}

/// The query of a URL as a map.
fn query_of(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| q.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .unwrap_or_default()
}

/// The path and query of an absolute URL.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}

#[test]
fn signed_links_expire_refuse_tampering_rotate_keys_and_revalidate() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(models_home(), data.path());
    c.anonymous = false;
    c.link_keys = vec!["k1:first-secret-0123456789".into()];
    let server = TestServer::start(c.clone());
    let key = server.block_on(styleforge_server::create_key(&server.config, "site", Default::default())).unwrap().key;
    let key = Some(key.as_str());
    let image = common::post_bytes(&server.url("/v1/images"), "image/jpeg", &content_jpeg(), key).ok_json(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = post_json(
        &server.url("/v1/stylize"),
        &json!({"image": image, "style": builtin::PAINTINGS[0].name, "max_size": 64}),
        key,
    )
    .ok_json(200);
    let result = done["result"].as_str().unwrap().to_string();
    // The result itself needs the key; it is immutable, and revalidates with a 304.
    get(&server.url(&format!("/v1/results/{result}")), None).assert_error(401, "missing_key");
    let own = get(&server.url(&format!("/v1/results/{result}")), key);
    assert_eq!(own.status, 200);
    let etag = own.header("etag").unwrap().to_string();
    let revalidated = common::get_with(&server.url(&format!("/v1/results/{result}")), key, &[("if-none-match", &etag)]);
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));
    let other = common::get_with(&server.url(&format!("/v1/results/{result}")), key, &[("if-none-match", "\"something-else\"")]);
    assert_eq!(other.status, 200);

    let link = |expires_in: u64| {
        post_json(&server.url(&format!("/v1/results/{result}/links")), &json!({"expires_in": expires_in}), key).ok_json(201)
    };
    let l = link(600);
    assert_eq!(l["kind"], "signed");
    let url = l["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&server.base), "{url}");
    let q = query_of(&url);
    assert_eq!(q["kid"], "k1");
    let public = get(&url, None);
    assert_eq!(public.status, 200, "{}", String::from_utf8_lossy(&public.body));
    assert_eq!(public.body, own.body);
    let cc = public.header("cache-control").unwrap().to_string();
    assert!(cc.starts_with("public, max-age=") && cc.ends_with(", immutable"), "{cc}");
    let max_age: i64 = cc["public, max-age=".len()..cc.len() - ", immutable".len()].parse().unwrap();
    assert!((590..=600).contains(&max_age), "max-age capped at the link's life: {cc}");
    assert_eq!(public.header("etag"), Some(etag.as_str()));
    assert_eq!(common::get_with(&url, None, &[("if-none-match", &etag)]).status, 304);

    // Tampering: another expiry, another result, another signature, an unknown key id.
    let p = path_of(&url);
    let base = p.split('?').next().unwrap().to_string();
    let later = q["expires"].parse::<i64>().unwrap() + 1000;
    get(&server.url(&format!("{base}?expires={later}&kid=k1&sig={}", q["sig"])), None).assert_error(403, "invalid_signature");
    let other_result = format!("/v1/public/results/res_0?expires={}&kid=k1&sig={}", q["expires"], q["sig"]);
    get(&server.url(&other_result), None).assert_error(403, "invalid_signature");
    let mut sig = q["sig"].clone();
    sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    get(&server.url(&format!("{base}?expires={}&kid=k1&sig={sig}", q["expires"])), None).assert_error(403, "invalid_signature");
    get(&server.url(&format!("{base}?expires={}&kid=k9&sig={}", q["expires"], q["sig"])), None).assert_error(403, "invalid_signature");
    get(&server.url(&base), None).assert_error(400, "invalid_query");
    // Expiry.
    let short = link(1)["url"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2100));
    get(&short, None).assert_error(403, "link_expired");
    // Lifetimes and presigned URLs without S3.
    post_json(&server.url(&format!("/v1/results/{result}/links")), &json!({"expires_in": 0}), key).assert_error(422, "invalid_parameter");
    post_json(&server.url(&format!("/v1/results/{result}/links")), &json!({"expires_in": 10_000_000}), key).assert_error(422, "invalid_parameter");
    post_json(&server.url(&format!("/v1/results/{result}/links")), &json!({"presigned": true}), key).assert_error(422, "presign_unavailable");
    post_json(&server.url("/v1/results/res_nope/links"), &json!({}), key).assert_error(404, "result_not_found");
    server.shutdown();

    // Rotation: the new key signs, the old one still verifies its links; once dropped, they stop.
    c.link_keys = vec!["k2:second-secret-0123456789".into(), "k1:first-secret-0123456789".into()];
    let server = TestServer::start(c.clone());
    assert_eq!(get(&server.url(&p), None).status, 200, "an old key's link during the rotation");
    let l2 = post_json(&server.url(&format!("/v1/results/{result}/links")), &json!({}), key).ok_json(201);
    assert_eq!(query_of(l2["url"].as_str().unwrap())["kid"], "k2");
    let p2 = path_of(l2["url"].as_str().unwrap());
    server.shutdown();
    c.link_keys = vec!["k2:second-secret-0123456789".into()];
    let server = TestServer::start(c);
    get(&server.url(&p), None).assert_error(403, "invalid_signature");
    assert_eq!(get(&server.url(&p2), None).status, 200);
    server.shutdown();
}

#[test]
fn presigned_urls_come_from_an_s3_store() {
    let blobs = styleforge_server::store::Blobs::from_url(
        "s3://results-bucket/styleforge",
        &[
            ("aws_access_key_id", "AKIDEXAMPLE"),
            ("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            ("aws_region", "us-east-1"),
            ("aws_endpoint", "http://127.0.0.1:9000"),
            ("aws_allow_http", "true"),
        ],
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sha = "ab".repeat(32);
    let url = rt.block_on(blobs.presigned_get(&sha, Duration::from_secs(120))).unwrap().unwrap();
    assert!(url.contains(&format!("styleforge/sha256/ab/{sha}")), "{url}");
    assert!(url.contains("X-Amz-Expires=120"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains("X-Amz-Credential=AKIDEXAMPLE"), "{url}");
    let local = styleforge_server::store::Blobs::local(tempfile::tempdir().unwrap().path()).unwrap();
    assert!(rt.block_on(local.presigned_get(&sha, Duration::from_secs(1))).is_none());
}

/// A batch of 3 images × 3 styles to completion, its archive, and batches refused whole.
fn batch_scenario(server: &TestServer) {
    let photos = ["cat_chelsea_256.jpg", "parrots_kodim23_256.jpg", "town_houses_kodim08_256.jpg"];
    let images: Vec<String> = photos
        .iter()
        .map(|p| upload(server, &std::fs::read(styleforge_core::shared::path(&format!("data/content/small/{p}"))).unwrap(), None))
        .collect();
    let styles: Vec<&str> = builtin::PAINTINGS.iter().take(3).map(|p| p.name).collect();
    let before = get(&server.url("/v1/history?limit=100"), None).ok_json(200)["items"].as_array().unwrap().len();
    // Refused whole: one unknown image among valid ones; too many jobs; a reserved option.
    let mut bad = images.clone();
    bad.push("img_missing".into());
    let r = post_json(&server.url("/v1/batches"), &json!({"images": bad, "styles": styles}), None);
    r.assert_error(404, "image_not_found");
    assert!(r.json()["message"].as_str().unwrap().contains("img_missing"));
    post_json(&server.url("/v1/batches"), &json!({"images": images, "styles": vec![styles[0]; 40]}), None)
        .assert_error(422, "batch_too_large");
    post_json(&server.url("/v1/batches"), &json!({"images": images, "styles": styles, "options": {"image": "x"}}), None)
        .assert_error(422, "invalid_parameter");
    post_json(&server.url("/v1/batches"), &json!({"images": images, "styles": styles, "options": {"colour": 1}}), None)
        .assert_error(422, "invalid_parameter");
    post_json(&server.url("/v1/batches"), &json!({"images": [], "styles": styles}), None).assert_error(422, "invalid_parameter");
    let after = get(&server.url("/v1/history?limit=100"), None).ok_json(200)["items"].as_array().unwrap().len();
    assert_eq!(before, after, "a refused batch creates no job");

    let created = post_json(
        &server.url("/v1/batches"),
        &json!({"images": images, "styles": styles, "options": {"max_size": 64, "format": "jpeg"}}),
        None,
    )
    .ok_json(201);
    assert_eq!(created["total"], 9);
    let id = created["id"].as_str().unwrap().to_string();
    let jobs = created["jobs"].as_array().unwrap();
    let pairs: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j["image"].as_str().unwrap().to_string(), j["style"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = images
        .iter()
        .flat_map(|i| styles.iter().map(move |s| (i.clone(), s.to_string())))
        .collect();
    assert_eq!(pairs, expected, "one job per image × style, in the order asked");
    assert!(jobs.iter().all(|j| j["batch"] == id.as_str()));
    let t = Instant::now();
    let status = loop {
        let v = get(&server.url(&format!("/v1/batches/{id}")), None).ok_json(200);
        let f = v["fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f));
        if v["state"] == "succeeded" {
            break v;
        }
        assert!(!["failed", "partial", "cancelled"].contains(&v["state"].as_str().unwrap()), "{v}");
        if v["counts"]["queued"].as_u64().unwrap() + v["counts"]["running"].as_u64().unwrap() > 0 {
            let early = get(&server.url(&format!("/v1/batches/{id}/results.zip")), None);
            if early.status == 409 {
                early.assert_error(409, "batch_not_finished");
            }
        }
        assert!(t.elapsed() < Duration::from_secs(300), "batch did not finish: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["counts"]["succeeded"], 9);
    assert_eq!(status["fraction"], 1.0);
    let zip = get(&server.url(&format!("/v1/batches/{id}/results.zip")), None);
    assert_eq!(zip.status, 200);
    assert_eq!(zip.content_type, "application/zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.body.clone())).unwrap();
    assert_eq!(archive.len(), 10);
    for i in 0..9 {
        let mut f = archive.by_index(i).unwrap();
        let (img, style) = &expected[i];
        assert_eq!(f.name().unwrap(), format!("{:03}-{img}-{style}.jpg", i + 1));
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(decoded.width().max(decoded.height()), 64);
    }
    let mut manifest = String::new();
    archive.by_name("manifest.json").unwrap().read_to_string(&mut manifest).unwrap();
    let m: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["jobs"].as_array().unwrap().len(), 9);
    get(&server.url("/v1/batches/batch_nope"), None).assert_error(404, "batch_not_found");
}

#[test]
fn a_batch_of_three_images_by_three_styles_completes_with_an_archive() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(models_home(), data.path());
    c.workers = 2;
    let server = TestServer::start(c);
    batch_scenario(&server);
    // A cancelled batch: its queued jobs end at once.
    let image = upload(&server, &content_jpeg(), None);
    let styles: Vec<&str> = builtin::PAINTINGS.iter().take(4).map(|p| p.name).collect();
    let b = post_json(&server.url("/v1/batches"), &json!({"images": [image], "styles": styles}), None).ok_json(201);
    let id = b["id"].as_str().unwrap();
    let after = post_json(&server.url(&format!("/v1/batches/{id}/cancel")), &json!({}), None).ok_json(200);
    assert!(after["counts"]["cancelled"].as_u64().unwrap() >= 1, "{after}");
    let t = Instant::now();
    loop {
        let v = get(&server.url(&format!("/v1/batches/{id}")), None).ok_json(200);
        if ["cancelled", "partial", "succeeded"].contains(&v["state"].as_str().unwrap()) {
            // Progress is the work done: 1 only when every job succeeded.
            assert_eq!(v["state"] == "succeeded", v["fraction"].as_f64().unwrap() == 1.0, "{v}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
}

#[test]
fn the_openapi_document_describes_webhooks_idempotency_links_and_batches() {
    let doc: Value = serde_json::from_str(&styleforge_server::openapi::document_json()).unwrap();
    for p in ["/v1/batches", "/v1/batches/{id}", "/v1/batches/{id}/results.zip", "/v1/results/{id}/links", "/v1/public/results/{id}", "/v1/webhook-secret", "/v1/jobs/{id}/deliveries"] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }
    let stylize = &doc["paths"]["/v1/stylize"]["post"];
    assert!(stylize["callbacks"]["jobEvent"]["{$request.body#/webhook}"]["post"].is_object(), "{stylize}");
    assert!(doc["webhooks"]["job-event"]["post"].is_object());
    let params = stylize["parameters"].as_array().unwrap();
    assert!(params.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
    assert!(doc["components"]["schemas"]["WebhookPayload"].is_object());
    assert!(doc["paths"]["/v1/public/results/{id}"]["get"]["security"].is_array());
}

/// Sends raw HTTP over TCP and returns what came back (until the server closes or `read` is
/// false: then the connection is dropped at once).
fn raw_http(addr: &str, request: &[u8], read: bool) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    if !read {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn a_request_whose_client_went_away_keeps_its_answer_for_the_retry_and_hosts_are_checked() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(models_home(), data.path()));
    let addr = server.base.trim_start_matches("http://").to_string();
    let id = upload(&server, &content_jpeg(), None);
    let body = json!({"image": id, "style": builtin::PAINTINGS[3].name, "max_size": 128}).to_string();
    let before = get(&server.url("/v1/history?limit=100"), None).ok_json(200)["items"].as_array().unwrap().len();
    // The client sends the whole request and hangs up before the answer.
    let req = format!(
        "POST /v1/stylize HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nidempotency-key: gone-1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_http(&addr, req.as_bytes(), false);
    // Its retry gets the answer of the request that ran, and nothing runs twice.
    let t = Instant::now();
    let retry = loop {
        let r = post_idempotent(&server.url("/v1/stylize"), &serde_json::from_str(&body).unwrap(), "gone-1");
        if r.status != 409 {
            break r;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{}", String::from_utf8_lossy(&r.body));
    };
    // (Replayed when the server had read the request before the client left, else run now.)
    assert_eq!(retry.status, 200, "{}", String::from_utf8_lossy(&retry.body));
    let after = get(&server.url("/v1/history?limit=100"), None).ok_json(200)["items"].as_array().unwrap().len();
    assert_eq!(after, before + 1, "the dropped request ran once, and the retry did not run again");

    // A Host that is not a host and port is not pasted into links.
    let result = retry.json()["result"].as_str().unwrap().to_string();
    for host in ["evil.example.com/x?y=", "a@evil.example.com", "\"><script>", "[::1"] {
        let body = r#"{"expires_in": 60}"#;
        let req = format!(
            "POST /v1/results/{result}/links HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = raw_http(&addr, req.as_bytes(), true);
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
        assert!(!answer.contains("evil.example.com/x"), "{answer}");
    }
    for host in [addr.as_str(), "styles.example.com", "[::1]:8080"] {
        let body = r#"{"expires_in": 60}"#;
        let req = format!(
            "POST /v1/results/{result}/links HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = raw_http(&addr, req.as_bytes(), true);
        assert!(answer.starts_with("HTTP/1.1 201") && answer.contains(&format!("http://{host}/v1/public/results/")), "{host}: {answer}");
    }
    server.shutdown();
}

/// A receiver that accepts connections and never answers.
fn hanging_receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hang", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    url
}

#[test]
fn one_keys_hanging_receiver_does_not_hold_up_another_keys_webhooks() {
    let data = tempfile::tempdir().unwrap();
    let mut c = hooks_config(config(models_home(), data.path()));
    c.anonymous = false;
    c.webhook_timeout_secs = 6;
    c.workers = 2;
    let server = TestServer::start(c);
    let key = |name: &str| server.block_on(styleforge_server::create_key(&server.config, name, Default::default())).unwrap().key;
    let (slow, fast) = (key("slow"), key("fast"));
    let hang = hanging_receiver();
    let ok = Receiver::start(0);
    let photo = |k: &str| {
        common::post_bytes(&server.url("/v1/images"), "image/jpeg", &content_jpeg(), Some(k)).ok_json(201)["id"].as_str().unwrap().to_string()
    };
    let slow_image = photo(&slow);
    // Ten jobs whose receiver hangs: more than every sender slot of the process.
    for _ in 0..10 {
        post_json(
            &server.url("/v1/stylize"),
            &json!({"image": slow_image, "style": builtin::PAINTINGS[0].name, "max_size": 32, "webhook": hang, "webhook_events": ["completed"]}),
            Some(&slow),
        )
        .ok_json(202);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let fast_image = photo(&fast);
    let job = post_json(
        &server.url("/v1/stylize"),
        &json!({"image": fast_image, "style": builtin::PAINTINGS[0].name, "max_size": 32, "webhook": ok.url, "webhook_events": ["completed"]}),
        Some(&fast),
    )
    .ok_json(202)["job"]
        .as_str()
        .unwrap()
        .to_string();
    let done = common::wait_job(&server, &job, Some(&fast), Duration::from_secs(60), |v| v["state"] == "succeeded");
    let t = Instant::now();
    while ok.received().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(30), "no delivery");
        std::thread::sleep(Duration::from_millis(20));
    }
    let finished = done["finished_at"].as_i64().unwrap();
    let d = get(&server.url(&format!("/v1/jobs/{job}/deliveries")), Some(&fast)).ok_json(200);
    let delivered = d["items"][0]["delivered_at"].as_i64().unwrap_or(i64::MAX);
    assert!(delivered - finished < 3000, "delivered {} ms after the job ended, behind another key's hanging receiver", delivered - finished);
    server.shutdown();
}

#[test]
fn progress_events_send_the_latest_progress_once_their_window_has_passed() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(hooks_config(config(models_home(), data.path())));
    // A photo big enough that stylising it lasts well over the 500 ms between progress events.
    let img = image::load_from_memory(&content_jpeg()).unwrap().resize_exact(2000, 1500, image::imageops::FilterType::Triangle);
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let id = common::post_bytes(&server.url("/v1/images"), "image/png", png.get_ref(), None).ok_json(201)["id"].as_str().unwrap().to_string();
    let receiver = Receiver::start(0);
    let job = post_json(
        &server.url("/v1/stylize"),
        &json!({"image": id, "style": builtin::PAINTINGS[0].name, "webhook": receiver.url, "webhook_events": ["progress", "completed"]}),
        None,
    )
    .ok_json(202)["job"]
        .as_str()
        .unwrap()
        .to_string();
    common::wait_job(&server, &job, None, Duration::from_secs(300), |v| v["state"] == "succeeded");
    let deliveries = wait_deliveries(&server, &job, 2);
    let stages: Vec<String> = deliveries
        .iter()
        .filter(|d| d["event"] == "progress")
        .map(|d| d["payload"]["data"]["progress"]["stage"].as_str().unwrap().to_string())
        .collect();
    eprintln!("progress stages sent: {stages:?}");
    // The stage the job spent its time in is sent, though it began within 500 ms of the first.
    assert!(stages.iter().any(|s| s.starts_with("stylizing")), "{stages:?}");
    let times: Vec<i64> = deliveries.iter().filter(|d| d["event"] == "progress").map(|d| d["created_at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 490), "at most one progress event every 500 ms: {times:?}");
    assert_eq!(deliveries.last().unwrap()["event"], "completed");
    server.shutdown();
}

#[test]
fn a_link_key_id_listed_twice_is_refused_at_start_up() {
    let mut c = Config::default();
    c.link_keys = vec!["k1:aaaaaaaaaaaaaaaaaaaa".into(), "k1:bbbbbbbbbbbbbbbbbbbb".into()];
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("`k1` is listed twice"), "{e}");
    c.link_keys = vec!["k2:aaaaaaaaaaaaaaaaaaaa".into(), "k1:bbbbbbbbbbbbbbbbbbbb".into()];
    c.validate().unwrap();
}
