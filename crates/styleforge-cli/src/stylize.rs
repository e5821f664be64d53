//! `styleforge stylize`: inputs (files or folders) to outputs with any method of the registry
//! (`styleforge_core::methods`), its flags built from the registry's options.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use styleforge_core::animation::{self, AnimationFormat, AnimationInfo};
use styleforge_core::image_io::{self, Format, Picture};
use styleforge_core::library::{Library, Loaded, builtin, kind};
use styleforge_core::methods::{self, Control, Execution, Input, Method, MethodInfo, OptionKind, Params, StyleSource, adain};
use styleforge_core::video;
use styleforge_core::weights::Weights;

/// Options of `styleforge stylize`: the inputs, the method and its model and styles, and the
/// method options from the registry ([`MethodOptions`]).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input images (JPEG, PNG, WebP; animated GIF, PNG and WebP frame by frame) or folders of them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output file (one input) or folder (several inputs or a folder).
    #[arg(short, long)]
    output: PathBuf,
    #[arg(long, value_parser = methods::names(), help = method_help())]
    method: Option<String>,
    /// Model: a library name (see `styleforge models list`) or a .safetensors/.pth file.
    /// Methods whose style is the model (fast, cyclegan) need one; the others have a default
    /// (microast: the built-in `microast`; adain: `adain`; gatys: `vgg19`).
    #[arg(short, long)]
    model: Option<String>,
    /// Style with an optional blend weight (microast, adain, gatys): an image file or a built-in
    /// painting (`styleforge models list` shows them), e.g. `--style starry-night:0.7`.
    #[arg(long, value_name = "IMAGE[:WEIGHT]")]
    style: Vec<String>,
    /// AdaIN: write the (blended) style statistics to this file (.json or .safetensors) and
    /// exit; pass that file as `--style` later to skip encoding the style images.
    #[arg(long, value_name = "FILE")]
    save_style_stats: Option<PathBuf>,
    /// Mask image (adain; white: styled with --style; black: --mask-style, or unstyled).
    #[arg(long, value_name = "MASK.png")]
    mask: Option<PathBuf>,
    /// Style for the mask's black region (IMAGE[:WEIGHT], repeatable).
    #[arg(long, value_name = "IMAGE[:WEIGHT]")]
    mask_style: Vec<String>,
    #[command(flatten)]
    options: MethodOptions,
    /// Output format for folder outputs (png, jpg, webp).
    #[arg(long, default_value = "png")]
    format: String,
    /// Compute device: cpu, or cuda / cuda:N in CUDA builds.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Refuse images with more pixels than this (checked before decoding).
    #[arg(long, default_value_t = image_io::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Refuse animations with more frames than this.
    #[arg(long, default_value_t = animation::Limits::default().max_frames)]
    max_frames: u32,
    /// Animations: how much each stylised frame follows the previous one where the input only
    /// moved (optical flow), 0..1; 0 stylises every frame on its own (they flicker).
    #[arg(long, default_value_t = styleforge_core::temporal::ConsistencySettings::default().weight)]
    temporal_weight: f32,
}

/// Refuses, before any model is loaded, a video or animation input for a method that optimises
/// one image at a time (`--method gatys`): those run on the feed-forward methods.
fn refuse_sequences_for_optimisation(a: &Args) -> Result<()> {
    let Some(method) = a.method.as_deref().and_then(|m| methods::get(m).ok()) else { return Ok(()) };
    if method.info().execution != Execution::Job {
        return Ok(());
    }
    for input in a.inputs.iter().filter(|p| p.is_file()) {
        let small = std::fs::metadata(input).is_ok_and(|m| m.len() < 64 << 20);
        let animated = small && std::fs::read(input).ok().is_some_and(|b| matches!(animation::probe(&b), Ok(Some(_))));
        if animated || is_video(input)? {
            let feed_forward: Vec<&str> = methods::all().filter(|m| m.info().execution != Execution::Job).map(|m| m.info().name).collect();
            bail!(
                "{}: --method {} optimises one image at a time; animations and videos use {}",
                input.display(),
                method.info().name,
                feed_forward.join(", ")
            );
        }
    }
    Ok(())
}

