//! Browser tests of the web page and the widget: servers on 127.0.0.1:0 with the test models
//! (real fast-style networks from the shared data), or with an empty library (the built-in
//! paintings and MicroAST), driven in headless Chromium by
//! playwright-core scripts in `e2e/`. `scripts/install-browser.sh` (run by `.ci/run`) installs
//! Debian's chromium and the e2e folder's npm packages; without them these tests fail and say so.
//! Screenshots go to `$STYLEFORGE_E2E_SHOTS` (default `target/e2e-shots`).


use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use styleforge_core::shared;
use styleforge_server::KeyLimits;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("STYLEFORGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "Chromium is not installed at {} (set STYLEFORGE_CHROMIUM to use another): run \
         scripts/install-browser.sh, as .ci/run does, to install Debian's chromium and playwright-core",
        path.display()
    );
    path
}

fn e2e_dir() -> PathBuf {
    let dir = repo().join("e2e");
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed in {}: run scripts/install-browser.sh (it runs `npm ci` there)",
        dir.display()
    );
    dir
}

fn shots_dir() -> PathBuf {
    let dir = std::env::var_os("STYLEFORGE_E2E_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("../e2e-shots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// Runs `node e2e/<script>` with the environment given and asserts that it passed.
fn node(script: &str, vars: &[(&str, String)]) {
    let chromium = chromium();
    let dir = e2e_dir();
    let t = Instant::now();
    let out = Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("STYLEFORGE_CHROMIUM", &chromium)
        .env("STYLEFORGE_E2E_SHOTS", shots_dir())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("running node (Node.js 20 or newer is needed for the browser tests)");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "e2e/{script} failed ({}) after {:.1} s; see its output above",
        out.status,
        t.elapsed().as_secs_f64()
    );
    println!("e2e/{script} passed in {:.1} s", t.elapsed().as_secs_f64());
}

/// A tiny web server for a page on another origin: `/` answers `html`, `/photo.jpg` a photo.
struct HostPage {
    origin: String,
}

impl HostPage {
    fn bind() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", l.local_addr().unwrap());
        (l, origin)
    }

    fn serve(listener: TcpListener, origin: String, html: String, photo: Vec<u8>) -> Self {
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (html, photo) = (html.clone(), photo.clone());
                std::thread::spawn(move || answer(stream, &html, &photo));
            }
        });
        Self { origin }
    }
}

fn answer(mut s: TcpStream, html: &str, photo: &[u8]) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body): (&str, &str, &[u8]) = match path {
        "/" => ("200 OK", "text/html; charset=utf-8", html.as_bytes()),
        "/photo.jpg" => ("200 OK", "image/jpeg", photo),
        _ => ("404 Not Found", "text/plain", b"not found"),
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(body);
}

