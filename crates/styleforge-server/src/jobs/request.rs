//! A stylisation request: what clients send, how it resolves into a [`JobSpec`] with the
//! engine's method registry (which model kinds a method runs, where its style comes from, its
//! options), and how it is answered: at once within the pixel budget, or queued as a job.
//!
//! A style name is, in this order, one of the caller's images (custom styles included), a model
//! (from the library, or built in), or a built-in painting (which a library model of the same
//! name hides). A request that names no method gets the one its style calls for.

use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize};
use styleforge_core::library::builtin::Painting;
use styleforge_core::library::{ModelInfo, ModelKind};
use styleforge_core::methods::{self, Execution, Method, MethodInfo, StyleSource};
use utoipa::ToSchema;

use crate::db::{self, JobRow};
use crate::jobs::avatar::{self, AvatarFraming, AvatarRequest};
use crate::jobs::run::{self, Limits};
use crate::jobs::sequence::{self, SequenceSpec, media};
use crate::jobs::store::{Commit, Stored, store_result};
use crate::jobs::training::visible_to;
use crate::jobs::webhooks::{self, WebhookEvent, WebhookTarget};
use crate::jobs::{BlobRef, JobError, JobResult, JobSpec, RunEnd, StyleRef, Timings, enqueue_with, fetch_inputs};
use crate::state::{AppState, new_id};

/// A method of the registry, by name; unknown names are refused when the request is read.
#[derive(Clone, Copy)]
pub struct MethodName(&'static dyn Method);

impl MethodName {
    /// The method.
    pub fn method(self) -> &'static dyn Method {
        self.0
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        self.0.info().name
    }
}

impl PartialEq for MethodName {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl std::fmt::Debug for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for MethodName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for MethodName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        methods::get(&name).map(MethodName).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown method `{name}`, expected one of {}",
                methods::names().join(", ")
            ))
        })
    }
}

/// The registry's options a stylisation request carries (its fields of the same names); the
/// others are set on the command line.
pub const REQUEST_OPTIONS: [&str; 4] = ["strength", "preserve_color", "max_size", "iterations"];

/// One style of a blend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedStyle {
    /// A built-in painting (`starry-night`, see `GET /v1/styles`), a custom style id (from
    /// `POST /v1/styles`) or one of your image ids.
    pub style: String,
    /// Blend weight (non-negative; weights are normalised). Default 1.
    #[serde(default = "one")]
    #[schema(minimum = 0.0, maximum = 1e6)]
    pub weight: f32,
}

fn one() -> f32 {
    1.0
}

