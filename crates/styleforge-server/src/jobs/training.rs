//! Runs a training job (blocking, on an inference slot): a fast style trained on the server's
//! content photos with the perceptual loss, checkpointed in `<data_dir>/trainings/<job>` so a job
//! that goes back to the queue (shutdown, a dead worker) continues where it stopped, then added to
//! the library with its owner recorded, so only that owner's gallery lists it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::tensor::Device;
use styleforge_core::image_io::{self, Format};
use styleforge_core::library::{Library, ModelInfo};
use styleforge_core::train::data::{CropDataset, image_files};
use styleforge_core::train::fast_style::{FastStyleSettings, FastStyleTrainer};
use styleforge_core::train::{self, RunOptions};
use styleforge_core::weights::Weights;

use crate::config::Config;
use crate::db::ProgressRow;
use crate::engine::{JobSpec, Output, RunEnd, Timings};
use crate::error::ApiError;

/// Metadata key naming the owner of a model trained by the service.
pub const OWNER_KEY: &str = "owner";

/// Whether `owner` may see and use a library model (models trained by the service belong to
/// the key that trained them; every other model is public).
pub fn visible_to(info: &ModelInfo, owner: &str) -> bool {
    info.training.get(OWNER_KEY).is_none_or(|o| o == owner)
}

/// Trains, exports and previews; `style` is the style image's bytes.
#[allow(clippy::too_many_arguments)]
pub fn run(
    config: &Config,
    device: &Device,
    spec: &JobSpec,
    job_id: &str,
    owner: &str,
    style: &[u8],
    cancel: Arc<AtomicBool>,
    progress: &mut dyn FnMut(ProgressRow),
) -> Result<RunEnd, ApiError> {
    let t = spec.training.as_ref().ok_or_else(|| ApiError::internal("not a training job"))?;
    let core = ApiError::from_core;
    let content_dir = config
        .training_content_dir
        .as_ref()
        .ok_or_else(|| ApiError::unprocessable("training_unavailable", "no training_content_dir configured"))?;
    progress(ProgressRow { fraction: 0.0, stage: "preparing".into(), ..Default::default() });
    let library = Library::new(config.home.clone());
    let vgg = Weights::load(&library.model_path(&spec.model)).map_err(core)?;
    let variant = styleforge_core::networks::vgg::Vgg::from_weights(&vgg, None, &Device::flex())
        .map_err(core)?
        .variant();
    let style_pic = image_io::decode(style, config.max_pixels).map_err(core)?;
    let data = CropDataset::from_folder(content_dir, t.crop, t.crop).map_err(core)?;
    let preview_path = image_files(content_dir).map_err(core)?.remove(0);
    let preview = image_io::read(&preview_path, config.max_pixels).map_err(core)?;
    let mut settings = FastStyleSettings::reference(variant);
    settings.width = t.width;
    settings.batch = t.batch;
    settings.style_sha256 = spec.image.sha256.clone();
    let mut trainer =
        FastStyleTrainer::new(settings, &vgg, &style_pic, 512, data, &preview, device, 1).map_err(core)?;
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
        progress(ProgressRow {
            fraction: p.step as f64 / p.total as f64,
            stage: "training".into(),
            iteration: Some(p.step as i64),
            iterations: Some(p.total as i64),
            eta_ms: Some((t0.elapsed().as_secs_f64() / done * left * 1000.0) as i64),
        });
    })
    .map_err(core)?;
    if summary.stopped {
        return Ok(RunEnd::Cancelled);
    }
    progress(ProgressRow { fraction: 0.99, stage: "saving".into(), ..Default::default() });
    let mut weights = trainer.export().map_err(core)?;
    let mut info = ModelInfo {
        name: t.name.clone(),
        title: t.title.clone(),
        tags: vec!["trained".into(), "custom".into()],
        description: format!("A fast style trained here for {} steps from an uploaded image.", t.steps),
        license: "trained from a user's upload".into(),
        ..Default::default()
    };
    info.training.insert(OWNER_KEY.into(), owner.to_string());
    info.training.insert("kind".into(), "fast-style".into());
    info.training.insert("steps".into(), t.steps.to_string());
    info.training.insert("style_sha256".into(), spec.image.sha256.clone());
    info.training.insert("settings".into(), serde_json::to_string(trainer.settings()).unwrap_or_default());
    info.sha256 = weights.content_sha256();
    library.add_weights(&mut weights, &mut info, true).map_err(core)?;
    let te = Instant::now();
    let shown = trainer.stylize(&preview.fit_within(512)).map_err(core)?;
    let bytes = shown.encode(Format::Png).map_err(core)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RunEnd::Done(Output {
        bytes,
        format: Format::Png,
        width: shown.width,
        height: shown.height,
        timings: Timings {
            inference_ms: t0.elapsed().as_secs_f64() * 1000.0,
            encode_ms: te.elapsed().as_secs_f64() * 1000.0,
            ..Default::default()
        },
        content_loss: None,
        style_loss: None,
    }))
}