/// A social site's page: a post image marked for restyling and an avatar picker, under CSS that
/// would break a widget living in the page's own DOM.
fn host_html(api: &str, key: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Example social site</title>
<style>
  body {{ margin: 0; background: #fbf7ef; color: #3b2f22; font-family: Georgia, serif; }}
  * {{ letter-spacing: 0.2em; }}
  button {{ display: none !important; }}
  .wrap {{ max-width: 720px; margin: 0 auto; padding: 20px 16px 40px; }}
  header {{ background: #3b2f22; color: #fbf7ef; padding: 14px 16px; font-size: 20px; }}
  img.post {{ display: block; width: 100%; max-width: 560px; border-radius: 10px; }}
  h2 {{ font-size: 18px; margin: 28px 0 10px; }}
</style></head>
<body>
<header>Example social site</header>
<div class="wrap">
  <h2>New post</h2>
  <img class="post" id="post" src="/photo.jpg" alt="A photo to share" data-styleforge>
  <h2>Your profile picture</h2>
  <div id="avatar" data-styleforge-avatar></div>
</div>
<script>
  window.__key = "{key}";
  window.__results = [];
  window.__errors = [];
  document.addEventListener("styleforge:result", (e) => {{
    const d = e.detail;
    window.__results.push({{ mode: d.mode, style: d.style && d.style.name, size: d.blob.size, type: d.blob.type,
      url: d.url, width: d.width, height: d.height, target: e.target.id }});
  }});
  document.addEventListener("styleforge:error", (e) => window.__errors.push(e.detail));
</script>
<script src="{api}/widget.js" data-key="{key}" async></script>
</body></html>
"#
    )
}

#[test]
fn page_in_chromium() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let keyed_data = tempfile::tempdir().unwrap();
    let mut keyed_cfg = config(models_home(), keyed_data.path());
    keyed_cfg.anonymous = false;
    let keyed = TestServer::start(keyed_cfg.clone());
    let key = keyed
        .block_on(styleforge_server::create_key(
            &keyed_cfg,
            "page",
            KeyLimits::default(),
        ))
        .unwrap();

    node(
        "page.mjs",
        &[
            ("STYLEFORGE_URL", format!("{}/", s.base)),
            (
                "STYLEFORGE_PHOTO",
                shared::path("data/content/parrots_kodim23.jpg")
                    .display()
                    .to_string(),
            ),
            (
                "STYLEFORGE_STYLE1",
                shared::path("data/styles/starry_night_van_gogh.jpg")
                    .display()
                    .to_string(),
            ),
            (
                "STYLEFORGE_STYLE2",
                shared::path("data/styles/great_wave_hokusai.jpg")
                    .display()
                    .to_string(),
            ),
            ("STYLEFORGE_KEYED_URL", format!("{}/", keyed.base)),
            ("STYLEFORGE_KEY", key.key.clone()),
        ],
    );

    // What the page did, as the API sees it.
    let history = get(&s.url("/v1/history?limit=100"), None).ok_json(200);
    let jobs: Vec<(String, String)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["method"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (method, state) in [
        ("fast", "succeeded"),
        ("adain", "succeeded"),
        ("gatys", "succeeded"),
        ("gatys", "cancelled"),
    ] {
        assert!(
            jobs.iter().any(|(m, s)| m == method && s == state),
            "a {state} {method} job in {jobs:?}"
        );
    }
    let blend = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["method"] == "adain")
        .unwrap();
    assert!(
        blend["style"].as_str().unwrap().contains('+'),
        "the AdaIN job blended two styles: {blend}"
    );
    let keyed_history = get(&keyed.url("/v1/history"), Some(&key.key)).ok_json(200);
    assert_eq!(keyed_history["items"].as_array().unwrap().len(), 1);
    s.shutdown();
    keyed.shutdown();
}

#[test]
fn widget_in_chromium_on_another_origin() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.anonymous = false;
    let s = TestServer::start(cfg.clone());
    let (ok_listener, ok_origin) = HostPage::bind();
    let (denied_listener, denied_origin) = HostPage::bind();
    let key = s
        .block_on(styleforge_server::create_publishable_key(
            &cfg,
            "example site",
            KeyLimits::default(),
            std::slice::from_ref(&ok_origin),
        ))
        .unwrap();
    assert!(key.key.starts_with("pk_"));
    let html = host_html(&s.base, &key.key);
    let photo = std::fs::read(shared::path("data/content/small/parrots_kodim23_256.jpg")).unwrap();
    let ok = HostPage::serve(ok_listener, ok_origin, html.clone(), photo.clone());
    let denied = HostPage::serve(denied_listener, denied_origin, html, photo);

    node(
        "widget.mjs",
        &[
            ("STYLEFORGE_HOST_OK", format!("{}/", ok.origin)),
            ("STYLEFORGE_HOST_DENIED", format!("{}/", denied.origin)),
            (
                "STYLEFORGE_AVATAR_PHOTO",
                shared::path("data/content/portrait_woman_kodim04.jpg")
                    .display()
                    .to_string(),
            ),
        ],
    );
    s.shutdown();
}

/// Two servers with empty libraries (the built-in models and paintings only): an anonymous one
/// for the page, and one with a publishable key for the widget, embedded by a page on another
/// origin.
struct EmptyLibrary {
    page: TestServer,
    widget: TestServer,
    host: HostPage,
    page_home: tempfile::TempDir,
    widget_home: tempfile::TempDir,
    _data: [tempfile::TempDir; 2],
}

impl EmptyLibrary {
    fn start() -> Self {
        let (page_home, page_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let page = TestServer::start(config(page_home.path(), page_data.path()));
        let (widget_home, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut cfg = config(widget_home.path(), data.path());
        cfg.anonymous = false;
        let widget = TestServer::start(cfg.clone());
        let (listener, origin) = HostPage::bind();
        let key = widget
            .block_on(styleforge_server::create_publishable_key(
                &cfg,
                "example site",
                KeyLimits::default(),
                std::slice::from_ref(&origin),
            ))
            .unwrap();
        let photo = std::fs::read(shared::path("data/content/small/parrots_kodim23_256.jpg")).unwrap();
        let host = HostPage::serve(listener, origin, host_html(&widget.base, &key.key), photo);
        Self { page, widget, host, page_home, widget_home, _data: [page_data, data] }
    }

    /// Checks that nothing was added to the libraries, and stops the servers.
    fn finish(self) {
        for home in [self.page_home.path(), self.widget_home.path()] {
            assert!(!home.join("models").exists(), "{}", home.display());
        }
        self.page.shutdown();
        self.widget.shutdown();
    }
}

fn shared_file(rel: &str) -> String {
    shared::path(rel).display().to_string()
}

#[test]
fn built_in_paintings_in_chromium_with_an_empty_library() {
    let e = EmptyLibrary::start();
    node(
        "builtin.mjs",
        &[
            ("STYLEFORGE_URL", format!("{}/", e.page.base)),
            ("STYLEFORGE_HOST_OK", format!("{}/", e.host.origin)),
            ("STYLEFORGE_PHOTO", shared_file("data/content/parrots_kodim23.jpg")),
            ("STYLEFORGE_STYLE1", shared_file("data/styles/starry_night_van_gogh.jpg")),
            ("STYLEFORGE_AVATAR_PHOTO", shared_file("data/content/portrait_woman_kodim04.jpg")),
        ],
    );
    e.finish();
}

#[test]
fn avatar_crops_start_on_the_face_and_filters_preview_on_the_photo_in_chromium() {
    let e = EmptyLibrary::start();
    node(
        "avatar.mjs",
        &[
            ("STYLEFORGE_URL", format!("{}/", e.page.base)),
            ("STYLEFORGE_HOST_OK", format!("{}/", e.host.origin)),
            ("STYLEFORGE_PORTRAIT", shared_file("data/content/portrait_woman_kodim04.jpg")),
            ("STYLEFORGE_FACE_PHOTO", shared_file("data/content/astronaut_skimage.jpg")),
            ("STYLEFORGE_NOFACE_PHOTO", shared_file("data/content/chicago.jpg")),
            ("STYLEFORGE_FACES", shared_file("models/face_detector/reference/detections.json")),
        ],
    );
    // The previews on the user's photo are not stylisations: the page's history has only the one
    // the script ran.
    let history = get(&e.page.url("/v1/history?limit=100"), None).ok_json(200);
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{history}");
    assert_eq!((items[0]["method"].as_str(), items[0]["state"].as_str()), (Some("cartoon"), Some("succeeded")));
    e.finish();
}

#[test]
fn videos_and_animations_upload_stylise_and_play_in_the_page_in_chromium() {
    let e = EmptyLibrary::start();
    let dir = tempfile::tempdir().unwrap();
    let tools = styleforge_core::video::Tools::find().expect("FFmpeg is installed (scripts/install-ffmpeg.sh)");
    let ffmpeg = |args: &[&str], out: &Path| {
        let ok = Command::new(&tools.ffmpeg).args(["-v", "error", "-nostdin", "-y"]).args(args).arg(out).status().unwrap();
        assert!(ok.success(), "ffmpeg {args:?}");
    };
    let photo = shared_file("data/content/lighthouse_kodim21.jpg");
    let clip = dir.path().join("pan.mp4");
    ffmpeg(
        &["-loop", "1", "-framerate", "25", "-i", &photo, "-f", "lavfi", "-i", "sine=frequency=440:duration=0.96",
          "-vf", "crop=160:96:x='2*n':y=60,format=yuv420p", "-frames:v", "24", "-c:v", "libx264", "-c:a", "aac", "-t", "0.96"],
        &clip,
    );
    let gif = dir.path().join("pan.gif");
    ffmpeg(&["-loop", "1", "-framerate", "10", "-i", &photo, "-vf", "crop=120:80:x='3*n':y=60", "-frames:v", "6"], &gif);
    node(
        "video.mjs",
        &[
            ("STYLEFORGE_URL", format!("{}/", e.page.base)),
            ("STYLEFORGE_VIDEO", clip.display().to_string()),
            ("STYLEFORGE_GIF", gif.display().to_string()),
        ],
    );
    e.finish();
}

/// The A/B view (`e2e/compare.mjs`): two styles, then two methods for a painting, stylised side
/// by side on a photo and judged with the keyboard; the choices reach the preference statistics;
/// rated styles show their rating and lead the "Best rated" gallery.
#[test]
fn ab_view_compares_pairs_and_the_gallery_sorts_best_rated_in_chromium() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    node(
        "compare.mjs",
        &[
            ("STYLEFORGE_URL", format!("{}/", s.base)),
            ("STYLEFORGE_PHOTO", shared_file("data/content/small/parrots_kodim23_256.jpg")),
        ],
    );
    // What the page did, as the API sees it: three choices, each between two results of the one
    // photo, the last between the painting's two one-pass methods.
    let stats = get(&s.url("/v1/stats/preferences"), None).ok_json(200);
    assert_eq!(stats["comparisons"], 3, "{stats}");
    let arms = stats["arms"].as_array().unwrap();
    let total: i64 = arms.iter().map(|a| a["comparisons"].as_i64().unwrap()).sum();
    assert_eq!(total, 6, "each comparison has two arms: {stats}");
    let starry = get(&s.url("/v1/stats/preferences?style=starry-night"), None).ok_json(200);
    let methods: Vec<&str> = starry["methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(methods.len() == 2 && methods.contains(&"microast") && methods.contains(&"adain"), "{starry}");
    let history = get(&s.url("/v1/history?limit=100"), None).ok_json(200);
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "two stylisations per pair: {history}");
    let image = items[0]["image"].clone();
    assert!(items.iter().all(|j| j["state"] == "succeeded" && j["image"] == image), "{history}");
    s.shutdown();
}

/// A page on another origin with a live camera widget that starts at once with `style`.
fn live_host_html(api: &str, key: &str, style: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Example video chat</title>
<style>
  body {{ margin: 0; background: #10131a; color: #e8eaf2; font-family: Georgia, serif; }}
  * {{ letter-spacing: 0.1em; }}
  .wrap {{ max-width: 720px; margin: 0 auto; padding: 20px 16px 40px; }}
</style></head>
<body>
<div class="wrap">
  <h1>Your camera, restyled</h1>
  <div id="live" data-styleforge-live data-styleforge-style="{style}" data-styleforge-autostart></div>
</div>
<script>
  window.__live = [];
  window.__errors = [];
  document.addEventListener("styleforge:live", (e) => window.__live.push(e.detail));
  document.addEventListener("styleforge:error", (e) => window.__errors.push(e.detail));
</script>
<script src="{api}/widget.js" data-key="{key}" async></script>
</body></html>
"#
    )
}

/// The live camera: Chromium's fake camera plays a clip made here with FFmpeg (60 frames of a
/// slow pan over a shared photo, 320×240); the page streams it with the fastest built-in filter,
/// then with MicroAST and a painting, and the widget on another origin with a publishable key
/// (`e2e/live.mjs`, which prints the frames per second of each).
#[test]
fn live_camera_in_chromium() {
    let clips = tempfile::tempdir().unwrap();
    let clip = clips.path().join("camera.y4m");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(shared::path("data/content/lighthouse_kodim21.jpg"))
        .args(["-vf", "crop=320:240:x='2*n':y=60", "-frames:v", "60", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("running ffmpeg (scripts/install-ffmpeg.sh installs it)");
    assert!(made.success() && clip.is_file(), "ffmpeg made the camera clip");

    let e = EmptyLibrary::start();
    let (listener, origin) = HostPage::bind();
    let key = e
        .widget
        .block_on(styleforge_server::create_publishable_key(
            &e.widget.config,
            "video chat",
            KeyLimits::default(),
            std::slice::from_ref(&origin),
        ))
        .unwrap();
    let host = HostPage::serve(listener, origin, live_host_html(&e.widget.base, &key.key, "starry-night"), Vec::new());
    node(
        "live.mjs",
        &[
            ("STYLEFORGE_URL", format!("{}/", e.page.base)),
            ("STYLEFORGE_HOST_LIVE", format!("{}/", host.origin)),
            ("STYLEFORGE_CAMERA_Y4M", clip.display().to_string()),
        ],
    );
    // Live streams are not stylisation jobs: nothing in the history.
    let history = get(&e.page.url("/v1/history"), None).ok_json(200);
    assert_eq!(history["items"].as_array().unwrap().len(), 0, "{history}");
    e.finish();
}
