//! The kernels, and the one place that chooses between them.
//!
//! The networks compute every convolution, transposed convolution, instance norm, pool and
//! bilinear upsampling through the functions here: [`conv2d`], [`conv_transpose2d`],
//! [`instance_norm`], [`max_pool2x2`], [`max_pool2d`], [`avg_pool2d`], [`upsample_bilinear2x`]
//! and the fused
//! [`upsample_bilinear2x_conv2d`]. Each first tries the CPU kernels, which take flex `f32`
//! tensors only: plain ones (`cpu_conv`, `cpu_direct`, `cpu_group`, `cpu_norm`, `cpu_pool`,
//! `cpu_upsample`) and autodiff ones, as custom operations on burn's autodiff graph
//! (`cpu_conv_grad`, `cpu_norm_grad`, `cpu_pool`), with their memory-bound loops vectorised in
//! `cpu_simd`. A kernel answers `None` (or gives its input back) for any other
//! tensor, and the function then runs burn's generic operations ([`generic`]), which every
//! backend has. Both routes follow the same PyTorch semantics; they differ only in float
//! rounding.

pub(crate) mod cpu_autodiff;
pub mod cpu_conv;
pub mod cpu_conv_grad;
pub mod cpu_direct;
pub mod cpu_group;
pub mod cpu_norm;
pub mod cpu_global_norm;
pub mod cpu_norm_grad;
pub mod cpu_pool;
pub(crate) mod cpu_simd;
pub mod cpu_upsample;
pub mod generic;

use burn::tensor::{Tensor, TensorData};

pub use cpu_conv::Geometry;

/// PyTorch's `conv2d` of `x` `[N, C, H, W]` with `weight` `[O, C, kh, kw]` and an optional
/// `bias` `[O]`, with the stride and padding of `g` (zeros, or reflection as `ReflectionPad2d`),
/// after a nearest ×2 upsampling of `x` when `g.upsample` (`interpolate(scale_factor=2)`), and
/// followed by a ReLU when `g.relu`. The output is
/// `[N, O, (H' + top + bottom - kh)/s + 1, (W' + left + right - kw)/s + 1]`, with `H'`, `W'` the
/// (upsampled) input size. The number of groups is the one the shapes imply, `C / C_w`
/// (PyTorch's `groups`; `C_w = 1` is a depthwise convolution): channel group `i` of the input
/// feeds output group `i` only.
///
/// Routes: rectangular kernels (`kh ≠ kw`, Inception's 1×7, 7×1, 1×3 and 3×1 layers) go to
/// [`generic::conv2d`], as the CPU kernels take square ones only. Grouped convolutions go to
/// [`cpu_group::conv2d`] (computed by [`cpu_direct`]) for plain flex `f32` tensors, otherwise to
/// [`generic::conv2d`]. Dense ones: [`cpu_conv::conv2d`] when every tensor is a plain flex `f32`
/// tensor (which hands kernels larger than 1×1 with at most [`cpu_direct::dense_inputs`] inputs
/// or at most 4 outputs to [`cpu_direct`]); [`cpu_conv_grad::conv2d`] when they are flex `f32`
/// tensors and one is an autodiff tensor (without upsampling); otherwise [`generic::conv2d`].
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, g: Geometry) -> Tensor<4> {
    let [_, _, kh, kw] = weight.dims();
    if kh != kw {
        return generic::conv2d(x, weight, bias, g);
    }
    if x.dims()[1] != weight.dims()[1] {
        return cpu_group::conv2d(&x, &weight, bias.as_ref(), g)
            .unwrap_or_else(|| generic::conv2d(x, weight, bias, g));
    }
    cpu_conv::conv2d(&x, &weight, bias.as_ref(), g)
        .or_else(|| cpu_conv_grad::conv2d(&x, &weight, bias.as_ref(), g))
        .unwrap_or_else(|| generic::conv2d(x, weight, bias, g))
}

