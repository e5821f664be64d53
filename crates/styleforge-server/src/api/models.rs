//! Models uploaded over the API: ONNX image-to-image models, checked as `styleforge models import`
//! checks them (decoded, conventions read, compiled and run once by tract) and stored in the
//! library for the key that uploaded them, as the service's trained models are: only that key's
//! gallery lists them, only it can run and delete them (`DELETE /v1/styles/{name}`).

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use styleforge_core::Error as CoreError;
use styleforge_core::library::ModelInfo;
use styleforge_core::onnx::ValueRange;
use styleforge_core::onnx::runtime::{Channels, Overrides};
use utoipa::IntoParams;

use super::ApiQuery;
use super::images::created;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::jobs::training::OWNER_KEY;
use crate::models::{StyleInfo, split_tags};
use crate::state::AppState;

/// Query parameters of an ONNX model upload.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelUpload {
    /// The model's name, used as `style`: 1-64 lower-case letters, digits, `-` or `_`, not a
    /// model or painting name already in use.
    pub name: String,
    /// Title (default: the model's own `title` metadata, else the name).
    pub title: Option<String>,
    /// Comma-separated keywords.
    pub tags: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Licence of the weights (default: the model's own `license` metadata). Needed for the
    /// model to be downloadable again from `/v1/styles/{name}/onnx`.
    pub license: Option<String>,
    /// Where the model comes from.
    pub source_url: Option<String>,
    /// The input's value range: `0..255`, `0..1` or `-1..1` (default: the model's
    /// `styleforge.input_range` metadata, else 0..255).
    pub input_range: Option<String>,
    /// The output's value range (default: the model's metadata, else the input's).
    pub output_range: Option<String>,
    /// Channel order, `RGB` or `BGR` (default RGB).
    pub channels: Option<String>,
    /// Pad height and width to a multiple of this before running (1-256).
    pub size_multiple: Option<u32>,
}

/// Upload an ONNX image-to-image model (one image in, one image out, float32, NCHW or NHWC) as a
/// style of your own, run by the `fast` method.
#[utoipa::path(
    post,
    path = "/v1/models",
    operation_id = "upload_model",
    tag = "styles",
    params(ModelUpload),
    request_body(description = "The ONNX model (protobuf bytes, all tensors inside)", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored; pass `name` as `style`", body = StyleInfo),
        (status = 400, description = "Empty body", body = crate::error::ErrorBody),
        (status = 403, description = "A publishable key, or the storage quota exceeded", body = crate::error::ErrorBody),
        (status = 409, description = "The name is taken", body = crate::error::ErrorBody),
        (status = 413, description = "Body over the upload limit", body = crate::error::ErrorBody),
        (status = 422, description = "Not an ONNX image model styleforge can run, or bad parameters", body = crate::error::ErrorBody),
    )
)]
pub async fn upload(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ModelUpload>, body: Bytes) -> ApiResult<Response> {
    if caller.publishable {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "publishable keys cannot upload models: use a secret key from your server",
        ));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("empty_body", "the request body is empty: send an ONNX model"));
    }
    styleforge_core::library::validate_name(&q.name).map_err(ApiError::from_core)?;
    if state.models.painting(&q.name).is_some() || state.models.info(&q.name).await.is_ok() {
        return Err(ApiError::conflict("name_taken", format!("a style named `{}` exists: choose another name", q.name)));
    }
    caller.check_quota(&state, body.len() as u64).await?;
    let parse = |v: &Option<String>, f: fn(&str) -> styleforge_core::Result<ValueRange>| v.as_deref().map(f).transpose();
    let overrides = Overrides {
        input_range: parse(&q.input_range, ValueRange::parse).map_err(ApiError::from_core)?,
        output_range: parse(&q.output_range, ValueRange::parse).map_err(ApiError::from_core)?,
        channels: q.channels.as_deref().map(Channels::parse).transpose().map_err(ApiError::from_core)?,
        size_multiple: q.size_multiple,
    };
    let mut info = ModelInfo {
        name: q.name.clone(),
        title: q.title.unwrap_or_default(),
        tags: split_tags(&q.tags.unwrap_or_default()),
        description: q.description.unwrap_or_default(),
        license: q.license.unwrap_or_default(),
        source_url: q.source_url.unwrap_or_default(),
        ..Default::default()
    };
    info.training.insert(OWNER_KEY.into(), caller.owner.clone());
    info.training.insert("source".into(), "upload".into());
    let library = state.models.library().clone();
    let imported = tokio::task::spawn_blocking(move || library.import_onnx_bytes(body.to_vec(), info, &overrides, false))
        .await
        .map_err(ApiError::internal)?;
    let (info, _) = imported.map_err(|e| match e {
        CoreError::Weights(m) => ApiError::unprocessable("invalid_model", m),
        CoreError::Backend(m) => ApiError::unprocessable("invalid_model", format!("the model does not run: {m}")),
        CoreError::Param(m) if m.contains("already exists") => ApiError::conflict("name_taken", m),
        e => ApiError::from_core(e),
    })?;
    tracing::info!(model = %info.name, owner = %caller.owner, "ONNX model uploaded");
    Ok(created(&format!("/v1/styles/{}", info.name), &StyleInfo::from_model(&info)))
}
