//! Server configuration: defaults that run with no set-up, an optional TOML file, and overrides
//! from flags and the environment (applied by the command line).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything `styleforge serve` can be told. Every field has a default (see [`Config::default`]),
/// so `Config { home, ..Default::default() }` is a complete configuration.
///
/// A configuration file is TOML with the same field names, for example:
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// anonymous = false
/// sync_pixel_budget = 1048576
/// cors_origins = ["https://example.org"]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on (port 0 picks a free port). Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The styleforge home: models are read from `<home>/models` (the library that
    /// `styleforge models` manages); data lives under `<home>/server` unless `data_dir` says
    /// otherwise. Default: `$STYLEFORGE_HOME`, else the user's data directory + `styleforge`.
    pub home: PathBuf,
    /// Directory for the database file and the blob store. Default `<home>/server`.
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH`, or `postgres://USER:PASSWORD@HOST:PORT/DB` to share the
    /// database (and the job queue) between API servers and `styleforge worker` processes.
    /// Default `sqlite://<data_dir>/styleforge.db` (created when missing).
    pub database_url: Option<String>,
    /// Blob store URL: `s3://BUCKET/PREFIX` for an S3-compatible store (endpoint, region and
    /// credentials from the usual `AWS_*` variables), or `file://DIR`. Default: the local
    /// directory `blob_dir`.
    pub storage_url: Option<String>,
    /// Directory of the content-addressed blob store (images, results, thumbnails).
    /// Default `<data_dir>/blobs`.
    pub blob_dir: Option<PathBuf>,
    /// Anonymous mode for local use: requests without an API key are served and owned by the
    /// shared `anonymous` owner. Requests that carry a key are still checked. Default `false`.
    pub anonymous: bool,
    /// Largest output (width × height after `max_size`) that fast and AdaIN stylisation answer
    /// synchronously; larger requests, and every Gatys request, become jobs. Default 1 048 576.
    pub sync_pixel_budget: u64,
    /// Largest request body in bytes (uploads included). Default 32 MiB.
    pub max_upload_bytes: usize,
    /// Largest image in pixels, checked from the header before decoding. Default 40 megapixels.
    pub max_pixels: u64,
    /// Accepted upload formats (`jpeg`, `png`, `webp`, `gif`), stills and animations alike (an
    /// APNG is a `png`, an animated WebP a `webp`). Videos are governed by `max_video_frames`.
    /// Default all four.
    pub formats: Vec<String>,
    /// Most frames of an uploaded video or animation (GIF, APNG, animated WebP; MP4, WebM,
    /// MOV), read from the container before decoding; 0 refuses videos and animations.
    /// Default 1800 (a minute at 30 frames/s).
    pub max_video_frames: u64,
    /// Longest uploaded video in seconds. Default 60.
    pub max_video_seconds: f64,
    /// Largest video or animation frame in pixels. Default 2 073 600 (1920×1080).
    pub max_video_pixels: u64,
    /// In-process job workers (tasks claiming jobs from the database); 0 runs none, so jobs wait
    /// for another server sharing the database. Default 1.
    pub workers: usize,
    /// Inference slots: how many stylisations (synchronous requests and jobs together) run at
    /// once; the rest wait in line. 0 means one per CPU core. Default 0.
    pub inference_slots: usize,
    /// Origins allowed by CORS: empty disables CORS, `["*"]` allows any origin. Default empty.
    pub cors_origins: Vec<String>,
    /// Job lease in seconds: a job whose worker has not sent a heartbeat for this long is
    /// reclaimed and retried. Default 30.
    pub lease_secs: u64,
    /// Heartbeat interval in milliseconds (renews the lease, picks up cancellation).
    /// Default: a third of the lease.
    pub heartbeat_ms: Option<u64>,
    /// How often an idle worker looks for jobs, in milliseconds (new jobs wake it at once).
    /// Default 1000.
    pub poll_ms: u64,
    /// Attempts before a job that keeps losing its worker is marked failed. Default 3.
    pub max_attempts: u32,
    /// Whole-request timeout in seconds (the time to produce the response headers). Default 300.
    pub request_timeout_secs: u64,
    /// Timeout in seconds for receiving a request body (slow clients). Default 60.
    pub body_timeout_secs: u64,
    /// Default per-key rate limit, requests per minute (0: unlimited). A key's own limit, set
    /// with `styleforge keys create --rate-limit`, takes precedence. Default 600.
    pub rate_limit_per_minute: u32,
    /// Rate limit for anonymous requests, per minute (0: unlimited). Default 0.
    pub anonymous_rate_limit_per_minute: u32,
    /// Default rate limit of publishable (`pk_`) keys, requests per minute per key and client
    /// address (0: unlimited). A key's own limit takes precedence. Default 120.
    pub publishable_rate_limit_per_minute: u32,
    /// Default per-key storage quota in bytes (uploads and results; 0: unlimited). Default 1 GiB.
    pub quota_bytes: u64,
    /// Storage quota of the anonymous owner in bytes (0: unlimited). Default 0.
    pub anonymous_quota_bytes: u64,
    /// Iterations of a Gatys job when the request names none. Default 100.
    pub gatys_iterations: u32,
    /// Most iterations a Gatys request may ask for. Default 2000.
    pub max_gatys_iterations: u32,
    /// Longer side of a Gatys result when the request gives no `max_size`. Default 512.
    pub gatys_max_size: u32,
    /// Seconds graceful shutdown waits for running jobs before sending them back to the queue.
    /// Default 10.
    pub shutdown_grace_secs: u64,
    /// Compute device: `cpu`, or `cuda` / `cuda:N` in CUDA builds. Default `cpu`.
    pub device: String,
    /// Serve the web page at `/` and the embeddable widget at `/widget.js`. Default `true`.
    pub web: bool,
    /// Methods whose jobs need a GPU worker (a worker whose `device` is `cuda`); other jobs go
    /// to any worker. Default none.
    pub gpu_methods: Vec<String>,
    /// Methods this process's workers run (`fast`, `microast`, `adain`, `gatys`, `cyclegan`,
    /// `train`);
    /// empty: all.
    /// Default all.
    pub worker_methods: Vec<String>,
    /// Seconds after which a blob whose writer died before recording it is collected.
    /// Default 600.
    pub orphan_grace_secs: u64,
    /// Folder of content photos that training jobs crop from; unset disables
    /// `POST /v1/trainings`. Default unset.
    pub training_content_dir: Option<PathBuf>,
    /// Crop size of training jobs' content samples. Default 256.
    pub training_crop: u32,
    /// Steps of a training job when the request names none. Default 2000.
    pub training_steps: u32,
    /// Most steps a training request may ask for. Default 40000.
    pub max_training_steps: u32,
    /// Training jobs one key may have queued or running at once. Default 1.
    pub max_trainings_per_key: u32,
    /// The public address of the service (`https://styles.example.com`), for the absolute URLs
    /// of signed links and webhook payloads. Default: from each request's `Host` header.
    pub public_url: Option<String>,
    /// Hosts webhooks may be sent to: names (`hooks.example.com`) or `*.example.com`; empty
    /// (the default) allows any host, whose addresses must still pass `webhook_networks`.
    pub webhook_hosts: Vec<String>,
    /// Networks (CIDR, `10.0.0.0/8`, `127.0.0.1/32`) webhooks may reach even though they are
    /// loopback, private, link-local or otherwise not public; every such address is refused
    /// unless listed here (server-side request forgery). Default: none.
    pub webhook_networks: Vec<String>,
    /// How long a webhook delivery is retried when the receiver does not answer 2xx, in
    /// seconds from the event. Default 3600.
    pub webhook_retry_secs: u64,
    /// The first retry's delay in milliseconds; each retry doubles it (with jitter), up to
    /// `webhook_backoff_max_secs`. Default 1000.
    pub webhook_backoff_ms: u64,
    /// The longest delay between retries, in seconds. Default 300.
    pub webhook_backoff_max_secs: u64,
    /// Seconds to wait for a receiver's answer. Default 10.
    pub webhook_timeout_secs: u64,
    /// Keys that sign result links, `kid:secret` (secret of 16+ characters): the first signs
    /// new links, all verify, so a key is rotated by putting the new one first and dropping the
    /// old one once its links have expired. Default: a key the server makes and keeps in its
    /// database.
    pub link_keys: Vec<String>,
    /// Longest lifetime of a signed link, in seconds. Default 604800 (7 days).
    pub max_link_secs: u64,
    /// Most jobs (images × styles) in one batch. Default 100.
    pub max_batch_jobs: u32,
    /// How long an `Idempotency-Key` and its answer are kept, in seconds. Default 86400.
    pub idempotency_ttl_secs: u64,
}