/// A stylisation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StylizeRequest {
    /// The content image id (from `POST /v1/images`).
    pub image: String,
    /// The style: a library model name for methods whose style is a model (`fast`, `cyclegan`;
    /// see `GET /v1/styles`); a built-in painting (`starry-night`), custom style id or image id
    /// for the others (`microast`, `adain`, `gatys`).
    #[serde(default)]
    pub style: Option<String>,
    /// Several style images with blend weights (methods whose style is images), instead of `style`.
    #[serde(default)]
    pub styles: Option<Vec<WeightedStyle>>,
    /// A method from `GET /v1/methods` (default: chosen from the style: the method that runs a
    /// library model's kind, `fast` or `cyclegan`; for a built-in painting or a style image, the
    /// method that runs `model` when given, else `microast`).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "microast")]
    pub method: Option<MethodName>,
    /// 0 keeps the content, 1 (default) the full style.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub strength: Option<f32>,
    /// Keep the content's colours.
    #[serde(default)]
    pub preserve_color: bool,
    /// Scale the output down so its longer side is at most this many pixels.
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_size: Option<u32>,
    /// A mask image id (methods that take one, `adain`): white areas take the style, black keep the content.
    #[serde(default)]
    pub mask: Option<String>,
    /// Output format (default `png`; for an animation its own format, for a video `mp4`).
    #[serde(default)]
    pub format: Option<OutputFormat>,
    /// Iterations (methods that iterate, `gatys`; default from the server's configuration; at
    /// most its `max_gatys_iterations`, 2000 unless configured).
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    #[schema(minimum = 1, maximum = 2000)]
    pub iterations: Option<u32>,
    /// The model for methods whose style is images (default: the method's default model: the
    /// built-in `microast`, `adain` or `vgg19`).
    #[serde(default)]
    pub model: Option<String>,
    /// Always answer with a job, even within the synchronous budget. Videos and animations are
    /// always jobs.
    #[serde(default, rename = "async")]
    pub prefer_async: bool,
    /// Videos and animations: how much each stylised frame follows the previous output where
    /// the input only moved (optical flow), 0..1; 0 stylises every frame on its own (they
    /// flicker). Default 0.7.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub temporal_weight: Option<f32>,
    /// Make a square avatar: the photo is cut to a square around its largest face (enlarged
    /// 1.8×; or around `box`; the centre square when no face is found) and stylised at
    /// `size`×`size`. The answer's `avatar` says how it was framed. Not with `max_size` or `mask`.
    #[serde(default)]
    pub avatar: Option<AvatarRequest>,
    /// A URL to send the job's events to (`POST`, JSON, signed; see `webhook_events` and
    /// `GET /v1/webhook-secret`). A request with a webhook is always a job. Only with a secret
    /// key; the host must be one the server allows.
    #[serde(default)]
    #[schema(example = "https://example.com/hooks/styleforge")]
    pub webhook: Option<String>,
    /// Which events go to `webhook` (default `start` and `completed`).
    #[serde(default)]
    pub webhook_events: Option<Vec<WebhookEvent>>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// PNG (lossless, keeps alpha).
    #[default]
    Png,
    /// JPEG (quality 92, alpha dropped).
    #[serde(alias = "jpg")]
    Jpeg,
    /// WebP (lossless; animated for an animation).
    Webp,
    /// GIF (animations only).
    Gif,
    /// MP4 with H.264 video and AAC audio (videos only; the default for a video).
    Mp4,
    /// WebM with VP9 video and Opus audio (videos only).
    Webm,
}

impl OutputFormat {
    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
            OutputFormat::Gif => "gif",
            OutputFormat::Mp4 => "mp4",
            OutputFormat::Webm => "webm",
        }
    }
}

/// A synchronous result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StylizeResult {
    /// Result id.
    pub result: String,
    /// The result image.
    pub url: String,
    /// The job recorded for it (in the history).
    pub job: String,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Output format.
    pub format: String,
    /// Where the time went.
    pub timings: Timings,
    /// How the photo was framed (avatar requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<AvatarFraming>,
}

/// How a request was answered.
#[derive(Debug)]
pub enum Submitted {
    /// Run at once.
    Done(Box<StylizeResult>),
    /// Queued as this job.
    Queued(String),
}

/// What a checked request resolved to.
struct Resolved {
    method: &'static MethodInfo,
    spec: JobSpec,
    model: ModelInfo,
    out_pixels: u64,
}

