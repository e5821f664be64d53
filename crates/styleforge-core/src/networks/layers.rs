//! Layers shared by the networks: padded convolutions, instance normalisation, upsampling.
//!
//! Instance normalisation goes through a [`NormContext`], so that a caller can record the
//! per-layer statistics of one pass and replay them on another (how the tiler keeps every tile
//! normalised with the whole image's statistics).

use burn::module::{Module, Param};
use burn::tensor::module::{conv_transpose2d, conv2d, interpolate};
use burn::tensor::ops::{
    ConvOptions, ConvTransposeOptions, InterpolateMode, InterpolateOptions, PadMode,
};
use burn::tensor::{Device, Tensor, TensorData, activation};

use crate::kernels::{cpu_conv, cpu_conv_grad, cpu_norm, cpu_norm_grad};
use crate::error::Result;
use crate::weights::Weights;

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Reflection padding of `k/2` on each side (PyTorch `ReflectionPad2d`).
    Reflect,
    /// Zero padding of `k/2` on each side (PyTorch `padding=k//2`).
    Zero,
    /// TensorFlow `SAME` zero padding: output is `ceil(in/stride)`, extra padding at the end.
    TfSame,
    /// No padding.
    Valid,
}

/// A 2-D convolution with its padding rule; weights `[out, in, k, k]`.
#[derive(Module, Debug)]
pub struct Conv {
    /// Kernel `[out, in, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Bias `[out]`, if the layer has one.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride in both directions.
    pub stride: usize,
    #[module(skip)]
    /// Padding rule.
    pub padding: Padding,
}

impl Conv {
    /// Loads `{prefix}weight` (and `{prefix}bias` when `bias`), checking `[out, in, k, k]`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        shape: [usize; 4],
        bias: bool,
        stride: usize,
        padding: Padding,
        device: &Device,
    ) -> Result<Self> {
        let weight = w.param(&format!("{prefix}weight"), shape, device)?;
        let bias = if bias {
            Some(w.param(&format!("{prefix}bias"), [shape[0]], device)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// Kernel size.
    pub fn kernel(&self) -> usize {
        self.weight.dims()[2]
    }

    /// Applies padding and convolution.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.fast_path(&x, false, false).unwrap_or_else(|| self.forward_burn(x))
    }

    /// [`Conv::forward`] followed by a ReLU, fused where the CPU path allows.
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.fast_path(&x, false, true).unwrap_or_else(|| activation::relu(self.forward_burn(x)))
    }

    /// Nearest ×2 upsampling followed by [`Conv::forward`], fused where the CPU path allows.
    pub fn forward_upsampled(&self, x: Tensor<4>) -> Tensor<4> {
        self.fast_path(&x, true, false).unwrap_or_else(|| self.forward_burn(upsample_nearest2(x)))
    }

    /// The im2col-free CPU convolution ([`cpu_conv`]) on plain flex tensors, or its autodiff
    /// operation ([`cpu_conv_grad`]) on autodiff flex tensors.
    fn fast_path(&self, x: &Tensor<4>, upsample: bool, relu: bool) -> Option<Tensor<4>> {
        let k = self.kernel();
        let s = self.stride;
        let [_, _, h, w] = x.dims();
        let (h, w) = if upsample { (2 * h, 2 * w) } else { (h, w) };
        let (pad, reflect) = match self.padding {
            Padding::Reflect => ([k / 2; 4], true),
            Padding::Zero => ([k / 2; 4], false),
            Padding::Valid => ([0; 4], false),
            Padding::TfSame => {
                let (t, b) = tf_same(h, k, s);
                let (l, r) = tf_same(w, k, s);
                ([t, b, l, r], false)
            }
        };
        let bias = self.bias.as_ref().map(|b| b.val());
        let g = cpu_conv::Geometry { stride: s, pad, reflect, upsample, relu };
        let weight = self.weight.val();
        cpu_conv::conv2d(x, &weight, bias.as_ref(), g)
            .or_else(|| cpu_conv_grad::conv2d(x, &weight, bias.as_ref(), g))
    }

    /// burn's convolution (im2col), with the shifted-sum route for few outputs and large kernels.
    fn forward_burn(&self, x: Tensor<4>) -> Tensor<4> {
        let k = self.kernel();
        let s = self.stride;
        let (x, pad) = match self.padding {
            Padding::Reflect => (x.pad([(k / 2, k / 2), (k / 2, k / 2)], PadMode::Reflect), 0),
            Padding::Zero => (x, k / 2),
            Padding::Valid => (x, 0),
            Padding::TfSame => {
                let [_, _, h, wd] = x.dims();
                let (t, b) = tf_same(h, k, s);
                let (l, r) = tf_same(wd, k, s);
                if t == b && l == r && t == l {
                    (x, t)
                } else {
                    (x.pad([(t, b), (l, r)], PadMode::Constant(0.0)), 0)
                }
            }
        };
        let [co, ci, ..] = self.weight.dims();
        if s == 1 && co <= 4 && k >= 5 && ci >= 16 {
            let x = if pad > 0 { x.pad([(pad, pad), (pad, pad)], PadMode::Constant(0.0)) } else { x };
            return shift_sum_conv(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()));
        }
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([s, s], [pad, pad], [1, 1], 1),
        )
    }
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

