//! `POST /v1/stylize`: resolve and check the request, then answer at once (fast and AdaIN
//! within the pixel budget) or queue a job.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::auth::Caller;
use crate::db::{self, JobRow, ResultRow, now_ms, state as job_state};
use crate::engine::{self, BlobRef, Inputs, JobSpec, Method, RunEnd, StyleRef, Timings};
use crate::error::{ApiError, ApiResult};
use crate::models::{Kind, kind_of};
use crate::state::{AppState, new_id};

/// One style of a blend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedStyle {
    /// A custom style id (from `POST /v1/styles`) or one of your image ids.
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
    /// The style: a library model name for `fast` (see `GET /v1/styles`); a custom style id or
    /// image id for `adain` and `gatys`.
    #[serde(default)]
    pub style: Option<String>,
    /// Several style images with blend weights (adain, gatys), instead of `style`.
    #[serde(default)]
    pub styles: Option<Vec<WeightedStyle>>,
    /// `fast` (default), `adain`, `gatys` or `cyclegan`.
    #[serde(default)]
    pub method: Method,
    /// 0 keeps the content, 1 (default) the full style.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub strength: Option<f32>,
    /// Keep the content's colours.
    #[serde(default)]
    pub preserve_color: bool,
    /// Scale the output down so its longer side is at most this many pixels.
    #[serde(default, deserialize_with = "super::lenient::opt_u32")]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_size: Option<u32>,
    /// A mask image id (adain): white areas take the style, black keep the content.
    #[serde(default)]
    pub mask: Option<String>,
    /// Output format (default `png`).
    #[serde(default)]
    pub format: Option<OutputFormat>,
    /// Gatys iterations (default from the server's configuration; at most its
    /// `max_gatys_iterations`, 2000 unless configured).
    #[serde(default, deserialize_with = "super::lenient::opt_u32")]
    #[schema(minimum = 1, maximum = 2000)]
    pub iterations: Option<u32>,
    /// The library model to use for adain (default: the model named `adain`) or gatys (default `vgg19`).
    #[serde(default)]
    pub model: Option<String>,
    /// Always answer with a job, even within the synchronous budget.
    #[serde(default, rename = "async")]
    pub prefer_async: bool,
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
    /// WebP (lossless).
    Webp,
}

impl OutputFormat {
    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
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
}

