//! The metadata database: connection, migrations, rows and queries, on SQLite (the default) or
//! PostgreSQL (a `postgres://` URL).
//!
//! [`Db`] is an enum over the two sqlx pools and every query is written once and run on either
//! (the [`with_pool!`](crate::db::with_pool) macro expands the same statement for each). SQL is
//! kept portable (numbered `$N` parameters, `RETURNING`, `ON CONFLICT`, BIGINT/TEXT/BOOLEAN/DOUBLE
//! PRECISION columns), so the same migration files run on both. The one difference is job
//! claiming: an `UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING` statement, atomic under
//! SQLite's single writer, whose inner select takes `FOR UPDATE SKIP LOCKED` on PostgreSQL so
//! concurrent workers each lock a different row instead of waiting on one another.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, PgPool, SqlitePool};

/// The migrations, shared by both databases.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A connection pool to SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub enum Db {
    /// A SQLite database file (one process or several on one machine).
    Sqlite(SqlitePool),
    /// A PostgreSQL database (any number of API servers and workers).
    Postgres(PgPool),
}

/// Runs the same expression on whichever pool `db` holds: `with_pool!(db, p => query.fetch_all(p).await)`.
macro_rules! with_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($p) => $body,
            $crate::db::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Db {
    /// Closes every connection.
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Checks that the database answers (readiness).
    pub async fn ping(&self) -> sqlx::Result<()> {
        with_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether a URL names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens (creating the SQLite file when missing) and migrates the database: `sqlite://PATH` or
/// `postgres://USER@HOST:PORT/DB`.
pub async fn connect(url: &str) -> anyhow::Result<Db> {
    if is_postgres_url(url) {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("database URL {}: {e}", redact(url)))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| anyhow::anyhow!("opening database {}: {e}", redact(url)))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("migrating database {}: {e}", redact(url)))?;
        return Ok(Db::Postgres(pool));
    }
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or(path);
        if !path.is_empty()
            && path != ":memory:"
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
    } else {
        anyhow::bail!(
            "unsupported database URL `{}` (use sqlite://PATH or postgres://USER@HOST/DB)",
            redact(url)
        );
    }
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(15))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
        .map_err(|e| anyhow::anyhow!("opening database {url}: {e}"))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrating database {url}: {e}"))?;
    Ok(Db::Sqlite(pool))
}

/// A URL with its password hidden (for messages and logs).
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
        && let Some((user, _)) = creds.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

// ---------------------------------------------------------------------------------------------
// API keys

/// A stored API key (its hash only).
#[derive(Debug, Clone, FromRow)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub rate_limit_per_minute: Option<i64>,
    pub quota_bytes: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub async fn insert_key(db: &Db, k: &KeyRow) -> sqlx::Result<()> {
    with_pool!(db, p => sqlx::query(
        "INSERT INTO api_keys (id, name, key_hash, prefix, rate_limit_per_minute, quota_bytes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&k.id)
    .bind(&k.name)
    .bind(&k.key_hash)
    .bind(&k.prefix)
    .bind(k.rate_limit_per_minute)
    .bind(k.quota_bytes)
    .bind(k.created_at)
    .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn key_by_hash(db: &Db, hash: &str) -> sqlx::Result<Option<KeyRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM api_keys WHERE key_hash = $1")
        .bind(hash)
        .fetch_optional(p).await)
}

pub async fn list_keys(db: &Db) -> sqlx::Result<Vec<KeyRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM api_keys ORDER BY created_at, id")
        .fetch_all(p).await)
}