/// TensorFlow `SAME` padding (before, after) for one dimension.
pub fn tf_same(size: usize, k: usize, s: usize) -> (usize, usize) {
    let out = size.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// A transposed convolution with TensorFlow `SAME` semantics (output `stride * in`);
/// weights in PyTorch's `ConvTranspose2d` layout `[in, out, k, k]`.
#[derive(Module, Debug)]
pub struct ConvTransposeSame {
    /// Kernel `[in, out, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Stride in both directions.
    pub stride: usize,
}

impl ConvTransposeSame {
    /// Applies the full transposed convolution and crops to `stride * in` from offset
    /// `(k - stride) / 2`, as TensorFlow's `conv2d_transpose(padding="SAME")` does.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let k = self.weight.dims()[2];
        let s = self.stride;
        let y = conv_transpose2d(
            x,
            self.weight.val(),
            None,
            ConvTransposeOptions::new([s, s], [0, 0], [0, 0], [1, 1], 1),
        );
        let off = (k.saturating_sub(s)) / 2;
        let [n, c, _, _] = y.dims();
        y.slice([0..n, 0..c, off..off + h * s, off..off + w * s])
    }
}

/// Per-channel affine parameters after normalisation (`gamma * x + beta`).
#[derive(Module, Debug)]
pub struct Affine {
    /// Scale `[C]`.
    pub gamma: Param<Tensor<1>>,
    /// Shift `[C]`.
    pub beta: Param<Tensor<1>>,
}

impl Affine {
    /// Loads scale and shift tensors of `channels` elements.
    pub fn load(
        w: &Weights,
        gamma: &str,
        beta: &str,
        channels: usize,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            gamma: w.param(gamma, [channels], device)?,
            beta: w.param(beta, [channels], device)?,
        })
    }

    /// Applies the affine map to an NCHW tensor.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.gamma.dims()[0];
        x * self.gamma.val().reshape([1, c, 1, 1]) + self.beta.val().reshape([1, c, 1, 1])
    }
}

/// Per-layer instance-norm statistics: mean and biased variance, each `[N, C, 1, 1]`.
pub type NormStats = Vec<(Tensor<4>, Tensor<4>)>;

/// Where instance normalisation takes its statistics from.
#[derive(Debug, Default)]
pub enum NormContext {
    /// From the tensor being normalised (the reference behaviour).
    #[default]
    Local,
    /// From the tensor, and keep them in order of use.
    Record(NormStats),
    /// From a recorded list, in order of use (the next index is `cursor`).
    Replay {
        /// Statistics recorded from another pass.
        stats: NormStats,
        /// Next layer's index.
        cursor: usize,
    },
}

impl NormContext {
    /// Normalises `x` per sample and channel over H×W: `(x - mean) / sqrt(var + eps)`, biased variance.
    pub fn normalize(&mut self, x: Tensor<4>, eps: f64) -> Tensor<4> {
        let (mean, var) = match self {
            NormContext::Replay { stats, cursor } => {
                let (m, v) = stats
                    .get(*cursor)
                    .cloned()
                    .expect("replayed statistics come from the same network");
                *cursor += 1;
                (m, v)
            }
            _ => {
                let (m, v) = moments(x.clone());
                if let NormContext::Record(list) = self {
                    list.push((m.clone(), v.clone()));
                }
                (m, v)
            }
        };
        (x - mean).div((var + eps).sqrt())
    }

    /// [`NormContext::normalize`], then the `affine` map and a ReLU if asked, in one pass where
    /// the CPU paths apply ([`cpu_norm`]; [`cpu_norm_grad`] on autodiff tensors with local
    /// statistics).
    pub fn normalize_affine(
        &mut self,
        x: Tensor<4>,
        affine: Option<&Affine>,
        relu: bool,
        eps: f64,
    ) -> Tensor<4> {
        let replayed = match self {
            NormContext::Replay { stats, cursor } => {
                let (m, v) = stats.get(*cursor).expect("replayed statistics come from the same network");
                match (m.clone().into_data().try_to_vec::<f32>(), v.clone().into_data().try_to_vec::<f32>()) {
                    (Ok(mean), Ok(var)) => Some(cpu_norm::PlaneStats { mean, var }),
                    _ => None,
                }
            }
            _ => None,
        };
        let replaying = matches!(self, NormContext::Replay { .. });
        let params = affine.map(|a| (a.gamma.val(), a.beta.val()));
        let fused = if replaying && replayed.is_none() {
            Err(x)
        } else {
            let params = params.as_ref().map(|(g, b)| (g, b));
            cpu_norm::instance_norm(x, replayed.as_ref(), params, relu, eps)
        };
        match fused {
            Ok((y, used)) => {
                match self {
                    NormContext::Replay { cursor, .. } => *cursor += 1,
                    NormContext::Record(list) => {
                        let [n, c, _, _] = y.dims();
                        let device = y.device();
                        let t = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [n, c, 1, 1]), &device);
                        list.push((t(used.mean), t(used.var)));
                    }
                    NormContext::Local => {}
                }
                y
            }
            Err(x) => {
                if matches!(self, NormContext::Local) {
                    let params = params.as_ref().map(|(g, b)| (g, b));
                    if let Some(y) = cpu_norm_grad::instance_norm(&x, params, relu, eps) {
                        return y;
                    }
                }
                let y = self.normalize(x, eps);
                let y = match affine {
                    Some(a) => a.forward(y),
                    None => y,
                };
                if relu { activation::relu(y) } else { y }
            }
        }
    }

    /// The recorded statistics (empty unless recording).
    pub fn into_stats(self) -> NormStats {
        match self {
            NormContext::Record(s) | NormContext::Replay { stats: s, .. } => s,
            NormContext::Local => Vec::new(),
        }
    }
}

/// Per-sample, per-channel mean and biased variance over H×W, each `[N, C, 1, 1]`.
pub fn moments(x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let mean = x.clone().mean_dim(2).mean_dim(3);
    let var = (x - mean.clone()).powi_scalar(2).mean_dim(2).mean_dim(3);
    (mean, var)
}

/// Nearest-neighbour ×2 upsampling (PyTorch `interpolate(scale_factor=2, mode="nearest")`).
pub fn upsample_nearest2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h * 2, w * 2]),
    )
}