/// Resolves and checks a request, then runs it at once (methods answered synchronously,
/// within the pixel budget) or queues it. Errors: the request's (invalid parameters, unknown
/// images or styles, a missing model), storage and database failures.
pub async fn submit(state: &AppState, owner: &str, req: &StylizeRequest) -> JobResult<Submitted> {
    let t0 = db::now_ms();
    let r = resolve(state, owner, req).await?;
    let webhook = webhook_target(state, req).await?;
    let method = r.method;
    let sync = method.execution == Execution::Sync
        && r.spec.sequence.is_none()
        && webhook.is_none()
        && !req.prefer_async
        && r.out_pixels <= state.config.sync_pixel_budget
        && !state.shutting_down();
    if !sync {
        return Ok(Submitted::Queued(enqueue_with(state, owner, method.name, &r.spec, webhook.as_ref()).await?));
    }
    let inputs = fetch_inputs(state, &r.spec).await?;
    let tl = Instant::now();
    let model = state.models.get(&r.model).await?;
    let load_ms = tl.elapsed().as_secs_f64() * 1000.0;
    let spec = r.spec.clone();
    let device = state.device.clone();
    let limits = Limits::of(&state.config);
    let (end, waited) = state
        .run_inference(move || run::execute(run::Run { spec: &spec, inputs: &inputs, model: &model, device: &device, limits, cancel: None }, &mut |_| {}))
        .await?;
    let RunEnd::Done(out) = end? else {
        return Err(JobError::internal("cancelled unexpectedly"));
    };
    state
        .metrics
        .inference_seconds
        .with_label_values(&[method.name, "sync"])
        .observe((out.timings.decode_ms + out.timings.inference_ms + out.timings.encode_ms) / 1000.0);
    let timings = Timings { queue_ms: waited.as_secs_f64() * 1000.0, load_ms, ..out.timings };
    let spec_json = serde_json::to_string(&r.spec).map_err(JobError::internal)?;
    let mut job = JobRow::queued(new_id("job"), owner, method.name, &r.spec.style_label, &r.spec.image.id, spec_json, 1);
    job.created_at = t0;
    let (width, height, avatar) = (out.width, out.height, out.avatar.clone());
    let Stored::Done { result, timings } = store_result(state, &job, &r.spec.format, *out, timings, Commit::Sync).await? else {
        return Err(JobError::internal("a synchronous result was not recorded"));
    };
    Ok(Submitted::Done(Box::new(StylizeResult {
        url: format!("/v1/results/{}", result.id),
        result: result.id,
        job: job.id,
        width,
        height,
        format: r.spec.format.clone(),
        timings,
        avatar,
    })))
}

/// The request's checked webhook, when it has one. Errors: `webhook_events` without a
/// `webhook`, and those of [`webhooks::check_target`].
pub async fn webhook_target(state: &AppState, req: &StylizeRequest) -> JobResult<Option<WebhookTarget>> {
    match (&req.webhook, &req.webhook_events) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(JobError::invalid("invalid_webhook", "webhook_events needs a webhook")),
        (Some(url), events) => Ok(Some(webhooks::check_target(&state.config, url, events.as_deref()).await?)),
    }
}

/// Resolves and checks a request into the spec of a job and the method that runs it (for
/// batches: every pair is checked before any job is made).
pub async fn resolve_spec(state: &AppState, owner: &str, req: &StylizeRequest) -> JobResult<(&'static str, JobSpec)> {
    let r = resolve(state, owner, req).await?;
    Ok((r.method.name, r.spec))
}

async fn owned_image(state: &AppState, owner: &str, id: &str) -> JobResult<db::ImageRow> {
    db::get_image(&state.db, id, owner).await?.ok_or_else(|| JobError::not_found("image", id))
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::invalid("invalid_parameter", message)
}

/// What a style name refers to.
enum Named {
    /// One of the caller's images (a custom style or an uploaded image).
    Image(db::ImageRow),
    /// A model the caller may use.
    Model(ModelInfo),
    /// A built-in painting.
    Painting(&'static Painting),
}

/// Looks a style name up: the caller's images, then the models (library files, built-in models;
/// those the caller may not see are not found), then the built-in paintings.
async fn named_style(state: &AppState, owner: &str, name: &str) -> JobResult<Option<Named>> {
    if let Some(row) = db::get_image(&state.db, name, owner).await? {
        return Ok(Some(Named::Image(row)));
    }
    match state.models.info(name).await {
        Ok(info) => return Ok(visible_to(&info, owner).then_some(Named::Model(info))),
        Err(e) if e.kind != crate::jobs::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    Ok(state.models.painting(name).map(Named::Painting))
}

/// The method of a request: its `method`; else the one its (first) style calls for: the method
/// that runs a model's kind when that method's style is the model (`fast`, `cyclegan`), or for
/// a painting or an image, the method that runs the request's `model` (`adain` for an AdaIN
/// model), else [`methods::default_style_method`]. Otherwise the registry's
/// default, whose checks then say what is wrong (a missing or unknown style, a network that is
/// no style).
async fn choose_method(state: &AppState, owner: &str, req: &StylizeRequest) -> JobResult<&'static MethodInfo> {
    if let Some(m) = req.method {
        return Ok(m.method().info());
    }
    let first = match (&req.style, &req.styles) {
        (Some(s), _) => Some(s.as_str()),
        (None, Some(v)) => v.first().map(|w| w.style.as_str()),
        (None, None) => None,
    };
    let chosen = match first {
        Some(name) => match named_style(state, owner, name).await? {
            Some(Named::Model(info)) => ModelKind::of(&info).and_then(|k| {
                methods::all().find(|m| m.info().style == StyleSource::Model && m.info().accepts(k))
            }),
            Some(Named::Image(_) | Named::Painting(_)) => Some(image_method(state, req).await),
            None => None,
        },
        None => None,
    };
    Ok(chosen.unwrap_or_else(methods::default_method).info())
}

/// The method for style images: the one whose style is images that runs the request's `model`,
/// else [`methods::default_style_method`].
async fn image_method(state: &AppState, req: &StylizeRequest) -> &'static dyn Method {
    if let Some(name) = &req.model
        && let Ok(info) = state.models.info(name).await
        && let Some(kind) = ModelKind::of(&info)
        && let Some(m) = methods::all().find(|m| matches!(m.info().style, StyleSource::Images { .. }) && m.info().accepts(kind))
    {
        return m;
    }
    methods::default_style_method()
}

