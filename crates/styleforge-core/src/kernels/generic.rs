//! burn's generic operations: the route of the dispatch functions in [`crate::kernels`] for
//! every tensor the CPU kernels do not take (other backends, other dtypes). Each follows the
//! PyTorch semantics its CPU kernel follows, with burn's own operations.

use burn::tensor::module::{
    avg_pool2d as burn_avg_pool2d, conv_transpose2d as burn_conv_transpose2d,
    conv2d as burn_conv2d, interpolate, max_pool2d as burn_max_pool2d,
};
use burn::tensor::ops::{
    AvgPoolOptions, ConvOptions, ConvTransposeOptions, InterpolateMode, InterpolateOptions,
    MaxPoolOptions, PadMode,
};
use burn::tensor::{DType, Tensor, activation};

use crate::kernels::{Geometry, Statistics};

/// [`crate::kernels::conv2d`] with burn's operations: the optional nearest ×2 upsampling, the
/// padding (reflection with `pad`; zeros inside burn's convolution when top equals bottom and
/// left equals right, explicitly otherwise), the convolution (im2col, or [`shift_sum_conv`] for
/// few outputs and large square kernels at stride 1) and the optional ReLU. The kernel may be
/// rectangular (`[O, C, kh, kw]`, Inception's 1×7 and 7×1 layers).
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, g: Geometry) -> Tensor<4> {
    let x = if g.upsample { upsample_nearest2(x) } else { x };
    let [top, bottom, left, right] = g.pad;
    let (x, [ph, pw]) = if g.reflect {
        (x.pad([(top, bottom), (left, right)], PadMode::Reflect), [0, 0])
    } else if top == bottom && left == right {
        (x, [top, left])
    } else {
        (x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0)), [0, 0])
    };
    let [co, ci, k, kw] = weight.dims();
    let groups = x.dims()[1] / ci;
    let s = g.stride;
    let y = if groups == 1 && s == 1 && co <= 4 && k == kw && k >= 5 && ci >= 16 {
        let x = if ph + pw > 0 { x.pad([(ph, ph), (pw, pw)], PadMode::Constant(0.0)) } else { x };
        shift_sum_conv(x, weight, bias)
    } else {
        burn_conv2d(x, weight, bias, ConvOptions::new([s, s], [ph, pw], [1, 1], groups))
    };
    if g.relu { activation::relu(y) } else { y }
}

/// [`crate::kernels::upsample_bilinear2x`] with burn's `interpolate` (bilinear, half-pixel
/// centres: `align_corners = false`).
pub fn upsample_bilinear2x(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_output_size([2 * h, 2 * w])
            .with_align_corners(false),
    )
}

/// [`crate::kernels::resize_bilinear_aligned`] with burn's `interpolate`.
pub fn resize_bilinear_aligned(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    if x.dims()[2..] == size {
        return x;
    }
    interpolate(x, InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size(size).with_align_corners(true))
}

/// [`crate::kernels::conv_transpose2d`] with burn's operation (PyTorch's `ConvTranspose2d`).
pub fn conv_transpose2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    [s, p, op]: [usize; 3],
) -> Tensor<4> {
    burn_conv_transpose2d(x, weight, bias, ConvTransposeOptions::new([s, s], [p, p], [op, op], [1, 1], 1))
}