/// The 202 answer for a job just queued: its URLs in the body and `Location`.
pub fn accepted(job_id: &str) -> Response {
    let url = format!("/v1/jobs/{job_id}");
    let body = JobAccepted {
        job: job_id.to_string(),
        url: url.clone(),
        events_url: format!("{url}/events"),
        state: job_state::QUEUED.into(),
    };
    let mut resp = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A queued job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobAccepted {
    /// Job id.
    pub job: String,
    /// Job status.
    pub url: String,
    /// Progress as Server-Sent Events.
    pub events_url: String,
    /// `queued`.
    pub state: String,
}

/// What a checked request resolved to.
struct Resolved {
    spec: JobSpec,
    model: styleforge_core::library::ModelInfo,
    out_pixels: u64,
}

async fn owned_image(
    state: &AppState,
    caller: &Caller,
    id: &str,
    what: &str,
) -> ApiResult<db::ImageRow> {
    db::get_image(&state.db, id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found(what, id))
}

async fn resolve(state: &AppState, caller: &Caller, req: &StylizeRequest) -> ApiResult<Resolved> {
    let cfg = &state.config;
    let image = owned_image(state, caller, &req.image, "image").await?;
    let strength = req.strength.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&strength) {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            "strength must be within 0..1",
        ));
    }
    if req.max_size == Some(0) {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            "max_size must be at least 1",
        ));
    }
    let format = req.format.unwrap_or_default().name().to_string();
    if req.style.is_some() && req.styles.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            "give `style` or `styles`, not both",
        ));
    }
    if req.method != Method::Gatys && req.iterations.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            "iterations apply to the gatys method only",
        ));
    }
    if req.method != Method::Adain && req.mask.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            "a mask applies to the adain method only",
        ));
    }
    let mut styles = Vec::new();
    let (model, label) = match req.method {
        Method::Fast | Method::Cyclegan => {
            let m = req.method.name();
            if req.model.is_some() {
                return Err(ApiError::unprocessable(
                    "invalid_parameter",
                    format!("`model` applies to adain and gatys; for {m}, name the model in `style`"),
                ));
            }
            let name = match (&req.style, &req.styles) {
                (Some(s), None) => s.clone(),
                (None, Some(v)) if v.len() == 1 => v[0].style.clone(),
                (None, Some(_)) => {
                    return Err(ApiError::unprocessable(
                        "invalid_parameter",
                        format!("the {m} method takes one style; blends need adain or gatys"),
                    ));
                }
                _ => {
                    return Err(ApiError::unprocessable(
                        "missing_style",
                        "name a style (see GET /v1/styles)",
                    ));
                }
            };
            let info = match state.models.info(&name).await {
                Ok(i) => i,
                Err(e) => {
                    if db::get_image(&state.db, &name, &caller.owner)
                        .await?
                        .is_some()
                    {
                        return Err(ApiError::unprocessable(
                            "wrong_method",
                            format!("`{name}` is a style image: use method adain or gatys with it"),
                        ));
                    }
                    return Err(e);
                }
            };
            if !crate::training::visible_to(&info, &caller.owner) {
                return Err(ApiError::not_found("style", &name));
            }
            let want = if req.method == Method::Fast { Kind::Fast } else { Kind::CycleGan };
            if kind_of(&info) != want {
                return Err(ApiError::unprocessable(
                    "wrong_method",
                    format!(
                        "`{name}` is a {} model, not a {m} model; use method {} with it",
                        info.method,
                        match kind_of(&info) {
                            Kind::Fast => "fast",
                            Kind::CycleGan => "cyclegan",
                            _ => "adain or gatys with a style image",
                        }
                    ),
                ));
            }
            (info, name)
        }
        Method::Adain | Method::Gatys => {
            if let Some(it) = req.iterations
                && (it == 0 || it > cfg.max_gatys_iterations)
            {
                return Err(ApiError::unprocessable(
                    "invalid_parameter",
                    format!("iterations must be within 1..{}", cfg.max_gatys_iterations),
                ));
            }
            let list: Vec<WeightedStyle> = match (&req.style, &req.styles) {
                (Some(s), None) => vec![WeightedStyle {
                    style: s.clone(),
                    weight: 1.0,
                }],
                (None, Some(v)) if !v.is_empty() && v.len() <= 8 => v.clone(),
                (None, Some(_)) => {
                    return Err(ApiError::unprocessable(
                        "invalid_parameter",
                        "give 1 to 8 styles",
                    ));
                }
                _ => {
                    return Err(ApiError::unprocessable(
                        "missing_style",
                        "name a style image: upload one with POST /v1/styles and pass its id as `style`",
                    ));
                }
            };
            let sum: f32 = list.iter().map(|w| w.weight).sum();
            if list.iter().any(|w| !w.weight.is_finite() || w.weight < 0.0)
                || sum <= 0.0
                || !sum.is_finite()
            {
                return Err(ApiError::unprocessable(
                    "invalid_parameter",
                    "style weights must be finite and non-negative, with a positive sum",
                ));
            }
            for w in &list {
                match db::get_image(&state.db, &w.style, &caller.owner).await? {
                    Some(row) => styles.push(StyleRef {
                        image: BlobRef {
                            id: row.id,
                            sha256: row.sha256,
                        },
                        weight: w.weight,
                    }),
                    None => {
                        if state.models.info(&w.style).await.is_ok() {
                            return Err(ApiError::unprocessable(
                                "wrong_method",
                                format!(
                                    "method {} needs style images, and `{}` is a library model: upload a style image with POST /v1/styles",
                                    req.method.name(),
                                    w.style
                                ),
                            ));
                        }
                        return Err(ApiError::not_found("style", &w.style));
                    }
                }
            }
            let (kind, preferred) = if req.method == Method::Adain {
                (Kind::Adain, "adain")
            } else {
                (Kind::Vgg, "vgg19")
            };
            let wanted = req.model.as_deref().unwrap_or(preferred);
            let info = match state.models.find(kind, wanted).await? {
                Some(i) if req.model.is_none() || i.name == wanted => i,
                _ => {
                    let dir = state.models.library().models_dir();
                    return Err(if req.method == Method::Adain {
                        ApiError::unprocessable(
                            "model_missing",
                            format!(
                                "no AdaIN model{} in the library at {}: add `adain.safetensors` holding the encoder (`encoder.*`) and decoder (`decoder.*`) tensors with method `adain`",
                                req.model
                                    .as_ref()
                                    .map(|m| format!(" `{m}`"))
                                    .unwrap_or_default(),
                                dir.display()
                            ),
                        )
                    } else {
                        ApiError::unprocessable(
                            "model_missing",
                            format!(
                                "no VGG loss network{} in the library at {}: add `vgg19.safetensors` (`features.N.*` tensors, method `vgg`)",
                                req.model
                                    .as_ref()
                                    .map(|m| format!(" `{m}`"))
                                    .unwrap_or_default(),
                                dir.display()
                            ),
                        )
                    });
                }
            };
            let label = list
                .iter()
                .map(|w| w.style.as_str())
                .collect::<Vec<_>>()
                .join("+");
            (info, label)
        }
    };
    let mask = match &req.mask {
        Some(id) => {
            let row = owned_image(state, caller, id, "image").await?;
            Some(BlobRef {
                id: row.id,
                sha256: row.sha256,
            })
        }
        None => None,
    };
    let max_size = match req.method {
        Method::Gatys => Some(req.max_size.unwrap_or(cfg.gatys_max_size)),
        _ => req.max_size,
    };
    let (ow, oh) = engine::output_size(image.width as u32, image.height as u32, max_size);
    if req.method == Method::Adain && ow.min(oh) < engine::ADAIN_MIN_SIDE {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            format!(
                "adain needs at least {} pixels on each side; the output would be {ow}x{oh}",
                engine::ADAIN_MIN_SIDE
            ),
        ));
    }
    let spec = JobSpec {
        method: req.method,
        image: BlobRef {
            id: image.id.clone(),
            sha256: image.sha256.clone(),
        },
        model: model.name.clone(),
        styles,
        style_label: label,
        strength,
        preserve_color: req.preserve_color,
        max_size: req.max_size,
        mask,
        format,
        iterations: req.iterations,
        training: None,
    };
    Ok(Resolved {
        spec,
        model,
        out_pixels: ow as u64 * oh as u64,
    })
}

