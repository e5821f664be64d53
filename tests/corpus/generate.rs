//! The bad-input corpus, made from nothing: every file under `tests/corpus/` is written by
//! [`files`], and the CLI test `bad_inputs` checks that the committed files are exactly these
//! (`STYLEFORGE_WRITE_CORPUS=1 cargo test --release --workspace --test command bad_inputs::`
//! rewrites them). Included by the CLI and service tests with `#[path]`.
//!
//! Layout, and what each kind must get:
//! - `images/ok_*`: unusual but valid images (tiny and thin sizes, ICC profiles, 16-bit, grey,
//!   palette, a wrong extension): stylised to exactly their size (CLI exit 0; service 201 and 200).
//! - `images/*` (the rest): truncated, corrupt, empty, animated, foreign or bomb files: refused
//!   with one line (CLI exit 1) or a 4xx JSON error; no output written.
//! - `weights/*`: files that are not a model of any kind: `--model FILE` refused with one line.
//! - `args/*.args`: absurd parameters, one command line (`{IN}`, `{OUT}` replaced): exit 1.
//! - `requests/*.http`: raw HTTP requests (`{IMAGE}` replaced by an uploaded image's id,
//!   `{LONG:N}` by N letters, line ends made CRLF): 4xx, JSON body.

#![allow(dead_code)]

use std::io::Cursor;

use image::{DynamicImage, ImageEncoder, ImageFormat, RgbImage};

