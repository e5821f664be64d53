//! The service end to end over real HTTP: a server started on 127.0.0.1:0 per test, with its own
//! data directory, real models from the shared directory, and a blocking HTTP client.

use crate::common;

use std::path::Path;
use std::time::Duration;

use burn::tensor::Device;
use crate::common::*;
use serde_json::{Value, json};
use styleforge_core::methods::fast::{FastStyleNet, StylizeOptions};
use styleforge_core::image_io;
use styleforge_core::methods;
use styleforge_core::library::{Library, ModelInfo, ModelKind, builtin};
use styleforge_core::shared;
use styleforge_server::KeyLimits;

fn decode_rgb(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

#[test]
fn upload_raw_and_multipart_then_get_info_thumbnail_list_delete() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let jpeg = content_jpeg();

    let r = post_bytes(&s.url("/v1/images"), "image/jpeg", &jpeg, None);
    let v = r.ok_json(201);
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/images/{id}").as_str())
    );
    assert_eq!(v["format"], "jpeg");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(256), Some(170))
    );
    assert_eq!(v["bytes"].as_u64(), Some(jpeg.len() as u64));

    // The bytes come back unchanged.
    let g = get(&s.url(&format!("/v1/images/{id}")), None);
    assert_eq!(g.status, 200);
    assert_eq!(g.content_type, "image/jpeg");
    assert_eq!(g.body, jpeg);

    // Multipart upload of the same file: a new image, the same content-addressed blob.
    let (ct, body) = multipart("image", &jpeg, &[]);
    let v2 = post_bytes(&s.url("/v1/images"), &ct, &body, None).ok_json(201);
    let id2 = v2["id"].as_str().unwrap().to_string();
    assert_ne!(id, id2);
    assert_eq!(v2["sha256"], v["sha256"]);
    let sha = v["sha256"].as_str().unwrap().to_string();
    let blob = data.path().join("blobs/sha256").join(&sha[..2]).join(&sha);
    assert!(
        blob.is_file(),
        "blob stored under its hash: {}",
        blob.display()
    );

    let info = get(&s.url(&format!("/v1/images/{id}/info")), None).ok_json(200);
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["sha256"], sha.as_str());

    let t = get(&s.url(&format!("/v1/images/{id}/thumbnail?size=64")), None);
    assert_eq!(t.status, 200);
    assert_eq!(t.content_type, "image/jpeg");
    let thumb = decode_rgb(&t.body);
    assert_eq!(thumb.width().max(thumb.height()), 64);

    // Pagination, newest first.
    let p1 = get(&s.url("/v1/images?limit=1"), None).ok_json(200);
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    assert_eq!(p1["items"][0]["id"], id2.as_str());
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = get(&s.url(&format!("/v1/images?limit=1&cursor={cursor}")), None).ok_json(200);
    assert_eq!(p2["items"][0]["id"], id.as_str());
    assert!(p2["next_cursor"].is_null());

    // Deleting one image keeps the blob the other still uses; deleting both removes it.
    assert_eq!(
        delete(&s.url(&format!("/v1/images/{id}")), None).status,
        204
    );
    get(&s.url(&format!("/v1/images/{id}")), None).assert_error(404, "image_not_found");
    delete(&s.url(&format!("/v1/images/{id}")), None).assert_error(404, "image_not_found");
    assert!(blob.is_file());
    assert_eq!(get(&s.url(&format!("/v1/images/{id2}")), None).body, jpeg);
    assert_eq!(
        delete(&s.url(&format!("/v1/images/{id2}")), None).status,
        204
    );
    assert!(!blob.exists(), "unreferenced blob removed");
    s.shutdown();
}

#[test]
fn sync_fast_stylization_gives_the_engines_pixels() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let jpeg = content_jpeg();
    let id = upload(&s, &jpeg, None);

    let r = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": id, "style": "candy", "method": "fast"}),
        None,
    );
    let v = r.ok_json(200);
    let rid = v["result"].as_str().unwrap().to_string();
    assert_eq!(v["url"], format!("/v1/results/{rid}"));
    let got = get(&s.url(&format!("/v1/results/{rid}")), None);
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type, "image/png");

    // The engine on the same input, as `styleforge stylize` runs it.
    let dev = Device::flex();
    let pic = image_io::decode(&jpeg, image_io::DEFAULT_MAX_PIXELS).unwrap();
    let net = FastStyleNet::load(&Library::new(models_home()).model_path("candy"), &dev).unwrap();
    let want = net.stylize(&pic, &StylizeOptions::default(), &dev).unwrap();
    let want = image::load_from_memory(&want.encode(image_io::Format::Png).unwrap())
        .unwrap()
        .to_rgb8();
    let got = decode_rgb(&got.body);
    assert_eq!(got.dimensions(), want.dimensions());
    let max_diff = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert_eq!(max_diff, 0, "the service gives the engine's pixels");

    // The result records its timings; the job is in the history.
    let info = get(&s.url(&format!("/v1/results/{rid}/info")), None).ok_json(200);
    assert_eq!(info["style"], "candy");
    assert_eq!(info["method"], "fast");
    assert!(info["timings"]["inference_ms"].as_f64().unwrap() > 0.0);
    assert!(
        info["timings"]["total_ms"].as_f64().unwrap()
            >= info["timings"]["inference_ms"].as_f64().unwrap()
    );
    let h = get(&s.url("/v1/history"), None).ok_json(200);
    assert_eq!(h["items"][0]["result"], rid.as_str());
    assert_eq!(h["items"][0]["state"], "succeeded");

    // Other output formats and options.
    let v = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": id, "style": "candy", "format": "jpeg", "strength": 0.5, "preserve_color": true, "max_size": 100}),
        None,
    )
    .ok_json(200);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(100), Some(66))
    );
    let r = get(&s.url(v["url"].as_str().unwrap()), None);
    assert_eq!(r.content_type, "image/jpeg");

    // Ratings, aggregated per style and method; rating again replaces.
    let rate = |score: i64| {
        put_json(
            &s.url(&format!("/v1/results/{rid}/rating")),
            &json!({"score": score}),
            None,
        )
    };
    assert_eq!(rate(4).ok_json(200)["score"], 4);
    let agg = get(&s.url("/v1/ratings?style=candy"), None).ok_json(200);
    assert_eq!(agg["ratings"][0]["count"], 1);
    assert_eq!(agg["ratings"][0]["mean"], 4.0);
    assert_eq!(agg["ratings"][0]["histogram"], json!([0, 0, 0, 1, 0]));
    rate(2).ok_json(200);
    let agg = get(&s.url("/v1/ratings"), None).ok_json(200);
    assert_eq!(agg["ratings"][0]["method"], "fast");
    assert_eq!(agg["ratings"][0]["count"], 1);
    assert_eq!(agg["ratings"][0]["mean"], 2.0);
    assert_eq!(
        get(&s.url(&format!("/v1/results/{rid}/info")), None).ok_json(200)["rating"],
        2
    );

    // Over the synchronous pixel budget, the same request is a job.
    s.shutdown();
    let mut cfg = config(models_home(), data.path());
    cfg.sync_pixel_budget = 1000;
    let s = TestServer::start(cfg);
    let r = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": id, "style": "candy"}),
        None,
    );
    let v = r.ok_json(202);
    let job = v["job"].as_str().unwrap().to_string();
    assert_eq!(v["url"], format!("/v1/jobs/{job}"));
    let done = wait_job(&s, &job, None, Duration::from_secs(60), |j| {
        j["state"] == "succeeded"
    });
    let res = get(&s.url(done["result_url"].as_str().unwrap()), None);
    assert_eq!(decode_rgb(&res.body), got, "the job gives the same pixels");
    let jr = get(&s.url(&format!("/v1/jobs/{job}/result")), None);
    assert_eq!(jr.body, res.body);
    s.shutdown();
}

