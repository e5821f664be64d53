//! Pairwise preferences: which of two results of one photo an owner chose.

use sqlx::FromRow;

use super::{Db, now_ms, with_pool};

/// One stored choice, in canonical order: arm `a` (`style_a`, `method_a`) sorts before arm `b`.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct PreferenceRow {
    /// Who chose.
    pub owner: String,
    /// The photo both results were made from.
    pub image_id: String,
    /// Style of arm `a`.
    pub style_a: String,
    /// Method of arm `a`.
    pub method_a: String,
    /// Style of arm `b`.
    pub style_b: String,
    /// Method of arm `b`.
    pub method_b: String,
    /// The result shown for arm `a`.
    pub result_a: String,
    /// The result shown for arm `b`.
    pub result_b: String,
    /// `a` or `b`.
    pub winner: String,
    /// When the comparison was first made (ms since the epoch).
    pub created_at: i64,
    /// When the choice was last made (ms since the epoch).
    pub updated_at: i64,
}

impl PreferenceRow {
    /// What identifies the comparison (the table's key): owner, photo and the two arms.
    fn comparison(&self) -> [&String; 6] {
        [&self.owner, &self.image_id, &self.style_a, &self.method_a, &self.style_b, &self.method_b]
    }
}

/// Stores a choice (`created_at` and `updated_at` are set here), replacing the owner's earlier
/// choice of the same comparison (same photo, same two arms). Returns whether one was replaced.
pub async fn upsert_preference(db: &Db, row: &PreferenceRow) -> sqlx::Result<bool> {
    let now = now_ms();
    with_pool!(db, p => {
        let mut tx = p.begin().await?;
        let mut select = sqlx::query_scalar(
            "SELECT created_at FROM preferences WHERE owner = $1 AND image_id = $2 AND style_a = $3 AND method_a = $4 \
             AND style_b = $5 AND method_b = $6",
        );
        for key in row.comparison() {
            select = select.bind(key);
        }
        let earlier: Option<i64> = select.fetch_optional(&mut *tx).await?;
        let mut upsert = sqlx::query(
            "INSERT INTO preferences (owner, image_id, style_a, method_a, style_b, method_b, result_a, result_b, winner, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (owner, image_id, style_a, method_a, style_b, method_b) DO UPDATE SET \
             result_a = excluded.result_a, result_b = excluded.result_b, winner = excluded.winner, updated_at = excluded.updated_at",
        );
        for key in row.comparison() {
            upsert = upsert.bind(key);
        }
        upsert.bind(&row.result_a).bind(&row.result_b).bind(&row.winner).bind(now).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(earlier.is_some())
    })
}

/// How many choices went one way between two arms (over every owner and photo).
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct PreferenceCountRow {
    /// Style of arm `a`.
    pub style_a: String,
    /// Method of arm `a`.
    pub method_a: String,
    /// Style of arm `b`.
    pub style_b: String,
    /// Method of arm `b`.
    pub method_b: String,
    /// `a` or `b`.
    pub winner: String,
    /// How many choices.
    pub count: i64,
}

/// Every choice, counted per pair of arms and winner.
pub async fn preference_counts(db: &Db) -> sqlx::Result<Vec<PreferenceCountRow>> {
    with_pool!(db, p => sqlx::query_as(
        "SELECT style_a, method_a, style_b, method_b, winner, COUNT(*) AS count FROM preferences \
         GROUP BY style_a, method_a, style_b, method_b, winner ORDER BY style_a, method_a, style_b, method_b, winner",
    )
    .fetch_all(p).await)
}
