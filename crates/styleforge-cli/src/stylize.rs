//! `styleforge stylize`: inputs (files or folders) to outputs with any method: fast, adain, gatys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use burn::tensor::Device;
use styleforge_core::adain;
use styleforge_core::cyclegan::{CycleGan, CycleGanOptions};
use styleforge_core::fast_style::{FastStyleNet, StylizeOptions};
use styleforge_core::gatys;
use styleforge_core::image_io::{self, Format, Picture};
use styleforge_core::library::Library;
use styleforge_core::networks::vgg::Vgg;
use styleforge_core::weights::Weights;

/// Options of `styleforge stylize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input images (JPEG, PNG, WebP) or folders of them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output file (one input) or folder (several inputs or a folder).
    #[arg(short, long)]
    output: PathBuf,
    /// Method: fast (a per-style network), adain (any style image, one pass), gatys
    /// (optimisation, slow, highest quality) or cyclegan (a GAN generator, photo to painting).
    #[arg(long, default_value = "fast", value_parser = ["fast", "adain", "gatys", "cyclegan"])]
    method: String,
    /// Model: a library name (see `styleforge models list`) or a .safetensors/.pth file.
    /// fast, cyclegan: the network (required); adain: default `adain`; gatys: default `vgg19`.
    #[arg(short, long)]
    model: Option<String>,
    /// Style image with an optional blend weight (adain, gatys): `--style starry.jpg:0.7`.
    #[arg(long, value_name = "IMAGE[:WEIGHT]")]
    style: Vec<String>,
    /// AdaIN: write the (blended) style statistics to this file (.json or .safetensors) and
    /// exit; pass that file as `--style` later to skip encoding the style images.
    #[arg(long, value_name = "FILE")]
    save_style_stats: Option<PathBuf>,
    /// AdaIN: feature-space strength 0..1 (1: full style).
    #[arg(long, default_value_t = 1.0)]
    alpha: f32,
    /// AdaIN / Gatys: match the style images' colours to the content before transfer.
    #[arg(long)]
    color_match: bool,
    /// AdaIN: mask image (white: styled with --style; black: --mask-style, or unstyled).
    #[arg(long, value_name = "MASK.png")]
    mask: Option<PathBuf>,
    /// AdaIN: style for the mask's black region (IMAGE[:WEIGHT], repeatable).
    #[arg(long, value_name = "IMAGE[:WEIGHT]")]
    mask_style: Vec<String>,
    /// Gatys: iterations at each size.
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    /// Gatys: output size (long side); alias of --max-size for this method.
    #[arg(long, value_name = "N")]
    size: Option<u32>,
    /// Gatys: number of sizes, coarse to fine (each twice the previous).
    #[arg(long, default_value_t = 1)]
    scales: usize,
    /// Gatys: optimiser.
    #[arg(long, default_value = "lbfgs", value_parser = ["lbfgs", "adam"])]
    optimizer: String,
    /// Gatys: weight of the content loss.
    #[arg(long)]
    content_weight: Option<f32>,
    /// Gatys: weight of the style loss.
    #[arg(long)]
    style_weight: Option<f32>,
    /// Gatys: weight of the total-variation loss.
    #[arg(long)]
    tv_weight: Option<f32>,
    /// Gatys: starting image.
    #[arg(long, default_value = "content", value_parser = ["content", "style", "noise"])]
    init: String,
    /// Gatys: seed for --init noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Gatys: save the current image every N iterations next to the output (`NAME.iterK.png`).
    #[arg(long, value_name = "N")]
    preview_every: Option<usize>,
    /// Style strength, 0 (content) to 1 (full style).
    #[arg(long, default_value_t = 1.0)]
    strength: f32,
    /// Keep the content's colours; transfer luminance only.
    #[arg(long)]
    preserve_color: bool,
    /// Scale inputs down so the longer side is at most N pixels.
    #[arg(long, value_name = "N")]
    max_size: Option<u32>,
    /// Tile size for large images (memory bounded by the tile); `0` never tiles.
    /// Default: tiles of 1024 for images over 4 megapixels.
    #[arg(long, value_name = "N")]
    tile: Option<u32>,
    /// Output format for folder outputs (png, jpg, webp).
    #[arg(long, default_value = "png")]
    format: String,
    /// Compute device: cpu, or cuda / cuda:N in CUDA builds.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Refuse images with more pixels than this (checked before decoding).
    #[arg(long, default_value_t = image_io::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
}

