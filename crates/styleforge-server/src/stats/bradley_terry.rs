//! Bradley–Terry scores from pairwise comparisons, fitted with the MM algorithm (Zermelo 1929;
//! Hunter 2004, "MM algorithms for generalized Bradley–Terry models", eq. 3).
//!
//! The model: player `i` beats player `j` with probability `s_i / (s_i + s_j)`. With `w_i` the
//! wins of `i` and `n_ij` the comparisons between `i` and `j`, each MM step is
//!
//! ```text
//! s_i ← w_i / Σ_j n_ij / (s_i + s_j)
//! ```
//!
//! which increases the likelihood at every step. The maximum-likelihood scores do not exist
//! when a player never lost (its score grows without bound) or never won, nor when the
//! comparisons fall into groups never compared with each other. So a **prior** is added: every
//! player also plays `2·prior` virtual comparisons against a fixed reference player of score 1,
//! winning half of them (`prior` wins and `prior` losses). The step becomes
//!
//! ```text
//! s_i ← (w_i + prior) / (Σ_j n_ij / (s_i + s_j) + 2·prior / (s_i + 1))
//! ```
//!
//! still an MM step (for the likelihood times the prior), and every score stays finite and
//! positive; players with few comparisons are pulled towards the reference. With the service's
//! prior of 0.5 ([`PRIOR`]), a player that won its one comparison scores 2.13 against its
//! opponent's 0.47 (odds of 4.5 to 1) — not infinity.
//!
//! The scores are then **normalised to a geometric mean of 1** over the players (so a score
//! above 1 is better than the typical player, and `s_i / s_j` is the odds of `i` beating `j`).

/// The prior the service uses: half a virtual win and half a virtual loss against the reference.
pub const PRIOR: f64 = 0.5;

/// One comparison (or several alike): `winner` beat `loser`, `count` times (fractional counts
/// allowed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Index of the player that won.
    pub winner: usize,
    /// Index of the player that lost.
    pub loser: usize,
    /// How many times (≥ 0).
    pub count: f64,
}

/// Fitted scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// One score per player, positive, with a geometric mean of 1.
    pub scores: Vec<f64>,
    /// The reference player's score on the same scale (1 / the geometric mean of the scores
    /// before normalisation): with a prior, `scores[i] / reference` are the scores the MM steps
    /// fitted against the reference of score 1.
    pub reference: f64,
    /// MM steps taken.
    pub iterations: usize,
    /// Whether the scores stopped changing (relative change under [`TOLERANCE`]) within
    /// [`MAX_ITERATIONS`].
    pub converged: bool,
}

/// The largest relative change of any score at which the fit stops.
pub const TOLERANCE: f64 = 1e-10;
/// The most MM steps taken.
pub const MAX_ITERATIONS: usize = 100_000;

/// Fits Bradley–Terry scores for `players` players to `outcomes` with `prior` virtual wins and
/// losses per player against a reference of score 1 (see the module's documentation; `prior`
/// 0 gives the plain maximum-likelihood fit, which needs every player to have won and lost and
/// the comparisons to connect every player). Outcomes naming a player out of range, a player
/// against itself, or a count that is not a positive number are ignored. A player without
/// comparisons scores 1 (before normalisation) when `prior` is positive.
pub fn fit(players: usize, outcomes: &[Outcome], prior: f64) -> Fit {
    let prior = if prior.is_finite() && prior > 0.0 { prior } else { 0.0 };
    // wins[i], and n[i][j] comparisons between i and j (symmetric).
    let mut wins = vec![0.0; players];
    let mut n = vec![vec![0.0; players]; players];
    for o in outcomes {
        if o.winner >= players || o.loser >= players || o.winner == o.loser || !(o.count > 0.0 && o.count.is_finite()) {
            continue;
        }
        wins[o.winner] += o.count;
        n[o.winner][o.loser] += o.count;
        n[o.loser][o.winner] += o.count;
    }
    let mut s = vec![1.0; players];
    let mut iterations = 0;
    let mut converged = players == 0;
    while !converged && iterations < MAX_ITERATIONS {
        iterations += 1;
        let mut next = vec![0.0; players];
        for i in 0..players {
            let mut denom = 2.0 * prior / (s[i] + 1.0);
            for j in 0..players {
                if n[i][j] > 0.0 {
                    denom += n[i][j] / (s[i] + s[j]);
                }
            }
            let num = wins[i] + prior;
            // No comparisons and no prior: nothing to learn, keep the score.
            next[i] = if denom > 0.0 { num / denom } else { s[i] };
        }
        if prior == 0.0 {
            // Without a reference the scale is free: keep it fixed at a geometric mean of 1.
            normalise(&mut next);
        }
        let change = s
            .iter()
            .zip(&next)
            .map(|(a, b)| ((b - a) / a).abs())
            .fold(0.0, f64::max);
        s = next;
        converged = change < TOLERANCE;
    }
    let g = normalise(&mut s);
    Fit {
        scores: s,
        reference: 1.0 / g,
        iterations,
        converged,
    }
}

