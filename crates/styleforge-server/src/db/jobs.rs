//! Jobs: every stylisation and training, the queue workers claim from with leases and
//! heartbeats, progress, retries and cancellation.

use sqlx::FromRow;

use super::{Db, execute, get_owned, now_ms, with_pool};

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
    /// Where to send the job's webhook events (an `http`/`https` URL).
    pub webhook: Option<String>,
    /// Which events go to the webhook: comma-separated `start`, `progress`, `completed`.
    pub webhook_events: Option<String>,
    /// The batch the job belongs to.
    pub batch_id: Option<String>,
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
            webhook: None,
            webhook_events: None,
            batch_id: None,
        }
    }
}

/// The INSERT of a job row, for any executor.
macro_rules! insert_job_query {
    ($j:expr) => {{
        let j: &JobRow = $j;
        sqlx::query(
        "INSERT INTO jobs (id, owner, state, method, style, image_id, spec, attempts, max_attempts, \
         cancel_requested, fraction, stage, iteration, iterations, result_id, created_at, started_at, finished_at, updated_at, device, \
         webhook, webhook_events, batch_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
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
    .bind(&j.webhook)
    .bind(&j.webhook_events)
    .bind(&j.batch_id)
    }};
}
pub(super) use insert_job_query;

/// Inserts a job.
pub async fn insert_job(db: &Db, j: &JobRow) -> sqlx::Result<()> {
    execute!(db, insert_job_query!(j))?;
    Ok(())
}

/// An owner's job.
pub async fn get_job(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<JobRow>> {
    get_owned(db, "jobs", id, owner).await
}

/// A job, whoever owns it.
pub async fn get_job_by_id(db: &Db, id: &str) -> sqlx::Result<Option<JobRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(p).await)
}

/// A page of an owner's jobs, newest first, after the `before` cursor (`(created_at, id)` of the
/// last item of the previous page).
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

/// Records the progress of a job `worker` holds; false when it no longer holds it.
pub async fn set_progress(db: &Db, id: &str, worker: &str, p: &ProgressRow) -> sqlx::Result<bool> {
    let r = execute!(db, sqlx::query(
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
    .bind(worker))?;
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
    let r = execute!(db, sqlx::query(
        "UPDATE jobs SET state = $1, stage = $1, lease_owner = NULL, lease_expires_at = NULL, finished_at = $2, updated_at = $2, \
             error_code = $3, error_message = $4, eta_ms = NULL \
         WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
    )
    .bind(new_state)
    .bind(now)
    .bind(error.map(|e| e.0))
    .bind(error.map(|e| e.1))
    .bind(id)
    .bind(worker))?;
    Ok(r == 1)
}

/// Puts a running job back in the queue (shutdown, or a transient failure). With `refund`, the
/// attempt does not count.
pub async fn requeue_job(db: &Db, id: &str, worker: &str, refund: bool) -> sqlx::Result<bool> {
    let now = now_ms();
    let r = execute!(db, sqlx::query(
        "UPDATE jobs SET state = 'queued', stage = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
             attempts = CASE WHEN $1 THEN attempts - 1 ELSE attempts END, fraction = 0, iteration = NULL, eta_ms = NULL, updated_at = $2 \
         WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
    )
    .bind(refund)
    .bind(now)
    .bind(id)
    .bind(worker))?;
    Ok(r == 1)
}

/// Cancels a job: at once when queued, by request when running. Returns the job afterwards.
pub async fn cancel_job(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<JobRow>> {
    let now = now_ms();
    execute!(db, sqlx::query(
        "UPDATE jobs SET state = 'cancelled', stage = 'cancelled', cancel_requested = $1, finished_at = $2, updated_at = $2 \
         WHERE id = $3 AND owner = $4 AND state = 'queued'",
    )
    .bind(true)
    .bind(now)
    .bind(id)
    .bind(owner))?;
    execute!(
        db,
        sqlx::query(
            "UPDATE jobs SET cancel_requested = $1, stage = 'cancelling', updated_at = $2 \
         WHERE id = $3 AND owner = $4 AND state = 'running'",
        )
        .bind(true)
        .bind(now)
        .bind(id)
        .bind(owner)
    )?;
    get_job(db, id, owner).await
}

/// Job counts by state (for metrics and readiness).
pub async fn job_counts(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    with_pool!(db, p => sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        .fetch_all(p).await)
}