/// PyTorch's `ConvTranspose2d` of `x` `[N, C, H, W]` with `weight` `[C, O, k, k]`, an optional
/// `bias` `[O]`, stride `s`, padding `p` and output padding `op`: the output is
/// `[N, O, (H - 1)·s - 2p + k + op, ...]`.
///
/// Routes: [`cpu_conv_grad::conv_transpose2d`] when the tensors are flex `f32` ones, plain or
/// autodiff, and `op ≤ p`; otherwise [`generic::conv_transpose2d`].
pub fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    [s, p, op]: [usize; 3],
) -> Tensor<4> {
    cpu_conv_grad::conv_transpose2d(&x, &weight, bias.as_ref(), [s, p, op])
        .unwrap_or_else(|| generic::conv_transpose2d(x, weight, bias, [s, p, op]))
}

/// Where [`instance_norm`] takes each plane's mean and variance from.
#[derive(Debug, Clone, Copy)]
pub enum Statistics<'a> {
    /// The input's own.
    Own,
    /// The input's own, handed back to the caller (to normalise another tensor with them).
    OwnKept,
    /// Given per-sample, per-channel mean and biased variance, `[N, C, 1, 1]` each.
    Given(&'a Tensor<4>, &'a Tensor<4>),
}

/// An instance normalisation layer: its optional per-channel affine map `(γ, β)` (`[C]` each),
/// whether a ReLU follows, and the offset added to the variance.
#[derive(Debug, Clone, Copy)]
pub struct NormLayer<'a> {
    /// `(γ, β)`, or none.
    pub affine: Option<(&'a Tensor<1>, &'a Tensor<1>)>,
    /// A ReLU after the affine map.
    pub relu: bool,
    /// Added to the variance (PyTorch's default 1e-5).
    pub eps: f64,
}

/// Instance normalisation of `x` `[N, C, H, W]` as PyTorch's `InstanceNorm2d` computes it: per
/// sample and channel over H×W, `(x - mean) / sqrt(var + eps)` with the biased variance, then the
/// per-channel affine map `γ·x̂ + β` and a ReLU when `layer` asks for them.
/// Returns the output and, for [`Statistics::OwnKept`], the statistics used (`[N, C, 1, 1]`).
///
/// Routes:
/// - [`cpu_norm::instance_norm`], one pass with `f64` statistics, when `x` is a plain flex `f32`
///   tensor (and given statistics are `f32` values);
/// - [`cpu_norm_grad::instance_norm`], its autodiff operation with `f64` statistics and backward
///   sums, when `x` is an autodiff flex `f32` tensor normalised with [`Statistics::Own`];
/// - otherwise [`generic::instance_norm`]. There, with `exact_gradients`, an autodiff `x` with
///   [`Statistics::Own`] is normalised in `f64`: the backward pass of a normalisation subtracts
///   per-channel sums of the incoming gradient, and `f32` sums leave a residual per-channel mean
///   that the next convolution's kernel gradient multiplies by its input's mean, a relative error
///   of about 1e-2 after a few layers. PyTorch accumulates these sums in double on the CPU; this
///   does the same. Inference stays in `f32` (its error is ~1e-6).
pub fn instance_norm(
    x: Tensor<4>,
    stats: Statistics<'_>,
    layer: NormLayer<'_>,
    exact_gradients: bool,
) -> (Tensor<4>, Option<(Tensor<4>, Tensor<4>)>) {
    let NormLayer { affine, relu, eps } = layer;
    let planes = match stats {
        Statistics::Given(mean, var) => {
            match (mean.clone().into_data().try_to_vec::<f32>(), var.clone().into_data().try_to_vec::<f32>()) {
                (Ok(mean), Ok(var)) => Some(Some(cpu_norm::PlaneStats { mean, var })),
                _ => None,
            }
        }
        Statistics::Own | Statistics::OwnKept => Some(None),
    };
    let fused = match planes {
        Some(planes) => cpu_norm::instance_norm(x, planes.as_ref(), affine, relu, eps),
        None => Err(x),
    };
    let x = match fused {
        Ok((y, used)) => {
            let kept = matches!(stats, Statistics::OwnKept).then(|| {
                let [n, c, _, _] = y.dims();
                let device = y.device();
                let t = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [n, c, 1, 1]), &device);
                (t(used.mean), t(used.var))
            });
            return (y, kept);
        }
        Err(x) => x,
    };
    if matches!(stats, Statistics::Own)
        && let Some(y) = cpu_norm_grad::instance_norm(&x, affine, relu, eps)
    {
        return (y, None);
    }
    generic::instance_norm(x, stats, layer, exact_gradients)
}