#[test]
fn style_gallery_lists_the_library_and_searches_keywords() {
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    fast_models(&lib);
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(home.path(), data.path()));

    let names = |v: &Value| -> Vec<String> {
        v["styles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    // The library's models (and the built-in ones), then the built-in paintings.
    let models = |v: &Value| -> Vec<String> {
        v["styles"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "model")
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = get(&s.url("/v1/styles"), None).ok_json(200);
    assert_eq!(models(&all), ["candy", "cartoon-paprika", "cartoon-shinkai", "microast", "seascape"]);
    assert_eq!(names(&all).len(), 5 + builtin::PAINTINGS.len());
    let candy = &all["styles"][0];
    assert_eq!(candy["title"], "Candy");
    assert_eq!(candy["method"], "fast");
    assert_eq!(candy["tags"], json!(["colourful", "abstract", "bright"]));
    assert!(candy["description"].as_str().unwrap().contains("candy"));
    assert!(candy["license"].is_string());
    assert_eq!(candy["thumbnail_url"], "/v1/styles/candy/thumbnail");

    // A model imported while the server runs (what `styleforge models import` does) appears.
    lib.import(
        &[shared::path(
            "models/fast_style_pytorch/candy_nc16.safetensors",
        )],
        ModelInfo {
            name: "candy-large".into(),
            tags: vec!["colourful".into()],
            ..Default::default()
        },
        false,
    )
    .unwrap();
    let all = get(&s.url("/v1/styles"), None).ok_json(200);
    assert_eq!(models(&all), ["candy", "candy-large", "cartoon-paprika", "cartoon-shinkai", "microast", "seascape"]);

    // Keyword search over tags and descriptions, with simple stemming.
    let found = get(&s.url("/v1/styles?q=stormy+sea"), None).ok_json(200);
    assert_eq!(names(&found)[..2], ["seascape", "shipwreck-minotaur"]);
    assert!(!names(&found).contains(&"candy".to_string()));
    let found = get(&s.url("/v1/styles?q=colourful%20stained%20glass"), None).ok_json(200);
    assert_eq!(names(&found)[0], "candy");
    assert!(!names(&found).contains(&"seascape".to_string()));
    assert!(names(&get(&s.url("/v1/styles?q=zebra"), None).ok_json(200)).is_empty());

    let one = get(&s.url("/v1/styles/seascape"), None).ok_json(200);
    assert_eq!(one["title"], "Seascape");
    get(&s.url("/v1/styles/nope"), None).assert_error(404, "style_not_found");
    get(&s.url("/v1/styles/..%2Fetc"), None).assert_error(404, "style_not_found");
    let t = get(&s.url("/v1/styles/candy/thumbnail?size=64"), None);
    assert_eq!(t.status, 200, "{}", String::from_utf8_lossy(&t.body));
    assert_eq!(decode_rgb(&t.body).width(), 64);

    // Custom style images belong to their uploader and are searchable.
    let sid = upload_style(
        &s,
        &small_png("data/styles/great_wave_hokusai.jpg", 64),
        None,
    );
    let mine = get(&s.url("/v1/styles?q=paint"), None).ok_json(200);
    assert_eq!(names(&mine)[0], sid);
    assert_eq!(mine["styles"][0]["kind"], "custom");
    let t = get(&s.url(&format!("/v1/styles/{sid}/thumbnail")), None);
    assert_eq!(t.status, 200);
    delete(&s.url("/v1/styles/candy"), None).assert_error(403, "read_only");
    assert_eq!(
        delete(&s.url(&format!("/v1/styles/{sid}")), None).status,
        204
    );
    get(&s.url(&format!("/v1/styles/{sid}")), None).assert_error(404, "style_not_found");
    s.shutdown();
}

#[test]
fn gatys_job_runs_to_completion_over_sse() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let cid = upload(
        &s,
        &small_png("data/content/small/cat_chelsea_256.jpg", 48),
        None,
    );
    let sid = upload_style(
        &s,
        &small_png("data/styles/starry_night_van_gogh.jpg", 48),
        None,
    );
    let r = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": sid, "method": "gatys", "iterations": 20, "max_size": 48}),
        None,
    );
    let v = r.ok_json(202);
    let job = v["job"].as_str().unwrap().to_string();
    assert_eq!(v["events_url"], format!("/v1/jobs/{job}/events"));

    let events = follow_events(&s.url(v["events_url"].as_str().unwrap()), None);
    let last = events.last().expect("events");
    assert_eq!(last.event, "done", "{events:?}");
    assert_eq!(last.data["state"], "succeeded", "{}", last.data);
    let fractions: Vec<f64> = events
        .iter()
        .map(|e| e.data["progress"]["fraction"].as_f64().unwrap())
        .collect();
    assert!(
        fractions.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {fractions:?}"
    );
    assert_eq!(*fractions.last().unwrap(), 1.0);
    for e in &events[..events.len() - 1] {
        assert_eq!(e.event, "progress");
        assert!(
            ["queued", "running"].contains(&e.data["state"].as_str().unwrap()),
            "{}",
            e.data
        );
    }

    let rid = last.data["result"].as_str().unwrap();
    let img = get(&s.url(&format!("/v1/results/{rid}")), None);
    assert_eq!(decode_rgb(&img.body).dimensions(), (48, 48));
    let info = get(&s.url(&format!("/v1/results/{rid}/info")), None).ok_json(200);
    assert_eq!(info["method"], "gatys");
    assert!(info["content_loss"].as_f64().unwrap() >= 0.0);
    assert!(info["style_loss"].as_f64().unwrap() > 0.0);
    // A finished job's stream answers with its final state at once.
    let again = follow_events(&s.url(&format!("/v1/jobs/{job}/events")), None);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event, "done");
    let m = String::from_utf8(get(&s.url("/metrics"), None).body).unwrap();
    assert!(
        m.contains("styleforge_job_duration_seconds_count{method=\"gatys\",state=\"succeeded\"} 1"),
        "{m}"
    );
    assert!(m.contains("styleforge_model_load_seconds_count{model=\"vgg19\"} 1"));
    s.shutdown();
}

#[test]
fn adain_runs_synchronously_and_needs_a_library_model() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let cid = upload(&s, &content_jpeg(), None);
    let s1 = upload_style(
        &s,
        &small_png("data/styles/great_wave_hokusai.jpg", 64),
        None,
    );
    let s2 = upload_style(&s, &small_png("data/styles/the_scream_munch.jpg", 64), None);
    let v = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": s1, "method": "adain", "strength": 0.8}),
        None,
    )
    .ok_json(200);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(256), Some(170))
    );
    let v = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "styles": [{"style": s1, "weight": 1}, {"style": s2, "weight": 3}], "method": "adain", "mask": cid, "max_size": 128}),
        None,
    )
    .ok_json(200);
    let img = get(&s.url(v["url"].as_str().unwrap()), None);
    assert_eq!(decode_rgb(&img.body).dimensions(), (128, 85));
    // Without a method: the one that runs the named model, else MicroAST.
    let method_of = |req: Value| {
        let v = post_json(&s.url("/v1/stylize"), &req, None).ok_json(200);
        let info = get(&s.url(&format!("/v1/results/{}/info", v["result"].as_str().unwrap())), None).ok_json(200);
        info["method"].as_str().unwrap().to_string()
    };
    assert_eq!(method_of(json!({"image": cid, "style": s1, "model": "adain", "max_size": 64})), "adain");
    assert_eq!(method_of(json!({"image": cid, "style": s1, "max_size": 64})), "microast");
    // A library model is not a style image.
    post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": "candy", "method": "adain"}),
        None,
    )
    .assert_error(422, "wrong_method");
    // A style image is not a fast-style network.
    post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": s1, "method": "fast"}),
        None,
    )
    .assert_error(422, "wrong_method");
    s.shutdown();

    // Without AdaIN and VGG models in the library: 422 saying what to install.
    let home = tempfile::tempdir().unwrap();
    fast_models(&Library::new(home.path()));
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(home.path(), data.path()));
    let cid = upload(&s, &content_jpeg(), None);
    let sid = upload_style(
        &s,
        &small_png("data/styles/great_wave_hokusai.jpg", 64),
        None,
    );
    let r = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": sid, "method": "adain"}),
        None,
    );
    r.assert_error(422, "model_missing");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("adain.safetensors")
    );
    let r = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": sid, "method": "gatys"}),
        None,
    );
    r.assert_error(422, "model_missing");
    assert!(r.json()["message"].as_str().unwrap().contains("vgg19"));
    s.shutdown();
}

#[test]
fn cancel_queued_and_running_jobs() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let cid = upload(
        &s,
        &small_png("data/content/small/cat_chelsea_256.jpg", 64),
        None,
    );
    let sid = upload_style(
        &s,
        &small_png("data/styles/starry_night_van_gogh.jpg", 64),
        None,
    );
    let submit = |iterations: u32| {
        post_json(
            &s.url("/v1/stylize"),
            &json!({"image": cid, "style": sid, "method": "gatys", "iterations": iterations}),
            None,
        )
        .ok_json(202)["job"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let long = submit(2000);
    let queued = submit(5);
    wait_job(&s, &long, None, Duration::from_secs(60), |j| {
        j["state"] == "running" && j["progress"]["iteration"].as_i64().unwrap_or(0) >= 1
    });
    // One worker: the second job waits in the queue, and cancelling it is immediate.
    let v = post_bytes(
        &s.url(&format!("/v1/jobs/{queued}/cancel")),
        "application/json",
        b"",
        None,
    )
    .ok_json(200);
    assert_eq!(v["state"], "cancelled");
    // The running one stops at its next iteration.
    let v = post_bytes(
        &s.url(&format!("/v1/jobs/{long}/cancel")),
        "application/json",
        b"",
        None,
    )
    .ok_json(200);
    assert_eq!(v["cancel_requested"], true);
    let v = wait_job(&s, &long, None, Duration::from_secs(30), |j| {
        j["state"] != "running"
    });
    assert_eq!(v["state"], "cancelled", "{v}");
    assert!(v["result"].is_null());
    get(&s.url(&format!("/v1/jobs/{long}/result")), None).assert_error(409, "job_not_succeeded");
    // Cancelling again is harmless; a finished job cannot be cancelled.
    assert_eq!(
        post_bytes(&s.url(&format!("/v1/jobs/{long}/cancel")), "", b"", None).ok_json(200)["state"],
        "cancelled"
    );
    let quick = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": "candy", "async": true}),
        None,
    )
    .ok_json(202)["job"]
        .as_str()
        .unwrap()
        .to_string();
    wait_job(&s, &quick, None, Duration::from_secs(60), |j| {
        j["state"] == "succeeded"
    });
    post_bytes(&s.url(&format!("/v1/jobs/{quick}/cancel")), "", b"", None)
        .assert_error(409, "job_finished");
    s.shutdown();
}

/// A PNG whose header claims `w`×`h` pixels, with no pixel data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // The start of a zlib stream of zeros: what a decompression bomb looks like.
    chunk(b"IDAT", &[0x78, 0xda, 0xed, 0xc1, 0x01, 0x0d, 0x00, 0x00]);
    chunk(b"IEND", &[]);
    out
}

