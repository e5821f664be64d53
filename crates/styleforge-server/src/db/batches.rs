//! Batches: many images × styles created at once, one job per pair (`jobs.batch_id`).

use sqlx::FromRow;

use super::{Db, JobRow, get_owned, insert_job_query, with_pool};

/// A batch.
#[derive(Debug, Clone, FromRow)]
pub struct BatchRow {
    pub id: String,
    pub owner: String,
    /// The request as sent (JSON).
    pub request: String,
    /// Jobs in it.
    pub total: i64,
    pub created_at: i64,
}

/// Inserts a batch and its jobs in one transaction: all of them or none.
pub async fn insert_batch(db: &Db, b: &BatchRow, jobs: &[JobRow]) -> sqlx::Result<()> {
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("INSERT INTO batches (id, owner, request, total, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&b.id)
            .bind(&b.owner)
            .bind(&b.request)
            .bind(b.total)
            .bind(b.created_at)
            .execute(&mut *tx)
            .await?;
        for j in jobs {
            insert_job_query!(j).execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

/// An owner's batch.
pub async fn get_batch(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<BatchRow>> {
    get_owned(db, "batches", id, owner).await
}

/// The jobs of a batch in the order they were made.
pub async fn batch_jobs(db: &Db, id: &str) -> sqlx::Result<Vec<JobRow>> {
    with_pool!(db, p => sqlx::query_as("SELECT * FROM jobs WHERE batch_id = $1 ORDER BY created_at, id")
        .bind(id)
        .fetch_all(p).await)
}
