//! `styleforge serve`, `styleforge worker` and `styleforge keys`: the HTTP service, its job
//! workers and its API keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use styleforge_server::{Config, KeyLimits};

/// A flag's value when it was given (on the command line or in the environment): an option
/// that is `Some`, a switch that is on, a list that is not empty.
trait Flag {
    /// What it sets.
    type Value;
    /// The value to set, if the flag was given.
    fn given(self) -> Option<Self::Value>;
}

impl<T> Flag for Option<T> {
    type Value = T;
    fn given(self) -> Option<T> {
        self
    }
}

impl Flag for bool {
    type Value = bool;
    fn given(self) -> Option<bool> {
        self.then_some(true)
    }
}

impl<T> Flag for Vec<T> {
    type Value = Vec<T>;
    fn given(self) -> Option<Vec<T>> {
        (!self.is_empty()).then_some(self)
    }
}

/// Defines an options struct whose flags override [`Config`] fields, and its `apply` method.
/// Each field is written once: `name: Type => config_field`, or `=> config_field | map` to pass
/// the value through `map` first; a field without `=>` is left to the caller. A flag that was not
/// given (see [`Flag`]) leaves its field as the configuration file or the defaults set it.
macro_rules! config_flags {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                $field:ident: $ty:ty $(=> $target:ident $(| $map:ident)?)?,
            )*
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $(
                $(#[$field_attr])*
                $field: $ty,
            )*
        }

        impl $name {
            /// Sets the fields of `c` that flags were given for.
            fn apply(self, c: &mut Config) {
                $($(
                    let v = self.$field;
                    $(let v = $map(v);)?
                    if let Some(v) = Flag::given(v) {
                        c.$target = v.into();
                    }
                )?)*
            }
        }
    };
}

/// A list flag without its empty items (`--gpu-methods ""` or a trailing comma sets nothing).
fn drop_empty(v: Vec<String>) -> Vec<String> {
    v.into_iter().filter(|m| !m.is_empty()).collect()
}

/// The in-process worker count of `styleforge worker`: the flag, else 1; never 0.
fn at_least_one(v: Option<usize>) -> Option<usize> {
    Some(v.unwrap_or(1).max(1))
}

config_flags! {
    /// Where the server keeps its data (shared by `serve` and `keys`).
    #[derive(clap::Args, Debug, Clone)]
    pub struct DataArgs {
        /// Configuration file (TOML, same field names as the flags with `_`); flags override it.
        #[arg(long, env = "STYLEFORGE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// The styleforge home (models in <home>/models, data in <home>/server). Default: $STYLEFORGE_HOME.
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf> => home,
        /// Directory for the database and blobs. Default <home>/server.
        #[arg(long, env = "STYLEFORGE_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf> => data_dir,
        /// Database URL: sqlite://PATH, or postgres://USER:PASSWORD@HOST:PORT/DB to share it between
        /// API servers and workers. Default sqlite://<data-dir>/styleforge.db.
        #[arg(
            long = "database",
            visible_alias = "database-url",
            env = "STYLEFORGE_DATABASE_URL",
            value_name = "URL"
        )]
        database_url: Option<String> => database_url,
    }
}

impl DataArgs {
    fn config(&self) -> Result<Config> {
        let mut c = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        self.clone().apply(&mut c);
        Ok(c)
    }
}

config_flags! {
    /// What `serve` and `worker` share: where blobs live, the device, and how jobs run.
    #[derive(clap::Args, Debug, Clone)]
    pub struct RunnerArgs {
        /// Directory of the blob store (when it is local). Default <data-dir>/blobs.
        #[arg(long, env = "STYLEFORGE_BLOB_DIR", value_name = "DIR")]
        blob_dir: Option<PathBuf> => blob_dir,
        /// Blob store URL: s3://BUCKET/PREFIX (endpoint and credentials from AWS_ENDPOINT_URL,
        /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP) or file://DIR.
        #[arg(long = "storage", env = "STYLEFORGE_STORAGE", value_name = "URL")]
        storage_url: Option<String> => storage_url,
        /// Compute device: cpu, or cuda / cuda:N in CUDA builds (on a worker process, a GPU
        /// device also takes the jobs of the API server's --gpu-methods).
        #[arg(long, env = "STYLEFORGE_DEVICE")]
        device: Option<String> => device,
        /// Stylisations run at once (0: one per core). Default 0.
        #[arg(long, env = "STYLEFORGE_INFERENCE_SLOTS", value_name = "N")]
        inference_slots: Option<usize> => inference_slots,
        /// Job lease in seconds (a job whose worker stops sending heartbeats for this long is
        /// retried elsewhere). Default 30.
        #[arg(long, env = "STYLEFORGE_LEASE_SECS", value_name = "SECS")]
        lease_secs: Option<u64> => lease_secs,
        /// How often an idle worker looks for jobs, in milliseconds. Default 1000.
        #[arg(long, env = "STYLEFORGE_POLL_MS", value_name = "MS")]
        poll_ms: Option<u64> => poll_ms,
        /// Seconds shutdown waits for running jobs before requeueing them. Default 10.
        #[arg(long, env = "STYLEFORGE_SHUTDOWN_GRACE", value_name = "SECS")]
        shutdown_grace: Option<u64> => shutdown_grace_secs,
    }
}

