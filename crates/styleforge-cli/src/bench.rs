//! `styleforge bench`: times the networks at several sizes and prints a table
//! (median milliseconds, megapixels per second, peak resident memory during the row).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::{Device, Distribution, Tensor};
use styleforge_core::methods::adain;
use styleforge_core::methods::gatys;
use styleforge_core::networks::vgg::Vgg;
use styleforge_core::methods::fast::FastStyleNet;
use styleforge_core::networks::microast::MicroAst;
use styleforge_core::networks::layers::NormContext;
use styleforge_core::library::{Library, builtin};
use styleforge_core::shared;

/// Options of `styleforge bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Models to time (library names or files). Default: the reference models in the shared data.
    #[arg(long)]
    model: Vec<String>,
    /// Square image sides to time.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    sizes: Vec<usize>,
    /// Timed runs per row (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Workloads to run (fast, vgg, adain, gatys, gan-train, microast, cartoon, face, anime,
    /// video, onnx); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// One row of the table.
struct Row {
    workload: String,
    /// Image width and height.
    size: [usize; 2],
    median_ms: f64,
    peak_mib: Option<f64>,
    /// The reference framework's time measured in this run, when it was (framework, ms).
    measured: Option<(String, f64)>,
}

/// Runs the command.
pub fn run(a: Args) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let device = styleforge_core::device::parse(&a.device)?;
    let wants = |w: &str| a.only.is_empty() || a.only.iter().any(|o| o == w);
    println!("threads: {}  device: {}  runs: {} (median)", rayon_threads(), a.device, a.runs);
    let mut rows = Vec::new();
    if wants("fast") {
        let models = if a.model.is_empty() { default_models() } else { resolve(&a.model)? };
        for (label, path) in &models {
            let net = FastStyleNet::load(path, &device)?;
            for &size in &a.sizes {
                rows.push(time_row(label, [size; 2], a.runs, &device, |x| {
                    let _ = net.forward(x, &mut NormContext::Local).into_data();
                }));
            }
        }
    }
    if wants("vgg") {
        if let Some(path) = shared_file("parity/vgg19_features_f16.pth") {
            let vgg = Vgg::load(&path, &device)?;
            rows.push(time_row("VGG19 to relu4_1", [512; 2], a.runs, &device, |x| {
                let _ = vgg.forward(x / 255.0, &["relu4_1"]).expect("layer").remove(0).into_data();
            }));
        }
    }
    if wants("adain") {
        if let (Some(enc), Some(dec)) = (
            shared_file("parity/adain_vgg_normalised_relu4_1.pth"),
            shared_file("parity/adain_decoder.pth"),
        ) {
            let model = adain::AdainModel::load(&enc, &dec, &device)?;
            let style = model.encoder.forward(Tensor::random([1, 3, 256, 256], Distribution::Uniform(0.0, 1.0), &device));
            let stats = adain::StyleStats::from_features(style)?;
            for size in [512, 1024] {
                rows.push(time_row("AdaIN encoder + AdaIN + decoder", [size; 2], a.runs, &device, |x| {
                    let t = adain::adain(model.encoder.forward(x / 255.0), &stats).expect("adain");
                    let _ = model.decoder.forward(t).into_data();
                }));
            }
        }
    }
    if wants("gatys") {
        if let Some(path) = shared_file("parity/vgg19_features_f16.pth") {
            let vgg = Vgg::load(&path, &device)?;
            for size in [384u32, 512] {
                reset_peak_rss();
                let t = gatys::time_step(&vgg, &device, size, size, a.runs)?;
                rows.push(Row {
                    workload: "Gatys step (VGG19 to relu5_1 + gradient)".into(),
                    size: [size as usize; 2],
                    median_ms: t.mean.as_secs_f64() * 1e3,
                    peak_mib: peak_rss_mib(),
                    measured: None,
                });
            }
        }
    }
    if wants("gan-train") {
        if let Some(path) = shared_file("parity/cyclegan_G_ngf32_6blocks.pth") {
            rows.push(gan_train_row(&path, 128, a.runs, &device)?);
        }
    }
    if wants("microast") {
        // A full stylisation as the reference's `TestNet.forward(content, style, 1.0)`: style
        // encoder and modulator on the 512² style, content encoder, decoder.
        let model = MicroAst::from_weights(&builtin::weights("microast")?, &device)?;
        let style = Tensor::<4>::random([1, 3, 512, 512], Distribution::Uniform(0.0, 1.0), &device);
        for size in [[512, 512], [1024, 1024], [3840, 2160]] {
            rows.push(time_row("MicroAST stylisation (512² style, alpha 1)", size, a.runs, &device, |x| {
                let _ = model.forward_traced(x / 255.0, style.clone(), 1.0).output.into_data();
            }));
        }
    }
    if wants("cartoon") {
        // The built-in filter's generator on an image in -1..1, as the reference's
        // `inference_with_ckpt.py` feeds it (its own size, no resizing).
        use styleforge_core::networks::cartoongan::CartoonGan;
        let net = CartoonGan::from_weights(&builtin::weights("cartoon-paprika")?, &device)?;
        let tf = tensorflow_times(&[512, 1024], a.runs);
        for size in [512, 1024] {
            let mut row = time_row("CartoonGAN-light filter (cartoon-paprika)", [size; 2], a.runs, &device, |x| {
                let _ = net.forward_any_size(x / 127.5 - 1.0, &mut NormContext::Local).into_data();
            });
            row.measured = tf.iter().find(|(s, _)| *s == size).map(|(_, ms)| ("TensorFlow (this run)".to_string(), *ms));
            rows.push(row);
        }
    }
    if wants("face") {
        // The network only (raw logits and offsets), as the reference's `net(x)`.
        let net = builtin::face_detector(&device)?;
        rows.push(time_row("Face detector RFB-320 (network)", [320, 240], a.runs, &device, |x| {
            let raw = net.forward(x / 128.0 - 1.0);
            let _ = (raw.logits.into_data(), raw.locations.into_data());
        }));
    }
    if wants("anime") {
        if let Some(path) = shared_file("parity/animegan2_generator.pth") {
            use styleforge_core::networks::animegan::{AnimeGan, Upsampling};
            let net = AnimeGan::from_weights(&styleforge_core::weights::Weights::load(&path)?, &device)?;
            rows.push(time_row("AnimeGANv2 generator", [512; 2], a.runs, &device, |x| {
                let _ = net.forward_traced(x / 127.5 - 1.0, Upsampling::AlignCorners, &mut NormContext::Local).0.into_data();
            }));
        }
    }
    if wants("video") {
        rows.extend(video_rows(a.runs, &device)?);
    }
    if wants("onnx") {
        rows.extend(onnx_rows(a.runs, &device)?);
    }
    if rows.is_empty() {
        bail!("nothing to time: pass --model NAME_OR_FILE (the shared reference models were not found)");
    }
    print_table(&rows);
    Ok(())
}

