//! API keys: generation, hashing, the admin operations, and the `Caller` extractor that
//! authenticates a request and applies the owner's rate limit.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Serialize;

use crate::config::Config;
use crate::db::{self, KeyRow, now_ms};
use crate::error::ApiError;
use crate::state::{AppState, new_id};
use crate::store::sha256_hex;

/// The owner of everything created without a key in anonymous mode.
pub const ANONYMOUS: &str = "anonymous";

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
}

impl From<KeyRow> for KeyInfo {
    fn from(k: KeyRow) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            rate_limit_per_minute: k.rate_limit_per_minute,
            quota_bytes: k.quota_bytes,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// The stored form of a key.
pub fn hash_key(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

fn generate_key() -> String {
    format!(
        "sf_{}{}",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// Creates a key in the configured database (creating and migrating it when needed).
pub async fn create_key(config: &Config, name: &str, limits: KeyLimits) -> anyhow::Result<NewKey> {
    anyhow::ensure!(
        !name.trim().is_empty() && name.len() <= 100,
        "a key needs a name of 1-100 characters"
    );
    let db = db::connect(&config.database_url()).await?;
    let key = generate_key();
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
    db::insert_key(&db, &row).await?;
    db.close().await;
    Ok(NewKey {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        key,
    })
}

/// Every key, revoked ones included.
pub async fn list_keys(config: &Config) -> anyhow::Result<Vec<KeyInfo>> {
    let db = db::connect(&config.database_url()).await?;
    let keys = db::list_keys(&db).await?;
    db.close().await;
    Ok(keys.into_iter().map(KeyInfo::from).collect())
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
        let (caller, per_minute) = match presented_key(parts) {
            Some(key) => {
                let row = db::key_by_hash(&state.db, &hash_key(&key)).await?;
                let row = match row {
                    Some(r) if r.revoked_at.is_none() => r,
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
                let now = now_ms();
                if row.last_used_at.is_none_or(|t| now - t > 60_000) {
                    let _ = db::touch_key(&state.db, &row.id, now).await;
                }
                let per_minute = row
                    .rate_limit_per_minute
                    .map(|r| r.clamp(0, u32::MAX as i64) as u32)
                    .unwrap_or(cfg.rate_limit_per_minute);
                let quota = row
                    .quota_bytes
                    .map(|q| q.max(0) as u64)
                    .unwrap_or(cfg.quota_bytes);
                (
                    Caller {
                        owner: row.id,
                        quota_bytes: quota,
                    },
                    per_minute,
                )
            }
            None if cfg.anonymous => (
                Caller {
                    owner: ANONYMOUS.into(),
                    quota_bytes: cfg.anonymous_quota_bytes,
                },
                cfg.anonymous_rate_limit_per_minute,
            ),
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_key",
                    "send an API key as `Authorization: Bearer <key>` (create one with `styleforge keys create`)",
                ));
            }
        };
        if let Err(wait) = state.limiter.check(&caller.owner, per_minute) {
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
