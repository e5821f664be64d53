//! Training jobs: a new fast style from a style image. The job trains a TransformerNet with the
//! perceptual loss on the server's content photos (`training_content_dir`), reports progress
//! like any job, and on success adds the network to the model library, visible to its owner's
//! gallery and usable with method `fast`; the job's result is a preview of the new style.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use super::stylize::{JobAccepted, accepted};
use crate::auth::Caller;
use crate::db::{self, state as job_state};
use crate::jobs::{BlobRef, JobSpec, TrainingSpec, enqueue};
use crate::error::{ApiError, ApiResult};
use styleforge_core::library::ModelKind;
use crate::state::{AppState, new_id};

/// A training request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingRequest {
    /// The style image: a custom style id (from `POST /v1/styles`) or one of your image ids.
    pub style: String,
    /// Title of the new style in the gallery (default: the style image's title).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// Optimisation steps (default from the server's configuration).
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    #[schema(minimum = 1, maximum = 40000)]
    pub steps: Option<u32>,
    /// Network width: 8 (fastest), 16 or 32 (stock). Default 16.
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    #[schema(minimum = 8, maximum = 32)]
    pub width: Option<u32>,
}

/// Train a new fast style from a style image (always a job).
#[utoipa::path(
    post,
    path = "/v1/trainings",
    operation_id = "create_training",
    tag = "stylize",
    request_body = TrainingRequest,
    responses(
        (status = 202, description = "Queued as a job", body = JobAccepted),
        (status = 400, description = "Malformed JSON", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed with this key", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown style image", body = crate::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid parameters, or training is not set up on this server", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limited, or too many trainings in progress for this key", body = crate::error::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TrainingRequest>,
) -> ApiResult<Response> {
    let cfg = &state.config;
    let steps = req.steps.unwrap_or(cfg.training_steps);
    if steps == 0 || steps > cfg.max_training_steps {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            format!("steps must be within 1..={}", cfg.max_training_steps),
        ));
    }
    let width = req.width.unwrap_or(16);
    if ![8, 16, 32].contains(&width) {
        return Err(ApiError::unprocessable("invalid_parameter", "width must be 8, 16 or 32"));
    }
    if req.title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::unprocessable("invalid_parameter", "title is longer than 200 characters"));
    }
    if !cfg.training_content_dir.as_ref().is_some_and(|d| d.is_dir()) {
        return Err(ApiError::unprocessable(
            "training_unavailable",
            "this server has no training photos (configuration `training_content_dir`)",
        ));
    }
    let image = db::get_image(&state.db, &req.style, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("image", &req.style))?;
    let models = state.models.list().await?;
    let vgg = ["vgg16", "vgg19"]
        .into_iter()
        .find(|n| models.iter().any(|m| m.name == *n && ModelKind::of(m) == Some(ModelKind::Vgg)))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "training_unavailable",
                "no loss network in the library: add `vgg16` or `vgg19` (styleforge models download vgg16)",
            )
        })?;
    let active = db::list_jobs(&state.db, &caller.owner, None, 1000)
        .await?
        .into_iter()
        .filter(|j| j.method == "train" && (j.state == job_state::QUEUED || j.state == job_state::RUNNING))
        .count();
    if active as u32 >= cfg.max_trainings_per_key {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "training_limit",
            format!(
                "{active} training job(s) already queued or running for this key (limit {})",
                cfg.max_trainings_per_key
            ),
        ));
    }
    let job_id = new_id("job");
    let name = format!("trained-{}", job_id.trim_start_matches("job_").to_lowercase());
    let title = req.title.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| {
        if image.title.is_empty() { "My style".into() } else { image.title.clone() }
    });
    let spec = JobSpec {
        method: "fast".into(),
        image: BlobRef { id: image.id.clone(), sha256: image.sha256.clone() },
        model: vgg.to_string(),
        styles: Vec::new(),
        style_label: name.clone(),
        strength: 1.0,
        preserve_color: false,
        max_size: None,
        mask: None,
        format: "png".into(),
        iterations: Some(steps),
        training: Some(TrainingSpec {
            name: name.clone(),
            title,
            steps,
            width: width as usize,
            crop: cfg.training_crop,
            batch: 4,
        }),
        avatar: None,
        sequence: None,
    };
    let job = enqueue(&state, &caller.owner, "train", &spec).await?;
    Ok(accepted(&job))
}
