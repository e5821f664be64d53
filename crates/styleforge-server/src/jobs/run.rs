//! Running one stylisation (blocking; called on `spawn_blocking` under an inference permit):
//! decode, run the method, encode, with timings, progress and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::Device;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use styleforge_core::adain::{self, AdainOptions, Mask, PreserveColor, Style};
use styleforge_core::cyclegan::CycleGanOptions;
use styleforge_core::fast_style::StylizeOptions;
use styleforge_core::gatys::{self, GatysOptions};
use styleforge_core::image_io::{self, Format, Picture};
use utoipa::ToSchema;

use crate::db::ProgressRow;
use crate::error::ApiError;
use crate::models::Loaded;

/// Stylisation methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// A trained feed-forward network per style (milliseconds to seconds).
    #[default]
    Fast,
    /// Arbitrary style transfer from style images with the AdaIN encoder/decoder.
    Adain,
    /// Optimisation-based transfer (Gatys et al.) with a VGG loss network: always a job.
    Gatys,
    /// Photo-to-painting translation with a CycleGAN generator from the library.
    Cyclegan,
}

impl Method {
    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Fast => "fast",
            Method::Adain => "adain",
            Method::Gatys => "gatys",
            Method::Cyclegan => "cyclegan",
        }
    }
}

/// A stored blob an image row points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobRef {
    /// The image id.
    pub id: String,
    /// sha256 of its bytes.
    pub sha256: String,
}

/// A style image with its blend weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleRef {
    /// The image.
    pub image: BlobRef,
    /// Blend weight (weights are normalised).
    pub weight: f32,
}

/// A resolved stylisation request: everything a worker needs, by content hash, so it does not
/// depend on rows that may change meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Method.
    pub method: Method,
    /// The content image.
    pub image: BlobRef,
    /// The library model: the fast-style network, the AdaIN model, or the VGG loss network.
    pub model: String,
    /// Style images (adain, gatys).
    pub styles: Vec<StyleRef>,
    /// Style label recorded with the result (model name or style ids).
    pub style_label: String,
    /// Strength 0..1.
    pub strength: f32,
    /// Keep the content's colours.
    pub preserve_color: bool,
    /// Longer side of the output at most this.
    pub max_size: Option<u32>,
    /// Spatial mask (adain): white takes the style.
    pub mask: Option<BlobRef>,
    /// Output format name.
    pub format: String,
    /// Gatys iterations.
    pub iterations: Option<u32>,
    /// A training job: `image` is the style image, `model` the loss network, and the job's
    /// result is a preview of the new fast style, which joins the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSpec>,
}

/// What a training job trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSpec {
    /// Library name of the style to create.
    pub name: String,
    /// Its title in the gallery.
    pub title: String,
    /// Optimisation steps.
    pub steps: u32,
    /// Network width (8, 16 or 32).
    pub width: usize,
    /// Content crop size.
    pub crop: u32,
    /// Images per batch.
    pub batch: usize,
}

/// Where the time of one stylisation went, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Timings {
    /// Waiting for an inference slot (and, for jobs, in the queue).
    pub queue_ms: f64,
    /// Model loading (0 when cached).
    pub load_ms: f64,
    /// Decoding the inputs.
    pub decode_ms: f64,
    /// The method itself.
    pub inference_ms: f64,
    /// Encoding the output.
    pub encode_ms: f64,
    /// Storing the output.
    pub store_ms: f64,
    /// From the request (or the job's creation) to the stored result.
    pub total_ms: f64,
}

/// The encoded result of a run.
#[derive(Debug, Clone)]
pub struct Output {
    /// Encoded image.
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: Format,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Timings (decode, inference, encode filled).
    pub timings: Timings,
    /// Content loss at the end (Gatys).
    pub content_loss: Option<f64>,
    /// Style loss at the end (Gatys).
    pub style_loss: Option<f64>,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// Finished.
    Done(Output),
    /// Stopped by the cancel flag.
    Cancelled,
}

/// Inputs fetched from the blob store.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Content image bytes.
    pub content: Bytes,
    /// Style image bytes and weights.
    pub styles: Vec<(Bytes, f32)>,
    /// Mask bytes.
    pub mask: Option<Bytes>,
}

/// Limits and defaults from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Pixel limit for decoding.
    pub max_pixels: u64,
    /// Gatys iterations when none are given.
    pub gatys_iterations: u32,
    /// Gatys output size when none is given.
    pub gatys_max_size: u32,
}

const AUTO_TILE_PIXELS: u64 = 4_000_000;
const AUTO_TILE: u32 = 1024;

fn cancelled(flag: &Option<Arc<AtomicBool>>) -> bool {
    flag.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The output format named by a request (`png`, `jpeg`/`jpg`, `webp`).
pub fn output_format(name: &str) -> Result<Format, ApiError> {
    Format::from_name(name).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_parameter",
            format!("unknown output format `{name}` (use png, jpeg or webp)"),
        )
    })
}