config_flags! {
    /// Options of `styleforge serve`.
    #[derive(clap::Args, Debug)]
    pub struct Args {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        runner: RunnerArgs,
        /// Address to listen on (port 0 picks a free one). Default 127.0.0.1:8080.
        #[arg(long, env = "STYLEFORGE_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr> => listen,
        /// Serve requests without an API key (local use).
        #[arg(long, env = "STYLEFORGE_ANONYMOUS")]
        anonymous: bool => anonymous,
        /// Methods whose jobs only GPU workers may run, comma-separated. Default none.
        #[arg(
            long,
            env = "STYLEFORGE_GPU_METHODS",
            value_delimiter = ',',
            value_name = "LIST"
        )]
        gpu_methods: Vec<String> => gpu_methods | drop_empty,
        /// Largest output (pixels) answered synchronously by fast and adain. Default 1048576.
        #[arg(long, env = "STYLEFORGE_SYNC_PIXEL_BUDGET", value_name = "PIXELS")]
        sync_pixel_budget: Option<u64> => sync_pixel_budget,
        /// Largest request body in bytes. Default 33554432.
        #[arg(long, env = "STYLEFORGE_MAX_UPLOAD_BYTES", value_name = "BYTES")]
        max_upload_bytes: Option<usize> => max_upload_bytes,
        /// Largest image in pixels (checked from the header). Default 40000000.
        #[arg(long, env = "STYLEFORGE_MAX_PIXELS", value_name = "PIXELS")]
        max_pixels: Option<u64> => max_pixels,
        /// Most frames of an uploaded video or animation (0 refuses them). Default 1800.
        #[arg(long, env = "STYLEFORGE_MAX_VIDEO_FRAMES", value_name = "N")]
        max_video_frames: Option<u64> => max_video_frames,
        /// Longest uploaded video in seconds. Default 60.
        #[arg(long, env = "STYLEFORGE_MAX_VIDEO_SECONDS", value_name = "SECONDS")]
        max_video_seconds: Option<f64> => max_video_seconds,
        /// Largest video or animation frame in pixels. Default 2073600.
        #[arg(long, env = "STYLEFORGE_MAX_VIDEO_PIXELS", value_name = "PIXELS")]
        max_video_pixels: Option<u64> => max_video_pixels,
        /// Accepted upload formats, comma-separated (jpeg, png, webp, gif; animations included).
        #[arg(
            long,
            env = "STYLEFORGE_FORMATS",
            value_delimiter = ',',
            value_name = "LIST"
        )]
        formats: Vec<String> => formats,
        /// In-process job workers (0: an API-only server; `styleforge worker` processes run the jobs).
        /// Default 1.
        #[arg(long, env = "STYLEFORGE_WORKERS", value_name = "N")]
        workers: Option<usize> => workers,
        /// Origins allowed by CORS, comma-separated (`*` for any). Default none.
        #[arg(
            long = "cors-origin",
            env = "STYLEFORGE_CORS_ORIGINS",
            value_delimiter = ',',
            value_name = "ORIGINS"
        )]
        cors_origins: Vec<String> => cors_origins,
        /// Default per-key rate limit, requests per minute (0: unlimited). Default 600.
        #[arg(long, env = "STYLEFORGE_RATE_LIMIT", value_name = "N")]
        rate_limit: Option<u32> => rate_limit_per_minute,
        /// Default per-key storage quota in bytes (0: unlimited). Default 1 GiB.
        #[arg(long, env = "STYLEFORGE_QUOTA_BYTES", value_name = "BYTES")]
        quota_bytes: Option<u64> => quota_bytes,
    }
}

/// Runs `styleforge serve`.
pub fn run(a: Args) -> Result<()> {
    let mut c = a.data.config()?;
    a.runner.clone().apply(&mut c);
    a.apply(&mut c);
    styleforge_server::blocking::serve(c)
}

