//! Results (the stylised images, their timings and losses) and ratings.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiQuery, StyleMethodQuery, blob_response};
use crate::auth::Caller;
use crate::db::{self, ResultRow};
use crate::jobs::{AvatarFraming, Timings};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::stats::ratings::{RatingSummary, best_first, summarize};

/// A result's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResultInfo {
    /// Result id.
    pub id: String,
    /// The image.
    pub url: String,
    /// The job that made it.
    pub job: String,
    /// The content image.
    pub image: String,
    /// Style.
    pub style: String,
    /// Method.
    pub method: String,
    /// Format.
    pub format: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256 of the bytes.
    pub sha256: String,
    /// Where the time went.
    pub timings: Timings,
    /// Content loss of the result (where a loss network ran).
    pub content_loss: Option<f64>,
    /// Style loss of the result (where a loss network ran).
    pub style_loss: Option<f64>,
    /// Your rating, 1-5.
    pub rating: Option<i64>,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// How the photo was framed, for avatars: the face box used, the crop, whether a face was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<AvatarFraming>,
}

fn info_of(r: &ResultRow, rating: Option<i64>) -> ResultInfo {
    ResultInfo {
        id: r.id.clone(),
        url: format!("/v1/results/{}", r.id),
        job: r.job_id.clone(),
        image: r.image_id.clone(),
        style: r.style.clone(),
        method: r.method.clone(),
        format: r.format.clone(),
        width: r.width as u32,
        height: r.height as u32,
        bytes: r.bytes as u64,
        sha256: r.sha256.clone(),
        timings: serde_json::from_str(&r.timings).unwrap_or_default(),
        content_loss: r.content_loss,
        style_loss: r.style_loss,
        rating,
        created_at: r.created_at,
        avatar: r.avatar.as_deref().and_then(|a| serde_json::from_str(a).ok()),
    }
}

/// The caller's result `id` (404 when there is none).
pub(super) async fn owned_result(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<ResultRow> {
    db::get_result(&state.db, id, &caller.owner)
        .await?
        .ok_or_else(|| ApiError::not_found("result", id))
}

/// A result image.
#[utoipa::path(
    get,
    path = "/v1/results/{id}",
    operation_id = "get_result",
    tag = "results",
    params(("id" = String, Path, description = "Result id")),
    responses(
        (status = 200, description = "The stylised image, animation or video", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("video/mp4"), ("video/webm"))),
        (status = 206, description = "The byte range asked for with `Range: bytes=…`", content(("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"), ("video/mp4"), ("video/webm"))),
        (status = 416, description = "The range asks for no byte of it", body = crate::error::ErrorBody),
        (status = 404, description = "No such result (or not yours)", body = ErrorBody),
    )
)]
pub async fn content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let r = owned_result(&state, &caller, &id).await?;
    blob_response(&state, &r.sha256).await
}

/// A result's metadata: style, method, size, timings, losses, your rating.
#[utoipa::path(
    get,
    path = "/v1/results/{id}/info",
    operation_id = "get_result_info",
    tag = "results",
    params(("id" = String, Path, description = "Result id")),
    responses(
        (status = 200, description = "Metadata", body = ResultInfo),
        (status = 404, description = "No such result (or not yours)", body = ErrorBody),
    )
)]
pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ResultInfo>> {
    let r = owned_result(&state, &caller, &id).await?;
    let rating = db::get_rating(&state.db, &id, &caller.owner).await?;
    Ok(axum::Json(info_of(&r, rating)))
}

/// A rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    #[serde(deserialize_with = "crate::jobs::lenient::i64")]
    pub score: i64,
}

/// A stored rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rating {
    /// Result id.
    pub result: String,
    /// Style of the result.
    pub style: String,
    /// Method of the result.
    pub method: String,
    /// 1-5.
    pub score: i64,
}

/// Rate a result 1-5 (rating again replaces your rating).
#[utoipa::path(
    put,
    path = "/v1/results/{id}/rating",
    operation_id = "rate_result",
    tag = "results",
    params(("id" = String, Path, description = "Result id")),
    request_body = RatingRequest,
    responses(
        (status = 200, description = "Stored", body = Rating),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such result (or not yours)", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Score outside 1-5", body = ErrorBody),
    )
)]
pub async fn rate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> ApiResult<axum::Json<Rating>> {
    let r = owned_result(&state, &caller, &id).await?;
    if !(1..=5).contains(&req.score) {
        return Err(ApiError::unprocessable(
            "invalid_parameter",
            "score must be 1 to 5",
        ));
    }
    db::upsert_rating(&state.db, &r, &caller.owner, req.score).await?;
    Ok(axum::Json(Rating {
        result: r.id,
        style: r.style,
        method: r.method,
        score: req.score,
    }))
}

