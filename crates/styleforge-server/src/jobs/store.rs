//! Storing a run's result, once, for the synchronous path and the workers alike: the blob is
//! announced (an intent row), stored, and referred to by its result row; the intent is cleared
//! when the row is committed, so a writer killed in between leaves only a collectable intent.

use std::time::Instant;

use bytes::Bytes;

use crate::db::{self, JobRow, ResultRow, now_ms, state as job_state};
use crate::jobs::{JobResult, Output, Timings};
use crate::state::{AppState, new_id};

/// How the result row is committed.
#[derive(Debug, Clone, Copy)]
pub enum Commit<'a> {
    /// A synchronous request: the job row (already succeeded) and the result are inserted together.
    Sync,
    /// A worker holding the job's lease: the result is inserted in the transaction that marks
    /// the job succeeded, only while `worker` still holds the lease.
    Lease {
        /// The worker's name.
        worker: &'a str,
    },
}

/// What storing came to.
#[derive(Debug)]
pub enum Stored {
    /// The result row, committed, and the run's timings with the store and total times.
    Done {
        /// The row.
        result: Box<ResultRow>,
        /// The timings recorded in it.
        timings: Timings,
    },
    /// The job changed hands before its result was committed; nothing was recorded.
    Lost,
}

/// Stores `out` as the result of `job` (`format`: the output format's name). `timings` gets its
/// store and total times (the total from the job's creation). Errors: storage and database
/// failures (retryable).
pub async fn store_result(
    state: &AppState,
    job: &JobRow,
    format: &str,
    out: Output,
    mut timings: Timings,
    commit: Commit<'_>,
) -> JobResult<Stored> {
    let ts = Instant::now();
    let bytes = Bytes::from(out.bytes);
    let sha = crate::store::sha256_hex(&bytes);
    let token = match commit {
        Commit::Sync => job.id.clone(),
        Commit::Lease { worker } => db::intent_token(&job.id, worker),
    };
    db::add_blob_intent(&state.db, &sha, &token).await?;
    state.blobs.put(bytes.clone()).await?;
    timings.store_ms = ts.elapsed().as_secs_f64() * 1000.0;
    timings.total_ms = (now_ms() - job.created_at).max(0) as f64;
    let now = now_ms();
    let result = ResultRow {
        id: new_id("res"),
        owner: job.owner.clone(),
        job_id: job.id.clone(),
        image_id: job.image_id.clone(),
        style: job.style.clone(),
        method: job.method.clone(),
        sha256: sha.clone(),
        format: format.to_string(),
        width: out.width as i64,
        height: out.height as i64,
        bytes: bytes.len() as i64,
        timings: serde_json::to_string(&timings).unwrap_or_else(|_| "{}".into()),
        content_loss: out.content_loss,
        style_loss: out.style_loss,
        created_at: now,
        avatar: out.avatar.as_ref().and_then(|a| serde_json::to_string(a).ok()),
    };
    let committed = match commit {
        Commit::Sync => {
            let mut done = job.clone();
            done.state = job_state::SUCCEEDED.into();
            done.stage = job_state::SUCCEEDED.into();
            done.fraction = 1.0;
            done.attempts = 1;
            done.result_id = Some(result.id.clone());
            done.started_at = Some(now);
            done.finished_at = Some(now);
            db::insert_sync(&state.db, &done, &result).await?;
            if let Err(e) = db::clear_blob_intent(&state.db, &sha, &token).await {
                tracing::warn!(sha, error = %e, "clearing a blob intent");
            }
            true
        }
        Commit::Lease { worker } => db::complete_job(&state.db, &job.id, worker, &result).await?,
    };
    if !committed {
        tracing::warn!(job = %job.id, "the job changed hands before its result was stored");
        if let Err(e) = db::clear_blob_intent(&state.db, &sha, &token).await {
            tracing::error!(job = %job.id, error = %e, "clearing a blob intent");
        }
        crate::store::release_blob(&state.db, &state.blobs, &sha).await;
        return Ok(Stored::Lost);
    }
    // A concurrent deletion of the last other reference may have removed the blob meanwhile.
    if let Err(e) = state.blobs.ensure(&sha, bytes).await {
        tracing::error!(job = %job.id, error = %e, "re-storing a result blob");
    }
    Ok(Stored::Done { result: Box::new(result), timings })
}
