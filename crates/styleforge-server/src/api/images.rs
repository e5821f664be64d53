//! Images: upload (raw body or multipart), list, get, info, delete, thumbnail.

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use styleforge_core::image_io::{self, Format};
use utoipa::{IntoParams, ToSchema};

use super::{ApiQuery, PageQuery, blob_response, encode_cursor, hashed_image_response, paginate};
use crate::auth::Caller;
use crate::db::{self, ImageRow, now_ms};
use crate::error::{ApiError, ApiResult, code_for_status};
use crate::jobs::sequence;
use crate::state::{AppState, new_id};

/// A stored image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImageInfo {
    /// Image id.
    pub id: String,
    /// `content` (an upload to stylise) or `style` (a custom style image).
    pub kind: String,
    /// The image bytes.
    pub url: String,
    /// A small preview.
    pub thumbnail_url: String,
    /// `jpeg`, `png` or `webp`; for an animation `gif`, `png` (APNG) or `webp`; for a video
    /// its container: `mp4`, `mov`, `webm` or `avi`.
    pub format: String,
    /// `image`, `animation` or `video`.
    pub media: String,
    /// Frames of an animation or a video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// Duration of a video in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Width in pixels (after EXIF orientation).
    pub width: u32,
    /// Height in pixels (after EXIF orientation).
    pub height: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256 of the bytes (the blob's address).
    pub sha256: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl From<&ImageRow> for ImageInfo {
    fn from(r: &ImageRow) -> Self {
        Self {
            id: r.id.clone(),
            kind: r.kind.clone(),
            url: format!("/v1/images/{}", r.id),
            thumbnail_url: format!("/v1/images/{}/thumbnail", r.id),
            format: r.format.clone(),
            media: r.media.clone(),
            frames: r.frames.map(|f| f as u64),
            duration_ms: r.duration_ms.map(|d| d as u64),
            width: r.width as u32,
            height: r.height as u32,
            bytes: r.bytes as u64,
            sha256: r.sha256.clone(),
            created_at: r.created_at,
        }
    }
}

/// A page of images.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImagePage {
    /// The images, newest first.
    pub items: Vec<ImageInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Multipart upload form (the file in `image`).
#[derive(Debug, ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ImageUpload {
    /// The image file (JPEG, PNG or WebP).
    #[schema(value_type = String, format = Binary)]
    pub image: Vec<u8>,
}

/// Thumbnail size.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThumbQuery {
    /// Longer side in pixels, 16-1024 (default 256).
    #[param(minimum = 16, maximum = 1024)]
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    pub size: Option<u32>,
}

/// What an upload carried.
#[derive(Debug, Default)]
pub struct Upload {
    /// The file.
    pub bytes: Bytes,
    /// Form fields other than the file.
    pub fields: Vec<(String, String)>,
}

/// Reads an upload: a multipart form (the file in field `image`, or `file`; text fields among
/// `fields`, anything else refused) or the raw request body.
pub async fn read_upload(
    req: Request,
    state: &AppState,
    text_fields: &[&str],
) -> ApiResult<Upload> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), code_for_status(e.status()), e.body_text()))?;
        return Ok(Upload {
            bytes,
            fields: Vec::new(),
        });
    }
    let mp_err = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_multipart"
        };
        ApiError::new(status, code, e.body_text())
    };
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::new(e.status(), "invalid_multipart", e.body_text()))?;
    let mut file: Option<Bytes> = None;
    let mut fields = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(mp_err)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "image" || name == "file" {
            if file.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_multipart",
                    "send one file per upload",
                ));
            }
            file = Some(field.bytes().await.map_err(mp_err)?);
        } else if text_fields.contains(&name.as_str()) {
            let text = field.text().await.map_err(mp_err)?;
            fields.push((name, text));
        } else {
            return Err(ApiError::bad_request(
                "invalid_multipart",
                format!("unexpected form field `{name}` (send the file in `image`)"),
            ));
        }
    }
    let bytes = file.ok_or_else(|| {
        ApiError::bad_request(
            "missing_file",
            "the multipart form has no file: send it in a field named `image`",
        )
    })?;
    Ok(Upload { bytes, fields })
}

/// A checked image: format from the header, pixel limit before decoding, then a full decode.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// Format.
    pub format: Format,
    /// Width after orientation.
    pub width: u32,
    /// Height after orientation.
    pub height: u32,
}

/// The format's canonical name.
pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::Jpeg => "jpeg",
        Format::Png => "png",
        Format::WebP => "webp",
    }
}