/// PyTorch's `MaxPool2d(2, 2)` of `x` `[N, C, H, W]`: the largest value of each 2×2 window at
/// stride 2 (a NaN wins); with `ceil`, a last odd row or column forms a partial window
/// (`ceil_mode=True`), otherwise it is dropped.
///
/// Routes: [`cpu_pool::max_pool2x2`] when `x` is a flex `f32` tensor, plain or autodiff;
/// otherwise [`generic::max_pool2x2`].
pub fn max_pool2x2(x: Tensor<4>, ceil: bool) -> Tensor<4> {
    cpu_pool::max_pool2x2(&x, ceil).unwrap_or_else(|| generic::max_pool2x2(x, ceil))
}

/// PyTorch's `max_pool2d(x, kernel, stride)` of `x` `[N, C, H, W]`: the largest value of each
/// `kernel`×`kernel` window at `stride`, no padding, floor mode (a last partial window is
/// dropped); the output is `[N, C, (H - kernel)/stride + 1, (W - kernel)/stride + 1]`.
/// Inception's 3×3 pools at stride 2.
///
/// Routes: [`generic::max_pool2d`] (burn's operation) for every tensor.
pub fn max_pool2d(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    generic::max_pool2d(x, kernel, stride)
}

/// PyTorch's `avg_pool2d(x, kernel, stride, padding)` of `x` `[N, C, H, W]` with its default
/// `count_include_pad=True`: the sum of each `kernel`×`kernel` window at `stride` over the input
/// with `padding` zeros on every side, divided by `kernel²` even where the window covers padding;
/// floor mode. The output is `[N, C, (H + 2·padding - kernel)/stride + 1, ...]`. Inception's 3×3
/// pools at stride 1 with padding 1.
///
/// Routes: [`generic::avg_pool2d`] (burn's operation) for every tensor.
pub fn avg_pool2d(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    generic::avg_pool2d(x, kernel, stride, padding)
}

/// PyTorch's bilinear ×2 upsampling with `align_corners = False` (`nn.Upsample(scale_factor=2,
/// mode='bilinear')`) of `x` `[N, C, H, W]` to `[N, C, 2H, 2W]`: output pixel `i` samples the input
/// at `(i + 0.5) / 2 - 0.5`, clamped to the edge.
///
/// Routes: [`cpu_upsample::bilinear2x`] for a plain flex `f32` tensor; otherwise
/// [`generic::upsample_bilinear2x`].
pub fn upsample_bilinear2x(x: Tensor<4>) -> Tensor<4> {
    cpu_upsample::bilinear2x(&x).unwrap_or_else(|| generic::upsample_bilinear2x(x))
}

/// TensorFlow's legacy bilinear ×2 resize (`tf.image.resize_bilinear` / `UpSampling2D(
/// interpolation='bilinear')` with `align_corners = False` and no half-pixel centres) of `x`
/// `[N, C, H, W]` to `[N, C, 2H, 2W]`: output `2j` is `x[j]`, output `2j + 1` is
/// `(x[j] + x[j+1]) / 2`, and the last one repeats `x[n-1]`; rows, then columns.
///
/// Routes: [`cpu_upsample::legacy2x`] for plain flex `f32` tensors, otherwise
/// [`generic::resize_legacy2x`].
pub fn resize_legacy2x(x: Tensor<4>) -> Tensor<4> {
    cpu_upsample::legacy2x(&x).unwrap_or_else(|| generic::resize_legacy2x(x))
}

/// Where a whole-sample normalisation adds its offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GlobalEps {
    /// To the standard deviation: `(x - μ) / (σ + eps)` (keras-contrib's
    /// `InstanceNormalization(axis=None)`).
    Sigma(f64),
    /// To the variance: `(x - μ) / sqrt(σ² + eps)` (PyTorch's `GroupNorm(1, C)`).
    Variance(f64),
}

/// A whole-sample normalisation layer: where its offset goes, its affine map `(γ, β)` (each
/// `[1]`, scalars, or `[C]`, per channel) and whether a ReLU follows.
#[derive(Debug, Clone, Copy)]
pub struct GlobalNormLayer<'a> {
    /// The offset and where it is added.
    pub eps: GlobalEps,
    /// `(γ, β)`.
    pub affine: (&'a Tensor<1>, &'a Tensor<1>),
    /// A ReLU after the affine map.
    pub relu: bool,
}

