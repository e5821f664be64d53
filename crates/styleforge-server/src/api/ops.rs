//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Health status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database and blob store answer and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    if state.shutting_down() {
        return Err(ApiError::unavailable("shutting down"));
    }
    state
        .db
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    state
        .blobs
        .check()
        .await
        .map_err(|e| ApiError::unavailable(format!("blob store: {e}")))?;
    Ok(axum::Json(Health {
        status: "ready".into(),
    }))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(counts) = db::job_counts(&state.db).await {
        for s in ["queued", "running", "succeeded", "failed", "cancelled"] {
            let n = counts
                .iter()
                .find(|(k, _)| k == s)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            state.metrics.jobs.with_label_values(&[s]).set(n);
        }
    }
    typed(
        "text/plain; version=0.0.4; charset=utf-8",
        state.metrics.render(),
    )
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
    security(())
)]
pub async fn openapi() -> Response {
    typed("application/json", crate::openapi::document_json())
}

/// A 200 response with `body` as `content_type`.
fn typed(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