#[test]
fn bad_input_is_a_4xx_with_a_json_error() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.max_upload_bytes = 300_000;
    cfg.max_pixels = 1_000_000;
    cfg.formats = vec!["jpeg".into(), "png".into()];
    let s = TestServer::start(cfg);
    let up = |ct: &str, body: &[u8]| post_bytes(&s.url("/v1/images"), ct, body, None);
    let jpeg = content_jpeg();

    up("image/jpeg", b"").assert_error(400, "empty_body");
    up("image/png", b"hello, this is not an image at all").assert_error(415, "unsupported_format");
    up("image/gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
        .assert_error(415, "unsupported_format");
    let mut webp = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_rgb8(8, 8)
        .write_to(&mut webp, image::ImageFormat::WebP)
        .unwrap();
    up("image/webp", webp.get_ref()).assert_error(415, "unsupported_format");
    up("image/jpeg", &jpeg[..jpeg.len() / 2]).assert_error(422, "invalid_image");
    up("image/png", &png_header(64, 64)).assert_error(422, "invalid_image");
    let r = up("image/png", &png_header(50_000, 50_000));
    r.assert_error(413, "too_many_pixels");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("50000x50000")
    );
    up("image/jpeg", &vec![0xAB; 400_000]).assert_error(413, "payload_too_large");
    let (ct, body) = multipart("image", &vec![0xAB; 400_000], &[]);
    let r = post_bytes(&s.url("/v1/images"), &ct, &body, None);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    r.json();
    let (ct, body) = multipart("image", &jpeg, &[]);
    let body = body.replace_filename_field();
    post_bytes(&s.url("/v1/images"), &ct, &body, None).assert_error(400, "invalid_multipart");
    post_bytes(&s.url("/v1/styles"), &ct, &body, None).assert_error(400, "missing_file");
    let (ct, body) = multipart("image", &jpeg, &[("colour", "red")]);
    post_bytes(&s.url("/v1/images"), &ct, &body, None).assert_error(400, "invalid_multipart");

    let id = upload(&s, &jpeg, None);
    let st = |body: &str, ct: &str| post_bytes(&s.url("/v1/stylize"), ct, body.as_bytes(), None);
    st("{\"image\": ", "application/json").assert_error(400, "invalid_json");
    st(
        &json!({"image": id, "style": "candy"}).to_string(),
        "text/plain",
    )
    .assert_error(415, "unsupported_media_type");
    st(
        &json!({"image": id, "style": "candy", "colour": 1}).to_string(),
        "application/json",
    )
    .assert_error(422, "invalid_body");
    st(&json!({"style": "candy"}).to_string(), "application/json")
        .assert_error(422, "invalid_body");
    st(
        &json!({"image": id, "style": "candy", "method": "pix2pix"}).to_string(),
        "application/json",
    )
    .assert_error(422, "invalid_body");
    st(
        &json!({"image": 5, "style": "candy"}).to_string(),
        "application/json",
    )
    .assert_error(422, "invalid_body");
    let sj = |v: Value| post_json(&s.url("/v1/stylize"), &v, None);
    sj(json!({"image": "img_nope", "style": "candy"})).assert_error(404, "image_not_found");
    sj(json!({"image": id, "style": "no-such-style"})).assert_error(404, "style_not_found");
    sj(json!({"image": id, "style": "../../etc/passwd"})).assert_error(404, "style_not_found");
    sj(json!({"image": id})).assert_error(422, "missing_style");
    sj(json!({"image": id, "style": "candy", "strength": 2}))
        .assert_error(422, "invalid_parameter");
    sj(json!({"image": id, "style": "candy", "format": "bmp"})).assert_error(422, "invalid_body");
    sj(json!({"image": id, "style": "candy", "max_size": 0}))
        .assert_error(422, "invalid_parameter");
    sj(json!({"image": id, "style": "candy", "iterations": 10}))
        .assert_error(422, "invalid_parameter");
    sj(json!({"image": id, "styles": [{"style": "candy"}, {"style": "candy"}]}))
        .assert_error(422, "invalid_parameter");
    sj(json!({"image": id, "style": "candy", "method": "gatys", "iterations": 1_000_000}))
        .assert_error(422, "invalid_parameter");
    sj(json!({"image": id, "method": "adain", "styles": [{"style": id, "weight": -1}]}))
        .assert_error(422, "invalid_parameter");

    get(&s.url("/v1/images/img_nope"), None).assert_error(404, "image_not_found");
    get(&s.url("/v1/jobs/job_nope"), None).assert_error(404, "job_not_found");
    get(&s.url("/v1/jobs/job_nope/events"), None).assert_error(404, "job_not_found");
    get(&s.url("/v1/results/res_nope"), None).assert_error(404, "result_not_found");
    put_json(
        &s.url("/v1/results/res_nope/rating"),
        &json!({"score": 3}),
        None,
    )
    .assert_error(404, "result_not_found");
    let rid = sj(json!({"image": id, "style": "candy", "max_size": 64})).ok_json(200)["result"]
        .as_str()
        .unwrap()
        .to_string();
    put_json(
        &s.url(&format!("/v1/results/{rid}/rating")),
        &json!({"score": 9}),
        None,
    )
    .assert_error(422, "invalid_parameter");
    put_json(
        &s.url(&format!("/v1/results/{rid}/rating")),
        &json!({"score": "good"}),
        None,
    )
    .assert_error(422, "invalid_body");
    get(&s.url("/v1/history?limit=0"), None).assert_error(400, "invalid_query");
    get(&s.url("/v1/history?limit=abc"), None).assert_error(400, "invalid_query");
    get(&s.url("/v1/history?cursor=garbage"), None).assert_error(400, "invalid_cursor");
    get(&s.url(&format!("/v1/images/{id}/thumbnail?size=5")), None)
        .assert_error(400, "invalid_query");
    get(&s.url("/v1/nothing-here"), None).assert_error(404, "not_found");
    delete(&s.url("/v1/stylize"), None).assert_error(405, "method_not_allowed");
    s.shutdown();
}

trait ReplaceFilename {
    fn replace_filename_field(self) -> Vec<u8>;
}

impl ReplaceFilename for Vec<u8> {
    /// Turns the file part into a text field with another name (a form without a file).
    fn replace_filename_field(self) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self).into_owned();
        let start = text.find("Content-Disposition").unwrap();
        let mut out = self[..start].to_vec();
        out.extend_from_slice(b"Content-Disposition: form-data; name=\"title\"\r\n\r\nno file here\r\n--styleforgeTestBoundary7MA4YWxk--\r\n");
        out
    }
}

