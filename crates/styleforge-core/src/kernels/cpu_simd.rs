//! Memory-bound loops of the CPU kernels (plane statistics, normalisation maps, layout copies),
//! compiled for the widest vector unit the CPU has, chosen at run time.
//!
//! The binary targets baseline x86-64, so a plain loop is compiled for SSE2 only. [`vectorized`]
//! runs a closure through `pulp`'s dispatch (the same one `gemm` uses for its kernels), which
//! inlines it into functions compiled for AVX-512 and for AVX2+FMA, and picks one by the CPU's
//! features; that is enough for element-wise maps. The `f64` reductions of `f32` data are not
//! vectorised by the compiler (it may not reorder a chain of additions), so they keep 16
//! independent partial sums: written with AVX-512 intrinsics, or as an array of sums that the
//! compiler keeps in AVX2 registers. A single chain waits on each addition's latency: it made
//! the norms' statistics a quarter of a CartoonGAN-light pass.

/// Runs `f` compiled for the CPU's widest vector instructions (AVX-512, AVX2+FMA, or baseline).
/// Only code inlined into `f` benefits: mark the closure and the helpers it calls
/// `#[inline(always)]` (a closure called from the three variants is otherwise compiled once, for
/// baseline x86-64).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `(mean, biased variance)` of `x`, in `f64` (two passes: the sum, then squares about the mean).
pub(crate) fn mean_var(x: &[f32]) -> (f64, f64) {
    let m = x.len() as f64;
    let mean = sum(x) / m;
    (mean, squared_deviations(x, mean) / m)
}

/// `Σ x` in `f64`.
pub(crate) fn sum(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { avx512::sum(x) };
    }
    vectorized(
        #[inline(always)]
        || lanes(x, 0.0, false),
    )
}

/// `Σ (x - mean)²` in `f64`.
pub(crate) fn squared_deviations(x: &[f32], mean: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { avx512::squared_deviations(x, mean) };
    }
    vectorized(
        #[inline(always)]
        || lanes(x, mean, true),
    )
}

/// `Σ x` or, with `squares`, `Σ (x - mean)²`, in `f64` over [`LANES`] independent partial sums
/// (the compiler keeps them in vector registers; one chain of additions would wait on each
/// addition's latency), then the remainder one at a time.
#[inline(always)]
fn lanes(x: &[f32], mean: f64, squares: bool) -> f64 {
    let mut acc = [0f64; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            let d = v as f64 - mean;
            *a += if squares { d * d } else { d };
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| if squares { (v as f64 - mean).powi(2) } else { v as f64 }).sum();
    acc.iter().sum::<f64>() + tail
}

/// The partial sums of [`lanes`]: four AVX2 vectors of doubles.
const LANES: usize = 16;

/// `(Σ g, Σ g·x)` in `f64`, where `g` is `dy` with zeros where `kept` (a ReLU's output) is not
/// positive.
pub(crate) fn masked_sums(dy: &[f32], x: &[f32], kept: Option<&[f32]>) -> (f64, f64) {
    assert!(dy.len() == x.len() && kept.is_none_or(|k| k.len() == x.len()), "masked_sums: lengths");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, and the lengths are equal.
        return unsafe { avx512::masked_sums(dy, x, kept) };
    }
    masked_tail(dy, x, kept, 0)
}

/// [`masked_sums`] over the elements from `from` on, one at a time.
fn masked_tail(dy: &[f32], x: &[f32], kept: Option<&[f32]>, from: usize) -> (f64, f64) {
    let (mut s, mut sx) = (0f64, 0f64);
    for i in from..x.len() {
        if kept.is_none_or(|k| k[i] > 0.0) {
            s += dy[i] as f64;
            sx += dy[i] as f64 * x[i] as f64;
        }
    }
    (s, sx)
}

