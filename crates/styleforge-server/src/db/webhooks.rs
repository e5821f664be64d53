//! Webhook deliveries (one row per event of a job, delivered in order), the signing secret of
//! each owner, and the secrets the server makes for itself.

use serde::Serialize;
use sqlx::FromRow;

use super::{Db, execute, now_ms, with_pool};

/// Delivery states.
pub mod delivery_state {
    /// Waiting for its time (`next_attempt_at`), or for the job's earlier events.
    pub const PENDING: &str = "pending";
    /// Leased by a sender.
    pub const DELIVERING: &str = "delivering";
    /// The receiver answered 2xx.
    pub const DELIVERED: &str = "delivered";
    /// Given up (retry window over, or the address is not allowed).
    pub const FAILED: &str = "failed";
}

/// One webhook event of a job and its delivery.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub job_id: String,
    pub owner: String,
    /// Order among the job's events, from 1.
    pub seq: i64,
    /// `start`, `progress` or `completed`.
    pub event: String,
    /// Keeps an event from being recorded twice (`start`, `completed`, `progress:N`).
    pub event_key: String,
    pub url: String,
    /// The JSON body sent.
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    /// HTTP status of the last attempt (none when it got no answer).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// JSON array of attempts: `{at, status, error, ms}`.
    pub history: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

/// Records an event of a job for delivery, after the job's earlier events (the next `seq`).
/// Returns false when an event with this `event_key` was recorded already.
pub async fn insert_delivery(
    db: &Db,
    id: &str,
    job_id: &str,
    owner: &str,
    event: &str,
    event_key: &str,
    url: &str,
    payload: &str,
) -> sqlx::Result<bool> {
    let now = now_ms();
    // Two processes may take the same `seq` at once; the unique index refuses the second,
    // which then takes the next one.
    let mut last = None;
    for _ in 0..5 {
        let r = execute!(db, sqlx::query(
            "INSERT INTO webhook_deliveries (id, job_id, owner, seq, event, event_key, url, payload, state, next_attempt_at, created_at, updated_at) \
             SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6, $7, 'pending', $8, $8, $8 \
             FROM webhook_deliveries WHERE job_id = $2 \
             ON CONFLICT (job_id, event_key) DO NOTHING",
        )
        .bind(id)
        .bind(job_id)
        .bind(owner)
        .bind(event)
        .bind(event_key)
        .bind(url)
        .bind(payload)
        .bind(now));
        match r {
            Ok(n) => return Ok(n == 1),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => last = Some(sqlx::Error::Database(e)),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(sqlx::Error::RowNotFound))
}

/// Deliveries of one owner in flight at once, across every process: receivers that hang hold
/// only these, never every sender's slots (one key's slow endpoint does not delay another's).
pub const DELIVERIES_PER_OWNER: i64 = 2;

/// Leases the next due delivery: the earliest undelivered event of a job (a later event of the
/// same job waits until the earlier one is delivered or given up), pending and due, or leased
/// by a sender whose lease expired; of an owner with fewer than [`DELIVERIES_PER_OWNER`] in
/// flight.
pub async fn claim_delivery(db: &Db, sender: &str, lease_ms: i64) -> sqlx::Result<Option<DeliveryRow>> {
    let now = now_ms();
    let lock = if db.is_postgres() { "FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE webhook_deliveries SET state = 'delivering', lease_owner = $1, lease_expires_at = $2, updated_at = $3 \
         WHERE id = ( \
             SELECT d.id FROM webhook_deliveries d \
             WHERE ((d.state = 'pending' AND d.next_attempt_at <= $3) \
                 OR (d.state = 'delivering' AND d.lease_expires_at < $3)) \
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                   WHERE e.job_id = d.job_id AND e.seq < d.seq AND e.state IN ('pending', 'delivering')) \
               AND (SELECT COUNT(*) FROM webhook_deliveries f \
                   WHERE f.owner = d.owner AND f.state = 'delivering' AND f.lease_expires_at >= $3) < $4 \
             ORDER BY d.next_attempt_at, d.seq LIMIT 1 {lock}) \
         RETURNING *"
    );
    with_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sender)
        .bind(now + lease_ms)
        .bind(now)
        .bind(DELIVERIES_PER_OWNER)
        .fetch_optional(p).await)
}

/// How one attempt went.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// When it was made (ms since the epoch).
    pub at: i64,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong (not 2xx, no answer, an address not allowed).
    pub error: Option<String>,
    /// How long it took (ms).
    pub ms: i64,
}

