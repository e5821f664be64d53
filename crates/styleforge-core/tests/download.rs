//! Model downloads against a local HTTP server the test runs: digests verified, interrupted
//! downloads resumed with range requests, nothing half-written left in the library.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use styleforge_core::library::download::{self, DownloadOptions, Entry, Manifest, Part, Source};
use styleforge_core::library::Library;
use styleforge_core::shared;
use styleforge_core::weights::{HostTensor, Weights};

/// What the server does with a path.
#[derive(Clone)]
enum Serve {
    /// Whole file, honouring `Range: bytes=N-`.
    File(Vec<u8>),
    /// The first request gets only the first `cut` bytes (with the full Content-Length), then
    /// the connection drops; later requests behave like `File`.
    DropOnce(Vec<u8>, usize),
}

struct Server {
    base: String,
    /// Every request seen: (path, Range header).
    log: Arc<Mutex<Vec<(String, Option<String>)>>>,
}

fn serve(routes: HashMap<String, Serve>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let routes = Arc::new(Mutex::new(routes));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').parse::<usize>().ok();
                }
            }
            log2.lock().unwrap().push((path.clone(), range.map(|r| format!("bytes={r}-"))));
            let mut routes = routes.lock().unwrap();
            let Some(route) = routes.get(&path).cloned() else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            match route {
                Serve::DropOnce(bytes, cut) => {
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bytes.len());
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&bytes[..cut]);
                    routes.insert(path, Serve::File(bytes));
                }
                Serve::File(bytes) => {
                    let start = range.unwrap_or(0).min(bytes.len());
                    let (status, body) = if range.is_some() { ("206 Partial Content", &bytes[start..]) } else { ("200 OK", &bytes[..]) };
                    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                }
            }
        }
    });
    Server { base, log }
}

/// A small TransformerNet (width 4) with deterministic pseudo-random weights, as safetensors.
fn tiny_model() -> Vec<u8> {
    let mut w = Weights::default();
    let mut seed = 1u32;
    let mut put = |name: &str, shape: Vec<usize>| {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 * 0.2 - 0.1
            })
            .collect();
        w.tensors.insert(name.to_string(), HostTensor::new(shape, data));
    };
    let (c1, c2, c3) = (4, 8, 16);
    let mut conv = |c: &str, n: Option<&str>, o: usize, i: usize, k: usize| {
        put(&format!("{c}.conv2d.weight"), vec![o, i, k, k]);
        put(&format!("{c}.conv2d.bias"), vec![o]);
        if let Some(n) = n {
            put(&format!("{n}.weight"), vec![o]);
            put(&format!("{n}.bias"), vec![o]);
        }
    };
    conv("conv1", Some("in1"), c1, 3, 9);
    conv("conv2", Some("in2"), c2, c1, 3);
    conv("conv3", Some("in3"), c3, c2, 3);
    for i in 1..=5 {
        conv(&format!("res{i}.conv1"), Some(&format!("res{i}.in1")), c3, c3, 3);
        conv(&format!("res{i}.conv2"), Some(&format!("res{i}.in2")), c3, c3, 3);
    }
    conv("deconv1", Some("in4"), c2, c3, 3);
    conv("deconv2", Some("in5"), c1, c2, 3);
    conv("deconv3", None, 3, c1, 9);
    w.to_safetensors_bytes().unwrap()
}

fn sha256(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

fn entry(name: &str, source: Source) -> Entry {
    Entry {
        name: name.into(),
        title: format!("Test {name}"),
        method: "fast".into(),
        tags: vec!["test".into()],
        description: String::new(),
        license: "CC0".into(),
        research_only: false,
        source,
        tensors_sha256: None,
    }
}

fn file_part(url: String, sha: Option<String>) -> Source {
    Source::Files { parts: vec![Part { url, sha256: sha, sha256_prefix: None, prefix: String::new() }] }
}

fn no_progress() -> impl FnMut(&str, u64, Option<u64>) {
    |_, _, _| {}
}

#[test]
fn download_verifies_and_installs() {
    let model = tiny_model();
    let server = serve(HashMap::from([("/m.safetensors".to_string(), Serve::File(model.clone()))]));
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let e = entry("tiny", file_part(format!("{}/m.safetensors", server.base), Some(sha256(&model))));
    let mut calls = 0u64;
    let info = download::download(&lib, &e, &DownloadOptions::default(), &mut |_, got, total| {
        calls += 1;
        assert!(total.is_none_or(|t| got <= t));
    })
    .unwrap();
    assert!(calls > 0, "progress was reported");
    assert_eq!(info.sha256, sha256(&model));
    assert_eq!(info.family, "transformer_net");
    let listed = lib.installed().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "tiny");
    assert_eq!(listed[0].license, "CC0");
    // The installed file loads as the network and holds the same tensors.
    let installed = Weights::load(&lib.model_path("tiny")).unwrap();
    assert_eq!(installed.content_sha256(), Weights::from_safetensors_bytes(&model).unwrap().content_sha256());
    // A second download of the same name is refused without --force.
    assert!(download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).is_err());
}