/// The methods jobs can name.
pub const METHODS: [&str; 5] = ["fast", "adain", "gatys", "cyclegan", "train"];

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            home: styleforge_core::library::default_home(),
            data_dir: None,
            database_url: None,
            storage_url: None,
            blob_dir: None,
            anonymous: false,
            sync_pixel_budget: 1 << 20,
            max_upload_bytes: 32 << 20,
            max_pixels: 40_000_000,
            formats: vec!["jpeg".into(), "png".into(), "webp".into(), "gif".into()],
            max_video_frames: 1800,
            max_video_seconds: 60.0,
            max_video_pixels: 1920 * 1080,
            workers: 1,
            inference_slots: 0,
            cors_origins: Vec::new(),
            lease_secs: 30,
            heartbeat_ms: None,
            poll_ms: 1000,
            max_attempts: 3,
            request_timeout_secs: 300,
            body_timeout_secs: 60,
            rate_limit_per_minute: 600,
            anonymous_rate_limit_per_minute: 0,
            publishable_rate_limit_per_minute: 120,
            quota_bytes: 1 << 30,
            anonymous_quota_bytes: 0,
            gatys_iterations: 100,
            max_gatys_iterations: 2000,
            gatys_max_size: 512,
            shutdown_grace_secs: 10,
            device: "cpu".into(),
            web: true,
            gpu_methods: Vec::new(),
            worker_methods: Vec::new(),
            orphan_grace_secs: 600,
            training_content_dir: None,
            training_crop: 256,
            training_steps: 2000,
            max_training_steps: 40000,
            max_trainings_per_key: 1,
            public_url: None,
            webhook_hosts: Vec::new(),
            webhook_networks: Vec::new(),
            webhook_retry_secs: 3600,
            webhook_backoff_ms: 1000,
            webhook_backoff_max_secs: 300,
            webhook_timeout_secs: 10,
            link_keys: Vec::new(),
            max_link_secs: 7 * 24 * 3600,
            max_batch_jobs: 100,
            idempotency_ttl_secs: 24 * 3600,
        }
    }
}