/// Every corpus file: its path under `tests/corpus/` and its bytes.
pub fn files() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| out.push((name.to_string(), bytes));

    // Valid but unusual images.
    for (w, h) in [(1, 1), (2, 2), (4, 4), (5, 5), (1, 4000), (4000, 1), (3, 500), (101, 75)] {
        add(&format!("images/ok_{w}x{h}.png"), encode(&gradient(w, h), ImageFormat::Png));
    }
    add("images/ok_1x1.jpg", encode(&gradient(1, 1), ImageFormat::Jpeg));
    add("images/ok_2x3.webp", encode(&gradient(2, 3), ImageFormat::WebP));
    add("images/ok_gray16.png", encode(&DynamicImage::ImageLuma16(DynamicImage::ImageRgb8(gradient(24, 16)).to_luma16()), ImageFormat::Png));
    add("images/ok_rgba16.png", encode(&DynamicImage::ImageRgba16(DynamicImage::ImageRgb8(gradient(16, 24)).to_rgba16()), ImageFormat::Png));
    add("images/ok_png_named.jpg", encode(&gradient(20, 12), ImageFormat::Png));
    add("images/ok_adobe_rgb.png", tagged_png(&solid(12, 8, [200, 100, 50]), &moxcms::ColorProfile::new_adobe_rgb()));
    add("images/ok_display_p3.png", tagged_png(&solid(12, 8, [220, 30, 30]), &moxcms::ColorProfile::new_display_p3()));
    add("images/ok_bad_icc.png", png_with_icc(&solid(12, 8, [10, 200, 30]), b"not a colour profile at all".to_vec()));

    // Truncated and corrupt files of every format.
    let seed = gradient(32, 24);
    for (ext, format) in [("png", ImageFormat::Png), ("jpg", ImageFormat::Jpeg), ("webp", ImageFormat::WebP)] {
        let good = encode(&seed, format);
        for pct in [10, 50, 90] {
            add(&format!("images/truncated_{pct}.{ext}"), good[..good.len() * pct / 100].to_vec());
        }
        add(&format!("images/header_only.{ext}"), good[..good.len().min(30)].to_vec());
        let mut flipped = good.clone();
        let mid = flipped.len() / 2;
        for b in &mut flipped[mid..mid + 16] {
            *b ^= 0xA5;
        }
        add(&format!("images/corrupt_middle.{ext}"), flipped);
        add(&format!("images/empty.{ext}"), Vec::new());
    }
    add("images/png_bad_crc.png", {
        let mut b = encode(&seed, ImageFormat::Png);
        b[29] ^= 0xFF; // inside IHDR's CRC
        b
    });
    add("images/png_bomb_100000x100000.png", png_header_only(100_000, 100_000));
    add("images/png_zero_width.png", png_header_only(0, 10));
    add("images/jpeg_no_scan.jpg", vec![0xFF, 0xD8, 0xFF, 0xD9]);
    // A RIFF size beyond the end of the file, every chunk whole: nothing is missing, so it is read.
    add("images/ok_webp_riff_size_too_large.webp", {
        let mut b = encode(&seed, ImageFormat::WebP);
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        b
    });

    // Animations: refused until frame-by-frame support exists.
    add("images/animated.png", apng(&[gradient(8, 8), solid(8, 8, [255, 0, 0])]));
    add("images/animated.webp", animated_webp(&gradient(8, 8)));
    add("images/animated.gif", gif(true));
    add("images/still.gif", gif(false));

    // Not images at all.
    add("images/text.png", b"this is a text file with an image's name\n".to_vec());
    add("images/html.jpg", b"<!doctype html><html><body>404 Not Found</body></html>\n".to_vec());
    add("images/pdf.webp", b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n1 0 obj << >> endobj\n".to_vec());
    add("images/random.png", pseudo_random(300, 7));
    add("images/bmp.png", [b"BM".as_slice(), &pseudo_random(60, 3)].concat());

    // Files that are no model.
    add("weights/empty.pth", Vec::new());
    add("weights/random.pth", pseudo_random(256, 11));
    add("weights/not_a_torch_zip.pth", zip_with_text());
    add("weights/truncated.safetensors", {
        let mut b = safetensors_one("conv.weight");
        b.truncate(b.len() - 8);
        b
    });
    add("weights/unknown_tensors.safetensors", safetensors_one("foo.bar"));
    add("weights/header_lies.safetensors", {
        let mut b = b"{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000,1000000],\"data_offsets\":[0,4]}}".to_vec();
        let mut v = (b.len() as u64).to_le_bytes().to_vec();
        v.append(&mut b);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    });
    add("weights/json.safetensors", b"{\"model\": \"candy\"}".to_vec());
    add("weights/image.pth", encode(&gradient(4, 4), ImageFormat::Png));

    // Absurd parameters (the CLI).
    for (name, args) in [
        ("strength_2", "stylize {IN} -o {OUT} --model {MODEL} --strength 2"),
        ("strength_nan", "stylize {IN} -o {OUT} --model {MODEL} --strength NaN"),
        ("strength_word", "stylize {IN} -o {OUT} --model {MODEL} --strength strong"),
        ("max_size_0", "stylize {IN} -o {OUT} --model {MODEL} --max-size 0"),
        ("max_size_huge", "stylize {IN} -o {OUT} --model {MODEL} --max-size 99999999999"),
        ("tile_1", "stylize {IN} -o {OUT} --model {MODEL} --tile 1"),
        ("iterations_0", "stylize {IN} -o {OUT} --method gatys --style {IN} --iterations 0"),
        ("scales_100", "stylize {IN} -o {OUT} --method gatys --style {IN} --scales 100"),
        ("style_weight_negative", "stylize {IN} -o {OUT} --style {IN}:-1"),
        ("unknown_style", "stylize {IN} -o {OUT} --style no-such-painting"),
        ("output_extension", "stylize {IN} -o {OUT}.gif --model {MODEL}"),
        ("max_pixels_0", "stylize {IN} -o {OUT} --model {MODEL} --max-pixels 0"),
        ("mask_for_fast", "stylize {IN} -o {OUT} --model {MODEL} --mask {IN}"),
        ("missing_input", "stylize {IN}.missing -o {OUT} --model {MODEL}"),
    ] {
        add(&format!("args/{name}.args"), format!("{args}\n").into_bytes());
    }

    // Malformed requests (the service).
    let json = |path: &str, body: &str| {
        format!("POST {path} HTTP/1.1\nhost: corpus\ncontent-type: application/json\ncontent-length: {}\n\n{body}", body.len())
    };
    for (name, text) in [
        ("json_truncated", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"style\": ")),
        ("json_array", json("/v1/stylize", "[1, 2, 3]")),
        ("json_wrong_types", json("/v1/stylize", "{\"image\": 5, \"style\": true}")),
        ("json_strength_2", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"style\": \"candy\", \"strength\": 2}")),
        ("json_strength_string", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"style\": \"candy\", \"strength\": \"1\"}")),
        ("json_max_size_0", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"style\": \"candy\", \"max_size\": 0}")),
        ("json_max_size_negative", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"style\": \"candy\", \"max_size\": -5}")),
        ("json_iterations_huge", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"style\": \"starry-night\", \"method\": \"gatys\", \"iterations\": 1000000000}")),
        ("json_unknown_method", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"style\": \"candy\", \"method\": \"magic\"}")),
        ("json_unknown_image", json("/v1/stylize", "{\"image\": \"img_nope\", \"style\": \"candy\"}")),
        ("json_weights_negative", json("/v1/stylize", "{\"image\": \"{IMAGE}\", \"styles\": [{\"style\": \"starry-night\", \"weight\": -1}]}")),
        ("json_nul_bytes", json("/v1/stylize", "{\"image\": \"\\u0000\\u0000\", \"style\": \"\\u0000\"}")),
        ("json_deep_nesting", json("/v1/stylize", &format!("{}{}", "[".repeat(4000), "]".repeat(4000)))),
        ("json_as_text_plain", "POST /v1/stylize HTTP/1.1\nhost: corpus\ncontent-type: text/plain\ncontent-length: 2\n\n{}".into()),
        ("multipart_no_boundary", "POST /v1/images HTTP/1.1\nhost: corpus\ncontent-type: multipart/form-data\ncontent-length: 5\n\nhello".into()),
        ("multipart_truncated", {
            let body = "--XyZ\ncontent-disposition: form-data; name=\"file\"; filename=\"a.png\"\ncontent-type: image/png\n\n\u{89}PNG";
            format!("POST /v1/images HTTP/1.1\nhost: corpus\ncontent-type: multipart/form-data; boundary=XyZ\ncontent-length: {}\n\n{body}", body.len() + 4)
        }),
        ("multipart_no_file", {
            let body = "--XyZ\ncontent-disposition: form-data; name=\"title\"\n\nhello\n--XyZ--\n";
            format!("POST /v1/images HTTP/1.1\nhost: corpus\ncontent-type: multipart/form-data; boundary=XyZ\ncontent-length: {}\n\n{body}", body.len() + 5)
        }),
        ("upload_text_as_png", "POST /v1/images HTTP/1.1\nhost: corpus\ncontent-type: image/png\ncontent-length: 11\n\nhello world".into()),
        ("upload_empty", "POST /v1/images HTTP/1.1\nhost: corpus\ncontent-type: image/png\ncontent-length: 0\n\n".into()),
        ("header_oversized", "GET /v1/styles HTTP/1.1\nhost: corpus\nx-filler: {LONG:70000}\n\n".into()),
        ("header_many", format!("GET /v1/styles HTTP/1.1\nhost: corpus\n{}\n", (0..200).map(|i| format!("x-h{i}: v\n")).collect::<String>())),
        // (`/v1/styles` takes no paging, so its unknown parameters are ignored; the image list pages.)
        ("query_absurd", "GET /v1/images?limit=-1&cursor=99999999999999999999 HTTP/1.1\nhost: corpus\n\n".into()),
        ("query_limit_huge", "GET /v1/images?limit=99999999999 HTTP/1.1\nhost: corpus\n\n".into()),
        ("unknown_result", "GET /v1/results/res_..%2F..%2Fetc%2Fpasswd HTTP/1.1\nhost: corpus\n\n".into()),
    ] {
        add(&format!("requests/{name}.http"), text.into_bytes());
    }
    out
}