async fn resolve(state: &AppState, owner: &str, req: &StylizeRequest) -> JobResult<Resolved> {
    let cfg = &state.config;
    let image = owned_image(state, owner, &req.image).await?;
    let method = choose_method(state, owner, req).await?;
    if image.media != media::IMAGE && method.execution != Execution::Sync {
        let feed_forward: Vec<&str> = methods::all().filter(|m| m.info().execution == Execution::Sync).map(|m| m.info().name).collect();
        return Err(invalid(format!(
            "method {} optimises one image at a time; videos and animations use {}",
            method.name,
            feed_forward.join(", ")
        )));
    }
    if req.style.is_some() && req.styles.is_some() {
        return Err(invalid("give `style` or `styles`, not both"));
    }
    if req.mask.is_some() && !method.mask {
        let takers: Vec<&str> = methods::all().filter(|m| m.info().mask).map(|m| m.info().name).collect();
        return Err(invalid(format!("a mask applies to method {} only", takers.join(", "))));
    }
    if method.takes("iterations")
        && let Some(it) = req.iterations
        && (it == 0 || it > cfg.max_gatys_iterations)
    {
        return Err(invalid(format!("iterations must be within 1..{}", cfg.max_gatys_iterations)));
    }
    let ResolvedStyle { model, label, styles, .. } = style_of(state, owner, req, method).await?;
    let avatar = match &req.avatar {
        Some(_) if req.max_size.is_some() => {
            return Err(invalid("an avatar takes no `max_size`: its side is `avatar.size`"));
        }
        Some(_) if req.mask.is_some() => {
            return Err(invalid("an avatar takes no `mask`: the mask would not match the square cut from the photo"));
        }
        Some(a) => Some(avatar::check(a, image.width as u32, image.height as u32, method)?),
        None => None,
    };
    let mask = match &req.mask {
        Some(id) => {
            let row = owned_image(state, owner, id).await?;
            Some(BlobRef { id: row.id, sha256: row.sha256 })
        }
        None => None,
    };
    let sequence = match image.media.as_str() {
        media::IMAGE => {
            if let Some(f @ (OutputFormat::Gif | OutputFormat::Mp4 | OutputFormat::Webm)) = req.format {
                return Err(invalid(format!("{} is an output of videos and animations; this image is a still", f.name())));
            }
            if req.temporal_weight.is_some() {
                return Err(invalid("`temporal_weight` applies to videos and animations"));
            }
            None
        }
        m => {
            if req.avatar.is_some() || req.mask.is_some() {
                return Err(invalid("videos and animations take no `avatar` or `mask`"));
            }
            let weight = req.temporal_weight.unwrap_or(styleforge_core::temporal::ConsistencySettings::default().weight);
            if !(0.0..=1.0).contains(&weight) {
                return Err(invalid(format!("temporal_weight is a weight from 0 to 1, got {weight}")));
            }
            Some(SequenceSpec { media: m.to_string(), temporal_weight: weight })
        }
    };
    let format = match &sequence {
        Some(seq) => sequence::output_format(&seq.media, &image.format, req.format.map(OutputFormat::name))?,
        None => req.format.unwrap_or_default().name().to_string(),
    };
    let spec = JobSpec {
        method: method.name.to_string(),
        image: BlobRef { id: image.id.clone(), sha256: image.sha256.clone() },
        model: model.name.clone(),
        styles,
        style_label: label,
        strength: req.strength.unwrap_or(1.0),
        preserve_color: req.preserve_color,
        max_size: req.max_size,
        mask,
        format,
        iterations: req.iterations,
        training: None,
        avatar,
        sequence,
    };
    let params = run::params(&spec, Limits::of(cfg))?;
    // Every size is accepted: outputs below the method's smallest side are padded (`SizePlan`).
    let (ow, oh) = match avatar {
        Some(a) => (a.size, a.size),
        None => methods::output_size(image.width as u32, image.height as u32, params.max_size()),
    };
    Ok(Resolved { method, spec, model, out_pixels: ow as u64 * oh as u64 })
}