impl Config {
    /// The defaults with a given home.
    pub fn with_home(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            ..Default::default()
        }
    }

    /// Reads a TOML configuration file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// The data directory (database and blobs).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| self.home.join("server"))
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data_dir().join("styleforge.db").display()
            )
        })
    }

    /// The blob directory in force.
    pub fn blob_dir(&self) -> PathBuf {
        self.blob_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("blobs"))
    }

    /// The device class of this process's workers: `gpu` for CUDA devices, else `cpu`.
    pub fn device_class(&self) -> &'static str {
        if self.device.starts_with("cuda") {
            "gpu"
        } else {
            "cpu"
        }
    }

    /// What a new job of `method` needs from its worker: `gpu` or `any`.
    pub fn job_device(&self, method: &str) -> &'static str {
        if self.gpu_methods.iter().any(|m| m == method) {
            "gpu"
        } else {
            "any"
        }
    }

    /// The capabilities this process's workers declare when claiming jobs.
    pub fn capabilities(&self) -> crate::db::Capabilities {
        crate::db::Capabilities {
            device: self.device_class().to_string(),
            methods: self.worker_methods.clone(),
        }
    }

    /// Inference slots in force (0 resolved to the core count).
    pub fn inference_slots(&self) -> usize {
        if self.inference_slots > 0 {
            self.inference_slots
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// Heartbeat interval in force.
    pub fn heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.heartbeat_ms
                .unwrap_or(self.lease_secs * 1000 / 3)
                .max(50),
        )
    }

    /// Checks values that have no sensible meaning.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.lease_secs >= 1, "lease_secs must be at least 1");
        anyhow::ensure!(self.max_attempts >= 1, "max_attempts must be at least 1");
        anyhow::ensure!(
            self.max_upload_bytes >= 1,
            "max_upload_bytes must be positive"
        );
        anyhow::ensure!(self.max_pixels >= 1, "max_pixels must be positive");
        anyhow::ensure!(
            self.max_video_seconds.is_finite() && self.max_video_seconds >= 0.0,
            "max_video_seconds must be a number of seconds"
        );
        anyhow::ensure!(self.poll_ms >= 10, "poll_ms must be at least 10");
        anyhow::ensure!(
            self.heartbeat() < std::time::Duration::from_secs(self.lease_secs),
            "the heartbeat interval must be shorter than the lease"
        );
        for f in &self.formats {
            anyhow::ensure!(
                styleforge_core::image_io::Format::from_name(f).is_some() || f.eq_ignore_ascii_case("gif"),
                "unknown format `{f}` in formats (use jpeg, png, webp, gif)"
            );
        }
        styleforge_core::device::parse(&self.device)?;
        for m in self.gpu_methods.iter().chain(&self.worker_methods) {
            anyhow::ensure!(
                METHODS.contains(&m.as_str()),
                "unknown method `{m}` (use {})",
                METHODS.join(", ")
            );
        }
        for n in &self.webhook_networks {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| anyhow::anyhow!("webhook_networks: `{n}` is not a network (use CIDR, `10.0.0.0/8`)"))?;
        }
        let mut ids = std::collections::HashSet::new();
        for k in &self.link_keys {
            let key = crate::signing::LinkKey::parse(k).map_err(|e| anyhow::anyhow!("link_keys: {e}"))?;
            anyhow::ensure!(ids.insert(key.id.clone()), "link_keys: the key id `{}` is listed twice", key.id);
        }
        if let Some(u) = &self.public_url {
            anyhow::ensure!(
                u.starts_with("http://") || u.starts_with("https://"),
                "public_url must be an http or https URL"
            );
        }
        anyhow::ensure!(self.max_link_secs >= 1, "max_link_secs must be at least 1");
        anyhow::ensure!(self.max_batch_jobs >= 1, "max_batch_jobs must be at least 1");
        anyhow::ensure!(self.webhook_timeout_secs >= 1, "webhook_timeout_secs must be at least 1");
        if let Some(u) = &self.storage_url {
            anyhow::ensure!(
                u.starts_with("s3://") || u.starts_with("file://"),
                "unsupported storage URL `{u}` (use s3://BUCKET/PREFIX or file://DIR)"
            );
        }
        Ok(())
    }
}
