//! The state shared by handlers and workers.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use tokio::sync::{Notify, Semaphore, broadcast, watch};

use crate::config::Config;
use crate::db::Db;
use crate::jobs::JobError;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::store::Blobs;

/// A job running in this process.
#[derive(Debug, Clone)]
pub struct RunningJob {
    /// Stops the work (Gatys checks it every evaluation; other methods before and after).
    pub cancel: Arc<AtomicBool>,
    /// Set with `cancel` when the job goes back to the queue instead of being cancelled.
    pub requeue: Arc<AtomicBool>,
    /// The worker holding its lease.
    pub worker: String,
}

/// Job notifications: new work for workers, changes for event streams, and the jobs running here.
#[derive(Debug)]
pub struct JobHub {
    /// Wakes an idle worker when a job is queued.
    pub new_job: Notify,
    /// The id of every job whose state or progress changed.
    pub events: broadcast::Sender<String>,
    /// Jobs running in this process, by id.
    pub running: Mutex<HashMap<String, RunningJob>>,
    /// Wakes the webhook sender when an event is recorded.
    pub deliveries: Notify,
}

impl JobHub {
    fn new() -> Self {
        Self {
            new_job: Notify::new(),
            events: broadcast::channel(1024).0,
            running: Mutex::new(HashMap::new()),
            deliveries: Notify::new(),
        }
    }

    /// Tells event streams that a job changed.
    pub fn changed(&self, id: &str) {
        let _ = self.events.send(id.to_string());
    }
}

/// Token buckets per owner.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one token from `owner`'s bucket (capacity and refill: `per_minute`). `Err` holds the
    /// seconds until a token is available.
    pub fn check(&self, owner: &str, per_minute: u32) -> Result<(), u64> {
        if per_minute == 0 {
            return Ok(());
        }
        let cap = per_minute as f64;
        let rate = cap / 60.0;
        let now = Instant::now();
        let mut b = self.buckets.lock().expect("rate limiter");
        let (tokens, last) = b.entry(owner.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// Everything handlers and workers share.
pub struct Inner {
    /// Configuration in force.
    pub config: Config,
    /// Metadata database.
    pub db: Db,
    /// Blob store.
    pub blobs: Blobs,
    /// Model cache.
    pub models: Models,
    /// Compute device.
    pub device: Device,
    /// Inference slots.
    pub inference: Arc<Semaphore>,
    /// Decoding slots (uploads, thumbnails).
    pub decode: Arc<Semaphore>,
    /// Live camera streams (`GET /v1/live`): [`crate::jobs::live::SESSIONS_PER_SLOT`] per
    /// inference slot.
    pub live: Arc<Semaphore>,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limiter.
    pub limiter: RateLimiter,
    /// Job notifications.
    pub hub: JobHub,
    /// Becomes true when shutting down.
    pub shutdown: watch::Sender<bool>,
    /// This process's name in job leases.
    pub instance: String,
}

/// Shared state handle.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        db: Db,
        blobs: Blobs,
        models: Models,
        device: Device,
        metrics: Metrics,
    ) -> Self {
        let slots = config.inference_slots();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        let instance = format!(
            "{host}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self(Arc::new(Inner {
            config,
            db,
            blobs,
            models,
            device,
            inference: Arc::new(Semaphore::new(slots)),
            decode: Arc::new(Semaphore::new(cores)),
            live: Arc::new(Semaphore::new(slots * crate::jobs::live::SESSIONS_PER_SLOT)),
            metrics,
            limiter: RateLimiter::default(),
            hub: JobHub::new(),
            shutdown: watch::channel(false).0,
            instance,
        }))
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Runs blocking inference under an inference slot; returns the value and the time spent
    /// waiting for the slot. The work finishes (and the slot is held) even if the caller goes away.
    pub async fn run_inference<T, F>(&self, f: F) -> Result<(T, Duration), JobError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let waiting = self.metrics.inference_waiting.clone();
        let running = self.metrics.inference_running.clone();
        waiting.inc();
        let t = Instant::now();
        let permit = self.inference.clone().acquire_owned().await;
        waiting.dec();
        let permit = permit.map_err(|_| JobError::unavailable("the server is shutting down"))?;
        let waited = t.elapsed();
        let r = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            running.inc();
            struct Dec(prometheus::IntGauge);
            impl Drop for Dec {
                fn drop(&mut self) {
                    self.0.dec();
                }
            }
            let _d = Dec(running);
            styleforge_core::device::on_compute_threads(f)
        })
        .await
        .map_err(|e| JobError::internal(format!("stylisation failed: {e}")))?;
        Ok((r, waited))
    }

    /// [`AppState::run_inference`] for work already on a blocking thread that stays there (a live
    /// stream's stylizer, which keeps its state from frame to frame): waits on this thread for an
    /// inference slot, runs `f` on the compute threads, and returns the value and the time spent
    /// waiting. Call it from a blocking thread (`spawn_blocking`) of the runtime `handle`, never
    /// from async code. Errors: `unavailable` when the server is shutting down.
    pub fn run_inference_blocking<T, F>(&self, handle: &tokio::runtime::Handle, f: F) -> Result<(T, Duration), JobError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let m = &self.metrics;
        m.inference_waiting.inc();
        let t = Instant::now();
        let permit = handle.block_on(self.inference.clone().acquire_owned());
        m.inference_waiting.dec();
        let _permit = permit.map_err(|_| JobError::unavailable("the server is shutting down"))?;
        let waited = t.elapsed();
        struct Running<'a>(&'a prometheus::IntGauge);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.dec();
            }
        }
        m.inference_running.inc();
        let _running = Running(&m.inference_running);
        Ok((styleforge_core::device::on_compute_threads(f), waited))
    }

    /// Runs blocking decoding work under a decode slot.
    pub async fn run_decode<T, F>(&self, f: F) -> Result<T, JobError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self
            .decode
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::unavailable("the server is shutting down"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| JobError::internal(format!("decoding failed: {e}")))
    }
}

/// A new identifier with a prefix (`img`, `job`, `res`, `key`): time-ordered and unguessable.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