/// Whole-sample normalisation of `x` `[N, C, H, W]`: per sample, the mean μ and the biased
/// variance σ² over C·H·W (or the `given` ones, `[N, 1, 1, 1]` each), the offset of `layer.eps`,
/// then the affine map `γ·x̂ + β` and a ReLU when `layer.relu`. Returns the output and the statistics used (`[N, 1, 1, 1]` each).
///
/// Routes: [`cpu_global_norm::global_norm`] (statistics in `f64`, one output pass) for plain flex
/// `f32` tensors; otherwise [`generic::global_norm`].
pub fn global_norm(x: Tensor<4>, given: Option<(&Tensor<4>, &Tensor<4>)>, layer: GlobalNormLayer<'_>) -> (Tensor<4>, (Tensor<4>, Tensor<4>)) {
    match cpu_global_norm::global_norm(x, given, layer) {
        Ok(done) => done,
        Err(x) => generic::global_norm(x, given, layer),
    }
}

/// [`global_norm`] fused with ShuffleNet-V2's channel shuffle, for `left` and `x` of one shape
/// `[N, C, H, W]`: the output `[N, 2C, H, W]` holds `left[:, i]` at channel `2i` and the
/// normalised `x[:, i]` at `2i + 1` (`channel_shuffle(left, norm(x))`). With `both`, `left` is
/// normalised too, with statistics over both tensors together and the affine map of their
/// concatenation (channels `0..C` for `left`, `C..2C` for `x`): `channel_shuffle` of the halves
/// of `norm(cat(left, x))`. Returns the output and the statistics used (`[N, 1, 1, 1]` each).
///
/// Routes: [`cpu_global_norm::global_norm_shuffled`] (one output pass, no shuffle copy) for plain
/// flex `f32` tensors; otherwise [`generic::global_norm`] and [`generic::channel_shuffle`].
#[allow(clippy::type_complexity)]
pub fn global_norm_shuffled(
    left: Tensor<4>,
    x: Tensor<4>,
    both: bool,
    given: Option<(&Tensor<4>, &Tensor<4>)>,
    layer: GlobalNormLayer<'_>,
) -> (Tensor<4>, (Tensor<4>, Tensor<4>)) {
    match cpu_global_norm::global_norm_shuffled(left, x, both, given, layer) {
        Ok(done) => done,
        Err((left, x)) if both => {
            let c = x.dims()[1];
            let (y, used) = generic::global_norm(Tensor::cat(vec![left, x], 1), given, layer);
            (generic::channel_shuffle(y.clone().narrow(1, 0, c), y.narrow(1, c, c)), used)
        }
        Err((left, x)) => {
            let (y, used) = generic::global_norm(x, given, layer);
            (generic::channel_shuffle(left, y), used)
        }
    }
}

/// PyTorch's bilinear resize with `align_corners = True` of `x` `[N, C, H, W]` to `size`
/// (`F.interpolate(x, size, mode='bilinear', align_corners=True)`): output pixel `i` samples the
/// input at `i·(H-1)/(H'-1)`. Runs burn's interpolation ([`generic::resize_bilinear_aligned`]).
pub fn resize_bilinear_aligned(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    generic::resize_bilinear_aligned(x, size)
}