pub async fn touch_key(db: &Db, id: &str, now: i64) -> sqlx::Result<()> {
    with_pool!(db, p => sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Revokes by id or name; returns the keys revoked.
pub async fn revoke_key(db: &Db, id_or_name: &str, now: i64) -> sqlx::Result<Vec<KeyRow>> {
    with_pool!(db, p => sqlx::query_as(
        "UPDATE api_keys SET revoked_at = $1 WHERE (id = $2 OR name = $2) AND revoked_at IS NULL RETURNING *",
    )
    .bind(now)
    .bind(id_or_name)
    .fetch_all(p).await)
}

// ---------------------------------------------------------------------------------------------
// Images (uploads and custom style images)

/// An uploaded image.
#[derive(Debug, Clone, FromRow)]
pub struct ImageRow {
    pub id: String,
    pub owner: String,
    /// `content` or `style`.
    pub kind: String,
    pub sha256: String,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    pub title: String,
    pub tags: String,
    pub description: String,
    pub created_at: i64,
}

pub async fn insert_image(db: &Db, r: &ImageRow) -> sqlx::Result<()> {
    with_pool!(db, p => sqlx::query(
        "INSERT INTO images (id, owner, kind, sha256, format, width, height, bytes, title, tags, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&r.id)
    .bind(&r.owner)
    .bind(&r.kind)
    .bind(&r.sha256)
    .bind(&r.format)
    .bind(r.width)
    .bind(r.height)
    .bind(r.bytes)
    .bind(&r.title)
    .bind(&r.tags)
    .bind(&r.description)
    .bind(r.created_at)
    .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get_image(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<ImageRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM images WHERE id = $1 AND owner = $2")
        .bind(id)
        .bind(owner)
        .fetch_optional(p).await)
}

pub async fn list_images(
    db: &Db,
    owner: &str,
    kind: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> sqlx::Result<Vec<ImageRow>> {
    let (t, id) = before.unwrap_or((i64::MAX, String::new()));
    with_pool!(db, p => sqlx::query_as(
        "SELECT * FROM images WHERE owner = $1 AND kind = $2 AND (created_at < $3 OR (created_at = $3 AND id < $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5",
    )
    .bind(owner)
    .bind(kind)
    .bind(t)
    .bind(if id.is_empty() { "\u{10ffff}".to_string() } else { id })
    .bind(limit)
    .fetch_all(p).await)
}

pub async fn delete_image(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<ImageRow>> {
    with_pool!(db, p => sqlx::query_as("DELETE FROM images WHERE id = $1 AND owner = $2 RETURNING *")
        .bind(id)
        .bind(owner)
        .fetch_optional(p).await)
}

/// How many rows (images and results) still point at a blob.
pub async fn blob_refs(db: &Db, sha: &str) -> sqlx::Result<i64> {
    let a: i64 = with_pool!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE sha256 = $1")
        .bind(sha)
        .fetch_one(p).await)?;
    let b: i64 = with_pool!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM results WHERE sha256 = $1")
        .bind(sha)
        .fetch_one(p).await)?;
    Ok(a + b)
}

/// Bytes stored by an owner (images and results).
pub async fn usage_bytes(db: &Db, owner: &str) -> sqlx::Result<i64> {
    let a: i64 = with_pool!(db, p => sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM images WHERE owner = $1",
    )
    .bind(owner)
    .fetch_one(p).await)?;
    let b: i64 = with_pool!(db, p => sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM results WHERE owner = $1",
    )
    .bind(owner)
    .fetch_one(p).await)?;
    Ok(a + b)
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// Job states.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";

    /// Whether a state is final.
    pub fn is_terminal(s: &str) -> bool {
        matches!(s, SUCCEEDED | FAILED | CANCELLED)
    }
}

/// A job: every stylisation, synchronous ones included (recorded as already succeeded).
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: String,
    pub owner: String,
    pub state: String,
    pub method: String,
    pub style: String,
    pub image_id: String,
    /// The resolved request (JSON of [`crate::jobs::JobSpec`]).
    pub spec: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub heartbeat_at: Option<i64>,
    pub cancel_requested: bool,
    pub fraction: f64,
    pub stage: String,
    pub iteration: Option<i64>,
    pub iterations: Option<i64>,
    pub eta_ms: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// What the job needs: `any` worker, or a `gpu` one.
    pub device: String,
}

impl JobRow {
    /// A new queued job.
    pub fn queued(
        id: String,
        owner: &str,
        method: &str,
        style: &str,
        image_id: &str,
        spec: String,
        max_attempts: i64,
    ) -> Self {
        let now = now_ms();
        Self {
            id,
            owner: owner.to_string(),
            state: state::QUEUED.into(),
            method: method.into(),
            style: style.into(),
            image_id: image_id.into(),
            spec,
            attempts: 0,
            max_attempts,
            lease_owner: None,
            lease_expires_at: None,
            heartbeat_at: None,
            cancel_requested: false,
            fraction: 0.0,
            stage: "queued".into(),
            iteration: None,
            iterations: None,
            eta_ms: None,
            error_code: None,
            error_message: None,
            result_id: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            device: "any".into(),
        }
    }
}

/// The INSERT of a job row, for any executor.
macro_rules! insert_job_query {
    ($j:expr) => {{
        let j: &JobRow = $j;
        sqlx::query(
        "INSERT INTO jobs (id, owner, state, method, style, image_id, spec, attempts, max_attempts, \
         cancel_requested, fraction, stage, iteration, iterations, result_id, created_at, started_at, finished_at, updated_at, device) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(&j.id)
    .bind(&j.owner)
    .bind(&j.state)
    .bind(&j.method)
    .bind(&j.style)
    .bind(&j.image_id)
    .bind(&j.spec)
    .bind(j.attempts)
    .bind(j.max_attempts)
    .bind(j.cancel_requested)
    .bind(j.fraction)
    .bind(&j.stage)
    .bind(j.iteration)
    .bind(j.iterations)
    .bind(&j.result_id)
    .bind(j.created_at)
    .bind(j.started_at)
    .bind(j.finished_at)
    .bind(j.updated_at)
    .bind(&j.device)
    }};
}

/// Inserts a job.
pub async fn insert_job(db: &Db, j: &JobRow) -> sqlx::Result<()> {
    with_pool!(db, p => insert_job_query!(j).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get_job(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<JobRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM jobs WHERE id = $1 AND owner = $2")
        .bind(id)
        .bind(owner)
        .fetch_optional(p).await)
}

pub async fn get_job_by_id(db: &Db, id: &str) -> sqlx::Result<Option<JobRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(p).await)
}

pub async fn list_jobs(
    db: &Db,
    owner: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    let (t, id) = before.unwrap_or((i64::MAX, "\u{10ffff}".to_string()));
    with_pool!(db, p => sqlx::query_as(
        "SELECT * FROM jobs WHERE owner = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4",
    )
    .bind(owner)
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(p).await)
}

/// What a worker can run: its device class and the methods it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// `cpu` or `gpu`: a `gpu` worker also takes jobs that need no GPU; a `cpu` worker takes
    /// only those.
    pub device: String,
    /// Methods it runs (`fast`, `adain`, `gatys`, `cyclegan`); empty: every method.
    pub methods: Vec<String>,
}

