//! API keys: generation, hashing, the admin operations, and the `Caller` extractor that
//! authenticates a request and applies the owner's rate limit.
//!
//! Two kinds of key: secret keys (`sf_...`, for servers and people) and publishable keys
//! (`pk_...`, embedded in web pages by the widget). A publishable key is honoured only from the
//! origins listed for it, only for listing styles, uploading images, stylising and reading its
//! own jobs and results, and under its own rate limit (per key and client address). CORS answers
//! the origins of the configuration and those of active publishable keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::db::{self, KeyRow, now_ms};
use crate::error::ApiError;
use crate::state::{AppState, new_id};
use crate::store::sha256_hex;

/// The owner of everything created without a key in anonymous mode.
pub const ANONYMOUS: &str = "anonymous";

/// The kind of a secret key (`sf_...`).
pub const SECRET: &str = "secret";

/// The kind of a publishable key (`pk_...`).
pub const PUBLISHABLE: &str = "publishable";

/// Limits set on a key when it is created (`None`: the server's defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Requests per minute (0: unlimited).
    pub rate_limit_per_minute: Option<u32>,
    /// Storage quota in bytes (0: unlimited).
    pub quota_bytes: Option<u64>,
}

/// A freshly created key: the secret is shown once and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewKey {
    /// Key id (for `keys revoke`).
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// The secret to send as `Authorization: Bearer <key>`.
    pub key: String,
    /// The first characters of the key, shown in listings.
    pub prefix: String,
    /// `secret` or `publishable`.
    pub kind: String,
    /// The origins a publishable key may be used from.
    pub origins: Vec<String>,
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub id: String,
    /// Name.
    pub name: String,
    /// First characters of the key.
    pub prefix: String,
    /// Requests per minute, when set on the key.
    pub rate_limit_per_minute: Option<i64>,
    /// Storage quota in bytes, when set on the key.
    pub quota_bytes: Option<i64>,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last request (ms since the epoch, to within a minute).
    pub last_used_at: Option<i64>,
    /// Revocation time, when revoked.
    pub revoked_at: Option<i64>,
    /// `secret` or `publishable`.
    pub kind: String,
    /// The origins a publishable key may be used from.
    pub origins: Vec<String>,
}

impl From<KeyRow> for KeyInfo {
    fn from(k: KeyRow) -> Self {
        Self {
            kind: if k.prefix.starts_with("pk_") {
                PUBLISHABLE.into()
            } else {
                SECRET.into()
            },
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            rate_limit_per_minute: k.rate_limit_per_minute,
            quota_bytes: k.quota_bytes,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            origins: Vec::new(),
        }
    }
}