/// Checks an uploaded image: not empty, an allowed format, within the pixel limit (from the
/// header, before decoding), and decodable.
pub async fn check_image(state: &AppState, bytes: &Bytes) -> ApiResult<Checked> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty: send an image",
        ));
    }
    let (format, w, h) = image_io::probe(bytes).map_err(ApiError::from_core)?;
    let allowed = state
        .config
        .formats
        .iter()
        .filter_map(|f| Format::from_name(f))
        .any(|f| f == format);
    if !allowed {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
            format!(
                "{} images are not accepted here (accepted: {})",
                format_name(format),
                state.config.formats.join(", ")
            ),
        ));
    }
    let max = state.config.max_pixels;
    let pixels = w as u64 * h as u64;
    if pixels > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_pixels",
            format!("the image is {w}x{h} = {pixels} pixels, over the limit of {max}"),
        ));
    }
    let b = bytes.clone();
    let pic = state
        .run_decode(move || image_io::decode(&b, max))
        .await?
        .map_err(ApiError::from_core)?;
    Ok(Checked {
        format,
        width: pic.width,
        height: pic.height,
    })
}

/// An image's descriptive metadata: title, comma-separated tags, description.
pub type ImageMeta = (String, String, String);

/// Receives an image upload: reads the body (a multipart form may carry `text_fields` beside the
/// file), resolves the metadata with `meta` from those form fields, checks the image and the
/// caller's storage quota, and stores it as an image of `kind`. Returns its row.
pub async fn receive_image(
    state: &AppState,
    caller: &Caller,
    req: Request,
    kind: &str,
    text_fields: &[&str],
    meta: impl FnOnce(&[(String, String)]) -> ApiResult<ImageMeta>,
) -> ApiResult<ImageRow> {
    let up = read_upload(req, state, text_fields).await?;
    let (title, tags, description) = meta(&up.fields)?;
    // Content uploads may be videos and animations; styles and masks are still images.
    let sequence = match kind {
        "content" if !up.bytes.is_empty() => {
            let (config, b) = (state.config.clone(), up.bytes.clone());
            state.run_decode(move || sequence::check_upload(&config, &b)).await??
        }
        _ => None,
    };
    let (format, width, height, media, frames, duration_ms) = match sequence {
        Some(c) => (c.format, c.width, c.height, c.media, Some(c.frames as i64), c.duration_ms),
        None => {
            let checked = check_image(state, &up.bytes).await?;
            (format_name(checked.format), checked.width, checked.height, sequence::media::IMAGE, None, None)
        }
    };
    caller.check_quota(state, up.bytes.len() as u64).await?;
    let row = ImageRow {
        id: new_id("img"),
        owner: caller.owner.clone(),
        kind: kind.into(),
        sha256: crate::store::sha256_hex(&up.bytes),
        format: format.into(),
        width: width as i64,
        height: height as i64,
        bytes: up.bytes.len() as i64,
        title,
        tags,
        description,
        created_at: now_ms(),
        media: media.into(),
        frames,
        duration_ms,
    };
    crate::store::put_image::<ApiError>(&state.db, &state.blobs, &up.bytes, &row).await?;
    Ok(row)
}

/// `201 Created` with a Location header.
pub fn created<T: Serialize>(location: &str, body: &T) -> Response {
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The caller's image `id` (404 when there is none).
async fn owned_image(state: &AppState, caller: &Caller, id: &str) -> ApiResult<ImageRow> {
    db::get_image(&state.db, id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("image", id))
}

/// Upload an image, an animation (GIF, APNG, animated WebP) or a video (MP4, MOV, WebM) to
/// stylise. Animations and videos are checked from the container before any frame is decoded:
/// frames, duration and frame size against the server's limits.
#[utoipa::path(
    post,
    path = "/v1/images",
    operation_id = "upload_image",
    tag = "images",
    request_body(
        description = "The image: the raw body (any content type) or a multipart form with the file in `image`",
        content(
            ("image/jpeg"),
            ("image/png"),
            ("image/webp"),
            ("image/gif"),
            ("video/mp4"),
            ("video/webm"),
            ("application/octet-stream"),
            (ImageUpload = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Stored", body = ImageInfo),
        (status = 400, description = "Empty body or bad form", body = crate::error::ErrorBody),
        (status = 403, description = "Storage quota exceeded", body = crate::error::ErrorBody),
        (status = 413, description = "Body over the upload limit, too many pixels, or a video or animation over the frame or duration limit", body = crate::error::ErrorBody),
        (status = 415, description = "Not an accepted image format", body = crate::error::ErrorBody),
        (status = 422, description = "Corrupt image, animation or video", body = crate::error::ErrorBody),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> ApiResult<Response> {
    let row = receive_image(&state, &caller, req, "content", &[], |_| {
        Ok(ImageMeta::default())
    })
    .await?;
    Ok(created(
        &format!("/v1/images/{}", row.id),
        &ImageInfo::from(&row),
    ))
}

/// List your uploaded images, newest first.
#[utoipa::path(
    get,
    path = "/v1/images",
    operation_id = "list_images",
    tag = "images",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of images", body = ImagePage),
        (status = 400, description = "Bad query", body = crate::error::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<ImagePage>> {
    let (limit, cursor) = q.resolve()?;
    let rows = db::list_images(&state.db, &caller.owner, "content", cursor, limit + 1).await?;
    let (items, next_cursor) = paginate(
        &rows,
        limit,
        |r| ImageInfo::from(r),
        |i| encode_cursor(i.created_at, &i.id),
    );
    Ok(axum::Json(ImagePage { items, next_cursor }))
}

/// An image's bytes.
#[utoipa::path(
    get,
    path = "/v1/images/{id}",
    operation_id = "get_image",
    tag = "images",
    params(("id" = String, Path, description = "Image id")),
    responses(
        (status = 200, description = "The image, animation or video", content(("image/jpeg"), ("image/png"), ("image/webp"), ("image/gif"), ("video/mp4"), ("video/webm"), ("video/quicktime"), ("video/x-msvideo"))),
        (status = 206, description = "The byte range asked for with `Range: bytes=…`", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("video/mp4"), ("video/webm"))),
        (status = 416, description = "The range asks for no byte of it", body = crate::error::ErrorBody),
        (status = 404, description = "No such image (or not yours)", body = crate::error::ErrorBody),
    )
)]
pub async fn content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = owned_image(&state, &caller, &id).await?;
    blob_response(&state, &row.sha256).await
}

/// An image's metadata.
#[utoipa::path(
    get,
    path = "/v1/images/{id}/info",
    operation_id = "get_image_info",
    tag = "images",
    params(("id" = String, Path, description = "Image id")),
    responses(
        (status = 200, description = "Metadata", body = ImageInfo),
        (status = 404, description = "No such image (or not yours)", body = crate::error::ErrorBody),
    )
)]
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ImageInfo>> {
    let row = owned_image(&state, &caller, &id).await?;
    Ok(axum::Json(ImageInfo::from(&row)))
}