/// A gradient test picture.
pub fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 255 / w.max(2)) as u8, (y * 255 / h.max(2)) as u8, 96]))
}

/// One colour.
pub fn solid(w: u32, h: u32, c: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, image::Rgb(c))
}

fn encode(img: &(impl Into<DynamicImage> + Clone), format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.clone().into().write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A PNG carrying `profile` in `iCCP`, its pixels the numbers given (in that profile's space).
pub fn tagged_png(img: &RgbImage, profile: &moxcms::ColorProfile) -> Vec<u8> {
    let mut icc = profile.encode().unwrap();
    // `encode` stamps the current time into the header (bytes 24..36, six big-endian u16s);
    // a fixed date keeps the corpus identical from run to run.
    for (i, v) in [2025u16, 1, 1, 0, 0, 0].into_iter().enumerate() {
        icc[24 + 2 * i..26 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    png_with_icc(img, icc)
}

fn png_with_icc(img: &RgbImage, icc: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    enc.set_icc_profile(icc).unwrap();
    enc.write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8).unwrap();
    out
}

/// A PNG chunk with its length and CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut crc = 0xFFFF_FFFFu32;
    for &b in kind.iter().chain(data) {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    c.extend_from_slice(&(!crc).to_be_bytes());
    c
}

/// A PNG signature and IHDR claiming `w`×`h`, and nothing else.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(chunk(b"IHDR", &ihdr));
    b.extend(chunk(b"IEND", &[]));
    b
}

/// An animated PNG of the frames (the `png` encoder's APNG support).
fn apng(frames: &[RgbImage]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let (w, h) = frames[0].dimensions();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(frames.len() as u32, 0).unwrap();
        let mut writer = enc.write_header().unwrap();
        for f in frames {
            writer.write_image_data(f.as_raw()).unwrap();
        }
        writer.finish().unwrap();
    }
    out
}

/// A RIFF chunk (padded to an even size).
fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend_from_slice(&(data.len() as u32).to_le_bytes());
    c.extend_from_slice(data);
    if data.len() % 2 == 1 {
        c.push(0);
    }
    c
}

