//! The bad-input corpus (`tests/corpus/`, made by `tests/corpus/generate.rs`) through the
//! binary: unusual valid images are stylised at exactly their size; everything else is refused
//! with one `error:` line, exit code 1 (never a panic's 101), and no output file, temporary or
//! final. Also: output paths (missing folders, errors naming the user's path once), batches
//! whose names collide, colour management (Display P3 and Adobe RGB to sRGB, sRGB-tagged
//! outputs) and animations.

#[path = "../../../tests/corpus/generate.rs"]
mod corpus;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use styleforge_core::shared;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_styleforge"));
    c.env("STYLEFORGE_HOME", std::env::temp_dir().join("styleforge-cli-test-home"));
    c.env_remove("RUST_BACKTRACE");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

fn model() -> PathBuf {
    shared::path("models/fast_style_pytorch/candy_nc8.safetensors")
}

/// Asserts a refusal: exit code 1, exactly one line on stderr, `error:` and no panic text.
#[track_caller]
fn assert_one_line_error(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{what}: exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line; stderr: {stderr}");
    assert!(lines[0].starts_with("error: "), "{what}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{what}: {stderr}");
    stderr
}

/// Files left in `dir` (recursively).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_in(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn corpus_is_generated_and_large_enough() {
    let dir = corpus_dir();
    let files = corpus::files();
    if std::env::var_os("STYLEFORGE_WRITE_CORPUS").is_some() {
        for sub in ["images", "weights", "args", "requests"] {
            let _ = std::fs::remove_dir_all(dir.join(sub));
        }
        for (name, bytes) in &files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }
    for (name, bytes) in &files {
        let on_disk = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e} (STYLEFORGE_WRITE_CORPUS=1 writes the corpus)"));
        assert!(on_disk == *bytes, "{name} differs from the generator (STYLEFORGE_WRITE_CORPUS=1 rewrites it)");
    }
    let committed = ["images", "weights", "args", "requests"].iter().map(|d| files_in(&dir.join(d)).len()).sum::<usize>();
    assert_eq!(committed, files.len(), "no stray files in the corpus");
    assert!(files.len() >= 50, "{} corpus entries", files.len());
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    eprintln!("corpus: {} files, {bytes} bytes", files.len());
    assert!(bytes < 200_000, "the corpus stays small: {bytes} bytes");
}

#[test]
fn every_corpus_image_is_stylised_at_its_size_or_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    let (mut ok, mut refused) = (0, 0);
    for (name, _) in corpus::files().iter().filter(|(n, _)| n.starts_with("images/")) {
        let input = corpus_dir().join(name);
        let outdir = tmp.path().join(name.replace('/', "_"));
        let out_path = outdir.join("out.png");
        let out = run(&["stylize", s(&input), "-o", s(&out_path), "--model", s(&model)]);
        let file = Path::new(name).file_name().unwrap().to_str().unwrap();
        if file.starts_with("animated") || file.ends_with(".gif") {
            // Animations (and GIF stills) are stylised frame by frame into an animation.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{name}: {stderr}");
            let source = std::fs::read(&input).unwrap();
            let written = std::fs::read(&out_path).unwrap();
            let count = |b: &[u8]| styleforge_core::animation::Frames::open(b, Default::default()).unwrap().count();
            let (want, got) = (styleforge_core::animation::probe(&source).unwrap().unwrap(), styleforge_core::animation::probe(&written).unwrap());
            let got = got.unwrap_or_else(|| panic!("{name}: the output is an animation"));
            assert_eq!((got.width, got.height, got.loop_count), (want.width, want.height, want.loop_count), "{name}");
            assert_eq!(count(&written), count(&source), "{name}: frames");
            ok += 1;
        } else if file.starts_with("ok_") {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{name}: {stderr}");
            let want = image::ImageReader::open(&input).unwrap().with_guessed_format().unwrap().into_dimensions().unwrap();
            assert_eq!(image::image_dimensions(&out_path).unwrap(), want, "{name}: output size");
            ok += 1;
        } else {
            assert_one_line_error(&out, name);
            assert!(files_in(&outdir).is_empty(), "{name}: nothing written: {:?}", files_in(&outdir));
            refused += 1;
        }
    }
    eprintln!("images: {ok} stylised at their size, {refused} refused in one line");
}

