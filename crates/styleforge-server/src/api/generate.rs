//! New images from a trained DCGAN generator in the library: a grid of samples, or a strip
//! interpolating between two latents.

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use styleforge_core::image_io::Format;
use utoipa::IntoParams;

use super::{ApiQuery, image_response};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use styleforge_core::library::{Loaded, ModelKind};
use crate::state::AppState;

/// Most images one request returns.
pub const MAX_SAMPLES: u32 = 64;

/// What to generate.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SamplesQuery {
    /// Number of images, 1-64 (default 16).
    #[param(minimum = 1, maximum = 64)]
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    pub n: Option<u32>,
    /// Seed of the latents (default 0): the same seed gives the same images.
    #[param(minimum = 0, maximum = 4294967295_u64)]
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    pub seed: Option<u32>,
    /// A strip interpolating between two latents instead of independent samples.
    #[serde(default)]
    pub interpolate: Option<bool>,
}

/// Samples from a DCGAN generator, as one PNG grid of 64×64 images.
#[utoipa::path(
    get,
    path = "/v1/generators/{name}/samples",
    operation_id = "generator_samples",
    tag = "styles",
    params(("name" = String, Path, description = "Library model name (method `generate`)"), SamplesQuery),
    responses(
        (status = 200, description = "PNG grid", content(("image/png"))),
        (status = 400, description = "Bad parameters", body = crate::error::ErrorBody),
        (status = 404, description = "No generator of that name", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    )
)]
pub async fn samples(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<SamplesQuery>,
) -> ApiResult<Response> {
    let n = q.n.unwrap_or(16);
    if n == 0 || n > MAX_SAMPLES {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("n must be within 1..={MAX_SAMPLES}"),
        ));
    }
    let info = match state.models.info(&name).await {
        Ok(i) if ModelKind::of(&i) == Some(ModelKind::Dcgan) => i,
        _ => return Err(ApiError::not_found("generator", &name)),
    };
    let model = state.models.get(&info).await?;
    let device = state.device.clone();
    let (seed, interpolate) = (q.seed.unwrap_or(0) as u64, q.interpolate.unwrap_or(false));
    let (out, _) = state
        .run_inference(move || {
            let Loaded::Dcgan(g) = &*model else {
                return Err(styleforge_core::Error::Param("not a DCGAN generator".into()));
            };
            styleforge_core::methods::generate::grid(g, n as usize, seed, interpolate, &device)?
                .encode(Format::Png)
        })
        .await?;
    let b = Bytes::from(out.map_err(ApiError::from_core)?);
    let sha = crate::store::sha256_hex(&b);
    Ok(image_response(b, &sha))
}