const AUTO_TILE_PIXELS: u64 = 4_000_000;
const AUTO_TILE: u32 = 1024;

/// Runs the command.
pub fn run(a: Args) -> Result<()> {
    let device = styleforge_core::device::parse(&a.device)?;
    let engine = Engine::load(&a, &device)?;
    if let Some(path) = &a.save_style_stats {
        let Engine::Adain { model, styles, .. } = &engine else {
            bail!("--save-style-stats applies to --method adain");
        };
        let parts = styles
            .iter()
            .map(|(s, w)| {
                let stats = match s {
                    adain::Style::Stats(st) => st.clone(),
                    adain::Style::Picture(p) => model.style_stats(p, Some(512), &device)?,
                };
                Ok((stats, *w))
            })
            .collect::<Result<Vec<_>>>()?;
        adain::StyleStats::mix(&parts)?.save(path)?;
        println!("saved style statistics to {}", path.display());
        return Ok(());
    }
    let jobs = plan(&a)?;
    let format_for_dir = Format::from_name(&a.format).with_context(|| format!("unknown format `{}`", a.format))?;
    let bar = if jobs.len() > 1 {
        let b = ProgressBar::new(jobs.len() as u64);
        b.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} eta {eta} {msg}").expect("template"));
        b
    } else {
        ProgressBar::hidden()
    };
    if let [(input, Some(output))] = jobs.as_slice() {
        return one(&engine, input, output, &a, &device);
    }
    let mut failed = 0;
    for (input, output) in &jobs {
        bar.set_message(input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let out = output.clone().unwrap_or_else(|| a.output.join(out_name(input, format_for_dir)));
        if let Err(e) = one(&engine, input, &out, &a, &device) {
            failed += 1;
            bar.suspend(|| eprintln!("error: {e:#}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failed > 0 {
        bail!("{failed} of {} images failed", jobs.len());
    }
    Ok(())
}

fn one(engine: &Engine, input: &Path, out: &Path, a: &Args, device: &Device) -> Result<()> {
    let pic = image_io::read(input, a.max_pixels)?;
    let tile = match a.tile {
        Some(0) => None,
        Some(t) => Some(t),
        None => ((pic.width as u64 * pic.height as u64) > AUTO_TILE_PIXELS).then_some(AUTO_TILE),
    };
    let result = match engine {
        Engine::Fast(net) => {
            let opts = StylizeOptions {
                strength: a.strength,
                preserve_color: a.preserve_color,
                max_size: a.max_size,
                tile,
                ..Default::default()
            };
            net.stylize(&pic, &opts, device)?
        }
        Engine::Adain { model, styles, mask_styles } => {
            let mask = match &a.mask {
                Some(p) => Some(adain::Mask::from_picture(&image_io::read(p, a.max_pixels)?, mask_styles.clone())),
                None => None,
            };
            let opts = adain::AdainOptions {
                alpha: a.alpha * a.strength,
                preserve_color: match (a.color_match, a.preserve_color) {
                    (true, _) => adain::PreserveColor::Coral,
                    (false, true) => adain::PreserveColor::Luminance,
                    (false, false) => adain::PreserveColor::Off,
                },
                mask,
                max_size: a.max_size,
                tile,
                ..Default::default()
            };
            model.stylize(&pic, styles, &opts, device)?
        }
        Engine::Gatys { vgg, styles } => gatys_one(vgg, styles, &pic, out, a, device)?,
        Engine::CycleGan(gan) => {
            let opts = CycleGanOptions { max_size: a.max_size, tile, strength: a.strength, preserve_color: a.preserve_color };
            gan.stylize(&pic, &opts, device)?
        }
    };
    result.save(out)?;
    Ok(())
}

fn gatys_one(vgg: &Vgg, styles: &[(Picture, f32)], pic: &Picture, out: &Path, a: &Args, device: &Device) -> Result<Picture> {
    let mut loss = gatys::LossConfig::default();
    if let Some(w) = a.content_weight {
        loss.content_weight = w;
    }
    if let Some(w) = a.style_weight {
        loss.style_weight = w;
    }
    if let Some(w) = a.tv_weight {
        loss.tv_weight = w;
    }
    let opts = gatys::GatysOptions {
        max_size: a.size.or(a.max_size),
        scales: a.scales,
        iterations: a.iterations,
        optimizer: match a.optimizer.as_str() {
            "adam" => gatys::Optimizer::Adam { learning_rate: 0.02 },
            _ => gatys::Optimizer::default(),
        },
        init: match a.init.as_str() {
            "style" => gatys::Init::Style,
            "noise" => gatys::Init::Noise { seed: a.seed },
            _ => gatys::Init::Content,
        },
        loss,
        match_style_colors: a.color_match,
        preserve_color: a.preserve_color,
        strength: a.strength,
        preview_every: a.preview_every,
        cancel: Some(cancel_on_ctrl_c()),
        ..Default::default()
    };
    let total = (a.iterations * a.scales.max(1)) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} size {msg} {elapsed_precise} eta {eta}").expect("template"),
    );
    let outcome = gatys::run(pic, styles, &opts, vgg, device, &mut |p| {
        bar.set_position((p.scale * p.iterations + p.iteration) as u64);
        bar.set_message(format!(
            "{}x{} loss {:.4e} (content {:.3e} style {:.3e} tv {:.3e})",
            p.width, p.height, p.losses.total, p.losses.content, p.losses.style, p.losses.tv
        ));
        if let Some(img) = p.image {
            let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
            let path = out.with_file_name(format!("{stem}.scale{}.iter{}.png", p.scale, p.iteration));
            if let Err(e) = img.save(&path) {
                bar.suspend(|| eprintln!("warning: preview {}: {e}", path.display()));
            }
        }
        true
    })?;
    bar.finish_and_clear();
    if outcome.cancelled {
        eprintln!("gatys: interrupted; writing the image reached so far");
    }
    eprintln!(
        "gatys: {} iterations, {} evaluations, final loss {:.4e}, {:.1} s",
        outcome.iterations,
        outcome.evaluations,
        outcome.losses.total,
        outcome.elapsed.as_secs_f64()
    );
    Ok(outcome.picture)
}

/// A flag that Ctrl-C sets (once per process), so an optimisation stops and keeps its result.
pub(crate) fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        if let Err(e) = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst)) {
            tracing::warn!("Ctrl-C handler not installed: {e}");
        }
        flag
    })
    .clone()
}