/// A stride-1 convolution without padding, computed for few output channels and a large kernel
/// (the 9×9 and 7×7 layers that end the style and CycleGAN generators): one matrix product gives
/// every kernel tap's contribution at every input position (`[k²·out, in] × [in, H·W]`, a shape
/// the matrix kernels run at full speed), and the output is the sum of the k² shifted planes.
/// The im2col route instead copies `in·k²` values per output pixel to feed a product with only
/// `out` rows, which is memory-bound. Runs in horizontal strips so the tap planes stay within
/// [`SHIFT_SUM_BUDGET`] values.
pub fn shift_sum_conv(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [n, ci, hp, wp] = x.dims();
    let [co, _, k, _] = weight.dims();
    let (ho, wo) = (hp + 1 - k, wp + 1 - k);
    let taps = weight.permute([2, 3, 0, 1]).reshape([1, k * k * co, ci]);
    let taps = if n > 1 { taps.repeat_dim(0, n) } else { taps };
    let rows = (SHIFT_SUM_BUDGET / (n * k * k * co * wp)).saturating_sub(k - 1).clamp(1, ho);
    let mut strips = Vec::with_capacity(ho.div_ceil(rows));
    let mut r0 = 0;
    while r0 < ho {
        let r1 = (r0 + rows).min(ho);
        let sh = r1 - r0 + k - 1;
        let xs = x.clone().slice([0..n, 0..ci, r0..r0 + sh, 0..wp]).reshape([n, ci, sh * wp]);
        let z = taps.clone().matmul(xs).reshape([n, k * k, co, sh, wp]);
        let mut out: Option<Tensor<5>> = None;
        for i in 0..k {
            for j in 0..k {
                let t = i * k + j;
                let part = z.clone().slice([0..n, t..t + 1, 0..co, i..i + r1 - r0, j..j + wo]);
                out = Some(match out {
                    Some(o) => o + part,
                    None => part,
                });
            }
        }
        strips.push(out.expect("a kernel has taps").reshape([n, co, r1 - r0, wo]));
        r0 = r1;
    }
    let out = if strips.len() == 1 { strips.remove(0) } else { Tensor::cat(strips, 2) };
    match bias {
        Some(b) => out + b.reshape([1, co, 1, 1]),
        None => out,
    }
}

/// Most tap-plane values [`shift_sum_conv`] holds at once (16 Mi floats, 64 MiB).
pub const SHIFT_SUM_BUDGET: usize = 16 << 20;

/// Nearest-neighbour ×2 upsampling (PyTorch `interpolate(scale_factor=2, mode="nearest")`).
pub fn upsample_nearest2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h * 2, w * 2]),
    )
}

/// [`crate::kernels::instance_norm`] with burn's operations: `(x - mean) / sqrt(var + eps)`,
/// then `γ·x̂ + β` and the ReLU where asked. With `exact_gradients`, an autodiff `x` normalised
/// with its own statistics is normalised in `f64` and cast back.
pub fn instance_norm(
    x: Tensor<4>,
    stats: Statistics<'_>,
    super::NormLayer { affine, relu, eps }: super::NormLayer<'_>,
    exact_gradients: bool,
) -> (Tensor<4>, Option<(Tensor<4>, Tensor<4>)>) {
    let (y, kept) = match stats {
        Statistics::Given(mean, var) => (normalize(x, mean.clone(), var.clone(), eps), None),
        Statistics::Own if exact_gradients && x.is_autodiff() && x.dtype() != DType::F64 => {
            let dt = x.dtype();
            let x = x.cast(DType::F64);
            let (mean, var) = moments(x.clone());
            (normalize(x, mean, var, eps).cast(dt), None)
        }
        Statistics::Own | Statistics::OwnKept => {
            let (mean, var) = moments(x.clone());
            let keep = matches!(stats, Statistics::OwnKept);
            let kept = keep.then(|| (mean.clone(), var.clone()));
            (normalize(x, mean, var, eps), kept)
        }
    };
    let y = match affine {
        Some((gamma, beta)) => {
            let c = gamma.dims()[0];
            y * gamma.clone().reshape([1, c, 1, 1]) + beta.clone().reshape([1, c, 1, 1])
        }
        None => y,
    };
    (if relu { activation::relu(y) } else { y }, kept)
}

/// `(x - mean) / sqrt(var + eps)` with per-plane `mean` and `var` `[N, C, 1, 1]`.
fn normalize(x: Tensor<4>, mean: Tensor<4>, var: Tensor<4>, eps: f64) -> Tensor<4> {
    (x - mean).div((var + eps).sqrt())
}

