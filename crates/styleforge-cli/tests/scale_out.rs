//! Scale-out end to end with real processes: one `styleforge serve --workers 0` API server and
//! `styleforge worker` processes sharing a fresh PostgreSQL database on the local server and a
//! bucket on an S3-compatible server (moto, installed by `scripts/install-test-tools.sh` and
//! started here on a free port). 200 small fast-style jobs; one worker is SIGKILLed while it holds
//! jobs and another is restarted; every job must complete exactly once, with no result lost or
//! duplicated and no orphaned object left in the bucket.
//!
//! `throughput` (ignored; `scripts/scale-out-throughput.sh` runs it) measures jobs per minute
//! with 1, 2 and 4 worker processes on the same set-up.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, PgPool};
use styleforge_core::library::{Library, ModelInfo};
use styleforge_core::shared;

const BUCKET: &str = "styleforge-test";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A child process killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as if the machine died.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a graceful exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not stop within 30 s of SIGTERM", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The S3-compatible server (moto) on a free port, with one bucket.
struct S3Server {
    _proc: Proc,
    endpoint: String,
}

impl S3Server {
    fn start(logs: &Path) -> Self {
        let bin = workspace_root().join(".tools/py/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/install-test-tools.sh (it installs moto's S3 server from PyPI)",
            bin.display()
        );
        let port = free_port();
        let log = std::fs::File::create(logs.join("moto.log")).unwrap();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting moto_server");
        let proc = Proc {
            child,
            name: "moto_server".into(),
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = agent()
            .put(&format!("{endpoint}/{BUCKET}"))
            .send(&[][..])
            .expect("creating the bucket");
        assert_eq!(r.status().as_u16(), 200, "bucket created");
        Self {
            _proc: proc,
            endpoint,
        }
    }

    /// The AWS variables a process needs to reach it.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Every blob hash under a prefix, listed through the S3 API.
    fn list_blobs(&self, prefix: &str) -> Vec<String> {
        let blobs = styleforge_server::store::Blobs::from_url(
            &format!("s3://{BUCKET}/{prefix}"),
            &[
                ("aws_endpoint", self.endpoint.as_str()),
                ("aws_access_key_id", "test"),
                ("aws_secret_access_key", "test"),
                ("aws_region", "us-east-1"),
                ("aws_allow_http", "true"),
            ],
        )
        .unwrap();
        runtime().block_on(blobs.list_blobs()).unwrap()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn pg_admin_url() -> String {
    std::env::var("STYLEFORGE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn pg_admin(sql: String) -> Result<(), String> {
    let admin = pg_admin_url();
    runtime().block_on(async {
        let mut c = sqlx::PgConnection::connect(&admin).await.map_err(|e| {
            format!(
                "PostgreSQL is not reachable at {admin}: {e}\n\
                 This test needs a running PostgreSQL server; start one, or point \
                 STYLEFORGE_TEST_POSTGRES at an administrator URL."
            )
        })?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        c.close().await.map_err(|e| e.to_string())
    })
}

/// A fresh PostgreSQL database, dropped at the end.
struct PgDatabase {
    url: String,
    name: String,
}

impl PgDatabase {
    fn create() -> Self {
        let name = format!("sf_scale_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = pg_admin(format!("CREATE DATABASE {name}")) {
            panic!("{e}");
        }
        let admin = pg_admin_url();
        let (root, _) = admin.split('?').next().unwrap().rsplit_once('/').unwrap();
        Self {
            url: format!("{root}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Err(e) = pg_admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            eprintln!("dropping {}: {e}", self.name);
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut r = agent()
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .expect("request");
    let status = r.status().as_u16();
    let v: Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
    (status, v)
}

fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let mut r = agent().get(url).call().expect("request");
    let status = r.status().as_u16();
    (
        status,
        r.body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap(),
    )
}

/// A distinct 64×64 PNG per index (so every result is a distinct blob).
fn tiny_png(i: usize) -> Vec<u8> {
    let base = image::open(shared::path("data/content/small/cat_chelsea_256.jpg"))
        .unwrap()
        .to_rgb8();
    let (x, y) = ((i * 7) % 150, (i * 13) % 90);
    let crop = image::imageops::crop_imm(&base, x as u32, y as u32, 64, 64).to_image();
    let mut img = crop;
    let p = img.get_pixel_mut(0, 0);
    p.0 = [(i % 256) as u8, (i / 256) as u8, 7];
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// The shared set-up: a models home, PostgreSQL, S3, and the API server.
struct Cluster {
    home: tempfile::TempDir,
    logs: PathBuf,
    pg: PgDatabase,
    s3: S3Server,
    prefix: String,
    api: Option<Proc>,
    base: String,
    worker_seq: usize,
}

impl Cluster {
    fn start() -> Self {
        let home = tempfile::tempdir().unwrap();
        Library::new(home.path())
            .import(
                &[shared::path(
                    "models/fast_style_pytorch/mosaic_nc8.safetensors",
                )],
                ModelInfo {
                    name: "mosaic".into(),
                    title: "Mosaic".into(),
                    ..Default::default()
                },
                true,
            )
            .unwrap();
        let logs = home.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let pg = PgDatabase::create();
        let s3 = S3Server::start(&logs);
        let prefix = format!("run-{}", uuid::Uuid::new_v4().simple());
        let mut c = Self {
            home,
            logs,
            pg,
            s3,
            prefix,
            api: None,
            base: String::new(),
            worker_seq: 0,
        };
        c.start_api();
        c
    }

    fn command(&self, log: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_styleforge"));
        cmd.env("STYLEFORGE_HOME", self.home.path())
            .env("STYLEFORGE_DATA_DIR", self.home.path().join("data"))
            .env("STYLEFORGE_DATABASE_URL", &self.pg.url)
            .env(
                "STYLEFORGE_STORAGE",
                format!("s3://{BUCKET}/{}", self.prefix),
            )
            .env("STYLEFORGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.logs.join(log)).unwrap());
        for (k, v) in self.s3.env() {
            cmd.env(k, v);
        }
        cmd
    }

    fn start_api(&mut self) {
        let mut cmd = self.command("api.log");
        let port = free_port();
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--anonymous",
            "--workers",
            "0",
            "--rate-limit",
            "0",
        ]);
        let child = cmd.spawn().expect("starting the API server");
        self.api = Some(Proc {
            child,
            name: "api".into(),
        });
        self.base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        loop {
            if let Ok(mut r) = agent().get(&format!("{}/readyz", self.base)).call()
                && r.status().as_u16() == 200
            {
                let _ = r.body_mut().read_to_vec();
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the API server did not become ready; see {}",
                self.logs.join("api.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a worker process running `concurrency` jobs at once.
    fn worker(&mut self, concurrency: usize) -> Proc {
        self.worker_seq += 1;
        let name = format!("worker{}", self.worker_seq);
        let mut cmd = self.command(&format!("{name}.log"));
        cmd.args([
            "worker",
            "--concurrency",
            &concurrency.to_string(),
            "--inference-slots",
            "1",
            "--poll-ms",
            "50",
            "--lease-secs",
            "3",
            "--orphan-grace",
            "2",
            "--shutdown-grace",
            "10",
            "--methods",
            "fast",
        ]);
        let child = cmd.spawn().expect("starting a worker");
        Proc { child, name }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads `n` distinct images and queues one job each; returns the job ids.
    fn submit(&self, n: usize) -> Vec<String> {
        let images: Vec<String> = (0..n)
            .map(|i| {
                let (st, v) = post(&self.url("/v1/images"), "image/png", &tiny_png(i));
                assert_eq!(st, 201, "{v}");
                v["id"].as_str().unwrap().to_string()
            })
            .collect();
        images
            .iter()
            .map(|id| {
                let body = json!({"image": id, "style": "mosaic", "method": "fast", "async": true});
                let (st, v) = post(
                    &self.url("/v1/stylize"),
                    "application/json",
                    body.to_string().as_bytes(),
                );
                assert_eq!(st, 202, "{v}");
                v["job"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// A pool on `rt`, the runtime that will run its queries (a pool's connections belong to
    /// the runtime that opened them).
    fn pool(&self, rt: &tokio::runtime::Runtime) -> PgPool {
        rt.block_on(PgPool::connect(&self.pg.url)).unwrap()
    }
}

fn counts(rt: &tokio::runtime::Runtime, pool: &PgPool) -> HashMap<String, i64> {
    rt.block_on(
        sqlx::query_as::<_, (String, i64)>("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(pool),
    )
    .unwrap_or_else(|e| panic!("counting jobs: {e}"))
    .into_iter()
    .collect()
}

/// Waits until `n` jobs have succeeded (panics on a failed job or after `timeout`).
fn wait_all(rt: &tokio::runtime::Runtime, pool: &PgPool, n: i64, timeout: Duration) {
    let t = Instant::now();
    loop {
        let c = counts(rt, pool);
        assert_eq!(c.get("failed"), None, "no job failed: {c:?}");
        if c.get("succeeded").copied().unwrap_or(0) == n {
            return;
        }
        assert!(t.elapsed() < timeout, "jobs still unfinished: {c:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Jobs held right now by a worker process.
fn held_by(rt: &tokio::runtime::Runtime, pool: &PgPool, pid: u32) -> Vec<String> {
    rt.block_on(
        sqlx::query_scalar::<_, String>(
            "SELECT id FROM jobs WHERE state = 'running' AND lease_owner LIKE $1",
        )
        .bind(format!("%-{pid}-%"))
        .fetch_all(pool),
    )
    .unwrap()
}

#[test]
fn many_workers_complete_every_job_exactly_once_through_kills_and_restarts() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start();
    let rt = runtime();
    let pool = cluster.pool(&rt);
    let jobs = cluster.submit(200);
    assert_eq!(counts(&rt, &pool).get("queued"), Some(&200));

    let victim = cluster.worker(2);
    let restarted = cluster.worker(2);
    let steady = cluster.worker(2);

    // SIGKILL the first worker while it holds jobs.
    let t = Instant::now();
    let victim_pid = victim.pid();
    let held = loop {
        let held = held_by(&rt, &pool, victim_pid);
        let done = counts(&rt, &pool).get("succeeded").copied().unwrap_or(0);
        if !held.is_empty() && done >= 20 {
            victim.kill();
            // Statements the worker sent just before it died (a final COMMIT) still complete on
            // the server: look at what it holds once they have.
            std::thread::sleep(Duration::from_millis(500));
            break held_by(&rt, &pool, victim_pid);
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the victim never held a job"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(!held.is_empty(), "killed while holding a job");
    eprintln!(
        "SIGKILLed worker {victim_pid} while it held {} job(s)",
        held.len()
    );

    // Restart the second one gracefully once more work is done.
    let done_at_kill = counts(&rt, &pool).get("succeeded").copied().unwrap_or(0);
    let t = Instant::now();
    while counts(&rt, &pool).get("succeeded").copied().unwrap_or(0) < done_at_kill + 20 {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no progress after the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    restarted.stop();
    let replacement = cluster.worker(2);

    wait_all(&rt, &pool, 200, Duration::from_secs(240));

    // Exactly one result per job, each the job's own, each downloadable.
    let rows: Vec<(String, Option<String>, i64)> = rt
        .block_on(
            sqlx::query_as("SELECT id, result_id, attempts FROM jobs ORDER BY id").fetch_all(&pool),
        )
        .unwrap();
    assert_eq!(rows.len(), 200);
    let results: Vec<(String, String, String)> = rt
        .block_on(sqlx::query_as("SELECT id, job_id, sha256 FROM results").fetch_all(&pool))
        .unwrap();
    assert_eq!(results.len(), 200, "one result per job, none duplicated");
    let by_job: HashMap<&str, &str> = results
        .iter()
        .map(|(id, job, _)| (job.as_str(), id.as_str()))
        .collect();
    assert_eq!(by_job.len(), 200);
    for (job, result, _) in &rows {
        assert_eq!(
            by_job.get(job.as_str()).copied(),
            result.as_deref(),
            "job {job} points at its one result"
        );
    }
    let mut want: HashSet<String> = jobs.iter().cloned().collect();
    for (job, _, _) in &rows {
        assert!(want.remove(job));
    }
    for j in &held {
        let attempts = rows.iter().find(|r| &r.0 == j).unwrap().2;
        assert!(
            attempts >= 2,
            "job {j} held by the killed worker ran again ({attempts} attempts)"
        );
    }
    for j in jobs.iter().step_by(10) {
        let (st, png) = get_bytes(&cluster.url(&format!("/v1/jobs/{j}/result")));
        assert_eq!(st, 200);
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (64, 64));
    }
    // A presigned S3 URL for a result: the bucket serves the same bytes, without the service.
    let (_, job) = get_bytes(&cluster.url(&format!("/v1/jobs/{}", jobs[0])));
    let job: Value = serde_json::from_slice(&job).unwrap();
    let rid = job["result"].as_str().unwrap();
    let (st, link) = post(
        &cluster.url(&format!("/v1/results/{rid}/links")),
        "application/json",
        br#"{"presigned": true, "expires_in": 300}"#,
    );
    assert_eq!(st, 201, "{link}");
    assert_eq!(link["kind"], "presigned");
    let presigned = link["url"].as_str().unwrap();
    assert!(presigned.starts_with(&cluster.s3.endpoint) && presigned.contains("X-Amz-Signature="), "{presigned}");
    let (st, from_bucket) = get_bytes(presigned);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&from_bucket));
    let (_, via_service) = get_bytes(&cluster.url(&format!("/v1/results/{rid}")));
    assert_eq!(from_bucket, via_service);

    // No orphaned objects: once pending intents are collected, the bucket holds exactly the
    // blobs that rows reference.
    let t = Instant::now();
    let mut first = true;
    loop {
        let pending: i64 = rt
            .block_on(sqlx::query_scalar("SELECT COUNT(*) FROM blob_intents").fetch_one(&pool))
            .unwrap();
        if first {
            eprintln!("{pending} blob intent(s) pending after the last job");
            first = false;
        }
        if pending == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{pending} blob intents never collected"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let referenced: HashSet<String> = rt
        .block_on(
            sqlx::query_scalar::<_, String>(
                "SELECT sha256 FROM images UNION SELECT sha256 FROM results",
            )
            .fetch_all(&pool),
        )
        .unwrap()
        .into_iter()
        .collect();
    let stored: HashSet<String> = cluster.s3.list_blobs(&cluster.prefix).into_iter().collect();
    assert_eq!(
        referenced.len(),
        400,
        "200 distinct uploads and 200 distinct results"
    );
    let orphans: Vec<_> = stored.difference(&referenced).collect();
    let missing: Vec<_> = referenced.difference(&stored).collect();
    assert!(
        orphans.is_empty(),
        "orphaned objects in the bucket: {orphans:?}"
    );
    assert!(missing.is_empty(), "referenced blobs missing: {missing:?}");

    drop(steady);
    drop(replacement);
    rt.block_on(pool.close());
    eprintln!(
        "200 jobs through a kill and a restart in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Jobs per minute with 1, 2 and 4 worker processes (`STYLEFORGE_BENCH_WORKERS`, default
/// `1,2,4`; `STYLEFORGE_BENCH_JOBS` jobs each, default 200). Prints a Markdown table.
#[test]
#[ignore = "a measurement: scripts/scale-out-throughput.sh runs it"]
fn throughput() {
    let counts_env = std::env::var("STYLEFORGE_BENCH_WORKERS").unwrap_or_else(|_| "1,2,4".into());
    let n: usize = std::env::var("STYLEFORGE_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut rows = Vec::new();
    for w in counts_env
        .split(',')
        .map(|s| s.trim().parse::<usize>().unwrap())
    {
        let mut cluster = Cluster::start();
        let rt = runtime();
        let pool = cluster.pool(&rt);
        cluster.submit(n);
        let t = Instant::now();
        let workers: Vec<Proc> = (0..w).map(|_| cluster.worker(1)).collect();
        wait_all(&rt, &pool, n as i64, Duration::from_secs(900));
        let secs = t.elapsed().as_secs_f64();
        drop(workers);
        rt.block_on(pool.close());
        let per_min = n as f64 / secs * 60.0;
        eprintln!("{w} worker(s): {n} jobs in {secs:.1} s = {per_min:.0} jobs/min");
        rows.push((w, secs, per_min));
    }
    println!("| worker processes | jobs | seconds | jobs/minute |");
    println!("|---|---|---|---|");
    for (w, secs, per_min) in rows {
        println!("| {w} | {n} | {secs:.1} | {per_min:.0} |");
    }
}