/// An animated WebP: two frames of a lossless still (VP8X with the animation flag, ANIM, ANMF).
fn animated_webp(frame: &RgbImage) -> Vec<u8> {
    let still = encode(frame, ImageFormat::WebP);
    // The still is RIFF....WEBP then one VP8L chunk.
    let vp8l = &still[12..];
    let (w, h) = (frame.width() - 1, frame.height() - 1);
    let le24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut vp8x = vec![0x02, 0, 0, 0];
    vp8x.extend(le24(w));
    vp8x.extend(le24(h));
    let mut anim = vec![0, 0, 0, 0];
    anim.extend_from_slice(&0u16.to_le_bytes());
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend(riff_chunk(b"ANIM", &anim));
    for _ in 0..2 {
        let mut f = Vec::new();
        f.extend(le24(0));
        f.extend(le24(0));
        f.extend(le24(w));
        f.extend(le24(h));
        f.extend(le24(100));
        f.push(0);
        f.extend_from_slice(vp8l);
        body.extend(riff_chunk(b"ANMF", &f));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// A 1×1 GIF, with two frames and a looping extension when `animated`.
fn gif(animated: bool) -> Vec<u8> {
    let mut b = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
    if animated {
        b.extend_from_slice(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00");
    }
    let frame = b"\x21\xf9\x04\x00\x0a\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00";
    for _ in 0..if animated { 2 } else { 1 } {
        b.extend_from_slice(frame);
    }
    b.push(0x3b);
    b
}

/// Deterministic noise bytes.
fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as u8
        })
        .collect()
}

/// A stored (uncompressed) zip holding one text file: the container `.pth` files use, without
/// a pickle inside.
fn zip_with_text() -> Vec<u8> {
    let name = b"archive/readme.txt";
    let data = b"not a state dict";
    let crc = {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    };
    let le16 = |v: u16| v.to_le_bytes();
    let le32 = |v: u32| v.to_le_bytes();
    let mut local = b"PK\x03\x04".to_vec();
    for part in [&le16(20)[..], &le16(0), &le16(0), &le16(0), &le16(0), &le32(crc), &le32(data.len() as u32), &le32(data.len() as u32), &le16(name.len() as u16), &le16(0)] {
        local.extend_from_slice(part);
    }
    local.extend_from_slice(name);
    local.extend_from_slice(data);
    let mut central = b"PK\x01\x02".to_vec();
    for part in [
        &le16(20)[..], &le16(20), &le16(0), &le16(0), &le16(0), &le16(0), &le32(crc), &le32(data.len() as u32), &le32(data.len() as u32),
        &le16(name.len() as u16), &le16(0), &le16(0), &le16(0), &le16(0), &le32(0), &le32(0),
    ] {
        central.extend_from_slice(part);
    }
    central.extend_from_slice(name);
    let mut end = b"PK\x05\x06".to_vec();
    for part in [&le16(0)[..], &le16(0), &le16(1), &le16(1), &le32(central.len() as u32), &le32(local.len() as u32), &le16(0)] {
        end.extend_from_slice(part);
    }
    [local, central, end].concat()
}

/// A safetensors file with one 2×2 float tensor called `name`.
fn safetensors_one(name: &str) -> Vec<u8> {
    let header = format!("{{\"{name}\":{{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}}}");
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0u8; 16]);
    b
}