impl Capabilities {
    /// Every method, on a device class.
    pub fn all(device: &str) -> Self {
        Self {
            device: device.to_string(),
            methods: Vec::new(),
        }
    }
}

/// Claims the oldest runnable job this worker can run: a queued one, or a running one whose
/// lease has expired (its worker died) and that has attempts left. Jobs that need a GPU
/// (`device = 'gpu'`) go only to GPU workers; jobs of other methods than `caps.methods` are left
/// to other workers. On PostgreSQL the candidate row is locked with `FOR UPDATE SKIP LOCKED`, so
/// concurrent claimers never wait on, or take, the same job.
pub async fn claim_job(
    db: &Db,
    worker: &str,
    lease_ms: i64,
    caps: &Capabilities,
) -> sqlx::Result<Option<JobRow>> {
    let now = now_ms();
    let methods = if caps.methods.is_empty() {
        String::new()
    } else {
        let marks: Vec<String> = (0..caps.methods.len())
            .map(|i| format!("${}", i + 6))
            .collect();
        format!("AND method IN ({}) ", marks.join(", "))
    };
    let lock = if db.is_postgres() {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, heartbeat_at = $3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3, stage = 'starting' \
         WHERE id = ( \
             SELECT id FROM jobs \
             WHERE (state = 'queued' \
                OR (state = 'running' AND lease_expires_at < $3 AND attempts < max_attempts AND cancel_requested = $4)) \
               AND (device = 'any' OR device = $5) {methods}\
             ORDER BY created_at, id LIMIT 1 {lock}) \
         RETURNING *"
    );
    with_pool!(db, p => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now + lease_ms)
            .bind(now)
            .bind(false)
            .bind(caps.device.as_str());
        for m in &caps.methods {
            q = q.bind(m.as_str());
        }
        q.fetch_optional(p).await
    })
}

