//! `styleforge train cyclegan|dcgan|fast-style|export` and `styleforge generate`: GAN training runs with
//! checkpoints, exact resume, a progress bar with the losses, a JSONL log and sample grids; export
//! of trained generators into the model library; sampling and latent interpolation from DCGAN
//! generators.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use styleforge_core::methods::generate;
use styleforge_core::library::{Library, ModelInfo};
use styleforge_core::networks::dcgan::DcganGenerator;
use styleforge_core::train::adam::AdamSettings;
use styleforge_core::train::cyclegan::{CycleGanSettings, CycleGanTrainer};
use styleforge_core::train::data::CropDataset;
use styleforge_core::train::dcgan::{Dataset, DcganSettings, DcganTrainer};
use styleforge_core::train::fast_style::{FastStyleTrainer, Recipe};
use styleforge_core::train::{self, RunOptions, Trainer};
use styleforge_core::weights::Weights;

use crate::stylize::cancel_on_ctrl_c;

/// What to train.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// CycleGAN from two unpaired image folders (A: e.g. photos, B: e.g. paintings).
    Cyclegan(CycleganArgs),
    /// DCGAN image generation (64×64) from one image folder.
    Dcgan(DcganArgs),
    /// A fast-style network for one style image (perceptual loss, optional adversarial term).
    FastStyle(FastStyleArgs),
    /// Export a run's generator (from its checkpoint) into the model library.
    Export(ExportArgs),
}

/// Options every run shares.
#[derive(ClapArgs, Debug)]
pub struct RunArgs {
    /// Run directory: checkpoint, losses.jsonl, samples/.
    #[arg(long)]
    dir: PathBuf,
    /// Train until this step (on --resume, defaults to the checkpoint's schedule).
    #[arg(long)]
    steps: Option<u64>,
    /// Checkpoint every N steps (and always on Ctrl-C and at the end).
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Write a sample grid every N steps.
    #[arg(long, default_value_t = 500)]
    sample_every: u64,
    /// Continue the run in --dir exactly where it stopped.
    #[arg(long)]
    resume: bool,
    /// Seed of a fresh run (initial weights, crops, noise).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Compute device: cpu, or cuda / cuda:N in CUDA builds.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// After training, add the generator to the model library under this name.
    #[arg(long)]
    export: Option<String>,
}

/// `train cyclegan`.
#[derive(ClapArgs, Debug)]
pub struct CycleganArgs {
    /// Folder of domain A images (the generator exported is A→B).
    #[arg(long)]
    a: PathBuf,
    /// Folder of domain B images.
    #[arg(long)]
    b: PathBuf,
    #[command(flatten)]
    run: RunArgs,
    /// Crop size of the training samples (multiple of 4; 128 is sensible on a CPU).
    #[arg(long, default_value_t = 256)]
    crop: u32,
    /// Images are scaled to this shorter side before random crops of side between --crop and it
    /// [default: crop × 286/256, as the reference].
    #[arg(long)]
    load_size: Option<u32>,
    /// Images per batch and domain.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Generator width.
    #[arg(long, default_value_t = 64)]
    ngf: usize,
    /// Residual blocks [default: 9 for crops of 256 and more, 6 below].
    #[arg(long)]
    blocks: Option<usize>,
    /// Discriminator width.
    #[arg(long, default_value_t = 64)]
    ndf: usize,
    /// Cycle-consistency weight λ.
    #[arg(long, default_value_t = 10.0)]
    lambda_cycle: f64,
    /// Identity weight, as a fraction of λ (0 disables the identity loss).
    #[arg(long, default_value_t = 0.5)]
    lambda_identity: f64,
    /// Pool of past fakes shown to the discriminators.
    #[arg(long, default_value_t = 50)]
    pool: usize,
    /// Initial learning rate (Adam, β1 0.5).
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Steps over which the learning rate decays to zero at the end [default: half the run].
    #[arg(long)]
    decay_steps: Option<u64>,
    /// Float64 instance-norm arithmetic in the backward pass (matches PyTorch more closely, slower).
    #[arg(long)]
    exact_norm: bool,
}

