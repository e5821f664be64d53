//! Grouped and depthwise convolutions for inference on the flex CPU backend: MicroAST's encoder
//! (`[32, 1, 3, 3]` on 16 channels and `[64, 1, 3, 3]` on 32, stride 2), modulator
//! (`[64, 1, 3, 3]` on 64) and decoder (`[32, 2, 3, 3]` on 64 channels, `[16, 2, 3, 3]` on 32).
//!
//! With one or two input channels per group a convolution is a few taps per output pixel, and
//! burn's grouped route (im2col and a thin product per group) spends its time copying `k²`
//! values per pixel. [`conv2d`] runs them through [`crate::kernels::cpu_direct`] instead, one
//! task per band of output rows of a sample and group, every output channel of the group
//! computed from one padded copy of the group's input rows.
//!
//! Used only on plain flex `f32` tensors (no autodiff) with at most [`cpu_direct::MAX_INPUTS`] input
//! channels per group; [`conv2d`] answers `None` elsewhere and the dispatch runs burn's grouped
//! convolution.

use burn::tensor::Tensor;

use crate::kernels::Geometry;
use crate::kernels::cpu_direct::{self, Source};

/// A grouped convolution of `x` `[N, C, H, W]` with `weight` `[O, C/groups, k, k]` (`groups` =
/// `C / C_w`; output group `i` of `O / groups` channels reads input group `i`) and an optional
/// bias `[O]`, with the geometry `g` (as [`crate::kernels::conv2d`]). `None` unless the tensors
/// are plain flex `f32` tensors with a square kernel, at most [`cpu_direct::MAX_INPUTS`] channels per
/// group and shapes that fit (groups dividing `O`, a reflection narrower than the input, a
/// padded input at least the kernel's size).
pub fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, g: Geometry) -> Option<Tensor<4>> {
    cpu_direct::conv2d(x, Source::Input, weight, bias, g)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::kernels::generic;

    fn rel_err(got: Tensor<4>, want: Tensor<4>) -> f32 {
        assert_eq!(got.dims(), want.dims());
        let scale = want.clone().abs().max().into_scalar::<f32>().max(1e-6);
        (got - want).abs().max().into_scalar::<f32>() / scale
    }

    /// burn's grouped convolution is the reference: MicroAST's layers, odd sizes, stride 2 with
    /// odd sizes, one-pixel planes where zero padding allows them, asymmetric padding,
    /// upsampling, a batch of two, no bias, wider groups.
    #[test]
    fn matches_burn_grouped_convolution() {
        let device = Device::flex();
        let geometry = |stride, pad, reflect, upsample, relu| Geometry { stride, pad, reflect, upsample, relu };
        let cases = [
            // (n, c, h, w, [o, c/groups, k], geometry, bias)
            (1, 16, 9, 11, [32, 1, 3], geometry(2, [1; 4], true, false, true), true),
            (1, 32, 11, 9, [64, 1, 3], geometry(2, [1; 4], true, false, true), true),
            (1, 64, 9, 11, [64, 1, 3], geometry(1, [1; 4], true, false, false), true),
            (1, 64, 9, 11, [32, 2, 3], geometry(1, [1; 4], true, false, true), true),
            (2, 32, 10, 7, [16, 2, 3], geometry(1, [1; 4], true, false, true), true),
            (1, 8, 2, 2, [8, 1, 3], geometry(1, [1; 4], true, false, false), true),
            (1, 8, 2, 3, [16, 1, 3], geometry(2, [1; 4], true, false, false), true),
            (1, 4, 1, 1, [4, 1, 3], geometry(1, [1; 4], false, false, true), true),
            (1, 6, 1, 1, [3, 2, 3], geometry(2, [1; 4], false, false, false), false),
            (1, 6, 8, 13, [6, 3, 3], geometry(2, [0, 1, 1, 2], false, false, true), true),
            (2, 4, 5, 6, [8, 2, 5], geometry(1, [2; 4], true, false, false), false),
            (1, 6, 4, 5, [12, 2, 3], geometry(1, [1; 4], true, true, true), true),
            (1, 4, 7, 5, [4, 1, 3], geometry(2, [1; 4], false, true, false), true),
            (1, 8, 13, 300, [8, 1, 3], geometry(1, [1; 4], true, false, true), true),
        ];
        for (n, c, h, w, [o, cg, k], g, with_bias) in cases {
            let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
            let wt = Tensor::<4>::random([o, cg, k, k], Distribution::Normal(0.0, 0.3), &device);
            let b = with_bias.then(|| Tensor::<1>::random([o], Distribution::Normal(0.0, 0.3), &device));
            let got = conv2d(&x, &wt, b.as_ref(), g).expect("a flex f32 tensor");
            let want = generic::conv2d(x, wt, b, g);
            let e = rel_err(got, want);
            assert!(e < 1e-5, "{n}×{c}×{h}×{w} with [{o}, {cg}, {k}, {k}] {g:?}: relative error {e:e}");
        }
    }

    #[test]
    fn declines_autodiff_tensors_and_wide_groups() {
        let device = Device::flex();
        let wide = cpu_direct::MAX_INPUTS + 1;
        let x = Tensor::<4>::ones([1, 2 * wide, 3, 3], &device);
        let w = Tensor::<4>::ones([2, wide, 3, 3], &device);
        assert!(conv2d(&x, &w, None, Geometry::same(1, false)).is_none());
        let ad = device.autodiff();
        let x = Tensor::<4>::ones([1, 4, 5, 5], &ad).require_grad();
        let w = Tensor::<4>::ones([4, 1, 3, 3], &ad);
        assert!(conv2d(&x, &w, None, Geometry::same(1, false)).is_none());
    }
}
