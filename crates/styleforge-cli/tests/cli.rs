//! The `styleforge` binary end to end: real models on real photos, and every kind of bad input
//! answered with one clear error line and a non-zero exit, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use styleforge_core::shared;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_styleforge"));
    // Keep the user's library out of the tests.
    c.env("STYLEFORGE_HOME", std::env::temp_dir().join("styleforge-cli-test-home"));
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a clean failure: exit code 1, an `error:` line, no panic.
fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert!(stderr.contains("error:"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic; stderr: {stderr}");
    assert!(stderr.to_lowercase().contains(&needle.to_lowercase()), "stderr mentions `{needle}`: {stderr}");
}

fn rgb(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let s: f64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum();
    s / a.as_raw().len() as f64
}

fn models() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["models/fast_style_pytorch", "models/fast_style_engstrom"] {
        for e in std::fs::read_dir(shared::path(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "safetensors") {
                v.push(e.path());
            }
        }
    }
    v.sort();
    assert_eq!(v.len(), 11, "all shared fast-style models found");
    v
}

#[test]
fn every_shared_model_on_every_content_photo() {
    let content = shared::path("data/content");
    let inputs: Vec<PathBuf> = std::fs::read_dir(&content)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    assert!(inputs.len() >= 10);
    for model in models() {
        let out = tempfile::tempdir().unwrap();
        let o = run(&["stylize", s(&content), "-o", s(out.path()), "--model", s(&model)]);
        assert!(o.status.success(), "{}: {}", model.display(), String::from_utf8_lossy(&o.stderr));
        for input in &inputs {
            let result = out.path().join(format!("{}.png", input.file_stem().unwrap().to_str().unwrap()));
            let (a, b) = (rgb(input), rgb(&result));
            assert_eq!(a.dimensions(), b.dimensions(), "{} keeps the size of {}", model.display(), input.display());
            let d = mean_abs_diff(&a, &b);
            assert!(d > 10.0, "{} on {} differs from the input (mean abs diff {d})", model.display(), input.display());
        }
    }
}