#[test]
fn keys_isolate_owners_and_apply_limits() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.anonymous = false;
    let s = TestServer::start(cfg.clone());
    let key = |name: &str, limits: KeyLimits| {
        s.block_on(styleforge_server::create_key(&cfg, name, limits))
            .unwrap()
    };
    let alice = key("alice", KeyLimits::default());
    let bob = key("bob", KeyLimits::default());
    assert!(alice.key.starts_with("sf_") && alice.key.len() > 40);
    let (a, b) = (Some(alice.key.as_str()), Some(bob.key.as_str()));

    get(&s.url("/v1/history"), None).assert_error(401, "missing_key");
    get(&s.url("/v1/history"), Some("sf_not_a_key")).assert_error(401, "invalid_key");
    let ok = get(&s.url("/healthz"), None);
    assert_eq!(ok.status, 200, "probes need no key");

    let img = upload(&s, &content_jpeg(), a);
    let sty = upload_style(&s, &small_png("data/styles/great_wave_hokusai.jpg", 64), a);
    let res = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": img, "style": "candy", "max_size": 64}),
        a,
    )
    .ok_json(200);
    let rid = res["result"].as_str().unwrap().to_string();
    let job = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": img, "style": "candy", "max_size": 64, "async": true}),
        a,
    )
    .ok_json(202)["job"]
        .as_str()
        .unwrap()
        .to_string();
    wait_job(&s, &job, a, Duration::from_secs(60), |j| {
        j["state"] == "succeeded"
    });

    // Bob sees none of it: 404, exactly as if it did not exist.
    for path in [
        format!("/v1/images/{img}"),
        format!("/v1/images/{img}/info"),
        format!("/v1/images/{img}/thumbnail"),
        format!("/v1/jobs/{job}"),
        format!("/v1/jobs/{job}/events"),
        format!("/v1/jobs/{job}/result"),
        format!("/v1/results/{rid}"),
        format!("/v1/results/{rid}/info"),
        format!("/v1/styles/{sty}"),
    ] {
        let r = get(&s.url(&path), b);
        assert_eq!(
            r.status,
            404,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json();
    }
    delete(&s.url(&format!("/v1/images/{img}")), b).assert_error(404, "image_not_found");
    post_bytes(&s.url(&format!("/v1/jobs/{job}/cancel")), "", b"", b)
        .assert_error(404, "job_not_found");
    put_json(
        &s.url(&format!("/v1/results/{rid}/rating")),
        &json!({"score": 1}),
        b,
    )
    .assert_error(404, "result_not_found");
    post_json(
        &s.url("/v1/stylize"),
        &json!({"image": img, "style": "candy"}),
        b,
    )
    .assert_error(404, "image_not_found");
    assert!(
        get(&s.url("/v1/history"), b).ok_json(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        get(&s.url("/v1/images"), b).ok_json(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let bob_styles = get(&s.url("/v1/styles"), b).ok_json(200);
    assert!(
        bob_styles["styles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["kind"] != "custom")
    );
    // Alice still does.
    assert_eq!(get(&s.url(&format!("/v1/images/{img}")), a).status, 200);
    assert_eq!(get(&s.url(&format!("/v1/results/{rid}")), a).status, 200);
    assert_eq!(
        get(&s.url("/v1/history"), a).ok_json(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Keys are stored hashed; revoking one shuts it out.
    let listed = s.block_on(styleforge_server::list_keys(&cfg)).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|k| k.revoked_at.is_none()
                && alice.key.starts_with(&k.prefix) == (k.id == alice.id))
    );
    let db = std::fs::read(data.path().join("styleforge.db")).unwrap();
    assert!(
        !db.windows(alice.key.len())
            .any(|w| w == alice.key.as_bytes()),
        "no plain key in the database"
    );
    s.block_on(styleforge_server::revoke_key(&cfg, &alice.id))
        .unwrap();
    get(&s.url("/v1/history"), a).assert_error(401, "key_revoked");
    assert!(
        s.block_on(styleforge_server::revoke_key(&cfg, "nobody"))
            .is_err()
    );

    // Per-key rate limit and storage quota.
    let carol = key(
        "carol",
        KeyLimits {
            rate_limit_per_minute: Some(3),
            quota_bytes: None,
        },
    );
    for _ in 0..3 {
        assert_eq!(get(&s.url("/v1/history"), Some(&carol.key)).status, 200);
    }
    let r = get(&s.url("/v1/history"), Some(&carol.key));
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    let dave = key(
        "dave",
        KeyLimits {
            rate_limit_per_minute: None,
            quota_bytes: Some(1000),
        },
    );
    post_bytes(
        &s.url("/v1/images"),
        "image/jpeg",
        &content_jpeg(),
        Some(&dave.key),
    )
    .assert_error(403, "quota_exceeded");
    s.shutdown();
}

/// Uploads a tiny Gatys job's inputs and submits it.
fn submit_gatys(s: &TestServer, iterations: u32) -> (String, String) {
    let cid = upload(
        s,
        &small_png("data/content/small/cat_chelsea_256.jpg", 48),
        None,
    );
    let sid = upload_style(
        s,
        &small_png("data/styles/starry_night_van_gogh.jpg", 48),
        None,
    );
    let job = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": sid, "method": "gatys", "iterations": iterations}),
        None,
    )
    .ok_json(202)["job"]
        .as_str()
        .unwrap()
        .to_string();
    (job, cid)
}

#[test]
fn a_job_abandoned_by_a_dead_worker_is_retried_after_its_lease() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.workers = 0;
    let s = TestServer::start(cfg.clone());
    let (job, _) = submit_gatys(&s, 5);
    assert_eq!(
        get(&s.url(&format!("/v1/jobs/{job}")), None).ok_json(200)["state"],
        "queued"
    );
    s.shutdown();

    // A worker claims the job with a 1.5 s lease and dies without a heartbeat.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let claimed = rt
        .block_on(styleforge_server::jobs::worker::claim_and_abandon(
            &cfg,
            "dead-worker",
            Duration::from_millis(1500),
        ))
        .unwrap();
    assert_eq!(claimed.as_deref(), Some(job.as_str()));

    cfg.workers = 1;
    let s = TestServer::start(cfg);
    let v = get(&s.url(&format!("/v1/jobs/{job}")), None).ok_json(200);
    assert_eq!(v["state"], "running", "still held by the dead worker: {v}");
    assert_eq!(v["attempts"], 1);
    let v = wait_job(&s, &job, None, Duration::from_secs(60), |j| {
        j["state"] == "succeeded"
    });
    assert_eq!(
        v["attempts"], 2,
        "reclaimed after the lease and run again: {v}"
    );
    assert_eq!(
        get(&s.url(v["result_url"].as_str().unwrap()), None).status,
        200
    );
    s.shutdown();
}

#[test]
fn jobs_in_flight_survive_a_graceful_restart_and_a_crash() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.shutdown_grace_secs = 0;
    cfg.lease_secs = 2;
    let s = TestServer::start(cfg.clone());
    let (long, cid) = submit_gatys(&s, 60);
    let (queued, _) = submit_gatys(&s, 5);
    let content = get(&s.url(&format!("/v1/images/{cid}")), None).body;
    wait_job(&s, &long, None, Duration::from_secs(60), |j| {
        j["state"] == "running" && j["progress"]["iteration"].as_i64().unwrap_or(0) >= 1
    });

    // Graceful shutdown with no grace: the running job goes back to the queue, its attempt not counted.
    s.shutdown();
    let mut idle = cfg.clone();
    idle.workers = 0;
    let s = TestServer::start(idle);
    let v = get(&s.url(&format!("/v1/jobs/{long}")), None).ok_json(200);
    assert_eq!(
        (v["state"].as_str(), v["attempts"].as_i64()),
        (Some("queued"), Some(0)),
        "{v}"
    );
    assert_eq!(
        get(&s.url(&format!("/v1/jobs/{queued}")), None).ok_json(200)["state"],
        "queued"
    );
    s.shutdown();

    // A crash while the job runs: its lease runs out and the next server finishes it.
    let s = TestServer::start(cfg.clone());
    wait_job(&s, &long, None, Duration::from_secs(60), |j| {
        j["state"] == "running" && j["progress"]["iteration"].as_i64().unwrap_or(0) >= 1
    });
    s.kill();
    let s = TestServer::start(cfg);
    let v = wait_job(&s, &long, None, Duration::from_secs(120), |j| {
        j["state"] == "succeeded"
    });
    assert_eq!(v["attempts"], 2, "{v}");
    wait_job(&s, &queued, None, Duration::from_secs(60), |j| {
        j["state"] == "succeeded"
    });
    // Nothing stored was lost.
    assert_eq!(
        get(&s.url(&format!("/v1/images/{cid}")), None).body,
        content
    );
    let res = get(&s.url(v["result_url"].as_str().unwrap()), None);
    assert_eq!(decode_rgb(&res.body).dimensions(), (48, 48));
    s.shutdown();
}

#[test]
fn openapi_health_metrics_and_cors() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.cors_origins = vec!["https://widget.example".into()];
    let s = TestServer::start(cfg);

    let doc = get(&s.url("/v1/openapi.json"), None).ok_json(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/images",
        "/v1/images/{id}",
        "/v1/images/{id}/info",
        "/v1/images/{id}/thumbnail",
        "/v1/styles",
        "/v1/styles/{name}",
        "/v1/styles/{name}/thumbnail",
        "/v1/stylize",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/result",
        "/v1/history",
        "/v1/results/{id}",
        "/v1/results/{id}/info",
        "/v1/results/{id}/rating",
        "/v1/ratings",
        "/v1/openapi.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} documented");
    }
    let mut ids = std::collections::HashSet::new();
    for (p, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {p} has an operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} is unique");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        }
    }
    assert!(doc["components"]["schemas"]["StylizeRequest"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());

    assert_eq!(get(&s.url("/healthz"), None).ok_json(200)["status"], "ok");
    assert_eq!(get(&s.url("/readyz"), None).ok_json(200)["status"], "ready");
    let m = get(&s.url("/metrics"), None);
    assert!(m.content_type.starts_with("text/plain"));
    let m = String::from_utf8(m.body).unwrap();
    for name in [
        "styleforge_http_requests_total",
        "styleforge_http_request_duration_seconds",
        "styleforge_inference_queue_depth",
        "styleforge_jobs{state=\"queued\"}",
    ] {
        assert!(m.contains(name), "{name} in metrics");
    }

    let pre = options(
        &s.url("/v1/stylize"),
        &[
            ("origin", "https://widget.example"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://widget.example")
    );
    let other = options(
        &s.url("/v1/stylize"),
        &[
            ("origin", "https://elsewhere.example"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert!(other.header("access-control-allow-origin").is_none());
    s.shutdown();
}

#[test]
fn cyclegan_translates_and_dcgan_generators_sample() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let jpeg = content_jpeg();
    let id = upload(&s, &jpeg, None);

    // The gallery lists the CycleGAN generator with a preview, as method `cyclegan`.
    let styles = get(&s.url("/v1/styles"), None).ok_json(200);
    let painter = styles["styles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tiny-painter")
        .expect("the CycleGAN model is listed")
        .clone();
    assert_eq!(painter["method"], "cyclegan");
    let thumb = get(&s.url(painter["thumbnail_url"].as_str().unwrap()), None);
    assert_eq!(thumb.status, 200);
    assert!(thumb.content_type.starts_with("image/"));

    // Synchronous translation gives the engine's pixels.
    let v = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": id, "style": "tiny-painter", "method": "cyclegan"}),
        None,
    )
    .ok_json(200);
    let got = decode_rgb(&get(&s.url(v["url"].as_str().unwrap()), None).body);
    let dev = Device::flex();
    let pic = image_io::decode(&jpeg, image_io::DEFAULT_MAX_PIXELS).unwrap();
    let gan = styleforge_core::methods::cyclegan::CycleGan::load(
        &Library::new(models_home()).model_path("tiny-painter"),
        &dev,
    )
    .unwrap();
    let want = gan.stylize(&pic, &Default::default(), &dev).unwrap();
    let want = image::load_from_memory(&want.encode(image_io::Format::Png).unwrap())
        .unwrap()
        .to_rgb8();
    assert_eq!(got, want, "the service gives the engine's pixels");
    let info = get(&s.url(&format!("/v1/results/{}/info", v["result"].as_str().unwrap())), None)
        .ok_json(200);
    assert_eq!(info["method"], "cyclegan");

    // Methods and models must agree.
    post_json(
        &s.url("/v1/stylize"),
        &json!({"image": id, "style": "tiny-painter", "method": "fast"}),
        None,
    )
    .assert_error(422, "wrong_method");
    post_json(
        &s.url("/v1/stylize"),
        &json!({"image": id, "style": "candy", "method": "cyclegan"}),
        None,
    )
    .assert_error(422, "wrong_method");

    // DCGAN samples: a PNG grid, the same for the same seed, different for another.
    let grid = |q: &str| get(&s.url(&format!("/v1/generators/tiny-faces/samples{q}")), None);
    let a = grid("?n=4&seed=7");
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    let img = decode_rgb(&a.body);
    assert_eq!(img.dimensions(), (2 * 66 + 2, 2 * 66 + 2));
    assert_eq!(grid("?n=4&seed=7").body, a.body);
    assert_ne!(grid("?n=4&seed=8").body, a.body);
    let strip = decode_rgb(&grid("?n=5&interpolate=true").body);
    assert_eq!(strip.dimensions(), (5 * 66 + 2, 66 + 2));
    // The engine's samples for the same seed.
    let g = styleforge_core::networks::dcgan::DcganGenerator::load(
        &styleforge_core::weights::Weights::load(&Library::new(models_home()).model_path("tiny-faces"))
            .unwrap(),
        &dev,
    )
    .unwrap();
    let want = styleforge_core::methods::generate::grid(&g, 4, 7, false, &dev).unwrap();
    let want = image::load_from_memory(&want.encode(image_io::Format::Png).unwrap())
        .unwrap()
        .to_rgb8();
    assert_eq!(img, want);
    grid("?n=0").assert_error(400, "invalid_parameter");
    grid("?n=65").assert_error(400, "invalid_parameter");
    get(&s.url("/v1/generators/candy/samples"), None).assert_error(404, "generator_not_found");
    get(&s.url("/v1/generators/nope/samples"), None).assert_error(404, "generator_not_found");
    s.shutdown();
}

#[test]
fn training_jobs_add_a_private_fast_style() {
    // Its own library: the trained style is added to it.
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    lib.import(
        &[shared::path("parity/vgg19_features_f16.pth")],
        ModelInfo { name: "vgg19".into(), ..Default::default() },
        true,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path(), data.path());
    cfg.anonymous = false;
    cfg.training_crop = 64;
    let s = TestServer::start(cfg.clone());
    let key = |name: &str| {
        s.block_on(styleforge_server::create_key(&cfg, name, KeyLimits::default()))
            .unwrap()
    };
    let (alice, bob) = (key("alice"), key("bob"));
    let (a, b) = (Some(alice.key.as_str()), Some(bob.key.as_str()));
    let sty = upload_style(&s, &small_png("data/styles/great_wave_hokusai.jpg", 128), a);

    // Without training photos configured, training is refused.
    post_json(&s.url("/v1/trainings"), &json!({"style": sty, "steps": 3}), a)
        .assert_error(422, "training_unavailable");
    s.shutdown();
    cfg.training_content_dir = Some(shared::path("data/content/small"));
    let s = TestServer::start(cfg.clone());

    post_json(&s.url("/v1/trainings"), &json!({"style": sty, "steps": 0}), a)
        .assert_error(422, "invalid_parameter");
    post_json(&s.url("/v1/trainings"), &json!({"style": sty, "width": 12}), a)
        .assert_error(422, "invalid_parameter");
    post_json(&s.url("/v1/trainings"), &json!({"style": sty, "steps": 3}), b)
        .assert_error(404, "image_not_found");
    let v = post_json(
        &s.url("/v1/trainings"),
        &json!({"style": sty, "steps": 4, "width": 8, "title": "Great wave"}),
        a,
    )
    .ok_json(202);
    let job = v["job"].as_str().unwrap().to_string();
    // One training per key at a time.
    post_json(&s.url("/v1/trainings"), &json!({"style": sty, "steps": 3, "width": 8}), a)
        .assert_error(429, "training_limit");
    let done = wait_job(&s, &job, a, Duration::from_secs(300), |j| {
        j["state"] == "succeeded" || j["state"] == "failed"
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    let preview = get(&s.url(done["result_url"].as_str().unwrap()), a);
    assert_eq!(preview.content_type, "image/png");

    // The new style is in Alice's gallery (method fast) and stylises; Bob sees nothing of it.
    let gallery = get(&s.url("/v1/styles?method=fast"), a).ok_json(200);
    let mine = gallery["styles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["title"] == "Great wave")
        .expect("the trained style is listed")
        .clone();
    let name = mine["name"].as_str().unwrap().to_string();
    let img = upload(&s, &content_jpeg(), a);
    let r = post_json(&s.url("/v1/stylize"), &json!({"image": img, "style": name, "max_size": 96}), a)
        .ok_json(200);
    assert_eq!(get(&s.url(r["url"].as_str().unwrap()), a).status, 200);
    let bob_gallery = get(&s.url("/v1/styles"), b).ok_json(200);
    assert!(!bob_gallery.to_string().contains(&name));
    get(&s.url(&format!("/v1/styles/{name}")), b).assert_error(404, "style_not_found");
    let bob_img = upload(&s, &content_jpeg(), b);
    post_json(&s.url("/v1/stylize"), &json!({"image": bob_img, "style": name}), b)
        .assert_error(404, "style_not_found");
    let info = Library::new(home.path()).info(&name).unwrap();
    assert_eq!(info.training["steps"], "4");
    assert_eq!(info.method, "fast");
    s.shutdown();
}

#[test]
fn methods_come_from_the_engine_registry() {
    // A library with fast styles only: fast (and microast, built in) is available, adain and
    // gatys are listed but lack a model.
    let home = tempfile::tempdir().unwrap();
    fast_models(&Library::new(home.path()));
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(home.path(), data.path()));
    let list = get(&s.url("/v1/methods"), None).ok_json(200);
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, styleforge_core::methods::names());
    let by = |n: &str| list.iter().find(|m| m["name"] == n).unwrap().clone();
    let fast = by("fast");
    assert_eq!(fast["style"], "model");
    assert_eq!(fast["execution"], "sync");
    assert_eq!(fast["available"], true);
    assert_eq!(fast["model_kinds"], json!(["fast", "onnx"]));
    let strength = fast["options"].as_array().unwrap().iter().find(|o| o["name"] == "strength").unwrap().clone();
    assert_eq!((strength["type"].as_str(), strength["minimum"].as_f64(), strength["maximum"].as_f64()), (Some("number"), Some(0.0), Some(1.0)));
    assert!(fast["options"].as_array().unwrap().iter().all(|o| o["name"] != "iterations"));
    let gatys = by("gatys");
    assert_eq!((gatys["style"].as_str(), gatys["execution"].as_str(), gatys["available"].as_bool()), (Some("images"), Some("job"), Some(false)));
    assert_eq!(gatys["default_model"], "vgg19");
    assert!(gatys["options"].as_array().unwrap().iter().any(|o| o["name"] == "iterations"));
    assert_eq!(by("adain")["mask"], true);
    // MicroAST's network is built in.
    assert_eq!(by("microast")["available"], true);

    // The OpenAPI document's method values are the registry's; an unknown method is refused
    // when the body is read.
    let doc = get(&s.url("/v1/openapi.json"), None).ok_json(200);
    let method = &doc["components"]["schemas"]["StylizeRequest"]["properties"]["method"];
    assert_eq!(method["enum"], json!(styleforge_core::methods::names()));
    let cid = upload(&s, &content_jpeg(), None);
    post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "candy", "method": "pointillism"}), None)
        .assert_error(422, "invalid_body");
    s.shutdown();
}

/// Mean absolute difference per channel between two images of the same size.
fn mean_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn an_empty_library_stylises_with_the_built_in_paintings_and_microast() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(home.path(), data.path()));

    // The gallery: the built-in models (MicroAST, the cartoon filters) and the eleven paintings,
    // in gallery order.
    let all = get(&s.url("/v1/styles"), None).ok_json(200);
    let styles = all["styles"].as_array().unwrap();
    let of_kind = |k: &str| -> Vec<&str> {
        styles.iter().filter(|v| v["kind"] == k).map(|v| v["name"].as_str().unwrap()).collect()
    };
    assert_eq!(of_kind("model"), ["cartoon-paprika", "cartoon-shinkai", "microast"]);
    assert_eq!(of_kind("builtin"), builtin::PAINTINGS.iter().map(|p| p.name).collect::<Vec<_>>());
    assert_eq!(styles.len(), builtin::MODELS.len() + builtin::PAINTINGS.len());
    let starry = styles.iter().find(|v| v["name"] == "starry-night").unwrap();
    assert_eq!(starry["title"], "The Starry Night");
    assert_eq!(starry["method"], "image");
    let desc = starry["description"].as_str().unwrap();
    assert!(desc.contains("Vincent van Gogh") && desc.contains("1889"), "{desc}");
    assert_eq!(starry["license"], builtin::PAINTING_LICENSE);
    assert!(starry["tags"].as_array().unwrap().iter().any(|t| t == "swirls"));
    assert_eq!(starry["thumbnail_url"], "/v1/styles/starry-night/thumbnail");
    assert_eq!(&get(&s.url("/v1/styles/starry-night"), None).ok_json(200), starry);
    assert_eq!(get(&s.url("/v1/styles?method=image"), None).ok_json(200)["styles"].as_array().unwrap().len(), 11);

    // Every painting has a thumbnail, scaled like the others.
    for p in &builtin::PAINTINGS {
        let t = get(&s.url(&format!("/v1/styles/{}/thumbnail?size=96", p.name)), None);
        assert_eq!(t.status, 200, "{}: {}", p.name, String::from_utf8_lossy(&t.body));
        assert_eq!(t.content_type, "image/jpeg");
        let img = decode_rgb(&t.body);
        assert_eq!(img.width().max(img.height()), 96, "{}", p.name);
    }
    let t = decode_rgb(&get(&s.url("/v1/styles/great-wave/thumbnail"), None).body);
    assert_eq!(t.width().max(t.height()), 256);

    // Keyword search finds them.
    let first = |q: &str| get(&s.url(&format!("/v1/styles?q={q}")), None).ok_json(200)["styles"][0]["name"].clone();
    assert_eq!(first("van%20gogh"), "starry-night");
    assert_eq!(first("hokusai"), "great-wave");
    assert_eq!(first("pointillism"), "grande-jatte");

    // MicroAST is there with its options, built in.
    let list = get(&s.url("/v1/methods"), None).ok_json(200);
    let by = |n: &str| list.as_array().unwrap().iter().find(|m| m["name"] == n).unwrap().clone();
    let micro = by("microast");
    assert_eq!(
        (micro["style"].as_str(), micro["execution"].as_str(), micro["available"].as_bool()),
        (Some("images"), Some("sync"), Some(true))
    );
    assert_eq!(micro["default_model"], "microast");
    assert_eq!(micro["model_kinds"], json!(["microast"]));
    assert_eq!(micro["max_styles"], 8);
    assert_eq!(micro["mask"], true);
    let opts: Vec<&str> = micro["options"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(opts, ["strength", "preserve_color", "max_size"]);
    assert_eq!((by("fast")["available"].as_bool(), by("adain")["available"].as_bool()), (Some(false), Some(false)));

    // A painting as the style: no method named, answered at once with MicroAST, the engine's pixels.
    let jpeg = content_jpeg();
    let cid = upload(&s, &jpeg, None);
    let v = post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "starry-night"}), None).ok_json(200);
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(256), Some(170)));
    let got = decode_rgb(&get(&s.url(v["url"].as_str().unwrap()), None).body);
    let content = decode_rgb(&jpeg);
    assert_eq!(got.dimensions(), content.dimensions());
    let diff = mean_diff(&got, &content);
    assert!(diff > 10.0, "the result differs from the photo (mean difference {diff:.1})");
    let info = get(&s.url(&format!("/v1/results/{}/info", v["result"].as_str().unwrap())), None).ok_json(200);
    assert_eq!((info["method"].as_str(), info["style"].as_str()), (Some("microast"), Some("starry-night")));
    let dev = Device::flex();
    let model = ModelKind::MicroAst.load_weights(&builtin::weights("microast").unwrap(), &dev).unwrap();
    let mut input = methods::Input::content(image_io::decode(&jpeg, image_io::DEFAULT_MAX_PIXELS).unwrap());
    input.styles = vec![(builtin::painting("starry-night").unwrap().picture().unwrap().into(), 1.0)];
    let want = methods::get("microast")
        .unwrap()
        .run(&model, &input, &methods::Params::new(), &dev, &mut methods::Control::new(None, &mut |_| {}))
        .unwrap()
        .picture;
    let want = decode_rgb(&want.encode(image_io::Format::Png).unwrap());
    assert_eq!(got, want, "the service gives the engine's pixels");

    // A custom style image, alone and blended with a painting; named method or not.
    let sid = upload_style(&s, &small_png("data/styles/the_scream_munch.jpg", 64), None);
    let v = post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": sid}), None).ok_json(200);
    let info = get(&s.url(&format!("/v1/results/{}/info", v["result"].as_str().unwrap())), None).ok_json(200);
    assert_eq!(info["method"], "microast");
    let blend = json!({"image": cid, "styles": [{"style": "great-wave", "weight": 2}, {"style": sid, "weight": 1}], "max_size": 128});
    let v = post_json(&s.url("/v1/stylize"), &blend, None).ok_json(200);
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(128), Some(85)));
    let info = get(&s.url(&format!("/v1/results/{}/info", v["result"].as_str().unwrap())), None).ok_json(200);
    assert_eq!((info["method"].as_str(), info["style"].as_str()), (Some("microast"), Some(format!("great-wave+{sid}").as_str())));
    let blended = decode_rgb(&get(&s.url(v["url"].as_str().unwrap()), None).body);
    assert_eq!(blended.dimensions(), (128, 85));

    // As a job, run by a worker (the painting travels as a built-in reference, not a blob).
    let job = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": cid, "style": "the-scream", "method": "microast", "async": true, "max_size": 96}),
        None,
    )
    .ok_json(202)["job"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_job(&s, &job, None, Duration::from_secs(120), |j| j["state"] == "succeeded" || j["state"] == "failed");
    assert_eq!(done["state"], "succeeded", "{done}");

    // Errors: unknown styles, the wrong method, a missing network, deleting a built-in.
    post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "nope"}), None).assert_error(404, "style_not_found");
    post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "nope", "method": "microast"}), None)
        .assert_error(404, "style_not_found");
    post_json(&s.url("/v1/stylize"), &json!({"image": cid, "styles": [{"style": "starry-night"}, {"style": "nope"}]}), None)
        .assert_error(404, "style_not_found");
    get(&s.url("/v1/styles/nope/thumbnail"), None).assert_error(404, "style_not_found");
    let r = post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "starry-night", "method": "fast"}), None);
    r.assert_error(422, "wrong_method");
    assert!(r.json()["message"].as_str().unwrap().contains("built-in painting"), "{}", r.json());
    post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "microast"}), None).assert_error(422, "wrong_method");
    post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "starry-night", "method": "adain"}), None)
        .assert_error(422, "model_missing");
    let r = delete(&s.url("/v1/styles/starry-night"), None);
    r.assert_error(403, "read_only");
    assert!(r.json()["message"].as_str().unwrap().contains("built into styleforge"));
    delete(&s.url("/v1/styles/microast"), None).assert_error(403, "read_only");
    assert_eq!(get(&s.url("/v1/styles/starry-night"), None).status, 200);

    // A library file named `microast` overrides the built-in model, and is what runs.
    let lib = Library::new(home.path());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../styleforge-core/assets/microast");
    let files: Vec<_> = builtin::MICROAST_FILES.iter().map(|f| dir.join(f.name)).collect();
    lib.import(&files, ModelInfo { name: "microast".into(), title: "My MicroAST".into(), ..Default::default() }, false)
        .unwrap();
    let mine = get(&s.url("/v1/styles/microast"), None).ok_json(200);
    assert_eq!(mine["title"], "My MicroAST");
    let v = post_json(&s.url("/v1/stylize"), &json!({"image": cid, "style": "starry-night"}), None).ok_json(200);
    assert_eq!(decode_rgb(&get(&s.url(v["url"].as_str().unwrap()), None).body), want, "the same weights, from the file");
    let m = String::from_utf8(get(&s.url("/metrics"), None).body).unwrap();
    assert!(m.contains("styleforge_model_load_seconds_count{model=\"microast\"} 2"), "loaded built in, then from the file");
    s.shutdown();
}

