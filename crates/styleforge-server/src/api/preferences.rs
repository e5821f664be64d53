//! Pairwise preferences: two results of one photo seen side by side, one chosen; and the
//! Bradley–Terry scores of the styles and methods fitted to every choice.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::results::owned_result;
use super::{ApiJson, ApiQuery, StyleMethodQuery};
use crate::auth::Caller;
use crate::db::{self, PreferenceCountRow, PreferenceRow, ResultRow};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::stats::bradley_terry::{self, Outcome, PRIOR};

/// Which of the two results was preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// The result `a`.
    A,
    /// The result `b`.
    B,
}

/// A choice between two of your results made from the same photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceRequest {
    /// One result id.
    pub a: String,
    /// The other result id.
    pub b: String,
    /// The one preferred: `a` or `b`.
    #[serde(deserialize_with = "choice")]
    pub winner: Choice,
}

/// `a` or `b`; anything else (another string, a number, null) is a 422 naming the field, as
/// the other well-formed but invalid bodies are, not a JSON syntax error.
fn choice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Choice, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v.as_str() {
        Some("a") => Ok(Choice::A),
        Some("b") => Ok(Choice::B),
        _ => Err(serde::de::Error::custom(format!("winner must be \"a\" or \"b\", not {v}"))),
    }
}

/// One side of a comparison: a result and the arm (style and method) it was made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Arm {
    /// Result id.
    pub result: String,
    /// Its style.
    pub style: String,
    /// Its method.
    pub method: String,
}

/// A stored preference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Preference {
    /// The photo both results were made from.
    pub image: String,
    /// The result `a` of the request.
    pub a: Arm,
    /// The result `b` of the request.
    pub b: Arm,
    /// The one preferred.
    pub winner: Choice,
    /// Whether this replaced your earlier choice between the same two arms on the same photo.
    pub replaced: bool,
}

fn arm(r: &ResultRow) -> Arm {
    Arm {
        result: r.id.clone(),
        style: r.style.clone(),
        method: r.method.clone(),
    }
}

/// Record which of two of your results of one photo you prefer. The arms compared (style and
/// method) are read from the results. Choosing again between the same two arms on the same
/// photo (in either order, with these results or others) replaces your earlier choice.
#[utoipa::path(
    post,
    path = "/v1/preferences",
    operation_id = "create_preference",
    tag = "results",
    request_body = PreferenceRequest,
    responses(
        (status = 200, description = "Stored", body = Preference),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such result (or not yours)", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`winner` not `a` or `b`; the same result twice; results of different photos; or two results of the same style and method", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PreferenceRequest>,
) -> ApiResult<axum::Json<Preference>> {
    let a = owned_result(&state, &caller, &req.a).await?;
    let b = owned_result(&state, &caller, &req.b).await?;
    if a.id == b.id {
        return Err(ApiError::unprocessable(
            "same_result",
            "`a` and `b` are the same result: compare two different results",
        ));
    }
    if a.image_id != b.image_id {
        return Err(ApiError::unprocessable(
            "different_images",
            format!(
                "`{}` was made from image `{}` and `{}` from `{}`: compare results of the same photo",
                a.id, a.image_id, b.id, b.image_id
            ),
        ));
    }
    if (&a.style, &a.method) == (&b.style, &b.method) {
        return Err(ApiError::unprocessable(
            "same_arm",
            format!(
                "both results are `{}` with `{}`: compare two styles or two methods",
                a.style, a.method
            ),
        ));
    }
    // Canonical order: the arm that sorts first is stored as `a`.
    let swap = (&b.style, &b.method) < (&a.style, &a.method);
    let (first, second) = if swap { (&b, &a) } else { (&a, &b) };
    let first_won = (req.winner == Choice::A) != swap;
    let row = PreferenceRow {
        owner: caller.owner.clone(),
        image_id: a.image_id.clone(),
        style_a: first.style.clone(),
        method_a: first.method.clone(),
        style_b: second.style.clone(),
        method_b: second.method.clone(),
        result_a: first.id.clone(),
        result_b: second.id.clone(),
        winner: if first_won { "a" } else { "b" }.into(),
        created_at: 0,
        updated_at: 0,
    };
    let replaced = db::upsert_preference(&state.db, &row).await?;
    Ok(axum::Json(Preference {
        image: a.image_id.clone(),
        a: arm(&a),
        b: arm(&b),
        winner: req.winner,
        replaced,
    }))
}

