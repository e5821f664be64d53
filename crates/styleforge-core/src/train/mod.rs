//! The training-loop framework shared by the GAN trainers: the loop itself, checkpoints every N
//! steps (and when asked to stop), exact resumption, a JSONL log of every loss, sample grids as
//! PNG and a progress callback.
//!
//! A trainer ([`Trainer`]) knows its networks, optimisers and data; the loop ([`run`]) owns the
//! step counter, the random generator ([`rng::Rng`]) and the files in the run directory:
//!
//! - `checkpoint.safetensors`: every tensor of the trainer's state (networks, optimiser moments,
//!   fixed sampling noise), metadata `step`;
//! - `checkpoint.json`: `{"format", "kind", "step", "rng", "trainer": {...}}`: the step, the
//!   generator's position and the trainer's own scalars (optimiser step counts, settings);
//! - `losses.jsonl`: one line per step, `{"step": n, "seconds": s, "<loss>": value, ...}`;
//! - `samples/step_NNNNNNN.png`: sample grids.
//!
//! Both checkpoint files are written atomically (a temporary file renamed into place), tensors
//! first; the JSON names the step, and a resume checks that both files agree. On resume, log lines
//! after the checkpoint's step are dropped, so the log continues as if never interrupted. Given
//! the same data, a resumed run takes the same steps as an uninterrupted one: all randomness comes
//! from the recorded generator.

pub mod adam;
pub mod cyclegan;
pub mod data;
pub mod dcgan;
pub mod fast_style;
pub mod rng;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::image_io::{Picture, write_atomic};
use crate::weights::Weights;
use rng::Rng;

/// Checkpoint format version.
pub const FORMAT: u64 = 1;

/// One trainable setup (networks, optimisers, data) driven by [`run`].
pub trait Trainer {
    /// The trainer's kind, recorded in checkpoints (`"dcgan"`, `"cyclegan"`).
    fn kind(&self) -> &'static str;

    /// Takes one optimisation step (`step` counts from 1), drawing all randomness from `rng`;
    /// returns the named losses and measurements of the step.
    fn step(&mut self, step: u64, rng: &mut Rng) -> Result<Vec<(String, f64)>>;

    /// The full state: named tensors and a JSON value of scalars.
    fn save_state(&self) -> Result<(Weights, Value)>;

    /// Restores a state written by [`Trainer::save_state`].
    fn load_state(&mut self, tensors: &Weights, json: &Value) -> Result<()>;

    /// A grid of samples showing the current state (side effect free).
    fn sample_grid(&self) -> Result<Picture>;
}

/// Where and how long to train.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Run directory (created if missing).
    pub dir: PathBuf,
    /// Train until this step (the total, not the number of further steps).
    pub steps: u64,
    /// Checkpoint every this many steps (0: only at the end and when stopped).
    pub checkpoint_every: u64,
    /// Write a sample grid every this many steps (0: only at the end).
    pub sample_every: u64,
    /// Continue from the checkpoint in `dir` (an error if there is none).
    pub resume: bool,
    /// Seed of the random generator for a fresh run.
    pub seed: u64,
}

/// What the progress callback sees after each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The step just taken.
    pub step: u64,
    /// The last step of the run.
    pub total: u64,
    /// The step's losses.
    pub losses: Vec<(String, f64)>,
    /// Wall-clock seconds of the step.
    pub seconds: f64,
    /// A checkpoint was written after this step.
    pub checkpointed: bool,
    /// A sample grid was written after this step (its path).
    pub sample: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The step the run started from (0 for a fresh run).
    pub start_step: u64,
    /// The last step taken.
    pub end_step: u64,
    /// The run stopped early because the stop flag was raised.
    pub stopped: bool,
    /// Mean seconds per step of this session.
    pub seconds_per_step: f64,
}

/// The checkpoint's tensor file in a run directory.
pub fn checkpoint_tensors_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// The checkpoint's JSON file in a run directory.
pub fn checkpoint_json_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.json")
}

/// The loss log of a run directory.
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("losses.jsonl")
}

/// The sample grid written after `step`.
pub fn sample_path(dir: &Path, step: u64) -> PathBuf {
    dir.join("samples").join(format!("step_{step:07}.png"))
}

/// A checkpoint read back: the step, the generator's position and the trainer's state.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Trainer kind.
    pub kind: String,
    /// Steps taken.
    pub step: u64,
    /// Position of the random generator.
    pub rng: u64,
    /// The trainer's tensors.
    pub tensors: Weights,
    /// The trainer's scalars.
    pub trainer: Value,
}

