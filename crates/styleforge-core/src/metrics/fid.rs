//! The Fréchet distance between two sets of feature vectors: the FID part of ArtFID (Wright and
//! Ommer, "ArtFID: Quantitative Evaluation of Neural Style Transfer", GCPR 2022; the Fréchet
//! Inception Distance of Heusel et al., NeurIPS 2017), as the `art_fid` package's
//! `compute_frechet_distance` computes it from `np.mean` and `np.cov(rowvar=False)` of each set
//! (`art_fid/art_fid.py`, github.com/matthias-wright/art-fid):
//!
//! `‖μ₁ - μ₂‖² + tr Σ₁ + tr Σ₂ - 2 tr sqrtm(Σ₁ Σ₂)`, with the unbiased covariances (`N - 1`).
//!
//! No `d×d` covariance is formed. With the centred data matrices `A` (`N×d`, one vector a row) and
//! `B` (`M×d`), `Σ₁ = AᵀA/(N-1)` and `Σ₂ = BᵀB/(M-1)`; the non-zero eigenvalues of `Σ₁Σ₂` are those
//! of `ABᵀBAᵀ/((N-1)(M-1)) = CCᵀ` with `C = ABᵀ/sqrt((N-1)(M-1))`, so `tr sqrtm(Σ₁Σ₂)` is the
//! sum of the singular values of the `N×M` matrix `C`, and `tr Σ₁` is the sum of the squared
//! entries of `A` over `N - 1`. A set with more vectors than dimensions is first replaced by the
//! `d×d` triangular factor `R` of `A = QR` (`AᵀA = RᵀR`, and `Q` keeps singular values), so the
//! matrix decomposed is never larger than `min(N, d) × min(M, d)`. Everything runs in `f64`
//! (nalgebra's SVD). Where `Σ₁Σ₂` is singular (fewer vectors than dimensions, the usual case for a
//! few pictures against 2048 features), this gives the exact trace; `scipy.linalg.sqrtm` returns
//! the same up to its rounding on the zero eigenvalues.

use burn::tensor::Tensor;
use nalgebra::DMatrix;

use crate::error::{Error, Result};

/// The Fréchet distance between the Gaussians fitted to `a` and `b` (means and unbiased
/// covariances), each a set of feature vectors of one dimension `d` (2048 Inception features for
/// ArtFID, [`crate::networks::inception::Inception3::features`]). 0 for two sets with the same
/// mean and covariance, larger the further apart; rounding can leave a value a little below 0
/// for (near-)identical sets, as in `art_fid`.
///
/// Errors: [`Error::Param`] when a set has fewer than 2 vectors (no covariance), the vectors'
/// dimensions differ (within or between the sets) or are 0, or a value is not finite.
pub fn frechet_distance(a: &[Vec<f32>], b: &[Vec<f32>]) -> Result<f64> {
    let d = check_set("first", a, None)?;
    check_set("second", b, Some(d))?;
    let (mu_a, ca, tr_a) = centred(a, d);
    let (mu_b, cb, tr_b) = centred(b, d);
    let mean_term: f64 = mu_a.iter().zip(&mu_b).map(|(x, y)| (x - y).powi(2)).sum();
    let scale = (((a.len() - 1) * (b.len() - 1)) as f64).sqrt();
    let c = reduced(ca) * reduced(cb).transpose() / scale;
    let tr_sqrt: f64 = c.singular_values().iter().sum();
    Ok(mean_term + tr_a + tr_b - 2.0 * tr_sqrt)
}

/// The rows of a feature tensor `[N, d]` (such as [`Inception3::features`]'s) as vectors, the
/// form [`frechet_distance`] takes.
///
/// [`Inception3::features`]: crate::networks::inception::Inception3::features
pub fn feature_rows(features: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, d] = features.dims();
    let data = features
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Backend(format!("{e:?}")))?;
    Ok(if d == 0 {
        Vec::new()
    } else {
        data.chunks_exact(d).map(<[f32]>::to_vec).collect()
    })
}

/// Checks that `set` has at least 2 vectors of one dimension (`want`, when given), finite;
/// returns the dimension.
fn check_set(which: &str, set: &[Vec<f32>], want: Option<usize>) -> Result<usize> {
    if set.len() < 2 {
        return Err(Error::Param(format!(
            "the Fréchet distance needs at least 2 feature vectors per set (a covariance), the {which} set has {}",
            set.len()
        )));
    }
    let d = want.unwrap_or(set[0].len());
    if d == 0 {
        return Err(Error::Param(
            "the Fréchet distance of empty feature vectors".into(),
        ));
    }
    for (i, v) in set.iter().enumerate() {
        if v.len() != d {
            return Err(Error::Param(format!(
                "feature vector {i} of the {which} set has {} values, expected {d} (the dimension of {})",
                v.len(),
                if want.is_some() {
                    "the first set"
                } else {
                    "its first vector"
                }
            )));
        }
        if let Some(j) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::Param(format!(
                "feature vector {i} of the {which} set holds {} at {j}",
                v[j]
            )));
        }
    }
    Ok(d)
}