/// The record and Bradley–Terry score of a style or a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreferenceStat {
    /// The style or the method.
    pub name: String,
    /// Comparisons it won.
    pub wins: i64,
    /// Comparisons it lost.
    pub losses: i64,
    /// Comparisons it took part in (`wins + losses`).
    pub comparisons: i64,
    /// Bradley–Terry score: the scores of a table have a geometric mean of 1, and `x` beats
    /// `y` with probability `score_x / (score_x + score_y)`.
    pub score: f64,
}

/// The record and Bradley–Terry score of one arm: a style with a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArmStat {
    /// Style.
    pub style: String,
    /// Method.
    pub method: String,
    /// Comparisons it won.
    pub wins: i64,
    /// Comparisons it lost.
    pub losses: i64,
    /// Comparisons it took part in.
    pub comparisons: i64,
    /// Bradley–Terry score (geometric mean 1 over the arms).
    pub score: f64,
}

/// Preferences summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreferenceStats {
    /// Comparisons counted (each user's latest choice per photo and pair of arms).
    pub comparisons: i64,
    /// The prior of the fit: virtual wins and as many virtual losses each player gets against
    /// a reference player.
    pub prior: f64,
    /// Per method, from the comparisons of two different methods: highest score first.
    pub methods: Vec<PreferenceStat>,
    /// Per style, from the comparisons of two different styles: highest score first.
    pub styles: Vec<PreferenceStat>,
    /// Per arm (style and method), from every comparison: highest score first.
    pub arms: Vec<ArmStat>,
}

