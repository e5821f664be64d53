//! Idempotency keys: the first answer to a POST made with an `Idempotency-Key`, kept 24 hours
//! and replayed to retries.

use sqlx::FromRow;

use super::{Db, execute, now_ms, with_pool};

/// A stored idempotency key.
#[derive(Debug, Clone, FromRow)]
pub struct IdempotencyRow {
    /// The caller (a hash of the API key, or `anonymous`).
    pub scope: String,
    /// The key the client sent.
    pub idem_key: String,
    /// sha256 of the method, path and body of the first request.
    pub request_hash: String,
    /// `pending` while the first request runs, `done` once its answer is stored.
    pub state: String,
    /// The answer's HTTP status.
    pub status: Option<i64>,
    /// The answer's headers worth replaying, as a JSON array of `[name, value]`.
    pub headers: Option<String>,
    /// The answer's body, base64.
    pub body: Option<String>,
    /// Until when the first request holds the key (ms since the epoch); after that, a retry
    /// takes it over (the first request's process died).
    pub locked_until: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// How taking a key went.
#[derive(Debug)]
pub enum Taken {
    /// The key is this request's: run it, then [`finish_key`] or [`release_key`].
    Mine,
    /// Another request holds or held the key.
    Existing(IdempotencyRow),
}

/// Takes a key for a request: inserts it `pending`, or takes over a pending key whose holder's
/// lock ran out (or an expired key). Otherwise returns what is stored.
pub async fn take_key(
    db: &Db,
    scope: &str,
    key: &str,
    request_hash: &str,
    lock_ms: i64,
    ttl_ms: i64,
) -> sqlx::Result<Taken> {
    let now = now_ms();
    let inserted = execute!(db, sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, request_hash, state, locked_until, created_at, expires_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6) \
         ON CONFLICT (scope, idem_key) DO UPDATE SET request_hash = $3, state = 'pending', status = NULL, headers = NULL, \
             body = NULL, locked_until = $4, created_at = $5, expires_at = $6 \
         WHERE idempotency_keys.expires_at < $5 \
            OR (idempotency_keys.state = 'pending' AND idempotency_keys.locked_until < $5 AND idempotency_keys.request_hash = $3)",
    )
    .bind(scope)
    .bind(key)
    .bind(request_hash)
    .bind(now + lock_ms)
    .bind(now)
    .bind(now + ttl_ms))?;
    if inserted == 1 {
        return Ok(Taken::Mine);
    }
    let row: IdempotencyRow = with_pool!(db, p => sqlx::query_as(
        "SELECT * FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_one(p).await)?;
    Ok(Taken::Existing(row))
}

/// Stores the answer of the request holding a key.
pub async fn finish_key(
    db: &Db,
    scope: &str,
    key: &str,
    status: u16,
    headers: &str,
    body: &str,
) -> sqlx::Result<()> {
    execute!(db, sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', status = $1, headers = $2, body = $3 \
         WHERE scope = $4 AND idem_key = $5",
    )
    .bind(i64::from(status))
    .bind(headers)
    .bind(body)
    .bind(scope)
    .bind(key))?;
    Ok(())
}

/// Lets a key go (the request failed in a way a retry may not: 5xx, 429, 401), so the next
/// request with it runs afresh.
pub async fn release_key(db: &Db, scope: &str, key: &str) -> sqlx::Result<()> {
    execute!(db, sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND state = 'pending'",
    )
    .bind(scope)
    .bind(key))?;
    Ok(())
}

/// Deletes expired keys; returns how many.
pub async fn purge_keys(db: &Db) -> sqlx::Result<u64> {
    execute!(db, sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < $1").bind(now_ms()))
}