/// `train dcgan`.
#[derive(ClapArgs, Debug)]
pub struct DcganArgs {
    /// Folder of training images (centre-cropped to 64×64).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    run: RunArgs,
    /// Latent size.
    #[arg(long, default_value_t = 100)]
    nz: usize,
    /// Generator width.
    #[arg(long, default_value_t = 64)]
    ngf: usize,
    /// Discriminator width.
    #[arg(long, default_value_t = 64)]
    ndf: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate (Adam, β1 0.5).
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
}

/// `train fast-style`.
#[derive(ClapArgs, Debug)]
pub struct FastStyleArgs {
    /// The style image.
    #[arg(long)]
    style: PathBuf,
    /// Folder of content photos (random crops).
    #[arg(long)]
    content: PathBuf,
    #[command(flatten)]
    run: RunArgs,
    /// Loss network: a library model or weight file (VGG16 or VGG19 features)
    /// [default: `vgg16` from the library, else `vgg19`].
    #[arg(long)]
    loss_network: Option<String>,
    /// Network width: 32 (stock), 16 or 8 (faster).
    #[arg(long, default_value_t = 32)]
    width: usize,
    /// Content crops per batch.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Crop size of the content samples.
    #[arg(long, default_value_t = 256)]
    crop: u32,
    /// Longer side of the style image for its Gram targets.
    #[arg(long, default_value_t = 512)]
    style_size: u32,
    /// Content weight.
    #[arg(long, default_value_t = 1e5)]
    content_weight: f64,
    /// Style weight.
    #[arg(long, default_value_t = 1e10)]
    style_weight: f64,
    /// Total-variation weight.
    #[arg(long, default_value_t = 0.0)]
    tv_weight: f64,
    /// Adversarial weight: a PatchGAN learns style-image patches from outputs (0: off).
    #[arg(long, default_value_t = 0.0)]
    adv_weight: f64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Photo shown in the preview grids [default: the first content photo].
    #[arg(long)]
    preview: Option<PathBuf>,
}

/// `train export`.
#[derive(ClapArgs, Debug)]
pub struct ExportArgs {
    /// Run directory holding a checkpoint.
    dir: PathBuf,
    /// Library name for the model.
    #[arg(long)]
    name: String,
    /// For CycleGAN runs, export the B→A generator instead of A→B.
    #[arg(long)]
    reverse: bool,
    /// Title shown in the gallery.
    #[arg(long)]
    title: Option<String>,
    /// Comma-separated keywords.
    #[arg(long, default_value = "")]
    tags: String,
    /// Replace a model of the same name.
    #[arg(long)]
    overwrite: bool,
}

/// Runs a `train` subcommand.
pub fn run(c: Command) -> Result<()> {
    match c {
        Command::Cyclegan(a) => cyclegan(a),
        Command::Dcgan(a) => dcgan(a),
        Command::FastStyle(a) => fast_style(a),
        Command::Export(a) => {
            let info = export(&a.dir, &a.name, a.reverse, a.title, &a.tags, a.overwrite)?;
            println!("exported {} ({}) into {}", info.name, info.method, Library::open_default().home().display());
            Ok(())
        }
    }
}

/// The schedule's total from an existing checkpoint (for --resume without --steps).
fn checkpoint_total(dir: &Path) -> Result<u64> {
    let ck = train::load_checkpoint(dir)?;
    let s = &ck.trainer["settings"]["total_steps"];
    Ok(s.as_u64().unwrap_or(ck.step))
}

