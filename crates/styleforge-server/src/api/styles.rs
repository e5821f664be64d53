//! Styles: the gallery (every model, library and built-in, the built-in paintings, and the
//! caller's custom style images), keyword search, one style, custom style upload and deletion,
//! thumbnails.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use styleforge_core::library::{ModelInfo, ModelKind};
use styleforge_core::library::builtin::{self, Painting};
use utoipa::{IntoParams, ToSchema};

use super::images::{ImageMeta, ThumbQuery, created, receive_image, thumb_size, thumbnail_bytes, thumbnail_of};
use super::{ApiQuery, hashed_image_response};
use crate::auth::Caller;
use crate::db::{self, ImageRow};
use crate::error::{ApiError, ApiResult};
use crate::models::{StyleInfo, is_style_model, painting_sha256, search_score};
use crate::state::AppState;
use crate::stats::ratings::{RatingSummary, best_first, summarize};

/// Multipart custom style upload.
#[derive(Debug, ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StyleUpload {
    /// The style image file (JPEG, PNG or WebP).
    #[schema(value_type = String, format = Binary)]
    pub image: Vec<u8>,
    /// Title.
    pub title: Option<String>,
    /// Comma-separated keywords.
    pub tags: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// Gallery filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StyleQuery {
    /// Keywords searched in tags, titles and descriptions (e.g. `stormy sea`); results are
    /// ranked by relevance.
    pub q: Option<String>,
    /// Only styles with this `method` (`fast`, `cyclegan`, `microast`, `adain`, `vgg`, `image`).
    pub method: Option<String>,
    /// `rating`: best rated first (see [`StyleSort`]); `default`: the gallery's order, or
    /// relevance when searching.
    #[param(inline)]
    pub sort: Option<StyleSort>,
}

/// Orders of the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StyleSort {
    /// The gallery's order (models by name, the built-in paintings, your styles newest first),
    /// or relevance when searching with `q`.
    #[default]
    Default,
    /// Best rated first: rated styles by the lower end of the 95% interval of their mean rating
    /// (so many good ratings rank above a single perfect one), then by count; unrated styles
    /// after them in the gallery's order (with `q`, only the matches are kept).
    Rating,
}

/// The gallery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StyleList {
    /// Styles: the models by name, the built-in paintings, then your custom styles (newest
    /// first); by relevance when searching; best rated first with `sort=rating`. Each carries its
    /// `rating` when it has been rated.
    pub styles: Vec<StyleInfo>,
}

/// Sets each style's `rating` (over every method and user; `only`: the ratings of one style).
async fn attach_ratings(state: &AppState, styles: &mut [StyleInfo], only: Option<&str>) -> ApiResult<()> {
    let rows = db::rating_histograms(&state.db, db::RatingGroup::Style, only).await?;
    let by_name: std::collections::HashMap<String, RatingSummary> = rows
        .iter()
        .filter_map(|r| summarize(r.histogram()).map(|s| (r.name.clone(), s)))
        .collect();
    for s in styles {
        s.rating = by_name.get(&s.name).copied();
    }
    Ok(())
}

/// Metadata of a custom style upload (query parameters, or form fields in a multipart upload);
/// an unknown parameter is an error, so that a misspelt one does not lose metadata silently.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StyleMeta {
    /// Title.
    pub title: Option<String>,
    /// Comma-separated keywords.
    pub tags: Option<String>,
    /// Description.
    pub description: Option<String>,
}

impl StyleMeta {
    /// The form fields a multipart upload may carry beside the file.
    const FIELDS: [&str; 3] = ["title", "tags", "description"];

    /// The metadata in force: each parameter, else the form field of the same name; checked for
    /// length, and the tags normalised.
    fn resolve(self, fields: &[(String, String)]) -> ApiResult<ImageMeta> {
        let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let title = self.title.or_else(|| field("title")).unwrap_or_default();
        let tags = self.tags.or_else(|| field("tags")).unwrap_or_default();
        let description = self
            .description
            .or_else(|| field("description"))
            .unwrap_or_default();
        for (what, v, max) in [
            ("title", &title, 200),
            ("tags", &tags, 1000),
            ("description", &description, 4000),
        ] {
            if v.chars().count() > max {
                return Err(ApiError::unprocessable(
                    "invalid_parameter",
                    format!("{what} is longer than {max} characters"),
                ));
            }
        }
        let tags = crate::models::split_tags(&tags).join(",");
        Ok((title, tags, description))
    }
}

