//! A job's status as clients see it: in `GET /v1/jobs/{id}`, its event stream and its webhook
//! events.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::JobRow;
use crate::error::ErrorBody;

/// Progress of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobProgress {
    /// 0 to 1.
    pub fraction: f64,
    /// What it is doing (`queued`, `decoding`, `optimising 48x48`, ...).
    pub stage: String,
    /// Iteration (gatys).
    pub iteration: Option<i64>,
    /// Iterations planned (gatys).
    pub iterations: Option<i64>,
    /// Estimated seconds left.
    pub eta_seconds: Option<f64>,
}

/// A job's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Method.
    pub method: String,
    /// Style (model name or style ids).
    pub style: String,
    /// Content image id.
    pub image: String,
    /// Progress.
    pub progress: JobProgress,
    /// Attempts so far (a job is retried when its worker is lost).
    pub attempts: i64,
    /// Whether a cancel has been asked for.
    pub cancel_requested: bool,
    /// Result id, once succeeded.
    pub result: Option<String>,
    /// Result image, once succeeded.
    pub result_url: Option<String>,
    /// Why it failed.
    pub error: Option<ErrorBody>,
    /// This status.
    pub url: String,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// First start (ms since the epoch).
    pub started_at: Option<i64>,
    /// End (ms since the epoch).
    pub finished_at: Option<i64>,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// The batch it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

impl From<&JobRow> for JobStatus {
    fn from(j: &JobRow) -> Self {
        Self {
            id: j.id.clone(),
            state: j.state.clone(),
            method: j.method.clone(),
            style: j.style.clone(),
            image: j.image_id.clone(),
            progress: JobProgress {
                fraction: j.fraction,
                stage: j.stage.clone(),
                iteration: j.iteration,
                iterations: j.iterations,
                eta_seconds: j.eta_ms.map(|m| m as f64 / 1000.0),
            },
            attempts: j.attempts,
            cancel_requested: j.cancel_requested,
            result: j.result_id.clone(),
            result_url: j.result_id.as_ref().map(|r| format!("/v1/results/{r}")),
            error: j.error_code.as_ref().map(|c| ErrorBody {
                code: c.clone(),
                message: j.error_message.clone().unwrap_or_default(),
            }),
            url: format!("/v1/jobs/{}", j.id),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            updated_at: j.updated_at,
            batch: j.batch_id.clone(),
        }
    }
}