#[test]
fn wrong_weight_files_and_absurd_parameters_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = corpus_dir().join("images/ok_101x75.png");
    for (name, _) in corpus::files().iter().filter(|(n, _)| n.starts_with("weights/")) {
        let out_path = tmp.path().join("w").join("out.png");
        let out = run(&["stylize", s(&input), "-o", s(&out_path), "--model", s(&corpus_dir().join(name))]);
        assert_one_line_error(&out, name);
        assert!(!out_path.exists(), "{name}");
    }
    for (name, text) in corpus::files().iter().filter(|(n, _)| n.starts_with("args/")) {
        let out_path = tmp.path().join("a").join("out.png");
        let line = String::from_utf8(text.clone())
            .unwrap()
            .replace("{IN}", s(&input))
            .replace("{OUT}", s(&out_path))
            .replace("{MODEL}", s(&model()));
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = run(&args);
        assert_one_line_error(&out, name);
        assert!(files_in(&tmp.path().join("a")).is_empty(), "{name}: nothing written");
    }
}

#[test]
fn output_paths_are_created_and_errors_name_them_once() {
    let tmp = tempfile::tempdir().unwrap();
    let input = shared::path("cases/output-path/in.png");
    let model = model();
    // A missing parent folder is created, as for folder outputs.
    let nested = tmp.path().join("missing/deeper/out.png");
    let out = run(&["stylize", s(&input), "-o", s(&nested), "--model", s(&model)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(image::image_dimensions(&nested).unwrap(), image::image_dimensions(&input).unwrap());
    // A parent that cannot be a folder: the error names the user's path, the cause once.
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let bad = blocker.join("out.png");
    let out = run(&["stylize", s(&input), "-o", s(&bad), "--model", s(&model)]);
    let stderr = assert_one_line_error(&out, "output under a file");
    assert!(stderr.contains(s(&blocker)), "{stderr}");
    // (The test's own folder is `.tmpXXXX`: look for the output's temporary name, `.out.png.PID.tmp`.)
    assert!(!stderr.contains(".out.png."), "no temporary file named: {stderr}");
    assert_eq!(stderr.matches("is a file, not a folder").count(), 1, "the cause once: {stderr}");
    assert!(stderr.contains(s(&bad)), "names the output: {stderr}");
    // In place: the output replaces the input safely (written whole, then renamed).
    let inplace = tmp.path().join("inplace.png");
    std::fs::copy(&input, &inplace).unwrap();
    let out = run(&["stylize", s(&inplace), "-o", s(&inplace), "--model", s(&model)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(image::image_dimensions(&inplace).unwrap(), image::image_dimensions(&input).unwrap());
    assert_eq!(files_in(tmp.path()).iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).count(), 0);
}

#[test]
fn batch_outputs_never_overwrite_each_other_or_an_input() {
    let tmp = tempfile::tempdir().unwrap();
    let batch = tmp.path().join("batch");
    std::fs::create_dir(&batch).unwrap();
    for f in ["holiday.jpg", "holiday.png"] {
        std::fs::copy(shared::path("cases/same-stem-batch/batch").join(f), batch.join(f)).unwrap();
    }
    let model = model();
    let outdir = tmp.path().join("styled");
    let out = run(&["stylize", s(&batch), "-o", s(&outdir), "--model", s(&model)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut names: Vec<String> = files_in(&outdir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["holiday.jpg.png", "holiday.png"], "both kept; stderr: {stderr}");
    assert!(stderr.contains("holiday.jpg.png"), "and said so: {stderr}");
    // Styled into the input folder itself: the inputs stay as they were.
    let before = std::fs::read(batch.join("holiday.png")).unwrap();
    let out = run(&["stylize", s(&batch), "-o", s(&batch), "--model", s(&model)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(batch.join("holiday.png")).unwrap(), before, "the input is not overwritten");
    let mut names: Vec<String> = files_in(&batch).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["holiday.jpg", "holiday.jpg.png", "holiday.png", "holiday.png.png"]);
}

/// The pixel at an eighth of the width and height of a PNG, JPEG or WebP (inside the case's
/// top-left red block, whose centre is black), and whether the file carries an ICC profile.
fn sample_pixel(path: &Path) -> ([u8; 3], bool) {
    use image::ImageDecoder;
    let reader = image::ImageReader::open(path).unwrap().with_guessed_format().unwrap();
    let mut dec = reader.into_decoder().unwrap();
    let tagged = dec.icc_profile().unwrap().is_some();
    let img = image::DynamicImage::from_decoder(dec).unwrap().to_rgb8();
    (img.get_pixel(img.width() / 8, img.height() / 8).0, tagged)
}

#[test]
fn icc_profiles_are_converted_to_srgb_and_outputs_tagged() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model();
    let cases = [
        // The case's P3 red (220, 30, 30) is about (241, 0, 0) in sRGB.
        (shared::path("cases/icc-display-p3/p3_tagged.png"), [241, 0, 0], 3),
        (shared::path("cases/icc-display-p3/p3_tagged.jpg"), [241, 0, 0], 8),
        (corpus_dir().join("images/ok_display_p3.png"), [241, 0, 0], 3),
        // Adobe RGB (200, 100, 50) is sRGB (227, 100, 42): the Adobe RGB (1998) to sRGB matrix
        // with both transfer curves, worked by hand.
        (corpus_dir().join("images/ok_adobe_rgb.png"), [227, 100, 42], 3),
    ];
    for (i, (input, want, tol)) in cases.iter().enumerate() {
        for ext in ["png", "jpg", "webp"] {
            let out_path = tmp.path().join(format!("{i}.{ext}"));
            // Strength 0 gives the content back: the decoded (converted) pixels.
            let out = run(&["stylize", s(input), "-o", s(&out_path), "--model", s(&model), "--strength", "0"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let (got, tagged) = sample_pixel(&out_path);
            eprintln!("{} -> {ext}: {got:?} (want {want:?})", input.file_name().unwrap().to_string_lossy());
            for c in 0..3 {
                assert!((got[c] as i32 - want[c] as i32).abs() <= tol + if ext == "jpg" { 6 } else { 0 }, "{input:?} -> {ext}: {got:?}, want {want:?}");
            }
            assert!(tagged, "{ext} output carries the sRGB profile");
        }
    }
}

/// JSON of an HTTP answer (ureq with statuses as values).
fn http(method: &str, url: &str, body: Option<(&str, &[u8])>) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let r = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        (_, Some((ctype, bytes))) => agent.post(url).header("content-type", ctype).send(bytes),
        (_, None) => agent.post(url).send_empty(),
    };
    let mut r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// A bug in a method (a panic, injected with `STYLEFORGE_INJECT_PANIC`) reaches users as one
/// clear error: the CLI prints one line and exits with 70, writing nothing; the service answers
/// the synchronous request with 500 `internal`, fails the job with `internal`, and goes on
/// serving the other methods.
#[test]
fn a_panic_in_compute_is_one_error_and_the_service_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let input = corpus_dir().join("images/ok_101x75.png");
    let out_dir = tmp.path().join("out");
    let out = bin()
        .env("STYLEFORGE_INJECT_PANIC", "microast")
        .args(["stylize", s(&input), "-o", s(&out_dir.join("x.png")), "--style", "starry-night"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: internal error: injected panic in method microast"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    assert!(files_in(&out_dir).is_empty(), "nothing written: {:?}", files_in(&out_dir));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = tmp.path().join("server.log");
    let mut server = bin()
        .env("STYLEFORGE_INJECT_PANIC", "microast")
        .args(["serve", "--anonymous", "--listen", &format!("127.0.0.1:{port}"), "--workers", "1", "--poll-ms", "50"])
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let base = format!("http://127.0.0.1:{port}");
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(server.try_wait().unwrap().is_none(), "the server exited; see {}", log.display());
        assert!(t.elapsed().as_secs() < 60, "the server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let server = Kill(server);
    let (status, v) = http("POST", &format!("{base}/v1/images"), Some(("image/png", &std::fs::read(&input).unwrap())));
    assert_eq!(status, 201, "{v}");
    let image = v["id"].as_str().unwrap().to_string();
    let stylize = |style: &str, run_async: bool| {
        let body = serde_json::json!({"image": image, "style": style, "async": run_async}).to_string();
        http("POST", &format!("{base}/v1/stylize"), Some(("application/json", body.as_bytes())))
    };
    let (status, v) = stylize("starry-night", false);
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["code"], "internal", "{v}");
    assert!(v["message"].as_str().unwrap().contains("injected panic in method microast"), "{v}");

    let (status, v) = stylize("starry-night", true);
    assert_eq!(status, 202, "{v}");
    let job = v["job"].as_str().unwrap().to_string();
    let t = std::time::Instant::now();
    let v = loop {
        let (status, v) = http("GET", &format!("{base}/v1/jobs/{job}"), None);
        assert_eq!(status, 200, "{v}");
        if ["succeeded", "failed", "cancelled"].contains(&v["state"].as_str().unwrap()) {
            break v;
        }
        assert!(t.elapsed().as_secs() < 120, "the job did not end: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "internal", "{v}");

    let (status, v) = stylize("cartoon-paprika", false);
    assert_eq!(status, 200, "another method still works: {v}");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(101), Some(75)), "{v}");
    let (status, v) = http("GET", &format!("{base}/healthz"), None);
    assert_eq!(status, 200, "{v}");
    drop(server);
}