/// The reference detections (the original PyTorch code) of a photo in the shared data:
/// `[x1, y1, x2, y2, score]` per face, and the photo's size.
fn reference_faces(case: &str) -> (Vec<[f64; 5]>, (u32, u32)) {
    let text = std::fs::read_to_string(shared::path("models/face_detector/reference/detections.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let c = &v["cases"][case];
    let faces = c["detections_xyxy_pixels_score"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| std::array::from_fn(|i| f[i].as_f64().unwrap()))
        .collect();
    (faces, (c["image_WH"][0].as_u64().unwrap() as u32, c["image_WH"][1].as_u64().unwrap() as u32))
}

/// A shared photo resized by `scale`, as JPEG.
fn scaled_jpeg(rel: &str, scale: f64) -> Vec<u8> {
    let img = image::open(shared::path(rel)).unwrap();
    let (w, h) = ((img.width() as f64 * scale).round() as u32, (img.height() as f64 * scale).round() as u32);
    let img = img.resize_exact(w, h, image::imageops::FilterType::Triangle).to_rgb8();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// Asserts that the square `crop` ({x, y, side}) contains the box `[x1, y1, x2, y2]` (within a pixel).
fn assert_crop_contains(crop: &Value, b: [f64; 4]) {
    let (x, y, side) = (crop["x"].as_f64().unwrap(), crop["y"].as_f64().unwrap(), crop["side"].as_f64().unwrap());
    assert!(
        x <= b[0] + 1.0 && y <= b[1] + 1.0 && x + side >= b[2] - 1.0 && y + side >= b[3] - 1.0,
        "the crop {crop} contains the reference box {b:?}"
    );
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

fn face_box(f: &Value) -> [f64; 4] {
    ["x1", "y1", "x2", "y2"].map(|k| f[k].as_f64().unwrap())
}

#[test]
fn faces_are_found_and_avatars_are_framed_on_them() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let faces = |id: &str| post_json(&s.url("/v1/faces"), &json!({"image": id}), None).ok_json(200);

    // A portrait: the reference's face, and the crop around it.
    let (want, (w, h)) = reference_faces("portrait_woman_kodim04");
    let woman = upload(&s, &std::fs::read(shared::path("data/content/portrait_woman_kodim04.jpg")).unwrap(), None);
    let v = faces(&woman);
    assert_eq!((v["width"].as_u64(), v["height"].as_u64(), v["found"].as_bool()), (Some(w as u64), Some(h as u64), Some(true)), "{v}");
    let got = face_box(&v["faces"][0]);
    let reference = [want[0][0], want[0][1], want[0][2], want[0][3]];
    for (g, r) in got.iter().zip(reference) {
        assert!((g - r).abs() <= 2.0, "the face {got:?} is the reference's {reference:?} within 2 pixels");
    }
    assert!(v["faces"][0]["score"].as_f64().unwrap() > 0.9, "{v}");
    assert_crop_contains(&v["crop"], reference);
    let side = v["crop"]["side"].as_f64().unwrap();
    let enlarged = (1.8 * (reference[2] - reference[0]).max(reference[3] - reference[1])).min(w.min(h) as f64);
    assert!((side - enlarged).abs() <= 2.0, "the crop is the face enlarged 1.8x, within the photo: {v}");
    assert!(v["note"].as_str().unwrap().starts_with("face at"), "{v}");

    // The same photo at 0.4 of its size: the reference box scaled to it.
    let small = upload(&s, &scaled_jpeg("data/content/portrait_woman_kodim04.jpg", 0.4), None);
    let v = faces(&small);
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(205), Some(307)));
    let scaled = reference.map(|c| c * 0.4);
    assert_crop_contains(&v["crop"], scaled);
    assert!(iou(face_box(&v["faces"][0]), scaled) > 0.85, "{v} against {scaled:?}");

    // Two faces: both listed, largest first; the crop frames the largest.
    let (want, _) = reference_faces("portrait_child_kodim15");
    let child = upload(&s, &std::fs::read(shared::path("data/content/portrait_child_kodim15.jpg")).unwrap(), None);
    let v = faces(&child);
    assert_eq!(v["faces"].as_array().unwrap().len(), want.len(), "{v}");
    let largest = [want[0][0], want[0][1], want[0][2], want[0][3]];
    assert!(iou(face_box(&v["faces"][0]), largest) > 0.95, "{v}");
    assert_crop_contains(&v["crop"], largest);

    // No face: the centre square, and a note that says so.
    let town = upload(&s, &std::fs::read(shared::path("data/content/chicago.jpg")).unwrap(), None);
    let v = faces(&town);
    assert_eq!(v["found"], false, "{v}");
    assert_eq!(v["faces"], json!([]));
    assert_eq!(v["crop"], json!({"x": 119, "y": 0, "side": 474}));
    assert!(v["note"].as_str().unwrap().contains("no face"), "{v}");

    // A stylised avatar with a built-in filter, at once: N×N, framed on the face found above.
    let crop = faces(&woman)["crop"].clone();
    let r = post_json(&s.url("/v1/stylize"), &json!({"image": woman, "style": "cartoon-paprika", "avatar": {"size": 128}}), None).ok_json(200);
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(128), Some(128)), "{r}");
    let a = &r["avatar"];
    assert_eq!((a["found"].as_bool(), a["source"].as_str()), (Some(true), Some("detected")), "{r}");
    assert_eq!(a["crop"], crop);
    assert!(iou(face_box(&a["face"]), reference) > 0.95, "{r}");
    let img = decode_rgb(&get(&s.url(r["url"].as_str().unwrap()), None).body);
    assert_eq!(img.dimensions(), (128, 128));
    let info = get(&s.url(&format!("/v1/results/{}/info", r["result"].as_str().unwrap())), None).ok_json(200);
    assert_eq!(&info["avatar"], a, "the result's info says how it was framed");
    assert_eq!((info["method"].as_str(), info["style"].as_str()), (Some("cartoon"), Some("cartoon-paprika")));

    // A painting (MicroAST) with a face box given: the box, not a detection.
    let r = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": woman, "style": "starry-night", "avatar": {"size": 96, "box": [100, 120, 200, 200]}}),
        None,
    )
    .ok_json(200);
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(96), Some(96)));
    assert_eq!(r["avatar"]["source"], "given");
    assert_eq!(r["avatar"]["crop"], json!({"x": 20, "y": 40, "side": 360}));
    assert!(r["avatar"]["face"].get("score").is_none(), "{r}");

    // A library model as a job, on a photo without a face: the centre square, said so.
    let job = post_json(&s.url("/v1/stylize"), &json!({"image": town, "style": "candy", "async": true, "avatar": {"size": 64}}), None)
        .ok_json(202)["job"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_job(&s, &job, None, Duration::from_secs(120), |j| j["state"] == "succeeded" || j["state"] == "failed");
    assert_eq!(done["state"], "succeeded", "{done}");
    let info = get(&s.url(&format!("/v1/results/{}/info", done["result"].as_str().unwrap())), None).ok_json(200);
    assert_eq!((info["width"].as_u64(), info["height"].as_u64()), (Some(64), Some(64)));
    assert_eq!((info["avatar"]["found"].as_bool(), info["avatar"]["source"].as_str()), (Some(false), Some("none")), "{info}");
    assert_eq!(info["avatar"]["crop"], json!({"x": 119, "y": 0, "side": 474}));
    assert!(info["avatar"]["note"].as_str().unwrap().contains("no face"), "{info}");
    assert!(info["avatar"].get("face").is_none(), "{info}");

    // A filter previewed on the photo (not recorded in the history), and what has no such preview.
    let before = get(&s.url("/v1/history?limit=100"), None).ok_json(200)["items"].as_array().unwrap().len();
    let p = get(&s.url(&format!("/v1/styles/cartoon-shinkai/thumbnail?size=64&image={woman}")), None);
    assert_eq!((p.status, p.content_type.as_str()), (200, "image/jpeg"), "{}", String::from_utf8_lossy(&p.body));
    let preview = decode_rgb(&p.body);
    assert_eq!(preview.height(), 64);
    let plain = decode_rgb(&get(&s.url(&format!("/v1/images/{woman}/thumbnail?size=64")), None).body);
    assert_eq!(plain.dimensions(), preview.dimensions());
    assert!(mean_diff(&plain, &preview) > 5.0, "the preview is the filter on the photo, not the photo");
    let again = get(&s.url(&format!("/v1/styles/cartoon-shinkai/thumbnail?size=64&image={woman}")), None);
    assert_eq!(again.body, p.body, "cached");
    let scene = get(&s.url("/v1/styles/cartoon-shinkai/thumbnail?size=64"), None);
    assert_ne!(scene.body, p.body, "without an image, the sample scene");
    let after = get(&s.url("/v1/history?limit=100"), None).ok_json(200)["items"].as_array().unwrap().len();
    assert_eq!(after, before, "previews are not in the history");
    get(&s.url("/v1/styles/cartoon-shinkai/thumbnail?image=img_nope"), None).assert_error(404, "image_not_found");
    get(&s.url(&format!("/v1/styles/starry-night/thumbnail?image={woman}")), None).assert_error(404, "no_thumbnail");

    // Bad input: 4xx with a JSON error.
    let bad = |body: Value, status: u16, code: &str| post_json(&s.url("/v1/stylize"), &body, None).assert_error(status, code);
    let base = |avatar: Value| json!({"image": woman, "style": "cartoon-paprika", "avatar": avatar});
    bad(base(json!({"size": 0})), 422, "invalid_parameter");
    bad(base(json!({"size": 5000})), 422, "invalid_parameter");
    bad(base(json!({"box": [1, 2, 3]})), 422, "invalid_parameter");
    bad(base(json!({"box": [10, 10, 0, 20]})), 422, "invalid_parameter");
    bad(base(json!({"box": [9000, 10, 20, 20]})), 422, "invalid_parameter");
    bad(base(json!({"sise": 64})), 422, "invalid_body");
    bad(base(json!("square")), 422, "invalid_body");
    let mut with_size = base(json!({}));
    with_size["max_size"] = json!(256);
    bad(with_size, 422, "invalid_parameter");
    post_json(&s.url("/v1/faces"), &json!({"image": "img_nope"}), None).assert_error(404, "image_not_found");
    post_json(&s.url("/v1/faces"), &json!({}), None).assert_error(422, "invalid_body");
    post_json(&s.url("/v1/faces"), &json!({"image": woman, "size": 3}), None).assert_error(422, "invalid_body");
    post_bytes(&s.url("/v1/faces"), "text/plain", b"{}", None).assert_error(415, "unsupported_media_type");
    s.shutdown();
}

