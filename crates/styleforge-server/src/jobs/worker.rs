//! Job workers: tasks that claim jobs from the database, hold them with a lease kept alive by
//! heartbeats, report progress, honour cancellation, and store results atomically. They run
//! inside `styleforge serve` (`workers`) or on their own in `styleforge worker` processes, on any
//! machine that shares the database and the blob store.
//!
//! A worker that dies stops sending heartbeats; once its lease ends any worker (in this process
//! or another sharing the database) claims the job again. A worker that finds it lost its lease
//! stops and writes nothing: every write is conditional on still holding the lease. A result's
//! blob is announced in `blob_intents` before it is stored, so the blob of a worker killed before
//! its result row was committed is collected once `orphan_grace_secs` have passed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use styleforge_core::methods::Progress;
use tokio::task::JoinHandle;

use crate::db::{self, JobRow, ProgressRow, now_ms, state as job_state};
use crate::jobs::run::{self, Limits};
use crate::jobs::store::{Commit, Stored, store_result};
use crate::jobs::{JobError, JobResult, JobSpec, RunEnd, Timings, fetch_inputs, webhooks};
use crate::state::{AppState, RunningJob};

/// Aborts a task when dropped (so helpers die with the job they serve).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs until shutdown: claim, run, repeat; sleep when idle.
pub async fn worker_loop(state: AppState, worker: String) {
    let mut shutdown = state.shutdown.subscribe();
    let poll = Duration::from_millis(state.config.poll_ms);
    let lease_ms = state.config.lease_secs as i64 * 1000;
    let caps = state.config.capabilities();
    let grace = Duration::from_secs(state.config.orphan_grace_secs);
    let mut next_collect = Instant::now();
    tracing::info!(worker = %worker, device = %caps.device, methods = ?caps.methods, "worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        match db::sweep_expired(&state.db).await {
            Ok(ids) => {
                for id in &ids {
                    state.hub.changed(id);
                    webhooks::emit_completed(&state, id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweeping expired jobs"),
        }
        if Instant::now() >= next_collect {
            next_collect = Instant::now() + (grace / 4).max(Duration::from_secs(1));
            collect_orphans(&state, grace).await;
        }
        match db::claim_job(&state.db, &worker, lease_ms, &caps).await {
            Ok(Some(job)) => {
                let id = job.id.clone();
                let run = AssertUnwindSafe(run_job(&state, &worker, job)).catch_unwind();
                if run.await.is_err() {
                    tracing::error!(job = %id, "job panicked");
                    state.hub.running.lock().expect("running jobs").remove(&id);
                    let _ = db::finish_job(
                        &state.db,
                        &id,
                        &worker,
                        job_state::FAILED,
                        Some(("internal", "the job panicked")),
                    )
                    .await;
                    state.hub.changed(&id);
                    webhooks::emit_completed(&state, &id).await;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming a job"),
        }
        tokio::select! {
            _ = state.hub.new_job.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!(worker = %worker, "worker stopped");
}

/// Deletes the blobs of writers that died between storing a blob and recording it.
pub async fn collect_orphans(state: &AppState, grace: Duration) {
    let cutoff = now_ms() - grace.as_millis() as i64;
    match db::take_stale_intents(&state.db, cutoff).await {
        Ok(shas) => {
            for sha in shas {
                match state.blobs.delete(&sha).await {
                    Ok(()) => tracing::info!(sha = %sha, "collected an orphaned blob"),
                    Err(e) => tracing::warn!(sha = %sha, error = %e, "deleting an orphaned blob"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "looking for orphaned blobs"),
    }
}

async fn heartbeat_loop(
    state: AppState,
    id: String,
    worker: String,
    cancel: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
) {
    let every = state.config.heartbeat();
    let lease_ms = state.config.lease_secs as i64 * 1000;
    loop {
        tokio::time::sleep(every).await;
        match db::heartbeat(&state.db, &id, &worker, lease_ms).await {
            Ok(Some(cancel_requested)) => {
                if cancel_requested {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            Ok(None) => {
                tracing::warn!(job = %id, worker = %worker, "lease lost; stopping");
                lost.store(true, Ordering::Relaxed);
                cancel.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "heartbeat failed"),
        }
    }
}

/// Writes a running job's progress (at most every 200 ms) and, when its webhook asked for
/// `progress` events, records one at most every [`webhooks::PROGRESS_EVERY`]: progress written
/// inside that window is sent once the window has passed (the latest state, read afresh).
async fn progress_writer(
    state: AppState,
    id: String,
    worker: String,
    hooks: bool,
    mut rx: tokio::sync::watch::Receiver<Option<ProgressRow>>,
) {
    let mut hooked: Option<tokio::time::Instant> = None;
    let mut owed = false;
    let mut n = 0u64;
    loop {
        let due = match (owed, hooked) {
            (true, Some(t)) => t + webhooks::PROGRESS_EVERY,
            _ => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let p = rx.borrow_and_update().clone();
                if let Some(p) = p {
                    match db::set_progress(&state.db, &id, &worker, &p).await {
                        Ok(true) => {
                            state.hub.changed(&id);
                            if hooks {
                                if hooked.is_none_or(|t| t.elapsed() >= webhooks::PROGRESS_EVERY) {
                                    hooked = Some(tokio::time::Instant::now());
                                    owed = false;
                                    n += 1;
                                    webhooks::emit_progress(&state, &id, n).await;
                                } else {
                                    owed = true;
                                }
                            }
                        }
                        Ok(false) => return,
                        Err(e) => tracing::warn!(job = %id, error = %e, "writing progress"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = tokio::time::sleep_until(due), if owed => {
                hooked = Some(tokio::time::Instant::now());
                owed = false;
                n += 1;
                webhooks::emit_progress(&state, &id, n).await;
            }
        }
    }
}

async fn run_job(state: &AppState, worker: &str, job: JobRow) {
    let t0 = Instant::now();
    let cancel = Arc::new(AtomicBool::new(job.cancel_requested));
    let requeue = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    state.hub.running.lock().expect("running jobs").insert(
        job.id.clone(),
        RunningJob {
            cancel: cancel.clone(),
            requeue: requeue.clone(),
            worker: worker.to_string(),
        },
    );
    state.hub.changed(&job.id);
    webhooks::emit(state, &job, webhooks::WebhookEvent::Start, "start").await;
    tracing::info!(job = %job.id, worker, attempt = job.attempts, method = %job.method, "job started");
    let _hb = AbortOnDrop(tokio::spawn(heartbeat_loop(
        state.clone(),
        job.id.clone(),
        worker.to_string(),
        cancel.clone(),
        lost.clone(),
    )));
    let (ptx, prx) = tokio::sync::watch::channel(None);
    let pw = AbortOnDrop(tokio::spawn(progress_writer(
        state.clone(),
        job.id.clone(),
        worker.to_string(),
        job.webhook_events.as_deref().is_some_and(|e| e.contains("progress")),
        prx,
    )));
    let outcome = execute_job(state, &job, cancel.clone(), ptx).await;
    drop(pw);
    state
        .hub
        .running
        .lock()
        .expect("running jobs")
        .remove(&job.id);
    let final_state = if lost.load(Ordering::Relaxed) {
        tracing::warn!(job = %job.id, "the job's lease went to another worker; result dropped");
        None
    } else {
        Some(settle(state, worker, &job, outcome, &cancel, &requeue).await)
    };
    if let Some(s) = final_state {
        state
            .metrics
            .job_seconds
            .with_label_values(&[job.method.as_str(), s])
            .observe(t0.elapsed().as_secs_f64());
        tracing::info!(job = %job.id, state = s, seconds = t0.elapsed().as_secs_f64(), "job ended");
    }
    state.hub.changed(&job.id);
    webhooks::emit_completed(state, &job.id).await;
}

/// Records how a job ended; returns the state it ended in.
async fn settle(
    state: &AppState,
    worker: &str,
    job: &JobRow,
    outcome: JobResult<(RunEnd, Timings)>,
    cancel: &AtomicBool,
    requeue: &AtomicBool,
) -> &'static str {
    let db = &state.db;
    let id = job.id.as_str();
    let log = |r: sqlx::Result<bool>| {
        if let Err(e) = r {
            tracing::error!(job = %id, error = %e, "recording the job's end");
        }
    };
    match outcome {
        Ok((RunEnd::Done(_), _))
            if cancel.load(Ordering::Relaxed) && !requeue.load(Ordering::Relaxed) =>
        {
            log(db::finish_job(db, id, worker, job_state::CANCELLED, None).await);
            job_state::CANCELLED
        }
        Ok((RunEnd::Done(out), timings)) => {
            let spec: Option<JobSpec> = serde_json::from_str(&job.spec).ok();
            let format = spec.map(|s| s.format).unwrap_or_else(|| "png".into());
            match store_result(state, job, &format, *out, timings, Commit::Lease { worker }).await {
                Ok(Stored::Done { .. }) => job_state::SUCCEEDED,
                Ok(Stored::Lost) => "lost",
                Err(e) => retry_or_fail(state, worker, job, e).await,
            }
        }
        Ok((RunEnd::Cancelled, _)) if requeue.load(Ordering::Relaxed) => {
            log(db::requeue_job(db, id, worker, true).await);
            job_state::QUEUED
        }
        Ok((RunEnd::Cancelled, _)) => {
            log(db::finish_job(db, id, worker, job_state::CANCELLED, None).await);
            job_state::CANCELLED
        }
        Err(e) if e.retryable() => retry_or_fail(state, worker, job, e).await,
        Err(e) => {
            log(db::finish_job(db, id, worker, job_state::FAILED, Some((&e.code, &e.message))).await);
            job_state::FAILED
        }
    }
}

/// A failure that may not happen again (storage, database, a panic): retried while attempts
/// remain, failed after.
async fn retry_or_fail(state: &AppState, worker: &str, job: &JobRow, e: JobError) -> &'static str {
    let r = if job.attempts < job.max_attempts {
        tracing::warn!(job = %job.id, error = %e, "job failed; retrying");
        db::requeue_job(&state.db, &job.id, worker, false)
            .await
            .map(|_| job_state::QUEUED)
    } else {
        db::finish_job(
            &state.db,
            &job.id,
            worker,
            job_state::FAILED,
            Some((&e.code, &e.message)),
        )
        .await
        .map(|_| job_state::FAILED)
    };
    r.unwrap_or_else(|err| {
        tracing::error!(job = %job.id, error = %err, "recording a failure");
        job_state::FAILED
    })
}

/// A job's progress as the row the progress writer stores.
fn progress_row(p: &Progress<'_>) -> ProgressRow {
    ProgressRow {
        fraction: p.fraction,
        stage: p.stage.clone(),
        iteration: p.step.map(|s| s.0 as i64),
        iterations: p.step.map(|s| s.1 as i64),
        eta_ms: p.eta.map(|d| d.as_millis() as i64),
    }
}

async fn execute_job(
    state: &AppState,
    job: &JobRow,
    cancel: Arc<AtomicBool>,
    ptx: tokio::sync::watch::Sender<Option<ProgressRow>>,
) -> JobResult<(RunEnd, Timings)> {
    let spec: JobSpec = serde_json::from_str(&job.spec)
        .map_err(|e| JobError::invalid("invalid_job", format!("unreadable job: {e}")))?;
    let report = move |p: &Progress<'_>| {
        let _ = ptx.send(Some(progress_row(p)));
    };
    report(&Progress::stage(0.0, "loading"));
    let inputs = fetch_inputs(state, &spec).await?;
    if spec.training.is_some() {
        let (config, device) = (state.config.clone(), state.device.clone());
        let (id, owner) = (job.id.clone(), job.owner.clone());
        let (end, waited) = state
            .run_inference(move || {
                let mut report = report;
                crate::jobs::training::run(&config, &device, &spec, &id, &owner, &inputs.content, cancel, &mut report)
            })
            .await?;
        let end = end?;
        let timings = match &end {
            RunEnd::Done(o) => Timings { queue_ms: waited.as_secs_f64() * 1000.0, ..o.timings },
            RunEnd::Cancelled => Timings::default(),
        };
        return Ok((end, timings));
    }
    let info = state.models.info(&spec.model).await.map_err(|e| {
        JobError::invalid("model_missing", format!("model `{}`: {}", spec.model, e.message))
    })?;
    let tl = Instant::now();
    let model = state.models.get(&info).await?;
    let load_ms = tl.elapsed().as_secs_f64() * 1000.0;
    report(&Progress::stage(0.01, "waiting for an inference slot"));
    let device = state.device.clone();
    let limits = Limits::of(&state.config);
    let method = spec.method.clone();
    let (end, waited) = state
        .run_inference(move || {
            let mut report = report;
            run::execute(run::Run { spec: &spec, inputs: &inputs, model: &model, device: &device, limits, cancel: Some(cancel) }, &mut report)
        })
        .await?;
    let end = end?;
    let mut timings = Timings {
        queue_ms: (job.started_at.unwrap_or(job.created_at) - job.created_at).max(0) as f64
            + waited.as_secs_f64() * 1000.0,
        load_ms,
        ..Default::default()
    };
    if let RunEnd::Done(o) = &end {
        timings.decode_ms = o.timings.decode_ms;
        timings.inference_ms = o.timings.inference_ms;
        timings.encode_ms = o.timings.encode_ms;
        state
            .metrics
            .inference_seconds
            .with_label_values(&[method.as_str(), "job"])
            .observe((o.timings.decode_ms + o.timings.inference_ms + o.timings.encode_ms) / 1000.0);
    }
    Ok((end, timings))
}

/// Sends the jobs running here back to the queue (shutdown after the grace period): stops them
/// and marks them to be requeued rather than cancelled.
pub fn requeue_running(state: &AppState) -> Vec<(String, String)> {
    let running = state.hub.running.lock().expect("running jobs");
    running
        .iter()
        .map(|(id, r)| {
            r.requeue.store(true, Ordering::Relaxed);
            r.cancel.store(true, Ordering::Relaxed);
            (id.clone(), r.worker.clone())
        })
        .collect()
}

/// Claims one job as `worker` with a lease of `lease` and does nothing with it: what a worker
/// that dies right after claiming leaves behind. For tests of lease expiry and retries.
pub async fn claim_and_abandon(
    config: &crate::Config,
    worker: &str,
    lease: Duration,
) -> anyhow::Result<Option<String>> {
    let db = db::connect(&config.database_url()).await?;
    let job = db::claim_job(
        &db,
        worker,
        lease.as_millis() as i64,
        &config.capabilities(),
    )
    .await?;
    db.close().await;
    Ok(job.map(|j| j.id))
}