/// Whether `path` is a video file: its first bytes name a video container, or (for a file too
/// short to tell) its extension is a video one.
fn is_video(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path).map_err(|e| styleforge_core::error::Error::io(path, e))?;
    let n = f.read(&mut head).map_err(|e| styleforge_core::error::Error::io(path, e))?;
    Ok(video::sniff(&head[..n]) || (n < 12 && video::is_video_name(path)))
}

/// The methods, one line each with the model kinds they run and where their style comes from
/// (the `--help` epilogue).
pub fn methods_overview() -> String {
    let mut out = String::from("Methods:\n");
    for m in methods::all() {
        let i = m.info();
        let style = match i.style {
            StyleSource::Model => "style: the model (--model)".to_string(),
            StyleSource::Images { max } => format!("style: up to {max} --style images; model default `{}`", i.default_model.unwrap_or("-")),
        };
        out.push_str(&format!("  {:<9} {}: {} ({style})\n", i.name, i.title, i.summary));
    }
    out
}

/// The `--method` help: every registered method with its summary.
fn method_help() -> String {
    let list: Vec<String> = methods::all()
        .map(|m| {
            let i = m.info();
            format!("{} ({}: {})", i.name, i.title, i.summary.trim_end_matches('.'))
        })
        .collect();
    format!("Method: {}", list.join("; "))
}