/// Delete an image (results made from it stay).
#[utoipa::path(
    delete,
    path = "/v1/images/{id}",
    operation_id = "delete_image",
    tag = "images",
    params(("id" = String, Path, description = "Image id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such image (or not yours)", body = crate::error::ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let row = db::delete_image(&state.db, &id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("image", &id))?;
    crate::store::release_blob(&state.db, &state.blobs, &row.sha256).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A thumbnail of stored bytes (cached in the blob store): JPEG, or PNG when there is alpha.
pub async fn thumbnail_bytes(state: &AppState, sha: &str, size: u32) -> ApiResult<Bytes> {
    thumbnail_of(state, sha, size, None).await
}

/// A thumbnail of the image whose bytes have the sha256 `sha`: `src` when given (an image
/// built into the binary), else the stored blob; cached in the blob store.
pub async fn thumbnail_of(state: &AppState, sha: &str, size: u32, src: Option<Bytes>) -> ApiResult<Bytes> {
    let key = format!("thumbs/{sha}-{size}");
    if let Some(b) = state.blobs.cached(&key).await {
        return Ok(b);
    }
    let src = match src {
        Some(b) => b,
        None => state.blobs.get(sha).await?,
    };
    let max = state.config.max_pixels;
    let out = state
        .run_decode(move || {
            let pic = sequence::first_frame(&src, max)?.fit_within(size);
            let f = if pic.alpha.is_some() {
                Format::Png
            } else {
                Format::Jpeg
            };
            pic.encode(f)
        })
        .await?
        .map_err(ApiError::from_core)?;
    let out = Bytes::from(out);
    if let Err(e) = state.blobs.put_cached(&key, out.clone()).await {
        tracing::warn!(error = %e, "could not cache a thumbnail");
    }
    Ok(out)
}

/// Checks a thumbnail size.
pub fn thumb_size(q: &ThumbQuery) -> ApiResult<u32> {
    let size = q.size.unwrap_or(256);
    if !(16..=1024).contains(&size) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "size must be within 16..1024",
        ));
    }
    Ok(size)
}

/// A small preview of an image.
#[utoipa::path(
    get,
    path = "/v1/images/{id}/thumbnail",
    operation_id = "get_image_thumbnail",
    tag = "images",
    params(("id" = String, Path, description = "Image id"), ThumbQuery),
    responses(
        (status = 200, description = "JPEG (PNG when the image has alpha)", content(("image/jpeg"), ("image/png"))),
        (status = 400, description = "Bad size", body = crate::error::ErrorBody),
        (status = 404, description = "No such image (or not yours)", body = crate::error::ErrorBody),
    )
)]
pub async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ThumbQuery>,
) -> ApiResult<Response> {
    let size = thumb_size(&q)?;
    let row = owned_image(&state, &caller, &id).await?;
    let bytes = thumbnail_bytes(&state, &row.sha256, size).await?;
    Ok(hashed_image_response(bytes))
}