fn cyclegan(a: CycleganArgs) -> Result<()> {
    let device = styleforge_core::device::parse(&a.run.device)?;
    let steps = match (a.run.steps, a.run.resume) {
        (Some(s), _) => s,
        (None, true) => checkpoint_total(&a.run.dir)?,
        (None, false) => bail!("--steps is required for a new run"),
    };
    let load = a.load_size.unwrap_or((a.crop as f64 * 286.0 / 256.0).round() as u32);
    let data_a = CropDataset::from_folder(&a.a, load, a.crop).with_context(|| format!("domain A ({})", a.a.display()))?;
    let data_b = CropDataset::from_folder(&a.b, load, a.crop).with_context(|| format!("domain B ({})", a.b.display()))?;
    let settings = CycleGanSettings {
        ngf: a.ngf,
        n_blocks: a.blocks.unwrap_or(if a.crop >= 256 { 9 } else { 6 }),
        ndf: a.ndf,
        n_layers_d: 3,
        batch: a.batch,
        lambda_cycle: a.lambda_cycle,
        lambda_identity: a.lambda_identity,
        pool_size: a.pool,
        decay_steps: a.decay_steps.unwrap_or(steps / 2),
        total_steps: steps,
        adam: AdamSettings { lr: a.lr, ..AdamSettings::gan() },
        exact_norm: a.exact_norm,
    };
    eprintln!(
        "cyclegan: {} A and {} B images, crops {} from {}, {settings:?}",
        data_a.len(),
        data_b.len(),
        a.crop,
        load
    );
    let mut trainer = CycleGanTrainer::new(settings, data_a, data_b, &device, a.run.seed)?;
    let domains = format!(
        "{} -> {}",
        a.a.file_name().and_then(|s| s.to_str()).unwrap_or("A"),
        a.b.file_name().and_then(|s| s.to_str()).unwrap_or("B")
    );
    drive(&mut trainer, &a.run, steps)?;
    if let Some(name) = &a.run.export {
        let info = export(&a.run.dir, name, false, Some(format!("CycleGAN {domains}")), "cyclegan,gan", true)?;
        eprintln!("exported the A->B generator as `{}`", info.name);
    }
    Ok(())
}

fn dcgan(a: DcganArgs) -> Result<()> {
    let device = styleforge_core::device::parse(&a.run.device)?;
    let steps = match (a.run.steps, a.run.resume) {
        (Some(s), _) => s,
        (None, true) => train::load_checkpoint(&a.run.dir)?.step.max(1),
        (None, false) => bail!("--steps is required for a new run"),
    };
    let data = Dataset::from_folder(&a.data).with_context(|| format!("training images ({})", a.data.display()))?;
    let settings = DcganSettings {
        nz: a.nz,
        ngf: a.ngf,
        ndf: a.ndf,
        batch: a.batch,
        adam: AdamSettings { lr: a.lr, ..AdamSettings::gan() },
    };
    eprintln!("dcgan: {} images, {settings:?}", data.len());
    let mut trainer = DcganTrainer::new(settings, data, &device, a.run.seed)?;
    drive(&mut trainer, &a.run, steps)?;
    if let Some(name) = &a.run.export {
        let info = export(&a.run.dir, name, false, Some(format!("DCGAN ({name})")), "dcgan,gan", true)?;
        eprintln!("exported the generator as `{}`", info.name);
    }
    Ok(())
}

fn fast_style(a: FastStyleArgs) -> Result<()> {
    let device = styleforge_core::device::parse(&a.run.device)?;
    let steps = match (a.run.steps, a.run.resume) {
        (Some(s), _) => s,
        (None, true) => train::load_checkpoint(&a.run.dir)?.step.max(1),
        (None, false) => bail!("--steps is required for a new run"),
    };
    let lib = Library::open_default();
    let vgg_path = match &a.loss_network {
        Some(n) => lib.resolve(n)?,
        None => lib.resolve("vgg16").or_else(|_| lib.resolve("vgg19")).context(
            "no loss network: `styleforge models download vgg16` (or vgg19), or pass --loss-network FILE",
        )?,
    };
    let vgg_weights = Weights::load(&vgg_path)?;
    let style = styleforge_core::image_io::read(&a.style, styleforge_core::image_io::DEFAULT_MAX_PIXELS)
        .with_context(|| format!("style image {}", a.style.display()))?;
    let recipe = Recipe {
        loss_network: &vgg_weights,
        style: &style,
        style_size: a.style_size,
        content_dir: &a.content,
        crop: a.crop,
        preview: a.preview.as_deref(),
        max_pixels: styleforge_core::image_io::DEFAULT_MAX_PIXELS,
    };
    let style_sha256 = styleforge_core::library::sha256_file(&a.style)?;
    let (mut trainer, _) = FastStyleTrainer::from_recipe(
        &recipe,
        |s| {
            s.width = a.width;
            s.batch = a.batch;
            s.content_weight = a.content_weight;
            s.style_weight = a.style_weight;
            s.tv_weight = a.tv_weight;
            s.adv_weight = a.adv_weight;
            s.adam.lr = a.lr;
            s.style_sha256 = style_sha256;
        },
        &device,
        a.run.seed,
    )
    .with_context(|| format!("setting up the run (content photos in {})", a.content.display()))?;
    eprintln!("fast-style: loss network {}, {:?}", vgg_path.display(), trainer.settings());
    drive(&mut trainer, &a.run, steps)?;
    if let Some(name) = &a.run.export {
        let stem = a.style.file_stem().and_then(|s| s.to_str()).unwrap_or("style");
        let info = export(&a.run.dir, name, false, Some(stem.replace(['_', '-'], " ")), "fast,trained", true)?;
        eprintln!("exported the network as `{}` (method fast)", info.name);
    }
    Ok(())
}