async fn all_styles(state: &AppState, caller: &Caller) -> ApiResult<Vec<StyleInfo>> {
    let models = state.models.list().await?;
    let mut out: Vec<StyleInfo> = models
        .iter()
        .filter(|m| crate::jobs::training::visible_to(m, &caller.owner))
        .map(StyleInfo::from_model)
        .collect();
    // A library model of a painting's name hides the painting.
    out.extend(
        builtin::PAINTINGS
            .iter()
            .filter(|p| !models.iter().any(|m| m.name == p.name))
            .map(StyleInfo::from_painting),
    );
    let mut cursor = None;
    loop {
        let rows = db::list_images(&state.db, &caller.owner, "style", cursor.clone(), 500).await?;
        let n = rows.len();
        out.extend(rows.iter().map(StyleInfo::from_image));
        if n < 500 {
            break;
        }
        cursor = rows.last().map(|r| (r.created_at, r.id.clone()));
    }
    Ok(out)
}

/// The style gallery, with keyword search, each style's rating, and a best-rated order (`sort=rating`).
#[utoipa::path(
    get,
    path = "/v1/styles",
    operation_id = "list_styles",
    tag = "styles",
    params(StyleQuery),
    responses(
        (status = 200, description = "Every model, the built-in paintings and your custom styles, with their ratings", body = StyleList),
        (status = 400, description = "Bad query", body = crate::error::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StyleQuery>,
) -> ApiResult<axum::Json<StyleList>> {
    let mut styles = all_styles(&state, &caller).await?;
    if let Some(m) = q.method.as_deref().filter(|m| !m.is_empty()) {
        styles.retain(|s| s.method == m);
    }
    if let Some(query) = q.q.as_deref().filter(|s| !s.trim().is_empty()) {
        let mut scored: Vec<StyleInfo> = styles
            .into_iter()
            .filter_map(|mut s| {
                let score = search_score(query, &s);
                (score > 0.0).then(|| {
                    s.score = Some(score);
                    s
                })
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.name.cmp(&b.name))
        });
        styles = scored;
    }
    attach_ratings(&state, &mut styles, None).await?;
    if q.sort == Some(StyleSort::Rating) {
        // A stable sort: unrated styles keep the order they had.
        styles.sort_by(|a, b| match (&a.rating, &b.rating) {
            (Some(x), Some(y)) => best_first(x, y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    Ok(axum::Json(StyleList { styles }))
}

/// The caller's custom style `id`, if there is one.
async fn custom_style(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Option<ImageRow>> {
    Ok(db::get_image(&state.db, id, &caller.owner)
        .await?
        .filter(|row| row.kind == "style"))
}

/// The model `name` (library or built in), when the caller may see it (404 otherwise).
async fn visible_model(state: &AppState, caller: &Caller, name: &str) -> ApiResult<ModelInfo> {
    let info = state.models.info(name).await?;
    if !crate::jobs::training::visible_to(&info, &caller.owner) {
        return Err(ApiError::not_found("style", name));
    }
    Ok(info)
}

/// A style by name: the caller's custom style, a model, or a built-in painting.
enum Found {
    Custom(ImageRow),
    Model(ModelInfo),
    Painting(&'static Painting),
}

async fn lookup(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Found> {
    if let Some(row) = custom_style(state, caller, name).await? {
        return Ok(Found::Custom(row));
    }
    if let Some(p) = state.models.painting(name) {
        return Ok(Found::Painting(p));
    }
    Ok(Found::Model(visible_model(state, caller, name).await?))
}

async fn find_style(state: &AppState, caller: &Caller, name: &str) -> ApiResult<StyleInfo> {
    Ok(match lookup(state, caller, name).await? {
        Found::Custom(row) => StyleInfo::from_image(&row),
        Found::Model(info) => StyleInfo::from_model(&info),
        Found::Painting(p) => StyleInfo::from_painting(p),
    })
}

/// One style.
#[utoipa::path(
    get,
    path = "/v1/styles/{name}",
    operation_id = "get_style",
    tag = "styles",
    params(("name" = String, Path, description = "Model or built-in painting name, or custom style id")),
    responses(
        (status = 200, description = "The style", body = StyleInfo),
        (status = 404, description = "No such style", body = crate::error::ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<StyleInfo>> {
    let mut style = find_style(&state, &caller, &name).await?;
    attach_ratings(&state, std::slice::from_mut(&mut style), Some(&name)).await?;
    Ok(axum::Json(style))
}

/// Upload a custom style image (for the microast, adain and gatys methods).
#[utoipa::path(
    post,
    path = "/v1/styles",
    operation_id = "upload_style",
    tag = "styles",
    params(StyleMeta),
    request_body(
        description = "The style image: the raw body or a multipart form (file in `image`; `title`, `tags`, `description` fields)",
        content(
            ("image/jpeg"),
            ("image/png"),
            ("image/webp"),
            ("application/octet-stream"),
            (StyleUpload = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Stored; pass `name` as `style`", body = StyleInfo),
        (status = 400, description = "Empty body or bad form", body = crate::error::ErrorBody),
        (status = 403, description = "Storage quota exceeded", body = crate::error::ErrorBody),
        (status = 413, description = "Body over the upload limit, or too many pixels", body = crate::error::ErrorBody),
        (status = 415, description = "Not an accepted image format", body = crate::error::ErrorBody),
        (status = 422, description = "Corrupt image", body = crate::error::ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(meta): ApiQuery<StyleMeta>,
    req: Request,
) -> ApiResult<Response> {
    let row = receive_image(
        &state,
        &caller,
        req,
        "style",
        &StyleMeta::FIELDS,
        |fields| meta.resolve(fields),
    )
    .await?;
    Ok(created(
        &format!("/v1/styles/{}", row.id),
        &StyleInfo::from_image(&row),
    ))
}

/// Delete a custom style.
#[utoipa::path(
    delete,
    path = "/v1/styles/{name}",
    operation_id = "delete_style",
    tag = "styles",
    params(("name" = String, Path, description = "Custom style id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A model (managed with `styleforge models`) or a built-in painting", body = crate::error::ErrorBody),
        (status = 404, description = "No such style", body = crate::error::ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    match custom_style(&state, &caller, &name).await? {
        Some(_) => {
            if let Some(row) = db::delete_image(&state.db, &name, &caller.owner).await? {
                crate::store::release_blob(&state.db, &state.blobs, &row.sha256).await;
            }
            Ok(StatusCode::NO_CONTENT)
        }
        None => {
            if state.models.painting(&name).is_some() {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "read_only",
                    format!("`{name}` is a painting built into styleforge: it cannot be deleted"),
                ))
            } else if let Ok(info) = state.models.info(&name).await {
                // A key's own models (uploaded or trained over the API) are its to delete.
                if info.training.get(crate::jobs::training::OWNER_KEY) == Some(&caller.owner) {
                    state.models.library().remove(&name).map_err(ApiError::from_core)?;
                    return Ok(StatusCode::NO_CONTENT);
                }
                if !crate::jobs::training::visible_to(&info, &caller.owner) {
                    return Err(ApiError::not_found("style", &name));
                }
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "read_only",
                    "models are managed with `styleforge models`, not over the API (except the models a key uploaded or trained)",
                ))
            } else {
                Err(ApiError::not_found("style", &name))
            }
        }
    }
}

/// Query parameters of a style's thumbnail.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StyleThumbQuery {
    /// Longer side in pixels, 16-1024 (default 256).
    #[param(minimum = 16, maximum = 1024)]
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    pub size: Option<u32>,
    /// One of your image ids: preview the style on that photo instead (model styles: filters,
    /// fast styles, CycleGAN generators). Nothing is recorded in the history.
    pub image: Option<String>,
}

/// A preview of a style: the custom image or the built-in painting itself (scaled), a preview
/// file beside the model (`<name>.jpg`, `.png` or `.webp`), or a synthetic scene restyled by
/// the model; with `image`, the model style applied to that photo.
#[utoipa::path(
    get,
    path = "/v1/styles/{name}/thumbnail",
    operation_id = "get_style_thumbnail",
    tag = "styles",
    params(("name" = String, Path, description = "Model or built-in painting name, or custom style id"), StyleThumbQuery),
    responses(
        (status = 200, description = "Preview image", content(("image/jpeg"), ("image/png"), ("image/webp"))),
        (status = 400, description = "Bad size", body = crate::error::ErrorBody),
        (status = 404, description = "No such style or image, or no preview for it", body = crate::error::ErrorBody),
        (status = 413, description = "The image has too many pixels", body = crate::error::ErrorBody),
        (status = 422, description = "The image no longer decodes", body = crate::error::ErrorBody),
    )
)]
pub async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<StyleThumbQuery>,
) -> ApiResult<Response> {
    let size = thumb_size(&ThumbQuery { size: q.size })?;
    let photo = match &q.image {
        Some(id) => Some(db::get_image(&state.db, id, &caller.owner).await?.ok_or_else(|| ApiError::not_found("image", id))?),
        None => None,
    };
    let info = match lookup(&state, &caller, &name).await? {
        Found::Custom(_) | Found::Painting(_) if photo.is_some() => {
            return Err(no_preview(format!("`{name}` is a style image: previews on a photo are made for model styles")));
        }
        Found::Custom(row) => {
            let b = thumbnail_bytes(&state, &row.sha256, size).await?;
            return Ok(hashed_image_response(b));
        }
        Found::Painting(p) => {
            // The same for every caller (a public-domain painting in the binary): shared caches
            // may keep it; its ETag revalidates it (304).
            let b = thumbnail_of(&state, painting_sha256(p), size, Some(Bytes::from_static(p.jpeg))).await?;
            let mut resp = hashed_image_response(b);
            resp.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("public, max-age=86400, stale-while-revalidate=604800"),
            );
            return Ok(resp);
        }
        Found::Model(info) => info,
    };
    if photo.is_none() {
        let lib = state.models.library();
        for ext in ["jpg", "jpeg", "png", "webp"] {
            let p = lib.models_dir().join(format!("{name}.{ext}"));
            if let Ok(b) = tokio::fs::read(&p).await {
                return Ok(hashed_image_response(Bytes::from(b)));
            }
        }
    }
    if !is_style_model(&info) {
        return Err(no_preview(format!("`{name}` is a {} model with no preview", info.method)));
    }
    let b = crate::jobs::preview::model_preview(&state, &info, photo.as_ref(), size).await?;
    Ok(hashed_image_response(b))
}

/// A model style as an ONNX model (opset and conventions in its metadata properties), for
/// models whose terms allow redistribution: imported ONNX graphs as imported, other kinds
/// exported from the running network.
#[utoipa::path(
    get,
    path = "/v1/styles/{name}/onnx",
    operation_id = "get_style_onnx",
    tag = "styles",
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "The ONNX model (`attachment; filename=NAME.onnx`)", content_type = "application/octet-stream"),
        (status = 403, description = "The model's terms do not allow redistribution", body = crate::error::ErrorBody),
        (status = 404, description = "No such model, or not one that exports to ONNX", body = crate::error::ErrorBody),
    )
)]
pub async fn onnx(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    let Found::Model(info) = lookup(&state, &caller, &name).await? else {
        return Err(no_onnx(format!("`{name}` is a style image, not a model")));
    };
    if !styleforge_core::onnx::redistributable(&info) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_redistributable",
            format!("`{name}`'s terms ({}) do not allow handing its weights out", if info.research_only { "research only" } else { "no licence stated" }),
        ));
    }
    if !ModelKind::of(&info).is_some_and(styleforge_core::onnx::available) {
        return Err(no_onnx(format!("`{name}` is a {} model, which styleforge does not export to ONNX", info.method)));
    }
    let loaded = state.models.get(&info).await?;
    let bytes = tokio::task::spawn_blocking(move || styleforge_core::onnx::model_bytes(&loaded, &info))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let sha = crate::store::sha256_hex(&bytes);
    let mut resp = (StatusCode::OK, Bytes::from(bytes)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.onnx\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

fn no_onnx(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_onnx", message)
}

fn no_preview(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_thumbnail", message)
}