/// Settles jobs whose lease expired and that will not be retried: cancelled when a cancel was
/// asked for, failed when out of attempts. Returns the ids touched.
pub async fn sweep_expired(db: &Db) -> sqlx::Result<Vec<String>> {
    let now = now_ms();
    let mut ids: Vec<String> = with_pool!(db, p => sqlx::query_scalar(
        "UPDATE jobs SET state = 'cancelled', stage = 'cancelled', lease_owner = NULL, finished_at = $1, updated_at = $1 \
         WHERE state = 'running' AND lease_expires_at < $1 AND cancel_requested = $2 RETURNING id",
    )
    .bind(now)
    .bind(true)
    .fetch_all(p).await)?;
    let failed: Vec<String> = with_pool!(db, p => sqlx::query_scalar(
        "UPDATE jobs SET state = 'failed', stage = 'failed', lease_owner = NULL, finished_at = $1, updated_at = $1, \
             error_code = 'worker_lost', error_message = 'the job lost its worker on every attempt' \
         WHERE state = 'running' AND lease_expires_at < $1 AND attempts >= max_attempts RETURNING id",
    )
    .bind(now)
    .fetch_all(p).await)?;
    ids.extend(failed);
    Ok(ids)
}

/// Renews a lease. `None`: the worker no longer holds the job; `Some(cancel_requested)` otherwise.
pub async fn heartbeat(
    db: &Db,
    id: &str,
    worker: &str,
    lease_ms: i64,
) -> sqlx::Result<Option<bool>> {
    let now = now_ms();
    with_pool!(db, p => sqlx::query_scalar(
        "UPDATE jobs SET lease_expires_at = $1, heartbeat_at = $2 \
         WHERE id = $3 AND lease_owner = $4 AND state = 'running' RETURNING cancel_requested",
    )
    .bind(now + lease_ms)
    .bind(now)
    .bind(id)
    .bind(worker)
    .fetch_optional(p).await)
}

/// Progress of a running job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProgressRow {
    pub fraction: f64,
    pub stage: String,
    pub iteration: Option<i64>,
    pub iterations: Option<i64>,
    pub eta_ms: Option<i64>,
}