/// The method options of the registry ([`methods::OPTIONS`]) as flags (`--max-size` for
/// `max_size`), each with the methods that read it; values are checked by [`Params`].
#[derive(Debug, Clone, Default)]
pub struct MethodOptions {
    given: Vec<(&'static str, String)>,
}

impl MethodOptions {
    /// The flags given, as checked parameters.
    fn params(&self) -> Result<Params> {
        let mut p = Params::new();
        for (name, text) in &self.given {
            p.set_text(name, text).map_err(|e| anyhow::anyhow!("{}: {e}", flag(name)))?;
        }
        Ok(p)
    }
}

fn flag(name: &str) -> String {
    methods::option(name).map(|o| o.flag()).unwrap_or_else(|| name.to_string())
}

impl clap::FromArgMatches for MethodOptions {
    fn from_arg_matches(m: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        let mut out = Self::default();
        out.update_from_arg_matches(m)?;
        Ok(out)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> std::result::Result<(), clap::Error> {
        for o in methods::OPTIONS.iter() {
            match o.kind {
                OptionKind::Flag => {
                    if m.get_flag(o.name) {
                        self.given.push((o.name, "true".into()));
                    }
                }
                _ => {
                    if let Some(v) = m.get_one::<String>(o.name) {
                        self.given.push((o.name, v.clone()));
                    }
                }
            }
        }
        Ok(())
    }
}

impl clap::Args for MethodOptions {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.args(methods::OPTIONS.iter().map(|o| {
            let readers = o.methods().join(", ");
            let arg = clap::Arg::new(o.name).long(o.name.replace('_', "-"));
            let arg = if o.name == "max_size" { arg.visible_alias("size") } else { arg };
            match o.kind {
                OptionKind::Flag => arg.action(clap::ArgAction::SetTrue).help(format!("{} [{readers}]", o.description)),
                OptionKind::Number { default, .. } => {
                    arg.value_name("X").help(format!("{} [{readers}; default {default}]", o.description))
                }
                OptionKind::Integer { default, .. } => arg.value_name("N").help(match default {
                    Some(d) => format!("{} [{readers}; default {d}]", o.description),
                    None => format!("{} [{readers}]", o.description),
                }),
                OptionKind::Choice { values, default } => arg
                    .value_name("WORD")
                    .value_parser(clap::builder::PossibleValuesParser::new(values.iter().copied()))
                    .help(format!("{} [{readers}; default {default}]", o.description)),
            }
        }))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Runs the command.
pub fn run(a: Args) -> Result<()> {
    let device = styleforge_core::device::parse(&a.device)?;
    refuse_sequences_for_optimisation(&a)?;
    let engine = Engine::load(&a, &device)?;
    if let Some(path) = &a.save_style_stats {
        let Loaded::Adain(model) = &engine.model else {
            bail!("--save-style-stats applies to --method adain");
        };
        let parts = engine
            .styles
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
    if !(0.0..=1.0).contains(&a.temporal_weight) {
        bail!("--temporal-weight is a weight from 0 to 1, got {}", a.temporal_weight);
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
        return engine.one(input, output, &a, &device);
    }
    let outputs = out_paths(&jobs, &a.output, format_for_dir);
    for (input, out) in jobs.iter().map(|(i, _)| i).zip(&outputs) {
        if out.file_name().and_then(|n| n.to_str()) != Some(out_name(input, format_for_dir).as_str()) {
            let plain = a.output.join(out_name(input, format_for_dir));
            let why = if jobs.iter().any(|(i, _)| same_file(i, &plain)) {
                "would overwrite an input"
            } else {
                "would have the same name as another input's"
            };
            eprintln!(
                "note: the output for {} {why} ({}); writing {}",
                input.display(),
                plain.display(),
                out.display()
            );
        }
    }
    let mut failed = 0;
    for (input, out) in jobs.iter().map(|(i, _)| i).zip(&outputs) {
        bar.set_message(input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if let Err(e) = engine.one(input, out, &a, &device) {
            failed += 1;
            bar.suspend(|| eprintln!("error: {}", format!("{e:#}").trim_end()));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failed > 0 {
        bail!("{failed} of {} images failed", jobs.len());
    }
    Ok(())
}

/// A flag that Ctrl-C (and SIGTERM, SIGHUP) sets, once per process: an optimisation stops and
/// keeps its result, an animation or a video stops between frames and writes nothing.
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

/// The chosen method with its loaded model, checked options and style inputs.
struct Engine {
    method: &'static dyn Method,
    model: Loaded,
    params: Params,
    styles: Vec<(adain::Style, f32)>,
    mask: Option<Picture>,
    mask_styles: Vec<(adain::Style, f32)>,
}

impl Engine {
    fn load(a: &Args, device: &Device) -> Result<Self> {
        let lib = Library::open_default();
        let (method, weights) = choose_method(a, &lib)?;
        let info = method.info();
        let params = a.options.params()?;
        methods::validate(method, &params, &|o| o.flag())?;
        match info.style {
            StyleSource::Model if !a.style.is_empty() => bail!(
                "--style applies to --method {}; {} styles are models (--model)",
                methods::image_style_methods(),
                info.name
            ),
            StyleSource::Images { .. } if a.style.is_empty() => {
                bail!("--method {} needs at least one --style IMAGE (or AdaIN statistics file)", info.name)
            }
            StyleSource::Images { max } if a.style.len() > max || a.mask_style.len() > max => {
                bail!("--method {} blends at most {max} styles (--style, --mask-style)", info.name)
            }
            _ => {}
        }
        if !info.mask && (a.mask.is_some() || !a.mask_style.is_empty()) {
            let takers: Vec<&str> = methods::all().filter(|m| m.info().mask).map(|m| m.info().name).collect();
            bail!("--mask and --mask-style apply to --method {}", takers.join(", "));
        }
        if !a.mask_style.is_empty() && a.mask.is_none() {
            bail!("--mask-style needs --mask");
        }
        let (name, weights) = match (weights, a.model.as_deref().or(info.default_model)) {
            (Some(w), Some(m)) => (m, w),
            (None, Some(m)) => (m, lib.weights(m)?),
            (_, None) => bail!("--model is required for --method {}", info.name),
        };
        let model = load_model(info, &weights, device).with_context(|| format!("loading {name}"))?;
        Ok(Self {
            method,
            model,
            params,
            styles: styles(&a.style, a.max_pixels)?,
            mask: a.mask.as_ref().map(|p| image_io::read(p, a.max_pixels)).transpose()?,
            mask_styles: styles(&a.mask_style, a.max_pixels)?,
        })
    }

    fn one(&self, input: &Path, out: &Path, a: &Args, device: &Device) -> Result<()> {
        let info = self.method.info();
        // A video by its first bytes, or anything asked to become a video (FFmpeg reads it).
        if is_video(input)? || video::is_video_name(out) {
            return self.video(input, out, a, device);
        }
        let bytes = std::fs::read(input).map_err(|e| styleforge_core::error::Error::io(input, e))?;
        if let Some(anim) = animation::probe(&bytes).map_err(|e| image_io::in_file(input, e))? {
            return self.animation(input, &bytes, anim, out, a, device);
        }
        // Checked before any work: only animations are written as GIF.
        Format::from_path(out)?;
        let run_input = Input {
            content: image_io::decode(&bytes, a.max_pixels).map_err(|e| image_io::in_file(input, e))?,
            styles: self.styles.clone(),
            mask: self.mask.clone(),
            mask_styles: self.mask_styles.clone(),
        };
        let steps = ProgressBar::hidden();
        let mut progress = |p: &methods::Progress<'_>| {
            if let Some((done, total)) = p.step {
                if steps.is_hidden() {
                    steps.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    steps.set_style(
                        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} {elapsed_precise} eta {eta}").expect("template"),
                    );
                }
                steps.set_length(total);
                steps.set_position(done);
                steps.set_message(format!("{} {}", p.stage, p.detail.as_deref().unwrap_or("")));
            }
            if let Some((img, label)) = &p.preview {
                let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
                let path = out.with_file_name(format!("{stem}.{label}.png"));
                if let Err(e) = img.save(&path) {
                    steps.suspend(|| eprintln!("warning: preview {}: {e}", path.display()));
                }
            }
        };
        // Methods that run as jobs stop on Ctrl-C and keep what they reached; the others end at once.
        let cancel = (info.execution == Execution::Job).then(cancel_on_ctrl_c);
        let outcome = self.method.run(&self.model, &run_input, &self.params, device, &mut Control::new(cancel, &mut progress))?;
        steps.finish_and_clear();
        if outcome.cancelled {
            eprintln!("{}: interrupted; writing the image reached so far", info.name);
        }
        if let Some(s) = &outcome.summary {
            eprintln!("{s}");
        }
        outcome.picture.save(out)?;
        Ok(())
    }
}

impl Engine {
    /// The styles and mask as a per-frame input (each frame is the content in turn).
    fn template(&self) -> Input {
        Input {
            content: Picture::from_planes(1, 1, vec![0.0; 3]),
            styles: self.styles.clone(),
            mask: self.mask.clone(),
            mask_styles: self.mask_styles.clone(),
        }
    }

    /// The consistent mode's settings, `None` for `--temporal-weight 0`.
    fn consistency(a: &Args) -> Option<styleforge_core::temporal::ConsistencySettings> {
        (a.temporal_weight > 0.0).then(|| styleforge_core::temporal::ConsistencySettings { weight: a.temporal_weight, ..Default::default() })
    }

    /// Stylises every frame of a video file through FFmpeg and writes MP4 (H.264) or WebM (VP9)
    /// by the output's extension, keeping audio, frame rate, duration and rotation. A progress
    /// bar shows frames, frames/s and the time left; Ctrl-C stops between frames and leaves no
    /// output.
    fn video(&self, input: &Path, out: &Path, a: &Args, device: &Device) -> Result<()> {
        let ext = out.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let Some(format) = video::VideoFormat::from_extension(ext) else {
            bail!("{}: a video is written as MP4 (.mp4) or WebM (.webm); `{ext}` is not one of them", out.display());
        };
        let tools = video::Tools::find()?;
        let template = self.template();
        let mut stylizer = styleforge_core::sequence::FrameStylizer::new(self.method, &self.model, &template, &self.params, device, Self::consistency(a))
            .map_err(|e| image_io::in_file(input, e))?;
        let limits = video::VideoLimits { max_pixels: a.max_pixels, max_frames: a.max_frames as u64, ..Default::default() };
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} frames {per_sec} {elapsed_precise} eta {eta}").expect("template"));
        let cancel = cancel_on_ctrl_c();
        let made = video::stylize_video(&mut stylizer, &tools, input, out, format, limits, Some(&cancel), &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .map_err(|e| image_io::in_file(input, e))?;
        bar.finish_and_clear();
        let Some(made) = made else {
            bail!("interrupted; {} not written", out.display());
        };
        if made.frames + 1 < made.info.frames {
            eprintln!(
                "warning: {}: {} of the {} frames its header declares could be decoded (is the file truncated?)",
                input.display(),
                made.frames,
                made.info.frames
            );
        }
        eprintln!(
            "{}: {} frames, {}×{}, {:.3} fps, {:.2} s, {}{}",
            out.display(),
            made.frames,
            made.size.0,
            made.size.1,
            made.info.fps(),
            made.info.duration,
            format.extension(),
            made.info.audio_codec.as_ref().map(|c| format!(", audio from {c}")).unwrap_or_default()
        );
        Ok(())
    }

    /// Stylises every frame of an animated GIF, PNG or WebP and writes the same kind of
    /// animation (the output's extension picks GIF, PNG or WebP) with the same timing and loop
    /// count. A progress bar counts frames; Ctrl-C stops between frames and writes nothing.
    fn animation(&self, input: &Path, bytes: &[u8], anim: AnimationInfo, out: &Path, a: &Args, device: &Device) -> Result<()> {
        let ext = out.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let Some(format) = AnimationFormat::from_extension(ext) else {
            bail!("{}: an animation is written as GIF, PNG (APNG) or WebP; `{ext}` is not one of them", out.display());
        };
        let template = self.template();
        let bar = ProgressBar::new(anim.frames.unwrap_or(0) as u64);
        bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} frames {per_sec} {elapsed_precise} eta {eta}").expect("template"));
        let limits = animation::Limits { max_pixels: a.max_pixels, max_frames: a.max_frames };
        let consistency = Self::consistency(a);
        let mut progress = |done: u32, total: Option<u32>| {
            if total.is_none() {
                bar.set_length(done as u64);
            }
            bar.set_position(done as u64);
        };
        let made = styleforge_core::sequence::stylize_animation(
            self.method,
            &self.model,
            &template,
            &self.params,
            device,
            bytes,
            limits,
            format,
            consistency,
            Some(cancel_on_ctrl_c()),
            &mut progress,
        )
        .map_err(|e| image_io::in_file(input, e))?;
        bar.finish_and_clear();
        let Some(made) = made else {
            bail!("interrupted; {} not written", out.display());
        };
        image_io::write_atomic(out, &made.bytes)?;
        eprintln!(
            "{}: {} frames, {}×{}, {} ({})",
            out.display(),
            made.frames,
            made.size.0,
            made.size.1,
            format.extension(),
            match made.info.loop_count {
                0 => "looping".to_string(),
                1 => "plays once".to_string(),
                n => format!("plays {n} times"),
            }
        );
        Ok(())
    }
}

/// The method to run: `--method`; without it, the method of the `--model`'s kind, else
/// [`methods::default_style_method`] for `--style`, else the registry's default. Returns the
/// model's weights when they were read to decide.
fn choose_method(a: &Args, lib: &Library) -> Result<(&'static dyn Method, Option<Weights>)> {
    if let Some(m) = &a.method {
        return Ok((methods::get(m)?, None));
    }
    if let Some(m) = &a.model {
        let w = lib.weights(m)?;
        let method = match kind::detect(&w) {
            Ok(d) => match methods::methods_for_kind(d.kind).first() {
                Some(name) => methods::get(name)?,
                None => bail!("`{m}` is {}, which no stylisation method runs", d.kind.a_title()),
            },
            Err(_) => methods::default_method(),
        };
        return Ok((method, Some(w)));
    }
    if !a.style.is_empty() {
        return Ok((methods::default_style_method(), None));
    }
    bail!(
        "name a style: --style IMAGE or a built-in painting ({}), or --model NAME (see `styleforge models list`)",
        builtin::PAINTINGS.iter().map(|p| p.name).take(4).collect::<Vec<_>>().join(", ") + ", ..."
    )
}

/// Builds the weights as the kind of model the method runs: the kind they are recognised as,
/// or the method's first kind when they are not recognised (so the network's own error explains).
pub(crate) fn load_model(info: &MethodInfo, w: &Weights, device: &Device) -> Result<Loaded> {
    let kind = match kind::detect(w) {
        Ok(d) if info.accepts(d.kind) => d.kind,
        Ok(d) => {
            let instead = methods::methods_for_kind(d.kind);
            bail!(
                "this file is {}; method {} runs {} ({})",
                d.kind.a_title(),
                info.name,
                info.model_kinds.iter().map(|k| k.title()).collect::<Vec<_>>().join(" or "),
                if instead.is_empty() { "no stylisation method runs it".to_string() } else { format!("use --method {}", instead.join(" or ")) }
            )
        }
        Err(_) => info.model_kinds[0],
    };
    Ok(kind.load_weights(w, device)?)
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

/// Reads `IMAGE[:WEIGHT]` styles: images, built-in paintings by name (a file of that name wins),
/// or AdaIN statistics files (`.json`, `.safetensors`) saved earlier.
fn styles(args: &[String], max_pixels: u64) -> Result<Vec<(adain::Style, f32)>> {
    args.iter()
        .map(|arg| {
            let (path, weight) = style_arg(arg)?;
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            let painting = path.to_str().and_then(builtin::painting).filter(|_| !path.exists());
            let style = if let Some(p) = painting {
                adain::Style::Picture(p.picture()?)
            } else if ext == "json" || ext == "safetensors" {
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
                bail!("{}: no .jpg, .png, .webp, .gif or video (.mp4, .webm, .mov, .mkv) files", input.display());
            }
            files.extend(found);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            bail!("{}: no such file or folder", input.display());
        }
    }
    if files.len() == 1 && !saw_dir && !a.output.is_dir() {
        // GIF and video outputs are checked against the input later: only animations are
        // written as GIF, only videos as MP4 or WebM.
        let later = a.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")) || video::is_video_name(&a.output);
        if !later {
            Format::from_path(&a.output)?;
        }
        return Ok(vec![(files.remove(0), Some(a.output.clone()))]);
    }
    std::fs::create_dir_all(&a.output).with_context(|| format!("creating {}", a.output.display()))?;
    Ok(files.into_iter().map(|f| (f, None)).collect())
}

fn is_image_name(p: &Path) -> bool {
    video::is_video_name(p)
        || p.extension().and_then(|e| e.to_str()).is_some_and(|e| Format::from_name(e).is_some() || e.eq_ignore_ascii_case("gif"))
}

/// The output file of every job: its own when given, else `STEM.EXT` in `dir`. Outputs never
/// overwrite each other or an input: where two inputs share a stem (`holiday.jpg`,
/// `holiday.png`), or an output would land on an input, the input's whole file name is kept
/// (`holiday.jpg.png`), numbered further if that is taken too; an input whose extension is
/// the output's keeps the plain name when it is free.
fn out_paths(jobs: &[(PathBuf, Option<PathBuf>)], dir: &Path, format: Format) -> Vec<PathBuf> {
    let same = same_file;
    let inputs: Vec<&Path> = jobs.iter().map(|(i, _)| i.as_path()).collect();
    let plain: Vec<Option<PathBuf>> = jobs
        .iter()
        .map(|(input, given)| match given {
            Some(_) => None,
            None => Some(dir.join(out_name(input, format))),
        })
        .collect();
    let mut taken: Vec<PathBuf> = jobs.iter().filter_map(|(_, given)| given.clone()).collect();
    let mut out = Vec::with_capacity(jobs.len());
    for (k, (input, given)) in jobs.iter().enumerate() {
        if let Some(g) = given {
            out.push(g.clone());
            continue;
        }
        let name = plain[k].clone().expect("no output given");
        let shared = plain.iter().enumerate().any(|(j, p)| j != k && p.as_deref() == Some(name.as_path()));
        let own_ext = input.extension().and_then(|e| e.to_str()).and_then(Format::from_name) == Some(format);
        let on_input = inputs.iter().any(|i| same(i, &name));
        let mut path = if (shared && !own_ext) || on_input || taken.contains(&name) {
            let file = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
            dir.join(format!("{file}.{}", out_ext(input, format)))
        } else {
            name
        };
        let mut n = 2;
        while taken.contains(&path) || inputs.iter().any(|i| same(i, &path)) {
            let stem = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
            path = dir.join(format!("{stem}.{n}.{}", out_ext(input, format)));
            n += 1;
        }
        taken.push(path.clone());
        out.push(path);
    }
    out
}

/// Whether two paths name the same file (as written, or once resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The output extension for an input in a folder run: videos stay videos (MP4 or WebM by the
/// input's container), images take `format`.
fn out_ext(input: &Path, format: Format) -> &'static str {
    if !video::is_video_name(input) {
        return ext(format);
    }
    input
        .extension()
        .and_then(|e| e.to_str())
        .and_then(video::VideoFormat::from_extension)
        .unwrap_or(video::VideoFormat::Mp4)
        .extension()
}

fn ext(format: Format) -> &'static str {
    match format {
        Format::Jpeg => "jpg",
        Format::Png => "png",
        Format::WebP => "webp",
    }
}

fn out_name(input: &Path, format: Format) -> String {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    format!("{stem}.{}", out_ext(input, format))
}
