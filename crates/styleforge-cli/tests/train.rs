//! `styleforge train` end to end: tiny CycleGAN, DCGAN and fast-style runs that checkpoint,
//! resume, export into the library and are then used by `stylize` and `generate`.

use std::path::Path;
use std::process::{Command, Output};

use styleforge_core::shared;

fn bin(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_styleforge"));
    c.env("STYLEFORGE_HOME", home);
    c
}

#[track_caller]
fn ok(home: &Path, args: &[&str]) -> Output {
    let out = bin(home).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "styleforge {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn small_photos() -> String {
    shared::path("data/content/small").to_str().unwrap().to_string()
}

#[test]
fn cyclegan_run_resumes_exports_and_stylizes() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("cg");
    let styles = tempfile::tempdir().unwrap();
    for f in ["starry_night_van_gogh.jpg", "great_wave_hokusai.jpg"] {
        std::fs::copy(shared::path(&format!("data/styles/{f}")), styles.path().join(f)).unwrap();
    }
    let common = [
        "train", "cyclegan", "--a", &small_photos(), "--b", s(styles.path()), "--dir", s(&dir),
        "--crop", "32", "--load-size", "48", "--ngf", "4", "--ndf", "4", "--blocks", "1",
        "--checkpoint-every", "2", "--sample-every", "2",
    ];
    let mut first = common.to_vec();
    first.extend(["--steps", "2"]);
    ok(home.path(), &first);
    assert!(dir.join("checkpoint.json").exists() && dir.join("samples/step_0000002.png").exists());
    // A fresh run into the same directory is refused; --resume continues to step 4 (the
    // schedule's total may be raised on resume) and exports.
    let again = bin(home.path()).args(&first).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a run"));
    let mut resume = common.to_vec();
    resume.extend(["--steps", "4", "--resume", "--export", "tiny-cyclegan"]);
    ok(home.path(), &resume);
    let log = std::fs::read_to_string(dir.join("losses.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4);

    let list = String::from_utf8(ok(home.path(), &["models", "list", "--json"]).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let m = v.as_array().unwrap().iter().find(|m| m["name"] == "tiny-cyclegan").expect("exported");
    assert_eq!(m["method"], "cyclegan");
    assert_eq!(m["training"]["steps"], "4");
    let out = runs.path().join("out.png");
    ok(
        home.path(),
        &["stylize", "--method", "cyclegan", "--model", "tiny-cyclegan",
          shared::path("data/content/small/cat_chelsea_256.jpg").to_str().unwrap(), "-o", s(&out)],
    );
    assert!(image::open(&out).is_ok());
    // The reverse generator too.
    ok(home.path(), &["train", "export", s(&dir), "--name", "tiny-cyclegan-back", "--reverse"]);
}

#[test]
fn dcgan_run_exports_and_generates() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("dc");
    ok(
        home.path(),
        &["train", "dcgan", "--data", &small_photos(), "--dir", s(&dir), "--steps", "3",
          "--batch", "2", "--nz", "8", "--ngf", "4", "--ndf", "4", "--export", "tiny-dcgan"],
    );
    let grid = runs.path().join("grid.png");
    ok(home.path(), &["generate", "--model", "tiny-dcgan", "--n", "4", "--seed", "7", "-o", s(&grid)]);
    assert_eq!(image::open(&grid).unwrap().width(), 2 * 66 + 2);
    let strip = runs.path().join("strip.png");
    ok(home.path(), &["generate", "--model", "tiny-dcgan", "--n", "6", "--interpolate", "-o", s(&strip)]);
    let img = image::open(&strip).unwrap();
    assert_eq!((img.width(), img.height()), (6 * 66 + 2, 66 + 2));
    // Zero images is a clean error.
    let bad = bin(home.path()).args(["generate", "--model", "tiny-dcgan", "--n", "0", "-o", s(&grid)]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("error:"));
}

#[test]
fn fast_style_run_exports_a_style_that_stylizes() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("fs");
    let vgg = shared::path("parity/vgg19_features_f16.pth");
    ok(
        home.path(),
        &["train", "fast-style", "--style", shared::path("data/styles/great_wave_hokusai.jpg").to_str().unwrap(),
          "--content", &small_photos(), "--loss-network", s(&vgg), "--dir", s(&dir), "--steps", "3",
          "--width", "8", "--batch", "2", "--crop", "64", "--style-size", "128", "--export", "my-wave"],
    );
    let list = String::from_utf8(ok(home.path(), &["models", "list", "--json"]).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let m = v.as_array().unwrap().iter().find(|m| m["name"] == "my-wave").expect("exported");
    assert_eq!(m["method"], "fast");
    assert_eq!(m["training"]["kind"], "fast-style");
    assert_eq!(m["training"]["style_sha256"].as_str().unwrap().len(), 64);
    let out = runs.path().join("out.png");
    ok(
        home.path(),
        &["stylize", "--model", "my-wave",
          shared::path("data/content/small/parrots_kodim23_256.jpg").to_str().unwrap(), "-o", s(&out)],
    );
    assert!(image::open(&out).is_ok());
    // No loss network in the library and none given: a clear error.
    let empty = tempfile::tempdir().unwrap();
    let bad = bin(empty.path())
        .args(["train", "fast-style", "--style", s(&vgg), "--content", &small_photos(), "--dir", s(&runs.path().join("x")), "--steps", "1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("loss network"), "{}", String::from_utf8_lossy(&bad.stderr));
}