/// Records an attempt of a delivery `sender` holds: delivered, retried at `retry_at`, or given
/// up (`retry_at` none and not delivered).
pub async fn record_attempt(
    db: &Db,
    d: &DeliveryRow,
    sender: &str,
    attempt: &Attempt,
    delivered: bool,
    retry_at: Option<i64>,
) -> sqlx::Result<bool> {
    let mut history: Vec<serde_json::Value> = serde_json::from_str(&d.history).unwrap_or_default();
    history.push(serde_json::to_value(attempt).unwrap_or_default());
    let history = serde_json::Value::Array(history).to_string();
    let (new_state, next) = match (delivered, retry_at) {
        (true, _) => (delivery_state::DELIVERED, d.next_attempt_at),
        (false, Some(t)) => (delivery_state::PENDING, t),
        (false, None) => (delivery_state::FAILED, d.next_attempt_at),
    };
    let now = now_ms();
    let r = execute!(db, sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, lease_owner = NULL, \
             lease_expires_at = NULL, last_status = $3, last_error = $4, history = $5, updated_at = $6, \
             delivered_at = CASE WHEN $7 THEN $6 ELSE delivered_at END \
         WHERE id = $8 AND lease_owner = $9 AND state = 'delivering'",
    )
    .bind(new_state)
    .bind(next)
    .bind(attempt.status.map(i64::from))
    .bind(&attempt.error)
    .bind(history)
    .bind(now)
    .bind(delivered)
    .bind(&d.id)
    .bind(sender))?;
    Ok(r == 1)
}

/// A job's deliveries in order.
pub async fn list_deliveries(db: &Db, job_id: &str) -> sqlx::Result<Vec<DeliveryRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM webhook_deliveries WHERE job_id = $1 ORDER BY seq")
        .bind(job_id)
        .fetch_all(p).await)
}

/// The webhook secret of an owner, made (from `fresh`) on first use.
pub async fn webhook_secret(db: &Db, owner: &str, fresh: &str) -> sqlx::Result<String> {
    kept_secret(db, "webhook_secrets", "owner", "secret", owner, fresh).await
}

/// The value of `key` in a table of secrets (`table`, its key and value columns), inserting
/// `fresh` when there is none; every process reads the one that won.
async fn kept_secret(
    db: &Db,
    table: &'static str,
    key_col: &'static str,
    value_col: &'static str,
    key: &str,
    fresh: &str,
) -> sqlx::Result<String> {
    let insert = format!(
        "INSERT INTO {table} ({key_col}, {value_col}, created_at) VALUES ($1, $2, $3) ON CONFLICT ({key_col}) DO NOTHING"
    );
    execute!(db, sqlx::query(sqlx::AssertSqlSafe(insert)).bind(key).bind(fresh).bind(now_ms()))?;
    let select = format!("SELECT {value_col} FROM {table} WHERE {key_col} = $1");
    with_pool!(db, p => sqlx::query_scalar(sqlx::AssertSqlSafe(select.clone()))
        .bind(key)
        .fetch_one(p).await)
}

/// Replaces an owner's webhook secret (deliveries from now on are signed with `secret`, and for
/// a day also with the one it replaces).
pub async fn set_webhook_secret(db: &Db, owner: &str, secret: &str) -> sqlx::Result<()> {
    let now = now_ms();
    execute!(db, sqlx::query(
        "INSERT INTO webhook_secrets (owner, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (owner) DO UPDATE SET previous_secret = webhook_secrets.secret, rotated_at = $3, \
             secret = $2, created_at = $3",
    )
    .bind(owner)
    .bind(secret)
    .bind(now))?;
    Ok(())
}

/// An owner's previous webhook secret and when it was replaced, if it ever was.
pub async fn previous_webhook_secret(db: &Db, owner: &str) -> sqlx::Result<Option<(String, i64)>> {
    let row: Option<(Option<String>, Option<i64>)> = with_pool!(db, p => sqlx::query_as(
        "SELECT previous_secret, rotated_at FROM webhook_secrets WHERE owner = $1",
    )
    .bind(owner)
    .fetch_optional(p).await)?;
    Ok(match row {
        Some((Some(s), Some(t))) => Some((s, t)),
        _ => None,
    })
}

/// A secret of the server's own (shared by every process on the database), made from `fresh`
/// on first use.
pub async fn server_secret(db: &Db, name: &str, fresh: &str) -> sqlx::Result<String> {
    kept_secret(db, "server_secrets", "name", "value", name, fresh).await
}
