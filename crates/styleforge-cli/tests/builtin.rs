//! Out of the box: the README's first command, run as written from a copy of the repository's
//! files with an empty library and no shared data, and the built-in styles and model through
//! the CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The README's first command (the first line of its first `sh` block that is not a comment).
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme.split("```sh").nth(1).expect("a sh block in the README");
    block.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).expect("a command").to_string()
}

/// Copies the repository's tracked files, except the sources (the built binary stands for
/// them), to `to`: what a person has after `git clone` and the build.
fn copy_repo_files(to: &Path) {
    let out = Command::new("git").arg("-C").arg(repo()).args(["ls-files", "-z"]).output().unwrap();
    assert!(out.status.success(), "git ls-files");
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = std::str::from_utf8(rel).unwrap();
        if rel.starts_with("crates/") || rel.starts_with("e2e/") {
            continue; // sources: the built binary stands for them
        }
        let (src, dst) = (repo().join(rel), to.join(rel));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap();
    }
}

fn run_in(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_styleforge"))
        .current_dir(dir)
        .env("STYLEFORGE_HOME", home)
        .env("STYLEFORGE_SHARED", dir.join("no-shared-here"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_readme_first_command_works_with_nothing_downloaded() {
    let cmd = readme_first_command();
    let args: Vec<&str> = cmd.split_whitespace().collect();
    assert_eq!(&args[..6], ["cargo", "run", "--release", "-p", "styleforge-cli", "--"], "{cmd}");
    let args = &args[6..];
    assert_eq!(args[0], "stylize", "{cmd}");
    let out_at = args.iter().position(|a| *a == "-o").expect("-o") + 1;
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    copy_repo_files(work.path());
    let o = run_in(work.path(), home.path(), args);
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    let out = image::open(work.path().join(args[out_at])).unwrap().to_rgb8();
    let input = args.iter().find(|a| a.starts_with("examples/")).expect("an input in examples/");
    let inp = image::open(work.path().join(input)).unwrap().to_rgb8();
    assert_eq!(out.dimensions(), inp.dimensions());
    // Stylised: far from the photo, and not a flat image.
    let diff: f64 = out.as_raw().iter().zip(inp.as_raw()).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
        / out.as_raw().len() as f64;
    assert!(diff > 20.0, "mean difference to the photo {diff}");
    let mean = out.as_raw().iter().map(|v| *v as f64).sum::<f64>() / out.as_raw().len() as f64;
    let var = out.as_raw().iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / out.as_raw().len() as f64;
    assert!(var.sqrt() > 20.0, "standard deviation {}", var.sqrt());
    // Nothing was written into the empty library.
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}

#[test]
fn built_in_model_and_paintings_are_listed_and_cannot_be_removed() {
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let o = run_in(work.path(), home.path(), &["models", "list"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in ["microast", "built-in", "MIT, Copyright (c) 2022 Zhizhong Wang", "starry-night", "The Starry Night, Vincent van Gogh (1889)", "great-wave"] {
        assert!(text.contains(needle), "`{needle}` in:\n{text}");
    }
    let o = run_in(work.path(), home.path(), &["models", "remove", "microast"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("built into styleforge"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn any_image_file_is_a_style_and_styles_blend() {
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let photo = repo().join("examples/chelsea.jpg");
    let style = work.path().join("stripes.png");
    image::RgbImage::from_fn(64, 48, |x, _| if (x / 8) % 2 == 0 { image::Rgb([200, 30, 30]) } else { image::Rgb([20, 20, 200]) })
        .save(&style)
        .unwrap();
    let p = |n: &str| work.path().join(n).to_str().unwrap().to_string();
    let photo = photo.to_str().unwrap();
    let o = run_in(work.path(), home.path(), &["stylize", photo, "--style", &p("stripes.png"), "-o", &p("a.png")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_in(work.path(), home.path(), &["stylize", photo, "--style", "great-wave:0.5", "--style", &p("stripes.png"), "--strength", "0.8", "-o", &p("b.png")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (image::open(p("a.png")).unwrap().to_rgb8(), image::open(p("b.png")).unwrap().to_rgb8());
    assert_eq!(a.dimensions(), (451, 300));
    assert_ne!(a.as_raw(), b.as_raw());
    // Strength 0 gives the photo back (to JPEG decoding and 8-bit rounding).
    let o = run_in(work.path(), home.path(), &["stylize", photo, "--style", "udnie", "--strength", "0", "-o", &p("c.png")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = image::open(p("c.png")).unwrap().to_rgb8();
    let inp = image::open(photo).unwrap().to_rgb8();
    let worst = c.as_raw().iter().zip(inp.as_raw()).map(|(x, y)| (*x as i32 - *y as i32).abs()).max().unwrap();
    assert!(worst <= 1, "strength 0 differs from the photo by {worst}");
    // An unknown style name is a clear error naming what was looked for.
    let o = run_in(work.path(), home.path(), &["stylize", photo, "--style", "no-such-painting", "-o", &p("d.png")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-painting"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn built_in_cartoon_filters_need_no_download() {
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let photo = repo().join("examples/chelsea.jpg");
    let out = work.path().join("cartoon.png");
    let o = run_in(work.path(), home.path(), &["stylize", photo.to_str().unwrap(), "--model", "cartoon-shinkai", "--strength", "0.9", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = image::open(&out).unwrap().to_rgb8();
    let b = image::open(&photo).unwrap().to_rgb8();
    assert_eq!(a.dimensions(), b.dimensions());
    let d = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64;
    assert!(d > 5.0, "the filter changed the photo: {d}");
    let o = run_in(work.path(), home.path(), &["models", "list"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("cartoon-paprika") && text.contains("Apache-2.0, Copyright 2019 Meng Lee and Ching Ning Chen"), "{text}");
}