/// Rescales positive scores to a geometric mean of 1 (zeros and non-finite scores are left out
/// of the mean) and returns the factor they were divided by.
fn normalise(s: &mut [f64]) -> f64 {
    let logs: Vec<f64> = s.iter().filter(|x| x.is_finite() && **x > 0.0).map(|x| x.ln()).collect();
    if logs.is_empty() {
        return 1.0;
    }
    let g = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
    for x in s.iter_mut() {
        *x /= g;
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(winner: usize, loser: usize, count: f64) -> Outcome {
        Outcome { winner, loser, count }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    fn geo_mean(s: &[f64]) -> f64 {
        (s.iter().map(|x| x.ln()).sum::<f64>() / s.len() as f64).exp()
    }

    /// The three-player example, worked by hand: A beat B 2–1, B beat C 2–1, A beat C 4–1.
    /// Each pair's own maximum-likelihood odds are 2, 2 and 4 = 2·2: consistent, so the joint
    /// maximum is where every pair's likelihood peaks, s ∝ (4, 2, 1); with a geometric mean of 1
    /// (∛8 = 2): (2, 1, 0.5).
    fn three_players() -> Vec<Outcome> {
        vec![o(0, 1, 2.0), o(1, 0, 1.0), o(1, 2, 2.0), o(2, 1, 1.0), o(0, 2, 4.0), o(2, 0, 1.0)]
    }

    #[test]
    fn three_player_example_matches_the_hand_computed_scores() {
        let f = fit(3, &three_players(), 0.0);
        assert!(f.converged, "{f:?}");
        for (got, want) in f.scores.iter().zip([2.0, 1.0, 0.5]) {
            assert!(close(*got, want, 1e-8), "{:?}", f.scores);
        }
        // The prior pulls every score towards the reference, keeping the order.
        let p = fit(3, &three_players(), PRIOR);
        assert!(p.converged);
        assert!(p.scores[0] > p.scores[1] && p.scores[1] > p.scores[2], "{:?}", p.scores);
        assert!(p.scores[0] < 2.0 && p.scores[2] > 0.5, "{:?}", p.scores);
    }

    #[test]
    fn a_tree_of_comparisons_gives_each_edges_odds() {
        // A–B 2–1 and B–C 2–1, A and C never compared: s ∝ (4, 2, 1) again.
        let f = fit(3, &[o(0, 1, 2.0), o(1, 0, 1.0), o(1, 2, 2.0), o(2, 1, 1.0)], 0.0);
        assert!(f.converged);
        assert!(close(f.scores[0] / f.scores[1], 2.0, 1e-8) && close(f.scores[1] / f.scores[2], 2.0, 1e-8), "{:?}", f.scores);
    }

    #[test]
    fn the_fit_solves_the_likelihood_equations() {
        // At the maximum each player's expected wins (against the others and the reference)
        // equal its wins plus the prior's half.
        let outcomes = vec![o(0, 1, 3.0), o(1, 0, 1.0), o(1, 2, 1.0), o(2, 1, 2.0), o(0, 2, 1.0), o(2, 3, 2.0), o(3, 0, 1.0)];
        for prior in [PRIOR, 0.0] {
            let f = fit(4, &outcomes, prior);
            assert!(f.converged, "{f:?}");
            assert!(close(geo_mean(&f.scores), 1.0, 1e-12));
            let t: Vec<f64> = f.scores.iter().map(|x| x / f.reference).collect();
            for i in 0..4 {
                let wins: f64 = outcomes.iter().filter(|x| x.winner == i).map(|x| x.count).sum::<f64>() + prior;
                let mut expected = 2.0 * prior * t[i] / (t[i] + 1.0);
                for x in &outcomes {
                    if x.winner == i {
                        expected += x.count * t[i] / (t[i] + t[x.loser]);
                    } else if x.loser == i {
                        expected += x.count * t[i] / (t[i] + t[x.winner]);
                    }
                }
                assert!((expected - wins).abs() < 1e-7, "prior {prior}, player {i}: expected {expected}, won {wins}");
            }
        }
    }

    #[test]
    fn relabelling_and_scaling_the_data_do_not_change_the_scores() {
        let base = three_players();
        let f = fit(3, &base, 0.0);
        // Players renamed 0→2, 1→0, 2→1: the scores follow their players.
        let perm = [2, 0, 1];
        let renamed: Vec<Outcome> = base.iter().map(|x| o(perm[x.winner], perm[x.loser], x.count)).collect();
        let g = fit(3, &renamed, 0.0);
        for i in 0..3 {
            assert!(close(g.scores[perm[i]], f.scores[i], 1e-8));
        }
        // The order of the outcomes does not matter.
        let mut reversed = base.clone();
        reversed.reverse();
        assert_eq!(fit(3, &reversed, PRIOR).scores.len(), 3);
        for (a, b) in fit(3, &reversed, PRIOR).scores.iter().zip(&fit(3, &base, PRIOR).scores) {
            assert!(close(*a, *b, 1e-9));
        }
        // Without a prior, only the ratios of wins matter: ten times the data, the same scores.
        let tenfold: Vec<Outcome> = base.iter().map(|x| o(x.winner, x.loser, 10.0 * x.count)).collect();
        for (a, b) in fit(3, &tenfold, 0.0).scores.iter().zip(&f.scores) {
            assert!(close(*a, *b, 1e-8));
        }
        // With the prior, more data weighs more against it: the spread grows towards the MLE's.
        let p1 = fit(3, &base, PRIOR).scores;
        let p10 = fit(3, &tenfold, PRIOR).scores;
        assert!(p1[0] / p1[2] < p10[0] / p10[2] && p10[0] / p10[2] < 4.0 + 1e-9, "{p1:?} {p10:?}");
        // Two equal players: equal scores, 1 each.
        let even = fit(2, &[o(0, 1, 3.0), o(1, 0, 3.0)], PRIOR);
        assert!(close(even.scores[0], 1.0, 1e-9) && close(even.scores[1], 1.0, 1e-9), "{even:?}");
    }

    #[test]
    fn an_unbeaten_player_stays_finite_and_the_fit_converges() {
        // A beat B twice and C twice and never lost; B and C split 1–1.
        let outcomes = vec![o(0, 1, 2.0), o(0, 2, 2.0), o(1, 2, 1.0), o(2, 1, 1.0)];
        let f = fit(3, &outcomes, PRIOR);
        assert!(f.converged && f.iterations < 10_000, "{f:?}");
        assert!(f.scores.iter().all(|s| s.is_finite() && *s > 0.0), "{f:?}");
        assert!(f.scores[0] > 3.0 * f.scores[1], "{f:?}");
        assert!(close(f.scores[1], f.scores[2], 1e-9), "B and C are symmetric: {f:?}");
        assert!(close(geo_mean(&f.scores), 1.0, 1e-12));
        // One comparison, one winner: 2.13 against 0.47 (see the module's documentation).
        let one = fit(2, &[o(0, 1, 1.0)], PRIOR);
        assert!(one.converged);
        assert!(close(one.scores[0], 2.130_395, 1e-6) && close(one.scores[1], 0.469_396, 1e-6), "{one:?}");
        // Without the prior the same data has no finite maximum: the fit does not settle.
        let mle = fit(3, &outcomes, 0.0);
        assert!(!mle.converged || mle.scores[0] / mle.scores[1] > 1e6, "{mle:?}");
    }

    #[test]
    fn degenerate_inputs_are_handled() {
        assert_eq!(fit(0, &[], PRIOR).scores, Vec::<f64>::new());
        let f = fit(2, &[], PRIOR);
        assert!(f.converged && f.scores == vec![1.0, 1.0], "{f:?}");
        // Bad outcomes are ignored.
        let g = fit(2, &[o(0, 0, 5.0), o(0, 7, 1.0), o(1, 0, f64::NAN), o(1, 0, -2.0)], PRIOR);
        assert_eq!(g.scores, vec![1.0, 1.0]);
    }
}
