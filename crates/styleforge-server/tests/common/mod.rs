#![allow(dead_code)]
//! Helpers for the server tests: a models home built once, servers on 127.0.0.1:0 with their
//! own data directories, and a small blocking HTTP client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use styleforge_core::library::{Library, ModelInfo};
use styleforge_core::shared;
use styleforge_server::{Config, ServerHandle};

pub mod stats;

/// A models home with: `candy` and `seascape` (fast), `adain`, `vgg19`, `tiny-painter`
/// (CycleGAN), `tiny-faces` (DCGAN). Built once (kept under
/// the target directory between runs).
pub fn models_home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("styleforge-server-models-v3");
        if root.join("ready").exists() {
            return root;
        }
        let _ = std::fs::remove_dir_all(&root);
        let lib = Library::new(&root);
        fast_models(&lib);
        lib.import(
            &[
                shared::path("parity/adain_vgg_normalised_relu4_1.pth"),
                shared::path("parity/adain_decoder.pth"),
            ],
            ModelInfo {
                name: "adain".into(),
                title: "AdaIN (parity weights)".into(),
                description: "Arbitrary style transfer encoder and decoder".into(),
                ..Default::default()
            },
            true,
        )
        .unwrap();
        lib.import(
            &[shared::path("parity/vgg19_features_f16.pth")],
            ModelInfo {
                name: "vgg19".into(),
                title: "VGG-19 features (parity weights)".into(),
                ..Default::default()
            },
            true,
        )
        .unwrap();
        lib.import(
            &[shared::path("parity/cyclegan_G_ngf32_6blocks.pth")],
            ModelInfo {
                name: "tiny-painter".into(),
                title: "Tiny painter (CycleGAN parity weights)".into(),
                tags: vec!["gan".into(), "painting".into()],
                description: "A small CycleGAN generator".into(),
                ..Default::default()
            },
            true,
        )
        .unwrap();
        lib.import(
            &[shared::path("parity/dcgan_netG_ngf32.pth")],
            ModelInfo {
                name: "tiny-faces".into(),
                title: "Tiny DCGAN (parity weights)".into(),
                ..Default::default()
            },
            true,
        )
        .unwrap();
        std::fs::write(root.join("ready"), b"ok").unwrap();
        root
    })
}

/// Imports the two fast-style models used by the tests.
pub fn fast_models(lib: &Library) {
    let dir = shared::path("models/fast_style_pytorch");
    lib.import(
        &[dir.join("candy_nc8.safetensors")],
        ModelInfo {
            name: "candy".into(),
            title: "Candy".into(),
            tags: vec!["colourful".into(), "abstract".into(), "bright".into()],
            description: "Bright candy colours in a stained-glass pattern".into(),
            ..Default::default()
        },
        true,
    )
    .unwrap();
    lib.import(
        &[dir.join("mosaic_nc8.safetensors")],
        ModelInfo {
            name: "seascape".into(),
            title: "Seascape".into(),
            tags: vec!["sea".into(), "storm".into(), "waves".into()],
            description: "Dark waves under a stormy sky".into(),
            ..Default::default()
        },
        true,
    )
    .unwrap();
}

/// A configuration for tests: port 0, anonymous, one worker, fast polling.
pub fn config(home: &Path, data: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        home: home.to_path_buf(),
        data_dir: Some(data.to_path_buf()),
        anonymous: true,
        workers: 1,
        poll_ms: 100,
        lease_secs: 30,
        shutdown_grace_secs: 5,
        ..Config::default()
    }
}

/// A server on its own runtime.
pub struct TestServer {
    rt: tokio::runtime::Runtime,
    handle: Option<ServerHandle>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its configuration.
    pub config: Config,
}

impl TestServer {
    pub fn start(config: Config) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (addr, handle) = rt
            .block_on(styleforge_server::start(config.clone()))
            .unwrap();
        Self {
            rt,
            handle: Some(handle),
            base: format!("http://{addr}"),
            config,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Graceful shutdown.
    pub fn shutdown(mut self) {
        let h = self.handle.take().unwrap();
        self.rt.block_on(h.shutdown()).unwrap();
    }

    /// Stops at once, as if the process died.
    pub fn kill(mut self) {
        let h = self.handle.take().unwrap();
        self.rt.block_on(h.kill());
    }

    /// Runs a future on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.kill());
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a JSON error with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}, got {}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.content_type.starts_with("application/json"),
            "error body is JSON: {:?}",
            self.content_type
        );
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error has a message: {v}"
        );
    }

    #[track_caller]
    pub fn ok_json(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }
}

fn agent() -> &'static ureq::Agent {
    static A: OnceLock<ureq::Agent> = OnceLock::new();
    A.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into()
    })
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("request sent");
    let status = r.status().as_u16();
    let headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    Resp {
        status,
        content_type,
        headers,
        body,
    }
}

