//! Batches: `POST /v1/batches` (images × styles, one job per pair), their aggregate status,
//! cancellation, and the results as a ZIP archive. The work is [`crate::jobs::batch`].

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiJson;
use crate::auth::Caller;
use crate::db::{self, BatchRow, JobRow, state as job_state};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::jobs::batch::{self, BatchRequest};
use crate::jobs::status::JobStatus;
use crate::state::AppState;

/// Counts of a batch's jobs by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchCounts {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// A batch and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchStatus {
    /// Batch id.
    pub id: String,
    /// `queued`, `running`, then `succeeded`, `failed`, `cancelled` or `partial` (some
    /// succeeded, others did not).
    pub state: String,
    /// Jobs in the batch.
    pub total: i64,
    /// Jobs by state.
    pub counts: BatchCounts,
    /// Mean progress of the jobs, 0 to 1 (a job that failed or was cancelled counts the
    /// progress it had made); 1 only when every job succeeded.
    pub fraction: f64,
    /// The jobs, images then styles in the order asked.
    pub jobs: Vec<JobStatus>,
    /// This status.
    pub url: String,
    /// The results as a ZIP archive (once every job has ended).
    pub results_url: String,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
}

fn status_of(b: &BatchRow, jobs: &[JobRow]) -> BatchStatus {
    let mut counts = BatchCounts::default();
    for j in jobs {
        match j.state.as_str() {
            job_state::QUEUED => counts.queued += 1,
            job_state::RUNNING => counts.running += 1,
            job_state::SUCCEEDED => counts.succeeded += 1,
            job_state::FAILED => counts.failed += 1,
            _ => counts.cancelled += 1,
        }
    }
    let fraction = if jobs.is_empty() {
        0.0
    } else {
        jobs.iter()
            .map(|j| if j.state == job_state::SUCCEEDED { 1.0 } else { j.fraction.clamp(0.0, 1.0) })
            .sum::<f64>()
            / jobs.len() as f64
    };
    let url = format!("/v1/batches/{}", b.id);
    BatchStatus {
        id: b.id.clone(),
        state: batch::aggregate_state(jobs).into(),
        total: b.total,
        counts,
        fraction,
        jobs: jobs.iter().map(JobStatus::from).collect(),
        results_url: format!("{url}/results.zip"),
        url,
        created_at: b.created_at,
    }
}

async fn owned_batch(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(BatchRow, Vec<JobRow>)> {
    let b = db::get_batch(&state.db, id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("batch", id))?;
    let jobs = db::batch_jobs(&state.db, id).await?;
    Ok((b, jobs))
}

/// Stylise many images with many styles: one job per image × style (at most the server's
/// `max_batch_jobs`, 100 unless configured). Every pair is checked first; when one is wrong,
/// nothing is created.
#[utoipa::path(
    post,
    path = "/v1/batches",
    operation_id = "create_batch",
    tag = "batches",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "Created; its jobs are queued", body = BatchStatus),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "Storage quota exceeded", body = ErrorBody),
        (status = 404, description = "Unknown image or style", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another request", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid request (too many jobs, options, webhook)", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BatchRequest>,
) -> ApiResult<Response> {
    caller.check_quota(&state, 0).await?;
    let b = batch::create(&state, &caller.owner, &req).await?;
    let jobs = db::batch_jobs(&state.db, &b.id).await?;
    let status = status_of(&b, &jobs);
    let mut resp = (StatusCode::CREATED, axum::Json(&status)).into_response();
    if let Ok(v) = HeaderValue::from_str(&status.url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// A batch: aggregate state and progress, and each job.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    operation_id = "get_batch",
    tag = "batches",
    params(("id" = String, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The batch", body = BatchStatus),
        (status = 404, description = "No such batch (or not yours)", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<BatchStatus>> {
    let (b, jobs) = owned_batch(&state, &caller, &id).await?;
    Ok(axum::Json(status_of(&b, &jobs)))
}

/// Cancel every job of a batch that has not ended.
#[utoipa::path(
    post,
    path = "/v1/batches/{id}/cancel",
    operation_id = "cancel_batch",
    tag = "batches",
    params(("id" = String, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The batch afterwards (running jobs stop shortly)", body = BatchStatus),
        (status = 404, description = "No such batch (or not yours)", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<BatchStatus>> {
    let (b, jobs) = owned_batch(&state, &caller, &id).await?;
    for j in jobs.iter().filter(|j| !job_state::is_terminal(&j.state)) {
        crate::jobs::cancel(&state, &j.id, &caller.owner).await?;
    }
    let jobs = db::batch_jobs(&state.db, &b.id).await?;
    Ok(axum::Json(status_of(&b, &jobs)))
}

/// The results of a batch as a ZIP archive (entries `NNN-IMAGE-STYLE.EXT` in the order asked,
/// and `manifest.json`: the batch's status), once every job has ended.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}/results.zip",
    operation_id = "get_batch_results",
    tag = "batches",
    params(("id" = String, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The archive", content_type = "application/zip"),
        (status = 404, description = "No such batch (or not yours)", body = ErrorBody),
        (status = 409, description = "Jobs of the batch are still queued or running", body = ErrorBody),
    )
)]
pub async fn results_zip(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (b, jobs) = owned_batch(&state, &caller, &id).await?;
    let status = status_of(&b, &jobs);
    if status.counts.queued + status.counts.running > 0 {
        let mut e = ApiError::conflict(
            "batch_not_finished",
            format!(
                "{} of the batch's {} jobs have not ended; the archive is made once all have",
                status.counts.queued + status.counts.running,
                status.total
            ),
        );
        e.retry_after = Some(2);
        return Err(e);
    }
    let mut files = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let Some(rid) = &j.result_id else { continue };
        let Some(r) = db::get_result(&state.db, rid, &caller.owner).await? else { continue };
        let bytes = state.blobs.get(&r.sha256).await?;
        files.push((batch::entry_name(i, j, &r.format), bytes));
    }
    let manifest = serde_json::to_vec_pretty(&status).map_err(ApiError::internal)?;
    files.push(("manifest.json".to_string(), bytes::Bytes::from(manifest)));
    let archive = tokio::task::spawn_blocking(move || batch::zip_archive(&files))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut resp = (StatusCode::OK, archive).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.zip\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