/// The loaded network for the chosen method, and its style inputs.
enum Engine {
    Fast(FastStyleNet),
    Adain { model: adain::AdainModel, styles: Vec<(adain::Style, f32)>, mask_styles: Vec<(adain::Style, f32)> },
    Gatys { vgg: Vgg, styles: Vec<(Picture, f32)> },
    CycleGan(CycleGan),
}

impl Engine {
    fn load(a: &Args, device: &Device) -> Result<Self> {
        let library = Library::open_default();
        let model = |default: Option<&str>| -> Result<PathBuf> {
            match a.model.as_deref().or(default) {
                Some(m) => Ok(library.resolve(m)?),
                None => bail!("--model is required for --method {}", a.method),
            }
        };
        if a.method != "adain" && (a.mask.is_some() || !a.mask_style.is_empty()) {
            bail!("--mask and --mask-style apply to --method adain");
        }
        Ok(match a.method.as_str() {
            "cyclegan" => {
                if !a.style.is_empty() {
                    bail!("--style applies to --method adain or gatys; a CycleGAN style is its generator (--model)");
                }
                let path = model(None)?;
                Engine::CycleGan(CycleGan::load(&path, device).with_context(|| format!("loading {}", path.display()))?)
            }
            "fast" => {
                if !a.style.is_empty() {
                    bail!("--style applies to --method adain or gatys; fast styles are models (--model)");
                }
                let path = model(None)?;
                Engine::Fast(FastStyleNet::load(&path, device).with_context(|| format!("loading {}", path.display()))?)
            }
            "adain" => {
                let path = model(Some("adain"))?;
                let w = Weights::load(&path)?;
                let model = styleforge_core::model::load_adain(&w, device)
                    .with_context(|| format!("loading {}", path.display()))?;
                let styles = adain_styles(&a.style, a.max_pixels)?;
                if styles.is_empty() {
                    bail!("--method adain needs at least one --style IMAGE or statistics file");
                }
                let mask_styles = adain_styles(&a.mask_style, a.max_pixels)?;
                if !mask_styles.is_empty() && a.mask.is_none() {
                    bail!("--mask-style needs --mask");
                }
                Engine::Adain { model, styles, mask_styles }
            }
            _ => {
                let path = model(Some("vgg19"))?;
                let vgg = Vgg::load(&path, device).with_context(|| format!("loading {}", path.display()))?;
                let styles = style_images(&a.style, a.max_pixels)?;
                if styles.is_empty() {
                    bail!("--method gatys needs at least one --style IMAGE");
                }
                Engine::Gatys { vgg, styles }
            }
        })
    }
}