/// A clip made with FFmpeg: a pan over a shared photo, `frames` frames of 96×64 at 25 fps with a
/// sine AAC track, H.264 in MP4.
fn pan_clip_mp4(dir: &Path, frames: u32) -> Vec<u8> {
    let photo = shared::path("data/content/lighthouse_kodim21.jpg");
    let out = dir.join(format!("pan{frames}.mp4"));
    let secs = format!("{}", frames as f64 / 25.0);
    let tools = styleforge_core::video::Tools::find().expect("FFmpeg is installed (scripts/install-ffmpeg.sh)");
    let status = std::process::Command::new(&tools.ffmpeg)
        .args(["-v", "error", "-nostdin", "-y", "-loop", "1", "-framerate", "25", "-i"])
        .arg(&photo)
        .args(["-f", "lavfi", "-i", &format!("sine=frequency=330:duration={secs}")])
        .args(["-vf", "crop=96:64:x='3*n':y=80,format=yuv420p", "-frames:v", &frames.to_string()])
        .args(["-c:v", "libx264", "-crf", "14", "-c:a", "aac", "-t", &secs])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// Reads a job's events to the end, checking the per-frame progress: stages count the frames,
/// `iteration` / `iterations` give frames done and frames in all, fractions never go back.
/// Progress is written at most a few times a second, so a job of a fraction of a second may
/// show none (`some`: at least one is required).
fn frame_progress(s: &TestServer, job: &str, frames: u64, some: bool) -> String {
    let events = follow_events(&s.url(&format!("/v1/jobs/{job}/events")), None);
    let last = events.last().expect("events");
    assert_eq!((last.event.as_str(), last.data["state"].as_str()), ("done", Some("succeeded")), "{events:?}");
    let running: Vec<&SseEvent> = events.iter().filter(|e| e.data["state"] == "running").collect();
    let per_frame: Vec<&Value> = running
        .iter()
        .map(|e| &e.data["progress"])
        .filter(|p| p["stage"].as_str().is_some_and(|s| s.starts_with("stylizing frame")))
        .collect();
    // A stream that watched the job through several stages saw its frames go by (a small clip
    // may run whole between the request and the stream's start: then there is little to see).
    let mut stages: Vec<&str> = running.iter().filter_map(|e| e.data["progress"]["stage"].as_str()).collect();
    stages.dedup();
    assert!(!some || stages.len() < 3 || !per_frame.is_empty(), "per-frame progress: {events:?}");
    assert!(per_frame.iter().all(|p| p["iterations"].as_u64() == Some(frames)), "{events:?}");
    for p in &per_frame {
        let (done, stage) = (p["iteration"].as_u64().unwrap(), p["stage"].as_str().unwrap());
        assert_eq!(stage, format!("stylizing frame {done} of {frames}"));
    }
    let fractions: Vec<f64> = events.iter().map(|e| e.data["progress"]["fraction"].as_f64().unwrap()).collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    last.data["result"].as_str().unwrap().to_string()
}

#[test]
fn videos_and_animations_are_uploaded_checked_and_stylised_as_jobs() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let clip = pan_clip_mp4(data.path(), 10);

    // Upload: the container is read before decoding.
    let v = post_bytes(&s.url("/v1/images"), "video/mp4", &clip, None).ok_json(201);
    assert_eq!((v["media"].as_str(), v["format"].as_str(), v["frames"].as_u64()), (Some("video"), Some("mp4"), Some(10)));
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(96), Some(64)));
    assert!((v["duration_ms"].as_i64().unwrap() - 400).abs() <= 30, "{v}");
    let vid = v["id"].as_str().unwrap().to_string();
    let thumb = get(&s.url(&format!("/v1/images/{vid}/thumbnail?size=64")), None);
    assert_eq!(thumb.status, 200);
    assert_eq!(decode_rgb(&thumb.body).width(), 64, "the first frame, fitted");
    let original = get(&s.url(&format!("/v1/images/{vid}")), None);
    assert_eq!(original.header("content-type"), Some("video/mp4"));

    // Stylised as a job even though it is small, with per-frame progress; MP4 by default.
    let r = post_json(&s.url("/v1/stylize"), &json!({"image": vid, "style": "cartoon-paprika"}), None).ok_json(202);
    let rid = frame_progress(&s, r["job"].as_str().unwrap(), 10, true);
    let out = get(&s.url(&format!("/v1/results/{rid}")), None);
    assert_eq!(out.header("content-type"), Some("video/mp4"));
    let info = get(&s.url(&format!("/v1/results/{rid}/info")), None).ok_json(200);
    assert_eq!((info["format"].as_str(), info["width"].as_u64(), info["height"].as_u64()), (Some("mp4"), Some(96), Some(64)));
    let tools = styleforge_core::video::Tools::find().unwrap();
    let saved = data.path().join("result.mp4");
    std::fs::write(&saved, &out.body).unwrap();
    let made = styleforge_core::video::probe(&tools, &saved).unwrap();
    assert_eq!((made.frames, made.frame_rate, made.audio_codec.as_deref()), (10, (25, 1), Some("aac")));
    // Byte ranges, so a <video> pointed at the URL can seek.
    assert_eq!(out.header("accept-ranges"), Some("bytes"));
    let len = out.body.len();
    let ranged = |spec: &str| {
        let r = std::process::Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", "-H", &format!("range: {spec}")])
            .arg(s.url(&format!("/v1/results/{rid}")))
            .output()
            .unwrap();
        String::from_utf8_lossy(&r.stdout).to_lowercase()
    };
    let head = ranged("bytes=0-99");
    assert!(head.starts_with("http/1.1 206") && head.contains(&format!("content-range: bytes 0-99/{len}")) && head.contains("content-length: 100"), "{head}");
    let head = ranged("bytes=-50");
    assert!(head.contains(&format!("content-range: bytes {}-{}/{len}", len - 50, len - 1)), "{head}");
    let head = ranged(&format!("bytes={len}-"));
    assert!(head.starts_with("http/1.1 416") && head.contains(&format!("content-range: bytes */{len}")), "{head}");

    // WebM on request, independent frames on request.
    let r = post_json(&s.url("/v1/stylize"), &json!({"image": vid, "style": "cartoon-paprika", "format": "webm", "temporal_weight": 0}), None).ok_json(202);
    let rid = frame_progress(&s, r["job"].as_str().unwrap(), 10, true);
    let out = get(&s.url(&format!("/v1/results/{rid}")), None);
    assert_eq!(out.header("content-type"), Some("video/webm"));

    // An animated GIF comes back as a GIF with its frames.
    let mut w = styleforge_core::animation::Writer::new(styleforge_core::animation::AnimationFormat::Gif, 40, 30, 0, None).unwrap();
    let base = image_io::decode(&small_png("data/content/small/cat_chelsea_256.jpg", 60), 1 << 20).unwrap();
    for k in 0..3 {
        w.push(&base.crop(k * 5, 0, 40, 30), (100, 1)).unwrap();
    }
    let gif = w.finish().unwrap();
    let v = post_bytes(&s.url("/v1/images"), "image/gif", &gif, None).ok_json(201);
    assert_eq!((v["media"].as_str(), v["format"].as_str(), v["frames"].as_u64()), (Some("animation"), Some("gif"), Some(3)));
    let gid = v["id"].as_str().unwrap().to_string();
    let r = post_json(&s.url("/v1/stylize"), &json!({"image": gid, "style": "starry-night", "method": "microast"}), None).ok_json(202);
    let rid = frame_progress(&s, r["job"].as_str().unwrap(), 3, false);
    let out = get(&s.url(&format!("/v1/results/{rid}")), None);
    assert_eq!(out.header("content-type"), Some("image/gif"));
    let anim = styleforge_core::animation::probe(&out.body).unwrap().expect("an animation");
    assert_eq!((anim.frames, anim.width, anim.height, anim.loop_count), (Some(3), 40, 30, 0));

    // Refusals, each with its reason.
    let refuse = |body: Value, code: &str| post_json(&s.url("/v1/stylize"), &body, None).assert_error(422, code);
    refuse(json!({"image": vid, "style": "cartoon-paprika", "format": "gif"}), "invalid_parameter");
    refuse(json!({"image": gid, "style": "cartoon-paprika", "format": "mp4"}), "invalid_parameter");
    refuse(json!({"image": vid, "style": "starry-night", "method": "gatys"}), "invalid_parameter");
    refuse(json!({"image": vid, "style": "cartoon-paprika", "temporal_weight": 2}), "invalid_parameter");
    let still = upload(&s, &content_jpeg(), None);
    refuse(json!({"image": still, "style": "cartoon-paprika", "format": "mp4"}), "invalid_parameter");
    let mut corrupt = clip.clone();
    corrupt.truncate(clip.len() / 4);
    corrupt[48..160].fill(0x5A);
    post_bytes(&s.url("/v1/images"), "video/mp4", &corrupt, None).assert_error(422, "invalid_video");
    s.shutdown();

    // Limits from the configuration, checked from the container.
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(styleforge_server::Config { max_video_frames: 8, ..config(models_home(), data.path()) });
    post_bytes(&s.url("/v1/images"), "video/mp4", &clip, None).assert_error(413, "video_too_long");
    post_bytes(&s.url("/v1/images"), "image/gif", &gif, None).ok_json(201);
    s.shutdown();
    let s = TestServer::start(styleforge_server::Config { max_video_frames: 0, ..config(models_home(), data.path()) });
    post_bytes(&s.url("/v1/images"), "video/mp4", &clip, None).assert_error(415, "unsupported_format");
    s.shutdown();
}