/// One CycleGAN generator training step (the parity generator, ngf 32, 6 blocks): forward,
/// L1 loss to a target, backward, Adam update; batch 1.
fn gan_train_row(path: &std::path::Path, size: usize, runs: usize, device: &Device) -> Result<Row> {
    use styleforge_core::networks::cyclegan::ResnetGenerator;
    use styleforge_core::train::adam::{Adam, AdamSettings, param_names};
    let ad = device.clone().autodiff();
    let w = styleforge_core::weights::Weights::load(path)?;
    let mut g = ResnetGenerator::load(&w, &ad)?.with_exact_norm_gradients(false);
    let names = param_names(|f| g.walk(f));
    let mut adam = Adam::new(AdamSettings::gan(), device);
    let mut step = || {
        let x = Tensor::<4>::random([1, 3, size, size], Distribution::Uniform(-1.0, 1.0), &ad);
        let target = Tensor::<4>::random([1, 3, size, size], Distribution::Uniform(-1.0, 1.0), &ad);
        let loss = (g.forward(x, &mut NormContext::Local) - target).abs().mean();
        let grads = loss.backward();
        g = adam.step(g.clone(), &names, &grads);
    };
    reset_peak_rss();
    step();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(Row {
        workload: "CycleGAN generator training step (ngf 32, 6 blocks)".into(),
        size: [size; 2],
        median_ms: times[times.len() / 2],
        peak_mib: peak_rss_mib(),
        measured: None,
    })
}