/// The stored form of a key.
pub fn hash_key(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

fn generate_key(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// Creates a secret key in the configured database (creating and migrating it when needed).
pub async fn create_key(config: &Config, name: &str, limits: KeyLimits) -> anyhow::Result<NewKey> {
    create(config, name, limits, None).await
}

/// Creates a publishable key (`pk_...`) usable only from `origins` (`https://example.com`,
/// `http://localhost:3000`), for listing styles, uploading images and stylising.
pub async fn create_publishable_key(
    config: &Config,
    name: &str,
    limits: KeyLimits,
    origins: &[String],
) -> anyhow::Result<NewKey> {
    create(config, name, limits, Some(origins)).await
}

async fn create(
    config: &Config,
    name: &str,
    limits: KeyLimits,
    origins: Option<&[String]>,
) -> anyhow::Result<NewKey> {
    anyhow::ensure!(
        !name.trim().is_empty() && name.len() <= 100,
        "a key needs a name of 1-100 characters"
    );
    let origins = match origins {
        None => None,
        Some(list) => {
            anyhow::ensure!(
                !list.is_empty(),
                "a publishable key needs at least one allowed origin (--origin https://example.com)"
            );
            let mut out = Vec::new();
            for o in list {
                let n = normalise_origin(o).map_err(|e| anyhow::anyhow!("origin `{o}`: {e}"))?;
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            Some(out)
        }
    };
    let db = db::connect(&config.database_url()).await?;
    let key = generate_key(if origins.is_some() { "pk_" } else { "sf_" });
    let row = KeyRow {
        id: new_id("key"),
        name: name.trim().to_string(),
        key_hash: hash_key(&key),
        prefix: key[..10].to_string(),
        rate_limit_per_minute: limits.rate_limit_per_minute.map(i64::from),
        quota_bytes: limits.quota_bytes.map(|q| q.min(i64::MAX as u64) as i64),
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    match &origins {
        None => db::insert_key(&db, &row).await?,
        Some(list) => insert_publishable(&db, &row, list).await?,
    }
    db.close().await;
    Ok(NewKey {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        key,
        kind: if origins.is_some() {
            PUBLISHABLE
        } else {
            SECRET
        }
        .into(),
        origins: origins.unwrap_or_default(),
    })
}

async fn insert_publishable(db: &db::Db, k: &KeyRow, origins: &[String]) -> sqlx::Result<()> {
    db::with_pool!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, prefix, rate_limit_per_minute, quota_bytes, created_at, kind) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.prefix)
        .bind(k.rate_limit_per_minute)
        .bind(k.quota_bytes)
        .bind(k.created_at)
        .bind(PUBLISHABLE)
        .execute(&mut *tx)
        .await?;
        for o in origins {
            sqlx::query("INSERT INTO api_key_origins (key_id, origin) VALUES ($1, $2)")
                .bind(&k.id)
                .bind(o)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })
}

/// Every key, revoked ones included.
pub async fn list_keys(config: &Config) -> anyhow::Result<Vec<KeyInfo>> {
    let db = db::connect(&config.database_url()).await?;
    let keys = db::list_keys(&db).await?;
    let kinds: HashMap<String, String> = db::with_pool!(&db, p => sqlx::query_as("SELECT id, kind FROM api_keys")
        .fetch_all(p)
        .await)?
        .into_iter()
        .collect();
    let origins: Vec<(String, String)> =
        db::with_pool!(&db, p => sqlx::query_as("SELECT key_id, origin FROM api_key_origins ORDER BY key_id, origin")
            .fetch_all(p)
            .await)?;
    db.close().await;
    Ok(keys
        .into_iter()
        .map(|k| {
            let mut info = KeyInfo::from(k);
            if let Some(kind) = kinds.get(&info.id) {
                info.kind = kind.clone();
            }
            info.origins = origins
                .iter()
                .filter(|(id, _)| *id == info.id)
                .map(|(_, o)| o.clone())
                .collect();
            info
        })
        .collect())
}

/// An origin in the form browsers send: `scheme://host[:port]`, lower case, without the default
/// port or a trailing slash. Only `http` and `https` origins are accepted.
pub fn normalise_origin(origin: &str) -> Result<String, String> {
    let o = origin.trim().trim_end_matches('/');
    let (scheme, rest) = o
        .split_once("://")
        .ok_or("an origin looks like https://example.com")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return Err("only http and https origins are accepted".into()),
    };
    if rest.is_empty()
        || rest
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@' | '*') || c.is_whitespace())
    {
        return Err("an origin is a scheme, a host and an optional port, with no path".into());
    }
    let host = rest.to_ascii_lowercase();
    let host = host.strip_suffix(default_port).unwrap_or(&host);
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("`{port}` is not a port"));
    }
    Ok(format!("{scheme}://{host}"))
}

/// The origin a browser request comes from: its `Origin` header, else the origin of its
/// `Referer` (same-origin GET requests carry no `Origin`).
fn request_origin(parts: &Parts) -> Option<String> {
    let header_str = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != "null")
    };
    if let Some(o) = header_str(header::ORIGIN) {
        return normalise_origin(o).ok();
    }
    let referer = header_str(header::REFERER)?;
    let (scheme, rest) = referer.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    normalise_origin(&format!("{scheme}://{host}")).ok()
}

