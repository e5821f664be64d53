//! The jobs layer, between the HTTP handlers and storage: a request is resolved into a
//! [`JobSpec`] ([`request`]), its inputs fetched from the blob store, run with the engine's method
//! registry ([`run`]), and its result stored once ([`store`]) — by the synchronous path of
//! `POST /v1/stylize` and by the workers ([`worker`]) alike. Training jobs ([`training`]) go
//! through the same queue. Everything here returns [`JobError`]; only the HTTP layer turns it
//! into a status code.

pub mod avatar;
pub mod batch;
pub mod error;
pub mod lenient;
pub mod live;
pub mod preview;
pub mod request;
pub mod run;
pub mod sequence;
pub mod status;
pub mod store;
pub mod training;
pub mod webhooks;
pub mod worker;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use styleforge_core::library::builtin::{self, Painting};
use styleforge_core::networks::face_detector::FaceDetector;
use utoipa::ToSchema;

pub use avatar::{AvatarFraming, AvatarSpec};
pub use error::{ErrorKind, JobError, JobResult};

use crate::db::{self, JobRow};
use crate::state::{AppState, new_id};

/// An input image: a stored blob an image row points at, or a built-in painting, whose bytes
/// every process has in its binary (id `builtin:NAME`, see [`BlobRef::painting`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobRef {
    /// The image id, or `builtin:` and the painting's name.
    pub id: String,
    /// sha256 of its bytes.
    pub sha256: String,
}

/// The prefix of the [`BlobRef::id`] of a built-in painting.
pub const BUILTIN_PREFIX: &str = "builtin:";

impl BlobRef {
    /// A built-in painting: read from the binary, never stored in the blob store.
    pub fn painting(p: &Painting) -> Self {
        BlobRef {
            id: format!("{BUILTIN_PREFIX}{}", p.name),
            sha256: crate::models::painting_sha256(p).to_string(),
        }
    }
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
    /// The method's name in the registry (`styleforge_core::methods`).
    pub method: String,
    /// The content image.
    pub image: BlobRef,
    /// The library model: the fast-style network, the AdaIN model, or the VGG loss network.
    pub model: String,
    /// Style images (methods whose style is an image set).
    pub styles: Vec<StyleRef>,
    /// Style label recorded with the result (model name or style ids).
    pub style_label: String,
    /// Strength 0..1.
    pub strength: f32,
    /// Keep the content's colours.
    pub preserve_color: bool,
    /// Longer side of the output at most this.
    pub max_size: Option<u32>,
    /// Spatial mask (methods that take one): white takes the style.
    pub mask: Option<BlobRef>,
    /// Output format name.
    pub format: String,
    /// Optimiser iterations (methods that iterate).
    pub iterations: Option<u32>,
    /// A training job: `image` is the style image, `model` the loss network, and the job's
    /// result is a preview of the new fast style, which joins the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSpec>,
    /// An avatar: the photo is cut to a square around its face and stylised at N×N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<AvatarSpec>,
    /// A video or an animation: every frame is stylised, and `format` is a video or animation
    /// format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<sequence::SequenceSpec>,
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
    /// Encoded image, animation or video (its format is the spec's).
    pub bytes: Vec<u8>,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Timings (decode, inference, encode filled).
    pub timings: Timings,
    /// Content loss at the end (optimisation methods).
    pub content_loss: Option<f64>,
    /// Style loss at the end (optimisation methods).
    pub style_loss: Option<f64>,
    /// How an avatar was framed (avatar runs).
    pub avatar: Option<AvatarFraming>,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// Finished.
    Done(Box<Output>),
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
    /// The face detector, for avatars.
    pub detector: Option<Arc<FaceDetector>>,
}

/// Fetches a spec's input blobs, built-in paintings from the binary (by name: a build whose
/// painting of that name differs runs its own), and the face detector for an avatar. Errors: `input_missing` when an image was deleted meanwhile, or a painting
/// is not in this build.
pub async fn fetch_inputs(state: &AppState, spec: &JobSpec) -> JobResult<Inputs> {
    let content = fetch_blob(state, &spec.image).await?;
    let mut styles = Vec::with_capacity(spec.styles.len());
    for s in &spec.styles {
        styles.push((fetch_blob(state, &s.image).await?, s.weight));
    }
    let mask = match &spec.mask {
        Some(m) => Some(fetch_blob(state, m).await?),
        None => None,
    };
    let detector = match spec.avatar {
        Some(_) => Some(state.models.face_detector().await?),
        None => None,
    };
    Ok(Inputs { content, styles, mask, detector })
}

/// The bytes of one input: a built-in painting from the binary (by name), else the stored blob.
/// Errors: `input_missing` when the image was deleted, or the painting is not in this build.
pub async fn fetch_blob(state: &AppState, r: &BlobRef) -> JobResult<Bytes> {
    if let Some(name) = r.id.strip_prefix(BUILTIN_PREFIX) {
        return builtin::painting(name)
            .map(|p| Bytes::from_static(p.jpeg))
            .ok_or_else(|| JobError::invalid("input_missing", format!("this build has no built-in painting `{name}`")));
    }
    state.blobs.get(&r.sha256).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => JobError::invalid("input_missing", format!("image `{}` was deleted", r.id)),
        e => JobError::from(e),
    })
}

/// Queues a job for `spec` under `owner` (`label`: the job's method column, e.g. the method's
/// name or `train`); returns the job's id. Errors: `unavailable` while shutting down.
pub async fn enqueue(state: &AppState, owner: &str, label: &str, spec: &JobSpec) -> JobResult<String> {
    enqueue_with(state, owner, label, spec, None).await
}

/// [`enqueue`], with the webhook its events go to.
pub async fn enqueue_with(
    state: &AppState,
    owner: &str,
    label: &str,
    spec: &JobSpec,
    webhook: Option<&webhooks::WebhookTarget>,
) -> JobResult<String> {
    if state.shutting_down() {
        return Err(JobError::unavailable("the server is shutting down"));
    }
    let job = queued_job(state, owner, label, spec, webhook)?;
    db::insert_job(&state.db, &job).await?;
    state.hub.new_job.notify_one();
    state.hub.changed(&job.id);
    Ok(job.id)
}

/// The row of a new queued job for `spec` (not yet inserted).
pub fn queued_job(
    state: &AppState,
    owner: &str,
    label: &str,
    spec: &JobSpec,
    webhook: Option<&webhooks::WebhookTarget>,
) -> JobResult<JobRow> {
    let spec_json = serde_json::to_string(spec).map_err(JobError::internal)?;
    let mut job = JobRow::queued(
        new_id("job"),
        owner,
        label,
        &spec.style_label,
        &spec.image.id,
        spec_json,
        state.config.max_attempts as i64,
    );
    job.device = state.config.job_device(&job.method).into();
    if let Some(w) = webhook {
        w.apply(&mut job);
    }
    Ok(job)
}

/// Cancels an owner's job: at once when queued, by request when running (the worker running it
/// here is told at once; a worker elsewhere sees it at its next heartbeat). Records the
/// `completed` webhook event when it ended. Returns the job afterwards (`None`: no such job).
pub async fn cancel(state: &AppState, id: &str, owner: &str) -> JobResult<Option<JobRow>> {
    let Some(job) = db::cancel_job(&state.db, id, owner).await? else {
        return Ok(None);
    };
    if job.state == db::state::RUNNING
        && let Some(r) = state.hub.running.lock().expect("running jobs").get(id)
    {
        r.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    state.hub.changed(id);
    if db::state::is_terminal(&job.state) {
        webhooks::emit_completed(state, id).await;
    }
    Ok(Some(job))
}