/// Runs a stylisation. `model` is the fast network, the AdaIN model or the VGG as `spec.method` needs.
pub fn execute(
    spec: &JobSpec,
    inputs: &Inputs,
    model: &Loaded,
    device: &Device,
    limits: EngineLimits,
    cancel: Option<Arc<AtomicBool>>,
    progress: &mut dyn FnMut(ProgressRow),
) -> Result<RunEnd, ApiError> {
    let format = output_format(&spec.format)?;
    if cancelled(&cancel) {
        return Ok(RunEnd::Cancelled);
    }
    let mut timings = Timings::default();
    progress(ProgressRow {
        fraction: 0.02,
        stage: "decoding".into(),
        ..Default::default()
    });
    let t = Instant::now();
    let content =
        image_io::decode(&inputs.content, limits.max_pixels).map_err(ApiError::from_core)?;
    let styles: Vec<(Picture, f32)> = inputs
        .styles
        .iter()
        .map(|(b, w)| image_io::decode(b, limits.max_pixels).map(|p| (p, *w)))
        .collect::<styleforge_core::Result<_>>()
        .map_err(ApiError::from_core)?;
    let mask = match &inputs.mask {
        Some(b) => Some(image_io::decode(b, limits.max_pixels).map_err(ApiError::from_core)?),
        None => None,
    };
    timings.decode_ms = ms(t);
    let t = Instant::now();
    let mut losses = (None, None);
    let picture = match (spec.method, model) {
        (Method::Fast, Loaded::Fast(net)) => {
            progress(ProgressRow {
                fraction: 0.1,
                stage: "stylizing".into(),
                ..Default::default()
            });
            let (ow, oh) = output_size(content.width, content.height, spec.max_size);
            let scaled = ow as u64 * oh as u64;
            let opts = StylizeOptions {
                strength: spec.strength,
                preserve_color: spec.preserve_color,
                max_size: spec.max_size,
                tile: (scaled > AUTO_TILE_PIXELS).then_some(AUTO_TILE),
                ..Default::default()
            };
            net.stylize(&content, &opts, device)
                .map_err(ApiError::from_core)?
        }
        (Method::Cyclegan, Loaded::CycleGan(gan)) => {
            progress(ProgressRow {
                fraction: 0.1,
                stage: "translating".into(),
                ..Default::default()
            });
            let (ow, oh) = output_size(content.width, content.height, spec.max_size);
            let opts = CycleGanOptions {
                strength: spec.strength,
                preserve_color: spec.preserve_color,
                max_size: spec.max_size,
                tile: (ow as u64 * oh as u64 > AUTO_TILE_PIXELS).then_some(AUTO_TILE),
            };
            gan.stylize(&content, &opts, device)
                .map_err(ApiError::from_core)?
        }
        (Method::Adain, Loaded::Adain(m)) => {
            progress(ProgressRow {
                fraction: 0.1,
                stage: "stylizing".into(),
                ..Default::default()
            });
            let mask = mask.map(|p| {
                let p = if p.width != content.width || p.height != content.height {
                    p.resize(content.width, content.height)
                } else {
                    p
                };
                Mask::from_picture(&p, Vec::new())
            });
            let opts = AdainOptions {
                alpha: spec.strength,
                preserve_color: if spec.preserve_color {
                    PreserveColor::Luminance
                } else {
                    PreserveColor::Off
                },
                mask,
                max_size: spec.max_size,
                ..Default::default()
            };
            let styles: Vec<(Style, f32)> = styles
                .into_iter()
                .map(|(p, w)| (Style::Picture(p), w))
                .collect();
            m.stylize(&content, &styles, &opts, device)
                .map_err(ApiError::from_core)?
        }
        (Method::Gatys, Loaded::Vgg(vgg)) => {
            let opts = GatysOptions {
                max_size: Some(spec.max_size.unwrap_or(limits.gatys_max_size)),
                iterations: spec.iterations.unwrap_or(limits.gatys_iterations) as usize,
                preserve_color: spec.preserve_color,
                strength: spec.strength,
                cancel: cancel.clone(),
                ..Default::default()
            };
            let mut on_progress = |p: &gatys::Progress| {
                let done = p.scale * p.iterations + p.iteration;
                let total = (p.scales * p.iterations).max(1);
                progress(ProgressRow {
                    fraction: 0.05 + 0.9 * done as f64 / total as f64,
                    stage: format!("optimising {}x{}", p.width, p.height),
                    iteration: Some(done as i64),
                    iterations: Some(total as i64),
                    eta_ms: p.eta.map(|d| d.as_millis() as i64),
                });
                true
            };
            let out = gatys::run(&content, &styles, &opts, vgg, device, &mut on_progress)
                .map_err(ApiError::from_core)?;
            if out.cancelled {
                return Ok(RunEnd::Cancelled);
            }
            losses = (Some(out.losses.content), Some(out.losses.style));
            out.picture
        }
        _ => {
            return Err(ApiError::internal(format!(
                "model `{}` does not serve method {}",
                spec.model,
                spec.method.name()
            )));
        }
    };
    timings.inference_ms = ms(t);
    if cancelled(&cancel) {
        return Ok(RunEnd::Cancelled);
    }
    progress(ProgressRow {
        fraction: 0.97,
        stage: "encoding".into(),
        ..Default::default()
    });
    let t = Instant::now();
    let bytes = picture.encode(format).map_err(ApiError::from_core)?;
    timings.encode_ms = ms(t);
    Ok(RunEnd::Done(Output {
        bytes,
        format,
        width: picture.width,
        height: picture.height,
        timings,
        content_loss: losses.0,
        style_loss: losses.1,
    }))
}

/// The output size for an input size and `max_size` (as `Picture::fit_within` computes it).
pub fn output_size(width: u32, height: u32, max_size: Option<u32>) -> (u32, u32) {
    match max_size {
        Some(m) if width.max(height) > m => {
            let s = m as f64 / width.max(height) as f64;
            (
                ((width as f64 * s).round() as u32).max(1),
                ((height as f64 * s).round() as u32).max(1),
            )
        }
        _ => (width, height),
    }
}

/// The smallest side AdaIN accepts.
pub const ADAIN_MIN_SIDE: u32 = adain::MIN_SIDE;