/// ONNX in the service: an imported ONNX model is a style like any other (listed, run by the
/// fast method), and model styles whose terms allow it download as ONNX files that decode with
/// their metadata; style images, paintings and models without a stated licence do not.
#[test]
fn onnx_models_are_styles_and_styles_download_as_onnx() {
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let info = ModelInfo { name: "mindgame".into(), license: "MIT".into(), ..Default::default() };
    lib.import_onnx(&shared::path("models/onnx_fast_style/model.onnx"), info, &Default::default(), false).unwrap();
    lib.import(&[shared::path("parity/dcgan_netG_ngf32.pth")], ModelInfo { name: "unlicensed".into(), ..Default::default() }, false)
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(home.path(), data.path()));

    let all = get(&s.url("/v1/styles"), None).ok_json(200);
    let style = |name: &str| all["styles"].as_array().unwrap().iter().find(|v| v["name"] == name).cloned();
    let mindgame = style("mindgame").expect("the ONNX model is listed");
    assert_eq!(mindgame["method"], "onnx");
    assert_eq!(mindgame["onnx_url"], "/v1/styles/mindgame/onnx");
    assert_eq!(style("cartoon-paprika").unwrap()["onnx_url"], "/v1/styles/cartoon-paprika/onnx");
    assert!(style("starry-night").unwrap().get("onnx_url").is_none());

    // Stylised by the fast method, at the photo's size.
    let id = upload(&s, &small_png("data/content/tubingen.jpg", 90), None);
    let v = post_json(&s.url("/v1/stylize"), &json!({"image": id, "style": "mindgame"}), None).ok_json(200);
    let out = get(&s.url(v["url"].as_str().unwrap()), None);
    let img = decode_rgb(&out.body);
    assert_eq!(img.width(), 90);

    // Downloads: the built-in cartoon filter exported, the imported graph as imported.
    for (name, kind, license) in [("cartoon-paprika", "cartoon", "Apache-2.0"), ("mindgame", "onnx", "MIT")] {
        let r = get(&s.url(&format!("/v1/styles/{name}/onnx")), None);
        assert_eq!(r.status, 200, "{name}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.content_type, "application/octet-stream");
        assert_eq!(r.header("content-disposition"), Some(format!("attachment; filename=\"{name}.onnx\"").as_str()));
        assert!(r.header("etag").is_some());
        let model = styleforge_core::onnx::runtime::decode(&r.body).unwrap();
        let meta = styleforge_core::onnx::runtime::metadata(&model);
        assert_eq!(meta.get(styleforge_core::onnx::meta::KIND).map(String::as_str), Some(kind), "{name}");
        assert!(meta.get("license").is_some_and(|l| l.contains(license)), "{name}: {meta:?}");
        // The export states its input range; the imported graph never said its own.
        let range = if kind == "onnx" { None } else { Some("0..255") };
        assert_eq!(meta.get(styleforge_core::onnx::meta::INPUT_RANGE).map(String::as_str), range, "{name}");
    }
    get(&s.url("/v1/styles/unlicensed/onnx"), None).assert_error(403, "not_redistributable");
    get(&s.url("/v1/styles/starry-night/onnx"), None).assert_error(404, "no_onnx");
    get(&s.url("/v1/styles/nope/onnx"), None).assert_error(404, "style_not_found");
    s.shutdown();
}

