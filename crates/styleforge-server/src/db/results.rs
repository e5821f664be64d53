//! Results (the stylised images), the transactions that record them with their job, and
//! ratings.

use sqlx::FromRow;

use super::blobs::CLEAR_INTENT;
use super::jobs::{JobRow, insert_job_query};
use super::{Db, execute, get_owned, intent_token, now_ms, with_pool};

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
    /// JSON of [`crate::jobs::AvatarFraming`], for avatars.
    pub avatar: Option<String>,
}

/// The INSERT of a result row, for any executor.
macro_rules! insert_result_query {
    ($r:expr) => {{
        let r: &ResultRow = $r;
        sqlx::query(
        "INSERT INTO results (id, owner, job_id, image_id, style, method, sha256, format, width, height, bytes, timings, \
         content_loss, style_loss, created_at, avatar) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
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
    .bind(&r.avatar)
    }};
}

/// Inserts a result.
pub async fn insert_result(db: &Db, r: &ResultRow) -> sqlx::Result<()> {
    execute!(db, insert_result_query!(r))?;
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
        sqlx::query(CLEAR_INTENT)
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

/// An owner's result.
pub async fn get_result(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<ResultRow>> {
    get_owned(db, "results", id, owner).await
}

/// A result, whoever owns it (signed links).
pub async fn get_result_by_id(db: &Db, id: &str) -> sqlx::Result<Option<ResultRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM results WHERE id = $1")
        .bind(id)
        .fetch_optional(p).await)
}

// ---------------------------------------------------------------------------------------------
// Ratings

/// Stores `owner`'s rating of a result, replacing an earlier one.
pub async fn upsert_rating(db: &Db, r: &ResultRow, owner: &str, score: i64) -> sqlx::Result<()> {
    let now = now_ms();
    execute!(db, sqlx::query(
        "INSERT INTO ratings (result_id, owner, style, method, score, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (result_id, owner) DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at",
    )
    .bind(&r.id)
    .bind(owner)
    .bind(&r.style)
    .bind(&r.method)
    .bind(score)
    .bind(now))?;
    Ok(())
}

/// `owner`'s rating of a result, if any.
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

/// Ratings counted per style and method, optionally of one style and/or one method.
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

/// What ratings are grouped by in [`rating_histograms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatingGroup {
    /// Per style, over every method.
    Style,
    /// Per method, over every style.
    Method,
}

/// Ratings of one style (or one method): how many gave 1, 2, 3, 4 and 5.
#[derive(Debug, Clone, FromRow)]
pub struct RatingHistRow {
    /// The style or the method.
    pub name: String,
    /// Ratings of 1.
    pub s1: i64,
    /// Ratings of 2.
    pub s2: i64,
    /// Ratings of 3.
    pub s3: i64,
    /// Ratings of 4.
    pub s4: i64,
    /// Ratings of 5.
    pub s5: i64,
}

impl RatingHistRow {
    /// The counts of 1 to 5 stars.
    pub fn histogram(&self) -> [i64; 5] {
        [self.s1, self.s2, self.s3, self.s4, self.s5]
    }
}

/// Ratings counted per style or per method (over all owners), optionally of one style or method.
pub async fn rating_histograms(
    db: &Db,
    group: RatingGroup,
    only: Option<&str>,
) -> sqlx::Result<Vec<RatingHistRow>> {
    let column = match group {
        RatingGroup::Style => "style",
        RatingGroup::Method => "method",
    };
    let sql = format!(
        "SELECT {column} AS name, \
             SUM(CASE WHEN score = 1 THEN 1 ELSE 0 END) AS s1, SUM(CASE WHEN score = 2 THEN 1 ELSE 0 END) AS s2, \
             SUM(CASE WHEN score = 3 THEN 1 ELSE 0 END) AS s3, SUM(CASE WHEN score = 4 THEN 1 ELSE 0 END) AS s4, \
             SUM(CASE WHEN score = 5 THEN 1 ELSE 0 END) AS s5 \
         FROM ratings WHERE ($1 IS NULL OR {column} = $1) GROUP BY {column} ORDER BY {column}"
    );
    with_pool!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(only)
        .fetch_all(p).await)
}