/// Wins, losses and Bradley–Terry scores of players named by `K`, from outcomes
/// `(winner, loser, count)`; highest score first, then by name.
fn table<K: Ord + Clone>(outcomes: &[(K, K, i64)]) -> Vec<(K, i64, i64, f64)> {
    let mut index: BTreeMap<K, usize> = BTreeMap::new();
    for (w, l, _) in outcomes {
        for k in [w, l] {
            let n = index.len();
            index.entry(k.clone()).or_insert(n);
        }
    }
    let mut wins = vec![0i64; index.len()];
    let mut losses = vec![0i64; index.len()];
    let games: Vec<Outcome> = outcomes
        .iter()
        .map(|(w, l, c)| {
            let (w, l) = (index[w], index[l]);
            wins[w] += c;
            losses[l] += c;
            Outcome {
                winner: w,
                loser: l,
                count: *c as f64,
            }
        })
        .collect();
    let fit = bradley_terry::fit(index.len(), &games, PRIOR);
    let mut out: Vec<(K, i64, i64, f64)> = index
        .into_iter()
        .map(|(k, i)| (k, wins[i], losses[i], fit.scores[i]))
        .collect();
    out.sort_by(|a, b| b.3.total_cmp(&a.3).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The statistics of counted choices (see [`stats`]).
pub fn preference_stats(rows: &[PreferenceCountRow], style: Option<&str>, method: Option<&str>) -> PreferenceStats {
    let rows: Vec<&PreferenceCountRow> = rows
        .iter()
        .filter(|r| style.is_none_or(|s| r.style_a == s && r.style_b == s))
        .filter(|r| method.is_none_or(|m| r.method_a == m && r.method_b == m))
        .collect();
    let mut by_method = Vec::new();
    let mut by_style = Vec::new();
    let mut by_arm = Vec::new();
    for r in &rows {
        let a = (r.style_a.clone(), r.method_a.clone());
        let b = (r.style_b.clone(), r.method_b.clone());
        let (w, l) = if r.winner == "a" { (a, b) } else { (b, a) };
        if w.1 != l.1 {
            by_method.push((w.1.clone(), l.1.clone(), r.count));
        }
        if w.0 != l.0 {
            by_style.push((w.0.clone(), l.0.clone(), r.count));
        }
        by_arm.push((w, l, r.count));
    }
    let named = |t: Vec<(String, i64, i64, f64)>| {
        t.into_iter()
            .map(|(name, wins, losses, score)| PreferenceStat {
                name,
                wins,
                losses,
                comparisons: wins + losses,
                score,
            })
            .collect()
    };
    PreferenceStats {
        comparisons: rows.iter().map(|r| r.count).sum(),
        prior: PRIOR,
        methods: named(table(&by_method)),
        styles: named(table(&by_style)),
        arms: table(&by_arm)
            .into_iter()
            .map(|((style, method), wins, losses, score)| ArmStat {
                style,
                method,
                wins,
                losses,
                comparisons: wins + losses,
                score,
            })
            .collect(),
    }
}

/// Pairwise preferences over all users, summarised per method, per style and per arm: wins,
/// losses, comparisons and a Bradley–Terry score.
///
/// A comparison counts in the method table when its two methods differ, in the style table when
/// its two styles differ, and always in the arm table. Scores are fitted by the MM algorithm
/// (Hunter 2004) with a prior of half a virtual win and half a virtual loss per player against a
/// reference of score 1, so an unbeaten style or method keeps a finite score and one with few
/// comparisons stays near the middle; each table's scores are then scaled to a geometric mean
/// of 1, and `x` beats `y` with probability `score_x / (score_x + score_y)`.
#[utoipa::path(
    get,
    path = "/v1/stats/preferences",
    operation_id = "preference_stats",
    tag = "results",
    params(StyleMethodQuery),
    responses(
        (status = 200, description = "Per method, per style and per arm", body = PreferenceStats),
        (status = 400, description = "Bad query", body = ErrorBody),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<StyleMethodQuery>,
) -> ApiResult<axum::Json<PreferenceStats>> {
    let rows = db::preference_counts(&state.db).await?;
    Ok(axum::Json(preference_stats(&rows, q.style.as_deref(), q.method.as_deref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sa: &str, ma: &str, sb: &str, mb: &str, winner: &str, count: i64) -> PreferenceCountRow {
        PreferenceCountRow {
            style_a: sa.into(),
            method_a: ma.into(),
            style_b: sb.into(),
            method_b: mb.into(),
            winner: winner.into(),
            count,
        }
    }

    #[test]
    fn choices_are_counted_per_method_style_and_arm() {
        let rows = vec![
            // Two methods on one painting: microast beat adain twice, lost once.
            row("starry", "adain", "starry", "microast", "b", 2),
            row("starry", "adain", "starry", "microast", "a", 1),
            // Two styles with one method: candy beat seascape three times.
            row("candy", "fast", "seascape", "fast", "a", 3),
            // Both differ: counts for both tables.
            row("candy", "fast", "starry", "microast", "b", 1),
        ];
        let s = preference_stats(&rows, None, None);
        assert_eq!(s.comparisons, 7);
        let get = |t: &[PreferenceStat], n: &str| t.iter().find(|x| x.name == n).map(|x| (x.wins, x.losses, x.comparisons)).unwrap();
        assert_eq!(get(&s.methods, "microast"), (3, 1, 4));
        assert_eq!(get(&s.methods, "adain"), (1, 2, 3));
        assert_eq!(get(&s.methods, "fast"), (0, 1, 1));
        assert_eq!(s.methods[0].name, "microast");
        assert_eq!(get(&s.styles, "candy"), (3, 1, 4));
        assert_eq!(get(&s.styles, "seascape"), (0, 3, 3));
        assert_eq!(get(&s.styles, "starry"), (1, 0, 1));
        assert_eq!(s.arms.len(), 4);
        let geo: f64 = s.styles.iter().map(|x| x.score.ln()).sum::<f64>() / s.styles.len() as f64;
        assert!(geo.abs() < 1e-9);
        assert!(s.styles.windows(2).all(|w| w[0].score >= w[1].score));
        // Filters: the methods compared on one style; the styles compared with one method.
        let one_style = preference_stats(&rows, Some("starry"), None);
        assert_eq!(one_style.comparisons, 3);
        assert!(one_style.styles.is_empty());
        assert_eq!(one_style.methods.len(), 2);
        let one_method = preference_stats(&rows, None, Some("fast"));
        assert_eq!(one_method.comparisons, 3);
        assert_eq!(one_method.styles[0].name, "candy");
        assert!(one_method.methods.is_empty());
    }
}