/// The reference framework's time on the benchmark machine of the README (2 threads, float32),
/// the median of three runs interleaved with `styleforge bench`: PyTorch from
/// `scripts/pytorch-bench.py` (the MicroAST rows on 2026-11-30, the classic ones on 2026-11-21),
/// TensorFlow from `scripts/tensorflow-bench.py`; the filter rows (2026-11-30) are one round
/// under a load average of 3–4, see the README: (workload prefix, size, framework, milliseconds).
const REFERENCE_MS: [(&str, [usize; 2], &str, f64); 11] = [
    ("TransformerNet stock", [512; 2], "PyTorch", 777.0),
    ("VGG19 to relu4_1", [512; 2], "PyTorch", 845.0),
    ("Gatys step", [384; 2], "PyTorch", 1429.0),
    ("CycleGAN generator training step", [128; 2], "PyTorch", 113.0),
    ("MicroAST stylisation", [512; 2], "PyTorch", 558.0),
    ("MicroAST stylisation", [1024; 2], "PyTorch", 2712.0),
    ("MicroAST stylisation", [3840, 2160], "PyTorch", 18184.0),
    ("CartoonGAN-light filter", [512; 2], "TensorFlow", 4172.0),
    ("CartoonGAN-light filter", [1024; 2], "TensorFlow", 21609.0),
    ("Face detector RFB-320", [320, 240], "PyTorch", 21.0),
    ("AnimeGANv2 generator", [512; 2], "PyTorch", 6518.0),
];

fn reference_ms(r: &Row) -> Option<(String, f64)> {
    if let Some(m) = &r.measured {
        return Some(m.clone());
    }
    REFERENCE_MS.iter().find(|(w, s, _, _)| r.workload.starts_with(w) && *s == r.size).map(|(_, _, f, ms)| (f.to_string(), *ms))
}

fn shared_file(rel: &str) -> Option<PathBuf> {
    let p = shared::dir().join(rel);
    p.exists().then_some(p)
}

/// Times `f` on random RGB images in 0..255 of `size` (width, height).
fn time_row(label: &str, size: [usize; 2], runs: usize, device: &Device, mut f: impl FnMut(Tensor<4>)) -> Row {
    let [w, h] = size;
    let input = || Tensor::<4>::random([1, 3, h, w], Distribution::Uniform(0.0, 255.0), device);
    reset_peak_rss();
    f(input());
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let x = input();
            let t = Instant::now();
            f(x);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    Row { workload: label.to_string(), size, median_ms: times[times.len() / 2], peak_mib: peak_rss_mib(), measured: None }
}