/// Per-sample, per-channel mean and biased variance over H×W, each `[N, C, 1, 1]`.
pub fn moments(x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let mean = x.clone().mean_dim(2).mean_dim(3);
    let var = (x - mean.clone()).powi_scalar(2).mean_dim(2).mean_dim(3);
    (mean, var)
}

/// 2×2 max pooling at stride 2 with burn's operation; `ceil` keeps a last odd row or column as
/// a partial window (PyTorch's `ceil_mode`).
pub fn max_pool2x2(x: Tensor<4>, ceil: bool) -> Tensor<4> {
    let options = MaxPoolOptions::new([2, 2]).with_stride([2, 2]);
    burn_max_pool2d(x, if ceil { options.with_ceil_mode(true) } else { options })
}

/// [`crate::kernels::max_pool2d`] with burn's operation: `kernel`×`kernel` windows at `stride`,
/// no padding, floor mode.
pub fn max_pool2d(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    burn_max_pool2d(
        x,
        MaxPoolOptions::new([kernel, kernel]).with_stride([stride, stride]),
    )
}

/// [`crate::kernels::avg_pool2d`] with burn's operation: `kernel`×`kernel` windows at `stride`
/// over the input with `padding` zeros on every side, each sum divided by `kernel²` (padded
/// positions counted, PyTorch's default `count_include_pad=True`), floor mode.
pub fn avg_pool2d(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    let options = AvgPoolOptions::new([kernel, kernel])
        .with_stride([stride, stride])
        .with_padding([padding, padding])
        .with_count_include_pad(true);
    burn_avg_pool2d(x, options)
}

/// [`super::resize_legacy2x`] with burn's operations: each dimension doubled by interleaving the
/// values with the means of neighbours (the last neighbour repeated).
pub fn resize_legacy2x(x: Tensor<4>) -> Tensor<4> {
    let along = |x: Tensor<4>, dim: usize| {
        let dims = x.dims();
        let len = dims[dim];
        let next = if len > 1 { Tensor::cat(vec![x.clone().narrow(dim, 1, len - 1), x.clone().narrow(dim, len - 1, 1)], dim) } else { x.clone() };
        let odd = (x.clone() + next) * 0.5;
        let mut out = dims;
        out[dim] *= 2;
        Tensor::stack::<5>(vec![x, odd], dim + 1).reshape(out)
    };
    along(along(x, 2), 3)
}

/// [`super::global_norm`] with burn's operations.
pub fn global_norm(
    x: Tensor<4>,
    given: Option<(&Tensor<4>, &Tensor<4>)>,
    super::GlobalNormLayer { eps, affine: (gamma, beta), relu }: super::GlobalNormLayer<'_>,
) -> (Tensor<4>, (Tensor<4>, Tensor<4>)) {
    let [n, c, h, w] = x.dims();
    let (mean, var) = match given {
        Some((m, v)) => (m.clone(), v.clone()),
        None => {
            let flat = x.clone().reshape([n, c * h * w]);
            let mean = flat.clone().mean_dim(1);
            let var = (flat - mean.clone()).powi_scalar(2).mean_dim(1);
            (mean.reshape([n, 1, 1, 1]), var.reshape([n, 1, 1, 1]))
        }
    };
    let x_hat = match eps {
        super::GlobalEps::Sigma(e) => (x - mean.clone()) / (var.clone().sqrt() + e),
        super::GlobalEps::Variance(e) => (x - mean.clone()) / (var.clone() + e).sqrt(),
    };
    let k = gamma.dims()[0];
    let y = x_hat * gamma.clone().reshape([1, k, 1, 1]) + beta.clone().reshape([1, k, 1, 1]);
    (if relu { burn::tensor::activation::relu(y) } else { y }, (mean, var))
}

/// Interleaves the channels of `a` and `b` (`[N, C, H, W]` each) into `[N, 2C, H, W]`:
/// `out[2i] = a[i]`, `out[2i+1] = b[i]` (ShuffleNet-V2's channel shuffle of two halves).
pub fn channel_shuffle(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = a.dims();
    Tensor::stack::<5>(vec![a, b], 2).reshape([n, 2 * c, h, w])
}
