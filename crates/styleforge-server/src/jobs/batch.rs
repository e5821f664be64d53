//! Batches: many images × styles in one request, one job per pair, all checked before any is
//! made and created in one transaction (all of them or none), with aggregate progress and the
//! results as one ZIP archive.

use std::io::Write;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{self, BatchRow, JobRow, state as job_state};
use crate::jobs::request::{StylizeRequest, resolve_spec, webhook_target};
use crate::jobs::webhooks::WebhookEvent;
use crate::jobs::{JobError, JobResult, queued_job};
use crate::state::{AppState, new_id};

/// Fields of a stylisation request that a batch sets itself (per pair, or for every job).
const RESERVED: [&str; 6] = ["image", "style", "styles", "webhook", "webhook_events", "async"];

/// A batch request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Content image ids (from `POST /v1/images`).
    pub images: Vec<String>,
    /// Styles, as `style` of `POST /v1/stylize` (built-in paintings, library models, custom
    /// style ids). One job per image × style.
    pub styles: Vec<String>,
    /// Options for every job: any field of a stylisation request except `image`, `style`,
    /// `styles`, `webhook`, `webhook_events` and `async` (`method`, `strength`,
    /// `preserve_color`, `max_size`, `format`, ...).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// A webhook every job of the batch sends its events to (see `POST /v1/stylize`).
    #[serde(default)]
    #[schema(example = "https://example.com/hooks/styleforge")]
    pub webhook: Option<String>,
    /// Which events go to `webhook` (default `start` and `completed`).
    #[serde(default)]
    pub webhook_events: Option<Vec<WebhookEvent>>,
}

/// The stylisation request of one pair.
fn pair_request(req: &BatchRequest, image: &str, style: &str) -> JobResult<StylizeRequest> {
    let mut obj = req.options.clone();
    obj.insert("image".into(), image.into());
    obj.insert("style".into(), style.into());
    if let Some(w) = &req.webhook {
        obj.insert("webhook".into(), w.clone().into());
    }
    if let Some(e) = &req.webhook_events {
        obj.insert("webhook_events".into(), serde_json::to_value(e).map_err(JobError::internal)?);
    }
    serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| JobError::invalid("invalid_parameter", format!("options: {e}")))
}

/// Checks every pair and creates the batch and its jobs. Errors: an empty or too large batch,
/// a reserved option, and the first pair's error that is found (named with its image and
/// style); then nothing is created.
pub async fn create(state: &AppState, owner: &str, req: &BatchRequest) -> JobResult<BatchRow> {
    if state.shutting_down() {
        return Err(JobError::unavailable("the server is shutting down"));
    }
    let total = req.images.len() * req.styles.len();
    if total == 0 {
        return Err(JobError::invalid("invalid_parameter", "a batch needs at least one image and one style"));
    }
    let max = state.config.max_batch_jobs as usize;
    if total > max {
        return Err(JobError::invalid(
            "batch_too_large",
            format!("{} images × {} styles is {total} jobs; a batch holds at most {max}", req.images.len(), req.styles.len()),
        ));
    }
    if let Some(k) = RESERVED.iter().find(|k| req.options.contains_key(**k)) {
        return Err(JobError::invalid(
            "invalid_parameter",
            format!("options may not set `{k}`: the batch sets it (images, styles, webhook)"),
        ));
    }
    let id = new_id("batch");
    let t0 = db::now_ms();
    let mut jobs: Vec<JobRow> = Vec::with_capacity(total);
    let mut webhook = None;
    for image in &req.images {
        for style in &req.styles {
            let pair = pair_request(req, image, style)?;
            if jobs.is_empty() {
                webhook = webhook_target(state, &pair).await?;
            }
            let (method, spec) = resolve_spec(state, owner, &pair).await.map_err(|e| {
                JobError::new(e.kind, e.code, format!("image `{image}` × style `{style}`: {}", e.message))
            })?;
            let mut job = queued_job(state, owner, method, &spec, webhook.as_ref())?;
            job.batch_id = Some(id.clone());
            // Ordered as asked: images, then styles.
            job.created_at = t0 + jobs.len() as i64;
            job.updated_at = job.created_at;
            jobs.push(job);
        }
    }
    let batch = BatchRow {
        id,
        owner: owner.to_string(),
        request: serde_json::to_string(req).map_err(JobError::internal)?,
        total: total as i64,
        created_at: t0,
    };
    db::insert_batch(&state.db, &batch, &jobs).await?;
    for j in &jobs {
        state.hub.changed(&j.id);
    }
    state.hub.new_job.notify_waiters();
    state.hub.new_job.notify_one();
    Ok(batch)
}

/// A batch's state from its jobs' states: `queued` (none started), `running`, then once all
/// have ended `succeeded` (all), `failed` (none succeeded, some failed), `cancelled` (all
/// cancelled) or `partial` (some succeeded, others failed or were cancelled).
pub fn aggregate_state(jobs: &[JobRow]) -> &'static str {
    let count = |s: &str| jobs.iter().filter(|j| j.state == s).count();
    let (queued, running) = (count(job_state::QUEUED), count(job_state::RUNNING));
    let (ok, failed, cancelled) = (count(job_state::SUCCEEDED), count(job_state::FAILED), count(job_state::CANCELLED));
    if queued + running > 0 {
        return if running == 0 && ok + failed + cancelled == 0 { "queued" } else { "running" };
    }
    match (ok, failed, cancelled) {
        (o, 0, 0) if o > 0 => "succeeded",
        (0, 0, c) if c > 0 => "cancelled",
        (0, _, _) => "failed",
        _ => "partial",
    }
}

/// The file name of a job's result in the archive: its position, image and style.
pub fn entry_name(index: usize, job: &JobRow, format: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(60)
            .collect()
    };
    let ext = match format {
        "jpeg" => "jpg",
        f => f,
    };
    format!("{:03}-{}-{}.{ext}", index + 1, clean(&job.image_id), clean(&job.style))
}

/// Writes a ZIP archive (entries stored, not compressed: images and videos are compressed
/// already) of `files` (name, bytes).
pub fn zip_archive(files: &[(String, bytes::Bytes)]) -> std::io::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(files.iter().any(|(_, b)| b.len() as u64 >= u32::MAX as u64));
    for (name, bytes) in files {
        w.start_file(name.as_str(), opts).map_err(std::io::Error::other)?;
        w.write_all(bytes)?;
    }
    Ok(w.finish().map_err(std::io::Error::other)?.into_inner())
}
