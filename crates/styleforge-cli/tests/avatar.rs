//! `styleforge avatar` with an empty library: the face box is printed and the avatar framed on
//! it; a photo without a face falls back to the centre; `--box` skips detection; paintings and
//! image files run microast; unknown styles are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared(rel: &str) -> PathBuf {
    styleforge_core::shared::path(rel)
}

fn avatar(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_styleforge")).env("STYLEFORGE_HOME", home).arg("avatar").args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn size(p: &Path) -> (u32, u32) {
    image::image_dimensions(p).unwrap()
}

#[test]
fn a_portrait_with_a_filter_and_a_painting() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let photo = shared("data/content/portrait_woman_kodim04.jpg");
    let me = out.path().join("me.png");
    let text = ok(&avatar(home.path(), &[photo.to_str().unwrap(), "--style", "cartoon-paprika", "-o", me.to_str().unwrap()]));
    // The reference detection is (110.8, 141.5)–(423.7, 542.1); JPEG decoders differ by a few
    // grey levels, so the box from the photo is within 2 px of it.
    let face: Vec<f32> = text
        .split("face at ")
        .nth(1)
        .and_then(|t| t.split(" (").next())
        .map(|t| t.replace(" size ", ",").replace('x', ",").split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    assert_eq!(face.len(), 4, "{text}");
    for (got, want) in face.iter().zip([110.8, 141.5, 423.7 - 110.8, 542.1 - 141.5]) {
        assert!((got - want).abs() <= 2.0, "{text}");
    }
    assert_eq!(size(&me), (512, 512));
    let small = out.path().join("small.jpg");
    let text = ok(&avatar(home.path(), &[photo.to_str().unwrap(), "--style", "starry-night", "--size", "128", "-o", small.to_str().unwrap()]));
    assert!(text.contains("face at") && text.contains("microast"), "{text}");
    assert_eq!(size(&small), (128, 128));
    // An image file as the style.
    let style = shared("data/content/hats_kodim03.jpg");
    let o = out.path().join("img.png");
    ok(&avatar(home.path(), &[photo.to_str().unwrap(), "--style", style.to_str().unwrap(), "--size", "64", "-o", o.to_str().unwrap()]));
    assert_eq!(size(&o), (64, 64));
}

#[test]
fn no_face_uses_the_centre_and_a_box_skips_detection() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let photo = shared("data/content/mountain_river_kodim13.jpg");
    let o = out.path().join("a.png");
    let text = ok(&avatar(home.path(), &[photo.to_str().unwrap(), "--style", "cartoon-shinkai", "--size", "96", "-o", o.to_str().unwrap()]));
    assert!(text.contains("no face found; used the centre square"), "{text}");
    assert_eq!(size(&o), (96, 96));
    let text = ok(&avatar(home.path(), &[photo.to_str().unwrap(), "--style", "cartoon-shinkai", "--size", "96", "--box", "300,200,100,100", "-o", o.to_str().unwrap()]));
    assert!(text.contains("face box given: 300,200 size 100x100; crop 180x180 at 260,160"), "{text}");
    for bad in [&["--box", "1,2,3"][..], &["--style", "no-such-style"][..], &["--size", "0"][..]] {
        let mut args = vec![photo.to_str().unwrap(), "-o", o.to_str().unwrap()];
        if bad[0] != "--style" {
            args.extend(["--style", "cartoon-shinkai"]);
        }
        args.extend(bad);
        let r = avatar(home.path(), &args);
        assert!(!r.status.success(), "{bad:?} accepted");
    }
}
