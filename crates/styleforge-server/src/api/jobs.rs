//! Jobs: status with progress, cancel, Server-Sent Events, result, and the per-key history.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::{ApiQuery, PageQuery, blob_response, encode_cursor, paginate};
use crate::auth::Caller;
use crate::db::{self, JobRow, state as job_state};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use crate::jobs::status::{JobProgress, JobStatus};

/// One Server-Sent Event of a job's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    /// `progress` while the job is queued or running; `done` once, at the end.
    pub event: JobEventKind,
    /// The job's status (a `JobStatus` as JSON).
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

/// Kinds of job event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobEventKind {
    /// The job changed.
    Progress,
    /// The job ended (succeeded, failed or cancelled); the stream closes.
    Done,
}

/// A page of jobs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    /// Jobs, newest first.
    pub items: Vec<JobStatus>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

async fn owned_job(state: &AppState, caller: &Caller, id: &str) -> ApiResult<JobRow> {
    db::get_job(&state.db, id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))
}

/// A job's status and progress.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Status", body = JobStatus),
        (status = 404, description = "No such job (or not yours)", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<JobStatus>> {
    Ok(axum::Json(JobStatus::from(
        &owned_job(&state, &caller, &id).await?,
    )))
}

/// Cancel a job: at once when queued; a running job stops at its next check.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled, or cancelling (`cancel_requested`)", body = JobStatus),
        (status = 404, description = "No such job (or not yours)", body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<JobStatus>> {
    let before = owned_job(&state, &caller, &id).await?;
    if matches!(
        before.state.as_str(),
        job_state::SUCCEEDED | job_state::FAILED
    ) {
        return Err(ApiError::conflict(
            "job_finished",
            format!("job `{id}` has already {}", before.state),
        ));
    }
    let job = crate::jobs::cancel(&state, &id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("job", &id))?;
    Ok(axum::Json(JobStatus::from(&job)))
}

struct EventState {
    state: AppState,
    id: String,
    owner: String,
    rx: tokio::sync::broadcast::Receiver<String>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    last: Option<(i64, String, u64)>,
    first: bool,
    done: bool,
}

/// A job's progress as Server-Sent Events: `progress` events while it is queued or running, then
/// one `done` event with the final status, after which the stream ends.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    operation_id = "job_events",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Event stream; each event's data is a JobStatus", content_type = "text/event-stream", body = JobEvent),
        (status = 404, description = "No such job (or not yours)", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    owned_job(&state, &caller, &id).await?;
    let st = EventState {
        rx: state.hub.events.subscribe(),
        shutdown: state.shutdown.subscribe(),
        state,
        id,
        owner: caller.owner,
        last: None,
        first: true,
        done: false,
    };
    let stream = futures_util::stream::unfold(st, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if *s.shutdown.borrow() {
                return None;
            }
            if !s.first {
                tokio::select! {
                    r = s.rx.recv() => match r {
                        Ok(jid) if jid != s.id => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = s.shutdown.changed() => return None,
                }
            }
            s.first = false;
            let job = match db::get_job(&s.state.db, &s.id, &s.owner).await {
                Ok(Some(j)) => j,
                _ => return None,
            };
            let key = (job.updated_at, job.state.clone(), job.fraction.to_bits());
            if s.last.as_ref() == Some(&key) {
                continue;
            }
            s.last = Some(key);
            let terminal = job_state::is_terminal(&job.state);
            let status = JobStatus::from(&job);
            let ev = Event::default()
                .event(if terminal { "done" } else { "progress" })
                .json_data(&status)
                .unwrap_or_else(|_| Event::default().comment("unserialisable"));
            s.done = terminal;
            return Some((Ok(ev), s));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A finished job's result image (409 until it has succeeded).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/result",
    operation_id = "get_job_result",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The result image, animation or video", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("video/mp4"), ("video/webm"))),
        (status = 206, description = "The byte range asked for with `Range: bytes=…`", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("video/mp4"), ("video/webm"))),
        (status = 416, description = "The range asks for no byte of it", body = crate::error::ErrorBody),
        (status = 404, description = "No such job (or not yours)", body = ErrorBody),
        (status = 409, description = "Not succeeded (yet)", body = ErrorBody),
    )
)]
pub async fn result(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let job = owned_job(&state, &caller, &id).await?;
    let Some(rid) = job.result_id.filter(|_| job.state == job_state::SUCCEEDED) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_not_succeeded",
            format!("job `{id}` is {}", job.state),
        ));
    };
    let r = super::results::owned_result(&state, &caller, &rid).await?;
    blob_response(&state, &r.sha256).await
}

/// Your stylisations (synchronous ones and jobs), newest first.
#[utoipa::path(
    get,
    path = "/v1/history",
    operation_id = "list_history",
    tag = "jobs",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "Bad query", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<JobPage>> {
    let (limit, cursor) = q.resolve()?;
    let rows = db::list_jobs(&state.db, &caller.owner, cursor, limit + 1).await?;
    let (items, next_cursor) = paginate(
        &rows,
        limit,
        |r| JobStatus::from(r),
        |j| encode_cursor(j.created_at, &j.id),
    );
    Ok(axum::Json(JobPage { items, next_cursor }))
}