/// ONNX models uploaded over the API belong to the key that uploaded them: listed, run and
/// deleted by it alone; broken files, taken names and bad parameters are refused clearly.
#[test]
fn onnx_uploads_are_a_keys_own_styles() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path(), data.path());
    cfg.anonymous = false;
    let s = TestServer::start(cfg.clone());
    let key = |name: &str| s.block_on(styleforge_server::create_key(&cfg, name, KeyLimits::default())).unwrap();
    let (alice, bob) = (key("alice"), key("bob"));
    let (a, b) = (Some(alice.key.as_str()), Some(bob.key.as_str()));
    let onnx = std::fs::read(shared::path("models/onnx_fast_style/model.onnx")).unwrap();
    let up = |query: &str, body: &[u8], k: Option<&str>| post_bytes(&s.url(&format!("/v1/models?{query}")), "application/octet-stream", body, k);

    let v = up("name=mind&license=MIT&input_range=0..255&tags=pink,bold", &onnx, a).ok_json(201);
    assert_eq!(v["name"], "mind");
    assert_eq!(v["method"], "onnx");
    assert_eq!(v["tags"], json!(["pink", "bold"]));
    let listed = |k: Option<&str>| -> Vec<String> {
        get(&s.url("/v1/styles"), k).ok_json(200)["styles"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect()
    };
    assert!(listed(a).contains(&"mind".to_string()));
    assert!(!listed(b).contains(&"mind".to_string()), "another key does not see it");

    let photo = upload(&s, &small_png("data/content/chicago.jpg", 80), a);
    let r = post_json(&s.url("/v1/stylize"), &json!({"image": photo, "style": "mind"}), a).ok_json(200);
    assert_eq!(decode_rgb(&get(&s.url(r["url"].as_str().unwrap()), a).body).width(), 80);
    let bob_photo = upload(&s, &small_png("data/content/chicago.jpg", 80), b);
    post_json(&s.url("/v1/stylize"), &json!({"image": bob_photo, "style": "mind"}), b).assert_error(404, "style_not_found");
    // The uploaded file downloads again with the metadata it was given.
    let back = get(&s.url("/v1/styles/mind/onnx"), a);
    assert_eq!(back.status, 200);
    let meta = styleforge_core::onnx::runtime::metadata(&styleforge_core::onnx::runtime::decode(&back.body).unwrap());
    assert_eq!(meta.get("license").map(String::as_str), Some("MIT"));
    assert_eq!(meta.get(styleforge_core::onnx::meta::INPUT_RANGE).map(String::as_str), Some("0..255"));

    // Refusals: taken names (own, built-in, painting), broken files, bad parameters, empty body.
    up("name=mind", &onnx, a).assert_error(409, "name_taken");
    up("name=microast", &onnx, a).assert_error(409, "name_taken");
    up("name=starry-night", &onnx, a).assert_error(409, "name_taken");
    up("name=half", &onnx[..onnx.len() / 2], a).assert_error(422, "invalid_model");
    up("name=junk", b"\x89PNG not a model", a).assert_error(422, "invalid_model");
    up("name=Bad%20Name", &onnx, a).assert_error(422, "invalid_parameter");
    up("name=ranged&input_range=0..9", &onnx, a).assert_error(422, "invalid_parameter");
    up("name=empty", b"", a).assert_error(400, "empty_body");
    up("name=nokey", &onnx, None).assert_error(401, "missing_key");
    assert!(!listed(a).iter().any(|n| ["half", "junk", "ranged", "empty"].contains(&n.as_str())), "nothing half-stored");

    // Only the owner deletes it; afterwards it is gone.
    delete(&s.url("/v1/styles/mind"), b).assert_error(404, "style_not_found");
    assert_eq!(delete(&s.url("/v1/styles/mind"), a).status, 204);
    get(&s.url("/v1/styles/mind"), a).assert_error(404, "style_not_found");
    delete(&s.url("/v1/styles/microast"), a).assert_error(403, "read_only");
    s.shutdown();
}

#[test]
fn ratings_are_summarised_with_intervals_and_order_the_gallery_best_rated_first() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    common::stats::ratings_summaries_and_best_rated_order(&s);
    s.shutdown();
}

#[test]
fn pairwise_preferences_are_checked_replaced_and_scored_by_bradley_terry() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.anonymous = false;
    let s = TestServer::start(cfg.clone());
    let key = |name: &str| s.block_on(styleforge_server::create_key(&cfg, name, KeyLimits::default())).unwrap().key;
    let (alice, bob) = (key("alice"), key("bob"));
    common::stats::preferences_validated_replaced_and_scored(&s, &alice, &bob);

    // The new operations are documented.
    let doc = get(&s.url("/v1/openapi.json"), None).ok_json(200);
    for p in ["/v1/preferences", "/v1/stats/preferences", "/v1/stats/ratings"] {
        assert!(doc["paths"].get(p).is_some(), "{p} documented");
    }
    s.shutdown();
}
