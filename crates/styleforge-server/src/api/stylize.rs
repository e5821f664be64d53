//! `POST /v1/stylize`: the request goes to the jobs layer ([`crate::jobs::request`]), which
//! answers at once (methods run synchronously, within the pixel budget) or queues a job.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::auth::Caller;
use crate::db::state as job_state;
use crate::error::ApiResult;
pub use crate::jobs::avatar::{AvatarFraming, AvatarRequest};
pub use crate::jobs::request::{OutputFormat, StylizeRequest, StylizeResult, WeightedStyle};
use crate::jobs::request::{self, Submitted};
use crate::state::AppState;

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

/// Stylise an image: at once (200) for the methods answered synchronously (fast, microast, adain,
/// cyclegan, cartoon) within the pixel budget, else as a job (202). With `avatar`, the photo is
/// first cut to a square around its face and the result is `size`×`size`; the answer (and the
/// result's info) says how it was framed.
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
        (status = 403, description = "Storage quota exceeded", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown image or style", body = crate::error::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid request (parameters, method, missing model)", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    )
)]
pub async fn stylize(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<StylizeRequest>,
) -> ApiResult<Response> {
    caller.check_quota(&state, 0).await?;
    if caller.publishable && (req.webhook.is_some() || req.webhook_events.is_some()) {
        return Err(crate::error::ApiError::new(
            StatusCode::FORBIDDEN,
            "key_not_permitted",
            "webhooks are set by your server, with a secret key; a publishable key cannot name one",
        ));
    }
    Ok(match request::submit(&state, &caller.owner, &req).await? {
        Submitted::Done(result) => axum::Json(result).into_response(),
        Submitted::Queued(job) => accepted(&job),
    })
}