/// Writes a checkpoint of `trainer` after `step` (tensors first, then the JSON that names them).
pub fn save_checkpoint(dir: &Path, trainer: &dyn Trainer, step: u64, rng: &Rng) -> Result<()> {
    let (mut tensors, state) = trainer.save_state()?;
    tensors
        .metadata
        .insert("styleforge.train.step".into(), step.to_string());
    tensors
        .metadata
        .insert("styleforge.train.kind".into(), trainer.kind().into());
    write_atomic(
        &checkpoint_tensors_path(dir),
        &tensors.to_safetensors_bytes()?,
    )?;
    let doc = json!({
        "format": FORMAT,
        "kind": trainer.kind(),
        "step": step,
        "rng": rng.state(),
        "trainer": state,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Param(e.to_string()))?;
    write_atomic(&checkpoint_json_path(dir), text.as_bytes())
}

/// Reads the checkpoint in `dir`, checking that its two files belong together.
pub fn load_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let jpath = checkpoint_json_path(dir);
    let text = std::fs::read_to_string(&jpath).map_err(|e| Error::io(&jpath, e))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Param(format!("{}: not valid JSON ({e})", jpath.display())))?;
    let field = |k: &str| {
        doc.get(k)
            .ok_or_else(|| Error::Param(format!("{}: missing field `{k}`", jpath.display())))
    };
    let format = field("format")?.as_u64().unwrap_or(0);
    if format != FORMAT {
        return Err(Error::Param(format!(
            "{}: checkpoint format {format}, this version reads {FORMAT}",
            jpath.display()
        )));
    }
    let step = field("step")?
        .as_u64()
        .ok_or_else(|| Error::Param("checkpoint step is not a number".into()))?;
    let rng = field("rng")?
        .as_u64()
        .ok_or_else(|| Error::Param("checkpoint rng is not a number".into()))?;
    let kind = field("kind")?.as_str().unwrap_or_default().to_string();
    let tensors = Weights::load(&checkpoint_tensors_path(dir))?;
    let tstep = tensors.metadata.get("styleforge.train.step").cloned();
    if tstep.as_deref() != Some(step.to_string().as_str()) {
        return Err(Error::Param(format!(
            "{}: the tensors are from step {} but the JSON from step {step}",
            dir.display(),
            tstep.unwrap_or_else(|| "?".into())
        )));
    }
    Ok(Checkpoint {
        kind,
        step,
        rng,
        tensors,
        trainer: field("trainer")?.clone(),
    })
}

/// Keeps the log lines up to and including `step` (a resumed run rewrites what follows).
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let s = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("step").and_then(Value::as_u64));
        match s {
            Some(s) if s <= step => {
                kept.push_str(&line);
                kept.push('\n');
            }
            _ => {}
        }
    }
    write_atomic(path, kept.as_bytes())
}

/// Reads a loss log: one JSON object per line.
pub fn read_log(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Error::Param(format!(
                "{}: not a JSON object per line",
                path.display()
            ))),
        })
        .collect()
}

fn write_sample(dir: &Path, trainer: &dyn Trainer, step: u64) -> Result<PathBuf> {
    let path = sample_path(dir, step);
    let pic = trainer.sample_grid()?;
    let bytes = pic.encode(crate::image_io::Format::Png)?;
    write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Trains until `opts.steps` (or until `stop` is raised, which checkpoints and returns), calling
/// `progress` after every step.
pub fn run(
    trainer: &mut dyn Trainer,
    opts: &RunOptions,
    stop: Option<&AtomicBool>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RunSummary> {
    let dir = &opts.dir;
    std::fs::create_dir_all(dir.join("samples")).map_err(|e| Error::io(dir, e))?;
    let (start, mut rng) = if opts.resume {
        let ck = load_checkpoint(dir)?;
        if ck.kind != trainer.kind() {
            return Err(Error::Param(format!(
                "{}: the checkpoint is a {} run, not {}",
                dir.display(),
                ck.kind,
                trainer.kind()
            )));
        }
        trainer.load_state(&ck.tensors, &ck.trainer)?;
        truncate_log(&log_path(dir), ck.step)?;
        (ck.step, Rng::from_state(ck.rng))
    } else {
        if checkpoint_json_path(dir).exists() {
            return Err(Error::Param(format!(
                "{} already holds a run; resume it or choose another directory",
                dir.display()
            )));
        }
        let _ = std::fs::remove_file(log_path(dir));
        (0, Rng::new(opts.seed))
    };
    let lpath = log_path(dir);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&lpath)
        .map_err(|e| Error::io(&lpath, e))?;
    let session = Instant::now();
    let mut step = start;
    let mut stopped = false;
    while step < opts.steps {
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            stopped = true;
            break;
        }
        step += 1;
        let t0 = Instant::now();
        let losses = trainer.step(step, &mut rng)?;
        let seconds = t0.elapsed().as_secs_f64();
        let mut line = Map::new();
        line.insert("step".into(), json!(step));
        line.insert("seconds".into(), json!(seconds));
        for (k, v) in &losses {
            line.insert(k.clone(), json!(v));
        }
        writeln!(log, "{}", Value::Object(line)).map_err(|e| Error::io(&lpath, e))?;
        let last = step == opts.steps;
        let checkpointed =
            last || (opts.checkpoint_every > 0 && step.is_multiple_of(opts.checkpoint_every));
        if checkpointed {
            log.flush().map_err(|e| Error::io(&lpath, e))?;
            save_checkpoint(dir, trainer, step, &rng)?;
        }
        let sample = if last || (opts.sample_every > 0 && step.is_multiple_of(opts.sample_every)) {
            Some(write_sample(dir, trainer, step)?)
        } else {
            None
        };
        progress(&Progress {
            step,
            total: opts.steps,
            losses,
            seconds,
            checkpointed,
            sample,
        });
    }
    log.flush().map_err(|e| Error::io(&lpath, e))?;
    if stopped && step > start {
        save_checkpoint(dir, trainer, step, &rng)?;
    }
    let taken = step - start;
    Ok(RunSummary {
        start_step: start,
        end_step: step,
        stopped,
        seconds_per_step: if taken > 0 {
            session.elapsed().as_secs_f64() / taken as f64
        } else {
            0.0
        },
    })
}