#[test]
fn single_file_with_options_and_output_formats() {
    let input = shared::path("data/content/small/parrots_kodim23_256.jpg");
    let model = shared::path("models/fast_style_pytorch/candy_nc8.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.png");
    let half = dir.path().join("half.png");
    let zero = dir.path().join("zero.png");
    let webp = dir.path().join("out.webp");
    let jpg = dir.path().join("out.jpg");
    for (out, strength) in [(&full, "1"), (&half, "0.5"), (&zero, "0")] {
        let o = run(&["stylize", s(&input), "-o", s(out), "--model", s(&model), "--strength", strength]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (c, f, h, z) = (rgb(&input), rgb(&full), rgb(&half), rgb(&zero));
    assert!(mean_abs_diff(&c, &z) < 0.01, "strength 0 returns the content");
    let d_full = mean_abs_diff(&c, &f);
    let d_half = mean_abs_diff(&c, &h);
    assert!((d_half - d_full / 2.0).abs() < 0.1 * d_full, "strength 0.5 is halfway: {d_half} vs {d_full}");
    for out in [&webp, &jpg] {
        let o = run(&["stylize", s(&input), "-o", s(out), "--model", s(&model)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(rgb(out).dimensions(), c.dimensions());
    }
    assert!(mean_abs_diff(&rgb(&webp), &f) < 0.01, "WebP output is lossless");
    let small = dir.path().join("small.png");
    let o = run(&["stylize", s(&input), "-o", s(&small), "--model", s(&model), "--max-size", "100"]);
    assert!(o.status.success());
    let (w, h2) = rgb(&small).dimensions();
    assert_eq!(w.max(h2), 100);
}

/// A JPEG with an EXIF orientation tag (APP1 segment spliced in after SOI).
fn jpeg_with_orientation(img: &image::RgbImage, orientation: u16) -> Vec<u8> {
    let mut jpg = Vec::new();
    image::DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
        .unwrap();
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied_and_alpha_kept() {
    let model = shared::path("models/fast_style_pytorch/mosaic_nc8.safetensors");
    let dir = tempfile::tempdir().unwrap();
    // 96 wide, 48 high, stored with "rotate 90° clockwise to display": the photo is 48 wide, 96 high.
    let img = image::RgbImage::from_fn(96, 48, |x, y| image::Rgb([(x * 2) as u8, (y * 4) as u8, 128]));
    let rotated = dir.path().join("rotated.jpg");
    std::fs::write(&rotated, jpeg_with_orientation(&img, 6)).unwrap();
    let out = dir.path().join("rotated_out.png");
    let o = run(&["stylize", s(&rotated), "-o", s(&out), "--model", s(&model)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rgb(&out).dimensions(), (48, 96), "orientation applied");

    let rgba = image::RgbaImage::from_fn(64, 40, |x, y| image::Rgba([x as u8 * 3, y as u8 * 5, 90, (x * 4) as u8]));
    let src = dir.path().join("alpha.png");
    rgba.save(&src).unwrap();
    let out = dir.path().join("alpha_out.png");
    let o = run(&["stylize", s(&src), "-o", s(&out), "--model", s(&model)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = image::open(&out).unwrap();
    assert!(got.color().has_alpha(), "alpha channel kept");
    let got = got.to_rgba8();
    for (a, b) in got.pixels().zip(rgba.pixels()) {
        assert_eq!(a[3], b[3], "alpha values unchanged");
    }
}

/// A PNG whose header claims `w`×`h` pixels (decompression-bomb shape), with a valid CRC.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A few bytes of (truncated) pixel data and the end chunk: the decoder must refuse the
    // image from its header, never reaching the pixels.
    for (kind, data) in [(&b"IDAT"[..], &b"\x78\x9c\x63\x60"[..]), (&b"IEND"[..], &b""[..])] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn bad_images_give_clear_errors() {
    let model = shared::path("models/fast_style_pytorch/candy_nc8.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(shared::path("data/content/small/cat_chelsea_256.jpg")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.jpg", vec![], "empty"),
        ("noise.jpg", (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(), "not an image"),
        ("truncated.jpg", real[..real.len() / 3].to_vec(), "corrupt"),
        ("bomb.png", png_header_only(100_000, 100_000), "over the limit"),
        ("text.png", b"hello, this is not a picture".to_vec(), "not an image"),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(), "corrupt GIF"),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = run(&["stylize", s(&p), "-o", s(&dir.path().join("out.png")), "--model", s(&model)]);
        assert_clean_error(&o, needle);
    }
    assert!(!dir.path().join("out.png").exists(), "no output written for bad input");
    let o = run(&["stylize", "/nonexistent.jpg", "-o", "/tmp/x.png", "--model", s(&model)]);
    assert_clean_error(&o, "no such file");
    let input = shared::path("data/content/small/cat_chelsea_256.jpg");
    let o = run(&["stylize", s(&input), "-o", s(&dir.path().join("out.bmp")), "--model", s(&model)]);
    assert_clean_error(&o, "unsupported output extension");
    let o = run(&["stylize", s(&input), "-o", s(&dir.path().join("o.png")), "--model", s(&model), "--strength", "2"]);
    assert_clean_error(&o, "strength");
    let o = run(&["stylize", s(&input), "-o", s(&dir.path().join("o.png")), "--model", s(&model), "--tile", "10"]);
    assert_clean_error(&o, "tile");
}

#[test]
fn bad_weights_give_clear_errors() {
    let input = shared::path("data/content/small/cat_chelsea_256.jpg");
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(shared::path("models/fast_style_pytorch/candy_nc8.safetensors")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.safetensors", vec![], "empty"),
        ("text.safetensors", b"not weights at all".to_vec(), "safetensors"),
        ("truncated.safetensors", good[..good.len() / 2].to_vec(), "safetensors"),
        ("truncated.pth", std::fs::read(shared::path("parity/transformer_net_stock_legacy.pth")).unwrap()[..4000].to_vec(), "pytorch"),
        ("other.safetensors", std::fs::read(shared::path("parity/cyclegan.safetensors")).unwrap(), "not a fast-style network"),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = run(&["stylize", s(&input), "-o", s(&dir.path().join("out.png")), "--model", s(&p)]);
        assert_clean_error(&o, needle);
    }
    // The right names with a wrong shape.
    let mut w = styleforge_core::weights::Weights::from_safetensors_bytes(&good).unwrap();
    w.tensors.get_mut("in1.weight").unwrap().shape = vec![4, 2];
    let p = dir.path().join("wrong_shape.safetensors");
    std::fs::write(&p, w.to_safetensors_bytes().unwrap()).unwrap();
    let o = run(&["stylize", s(&input), "-o", s(&dir.path().join("out.png")), "--model", s(&p)]);
    assert_clean_error(&o, "in1.weight");
    let o = run(&["stylize", s(&input), "-o", s(&dir.path().join("out.png")), "--model", "no-such-model"]);
    assert_clean_error(&o, "models list");
}

#[test]
fn model_library_import_list_use_remove() {
    let home = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| bin().env("STYLEFORGE_HOME", home.path()).args(args).output().unwrap();
    let pth = shared::path("parity/transformer_net_stock_legacy.pth");
    let o = cmd(&["models", "import", s(&pth), "--name", "stock", "--title", "Stock", "--tags", "test,stock", "--license", "test weights"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cmd(&["models", "import", s(&shared::path("models/fast_style_engstrom/wave.safetensors")), "--name", "wave"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cmd(&["models", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cartoon-paprika", "cartoon-shinkai", "microast", "stock", "wave"]);
    let by = |n: &str| list.as_array().unwrap().iter().find(|m| m["name"] == n).unwrap().clone();
    assert!(["cartoon-paprika", "cartoon-shinkai", "microast"].iter().all(|n| by(n)["builtin"] == true));
    assert_eq!(by("stock")["family"], "transformer_net");
    assert_eq!(by("wave")["family"], "engstrom");
    assert_eq!(by("stock")["tags"], serde_json::json!(["test", "stock"]));
    // Imported by name, the model gives the same pixels as the source file.
    let input = shared::path("data/content/small/town_houses_kodim08_256.jpg");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    assert!(cmd(&["stylize", s(&input), "-o", s(&a), "--model", "stock"]).status.success());
    assert!(cmd(&["stylize", s(&input), "-o", s(&b), "--model", s(&pth)]).status.success());
    assert_eq!(rgb(&a), rgb(&b));
    // Duplicate names and bad names are refused.
    assert_clean_error(&cmd(&["models", "import", s(&pth), "--name", "stock"]), "already exists");
    assert_clean_error(&cmd(&["models", "import", s(&pth), "--name", "Bad Name"]), "invalid model name");
    assert!(cmd(&["models", "remove", "stock"]).status.success());
    assert_clean_error(&cmd(&["models", "remove", "stock"]), "not in the library");
    let o = cmd(&["models", "list", "--available"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("wave") && text.contains("research"), "{text}");
}

#[test]
fn adain_and_gatys_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| bin().env("STYLEFORGE_HOME", home.path()).args(args).output().unwrap();
    let ok = |o: Output| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = |rel: &str| shared::path(rel).to_str().unwrap().to_string();
    ok(cmd(&["models", "import", &p("parity/adain_vgg_normalised_relu4_1.pth"), &p("parity/adain_decoder.pth"), "--name", "adain"]));
    ok(cmd(&["models", "import", &p("parity/vgg19_features_f16.pth"), "--name", "vgg19"]));
    let input = p("data/content/small/cat_chelsea_256.jpg");
    let (s1, s2) = (p("data/styles/starry_night_van_gogh.jpg"), p("data/styles/great_wave_hokusai.jpg"));
    let dir = tempfile::tempdir().unwrap();
    let out = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let blend = [format!("{s1}:0.3"), format!("{s2}:0.7")];
    ok(cmd(&["stylize", &input, "-o", &out("direct.png"), "--method", "adain", "--style", &blend[0], "--style", &blend[1]]));
    ok(cmd(&["stylize", &input, "-o", &out("unused.png"), "--method", "adain", "--style", &blend[0], "--style", &blend[1], "--save-style-stats", &out("mix.json")]));
    assert!(!dir.path().join("unused.png").exists(), "saving statistics stylises nothing");
    ok(cmd(&["stylize", &input, "-o", &out("cached.png"), "--method", "adain", "--style", &out("mix.json")]));
    assert_eq!(rgb(Path::new(&out("direct.png"))), rgb(Path::new(&out("cached.png"))), "cached statistics give the same pixels");
    assert_eq!(rgb(Path::new(&out("direct.png"))).dimensions(), rgb(Path::new(&input)).dimensions());

    ok(cmd(&["stylize", &input, "-o", &out("gatys.png"), "--method", "gatys", "--style", &s1, "--size", "48", "--iterations", "4", "--scales", "2", "--preview-every", "2"]));
    let g = rgb(Path::new(&out("gatys.png")));
    assert_eq!(g.width().max(g.height()), 48);
    let previews = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("gatys.scale"))
        .count();
    assert!(previews >= 2, "previews written: {previews}");

    assert_clean_error(&cmd(&["stylize", &input, "-o", &out("x.png"), "--method", "adain"]), "--style");
    assert_clean_error(&cmd(&["stylize", &input, "-o", &out("x.png"), "--method", "adain", "--style", &format!("{s1}:-1")]), "non-negative");
    assert_clean_error(&cmd(&["stylize", &input, "-o", &out("x.png"), "--method", "fast", "--style", &s1]), "--style applies");
    // Without --method, the model's kind picks the method: the AdaIN model runs adain.
    let o = cmd(&["stylize", &input, "-o", &out("by_model.png"), "--model", "adain", "--style", &s1]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_clean_error(&cmd(&["stylize", &input, "-o", &out("x.png"), "--method", "adain", "--style", &s1, "--alpha", "1.5"]), "alpha");
    assert_clean_error(&cmd(&["stylize", &input, "-o", &out("x.png"), "--method", "gatys", "--style", &s1, "--model", &p("parity/adain_decoder.pth")]), "vgg");
}

#[test]
fn cyclegan_generator_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| bin().env("STYLEFORGE_HOME", home.path()).args(args).output().unwrap();
    let g = shared::path("parity/cyclegan_G_ngf32_6blocks.pth");
    let o = cmd(&["models", "import", s(&g), "--name", "gan"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cmd(&["models", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gan = list.as_array().unwrap().iter().find(|m| m["name"] == "gan").unwrap();
    assert_eq!(gan["method"], "cyclegan");
    assert_eq!(list.as_array().unwrap().iter().filter(|m| m["builtin"] == true).count(), 3);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("odd.png");
    image::RgbImage::from_fn(77, 45, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 60])).save(&input).unwrap();
    let out = dir.path().join("odd_out.png");
    let o = cmd(&["stylize", s(&input), "-o", s(&out), "--method", "cyclegan", "--model", "gan"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rgb(&out).dimensions(), (77, 45));
    assert!(mean_abs_diff(&rgb(&input), &rgb(&out)) > 1.0);
    // A fast-style network is not a CycleGAN generator.
    let fast = shared::path("models/fast_style_pytorch/candy_nc8.safetensors");
    assert_clean_error(&cmd(&["stylize", s(&input), "-o", s(&out), "--method", "cyclegan", "--model", s(&fast)]), "error");
}

#[test]
fn onnx_models_import_run_and_export_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| bin().env("STYLEFORGE_HOME", home.path()).args(args).output().unwrap();
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let onnx = shared::path("models/onnx_fast_style/model.onnx");
    let said = ok(cmd(&["models", "import", s(&onnx), "--name", "mind", "--input-range", "0..255", "--license", "MIT"]));
    assert!(said.contains("values 0..255, output 0..255") && !said.contains("assumed"), "{said}");
    // By name and as a file, at the photo's size.
    let input = shared::path("data/content/small/town_houses_kodim08_256.jpg");
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    ok(cmd(&["stylize", s(&input), "-o", s(&a), "--model", "mind"]));
    ok(cmd(&["stylize", s(&input), "-o", s(&b), "--model", s(&onnx)]));
    assert_eq!(rgb(&a), rgb(&b));
    assert_eq!(rgb(&a).dimensions(), rgb(&input).dimensions());

    // A built-in filter exported, imported again, gives the built-in's pixels.
    let exported = dir.path().join("paprika.onnx");
    let said = ok(cmd(&["models", "export", "cartoon-paprika", "-o", s(&exported)]));
    assert!(said.contains("opset 17"), "{said}");
    let said = ok(cmd(&["models", "import", s(&exported), "--name", "paprika-again"]));
    assert!(said.contains("values 0..255") && !said.contains("assumed"), "the export states its range: {said}");
    let (c, d) = (dir.path().join("c.png"), dir.path().join("d.png"));
    ok(cmd(&["stylize", s(&input), "-o", s(&c), "--model", "paprika-again"]));
    ok(cmd(&["stylize", s(&input), "-o", s(&d), "--model", "cartoon-paprika"]));
    assert!(mean_abs_diff(&rgb(&c), &rgb(&d)) < 0.5, "{}", mean_abs_diff(&rgb(&c), &rgb(&d)));
    // An imported model exports as imported, with its library metadata.
    let again = dir.path().join("mind.onnx");
    let said = ok(cmd(&["models", "export", "mind", "-o", s(&again)]));
    assert!(said.contains("imported graph"), "{said}");
    let w = styleforge_core::weights::Weights::load(&again).unwrap();
    assert_eq!(w.metadata.get("license").map(String::as_str), Some("MIT"));
    assert_eq!(w.metadata.get("styleforge.input_range").map(String::as_str), Some("0..255"));

    // Refusals.
    let pth = shared::path("parity/transformer_net_stock_legacy.pth");
    assert_clean_error(&cmd(&["models", "import", s(&pth), "--name", "x", "--input-range", "0..1"]), "ONNX files only");
    assert_clean_error(&cmd(&["models", "import", s(&onnx), "--name", "y", "--input-range", "0..9"]), "0..255, 0..1, -1..1");
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &std::fs::read(&onnx).unwrap()[..20_000]).unwrap();
    assert_clean_error(&cmd(&["models", "import", s(&cut), "--name", "cut"]), "not an ONNX model");
    assert_clean_error(&cmd(&["models", "export", "nope", "-o", s(&dir.path().join("n.onnx"))]), "models list");
    let o = cmd(&["models", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"cut") && !names.contains(&"x") && !names.contains(&"y"), "{names:?}");
}

#[test]
fn evaluate_writes_a_report_with_metrics_and_reuses_outputs() {
    let home = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| bin().env("STYLEFORGE_HOME", home.path()).args(args).output().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let photos = [shared::path("data/content/small/cat_chelsea_256.jpg"), shared::path("data/content/small/parrots_kodim23_256.jpg")];
    let vgg = shared::path("parity/vgg19_features_f16.pth");
    let args = [
        "evaluate", "--content", s(&photos[0]), s(&photos[1]), "--style", "great-wave", "--method", "microast", "--method", "cartoon:cartoon-paprika",
        "--max-size", "64", "--vgg", s(&vgg), "-o", s(&report),
    ];
    let o = cmd(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("| microast | 2 |") && stdout.contains("| cartoon:cartoon-paprika | 2 |"), "{stdout}");
    assert!(stdout.contains("LPIPS skipped") && stdout.contains("ArtFID skipped"), "{stdout}");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("metrics.json")).unwrap()).unwrap();
    let records = m["records"].as_array().unwrap();
    assert_eq!(records.len(), 4);
    for r in records {
        let ssim = r["ssim"].as_f64().unwrap();
        assert!(ssim > -1.0 && ssim < 1.0, "{r}");
        assert!(r["content_loss"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["seconds"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(report.join(r["image"].as_str().unwrap()).is_file());
    }
    // Style losses exist where there is a style picture (microast), not for a filter.
    let by = |method: &str| records.iter().find(|r| r["method"] == method).unwrap().clone();
    assert!(by("microast")["style_loss_gram"].as_f64().unwrap() > 0.0);
    assert!(by("microast")["style_loss_mean_std"].as_f64().unwrap() > 0.0);
    assert!(by("cartoon:cartoon-paprika")["style_loss_gram"].is_null());
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Content against style loss") && html.contains("data:image/jpeg;base64,"));
    assert!(!html.contains("src=\"images/"), "self-contained");
    let sheet = rgb(&report.join("contact_sheet.png"));
    assert_eq!(sheet.width(), 6 + 2 * (160 + 6), "content and one column");
    // A second run reads the outputs back: same metrics, no times.
    let mut again = args.to_vec();
    again.push("--reuse");
    assert!(cmd(&again).status.success());
    let m2: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("metrics.json")).unwrap()).unwrap();
    for (a, b) in records.iter().zip(m2["records"].as_array().unwrap()) {
        assert!(b["seconds"].is_null());
        assert!((a["ssim"].as_f64().unwrap() - b["ssim"].as_f64().unwrap()).abs() < 1e-12);
    }
    // Without a VGG the losses are skipped with a note, never made up.
    let o = cmd(&["evaluate", "--content", s(&photos[0]), "--method", "cartoon:cartoon-shinkai", "--max-size", "64", "-o", s(&dir.path().join("r2"))]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && stdout.contains("Content and style losses skipped"), "{stdout}");
    // Clear refusals.
    assert_clean_error(&cmd(&["evaluate", "--content", s(&photos[0]), "--method", "fast", "-o", s(&report)]), "--method fast:MODEL");
    assert_clean_error(&cmd(&["evaluate", "--content", s(&photos[0]), "--method", "microast", "-o", s(&report)]), "--style");
    assert_clean_error(&cmd(&["evaluate", "--content", s(&photos[0]), "--method", "nope", "-o", s(&report)]), "unknown method");
}

/// With an AlexNet and an Inception-v3 (formula weights here: the numbers are the plumbing's,
/// not a judgement of the pictures; parity lives in the engine's tests), `evaluate` adds LPIPS
/// per output and FID and ArtFID = (1 + mean LPIPS)·(1 + FID) per method whose style is a picture.
#[test]
fn evaluate_reports_lpips_fid_and_artfid_with_their_networks() {
    use styleforge_core::weights::formula;
    let dir = tempfile::tempdir().unwrap();
    let alexnet: Vec<(String, Vec<usize>)> = [
        (0, [64, 3, 11, 11]),
        (3, [192, 64, 5, 5]),
        (6, [384, 192, 3, 3]),
        (8, [256, 384, 3, 3]),
        (10, [256, 256, 3, 3]),
    ]
    .into_iter()
    .flat_map(|(i, shape): (usize, [usize; 4])| {
        [
            (format!("features.{i}.weight"), shape.to_vec()),
            (format!("features.{i}.bias"), vec![shape[0]]),
        ]
    })
    .collect();
    let alex_file = dir.path().join("alexnet.safetensors");
    std::fs::write(
        &alex_file,
        formula::weights(&alexnet).to_safetensors_bytes().unwrap(),
    )
    .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../styleforge-core/tests/fixtures/inception_parity.json"
    ))
    .unwrap();
    let inception: Vec<(String, Vec<usize>)> = fixture["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect();
    let inception_file = dir.path().join("inception.safetensors");
    std::fs::write(
        &inception_file,
        formula::weights(&inception).to_safetensors_bytes().unwrap(),
    )
    .unwrap();

    let home = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let photos = [
        shared::path("data/content/small/cat_chelsea_256.jpg"),
        shared::path("data/content/small/parrots_kodim23_256.jpg"),
    ];
    let o = bin()
        .env("STYLEFORGE_HOME", home.path())
        .args([
            "evaluate",
            "--content",
            s(&photos[0]),
            s(&photos[1]),
            "--style",
            "great-wave",
            "starry-night",
        ])
        .args([
            "--method",
            "microast",
            "--method",
            "cartoon:cartoon-shinkai",
            "--max-size",
            "128",
        ])
        .args([
            "--lpips",
            s(&alex_file),
            "--inception",
            s(&inception_file),
            "-o",
            s(&report),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !stdout.contains("LPIPS skipped") && !stdout.contains("ArtFID skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("No FID or ArtFID for cartoon:cartoon-shinkai"),
        "{stdout}"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("metrics.json")).unwrap()).unwrap();
    let records = m["records"].as_array().unwrap();
    assert_eq!(records.len(), 6);
    for r in records {
        let l = r["lpips"].as_f64().unwrap();
        assert!(l > 0.0 && l.is_finite(), "{r}");
    }
    let summary = |method: &str| {
        m["summaries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["method"] == method)
            .unwrap()
            .clone()
    };
    let micro = summary("microast");
    let (lpips, fid, art) = (
        micro["lpips"].as_f64().unwrap(),
        micro["fid"].as_f64().unwrap(),
        micro["art_fid"].as_f64().unwrap(),
    );
    let mean_lpips = records
        .iter()
        .filter(|r| r["method"] == "microast")
        .map(|r| r["lpips"].as_f64().unwrap())
        .sum::<f64>()
        / 4.0;
    assert!((lpips - mean_lpips).abs() < 1e-12, "{micro}");
    assert!(fid > 0.0 && fid.is_finite(), "{micro}");
    assert!(
        (art - (1.0 + lpips) * (1.0 + fid)).abs() < 1e-9 * art,
        "{micro}"
    );
    let cartoon = summary("cartoon:cartoon-shinkai");
    assert!(
        cartoon["lpips"].as_f64().unwrap() > 0.0
            && cartoon["fid"].is_null()
            && cartoon["art_fid"].is_null(),
        "{cartoon}"
    );
    assert_eq!(m["networks"]["lpips"], "alex", "{}", m["networks"]);
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("ArtFID") && html.contains("LPIPS on AlexNet features"), "the report names the metrics and networks");
    // Pictures too small for the networks skip their metrics with a note; the run goes on.
    let o = bin()
        .env("STYLEFORGE_HOME", home.path())
        .args(["evaluate", "--content", s(&photos[0]), s(&photos[1]), "--style", "great-wave", "--method", "microast", "--max-size", "40"])
        .args(["--lpips", s(&alex_file), "--inception", s(&inception_file), "-o", s(&dir.path().join("small"))])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("LPIPS skipped: LPIPS on alex needs pictures of at least 31×31") && stdout.contains("FID and ArtFID skipped"), "{stdout}");
    // A backbone that is neither network is refused by name, and the run goes on without LPIPS.
    let o = bin()
        .env("STYLEFORGE_HOME", home.path())
        .args([
            "evaluate",
            "--content",
            s(&photos[0]),
            "--method",
            "cartoon:cartoon-shinkai",
            "--max-size",
            "64",
        ])
        .args([
            "--lpips",
            s(&inception_file),
            "-o",
            s(&dir.path().join("r2")),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && stdout.contains("LPIPS skipped")
            && stdout.contains("neither an AlexNet nor a VGG-16"),
        "{stdout}"
    );
}