config_flags! {
    /// Options of `styleforge worker`.
    #[derive(clap::Args, Debug)]
    pub struct WorkerArgs {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        runner: RunnerArgs,
        /// Jobs this process runs at once. Default 1.
        #[arg(long, env = "STYLEFORGE_WORKER_CONCURRENCY", value_name = "N")]
        concurrency: Option<usize> => workers | at_least_one,
        /// Methods this worker runs, comma-separated (fast, adain, gatys, cyclegan, train). Default all.
        #[arg(
            long,
            env = "STYLEFORGE_WORKER_METHODS",
            value_delimiter = ',',
            value_name = "LIST"
        )]
        methods: Vec<String> => worker_methods | drop_empty,
        /// Seconds after which the blob of a writer that died before recording it is deleted.
        /// Default 600.
        #[arg(long, env = "STYLEFORGE_ORPHAN_GRACE", value_name = "SECS")]
        orphan_grace: Option<u64> => orphan_grace_secs,
    }
}

/// Runs `styleforge worker`.
pub fn worker(a: WorkerArgs) -> Result<()> {
    let mut c = a.data.config()?;
    a.runner.clone().apply(&mut c);
    a.apply(&mut c);
    styleforge_server::blocking::run_workers(c)
}

/// Subcommands of `styleforge keys`.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key (the secret is printed once): a secret key (`sf_...`), or with
    /// `--publishable` a key for web pages (`pk_...`) usable only from the `--origin`s given and
    /// only for listing styles, uploading images and stylising.
    Create {
        /// A name for the key (who or what uses it).
        #[arg(value_name = "NAME", required_unless_present = "name_flag")]
        name: Option<String>,
        /// The name, as an option (instead of NAME).
        #[arg(long = "name", value_name = "NAME", conflicts_with = "name")]
        name_flag: Option<String>,
        /// A publishable key for the widget on web pages (needs --origin).
        #[arg(long, requires = "origins")]
        publishable: bool,
        /// An origin a publishable key may be used from, e.g. https://example.com (repeat it, or
        /// separate origins with commas).
        #[arg(
            long = "origin",
            value_name = "ORIGIN",
            value_delimiter = ',',
            requires = "publishable"
        )]
        origins: Vec<String>,
        /// Requests per minute for this key (0: unlimited); default: the server's.
        #[arg(long, value_name = "N")]
        rate_limit: Option<u32>,
        /// Storage quota in bytes for this key (0: unlimited); default: the server's.
        #[arg(long, value_name = "BYTES")]
        quota_bytes: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List keys (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a key by id, or every active key with a name.
    Revoke {
        /// Key id or name.
        key: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// Runs `styleforge keys`.
pub fn keys(c: KeysCommand) -> Result<()> {
    match c {
        KeysCommand::Create {
            name,
            name_flag,
            publishable,
            origins,
            rate_limit,
            quota_bytes,
            json,
            data,
        } => {
            let name = name.or(name_flag).unwrap_or_default();
            let limits = KeyLimits {
                rate_limit_per_minute: rate_limit,
                quota_bytes,
            };
            let config = data.config()?;
            let k = if publishable {
                styleforge_server::blocking::create_publishable_key(
                    &config, &name, limits, &origins,
                )?
            } else {
                styleforge_server::blocking::create_key(&config, &name, limits)?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&k)?);
            } else {
                println!("{}", k.key);
                if publishable {
                    eprintln!(
                        "created publishable key {} ({}) for {}; put it in the widget's data-key",
                        k.id,
                        k.name,
                        k.origins.join(", ")
                    );
                } else {
                    eprintln!(
                        "created key {} ({}); the secret above is shown only once",
                        k.id, k.name
                    );
                }
            }
        }
        KeysCommand::List { json, data } => {
            let keys = styleforge_server::blocking::list_keys(&data.config()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no keys (create one with `styleforge keys create NAME`)");
            } else {
                println!(
                    "{:<38} {:<20} {:<12} {:<12} {:<8} origins",
                    "id", "name", "prefix", "kind", "state"
                );
                for k in keys {
                    let state = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<38} {:<20} {:<12} {:<12} {:<8} {}",
                        k.id,
                        k.name,
                        k.prefix,
                        k.kind,
                        state,
                        k.origins.join(",")
                    );
                }
            }
        }
        KeysCommand::Revoke { key, data } => {
            for k in styleforge_server::blocking::revoke_key(&data.config()?, &key)? {
                println!("revoked {} ({})", k.id, k.name);
            }
        }
    }
    Ok(())
}