/// Fetches a spec's input blobs.
pub async fn fetch_inputs(state: &AppState, spec: &JobSpec) -> ApiResult<Inputs> {
    let get = |sha: String, id: String| async move {
        state.blobs.get(&sha).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                ApiError::unprocessable("input_missing", format!("image `{id}` was deleted"))
            }
            e => ApiError::from(e),
        })
    };
    let content = get(spec.image.sha256.clone(), spec.image.id.clone()).await?;
    let mut styles: Vec<(Bytes, f32)> = Vec::new();
    for s in &spec.styles {
        styles.push((
            get(s.image.sha256.clone(), s.image.id.clone()).await?,
            s.weight,
        ));
    }
    let mask = match &spec.mask {
        Some(m) => Some(get(m.sha256.clone(), m.id.clone()).await?),
        None => None,
    };
    Ok(Inputs {
        content,
        styles,
        mask,
    })
}

/// Stylise an image: at once (200) for fast and adain within the pixel budget, else as a job (202).
#[utoipa::path(
    post,
    path = "/v1/stylize",
    operation_id = "stylize",
    tag = "stylize",
    request_body = StylizeRequest,
    responses(
        (status = 200, description = "Done synchronously", body = StylizeResult),
        (status = 202, description = "Queued as a job", body = JobAccepted),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::error::ErrorBody),
        (status = 403, description = "Storage quota exceeded", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown image or style", body = crate::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid request (parameters, method, missing model)", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    ),
    security(("api_key" = []), ())
)]
pub async fn stylize(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<StylizeRequest>,
) -> ApiResult<Response> {
    let t0 = Instant::now();
    let r = resolve(&state, &caller, &req).await?;
    caller.check_quota(&state, 0).await?;
    let sync = req.method != Method::Gatys
        && !req.prefer_async
        && r.out_pixels <= state.config.sync_pixel_budget
        && !state.shutting_down();
    let spec_json = serde_json::to_string(&r.spec).map_err(ApiError::internal)?;
    if !sync {
        if state.shutting_down() {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        let mut job = JobRow::queued(
            new_id("job"),
            &caller.owner,
            r.spec.method.name(),
            &r.spec.style_label,
            &r.spec.image.id,
            spec_json,
            state.config.max_attempts as i64,
        );
        job.device = state.config.job_device(&job.method).into();
        db::insert_job(&state.db, &job).await?;
        state.hub.new_job.notify_one();
        state.hub.changed(&job.id);
        return Ok(accepted(&job.id));
    }
    let inputs = fetch_inputs(&state, &r.spec).await?;
    let tl = Instant::now();
    let model = state.models.get(&r.model).await?;
    let load_ms = tl.elapsed().as_secs_f64() * 1000.0;
    let spec = r.spec.clone();
    let device = state.device.clone();
    let limits = limits(&state);
    let (end, waited) = state
        .run_inference(move || {
            engine::execute(&spec, &inputs, &model, &device, limits, None, &mut |_| {})
        })
        .await?;
    let out = match end? {
        RunEnd::Done(o) => o,
        RunEnd::Cancelled => return Err(ApiError::internal("cancelled unexpectedly")),
    };
    state
        .metrics
        .inference_seconds
        .with_label_values(&[r.spec.method.name(), "sync"])
        .observe(
            (out.timings.decode_ms + out.timings.inference_ms + out.timings.encode_ms) / 1000.0,
        );
    let ts = Instant::now();
    let bytes = Bytes::from(out.bytes);
    let job_id = new_id("job");
    let sha = crate::store::sha256_hex(&bytes);
    db::add_blob_intent(&state.db, &sha, &job_id).await?;
    state.blobs.put(bytes.clone()).await?;
    let mut timings = out.timings;
    timings.queue_ms = waited.as_secs_f64() * 1000.0;
    timings.load_ms = load_ms;
    timings.store_ms = ts.elapsed().as_secs_f64() * 1000.0;
    timings.total_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let now = now_ms();
    let mut job = JobRow::queued(
        job_id,
        &caller.owner,
        r.spec.method.name(),
        &r.spec.style_label,
        &r.spec.image.id,
        spec_json,
        state.config.max_attempts as i64,
    );
    let result = ResultRow {
        id: new_id("res"),
        owner: caller.owner.clone(),
        job_id: job.id.clone(),
        image_id: r.spec.image.id.clone(),
        style: r.spec.style_label.clone(),
        method: r.spec.method.name().into(),
        sha256: sha.clone(),
        format: r.spec.format.clone(),
        width: out.width as i64,
        height: out.height as i64,
        bytes: bytes.len() as i64,
        timings: serde_json::to_string(&timings).map_err(ApiError::internal)?,
        content_loss: out.content_loss,
        style_loss: out.style_loss,
        created_at: now,
    };
    job.state = job_state::SUCCEEDED.into();
    job.stage = job_state::SUCCEEDED.into();
    job.fraction = 1.0;
    job.attempts = 1;
    job.result_id = Some(result.id.clone());
    job.started_at = Some(now);
    job.finished_at = Some(now);
    db::insert_sync(&state.db, &job, &result).await?;
    if let Err(e) = db::clear_blob_intent(&state.db, &sha, &job.id).await {
        tracing::warn!(sha, error = %e, "clearing a blob intent");
    }
    state.blobs.ensure(&sha, bytes).await?;
    Ok(axum::Json(StylizeResult {
        url: format!("/v1/results/{}", result.id),
        result: result.id,
        job: job.id,
        width: out.width,
        height: out.height,
        format: r.spec.format.clone(),
        timings,
    })
    .into_response())
}

/// The engine limits from the configuration.
pub fn limits(state: &AppState) -> engine::EngineLimits {
    engine::EngineLimits {
        max_pixels: state.config.max_pixels,
        gatys_iterations: state.config.gatys_iterations,
        gatys_max_size: state.config.gatys_max_size,
    }
}