/// Request headers: an optional API key plus extras.
pub fn get(url: &str, key: Option<&str>) -> Resp {
    let mut req = agent().get(url);
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    finish(req.call())
}

pub fn delete(url: &str, key: Option<&str>) -> Resp {
    let mut req = agent().delete(url);
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    finish(req.call())
}

pub fn post_bytes(url: &str, content_type: &str, body: &[u8], key: Option<&str>) -> Resp {
    let mut req = agent().post(url).header("content-type", content_type);
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    finish(req.send(body))
}

/// `POST` with extra headers.
pub fn post_bytes_with(url: &str, content_type: &str, body: &[u8], key: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().post(url).header("content-type", content_type);
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.send(body))
}

/// `GET` with extra headers.
pub fn get_with(url: &str, key: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}

pub fn post_json(url: &str, body: &Value, key: Option<&str>) -> Resp {
    post_bytes(url, "application/json", body.to_string().as_bytes(), key)
}

pub fn put_json(url: &str, body: &Value, key: Option<&str>) -> Resp {
    let mut req = agent().put(url).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    finish(req.send(body.to_string().as_bytes()))
}

/// `OPTIONS` with headers.
pub fn options(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().options(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}

/// A multipart form with one file field and text fields.
pub fn multipart(file_field: &str, file: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "styleforgeTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"upload.jpg\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

/// Reads a job's event stream until its `done` event (or the stream ends).
pub fn follow_events(url: &str, key: Option<&str>) -> Vec<SseEvent> {
    let mut req = agent().get(url);
    if let Some(k) = key {
        req = req.header("authorization", &format!("Bearer {k}"));
    }
    let resp = req.call().expect("events");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let reader = BufReader::new(resp.into_body().into_reader());
    let mut out = Vec::new();
    let (mut event, mut data) = (String::new(), String::new());
    for line in reader.lines() {
        let line = line.unwrap();
        if line.is_empty() {
            if !data.is_empty() {
                let ev = SseEvent {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        event.clone()
                    },
                    data: serde_json::from_str(&data).unwrap(),
                };
                let done = ev.event == "done";
                out.push(ev);
                if done {
                    break;
                }
            }
            event.clear();
            data.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    out
}

/// Polls a job until `pred` holds for its status (or panics after `timeout`).
#[track_caller]
pub fn wait_job(
    server: &TestServer,
    id: &str,
    key: Option<&str>,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let t = Instant::now();
    loop {
        let v = get(&server.url(&format!("/v1/jobs/{id}")), key).ok_json(200);
        if pred(&v) {
            return v;
        }
        assert!(
            t.elapsed() < timeout,
            "job {id} did not reach the expected state: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small content photo (JPEG bytes).
pub fn content_jpeg() -> Vec<u8> {
    std::fs::read(shared::path("data/content/small/cat_chelsea_256.jpg")).unwrap()
}

/// An image file resized to fit `side` and encoded as PNG.
pub fn small_png(rel: &str, side: u32) -> Vec<u8> {
    let img = image::open(shared::path(rel)).unwrap();
    let img = img.resize_exact(side, side, image::imageops::FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Uploads an image and returns its id.
pub fn upload(server: &TestServer, bytes: &[u8], key: Option<&str>) -> String {
    let v = post_bytes(&server.url("/v1/images"), "image/jpeg", bytes, key).ok_json(201);
    v["id"].as_str().unwrap().to_string()
}

/// Uploads a custom style image and returns its id.
pub fn upload_style(server: &TestServer, bytes: &[u8], key: Option<&str>) -> String {
    let v = post_bytes(
        &server.url("/v1/styles?title=Test%20style&tags=paint,test"),
        "image/png",
        bytes,
        key,
    )
    .ok_json(201);
    v["name"].as_str().unwrap().to_string()
}

/// The PostgreSQL server the tests use, as an administrator URL: `$STYLEFORGE_TEST_POSTGRES`,
/// else `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn pg_admin_url() -> String {
    std::env::var("STYLEFORGE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn pg_admin(sql: String) -> Result<(), String> {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&admin).await.map_err(|e| {
            format!(
                "PostgreSQL is not reachable at {admin}: {e}\n\
                 These tests need a running PostgreSQL server; start one, or point \
                 STYLEFORGE_TEST_POSTGRES at an administrator URL."
            )
        })?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        c.close().await.map_err(|e| e.to_string())
    })
}

/// A fresh PostgreSQL database with a unique name, dropped when this value is.
pub struct PgDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

impl PgDatabase {
    /// Creates the database (panics with a clear message when PostgreSQL is unreachable).
    pub fn create() -> Self {
        let name = format!("sf_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = pg_admin(format!("CREATE DATABASE {name}")) {
            panic!("{e}");
        }
        let admin = pg_admin_url();
        let base = admin.split('?').next().unwrap();
        let (root, _) = base.rsplit_once('/').unwrap();
        Self {
            url: format!("{root}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Err(e) = pg_admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}
