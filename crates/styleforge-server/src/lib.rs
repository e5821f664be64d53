//! `styleforge serve`: the online style-transfer service.
//!
//! An axum/tokio HTTP API under `/v1` (OpenAPI document at `/v1/openapi.json`) over the
//! styleforge engine, with metadata in SQLite or PostgreSQL through sqlx (portable migrations),
//! images and results in a content-addressed blob store (`object_store`: a local directory by
//! default, or an S3-compatible bucket), durable jobs run by in-process workers or by any number
//! of `styleforge worker` processes (leases, heartbeats, retries, cancellation, progress over
//! Server-Sent Events), API keys stored hashed with per-key rate limits and quotas, Prometheus
//! metrics, health and readiness probes, and graceful shutdown. The binary also serves a web page
//! at `/` and an embeddable widget at `/widget.js` (see [`web`]), which sites use with
//! publishable keys limited to their origins (see [`auth`]).
//!
//! With no set-up, `Config { anonymous: true, ..Config::default() }` serves the model library of
//! `STYLEFORGE_HOME` and keeps its data in `<home>/server`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = styleforge_server::Config { anonymous: true, ..Default::default() };
//! styleforge_server::serve(config).await
//! # }
//! ```

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod signing;
pub mod state;
pub mod stats;
pub mod store;
pub mod web;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use styleforge_core::library::Library;
use tokio::task::JoinHandle;

pub use auth::{
    KeyInfo, KeyLimits, NewKey, create_key, create_publishable_key, list_keys, revoke_key,
};
pub use config::Config;
pub use error::{ApiError, ErrorBody};

use crate::state::AppState;

/// A running server started by [`start`].
pub struct ServerHandle {
    state: AppState,
    addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Starts the server: opens (and migrates) the database and the blob store, binds the listener,
/// and starts the workers. Returns the bound address (useful with port 0) and a handle.
pub async fn start(config: Config) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let listen = config.listen;
    let state = open_state(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = api::router(state.clone());
    let mut stop = state.shutdown.subscribe();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await
    });
    let workers = spawn_workers(&state, state.config.workers);
    tracing::info!(%addr, home = %state.config.home.display(), anonymous = state.config.anonymous, "styleforge server listening");
    Ok((
        addr,
        ServerHandle {
            state,
            addr,
            server,
            workers,
        },
    ))
}

/// The API and the page as an axum [`Router`](axum::Router), with no listener and no workers:
/// for embedding the service in another axum application (nest it, or serve it beside other
/// routes) or for driving it in-process (`tower::ServiceExt::oneshot`). Opens (and migrates) the
/// database and the blob store like [`start`]; jobs it accepts wait for workers sharing the
/// database (a [`start_workers`] handle, or `styleforge worker` processes). Handlers that read
/// the caller's address expect the router to be served with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or a `ConnectInfo` extension on each
/// request.
///
/// # Errors
/// An invalid configuration, or a database or blob store that cannot be opened.
pub async fn app(config: Config) -> anyhow::Result<axum::Router> {
    let state = open_state(config).await?;
    Ok(api::router(state))
}

/// Starts job workers only (`styleforge worker`): opens the shared database and blob store and
/// runs `config.workers` workers that claim the jobs matching `config.capabilities()`, with no
/// HTTP listener. The handle's address is unspecified (port 0).
pub async fn start_workers(config: Config) -> anyhow::Result<ServerHandle> {
    let state = open_state(config).await?;
    let server = tokio::spawn(async { Ok(()) });
    let workers = spawn_workers(&state, state.config.workers.max(1));
    tracing::info!(instance = %state.instance, workers = state.config.workers.max(1), device = state.config.device_class(), "styleforge worker started");
    Ok(ServerHandle {
        state,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        server,
        workers,
    })
}

/// Validates the configuration and opens (and migrates) the database, the blob store, the
/// metrics registry and the model cache.
async fn open_state(config: Config) -> anyhow::Result<AppState> {
    config.validate()?;
    let device = styleforge_core::device::parse(&config.device)?;
    let db = db::connect(&config.database_url()).await?;
    let blobs = store::Blobs::open(&config)?;
    let metrics = metrics::Metrics::new().context("registering metrics")?;
    let models = models::Models::new(
        Library::new(config.home.clone()),
        device.clone(),
        metrics.model_load_seconds.clone(),
    );
    Ok(AppState::new(config, db, blobs, models, device, metrics))
}