/// [`conv2d`] of [`upsample_bilinear2x`]`(x)`: `g` is the convolution's geometry on the
/// upsampled image `[N, C, 2H, 2W]` (without nearest upsampling).
///
/// Routes: [`cpu_direct`], which blends the upsampled rows as each band of the convolution
/// needs them (no upsampled tensor), for plain flex `f32` tensors with at most
/// [`cpu_direct::MAX_INPUTS`] input channels per group; otherwise the two functions.
pub fn upsample_bilinear2x_conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, g: Geometry) -> Tensor<4> {
    assert!(!g.upsample, "upsample_bilinear2x_conv2d: a nearest upsampling after the bilinear one");
    cpu_direct::conv2d(&x, cpu_direct::Source::Bilinear2x, &weight, bias.as_ref(), g)
        .unwrap_or_else(|| conv2d(upsample_bilinear2x(x), weight, bias, g))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;

    fn max_err(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// The CPU kernels and burn's route agree for every padding, upsampling and ReLU the layers
    /// use, plain and autodiff, including the shift-sum route (few outputs, large kernel).
    #[test]
    fn both_routes_compute_the_same_convolution() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let cases = [
            // (out, in, k, stride, pad, reflect, upsample, relu)
            (6, 3, 3, 1, [1; 4], true, false, true),
            (6, 4, 3, 2, [1; 4], false, false, false),
            (5, 4, 4, 2, [1; 4], false, false, true),
            (3, 4, 4, 1, [0; 4], false, false, false),
            (6, 4, 3, 2, [0, 1, 0, 1], false, false, false),
            (4, 5, 3, 1, [1; 4], true, true, false),
            (3, 16, 5, 1, [2; 4], false, false, false),
            (3, 16, 5, 1, [2; 4], true, false, false),
        ];
        for (co, ci, k, stride, pad, reflect, upsample, relu) in cases {
            let g = Geometry { stride, pad, reflect, upsample, relu };
            let x = Tensor::<4>::random([2, ci, 9, 11], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([co, ci, k, k], Distribution::Normal(0.0, 0.3), &device);
            let b = Tensor::<1>::random([co], Distribution::Normal(0.0, 0.3), &device);
            let want = generic::conv2d(x.clone(), w.clone(), Some(b.clone()), g);
            let got = conv2d(x.clone(), w.clone(), Some(b.clone()), g);
            assert!(max_err(got, want.clone()) < 1e-4, "plain {g:?}");
            let xa = Tensor::<4>::from_data(x.into_data(), &ad).require_grad();
            let got = conv2d(xa, w, Some(b), g).without_autodiff();
            assert!(max_err(got, want) < 1e-4, "autodiff {g:?}");
        }
    }

    /// The fused bilinear upsampling and convolution equals the two generic operations, for
    /// MicroAST's grouped decoder layers, dense layers, stride 2, zero padding, odd sizes and a
    /// one-pixel input; an autodiff input takes the unfused route.
    #[test]
    fn fused_bilinear_upsampling_and_convolution() {
        let device = Device::flex();
        let cases = [
            // (n, c, h, w, [o, c/groups, k], stride, reflect, relu)
            (1, 64, 9, 11, [32, 2, 3], 1, true, true),
            (1, 32, 11, 9, [16, 2, 3], 1, true, true),
            (2, 6, 5, 7, [4, 6, 3], 1, true, false),
            (1, 8, 7, 6, [8, 1, 3], 2, true, false),
            (1, 4, 6, 5, [6, 4, 5], 1, false, true),
            (1, 4, 1, 1, [4, 2, 3], 1, true, false),
            (1, 3, 40, 70, [3, 3, 9], 1, true, false),
        ];
        for (n, c, h, w, [o, cg, k], stride, reflect, relu) in cases {
            let g = Geometry { stride, pad: [k / 2; 4], reflect, upsample: false, relu };
            let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
            let wt = Tensor::<4>::random([o, cg, k, k], Distribution::Normal(0.0, 0.3), &device);
            let b = Tensor::<1>::random([o], Distribution::Normal(0.0, 0.3), &device);
            let want = generic::conv2d(generic::upsample_bilinear2x(x.clone()), wt.clone(), Some(b.clone()), g);
            let got = upsample_bilinear2x_conv2d(x.clone(), wt.clone(), Some(b.clone()), g);
            let scale = want.clone().abs().max().into_scalar::<f32>();
            let e = max_err(got, want.clone()) / scale;
            assert!(e < 1e-5, "{n}×{c}×{h}×{w} with [{o}, {cg}, {k}, {k}] {g:?}: relative error {e:e}");
            let xa = Tensor::<4>::from_data(x.into_data(), &device.clone().autodiff()).require_grad();
            let got = upsample_bilinear2x_conv2d(xa, wt, Some(b), g).without_autodiff();
            assert!(max_err(got, want) / scale < 1e-5, "autodiff {g:?}");
        }
    }

    #[test]
    fn both_routes_compute_the_same_transposed_convolution_norm_and_pool() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 4, 7, 6], Distribution::Normal(1.0, 2.0), &device);
        let w = Tensor::<4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 0.3), &device);
        let b = Tensor::<1>::random([3], Distribution::Normal(0.0, 0.3), &device);
        for geometry in [[2, 1, 1], [1, 0, 0], [2, 1, 0]] {
            let want = generic::conv_transpose2d(x.clone(), w.clone(), Some(b.clone()), geometry);
            let got = conv_transpose2d(x.clone(), w.clone(), Some(b.clone()), geometry);
            assert!(max_err(got, want) < 1e-4, "transposed {geometry:?}");
        }
        let gamma = Tensor::<1>::random([4], Distribution::Normal(1.0, 0.5), &device);
        let beta = Tensor::<1>::random([4], Distribution::Normal(0.0, 0.5), &device);
        let layer = NormLayer { affine: Some((&gamma, &beta)), relu: true, eps: 1e-5 };
        let (want, want_stats) = generic::instance_norm(x.clone(), Statistics::OwnKept, layer, false);
        let (got, got_stats) = instance_norm(x.clone(), Statistics::OwnKept, layer, false);
        assert!(max_err(got, want) < 1e-4, "instance norm");
        let ((m0, v0), (m1, v1)) = (want_stats.unwrap(), got_stats.unwrap());
        assert!(max_err(m0.clone(), m1) < 1e-4 && max_err(v0.clone(), v1) < 1e-4, "statistics");
        let part = x.clone().slice([0..2, 0..4, 0..4, 0..4]);
        let plain = NormLayer { affine: None, relu: false, eps: 1e-5 };
        let want = generic::instance_norm(part.clone(), Statistics::Given(&m0, &v0), plain, false).0;
        let got = instance_norm(part, Statistics::Given(&m0, &v0), plain, false).0;
        assert!(max_err(got, want) < 1e-4, "given statistics");
        for ceil in [false, true] {
            assert_eq!(max_err(max_pool2x2(x.clone(), ceil), generic::max_pool2x2(x.clone(), ceil)), 0.0, "pool ceil {ceil}");
        }
    }

    fn host(t: Tensor<4>) -> (Vec<f32>, [usize; 4]) {
        let dims = t.dims();
        (t.into_data().try_to_vec::<f32>().unwrap(), dims)
    }

    /// A convolution computed term by term in `f64` from its definition (zero padding, no
    /// upsampling), then the optional ReLU.
    fn direct_conv(
        x: &Tensor<4>,
        w: &Tensor<4>,
        b: &Tensor<1>,
        g: Geometry,
    ) -> (Vec<f32>, [usize; 4]) {
        let (xv, [n, ci, h, wd]) = host(x.clone());
        let (wv, [co, _, kh, kw]) = host(w.clone());
        let bv = b.clone().into_data().try_to_vec::<f32>().unwrap();
        let [top, bottom, left, right] = g.pad;
        let s = g.stride;
        let (ho, wo) = (
            (h + top + bottom - kh) / s + 1,
            (wd + left + right - kw) / s + 1,
        );
        let mut out = vec![0f32; n * co * ho * wo];
        for i in 0..n {
            for o in 0..co {
                for y in 0..ho {
                    for xo in 0..wo {
                        let mut acc = bv[o] as f64;
                        for c in 0..ci {
                            for dy in 0..kh {
                                for dx in 0..kw {
                                    let (r, col) = (
                                        (y * s + dy) as isize - top as isize,
                                        (xo * s + dx) as isize - left as isize,
                                    );
                                    if r < 0 || col < 0 || r >= h as isize || col >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((i * ci + c) * h + r as usize) * wd + col as usize;
                                    acc += xv[xi] as f64
                                        * wv[((o * ci + c) * kh + dy) * kw + dx] as f64;
                                }
                            }
                        }
                        out[((i * co + o) * ho + y) * wo + xo] = if g.relu {
                            acc.max(0.0) as f32
                        } else {
                            acc as f32
                        };
                    }
                }
            }
        }
        (out, [n, co, ho, wo])
    }

    /// Rectangular kernels (Inception's 1×7, 7×1, 1×3, 3×1 with their one-axis paddings, and
    /// others with stride 2 and uneven padding) equal the convolution computed from its
    /// definition, plain and autodiff; square kernels with padding that differs between the axes
    /// too (burn's route pads them inside the convolution).
    #[test]
    fn rectangular_kernels_and_axis_paddings() {
        let device = Device::flex();
        let cases = [
            // (out, in, [kh, kw], stride, [top, bottom, left, right], relu)
            (6, 5, [1, 7], 1, [0, 0, 3, 3], true),
            (6, 5, [7, 1], 1, [3, 3, 0, 0], false),
            (4, 3, [1, 3], 1, [0, 0, 1, 1], true),
            (4, 3, [3, 1], 1, [1, 1, 0, 0], false),
            (3, 4, [2, 3], 2, [0, 1, 2, 0], false),
            (5, 16, [1, 5], 1, [0, 0, 2, 2], false),
            (3, 4, [3, 3], 1, [0, 0, 2, 2], true),
            (3, 4, [3, 3], 2, [2, 2, 1, 1], false),
        ];
        for (co, ci, [kh, kw], stride, pad, relu) in cases {
            let g = Geometry {
                stride,
                pad,
                reflect: false,
                upsample: false,
                relu,
            };
            let x = Tensor::<4>::random([2, ci, 9, 11], Distribution::Normal(0.0, 1.0), &device);
            let w = Tensor::<4>::random([co, ci, kh, kw], Distribution::Normal(0.0, 0.3), &device);
            let b = Tensor::<1>::random([co], Distribution::Normal(0.0, 0.3), &device);
            let (want, dims) = direct_conv(&x, &w, &b, g);
            let check = |got: Tensor<4>, what: &str| {
                let (got, got_dims) = host(got);
                assert_eq!(got_dims, dims, "{what} {kh}×{kw} {g:?}");
                let e = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(e < 1e-4, "{what} {kh}×{kw} {g:?}: error {e:e}");
            };
            check(conv2d(x.clone(), w.clone(), Some(b.clone()), g), "plain");
            let xa =
                Tensor::<4>::from_data(x.into_data(), &device.clone().autodiff()).require_grad();
            check(conv2d(xa, w, Some(b), g).without_autodiff(), "autodiff");
        }
    }

    /// Inception's pools equal their definitions: the 3×3 max pool at stride 2 (floor mode, odd
    /// and even sizes) and the 3×3 average pool at stride 1 with padding 1, which divides every
    /// window by 9, padding included (`count_include_pad=True`).
    #[test]
    fn max_and_average_pools() {
        let device = Device::flex();
        for [h, w] in [[9, 11], [8, 8], [3, 4]] {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
            let (xv, _) = host(x.clone());
            let at = |p: usize, r: isize, c: isize| {
                if r < 0 || c < 0 || r >= h as isize || c >= w as isize {
                    None
                } else {
                    Some(xv[(p * h + r as usize) * w + c as usize])
                }
            };
            let (got, dims) = host(max_pool2d(x.clone(), 3, 2));
            let (ho, wo) = ((h - 3) / 2 + 1, (w - 3) / 2 + 1);
            assert_eq!(dims, [2, 3, ho, wo]);
            for p in 0..6 {
                for y in 0..ho {
                    for xo in 0..wo {
                        let mut m = f32::NEG_INFINITY;
                        for dy in 0..3 {
                            for dx in 0..3 {
                                m = m.max(
                                    at(p, (2 * y + dy) as isize, (2 * xo + dx) as isize).unwrap(),
                                );
                            }
                        }
                        assert_eq!(
                            got[(p * ho + y) * wo + xo],
                            m,
                            "max {h}×{w} at {p}, {y}, {xo}"
                        );
                    }
                }
            }
            let (got, dims) = host(avg_pool2d(x, 3, 1, 1));
            assert_eq!(dims, [2, 3, h, w]);
            for p in 0..6 {
                for y in 0..h {
                    for xo in 0..w {
                        let mut sum = 0f64;
                        for dy in -1..=1 {
                            for dx in -1..=1 {
                                sum +=
                                    at(p, y as isize + dy, xo as isize + dx).unwrap_or(0.0) as f64;
                            }
                        }
                        let (g, want) = (got[(p * h + y) * w + xo], (sum / 9.0) as f32);
                        assert!(
                            (g - want).abs() < 1e-6,
                            "average {h}×{w} at {p}, {y}, {xo}: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