#[test]
fn digest_mismatch_leaves_nothing_behind() {
    let model = tiny_model();
    let server = serve(HashMap::from([("/m.safetensors".to_string(), Serve::File(model))]));
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let e = entry("bad", file_part(format!("{}/m.safetensors", server.base), Some("00".repeat(32))));
    let err = download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).unwrap_err();
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");
    assert!(!lib.model_path("bad").exists());
    assert!(lib.installed().unwrap().is_empty());
    let cache = home.path().join("downloads/bad");
    let leftovers: Vec<_> = std::fs::read_dir(&cache).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "no partial file kept after a mismatch: {leftovers:?}");
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let model = tiny_model();
    let cut = model.len() / 3;
    let server = serve(HashMap::from([("/m.safetensors".to_string(), Serve::DropOnce(model.clone(), cut))]));
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let e = entry("resumed", file_part(format!("{}/m.safetensors", server.base), Some(sha256(&model))));
    let err = download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).unwrap_err();
    assert!(err.to_string().contains("resume"), "{err}");
    assert!(!lib.model_path("resumed").exists(), "nothing installed after an interruption");
    let partial = home.path().join("downloads/resumed/m.safetensors.partial");
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut as u64);
    download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).unwrap();
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].1.as_deref(), Some(format!("bytes={cut}-").as_str()), "second request resumes");
    assert!(lib.model_path("resumed").exists());
    assert!(!home.path().join("downloads/resumed").exists(), "download cache cleaned up");
}

#[test]
fn unpinned_entries_need_explicit_trust() {
    let model = tiny_model();
    let server = serve(HashMap::from([("/m.safetensors".to_string(), Serve::File(model.clone()))]));
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let e = entry("unpinned", file_part(format!("{}/m.safetensors", server.base), None));
    let err = download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).unwrap_err();
    assert!(err.to_string().contains("--trust"), "{err}");
    assert!(server.log.lock().unwrap().is_empty(), "nothing fetched before trust");
    let opts = DownloadOptions { trust_unpinned: true, overwrite: false };
    let info = download::download(&lib, &e, &opts, &mut no_progress()).unwrap();
    assert_eq!(info.sha256, sha256(&model), "the computed digest is reported for pinning");
}

#[test]
fn zip_member_is_extracted() {
    let model = tiny_model();
    let mut zip_bytes = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut zip_bytes);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        z.start_file("saved_models/readme.txt", opts).unwrap();
        z.write_all(b"not weights").unwrap();
        z.start_file("saved_models/tiny.safetensors", opts).unwrap();
        z.write_all(&model).unwrap();
        z.finish().unwrap();
    }
    let zip_bytes = zip_bytes.into_inner();
    let server = serve(HashMap::from([("/saved_models.zip".to_string(), Serve::File(zip_bytes.clone()))]));
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let archive = Part { url: format!("{}/saved_models.zip", server.base), sha256: Some(sha256(&zip_bytes)), sha256_prefix: None, prefix: String::new() };
    let e = entry("zipped", Source::Zip { archive, member: "saved_models/tiny.safetensors".into() });
    download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).unwrap();
    assert_eq!(
        Weights::load(&lib.model_path("zipped")).unwrap().content_sha256(),
        Weights::from_safetensors_bytes(&model).unwrap().content_sha256()
    );
}