/// Runs the training loop with a progress bar and Ctrl-C checkpointing.
fn drive(trainer: &mut dyn Trainer, r: &RunArgs, steps: u64) -> Result<()> {
    let opts = RunOptions {
        dir: r.dir.clone(),
        steps,
        checkpoint_every: r.checkpoint_every,
        sample_every: r.sample_every,
        resume: r.resume,
        seed: r.seed,
    };
    let stop = cancel_on_ctrl_c();
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} eta {eta} {msg}").expect("template"),
    );
    let summary = train::run(trainer, &opts, Some(&stop), &mut |p| {
        bar.set_position(p.step);
        let losses: Vec<String> = p
            .losses
            .iter()
            .filter(|(k, _)| k != "lr")
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        bar.set_message(format!("{:.2} s/step {}", p.seconds, losses.join(" ")));
        if bar.is_hidden() && (p.checkpointed || p.step.is_multiple_of(50)) {
            eprintln!("step {}/{} {:.2} s/step {}", p.step, p.total, p.seconds, losses.join(" "));
        }
    })?;
    bar.finish_and_clear();
    let how = if summary.stopped { "stopped (checkpoint written; continue with --resume)" } else { "done" };
    eprintln!(
        "{} at step {} (from {}), {:.3} s/step; log {}, samples {}",
        how,
        summary.end_step,
        summary.start_step,
        summary.seconds_per_step,
        train::log_path(&r.dir).display(),
        r.dir.join("samples").display()
    );
    stop.store(false, Ordering::SeqCst);
    Ok(())
}

/// Adds the generator of the checkpoint in `dir` to the library ([`train::export`]).
fn export(dir: &Path, name: &str, reverse: bool, title: Option<String>, tags: &str, overwrite: bool) -> Result<ModelInfo> {
    let info = ModelInfo {
        name: name.to_string(),
        title: title.unwrap_or_else(|| name.to_string()),
        tags: tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect(),
        license: "trained by the user of this installation".into(),
        ..Default::default()
    };
    Ok(train::export(dir, info, reverse, &Library::open_default(), overwrite)?)
}

/// `styleforge generate`.
#[derive(ClapArgs, Debug)]
pub struct GenerateArgs {
    /// DCGAN generator: a library name or a weight file.
    #[arg(long)]
    model: String,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Seed of the latents.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Instead of independent samples, a strip interpolating between two random latents.
    #[arg(long)]
    interpolate: bool,
    /// Output grid image (PNG, JPEG or WebP).
    #[arg(short, long)]
    output: PathBuf,
    /// Compute device: cpu, or cuda / cuda:N in CUDA builds.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Samples (or an interpolation strip) from a DCGAN generator, as one grid image.
pub fn generate(a: GenerateArgs) -> Result<()> {
    let device = styleforge_core::device::parse(&a.device)?;
    let path = Library::open_default().resolve(&a.model)?;
    let g = DcganGenerator::load(&Weights::load(&path)?, &device)?;
    generate::grid(&g, a.n, a.seed, a.interpolate, &device)?.save(&a.output)?;
    eprintln!("wrote {} ({} images)", a.output.display(), a.n);
    Ok(())
}
