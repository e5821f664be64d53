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
//!
//! One file per group of tables, each with its rows and queries:
//!
//! - [`keys`]: API keys and the storage an owner uses;
//! - [`images`]: uploads and custom style images;
//! - [`jobs`]: the job queue (claims, leases, heartbeats, progress, cancellation);
//! - [`results`]: results, the transactions that record them with their job, and ratings;
//! - [`preferences`]: pairwise preferences between two results of one photo;
//! - [`blobs`]: blob intents and the references that keep a blob alive;
//! - [`webhooks`]: webhook deliveries, signing secrets, and the server's own secrets;
//! - [`idempotency`]: the answers kept for `Idempotency-Key` retries;
//! - [`batches`]: batches of jobs.
//!
//! Everything is re-exported here, so callers write `db::get_image`, `db::JobRow`, and so on.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, PgPool, SqlitePool};

pub mod batches;
pub mod blobs;
pub mod idempotency;
pub mod images;
pub mod jobs;
pub mod keys;
pub mod preferences;
pub mod results;
pub mod webhooks;

pub use batches::*;
pub use blobs::*;
pub use idempotency::*;
pub use images::*;
pub use jobs::*;
pub use keys::*;
pub use preferences::*;
pub use results::*;
pub use webhooks::*;

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

/// Runs a statement on whichever pool `db` holds and returns how many rows it changed:
/// `execute!(db, sqlx::query("...").bind(x))`.
macro_rules! execute {
    ($db:expr, $query:expr) => {
        $crate::db::with_pool!($db, p => $query.execute(p).await.map(|r| r.rows_affected()))
    };
}
pub(crate) use execute;

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

/// The row of `table` with id `id`, when `owner` owns it (`None` otherwise, or the database's
/// error).
async fn get_owned<T>(
    db: &Db,
    table: &'static str,
    id: &str,
    owner: &str,
) -> sqlx::Result<Option<T>>
where
    T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>,
{
    let sql = format!("SELECT * FROM {table} WHERE id = $1 AND owner = $2");
    with_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .fetch_optional(p).await)
}
