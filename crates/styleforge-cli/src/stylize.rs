//! `styleforge stylize`: inputs (files or folders) to outputs with a fast-style model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use styleforge_core::fast_style::{FastStyleNet, StylizeOptions};
use styleforge_core::image_io::{self, Format};
use styleforge_core::library::Library;

/// Options of `styleforge stylize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input images (JPEG, PNG, WebP) or folders of them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output file (one input) or folder (several inputs or a folder).
    #[arg(short, long)]
    output: PathBuf,
    /// Model: a library name (see `styleforge models list`) or a .safetensors/.pth file.
    #[arg(short, long)]
    model: String,
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
    let library = Library::open_default();
    let model_path = library.resolve(&a.model)?;
    let net = FastStyleNet::load(&model_path, &device).with_context(|| format!("loading {}", model_path.display()))?;
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
        return one(&net, input, output, &a, &device);
    }
    let mut failed = 0;
    for (input, output) in &jobs {
        bar.set_message(input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let out = output.clone().unwrap_or_else(|| a.output.join(out_name(input, format_for_dir)));
        if let Err(e) = one(&net, input, &out, &a, &device) {
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

fn one(net: &FastStyleNet, input: &Path, out: &Path, a: &Args, device: &burn::tensor::Device) -> Result<()> {
    let pic = image_io::read(input, a.max_pixels)?;
    let tile = match a.tile {
        Some(0) => None,
        Some(t) => Some(t),
        None => ((pic.width as u64 * pic.height as u64) > AUTO_TILE_PIXELS).then_some(AUTO_TILE),
    };
    let opts = StylizeOptions {
        strength: a.strength,
        preserve_color: a.preserve_color,
        max_size: a.max_size,
        tile,
        ..Default::default()
    };
    let result = net.stylize(&pic, &opts, device)?;
    result.save(out)?;
    Ok(())
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
