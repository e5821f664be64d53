//! Summaries of 1–5 star ratings: count, mean and a 95% confidence interval for the mean.
//!
//! The interval is a **Wilson score interval on the scores rescaled to [0, 1]**
//! (`x = (score − 1) / 4`): with `p̂` the mean of the rescaled scores, `n` the count and
//! `z = 1.959964` (two-sided 95%),
//!
//! ```text
//! centre = (p̂ + z²/2n) / (1 + z²/n)
//! half   = z / (1 + z²/n) · √(p̂(1 − p̂)/n + z²/4n²)
//! ```
//!
//! mapped back to stars (`1 + 4·x`). A score bounded in [0, 1] with mean `p` has a variance of at
//! most `p(1 − p)` (the variance of a 0/1 score with that mean), so this is the Wilson interval
//! of the most spread-out ratings with that mean: conservative, never wider than the scale, and
//! defined for every `n ≥ 1`. Unlike a Student-t interval on the sample variance it does not
//! collapse to a point when every rating is the same (two 5-star votes give 2.37–5, not 5–5),
//! and a single rating gives a wide interval (one 5 gives 1.83–5), so ranking by the interval's
//! lower bound puts many 4.8s above one 5.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// z for a two-sided 95% interval (the 0.975 quantile of the standard normal).
pub const Z95: f64 = 1.959_963_984_540_054;

/// Count, mean and 95% interval (Wilson, on the scores rescaled to [0, 1]) of a set of 1–5
/// ratings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingSummary {
    /// Number of ratings.
    pub count: i64,
    /// Mean score (1–5).
    pub mean: f64,
    /// Lower end of the 95% Wilson interval for the mean (1–5).
    pub ci_low: f64,
    /// Upper end of the 95% Wilson interval for the mean (1–5).
    pub ci_high: f64,
}

/// The summary of ratings given as a histogram (`histogram[k]` ratings of `k + 1` stars); `None`
/// when there are none. Negative counts are treated as zero.
pub fn summarize(histogram: [i64; 5]) -> Option<RatingSummary> {
    let count: i64 = histogram.iter().map(|&c| c.max(0)).sum();
    if count == 0 {
        return None;
    }
    let n = count as f64;
    let sum: f64 = histogram
        .iter()
        .enumerate()
        .map(|(k, &c)| c.max(0) as f64 * (k + 1) as f64)
        .sum();
    let mean = sum / n;
    let (lo, hi) = wilson((mean - 1.0) / 4.0, n, Z95);
    Some(RatingSummary {
        count,
        mean,
        ci_low: 1.0 + 4.0 * lo,
        ci_high: 1.0 + 4.0 * hi,
    })
}

/// The Wilson score interval for a proportion `p` (clamped to [0, 1]) observed over `n > 0`
/// trials, at normal quantile `z`.
pub fn wilson(p: f64, n: f64, z: f64) -> (f64, f64) {
    let p = p.clamp(0.0, 1.0);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Orders two summaries for "best rated first": the higher lower bound of the interval first,
/// then the larger count, then the higher mean.
pub fn best_first(a: &RatingSummary, b: &RatingSummary) -> std::cmp::Ordering {
    b.ci_low
        .total_cmp(&a.ci_low)
        .then(b.count.cmp(&a.count))
        .then(b.mean.total_cmp(&a.mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn known_interval_for_5_4_4() {
        // p̂ = (1 + 0.75 + 0.75) / 3 = 0.8333…; worked by hand (and checked in Python):
        // → stars 2.239952 … 4.929389.
        let s = summarize([0, 0, 0, 2, 1]).unwrap();
        assert_eq!(s.count, 3);
        assert!(close(s.mean, 13.0 / 3.0, 1e-12));
        assert!(close(s.ci_low, 2.239_952, 1e-5), "{s:?}");
        assert!(close(s.ci_high, 4.929_389, 1e-5), "{s:?}");
    }

    #[test]
    fn one_rating_gives_a_wide_interval_and_never_leaves_the_scale() {
        let five = summarize([0, 0, 0, 0, 1]).unwrap();
        assert_eq!(five.count, 1);
        assert_eq!(five.mean, 5.0);
        assert!(close(five.ci_high, 5.0, 1e-12));
        assert!(close(five.ci_low, 1.0 + 4.0 * (1.0 / (1.0 + Z95 * Z95)), 1e-12), "{five:?}");
        let one = summarize([1, 0, 0, 0, 0]).unwrap();
        assert!(close(one.ci_low, 1.0, 1e-12) && one.ci_high < 5.0 && one.ci_high > 3.0, "{one:?}");
        assert_eq!(summarize([0; 5]), None);
        for h in [[3, 0, 0, 0, 0], [0, 0, 7, 0, 0], [1, 2, 3, 4, 5], [0, 0, 0, 0, 1000]] {
            let s = summarize(h).unwrap();
            assert!(1.0 <= s.ci_low && s.ci_low <= s.mean && s.mean <= s.ci_high && s.ci_high <= 5.0, "{h:?}: {s:?}");
        }
    }

    #[test]
    fn the_interval_narrows_with_more_ratings_and_does_not_collapse() {
        let two = summarize([0, 0, 0, 0, 2]).unwrap();
        assert!(two.ci_low < 3.0, "two 5-star votes are not certain: {two:?}");
        let few = summarize([0, 0, 0, 1, 4]).unwrap();
        let many = summarize([0, 0, 0, 10, 40]).unwrap();
        assert!(close(few.mean, many.mean, 1e-12));
        assert!(many.ci_high - many.ci_low < few.ci_high - few.ci_low);
    }

    #[test]
    fn many_good_ratings_rank_above_one_perfect_one() {
        let one_five = summarize([0, 0, 0, 0, 1]).unwrap();
        let many = summarize([0, 0, 0, 10, 40]).unwrap(); // mean 4.8
        assert!(close(many.mean, 4.8, 1e-12));
        assert_eq!(best_first(&many, &one_five), std::cmp::Ordering::Less);
        let mut v = [one_five, many];
        v.sort_by(best_first);
        assert_eq!(v[0], many);
    }
}
