//! Blob intents and references.
//!
//! An intent is a row written before a blob is stored and removed once a row references it, so
//! a process that dies in between leaves a trace and the blob is collected later. A blob is
//! referenced by the images and results rows that carry its hash.

use super::{Db, execute, now_ms, with_pool};

/// The statement that removes one intent (also run inside the transaction that records a job's
/// result).
pub(super) const CLEAR_INTENT: &str = "DELETE FROM blob_intents WHERE sha256 = $1 AND token = $2";

/// The intent token of a job's result stored by one worker (two workers that both ran a job
/// announce their blobs separately).
pub fn intent_token(job_id: &str, worker: &str) -> String {
    format!("{job_id}/{worker}")
}

/// Records that `token` (a job or request id) is about to store blob `sha`.
pub async fn add_blob_intent(db: &Db, sha: &str, token: &str) -> sqlx::Result<()> {
    execute!(
        db,
        sqlx::query(
            "INSERT INTO blob_intents (sha256, token, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (sha256, token) DO UPDATE SET created_at = excluded.created_at",
        )
        .bind(sha)
        .bind(token)
        .bind(now_ms())
    )?;
    Ok(())
}

/// Removes an intent once its blob is referenced (or given up).
pub async fn clear_blob_intent(db: &Db, sha: &str, token: &str) -> sqlx::Result<()> {
    execute!(db, sqlx::query(CLEAR_INTENT).bind(sha).bind(token))?;
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

/// How many rows (images and results) still point at a blob.
pub async fn blob_refs(db: &Db, sha: &str) -> sqlx::Result<i64> {
    over_blob_tables(db, "SELECT COUNT(*) FROM {table} WHERE sha256 = $1", sha).await
}

/// The sum of a BIGINT query run on each table whose rows hold blobs (`images`, then
/// `results`): `select` names the table `{table}` and takes `arg` as `$1`.
pub(super) async fn over_blob_tables(db: &Db, select: &str, arg: &str) -> sqlx::Result<i64> {
    let mut total = 0;
    for table in ["images", "results"] {
        let sql = select.replace("{table}", table);
        let n: i64 = with_pool!(db, p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .fetch_one(p).await)?;
        total += n;
    }
    Ok(total)
}