pub async fn set_progress(db: &Db, id: &str, worker: &str, p: &ProgressRow) -> sqlx::Result<bool> {
    let r = with_pool!(db, pool => sqlx::query(
        "UPDATE jobs SET fraction = $1, stage = $2, iteration = $3, iterations = $4, eta_ms = $5, updated_at = $6 \
         WHERE id = $7 AND lease_owner = $8 AND state = 'running'",
    )
    .bind(p.fraction)
    .bind(&p.stage)
    .bind(p.iteration)
    .bind(p.iterations)
    .bind(p.eta_ms)
    .bind(now_ms())
    .bind(id)
    .bind(worker)
    .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Ends a running job held by `worker` in `state` (failed or cancelled) with an optional error.
pub async fn finish_job(
    db: &Db,
    id: &str,
    worker: &str,
    new_state: &str,
    error: Option<(&str, &str)>,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let r = with_pool!(db, p => sqlx::query(
        "UPDATE jobs SET state = $1, stage = $1, lease_owner = NULL, lease_expires_at = NULL, finished_at = $2, updated_at = $2, \
             error_code = $3, error_message = $4, eta_ms = NULL \
         WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
    )
    .bind(new_state)
    .bind(now)
    .bind(error.map(|e| e.0))
    .bind(error.map(|e| e.1))
    .bind(id)
    .bind(worker)
    .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Puts a running job back in the queue (shutdown, or a transient failure). With `refund`, the
/// attempt does not count.
pub async fn requeue_job(db: &Db, id: &str, worker: &str, refund: bool) -> sqlx::Result<bool> {
    let now = now_ms();
    let r = with_pool!(db, p => sqlx::query(
        "UPDATE jobs SET state = 'queued', stage = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
             attempts = CASE WHEN $1 THEN attempts - 1 ELSE attempts END, fraction = 0, iteration = NULL, eta_ms = NULL, updated_at = $2 \
         WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
    )
    .bind(refund)
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(r == 1)
}

/// Cancels a job: at once when queued, by request when running. Returns the job afterwards.
pub async fn cancel_job(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<JobRow>> {
    let now = now_ms();
    with_pool!(db, p => sqlx::query(
        "UPDATE jobs SET state = 'cancelled', stage = 'cancelled', cancel_requested = $1, finished_at = $2, updated_at = $2 \
         WHERE id = $3 AND owner = $4 AND state = 'queued'",
    )
    .bind(true)
    .bind(now)
    .bind(id)
    .bind(owner)
    .execute(p).await.map(|r| r.rows_affected()))?;
    with_pool!(db, p => sqlx::query(
        "UPDATE jobs SET cancel_requested = $1, stage = 'cancelling', updated_at = $2 \
         WHERE id = $3 AND owner = $4 AND state = 'running'",
    )
    .bind(true)
    .bind(now)
    .bind(id)
    .bind(owner)
    .execute(p).await.map(|r| r.rows_affected()))?;
    get_job(db, id, owner).await
}

/// Job counts by state (for metrics and readiness).
pub async fn job_counts(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    with_pool!(db, p => sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        .fetch_all(p).await)
}

// ---------------------------------------------------------------------------------------------
// Results

/// A stylised image.
#[derive(Debug, Clone, FromRow)]
pub struct ResultRow {
    pub id: String,
    pub owner: String,
    pub job_id: String,
    pub image_id: String,
    pub style: String,
    pub method: String,
    pub sha256: String,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    /// JSON of [`crate::jobs::Timings`].
    pub timings: String,
    pub content_loss: Option<f64>,
    pub style_loss: Option<f64>,
    pub created_at: i64,
}

/// The INSERT of a result row, for any executor.
macro_rules! insert_result_query {
    ($r:expr) => {{
        let r: &ResultRow = $r;
        sqlx::query(
        "INSERT INTO results (id, owner, job_id, image_id, style, method, sha256, format, width, height, bytes, timings, \
         content_loss, style_loss, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&r.id)
    .bind(&r.owner)
    .bind(&r.job_id)
    .bind(&r.image_id)
    .bind(&r.style)
    .bind(&r.method)
    .bind(&r.sha256)
    .bind(&r.format)
    .bind(r.width)
    .bind(r.height)
    .bind(r.bytes)
    .bind(&r.timings)
    .bind(r.content_loss)
    .bind(r.style_loss)
    .bind(r.created_at)
    }};
}

/// Inserts a result.
pub async fn insert_result(db: &Db, r: &ResultRow) -> sqlx::Result<()> {
    with_pool!(db, p => insert_result_query!(r).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Stores a finished job's result and marks the job succeeded, in one transaction, only if
/// `worker` still holds the job; the transaction also clears the blob intent of the result.
/// Returns false (nothing written) when the worker no longer holds the job.
pub async fn complete_job(
    db: &Db,
    job_id: &str,
    worker: &str,
    r: &ResultRow,
) -> sqlx::Result<bool> {
    let now = now_ms();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'succeeded', stage = 'succeeded', fraction = 1, result_id = $1, lease_owner = NULL, \
                 lease_expires_at = NULL, eta_ms = NULL, finished_at = $2, updated_at = $2 \
             WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        )
        .bind(&r.id)
        .bind(now)
        .bind(job_id)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_result_query!(r).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM blob_intents WHERE sha256 = $1 AND token = $2")
            .bind(&r.sha256)
            .bind(intent_token(job_id, worker))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    })
}

/// Records a synchronous stylisation: its job (already succeeded) and its result.
pub async fn insert_sync(db: &Db, job: &JobRow, r: &ResultRow) -> sqlx::Result<()> {
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        insert_job_query!(job).execute(&mut *tx).await?;
        insert_result_query!(r).execute(&mut *tx).await?;
        tx.commit().await
    })
}

pub async fn get_result(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<ResultRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM results WHERE id = $1 AND owner = $2")
        .bind(id)
        .bind(owner)
        .fetch_optional(p).await)
}

// ---------------------------------------------------------------------------------------------
// Blob intents: a row written before a blob is stored and removed once a row references it, so
// a process that dies in between leaves a trace and the blob is collected later.

/// The intent token of a job's result stored by one worker (two workers that both ran a job
/// announce their blobs separately).
pub fn intent_token(job_id: &str, worker: &str) -> String {
    format!("{job_id}/{worker}")
}

/// Records that `token` (a job or request id) is about to store blob `sha`.
pub async fn add_blob_intent(db: &Db, sha: &str, token: &str) -> sqlx::Result<()> {
    with_pool!(db, p => sqlx::query(
        "INSERT INTO blob_intents (sha256, token, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (sha256, token) DO UPDATE SET created_at = excluded.created_at",
    )
    .bind(sha)
    .bind(token)
    .bind(now_ms())
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes an intent once its blob is referenced (or given up).
pub async fn clear_blob_intent(db: &Db, sha: &str, token: &str) -> sqlx::Result<()> {
    with_pool!(db, p => sqlx::query("DELETE FROM blob_intents WHERE sha256 = $1 AND token = $2")
        .bind(sha)
        .bind(token)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes the intents older than `cutoff_ms` (each is returned to one caller only) and returns the
/// hashes among them that no row references and no newer intent covers: blobs left behind by a
/// process that died between storing them and recording them.
pub async fn take_stale_intents(db: &Db, cutoff_ms: i64) -> sqlx::Result<Vec<String>> {
    let mut shas: Vec<String> = with_pool!(db, p => sqlx::query_scalar(
        "DELETE FROM blob_intents WHERE created_at < $1 RETURNING sha256",
    )
    .bind(cutoff_ms)
    .fetch_all(p)
    .await)?;
    shas.sort();
    shas.dedup();
    let mut orphans = Vec::new();
    for sha in shas {
        let pending: i64 = with_pool!(db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM blob_intents WHERE sha256 = $1",
        )
        .bind(&sha)
        .fetch_one(p)
        .await)?;
        if pending == 0 && blob_refs(db, &sha).await? == 0 {
            orphans.push(sha);
        }
    }
    Ok(orphans)
}

// ---------------------------------------------------------------------------------------------
// Ratings

pub async fn upsert_rating(db: &Db, r: &ResultRow, owner: &str, score: i64) -> sqlx::Result<()> {
    let now = now_ms();
    with_pool!(db, p => sqlx::query(
        "INSERT INTO ratings (result_id, owner, style, method, score, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (result_id, owner) DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at",
    )
    .bind(&r.id)
    .bind(owner)
    .bind(&r.style)
    .bind(&r.method)
    .bind(score)
    .bind(now)
    .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get_rating(db: &Db, result_id: &str, owner: &str) -> sqlx::Result<Option<i64>> {
    with_pool!(db, p => sqlx::query_scalar("SELECT score FROM ratings WHERE result_id = $1 AND owner = $2")
        .bind(result_id)
        .bind(owner)
        .fetch_optional(p).await)
}

/// Aggregated ratings per style and method.
#[derive(Debug, Clone, FromRow)]
pub struct RatingAggRow {
    pub style: String,
    pub method: String,
    pub count: i64,
    pub mean: f64,
    pub s1: i64,
    pub s2: i64,
    pub s3: i64,
    pub s4: i64,
    pub s5: i64,
}

pub async fn rating_aggregates(
    db: &Db,
    style: Option<&str>,
    method: Option<&str>,
) -> sqlx::Result<Vec<RatingAggRow>> {
    with_pool!(db, p => sqlx::query_as(
        "SELECT style, method, COUNT(*) AS count, AVG(CAST(score AS DOUBLE PRECISION)) AS mean, \
             SUM(CASE WHEN score = 1 THEN 1 ELSE 0 END) AS s1, SUM(CASE WHEN score = 2 THEN 1 ELSE 0 END) AS s2, \
             SUM(CASE WHEN score = 3 THEN 1 ELSE 0 END) AS s3, SUM(CASE WHEN score = 4 THEN 1 ELSE 0 END) AS s4, \
             SUM(CASE WHEN score = 5 THEN 1 ELSE 0 END) AS s5 \
         FROM ratings WHERE ($1 IS NULL OR style = $1) AND ($2 IS NULL OR method = $2) \
         GROUP BY style, method ORDER BY style, method",
    )
    .bind(style)
    .bind(method)
    .fetch_all(p).await)
}