/// Splits `PATH[:WEIGHT]`.
fn style_arg(arg: &str) -> Result<(&Path, f32)> {
    let (path, weight) = match arg.rsplit_once(':') {
        Some((p, w)) if !p.is_empty() && w.parse::<f32>().is_ok() => (p, w.parse::<f32>()?),
        _ => (arg, 1.0),
    };
    if !(weight.is_finite() && weight >= 0.0) {
        bail!("style weight must be a non-negative number: {arg}");
    }
    Ok((Path::new(path), weight))
}

/// Reads `IMAGE[:WEIGHT]` style images.
fn style_images(args: &[String], max_pixels: u64) -> Result<Vec<(Picture, f32)>> {
    args.iter()
        .map(|arg| {
            let (path, weight) = style_arg(arg)?;
            Ok((image_io::read(path, max_pixels)?, weight))
        })
        .collect()
}

/// Reads AdaIN styles: images, or statistics files (`.json`, `.safetensors`) saved earlier.
fn adain_styles(args: &[String], max_pixels: u64) -> Result<Vec<(adain::Style, f32)>> {
    args.iter()
        .map(|arg| {
            let (path, weight) = style_arg(arg)?;
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            let style = if ext == "json" || ext == "safetensors" {
                adain::Style::Stats(adain::StyleStats::load(path)?)
            } else {
                adain::Style::Picture(image_io::read(path, max_pixels)?)
            };
            Ok((style, weight))
        })
        .collect()
}

/// Pairs each input image with its output file (`None`: inside the output folder).
fn plan(a: &Args) -> Result<Vec<(PathBuf, Option<PathBuf>)>> {
    let mut files = Vec::new();
    let mut saw_dir = false;
    for input in &a.inputs {
        if input.is_dir() {
            saw_dir = true;
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image_name(p))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("{}: no .jpg, .png or .webp files", input.display());
            }
            files.extend(found);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            bail!("{}: no such file or folder", input.display());
        }
    }
    if files.len() == 1 && !saw_dir && !a.output.is_dir() {
        Format::from_path(&a.output)?;
        return Ok(vec![(files.remove(0), Some(a.output.clone()))]);
    }
    std::fs::create_dir_all(&a.output).with_context(|| format!("creating {}", a.output.display()))?;
    Ok(files.into_iter().map(|f| (f, None)).collect())
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| Format::from_name(e).is_some())
}

fn out_name(input: &Path, format: Format) -> String {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let ext = match format {
        Format::Jpeg => "jpg",
        Format::Png => "png",
        Format::WebP => "webp",
    };
    format!("{stem}.{ext}")
}