/// The model named by a request for a method whose style is the model.
async fn model_style(
    state: &AppState,
    owner: &str,
    req: &StylizeRequest,
    method: &methods::MethodInfo,
) -> JobResult<(ModelInfo, String)> {
    let m = method.name;
    if req.model.is_some() {
        return Err(invalid(format!("`model` applies to {}; for {m}, name the model in `style`", methods::image_style_methods())));
    }
    let name = match (&req.style, &req.styles) {
        (Some(s), None) => s.clone(),
        (None, Some(v)) if v.len() == 1 => v[0].style.clone(),
        (None, Some(_)) => {
            return Err(invalid(format!("the {m} method takes one style; blends need {}", methods::image_style_methods())));
        }
        _ => return Err(JobError::invalid("missing_style", "name a style (see GET /v1/styles)")),
    };
    let info = match state.models.info(&name).await {
        Ok(i) => i,
        Err(e) => {
            let what = if db::get_image(&state.db, &name, owner).await?.is_some() {
                "a style image"
            } else if state.models.painting(&name).is_some() {
                "a built-in painting"
            } else {
                return Err(e);
            };
            return Err(JobError::invalid(
                "wrong_method",
                format!("`{name}` is {what}: use method {} with it", methods::image_style_methods()),
            ));
        }
    };
    if !visible_to(&info, owner) {
        return Err(JobError::not_found("style", &name));
    }
    let kind = ModelKind::of(&info);
    if !kind.is_some_and(|k| method.accepts(k)) {
        let instead = match kind.map(methods::methods_for_kind) {
            Some(v) if !v.is_empty() && methods::get(v[0]).is_ok_and(|x| x.info().style == StyleSource::Model) => {
                v.join(" or ")
            }
            _ => format!("{} with a style image", methods::image_style_methods()),
        };
        return Err(JobError::invalid(
            "wrong_method",
            format!("`{name}` is a {} model, not a {m} model; use method {instead} with it", info.method),
        ));
    }
    Ok((info, name))
}