/// The mean of `set`, its centred data matrix (`N×d`, a vector a row) and `tr Σ` (the squared
/// centred entries over `N - 1`).
fn centred(set: &[Vec<f32>], d: usize) -> (Vec<f64>, DMatrix<f64>, f64) {
    let n = set.len();
    let mut mean = vec![0f64; d];
    for v in set {
        for (m, &x) in mean.iter_mut().zip(v) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred = DMatrix::from_fn(n, d, |i, j| set[i][j] as f64 - mean[j]);
    let trace = centred.iter().map(|x| x * x).sum::<f64>() / (n - 1) as f64;
    (mean, centred, trace)
}

/// `a` (`N×d`) itself when `N ≤ d`, otherwise the `d×d` factor `R` of `a = QR`: a matrix with
/// the same `aᵀa`, so that `a bᵀ` and `R bᵀ` have the same singular values.
fn reduced(a: DMatrix<f64>) -> DMatrix<f64> {
    if a.nrows() <= a.ncols() {
        a
    } else {
        a.qr().r()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance from its definition on 2-dimensional sets, where `sqrtm` of a 2×2 matrix has
    /// a closed form: `tr sqrtm(M) = sqrt(tr M + 2 sqrt(det M))` for `M` with non-negative
    /// eigenvalues.
    #[test]
    fn two_dimensions_closed_form() {
        let a: Vec<Vec<f32>> = vec![
            vec![0.0, 1.0],
            vec![2.0, 0.5],
            vec![1.0, -1.0],
            vec![3.0, 2.0],
            vec![-1.0, 0.0],
        ];
        let b: Vec<Vec<f32>> = vec![
            vec![1.0, 0.0],
            vec![0.5, 2.5],
            vec![2.0, 1.0],
            vec![1.5, -0.5],
        ];
        let stats = |s: &[Vec<f32>]| {
            let n = s.len() as f64;
            let m = [0, 1].map(|j| s.iter().map(|v| v[j] as f64).sum::<f64>() / n);
            let cov = |p: usize, q: usize| {
                s.iter()
                    .map(|v| (v[p] as f64 - m[p]) * (v[q] as f64 - m[q]))
                    .sum::<f64>()
                    / (n - 1.0)
            };
            (m, [[cov(0, 0), cov(0, 1)], [cov(1, 0), cov(1, 1)]])
        };
        let ((m1, s1), (m2, s2)) = (stats(&a), stats(&b));
        let p = [0, 1].map(|i| [0, 1].map(|j| s1[i][0] * s2[0][j] + s1[i][1] * s2[1][j]));
        let (tr, det) = (p[0][0] + p[1][1], p[0][0] * p[1][1] - p[0][1] * p[1][0]);
        let want = (m1[0] - m2[0]).powi(2)
            + (m1[1] - m2[1]).powi(2)
            + s1[0][0]
            + s1[1][1]
            + s2[0][0]
            + s2[1][1]
            - 2.0 * (tr + 2.0 * det.sqrt()).sqrt();
        let got = frechet_distance(&a, &b).unwrap();
        assert!(
            (got - want).abs() < 1e-12 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        // The same set: 0 up to rounding; the order of the sets does not matter.
        assert!(frechet_distance(&a, &a).unwrap().abs() < 1e-12);
        assert!((frechet_distance(&b, &a).unwrap() - got).abs() < 1e-12);
    }

    #[test]
    fn refuses_small_sets_and_mismatched_dimensions() {
        let two = vec![vec![0.0f32, 1.0], vec![1.0, 0.0]];
        assert!(matches!(
            frechet_distance(&two[..1], &two),
            Err(Error::Param(_))
        ));
        assert!(matches!(frechet_distance(&two, &[]), Err(Error::Param(_))));
        assert!(matches!(
            frechet_distance(&two, &[vec![0.0, 1.0, 2.0], vec![1.0, 0.0, 2.0]]),
            Err(Error::Param(_))
        ));
        assert!(matches!(
            frechet_distance(&[vec![0.0, 1.0], vec![1.0]], &two),
            Err(Error::Param(_))
        ));
        assert!(matches!(
            frechet_distance(&[vec![f32::NAN, 1.0], vec![1.0, 0.0]], &two),
            Err(Error::Param(_))
        ));
    }
}
