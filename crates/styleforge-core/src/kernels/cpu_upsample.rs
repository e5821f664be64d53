//! Bilinear ×2 upsampling (MicroAST's decoder; TensorFlow's legacy resize in CartoonGAN-light)
//! for inference on the flex CPU backend.
//!
//! PyTorch's `interpolate(scale_factor=2, mode='bilinear', align_corners=False)` samples the
//! input at `(i + 0.5) / 2 - 0.5` for output pixel `i`, clamped to `[0, n - 1]`: output `2j`
//! is `0.25·x[j-1] + 0.75·x[j]` and output `2j + 1` is `0.75·x[j] + 0.25·x[j+1]`, with the
//! first output equal to `x[0]` and the last `0.75·x[n-1] + 0.25·x[n-1]` (PyTorch keeps both
//! weights at the edge). Rows and columns alike: each task interpolates the input rows of its
//! band horizontally once, then blends pairs of those rows into the output rows, as PyTorch
//! does (`h0·(w0·x00 + w1·x01) + h1·(w0·x10 + w1·x11)`). burn's generic interpolation computes
//! each output pixel's four sources and weights separately.
//!
//! Used only on plain flex `f32` tensors (no autodiff); [`bilinear2x`] answers `None` elsewhere
//! and the dispatch runs burn's interpolation.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::cpu_conv::flex_f32;
use crate::kernels::cpu_simd::vectorized;

/// About how many output values one task writes (a band of whole row pairs, at least one).
const TASK_VALUES: usize = 32 << 10;

/// Bilinear ×2 upsampling (`align_corners = false`) of `x` `[N, C, H, W]` to `[N, C, 2H, 2W]`;
/// `None` unless `x` is a plain flex `f32` tensor.
pub fn bilinear2x(x: &Tensor<4>) -> Option<Tensor<4>> {
    let xs = flex_f32(x)?;
    let [n, c, h, w]: [usize; 4] = xs.layout().shape().dims();
    let out = upsample(xs.as_slice::<f32>()?, [n, c, h, w]);
    Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(out, [n, c, 2 * h, 2 * w]))))
}

/// The upsampling on raw NCHW data `[n, c, h, w]`.
pub(crate) fn upsample(x: &[f32], [n, c, h, w]: [usize; 4]) -> Vec<f32> {
    assert_eq!(x.len(), n * c * h * w, "bilinear2x: input length");
    let mut out = vec![0f32; 4 * x.len()];
    if out.is_empty() {
        return out;
    }
    // Input rows per task.
    let band = (TASK_VALUES / (4 * w)).clamp(1, h);
    out.par_chunks_mut(4 * h * w).zip(x.par_chunks(h * w)).for_each(|(dst, src)| {
        dst.par_chunks_mut(band * 4 * w).enumerate().for_each_init(Vec::new, |wide: &mut Vec<f32>, (b, dst)| {
            let i0 = b * band;
            let i1 = (i0 + band).min(h);
            // Horizontally interpolated input rows `i0 - 1 ..= i1` (clamped).
            let first = i0.saturating_sub(1);
            let last = i1.min(h - 1);
            wide.resize((last + 1 - first) * 2 * w, 0.0);
            vectorized(
                #[inline(always)]
                || {
                    for (r, line) in (first..=last).zip(wide.chunks_exact_mut(2 * w)) {
                        widen(line, &src[r * w..(r + 1) * w]);
                    }
                    let row = |i: usize| &wide[(i - first) * 2 * w..(i - first + 1) * 2 * w];
                    for (i, pair) in (i0..i1).zip(dst.chunks_exact_mut(4 * w)) {
                        let (even, odd) = pair.split_at_mut(2 * w);
                        let here = row(i);
                        if i == 0 {
                            even.copy_from_slice(here);
                        } else {
                            blend(even, row(i - 1), here);
                        }
                        blend(odd, row((i + 1).min(h - 1)), here);
                    }
                },
            );
        });
    });
    out
}