/// Spawns `n` job workers named after the instance.
/// With at least one worker, the process also sends webhook deliveries.
fn spawn_workers(state: &AppState, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(jobs::worker::worker_loop(state.clone(), format!("{}-w{i}", state.instance))))
        .collect();
    if n > 0 {
        tasks.push(tokio::spawn(jobs::webhooks::sender_loop(
            state.clone(),
            format!("{}-webhooks", state.instance),
        )));
    }
    tasks
}

/// Runs job workers until Ctrl-C or SIGTERM, then shuts down gracefully (running jobs get
/// `shutdown_grace_secs` to finish, then go back to the queue).
pub async fn run_workers(config: Config) -> anyhow::Result<()> {
    let handle = start_workers(config).await?;
    eprintln!("styleforge: worker {} running (Ctrl-C to stop)", handle.state.instance);
    wait_for_signal().await;
    eprintln!("styleforge: worker shutting down");
    handle.shutdown().await
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful shutdown: stops accepting connections and claiming jobs, ends event streams,
    /// lets running jobs finish for `shutdown_grace_secs`, then sends the ones still running back
    /// to the queue (their attempt not counted), and closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let state = self.state;
        state.shutdown.send_replace(true);
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        let mut workers = self.workers;
        let all_done = |ws: &Vec<JoinHandle<()>>| ws.iter().all(|w| w.is_finished());
        let deadline = tokio::time::Instant::now() + grace;
        while !all_done(&workers) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !all_done(&workers) {
            let stopping = jobs::worker::requeue_running(&state);
            tracing::info!(
                jobs = stopping.len(),
                "sending running jobs back to the queue"
            );
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !all_done(&workers) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Work that cannot be interrupted: give its lease back and leave it behind.
            for (id, w) in stopping {
                if db::requeue_job(&state.db, &id, &w, true)
                    .await
                    .unwrap_or(false)
                {
                    tracing::warn!(job = %id, "requeued a job that did not stop in time");
                }
            }
            for w in &workers {
                w.abort();
            }
        }
        for w in workers.drain(..) {
            let _ = w.await;
        }
        match tokio::time::timeout(Duration::from_secs(10), self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server error at shutdown"),
            Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
            Err(_) => tracing::warn!("connections still open after 10 s; closing"),
        }
        state.db.close().await;
        tracing::info!("styleforge server stopped");
        Ok(())
    }

    /// Stops everything at once, as if the process died: no job is requeued or finished, leases
    /// are left to expire. For tests of crash recovery.
    pub async fn kill(self) {
        for r in self
            .state
            .hub
            .running
            .lock()
            .expect("running jobs")
            .values()
        {
            r.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        for w in &self.workers {
            w.abort();
        }
        self.server.abort();
        for w in self.workers {
            let _ = w.await;
        }
        let _ = self.server.await;
        self.state.db.close().await;
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let (addr, handle) = start(config).await?;
    eprintln!("styleforge: listening on http://{addr} (Ctrl-C to stop)");
    wait_for_signal().await;
    eprintln!("styleforge: shutting down");
    handle.shutdown().await
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Blocking wrappers for callers without an async runtime (the command line).
pub mod blocking {
    use super::*;

    fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    }

    /// [`super::serve`] on a fresh runtime.
    pub fn serve(config: Config) -> anyhow::Result<()> {
        runtime()?.block_on(super::serve(config))
    }

    /// [`super::run_workers`] on a fresh runtime.
    pub fn run_workers(config: Config) -> anyhow::Result<()> {
        runtime()?.block_on(super::run_workers(config))
    }

    /// [`super::create_key`] on a fresh runtime.
    pub fn create_key(config: &Config, name: &str, limits: KeyLimits) -> anyhow::Result<NewKey> {
        runtime()?.block_on(super::create_key(config, name, limits))
    }

    /// [`super::create_publishable_key`] on a fresh runtime.
    pub fn create_publishable_key(
        config: &Config,
        name: &str,
        limits: KeyLimits,
        origins: &[String],
    ) -> anyhow::Result<NewKey> {
        runtime()?.block_on(super::create_publishable_key(config, name, limits, origins))
    }

    /// [`super::list_keys`] on a fresh runtime.
    pub fn list_keys(config: &Config) -> anyhow::Result<Vec<KeyInfo>> {
        runtime()?.block_on(super::list_keys(config))
    }

    /// [`super::revoke_key`] on a fresh runtime.
    pub fn revoke_key(config: &Config, id_or_name: &str) -> anyhow::Result<Vec<KeyInfo>> {
        runtime()?.block_on(super::revoke_key(config, id_or_name))
    }
}
