//! Runs a training job (blocking, on an inference slot): a fast style trained on the server's
//! content photos with the perceptual loss, checkpointed in `<data_dir>/trainings/<job>` so a job
//! that goes back to the queue (shutdown, a dead worker) continues where it stopped, then added to
//! the library with its owner recorded, so only that owner's gallery lists it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use styleforge_core::image_io::{self, Format};
use styleforge_core::library::{Library, ModelInfo};
use styleforge_core::methods::Progress;
use styleforge_core::train::fast_style::{FastStyleTrainer, Recipe};
use styleforge_core::train::{self, RunOptions};
use styleforge_core::weights::Weights;

use crate::config::Config;
use crate::jobs::{JobError, JobResult, JobSpec, Output, RunEnd, Timings};

/// Metadata key naming the owner of a model trained by the service.
pub const OWNER_KEY: &str = "owner";

/// Whether `owner` may see and use a library model (models trained by the service belong to
/// the key that trained them; every other model is public).
pub fn visible_to(info: &ModelInfo, owner: &str) -> bool {
    info.training.get(OWNER_KEY).is_none_or(|o| o == owner)
}

/// Trains, exports and previews; `style` is the style image's bytes. The run is the CLI's
/// `train fast-style` recipe ([`FastStyleTrainer::from_recipe`], [`train::export`]).
#[allow(clippy::too_many_arguments)]
pub fn run(
    config: &Config,
    device: &Device,
    spec: &JobSpec,
    job_id: &str,
    owner: &str,
    style: &[u8],
    cancel: Arc<AtomicBool>,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> JobResult<RunEnd> {
    let t = spec.training.as_ref().ok_or_else(|| JobError::internal("not a training job"))?;
    let content_dir = config
        .training_content_dir
        .as_ref()
        .ok_or_else(|| JobError::invalid("training_unavailable", "no training_content_dir configured"))?;
    progress(&Progress::stage(0.0, "preparing"));
    let library = Library::new(config.home.clone());
    let vgg = Weights::load(&library.model_path(&spec.model))?;
    let style_pic = image_io::decode(style, config.max_pixels)?;
    let recipe = Recipe {
        loss_network: &vgg,
        style: &style_pic,
        style_size: 512,
        content_dir,
        crop: t.crop,
        preview: None,
        max_pixels: config.max_pixels,
    };
    let (mut trainer, preview) = FastStyleTrainer::from_recipe(
        &recipe,
        |s| {
            s.width = t.width;
            s.batch = t.batch;
            s.style_sha256 = spec.image.sha256.clone();
        },
        device,
        1,
    )?;
    let dir = config.data_dir().join("trainings").join(job_id);
    let opts = RunOptions {
        dir: dir.clone(),
        steps: t.steps as u64,
        checkpoint_every: 50,
        sample_every: 0,
        resume: train::checkpoint_json_path(&dir).exists(),
        seed: 1,
    };
    let t0 = Instant::now();
    let mut first = None;
    let summary = train::run(&mut trainer, &opts, Some(&cancel), &mut |p| {
        let from = *first.get_or_insert(p.step - 1);
        let done = (p.step - from) as f64;
        let left = (p.total - p.step) as f64;
        progress(&Progress {
            fraction: p.step as f64 / p.total as f64,
            stage: "training".into(),
            step: Some((p.step, p.total)),
            eta: (done > 0.0).then(|| Duration::from_secs_f64((t0.elapsed().as_secs_f64() / done * left).max(0.0))),
            detail: None,
            preview: None,
        });
    })?;
    if summary.stopped {
        return Ok(RunEnd::Cancelled);
    }
    progress(&Progress::stage(0.99, "saving"));
    let mut info = ModelInfo {
        name: t.name.clone(),
        title: t.title.clone(),
        tags: vec!["trained".into(), "custom".into()],
        description: format!("A fast style trained here for {} steps from an uploaded image.", t.steps),
        license: "trained from a user's upload".into(),
        ..Default::default()
    };
    info.training.insert(OWNER_KEY.into(), owner.to_string());
    train::export(&dir, info, false, &library, true)?;
    let te = Instant::now();
    let shown = trainer.stylize(&preview.fit_within(512))?;
    let bytes = shown.encode(Format::Png)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RunEnd::Done(Box::new(Output {
        bytes,
        width: shown.width,
        height: shown.height,
        timings: Timings {
            inference_ms: t0.elapsed().as_secs_f64() * 1000.0,
            encode_ms: te.elapsed().as_secs_f64() * 1000.0,
            ..Default::default()
        },
        content_loss: None,
        style_loss: None,
        avatar: None,
    })))
}