/// TensorFlow layout of a PyTorch kernel `[b, a, kh, kw]` → `[kh, kw, a, b]` (inverse of the converter).
fn torch_to_tf(t: &HostTensor) -> Vec<u8> {
    let [b, a, kh, kw] = <[usize; 4]>::try_from(t.shape.as_slice()).unwrap();
    let mut out = vec![0f32; t.data.len()];
    for o in 0..b {
        for i in 0..a {
            for y in 0..kh {
                for x in 0..kw {
                    out[((y * kw + x) * a + i) * b + o] = t.data[((o * a + i) * kh + y) * kw + x];
                }
            }
        }
    }
    out.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn ml5_engstrom_layout_is_converted_exactly() {
    // Publish the shared Engstrom `wave` weights the way the ml5.js zoo does, then download them.
    let original = Weights::load(&shared::path("models/fast_style_engstrom/wave.safetensors")).unwrap();
    let mut routes = HashMap::new();
    let mut manifest = serde_json::Map::new();
    for (i, layer) in download::ENGSTROM_LAYERS.iter().enumerate() {
        for (j, what) in ["weight", "shift", "scale"].iter().enumerate() {
            let var = if 3 * i + j == 0 { "Variable".to_string() } else { format!("Variable_{}", 3 * i + j) };
            let t = original.get(&format!("{layer}.{what}")).unwrap();
            let (bytes, shape) = if *what == "weight" {
                let s = &t.shape;
                (torch_to_tf(t), vec![s[2], s[3], s[1], s[0]])
            } else {
                (t.data.iter().flat_map(|v| v.to_le_bytes()).collect(), t.shape.clone())
            };
            routes.insert(format!("/wave/{var}"), Serve::File(bytes));
            manifest.insert(var.clone(), serde_json::json!({"filename": var, "shape": shape}));
        }
    }
    routes.insert("/wave/manifest.json".into(), Serve::File(serde_json::to_vec(&manifest).unwrap()));
    let server = serve(routes);
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let mut e = entry("wave", Source::Ml5Engstrom { base_url: format!("{}/wave/", server.base) });
    e.tensors_sha256 = Some(original.content_sha256());
    let info = download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).unwrap();
    assert_eq!(info.family, "engstrom");
    let got = Weights::load(&lib.model_path("wave")).unwrap();
    assert_eq!(got.tensors, original.tensors);

    // A wrong pinned tensor digest is refused and installs nothing.
    let home2 = tempfile::tempdir().unwrap();
    let lib2 = Library::new(home2.path());
    e.tensors_sha256 = Some("ab".repeat(32));
    assert!(download::download(&lib2, &e, &DownloadOptions::default(), &mut no_progress()).is_err());
    assert!(lib2.installed().unwrap().is_empty());
}

#[test]
fn builtin_manifest_is_valid_and_pins_what_it_can() {
    let m = Manifest::load_default().unwrap();
    for name in ["candy-nc16", "mosaic-nc8", "wave", "udnie-engstrom", "candy"] {
        m.get(name).unwrap();
    }
    for e in &m.models {
        assert!(!e.license.is_empty(), "{} states its licence", e.name);
        assert!(e.url().starts_with("https://"), "{}: {}", e.name, e.url());
    }
    // Every entry that has research-only or undeclared terms is marked so.
    assert!(m.get("wave").unwrap().research_only);
    assert!(m.get("wave").unwrap().pinned());
}

/// An AlexNet in torchvision's layout (the LPIPS backbone) downloads as a `metric` model: its
/// `features` kept, its classifier dropped, and it loads as the evaluation network. The built-in
/// manifest pins torchvision's AlexNet by its sha256 prefix and leaves ArtFID's unpinned
/// Inception-v3 to `--trust`, marked research-only.
#[test]
fn metric_networks_download_into_the_library() {
    use styleforge_core::library::{Loaded, MetricNet, ModelKind};
    use styleforge_core::weights::formula;
    let mut entries: Vec<(String, Vec<usize>)> = [(0, [64, 3, 11, 11]), (3, [192, 64, 5, 5]), (6, [384, 192, 3, 3]), (8, [256, 384, 3, 3]), (10, [256, 256, 3, 3])]
        .into_iter()
        .flat_map(|(i, shape): (usize, [usize; 4])| [(format!("features.{i}.weight"), shape.to_vec()), (format!("features.{i}.bias"), vec![shape[0]])])
        .collect();
    entries.push(("classifier.1.weight".into(), vec![4, 9]));
    entries.push(("classifier.1.bias".into(), vec![4]));
    let bytes = formula::weights(&entries).to_safetensors_bytes().unwrap();
    let server = serve(HashMap::from([("/alexnet.safetensors".to_string(), Serve::File(bytes.clone()))]));
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let mut e = entry("alexnet", file_part(format!("{}/alexnet.safetensors", server.base), Some(sha256(&bytes))));
    e.method = "metric".into();
    let info = download::download(&lib, &e, &DownloadOptions::default(), &mut no_progress()).unwrap();
    assert_eq!((info.method.as_str(), info.family.as_str()), ("metric", "alexnet"));
    let installed = Weights::load(&lib.model_path("alexnet")).unwrap();
    assert!(installed.has("features.10.weight") && !installed.has("classifier.1.weight"), "the classifier is dropped");
    match ModelKind::Metric.load_weights(&installed, &common::device()).unwrap() {
        Loaded::Metric(MetricNet::Alex(_)) => {}
        other => panic!("loaded as {:?}", other.kind()),
    }
    let m = Manifest::load_default().unwrap();
    let alexnet = m.get("alexnet").unwrap();
    assert!(alexnet.pinned() && !alexnet.research_only && alexnet.method == "metric");
    let art = m.get("art-inception").unwrap();
    assert!(!art.pinned() && art.research_only && art.method == "metric");
}
