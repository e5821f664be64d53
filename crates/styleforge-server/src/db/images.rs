//! Images: uploads to stylise (`content`) and custom style images (`style`).

use sqlx::FromRow;

use super::{Db, execute, get_owned, with_pool};

/// An uploaded image.
#[derive(Debug, Clone, FromRow)]
pub struct ImageRow {
    pub id: String,
    pub owner: String,
    /// `content` or `style`.
    pub kind: String,
    pub sha256: String,
    pub format: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    pub title: String,
    pub tags: String,
    pub description: String,
    pub created_at: i64,
    /// `image`, `animation` or `video` (`crate::jobs::sequence::media`).
    pub media: String,
    /// Frames of an animation or a video.
    pub frames: Option<i64>,
    /// Duration of a video in milliseconds.
    pub duration_ms: Option<i64>,
}

/// Inserts an image.
pub async fn insert_image(db: &Db, r: &ImageRow) -> sqlx::Result<()> {
    execute!(db, sqlx::query(
        "INSERT INTO images (id, owner, kind, sha256, format, width, height, bytes, title, tags, description, created_at, \
         media, frames, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&r.id)
    .bind(&r.owner)
    .bind(&r.kind)
    .bind(&r.sha256)
    .bind(&r.format)
    .bind(r.width)
    .bind(r.height)
    .bind(r.bytes)
    .bind(&r.title)
    .bind(&r.tags)
    .bind(&r.description)
    .bind(r.created_at)
    .bind(&r.media)
    .bind(r.frames)
    .bind(r.duration_ms))?;
    Ok(())
}

/// An owner's image (of either kind).
pub async fn get_image(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<ImageRow>> {
    get_owned(db, "images", id, owner).await
}

/// A page of an owner's images of one kind, newest first, after the `before` cursor
/// (`(created_at, id)` of the last item of the previous page).
pub async fn list_images(
    db: &Db,
    owner: &str,
    kind: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> sqlx::Result<Vec<ImageRow>> {
    let (t, id) = before.unwrap_or((i64::MAX, String::new()));
    with_pool!(db, p => sqlx::query_as(
        "SELECT * FROM images WHERE owner = $1 AND kind = $2 AND (created_at < $3 OR (created_at = $3 AND id < $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5",
    )
    .bind(owner)
    .bind(kind)
    .bind(t)
    .bind(if id.is_empty() { "\u{10ffff}".to_string() } else { id })
    .bind(limit)
    .fetch_all(p).await)
}

/// Deletes an owner's image; returns it (`None`: no such image). Its blob is left to the caller.
pub async fn delete_image(db: &Db, id: &str, owner: &str) -> sqlx::Result<Option<ImageRow>> {
    with_pool!(db, p => sqlx::query_as("DELETE FROM images WHERE id = $1 AND owner = $2 RETURNING *")
        .bind(id)
        .bind(owner)
        .fetch_optional(p).await)
}