/// The reductions on 16 floats at a time, each widened to two vectors of 8 doubles.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Sixteen floats from `x[at..at + 16]` as two vectors of doubles.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn widen(v: __m512) -> (__m512d, __m512d) {
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        (_mm512_cvtps_pd(_mm512_castps512_ps256(v)), _mm512_cvtps_pd(hi))
    }

    /// See [`super::sum`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum(x: &[f32]) -> f64 {
        let whole = x.len() / 16 * 16;
        let (mut a, mut b) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        for at in (0..whole).step_by(16) {
            // SAFETY: `at + 16 <= x.len()`.
            let (lo, hi) = widen(unsafe { _mm512_loadu_ps(x.as_ptr().add(at)) });
            a = _mm512_add_pd(a, lo);
            b = _mm512_add_pd(b, hi);
        }
        let tail: f64 = x[whole..].iter().map(|&v| v as f64).sum();
        _mm512_reduce_add_pd(_mm512_add_pd(a, b)) + tail
    }

    /// See [`super::squared_deviations`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn squared_deviations(x: &[f32], mean: f64) -> f64 {
        let whole = x.len() / 16 * 16;
        let mu = _mm512_set1_pd(mean);
        let (mut a, mut b) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        for at in (0..whole).step_by(16) {
            // SAFETY: `at + 16 <= x.len()`.
            let (lo, hi) = widen(unsafe { _mm512_loadu_ps(x.as_ptr().add(at)) });
            let (lo, hi) = (_mm512_sub_pd(lo, mu), _mm512_sub_pd(hi, mu));
            a = _mm512_fmadd_pd(lo, lo, a);
            b = _mm512_fmadd_pd(hi, hi, b);
        }
        let tail: f64 = x[whole..].iter().map(|&v| (v as f64 - mean).powi(2)).sum();
        _mm512_reduce_add_pd(_mm512_add_pd(a, b)) + tail
    }

    /// See [`super::masked_sums`]; the caller checks that the lengths are equal.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn masked_sums(dy: &[f32], x: &[f32], kept: Option<&[f32]>) -> (f64, f64) {
        let whole = x.len() / 16 * 16;
        let (mut s0, mut s1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let (mut sx0, mut sx1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        for at in (0..whole).step_by(16) {
            // SAFETY: `at + 16 <= x.len()`, which all three lengths equal.
            let (d, v) = unsafe { (_mm512_loadu_ps(dy.as_ptr().add(at)), _mm512_loadu_ps(x.as_ptr().add(at))) };
            let d = match kept {
                Some(k) => {
                    // SAFETY: as above.
                    let k = unsafe { _mm512_loadu_ps(k.as_ptr().add(at)) };
                    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(k, _mm512_setzero_ps()), d)
                }
                None => d,
            };
            let ((d0, d1), (v0, v1)) = (widen(d), widen(v));
            s0 = _mm512_add_pd(s0, d0);
            s1 = _mm512_add_pd(s1, d1);
            sx0 = _mm512_fmadd_pd(d0, v0, sx0);
            sx1 = _mm512_fmadd_pd(d1, v1, sx1);
        }
        let (ts, tsx) = super::masked_tail(dy, x, kept, whole);
        (_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) + ts, _mm512_reduce_add_pd(_mm512_add_pd(sx0, sx1)) + tsx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_sequential_f64_sums() {
        // Whole vectors, a partial one, and remainders alone.
        for len in [1, 15, 16, 17, 1037] {
            let x: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013 + 3.0).collect();
            let dy: Vec<f32> = (0..len).map(|i| ((i * 53 % 89) as f32 - 44.0) * 0.021).collect();
            let kept: Vec<f32> = (0..len).map(|i| (i % 3) as f32 - 1.0).collect();
            let m = len as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / m;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m;
            let portable = (lanes(&x, 0.0, false) / m, lanes(&x, mean, true) / m);
            for (what, (got_mean, got_var)) in [("dispatched", mean_var(&x)), ("portable", portable)] {
                assert!((got_mean - mean).abs() < 1e-12 && (got_var - var).abs() < 1e-12, "{what} {len}: {got_mean} {got_var}");
            }
            for mask in [None, Some(&kept[..])] {
                let live = |i: usize| mask.is_none_or(|k| k[i] > 0.0);
                let s: f64 = (0..len).filter(|&i| live(i)).map(|i| dy[i] as f64).sum();
                let sx: f64 = (0..len).filter(|&i| live(i)).map(|i| dy[i] as f64 * x[i] as f64).sum();
                for (what, (got_s, got_sx)) in [("dispatched", masked_sums(&dy, &x, mask)), ("sequential", masked_tail(&dy, &x, mask, 0))] {
                    assert!((got_s - s).abs() < 1e-9 && (got_sx - sx).abs() < 1e-9, "{what} {len}: {got_s} {s} {got_sx} {sx}");
                }
            }
        }
    }
}