/// TensorFlow's legacy bilinear ×2 resize (see [`crate::kernels::resize_legacy2x`]) of `x`
/// `[N, C, H, W]` to `[N, C, 2H, 2W]`; `None` unless `x` is a plain flex `f32` tensor. Each
/// output row pair is the input row widened (`x[j]`, then the mean with `x[j+1]`) and its mean
/// with the next widened row; the last row and column repeat.
pub fn legacy2x(x: &Tensor<4>) -> Option<Tensor<4>> {
    let xs = flex_f32(x)?;
    let [n, c, h, w]: [usize; 4] = xs.layout().shape().dims();
    let src = xs.as_slice::<f32>()?;
    let mut out = vec![0f32; 4 * src.len()];
    if !out.is_empty() {
        let band = (TASK_VALUES / (4 * w)).clamp(1, h);
        out.par_chunks_mut(4 * h * w).zip(src.par_chunks(h * w)).for_each(|(dst, plane)| {
            dst.par_chunks_mut(band * 4 * w).enumerate().for_each_init(Vec::new, |next: &mut Vec<f32>, (b, dst)| {
                next.resize(2 * w, 0.0);
                vectorized(
                    #[inline(always)]
                    || {
                        for (i, pair) in (b * band..).zip(dst.chunks_exact_mut(4 * w)) {
                            let (even, odd) = pair.split_at_mut(2 * w);
                            widen_legacy(even, &plane[i * w..(i + 1) * w]);
                            let j = (i + 1).min(h - 1);
                            widen_legacy(next, &plane[j * w..(j + 1) * w]);
                            for ((o, &a), &b) in odd.iter_mut().zip(even.iter()).zip(next.iter()) {
                                *o = (a + b) * 0.5;
                            }
                        }
                    },
                );
            });
        });
    }
    Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(out, [n, c, 2 * h, 2 * w]))))
}

/// One input row `src` (`w` values) resized to `2w` the legacy TensorFlow way.
#[inline(always)]
fn widen_legacy(dst: &mut [f32], src: &[f32]) {
    let w = src.len();
    for (d, s) in dst[..2 * w - 2].chunks_exact_mut(2).zip(src.windows(2)) {
        d[0] = s[0];
        d[1] = (s[0] + s[1]) * 0.5;
    }
    dst[2 * w - 2] = src[w - 1];
    dst[2 * w - 1] = src[w - 1];
}

/// One input row `src` (`w` values) interpolated to `2w` values.
#[inline(always)]
pub(crate) fn widen(dst: &mut [f32], src: &[f32]) {
    let w = src.len();
    dst[0] = src[0];
    for (d, s) in dst[1..2 * w - 1].chunks_exact_mut(2).zip(src.windows(2)) {
        d[0] = 0.75 * s[0] + 0.25 * s[1];
        d[1] = 0.25 * s[0] + 0.75 * s[1];
    }
    dst[2 * w - 1] = 0.75 * src[w - 1] + 0.25 * src[w - 1];
}

/// `dst = 0.25·far + 0.75·near`, the output row a quarter of a pixel from `near` towards `far`.
#[inline(always)]
pub(crate) fn blend(dst: &mut [f32], far: &[f32], near: &[f32]) {
    for ((d, &f), &n) in dst.iter_mut().zip(far).zip(near) {
        *d = 0.75 * n + 0.25 * f;
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::kernels::generic;

    /// The generic route (burn's operations) is the reference for the legacy resize (it averages
    /// the rows first, so the diagonal means round differently in the last bit).
    #[test]
    fn legacy_matches_the_generic_route() {
        let device = Device::flex();
        for dims in [[1, 3, 9, 11], [2, 2, 1, 7], [1, 2, 6, 1], [1, 1, 1, 1], [1, 2, 77, 300]] {
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let got = legacy2x(&x).expect("a flex f32 tensor");
            let want = generic::resize_legacy2x(x);
            assert_eq!(got.dims(), want.dims());
            let d = (got - want).abs().max().into_scalar::<f32>();
            assert!(d <= 1e-6, "{dims:?}: {d}");
        }
    }

    /// burn's interpolation is the reference, at odd sizes, single rows and columns, one pixel,
    /// and planes of several bands.
    #[test]
    fn matches_burn_interpolation() {
        let device = Device::flex();
        for dims in [[1, 3, 9, 11], [2, 2, 1, 7], [1, 2, 6, 1], [1, 1, 1, 1], [1, 2, 2, 2], [1, 2, 77, 300]] {
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let got = bilinear2x(&x).expect("a flex f32 tensor");
            let want = generic::upsample_bilinear2x(x);
            assert_eq!(got.dims(), want.dims());
            let scale = want.clone().abs().max().into_scalar::<f32>();
            let e = (got - want).abs().max().into_scalar::<f32>() / scale;
            assert!(e < 1e-5, "{dims:?}: relative error {e:e}");
        }
    }

    #[test]
    fn declines_autodiff_tensors() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::ones([1, 2, 3, 3], &device).require_grad();
        assert!(bilinear2x(&x).is_none());
    }
}
