//! Webhooks: the secret deliveries are signed with, and a job's deliveries. Jobs name their
//! webhook in `POST /v1/stylize` and `POST /v1/batches`; sending is [`crate::jobs::webhooks`].

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::db::{self, DeliveryRow};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::jobs::webhooks;
use crate::state::AppState;

/// The secret webhook deliveries are signed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookSecret {
    /// `whsec_` and the base64 key: verify `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
    /// `"{webhook-id}.{webhook-timestamp}.{body}"` under the decoded key), as the Standard
    /// Webhooks libraries do.
    pub secret: String,
}

/// The secret your webhooks are signed with (made on first use). Secret keys only.
#[utoipa::path(
    get,
    path = "/v1/webhook-secret",
    operation_id = "get_webhook_secret",
    tag = "webhooks",
    responses(
        (status = 200, description = "The secret", body = WebhookSecret),
    )
)]
pub async fn secret(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<WebhookSecret>> {
    Ok(axum::Json(WebhookSecret { secret: webhooks::secret(&state, &caller.owner).await? }))
}

/// Replace your webhook secret: deliveries from now on (retries included) are signed with the
/// new one, and for a day also with the old one (two `v1,` signatures in `webhook-signature`),
/// so receivers can switch without losing deliveries.
#[utoipa::path(
    post,
    path = "/v1/webhook-secret",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    responses(
        (status = 200, description = "The new secret", body = WebhookSecret),
    )
)]
pub async fn rotate(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<WebhookSecret>> {
    Ok(axum::Json(WebhookSecret { secret: webhooks::rotate_secret(&state, &caller.owner).await? }))
}

/// One webhook event of a job and how its delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// The delivery id, sent as `webhook-id` (the same on every retry).
    pub id: String,
    /// Order among the job's events, from 1.
    pub seq: i64,
    /// `start`, `progress` or `completed`.
    pub event: String,
    /// Where it goes.
    pub url: String,
    /// `pending` (waiting to be sent or retried), `delivering`, `delivered` or `failed` (given up).
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The receiver's status at the last attempt.
    pub last_status: Option<i64>,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    /// When the next attempt is due (ms since the epoch; pending deliveries).
    pub next_attempt_at: Option<i64>,
    /// Every attempt: `{at, status, error, ms}`.
    #[schema(value_type = Vec<Object>)]
    pub history: serde_json::Value,
    /// When the event happened (ms since the epoch).
    pub created_at: i64,
    /// When the receiver took it (ms since the epoch).
    pub delivered_at: Option<i64>,
    /// The body sent (JSON: `type`, `timestamp`, `data`).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<&DeliveryRow> for Delivery {
    fn from(d: &DeliveryRow) -> Self {
        Self {
            id: d.id.clone(),
            seq: d.seq,
            event: d.event.clone(),
            url: d.url.clone(),
            state: d.state.clone(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            next_attempt_at: (d.state == db::delivery_state::PENDING).then_some(d.next_attempt_at),
            history: serde_json::from_str(&d.history).unwrap_or_default(),
            created_at: d.created_at,
            delivered_at: d.delivered_at,
            payload: serde_json::from_str(&d.payload).unwrap_or_default(),
        }
    }
}

/// A job's webhook deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// In event order.
    pub items: Vec<Delivery>,
}

/// A job's webhook events and their deliveries, in order.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/deliveries",
    operation_id = "list_job_deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Deliveries", body = DeliveryList),
        (status = 404, description = "No such job (or not yours)", body = ErrorBody),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeliveryList>> {
    db::get_job(&state.db, &id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("job", &id))?;
    let rows = db::list_deliveries(&state.db, &id).await?;
    Ok(axum::Json(DeliveryList { items: rows.iter().map(Delivery::from).collect() }))
}