/// The routes a publishable key may call: the style gallery, image upload, stylisation (of
/// photos and of live camera streams; and finding the face for an avatar), and reading (or
/// cancelling) what it made.
const PUBLISHABLE_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/v1/styles"),
    (Method::GET, "/v1/methods"),
    (Method::GET, "/v1/styles/{name}"),
    (Method::GET, "/v1/styles/{name}/thumbnail"),
    (Method::POST, "/v1/images"),
    (Method::GET, "/v1/images/{id}"),
    (Method::GET, "/v1/images/{id}/info"),
    (Method::GET, "/v1/images/{id}/thumbnail"),
    (Method::POST, "/v1/stylize"),
    (Method::GET, "/v1/live"),
    (Method::POST, "/v1/faces"),
    (Method::GET, "/v1/jobs/{id}"),
    (Method::POST, "/v1/jobs/{id}/cancel"),
    (Method::GET, "/v1/jobs/{id}/events"),
    (Method::GET, "/v1/jobs/{id}/result"),
    (Method::GET, "/v1/results/{id}"),
    (Method::GET, "/v1/results/{id}/info"),
];

fn publishable_may(parts: &Parts) -> bool {
    let Some(path) = parts.extensions.get::<MatchedPath>() else {
        return false;
    };
    PUBLISHABLE_ROUTES
        .iter()
        .any(|(m, p)| *m == parts.method && *p == path.as_str())
}

/// The origins a key may be used from.
async fn key_origins(db: &db::Db, key_id: &str) -> sqlx::Result<Vec<String>> {
    db::with_pool!(db, p => sqlx::query_scalar("SELECT origin FROM api_key_origins WHERE key_id = $1 ORDER BY origin")
        .bind(key_id)
        .fetch_all(p)
        .await)
}

/// Whether an active publishable key lists this (normalised) origin.
pub async fn publishable_origin(db: &db::Db, origin: &str) -> sqlx::Result<bool> {
    let n: i64 = db::with_pool!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_key_origins o JOIN api_keys k ON k.id = o.key_id \
         WHERE o.origin = $1 AND k.kind = $2 AND k.revoked_at IS NULL",
    )
    .bind(origin)
    .bind(PUBLISHABLE)
    .fetch_one(p)
    .await)?;
    Ok(n > 0)
}

/// The CORS layer: the configured `cors_origins` (`*`: any origin), plus the origins of active
/// publishable keys (looked up per request, so new keys apply at once).
pub fn cors_layer(state: AppState) -> CorsLayer {
    let fixed: Vec<String> = state
        .config
        .cors_origins
        .iter()
        .map(|o| normalise_origin(o).unwrap_or_else(|_| o.clone()))
        .collect();
    let origin = if state.config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::async_predicate(move |origin: HeaderValue, _parts: &Parts| {
            let state = state.clone();
            let fixed = fixed.clone();
            async move {
                let Some(o) = origin.to_str().ok().and_then(|o| normalise_origin(o).ok()) else {
                    return false;
                };
                if fixed.contains(&o) {
                    return true;
                }
                publishable_origin(&state.db, &o).await.unwrap_or(false)
            }
        })
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("idempotency-key"),
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            header::ETAG,
            header::HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Revokes the key with this id (or every active key with this name); fails when none matches.
pub async fn revoke_key(config: &Config, id_or_name: &str) -> anyhow::Result<Vec<KeyInfo>> {
    let db = db::connect(&config.database_url()).await?;
    let revoked = db::revoke_key(&db, id_or_name, now_ms()).await?;
    db.close().await;
    anyhow::ensure!(
        !revoked.is_empty(),
        "no active key with id or name `{id_or_name}` (see `styleforge keys list`)"
    );
    Ok(revoked.into_iter().map(KeyInfo::from).collect())
}

/// Who is calling: the owner of what the request creates and sees.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Owner id: the key id, or `anonymous`.
    pub owner: String,
    /// Storage quota in bytes (0: unlimited).
    pub quota_bytes: u64,
    /// Whether the request carries a publishable key.
    pub publishable: bool,
}

/// A key row with its kind.
#[derive(sqlx::FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    key: KeyRow,
    kind: String,
}