/// Tiles equally sized pictures into a grid of `cols` columns with a `gap`-pixel white border.
pub fn grid(pictures: &[Picture], cols: usize, gap: u32) -> Result<Picture> {
    let first = pictures
        .first()
        .ok_or_else(|| Error::Param("a grid needs at least one picture".into()))?;
    let (w, h) = (first.width, first.height);
    if pictures.iter().any(|p| p.width != w || p.height != h) {
        return Err(Error::Param("grid pictures differ in size".into()));
    }
    let cols = cols.clamp(1, pictures.len());
    let rows = pictures.len().div_ceil(cols);
    let gw = cols as u32 * (w + gap) + gap;
    let gh = rows as u32 * (h + gap) + gap;
    let n = (gw * gh) as usize;
    let mut rgb = vec![255f32; 3 * n];
    for (i, p) in pictures.iter().enumerate() {
        let x0 = gap + (i % cols) as u32 * (w + gap);
        let y0 = gap + (i / cols) as u32 * (h + gap);
        let pn = (w * h) as usize;
        for c in 0..3 {
            for y in 0..h {
                let src = c * pn + (y * w) as usize;
                let dst = c * n + ((y0 + y) * gw + x0) as usize;
                rgb[dst..dst + w as usize].copy_from_slice(&p.rgb[src..src + w as usize]);
            }
        }
    }
    Ok(Picture::from_planes(gw, gh, rgb))
}

/// Planar images in `[-1, 1]` (`n` of `3×h×w`, concatenated) as pictures in 0..255.
pub fn pictures_from_unit(data: &[f32], n: usize, w: u32, h: u32) -> Vec<Picture> {
    let len = 3 * (w * h) as usize;
    (0..n)
        .map(|i| {
            let rgb = data[i * len..(i + 1) * len]
                .iter()
                .map(|v| ((v + 1.0) * 127.5).clamp(0.0, 255.0))
                .collect();
            Picture::from_planes(w, h, rgb)
        })
        .collect()
}

/// Adds the generator of the checkpoint in `dir` to `library` as the model `info` describes
/// (name, title, tags, description, licence), recording the run in its metadata (`training`:
/// kind, steps, direction, settings, the style's sha256) and the tensors' digest. `reverse`
/// exports a CycleGAN's B→A generator. Errors: no checkpoint, a kind that has no generator to
/// export, library errors (an existing name without `overwrite`).
pub fn export(dir: &Path, mut info: crate::library::ModelInfo, reverse: bool, library: &crate::library::Library, overwrite: bool) -> Result<crate::library::ModelInfo> {
    let ck = load_checkpoint(dir)?;
    let prefix = match (ck.kind.as_str(), reverse) {
        ("cyclegan", false) => "G_A.",
        ("cyclegan", true) => "G_B.",
        ("dcgan", false) => "G.",
        ("fast-style", false) => "T.",
        (k, true) => return Err(Error::Param(format!("reverse export applies to CycleGAN runs, not {k}"))),
        (k, _) => return Err(Error::Param(format!("cannot export a {k} run"))),
    };
    let mut weights = ck.tensors.with_prefix(prefix);
    if info.description.is_empty() {
        info.description = format!("{} generator trained by styleforge for {} steps.", ck.kind, ck.step);
    }
    info.training.insert("kind".into(), ck.kind.clone());
    info.training.insert("steps".into(), ck.step.to_string());
    info.training.insert("direction".into(), if reverse { "B->A" } else { "A->B" }.into());
    info.training.insert("settings".into(), ck.trainer["settings"].to_string());
    if let Some(sha) = ck.trainer["settings"]["style_sha256"].as_str() {
        info.training.insert("style_sha256".into(), sha.to_string());
    }
    info.sha256 = weights.content_sha256();
    library.add_weights(&mut weights, &mut info, overwrite)?;
    Ok(info)
}
