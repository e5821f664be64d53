//! API keys (stored as hashes) and the storage an owner uses.

use sqlx::FromRow;

use super::{Db, execute, over_blob_tables, with_pool};

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

/// Inserts a key (fails when its id, name or hash is taken).
pub async fn insert_key(db: &Db, k: &KeyRow) -> sqlx::Result<()> {
    execute!(db, sqlx::query(
        "INSERT INTO api_keys (id, name, key_hash, prefix, rate_limit_per_minute, quota_bytes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&k.id)
    .bind(&k.name)
    .bind(&k.key_hash)
    .bind(&k.prefix)
    .bind(k.rate_limit_per_minute)
    .bind(k.quota_bytes)
    .bind(k.created_at))?;
    Ok(())
}

/// The key with this hash, revoked or not.
pub async fn key_by_hash(db: &Db, hash: &str) -> sqlx::Result<Option<KeyRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM api_keys WHERE key_hash = $1")
        .bind(hash)
        .fetch_optional(p).await)
}

/// Every key, oldest first.
pub async fn list_keys(db: &Db) -> sqlx::Result<Vec<KeyRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM api_keys ORDER BY created_at, id")
        .fetch_all(p).await)
}

/// Records that a key was used at `now`.
pub async fn touch_key(db: &Db, id: &str, now: i64) -> sqlx::Result<()> {
    execute!(
        db,
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
    )?;
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

/// Bytes stored by an owner (images and results).
pub async fn usage_bytes(db: &Db, owner: &str) -> sqlx::Result<i64> {
    over_blob_tables(
        db,
        "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM {table} WHERE owner = $1",
        owner,
    )
    .await
}