/// Ratings of one style with one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingAggregate {
    /// Style.
    pub style: String,
    /// Method.
    pub method: String,
    /// Count, mean and the 95% interval of the mean (Wilson, see `GET /v1/stats/ratings`).
    #[serde(flatten)]
    pub summary: RatingSummary,
    /// How many gave 1, 2, 3, 4 and 5.
    pub histogram: [i64; 5],
}

/// Aggregated ratings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingList {
    /// Per style and method.
    pub ratings: Vec<RatingAggregate>,
}

/// Ratings aggregated per style and method, over all users.
#[utoipa::path(
    get,
    path = "/v1/ratings",
    operation_id = "list_ratings",
    tag = "results",
    params(StyleMethodQuery),
    responses(
        (status = 200, description = "Aggregates", body = RatingList),
        (status = 400, description = "Bad query", body = ErrorBody),
    )
)]
pub async fn ratings(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<StyleMethodQuery>,
) -> ApiResult<axum::Json<RatingList>> {
    let rows = db::rating_aggregates(&state.db, q.style.as_deref(), q.method.as_deref()).await?;
    Ok(axum::Json(RatingList {
        ratings: rows
            .into_iter()
            .map(|r| {
                let histogram = [r.s1, r.s2, r.s3, r.s4, r.s5];
                let ci = summarize(histogram);
                let summary = RatingSummary {
                    count: r.count,
                    mean: r.mean,
                    ci_low: ci.map_or(r.mean, |c| c.ci_low),
                    ci_high: ci.map_or(r.mean, |c| c.ci_high),
                };
                RatingAggregate { style: r.style, method: r.method, summary, histogram }
            })
            .collect(),
    }))
}

/// The ratings of one style (over every method) or of one method (over every style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingStat {
    /// The style or the method.
    pub name: String,
    /// Count, mean and the 95% interval of the mean.
    #[serde(flatten)]
    pub summary: RatingSummary,
    /// How many gave 1, 2, 3, 4 and 5.
    pub histogram: [i64; 5],
}

/// Ratings per style and per method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingStats {
    /// Per style, over every method: best rated first (by the interval's lower end, then count).
    pub styles: Vec<RatingStat>,
    /// Per method, over every style: best rated first.
    pub methods: Vec<RatingStat>,
}

fn rating_stats(rows: Vec<db::RatingHistRow>) -> Vec<RatingStat> {
    let mut out: Vec<RatingStat> = rows
        .into_iter()
        .filter_map(|r| {
            let histogram = r.histogram();
            summarize(histogram).map(|summary| RatingStat { name: r.name, summary, histogram })
        })
        .collect();
    out.sort_by(|a, b| best_first(&a.summary, &b.summary).then_with(|| a.name.cmp(&b.name)));
    out
}

/// Ratings aggregated per style (over every method) and per method (over every style), over
/// all users: count, mean and a 95% confidence interval for the mean, best rated first.
///
/// The interval is the Wilson score interval of the scores rescaled to 0..1 (`(score - 1) / 4`),
/// mapped back to stars: conservative (it assumes the most spread-out ratings the mean allows),
/// within 1..5, wide for a single rating (one 5 gives 1.83..5) and never collapsed to a point
/// when all ratings agree. "Best rated" orders by its lower end, so many 4.8s rank above one 5.
#[utoipa::path(
    get,
    path = "/v1/stats/ratings",
    operation_id = "rating_stats",
    tag = "results",
    params(StyleMethodQuery),
    responses(
        (status = 200, description = "Per style and per method", body = RatingStats),
        (status = 400, description = "Bad query", body = ErrorBody),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<StyleMethodQuery>,
) -> ApiResult<axum::Json<RatingStats>> {
    let styles = db::rating_histograms(&state.db, db::RatingGroup::Style, q.style.as_deref()).await?;
    let methods = db::rating_histograms(&state.db, db::RatingGroup::Method, q.method.as_deref()).await?;
    Ok(axum::Json(RatingStats {
        styles: rating_stats(styles),
        methods: rating_stats(methods),
    }))
}