fn print_table(rows: &[Row]) {
    println!("| workload | size | ms | MP/s | peak RSS MiB | reference | reference ms | × reference time |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let [w, h] = r.size;
        let mp = (w * h) as f64 / 1e6;
        let size = if w == h { format!("{w}²") } else { format!("{w}×{h}") };
        let peak = r.peak_mib.map(|m| format!("{m:.0}")).unwrap_or_else(|| "-".into());
        let (framework, reference, ratio) = match reference_ms(r) {
            Some((f, t)) => (f, format!("{t:.0}"), format!("{:.2}", r.median_ms / t)),
            None => ("-".to_string(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {size} | {:.1} | {:.2} | {} | {framework} | {reference} | {ratio} |",
            r.workload,
            r.median_ms,
            mp / (r.median_ms / 1e3),
            peak
        );
    }
}

/// One frame of a clip through a method and the temporal consistency, as `styleforge stylize`
/// runs animations (decoding and encoding aside): frames of a pan across a built-in painting at
/// 640×360 and 1280×720, for a fast-style network (the shared nc8 mosaic, when present), the
/// built-in cartoon filter and MicroAST. Frames per second is 1000 / ms.
fn video_rows(runs: usize, device: &Device) -> Result<Vec<Row>> {
    use styleforge_core::image_io::Picture;
    use styleforge_core::library::ModelKind;
    use styleforge_core::methods::{self, Control, Input, Params, Progress};
    use styleforge_core::temporal::{Consistency, ConsistencySettings};
    let painting = builtin::painting("great-wave").expect("a built-in painting").picture()?;
    let starry = builtin::painting("starry-night").expect("a built-in painting").picture()?.fit_within(512);
    let mut cases: Vec<(&str, &str, styleforge_core::library::Loaded, Vec<(adain::Style, f32)>)> = vec![
        ("cartoon", "cartoon-paprika filter", ModelKind::Cartoon.load_weights(&builtin::weights("cartoon-paprika")?, device)?, vec![]),
        ("microast", "MicroAST (starry-night)", ModelKind::MicroAst.load_weights(&builtin::weights(builtin::MICROAST)?, device)?, vec![(adain::Style::Picture(starry), 1.0)]),
    ];
    if let Some(path) = shared_file("models/fast_style_pytorch/mosaic_nc8.safetensors") {
        let w = styleforge_core::weights::Weights::load(&path)?;
        cases.insert(0, ("fast", "fast style nc8 (mosaic)", ModelKind::Fast.load_weights(&w, device)?, vec![]));
    }
    let mut rows = Vec::new();
    for (method, label, model, styles) in &cases {
        let method = methods::get(method)?;
        for [w, h] in [[640u32, 360u32], [1280, 720]] {
            let step = 4;
            let frames = runs + 2;
            let wide = painting.resize(w + step * frames as u32, h);
            let mut consistency = Consistency::new(ConsistencySettings::default());
            reset_peak_rss();
            let mut times = Vec::new();
            for t in 0..frames {
                let frame: Picture = wide.crop(step * t as u32, 0, w, h);
                let input = Input { content: frame.clone(), styles: styles.clone(), mask: None, mask_styles: vec![] };
                let start = Instant::now();
                let mut quiet = |_: &Progress<'_>| {};
                let out = method.run(model, &input, &Params::default(), device, &mut Control::new(None, &mut quiet))?;
                let _ = consistency.next(&frame, out.picture);
                // The first frame has no previous one to follow, and the second warms up.
                if t >= 2 {
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(|a, b| a.total_cmp(b));
            rows.push(Row {
                workload: format!("Video frame: {label} + temporal consistency"),
                size: [w as usize, h as usize],
                median_ms: times[times.len() / 2],
                peak_mib: peak_rss_mib(),
                measured: None,
            });
        }
    }
    Ok(rows)
}

/// ONNX models through tract (`OnnxNet`, as `stylize --model` runs an imported model, without
/// the picture conversions), beside ONNX Runtime timing the same files in the same run
/// (`scripts/onnxruntime-bench.py`, when its Python has onnxruntime), at 256² and 512²: the two
/// published fast-style graphs of the shared data, and the shared TransformerNet (stock, w32)
/// exported by `styleforge models export`, also timed as the native network on the same weights.
fn onnx_rows(runs: usize, device: &Device) -> Result<Vec<Row>> {
    use std::collections::BTreeMap;
    use styleforge_core::library::{Loaded, ModelInfo};
    use styleforge_core::onnx::runtime::{OnnxNet, Overrides};
    let dir = tempfile::tempdir()?;
    let mut models: Vec<(String, PathBuf)> = [
        ("ONNX model.onnx (9-channel mobile, joshbrew)", "models/onnx_fast_style/model.onnx"),
        ("ONNX efficientmodel_big.onnx (joshbrew)", "models/onnx_fast_style/efficientmodel_big.onnx"),
    ]
    .iter()
    .filter_map(|(l, p)| shared_file(p).map(|p| (l.to_string(), p)))
    .collect();
    let mut native = None;
    if let Some(path) = shared_file("parity/transformer_net_stock_legacy.pth") {
        let net = FastStyleNet::load(&path, device)?;
        let info = ModelInfo { name: "transformer-net-stock".into(), ..Default::default() };
        let loaded = Loaded::Fast(FastStyleNet::load(&path, device)?);
        let file = dir.path().join("transformer_net_stock.onnx");
        std::fs::write(&file, styleforge_core::onnx::export::export(&loaded, &info)?)?;
        models.push(("ONNX export of TransformerNet stock (w32)".into(), file));
        native = Some(net);
    }
    let sizes = [256usize, 512];
    let ort = onnxruntime_times(&models, &sizes, runs);
    let mut rows = Vec::new();
    for (label, path) in &models {
        let net = OnnxNet::load(std::fs::read(path)?.into(), &BTreeMap::new(), &Overrides::default())?;
        for &size in &sizes {
            let mut row = time_row(&format!("{label}, tract"), [size; 2], runs, device, |x| {
                let data = x.into_data().try_to_vec::<f32>().expect("f32 input");
                let _ = net.run_raw(data, &[1, 3, size, size]).expect("the ONNX graph runs");
            });
            row.measured = ort.iter().find(|(p, s, _, _)| p == path && *s == size).map(|(_, _, v, ms)| (format!("ONNX Runtime {v}"), *ms));
            rows.push(row);
        }
    }
    if let Some(net) = native {
        for &size in &sizes {
            rows.push(time_row("TransformerNet stock (w32), native, same weights", [size; 2], runs, device, |x| {
                let _ = net.forward(x, &mut NormContext::Local).into_data();
            }));
        }
    }
    Ok(rows)
}

/// TensorFlow's median milliseconds for the CartoonGAN-light generator (paprika) at each square
/// size, from `scripts/tensorflow-bench.py` run with `$STYLEFORGE_BENCH_PYTHON` (default
/// `.tools/bench/bin/python`, which `scripts/install-bench-tools.sh` makes) and as many threads as
/// this process uses, so both sides are measured in one run: `(size, ms)`; empty, with a note, when
/// that Python or its TensorFlow is missing (the table then shows the stored reference time).
fn tensorflow_times(sizes: &[usize], runs: usize) -> Vec<(usize, f64)> {
    let python = std::env::var_os("STYLEFORGE_BENCH_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".tools/bench/bin/python"));
    let out = std::process::Command::new(&python)
        .arg("scripts/tensorflow-bench.py")
        .args(["--threads", &rayon_threads().to_string(), "--runs", &runs.to_string()])
        .arg("--sizes")
        .arg(sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","))
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("TensorFlow not timed: scripts/tensorflow-bench.py failed: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
            return Vec::new();
        }
        Err(e) => {
            eprintln!("TensorFlow not timed in this run: cannot run {} ({e}); scripts/install-bench-tools.sh installs it", python.display());
            return Vec::new();
        }
    };
    // Rows of its table: `| CartoonGAN-light (paprika) | 512² | 1070.6 |`.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split('|').map(str::trim).collect();
            match cells.as_slice() {
                [w, size, ms] if w.starts_with("CartoonGAN-light") => Some((size.trim_end_matches('²').parse().ok()?, ms.parse().ok()?)),
                _ => None,
            }
        })
        .collect()
}

/// ONNX Runtime's median milliseconds for each model and square size, from
/// `scripts/onnxruntime-bench.py` run with `$STYLEFORGE_PYTHON` (default `.tools/py/bin/python`)
/// and as many threads as this process uses: `(model, size, version, ms)`; empty, with a note,
/// when that Python or its onnxruntime is missing.
fn onnxruntime_times(models: &[(String, PathBuf)], sizes: &[usize], runs: usize) -> Vec<(PathBuf, usize, String, f64)> {
    let python = std::env::var_os("STYLEFORGE_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".tools/py/bin/python"));
    let script = PathBuf::from("scripts/onnxruntime-bench.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script).arg("--runs").arg(runs.to_string()).arg("--threads").arg(rayon_threads().to_string());
    cmd.arg("--sizes").arg(sizes.iter().map(|s| format!("{s}x{s}")).collect::<Vec<_>>().join(","));
    for (_, m) in models {
        cmd.arg("--model").arg(m);
    }
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("ONNX Runtime not timed: {} {} failed: {}", python.display(), script.display(), String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""));
            return Vec::new();
        }
        Err(e) => {
            eprintln!("ONNX Runtime not timed: cannot run {} ({e}); run scripts/install-test-tools.sh from the repository root, or set STYLEFORGE_PYTHON", python.display());
            return Vec::new();
        }
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let size = v["width"].as_u64()? as usize;
            Some((PathBuf::from(v["model"].as_str()?), size, v["onnxruntime"].as_str()?.to_string(), v["median_ms"].as_f64()?))
        })
        .collect()
}

fn default_models() -> Vec<(String, PathBuf)> {
    let candidates = [
        ("TransformerNet stock (w32)", "parity/transformer_net_stock_legacy.pth"),
        ("TransformerNet nc16 (candy)", "models/fast_style_pytorch/candy_nc16.safetensors"),
        ("TransformerNet nc8 (mosaic)", "models/fast_style_pytorch/mosaic_nc8.safetensors"),
        ("Engstrom (wave)", "models/fast_style_engstrom/wave.safetensors"),
    ];
    candidates
        .iter()
        .map(|(l, p)| (l.to_string(), shared::dir().join(p)))
        .filter(|(_, p)| p.exists())
        .collect()
}

fn resolve(names: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let lib = Library::open_default();
    names.iter().map(|n| Ok((n.clone(), lib.resolve(n)?))).collect()
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Resets the kernel's resident-set high-water mark for this process (Linux).
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory since the last reset, in MiB (Linux `VmHWM`).
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