fn forbidden(code: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION)
        && let Ok(s) = v.to_str()
    {
        let s = s.trim();
        if let Some(k) = s
            .strip_prefix("Bearer ")
            .or_else(|| s.strip_prefix("bearer "))
        {
            return Some(k.trim().to_string());
        }
        return Some(s.to_string());
    }
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let cfg = &state.config;
        let (caller, per_minute, bucket) = match presented_key(parts) {
            Some(key) => {
                let row: Option<AuthRow> = db::with_pool!(&state.db, p =>
                    sqlx::query_as("SELECT * FROM api_keys WHERE key_hash = $1")
                        .bind(hash_key(&key))
                        .fetch_optional(p)
                        .await)?;
                let (row, kind) = match row {
                    Some(r) if r.key.revoked_at.is_none() => (r.key, r.kind),
                    Some(_) => {
                        return Err(ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            "key_revoked",
                            "this API key has been revoked",
                        ));
                    }
                    None => {
                        return Err(ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            "invalid_key",
                            "unknown API key",
                        ));
                    }
                };
                let publishable = kind == PUBLISHABLE;
                let mut bucket = row.id.clone();
                if publishable {
                    let Some(origin) = request_origin(parts) else {
                        return Err(forbidden(
                            "origin_required",
                            "a publishable key is used from a web page: the request names no Origin"
                                .into(),
                        ));
                    };
                    if !key_origins(&state.db, &row.id).await?.contains(&origin) {
                        return Err(forbidden(
                            "origin_not_allowed",
                            format!(
                                "publishable key {}… may not be used from {origin}",
                                row.prefix
                            ),
                        ));
                    }
                    if !publishable_may(parts) {
                        return Err(forbidden(
                            "key_not_permitted",
                            format!(
                                "a publishable key may list styles, upload images, stylise and read its own jobs and results; {} {} needs a secret key",
                                parts.method,
                                parts.uri.path()
                            ),
                        ));
                    }
                    let client = parts
                        .extensions
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|c| c.0.ip().to_string())
                        .unwrap_or_default();
                    bucket = format!("{}@{client}", row.id);
                }
                let now = now_ms();
                if row.last_used_at.is_none_or(|t| now - t > 60_000) {
                    let _ = db::touch_key(&state.db, &row.id, now).await;
                }
                let default_rate = if publishable {
                    cfg.publishable_rate_limit_per_minute
                } else {
                    cfg.rate_limit_per_minute
                };
                let per_minute = row
                    .rate_limit_per_minute
                    .map(|r| r.clamp(0, u32::MAX as i64) as u32)
                    .unwrap_or(default_rate);
                let quota = row
                    .quota_bytes
                    .map(|q| q.max(0) as u64)
                    .unwrap_or(cfg.quota_bytes);
                (
                    Caller {
                        owner: row.id,
                        quota_bytes: quota,
                        publishable,
                    },
                    per_minute,
                    bucket,
                )
            }
            None if cfg.anonymous => (
                Caller {
                    owner: ANONYMOUS.into(),
                    quota_bytes: cfg.anonymous_quota_bytes,
                    publishable: false,
                },
                cfg.anonymous_rate_limit_per_minute,
                ANONYMOUS.to_string(),
            ),
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_key",
                    "send an API key as `Authorization: Bearer <key>` (create one with `styleforge keys create`)",
                ));
            }
        };
        if let Err(wait) = state.limiter.check(&bucket, per_minute) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limit of {per_minute} requests per minute reached; retry in {wait} s"
                ),
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
        Ok(caller)
    }
}

impl Caller {
    /// Fails with 403 when the owner's stored bytes plus `adding` exceed the quota.
    pub async fn check_quota(&self, state: &AppState, adding: u64) -> Result<(), ApiError> {
        if self.quota_bytes == 0 {
            return Ok(());
        }
        let used = db::usage_bytes(&state.db, &self.owner).await?.max(0) as u64;
        if used + adding > self.quota_bytes {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "quota_exceeded",
                format!(
                    "storage quota exceeded: {used} of {} bytes used; delete images to make room",
                    self.quota_bytes
                ),
            ));
        }
        Ok(())
    }
}
