//! `POST /v1/faces`: the faces in an uploaded photo and the square an avatar of it would be cut
//! from (the work is in [`crate::jobs::avatar`]).

use axum::extract::State;

use super::ApiJson;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
pub use crate::jobs::avatar::{CropRect, FaceRect, FacesRequest, FacesResult};
use crate::state::AppState;

/// Find the faces in a photo (the built-in RFB-320 detector) and the avatar crop: the square
/// around the largest face enlarged 1.8×, or the centre square, with a note, when none is found.
#[utoipa::path(
    post,
    path = "/v1/faces",
    operation_id = "detect_faces",
    tag = "stylize",
    request_body = FacesRequest,
    responses(
        (status = 200, description = "The faces found (possibly none) and the crop", body = FacesResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "Unknown image", body = ErrorBody),
        (status = 413, description = "The image has too many pixels", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid request, or an image that no longer decodes", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn detect(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<FacesRequest>,
) -> ApiResult<axum::Json<FacesResult>> {
    Ok(axum::Json(crate::jobs::avatar::detect(&state, &caller.owner, &req).await?))
}