/// The style images and the model of a request for a method whose style is images.
async fn image_styles(
    state: &AppState,
    owner: &str,
    req: &StylizeRequest,
    method: &methods::MethodInfo,
    max: usize,
) -> JobResult<(ModelInfo, String, Vec<StyleRef>)> {
    let list: Vec<WeightedStyle> = match (&req.style, &req.styles) {
        (Some(s), None) => vec![WeightedStyle { style: s.clone(), weight: 1.0 }],
        (None, Some(v)) if !v.is_empty() && v.len() <= max => v.clone(),
        (None, Some(_)) => return Err(invalid(format!("give 1 to {max} styles"))),
        _ => {
            return Err(JobError::invalid(
                "missing_style",
                "name a style image: upload one with POST /v1/styles and pass its id as `style`",
            ));
        }
    };
    let sum: f32 = list.iter().map(|w| w.weight).sum();
    if list.iter().any(|w| !w.weight.is_finite() || w.weight < 0.0) || sum <= 0.0 || !sum.is_finite() {
        return Err(invalid("style weights must be finite and non-negative, with a positive sum"));
    }
    let mut styles = Vec::with_capacity(list.len());
    for w in &list {
        let image = match named_style(state, owner, &w.style).await? {
            Some(Named::Image(row)) => BlobRef { id: row.id, sha256: row.sha256 },
            Some(Named::Painting(p)) => BlobRef::painting(p),
            Some(Named::Model(_)) => {
                return Err(JobError::invalid(
                    "wrong_method",
                    format!(
                        "method {} needs style images, and `{}` is a model: pick a built-in painting or upload a style image with POST /v1/styles",
                        method.name, w.style
                    ),
                ));
            }
            None => return Err(JobError::not_found("style", &w.style)),
        };
        styles.push(StyleRef { image, weight: w.weight });
    }
    let wanted = req.model.as_deref().or(method.default_model).unwrap_or_default();
    if let Some(name) = &req.model
        && let Ok(named) = state.models.info(name).await
        && let Some(kind) = ModelKind::of(&named).filter(|k| !method.accepts(*k))
    {
        return Err(JobError::invalid(
            "wrong_method",
            format!(
                "`{name}` is {}; method {} runs {}",
                kind.a_title(),
                method.name,
                method.model_kinds.iter().map(|k| k.title()).collect::<Vec<_>>().join(" or ")
            ),
        ));
    }
    let info = match state.models.find(method.model_kinds, wanted).await? {
        Some(i) if req.model.is_none() || i.name == wanted => i,
        _ => {
            let kind = method.model_kinds[0];
            return Err(JobError::invalid(
                "model_missing",
                format!(
                    "no {}{} in the library at {} for method {}: add `{}.safetensors` holding {}",
                    kind.title(),
                    req.model.as_ref().map(|m| format!(" `{m}`")).unwrap_or_default(),
                    state.models.library().models_dir().display(),
                    method.name,
                    if wanted.is_empty() { kind.name() } else { wanted },
                    kind.contents()
                ),
            ));
        }
    };
    let label = list.iter().map(|w| w.style.as_str()).collect::<Vec<_>>().join("+");
    Ok((info, label, styles))
}

/// What a request's style resolves to, without a content image: for streams of frames (the
/// live camera, [`crate::jobs::live`]), whose content arrives frame by frame.
#[derive(Debug, Clone)]
pub struct ResolvedStyle {
    /// The method: the request's, else the one its style calls for.
    pub method: &'static MethodInfo,
    /// The network the method runs.
    pub model: ModelInfo,
    /// The style's label (the model's name, or the style names joined with `+`).
    pub label: String,
    /// The style images with their weights (methods whose style is images).
    pub styles: Vec<StyleRef>,
}

/// Resolves a request's method and style as [`submit`] does (the `image`, `mask`, `avatar` and
/// output fields are not read). Errors: unknown styles or models, a style the method does not
/// take, a missing network, `style` and `styles` both given.
pub async fn resolve_style(state: &AppState, owner: &str, req: &StylizeRequest) -> JobResult<ResolvedStyle> {
    let method = choose_method(state, owner, req).await?;
    if req.style.is_some() && req.styles.is_some() {
        return Err(invalid("give `style` or `styles`, not both"));
    }
    style_of(state, owner, req, method).await
}

/// The style of a request for `method` (already chosen): its model, label and style images.
async fn style_of(state: &AppState, owner: &str, req: &StylizeRequest, method: &'static MethodInfo) -> JobResult<ResolvedStyle> {
    let (model, label, styles) = match method.style {
        StyleSource::Model => {
            let (model, label) = model_style(state, owner, req, method).await?;
            (model, label, Vec::new())
        }
        StyleSource::Images { max } => image_styles(state, owner, req, method, max).await?,
    };
    Ok(ResolvedStyle { method, model, label, styles })
}
