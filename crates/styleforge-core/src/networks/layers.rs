//! Layers shared by the networks: padded convolutions, transposed convolutions, the
//! convolution + instance-norm block, instance normalisation and the parameter walk that names
//! every parameter as the reference's state dict does. Their arithmetic runs through the dispatch
//! functions of [`crate::kernels`].
//!
//! Instance normalisation goes through a [`NormContext`], so that a caller can record the
//! per-layer statistics of one pass and replay them on another (how the tiler keeps every tile
//! normalised with the whole image's statistics).

use burn::module::{Module, Param};
use burn::tensor::{Device, Gradients, Tensor};

use crate::error::{Error, Result};
use crate::kernels::{self, Geometry, NormLayer, Statistics, generic};
use crate::onnx::graph::{ConvSpec, Graph, Interpolation, node_name};
use crate::weights::{HostTensor, Weights};

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Reflection padding of `k/2` on each side (PyTorch `ReflectionPad2d`).
    Reflect,
    /// Zero padding of `k/2` on each side (PyTorch `padding=k//2`).
    Zero,
    /// Zero padding of the given width on each side (PyTorch `padding=p`).
    Explicit(usize),
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
        let (weight, bias) = load_kernel(w, prefix, shape, bias.then_some(shape[0]), device)?;
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
        self.apply(x, false, false)
    }

    /// [`Conv::forward`] followed by a ReLU, fused where the CPU kernels run.
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.apply(x, false, true)
    }

    /// Nearest ×2 upsampling followed by [`Conv::forward`], fused where the CPU kernels run.
    pub fn forward_upsampled(&self, x: Tensor<4>) -> Tensor<4> {
        self.apply(x, true, false)
    }

    /// Bilinear ×2 upsampling (`align_corners = False`) followed by [`Conv::forward_relu`], fused
    /// where the CPU kernels run ([`kernels::upsample_bilinear2x_conv2d`]).
    pub fn forward_bilinear_relu(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let g = self.geometry([2 * h, 2 * w], false, true);
        kernels::upsample_bilinear2x_conv2d(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()), g)
    }

    /// The convolution's geometry for an input of `h × w` (before the upsampling, if any).
    pub fn geometry(&self, [h, w]: [usize; 2], upsample: bool, relu: bool) -> Geometry {
        let (k, s) = (self.kernel(), self.stride);
        let (h, w) = if upsample { (2 * h, 2 * w) } else { (h, w) };
        let (pad, reflect) = match self.padding {
            Padding::Reflect => ([k / 2; 4], true),
            Padding::Zero => ([k / 2; 4], false),
            Padding::Explicit(p) => ([p; 4], false),
            Padding::Valid => ([0; 4], false),
            Padding::TfSame => {
                let (t, b) = tf_same(h, k, s);
                let (l, r) = tf_same(w, k, s);
                ([t, b, l, r], false)
            }
        };
        Geometry { stride: s, pad, reflect, upsample, relu }
    }

    fn apply(&self, x: Tensor<4>, upsample: bool, relu: bool) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let g = self.geometry([h, w], upsample, relu);
        kernels::conv2d(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()), g)
    }

    /// Visits `{prefix}weight` (and `{prefix}bias`).
    pub fn walk(&self, prefix: &str, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        walk_kernel(prefix, &self.weight, self.bias.as_ref(), f);
    }

    /// ONNX export of [`Conv::forward`] on the value `x` (`[N, in, H, W]`, `in = groups ·
    /// weight.dims[1]`): the padding ([`Graph::conv`]) and a `Conv` node called `{prefix}`
    /// without its trailing separator, with the initializers `{prefix}weight` and `{prefix}bias`.
    /// Returns the output value.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str, groups: usize) -> Result<String> {
        let names = [format!("{prefix}weight"), format!("{prefix}bias")];
        self.export_onnx_named(g, node_name(prefix), [&names[0], &names[1]], x, groups)
    }

    /// [`Conv::export_onnx`] with the node called `name` and the initializers `weight`
    /// (`[out, in/groups, k, k]`) and `bias` (when the layer has one).
    pub fn export_onnx_named(&self, g: &mut Graph, name: &str, [weight, bias]: [&str; 2], x: &str, groups: usize) -> Result<String> {
        let weight = g.param(weight, ParamRef::R4(&self.weight))?;
        let bias = match &self.bias {
            Some(b) => Some(g.param(bias, ParamRef::R1(b))?),
            None => None,
        };
        let spec = ConvSpec { kernel: self.kernel(), stride: self.stride, padding: self.padding, groups };
        Ok(g.conv(name, x, &weight, bias.as_deref(), spec))
    }

    /// ONNX export of [`Conv::forward_relu`]: [`Conv::export_onnx`] and a `Relu` node `{node}.relu`.
    pub fn export_onnx_relu(&self, g: &mut Graph, prefix: &str, x: &str, groups: usize) -> Result<String> {
        let y = self.export_onnx(g, prefix, x, groups)?;
        Ok(g.relu(&format!("{}.relu", node_name(prefix)), &y))
    }
}

/// TensorFlow `SAME` padding (before, after) for one dimension.
pub fn tf_same(size: usize, k: usize, s: usize) -> (usize, usize) {
    let out = size.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// PyTorch's `ConvTranspose2d`: weights `[in, out, k, k]`, padding and output padding;
/// output side `(in - 1) * stride - 2 * pad + k + out_pad`.
#[derive(Module, Debug)]
pub struct ConvTranspose {
    /// Kernel `[in, out, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Bias `[out]`, if the layer has one.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride in both directions.
    pub stride: usize,
    /// Padding on each side.
    pub pad: usize,
    /// Extra rows/columns at the end of the output.
    pub out_pad: usize,
}

impl ConvTranspose {
    /// Loads `{prefix}weight` (and `{prefix}bias` when `bias`), checking `[in, out, k, k]`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        shape: [usize; 4],
        bias: bool,
        (stride, pad, out_pad): (usize, usize, usize),
        device: &Device,
    ) -> Result<Self> {
        let (weight, bias) = load_kernel(w, prefix, shape, bias.then_some(shape[1]), device)?;
        Ok(Self {
            weight,
            bias,
            stride,
            pad,
            out_pad,
        })
    }

    /// Applies the transposed convolution ([`kernels::conv_transpose2d`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (weight, bias) = (self.weight.val(), self.bias.as_ref().map(|b| b.val()));
        kernels::conv_transpose2d(x, weight, bias, [self.stride, self.pad, self.out_pad])
    }

    /// ONNX export of [`ConvTranspose::forward`] on `x`: a `ConvTranspose` node called
    /// `{prefix}` without its trailing separator (pads and output padding as the layer's), with
    /// the initializers `{prefix}weight` (`[in, out, k, k]`) and `{prefix}bias`.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str) -> Result<String> {
        let weight = g.param(&format!("{prefix}weight"), ParamRef::R4(&self.weight))?;
        let bias = match &self.bias {
            Some(b) => Some(g.param(&format!("{prefix}bias"), ParamRef::R1(b))?),
            None => None,
        };
        let k = self.weight.dims()[2];
        Ok(g.conv_transpose(node_name(prefix), x, &weight, bias.as_deref(), (k, self.stride), [self.pad; 4], self.out_pad))
    }

    /// Visits `{prefix}weight` (and `{prefix}bias`).
    pub fn walk(&self, prefix: &str, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        walk_kernel(prefix, &self.weight, self.bias.as_ref(), f);
    }
}

/// `{prefix}weight` of `shape` and, when `bias` gives its length, `{prefix}bias`.
#[allow(clippy::type_complexity)]
fn load_kernel(
    w: &Weights,
    prefix: &str,
    shape: [usize; 4],
    bias: Option<usize>,
    device: &Device,
) -> Result<(Param<Tensor<4>>, Option<Param<Tensor<1>>>)> {
    let weight = w.param(&format!("{prefix}weight"), shape, device)?;
    let bias = match bias {
        Some(len) => Some(w.param(&format!("{prefix}bias"), [len], device)?),
        None => None,
    };
    Ok((weight, bias))
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
    /// `(k - stride) / 2`, as TensorFlow's `conv2d_transpose(padding="SAME")` does. Runs burn's
    /// operation ([`generic::conv_transpose2d`]) on every backend.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let k = self.weight.dims()[2];
        let s = self.stride;
        let y = generic::conv_transpose2d(x, self.weight.val(), None, [s, 0, 0]);
        let off = (k.saturating_sub(s)) / 2;
        let [n, c, _, _] = y.dims();
        y.slice([0..n, 0..c, off..off + h * s, off..off + w * s])
    }

    /// ONNX export of [`ConvTransposeSame::forward`] on `x`: one `ConvTranspose` node called
    /// `name` whose pads crop the full output to `stride · in` from `(k - stride) / 2` (pads
    /// `(k - s)/2` before, the rest of `k - s` after), with the initializer `weight_name`.
    /// Errors: [`Error::Param`] for a kernel smaller than the stride (the full output would be
    /// shorter than `stride · in`).
    pub fn export_onnx(&self, g: &mut Graph, name: &str, weight_name: &str, x: &str) -> Result<String> {
        let k = self.weight.dims()[2];
        let s = self.stride;
        if k < s {
            return Err(Error::Param(format!("a {k}×{k} transposed convolution at stride {s} has no ONNX SAME form")));
        }
        let before = (k - s) / 2;
        let after = k - s - before;
        let weight = g.param(weight_name, ParamRef::R4(&self.weight))?;
        Ok(g.conv_transpose(name, x, &weight, None, (k, s), [before, after, before, after], 0))
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

/// What distinguishes the [`ConvIn`] blocks of two networks besides their names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvInLayout {
    /// Whether the convolution has a bias.
    pub bias: bool,
    /// The convolution's padding.
    pub padding: Padding,
    /// The instance norm's epsilon.
    pub eps: f64,
}

/// A convolution followed by instance norm with per-channel affine parameters (and a ReLU where
/// asked): the block of the fast-style networks.
#[derive(Module, Debug)]
pub struct ConvIn {
    /// The convolution.
    pub conv: Conv,
    /// The norm's scale and shift.
    pub norm: Affine,
    #[module(skip)]
    /// The norm's epsilon.
    pub eps: f64,
}

impl ConvIn {
    /// Loads the convolution `{conv}weight` (`{conv}bias` with a bias) of `shape` and the norm's
    /// `[scale, shift]` tensors, with `layout`'s bias, padding and epsilon.
    pub fn load(
        w: &Weights,
        conv: &str,
        [scale, shift]: [&str; 2],
        shape: [usize; 4],
        stride: usize,
        layout: ConvInLayout,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            conv: Conv::load(w, conv, shape, layout.bias, stride, layout.padding, device)?,
            norm: Affine::load(w, scale, shift, shape[0], device)?,
            eps: layout.eps,
        })
    }

    /// Convolution, normalisation and (when `relu`) a ReLU.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext, relu: bool) -> Tensor<4> {
        ctx.normalize_affine(self.conv.forward(x), Some(&self.norm), relu, self.eps)
    }

    /// Nearest ×2 upsampling, convolution, normalisation and a ReLU.
    pub fn forward_upsampled(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        ctx.normalize_affine(self.conv.forward_upsampled(x), Some(&self.norm), true, self.eps)
    }

    /// Visits the convolution's `{conv}weight` (and `{conv}bias`), then `scale` and `shift`.
    pub fn walk(&self, conv: &str, [scale, shift]: [&str; 2], f: &mut dyn FnMut(String, ParamRef<'_>)) {
        self.conv.walk(conv, f);
        f(scale.to_string(), ParamRef::R1(&self.norm.gamma));
        f(shift.to_string(), ParamRef::R1(&self.norm.beta));
    }

    /// ONNX export of [`ConvIn::forward`] (or, with `upsample`, [`ConvIn::forward_upsampled`]) on
    /// `x`, with the names of [`ConvIn::walk`]: a nearest ×2 `Resize` (`{conv node}.upsample`)
    /// when `upsample`, the convolution ([`Conv::export_onnx`]), `InstanceNormalization` with the
    /// initializers `scale` and `shift` (node: `scale` without its last component, e.g. `in1`;
    /// `{conv node}.norm` when that is the convolution's name) and a `Relu` (`{norm}.relu`) when
    /// `relu`. Per-layer statistics are the tensor's own ([`NormContext::Local`]).
    pub fn export_onnx(&self, g: &mut Graph, conv: &str, [scale, shift]: [&str; 2], x: &str, relu: bool, upsample: bool) -> Result<String> {
        let conv_node = node_name(conv).to_string();
        let x = if upsample {
            g.resize_scale(&format!("{conv_node}.upsample"), x, 2.0, Interpolation::NearestFloor)
        } else {
            x.to_string()
        };
        let y = self.conv.export_onnx(g, conv, &x, 1)?;
        let gamma = g.param(scale, ParamRef::R1(&self.norm.gamma))?;
        let beta = g.param(shift, ParamRef::R1(&self.norm.beta))?;
        let norm = match scale.rsplit_once('.') {
            Some((n, _)) if n != conv_node => n.to_string(),
            _ => format!("{conv_node}.norm"),
        };
        let y = g.instance_norm(&norm, &y, &gamma, &beta, self.eps);
        Ok(if relu { g.relu(&format!("{norm}.relu"), &y) } else { y })
    }
}

/// The residual block of the fast-style networks: `x + b(relu(a(x)))`, `b` without a ReLU.
#[derive(Module, Debug)]
pub struct ResidualIn {
    /// The first block (followed by a ReLU).
    pub a: ConvIn,
    /// The second block (no ReLU).
    pub b: ConvIn,
}

impl ResidualIn {
    /// Both blocks and the skip connection.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let h = self.a.forward(x.clone(), ctx, true);
        self.b.forward(h, ctx, false) + x
    }

    /// ONNX export of [`ResidualIn::forward`] on `x`: the two blocks ([`ConvIn::export_onnx`]
    /// with `names[0]` and `names[1]`, each `(conv prefix, [scale, shift])`) and an `Add` node
    /// called `name`.
    pub fn export_onnx(&self, g: &mut Graph, names: [(&str, [&str; 2]); 2], name: &str, x: &str) -> Result<String> {
        let h = self.a.export_onnx(g, names[0].0, names[0].1, x, true, false)?;
        let y = self.b.export_onnx(g, names[1].0, names[1].1, &h, false, false)?;
        Ok(g.add(name, &y, x))
    }
}

pub use crate::kernels::{GlobalEps, GlobalNormLayer};

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
    /// Each layer's own statistics blended with the previous frame's, `keep · previous +
    /// (1 - keep) · own`, and kept in `used` for the next frame: consecutive video frames
    /// normalise alike ([`FrameNorm`]).
    Shared {
        /// The statistics the previous frame used, in order of use (`None`: the first frame).
        previous: Option<NormStats>,
        /// Weight of the previous frame's statistics, 0..1.
        keep: f32,
        /// The statistics used so far in this pass.
        used: NormStats,
    },
}

/// Instance-norm statistics shared across the frames of a sequence. Frame by frame, each layer's
/// statistics (mean and biased variance) are an exponential moving average of the frames' own,
/// so a frame does not change its normalisation, and with it its colours and texture, only
/// because its content moved a little: the main cause of flicker in networks with instance
/// normalisation (Ruder et al., Artistic Style Transfer for Videos, 2016; Huang et al., Real-Time
/// Neural Style Transfer for Videos, CVPR 2017). A cut starts afresh ([`FrameNorm::reset`]).
#[derive(Debug, Clone)]
pub struct FrameNorm {
    keep: f32,
    previous: Option<NormStats>,
}

impl FrameNorm {
    /// A new sequence; `keep` (0..1) is the weight of the running statistics at each frame
    /// (0: every frame its own).
    pub fn new(keep: f32) -> Self {
        Self { keep: keep.clamp(0.0, 1.0), previous: None }
    }

    /// The context for the next frame's pass; hand it back with [`FrameNorm::finish`].
    pub fn context(&mut self) -> NormContext {
        NormContext::Shared { previous: self.previous.take(), keep: self.keep, used: Vec::new() }
    }

    /// Keeps the statistics a pass used for the next frame.
    pub fn finish(&mut self, ctx: NormContext) {
        self.previous = Some(ctx.into_stats());
    }

    /// Blends a whole pass's own statistics (a tiled frame's statistics pass) with the running
    /// ones, keeps and returns the result.
    pub fn blend(&mut self, own: NormStats) -> NormStats {
        let previous = self.previous.take();
        let used: NormStats = own
            .into_iter()
            .enumerate()
            .map(|(i, (m, v))| blend_stats(previous.as_ref().and_then(|p| p.get(i)), m, v, self.keep))
            .collect();
        self.previous = Some(used.clone());
        used
    }

    /// Forgets the running statistics (a cut): the next frame uses its own.
    pub fn reset(&mut self) {
        self.previous = None;
    }
}

/// `keep · previous + (1 - keep) · own` for a layer's mean and variance (own alone without a
/// previous of the same shape).
fn blend_stats(previous: Option<&(Tensor<4>, Tensor<4>)>, mean: Tensor<4>, var: Tensor<4>, keep: f32) -> (Tensor<4>, Tensor<4>) {
    match previous {
        Some((pm, pv)) if pm.dims() == mean.dims() => {
            (pm.clone() * keep + mean * (1.0 - keep), pv.clone() * keep + var * (1.0 - keep))
        }
        _ => (mean, var),
    }
}

impl NormContext {
    /// Normalises `x` per sample and channel over H×W: `(x - mean) / sqrt(var + eps)`, biased
    /// variance, with burn's operations ([`generic::instance_norm`]) on every backend.
    pub fn normalize(&mut self, x: Tensor<4>, eps: f64) -> Tensor<4> {
        let plain = NormLayer { affine: None, relu: false, eps };
        if let Some((m, v)) = self.shared(&x, &[2, 3]) {
            return generic::instance_norm(x, Statistics::Given(&m, &v), plain, false).0;
        }
        self.with_statistics(|stats| generic::instance_norm(x, stats, plain, false))
    }

    /// In [`NormContext::Shared`]: `x`'s own mean and biased variance over `dims`, blended with
    /// the previous frame's for this layer and kept; `None` in the other contexts.
    fn shared(&mut self, x: &Tensor<4>, dims: &[usize]) -> Option<(Tensor<4>, Tensor<4>)> {
        let NormContext::Shared { previous, keep, used } = self else { return None };
        let mut mean = x.clone();
        for &d in dims {
            mean = mean.mean_dim(d);
        }
        let centred = x.clone() - mean.clone();
        let mut var = centred.clone() * centred;
        for &d in dims {
            var = var.mean_dim(d);
        }
        let (m, v) = blend_stats(previous.as_ref().and_then(|p| p.get(used.len())), mean, var, *keep);
        used.push((m.clone(), v.clone()));
        Some((m, v))
    }

    /// Normalises each sample over C, H and W together with the population variance:
    /// `(x - μ) / (σ + eps)` (keras-contrib's `InstanceNormalization(axis=None)`) or
    /// `(x - μ) / sqrt(σ² + eps)` (PyTorch's `GroupNorm(1, C)`). Recorded and replayed like the
    /// per-channel statistics, as `[N, 1, 1, 1]`.
    pub fn normalize_global(&mut self, x: Tensor<4>, layer: GlobalNormLayer<'_>) -> Tensor<4> {
        let given = self.global_given(|| x.clone());
        let (y, used) = kernels::global_norm(x, given.as_ref().map(|(m, v)| (m, v)), layer);
        self.record(used);
        y
    }

    /// [`NormContext::normalize_global`] of `x` (or, with `both`, of the concatenation of `left`
    /// and `x`) with ShuffleNet-V2's channel shuffle in the same pass: see
    /// [`kernels::global_norm_shuffled`]. Records and replays one set of statistics, as
    /// [`NormContext::normalize_global`] of the tensor it normalises.
    pub fn normalize_global_shuffled(&mut self, left: Tensor<4>, x: Tensor<4>, both: bool, layer: GlobalNormLayer<'_>) -> Tensor<4> {
        let given = self.global_given(|| if both { Tensor::cat(vec![left.clone(), x.clone()], 1) } else { x.clone() });
        let (y, used) = kernels::global_norm_shuffled(left, x, both, given.as_ref().map(|(m, v)| (m, v)), layer);
        self.record(used);
        y
    }

    /// The whole-sample statistics a norm uses when they are not the normalised tensor's own:
    /// blended ones ([`NormContext::Shared`], from `normalised()`) or the next replayed ones.
    fn global_given(&mut self, normalised: impl FnOnce() -> Tensor<4>) -> Option<(Tensor<4>, Tensor<4>)> {
        if matches!(self, NormContext::Shared { .. }) {
            return self.shared(&normalised(), &[1, 2, 3]);
        }
        match self {
            NormContext::Replay { stats, cursor } => {
                let s = stats.get(*cursor).expect("replayed statistics come from the same network").clone();
                *cursor += 1;
                Some(s)
            }
            _ => None,
        }
    }

    /// Keeps the statistics a whole-sample norm used, in [`NormContext::Record`].
    fn record(&mut self, used: (Tensor<4>, Tensor<4>)) {
        if let NormContext::Record(list) = self {
            list.push(used);
        }
    }

    /// [`NormContext::normalize`], then the `affine` map and a ReLU if asked, through
    /// [`kernels::instance_norm`] (one pass where the CPU kernels run).
    pub fn normalize_affine(
        &mut self,
        x: Tensor<4>,
        affine: Option<&Affine>,
        relu: bool,
        eps: f64,
    ) -> Tensor<4> {
        self.normalize_affine_with(x, affine, relu, eps, false)
    }

    /// [`NormContext::normalize_affine`]; with `exact_gradients`, burn's route normalises an
    /// autodiff tensor with local statistics in `f64` (see [`kernels::instance_norm`]).
    pub fn normalize_affine_with(
        &mut self,
        x: Tensor<4>,
        affine: Option<&Affine>,
        relu: bool,
        eps: f64,
        exact_gradients: bool,
    ) -> Tensor<4> {
        let params = affine.map(|a| (a.gamma.val(), a.beta.val()));
        let layer = NormLayer { affine: params.as_ref().map(|(g, b)| (g, b)), relu, eps };
        if let Some((m, v)) = self.shared(&x, &[2, 3]) {
            return kernels::instance_norm(x, Statistics::Given(&m, &v), layer, exact_gradients).0;
        }
        self.with_statistics(|stats| kernels::instance_norm(x, stats, layer, exact_gradients))
    }

    /// Runs `norm` with this context's statistics: the tensor's own (kept when recording), or the
    /// next recorded ones.
    fn with_statistics(
        &mut self,
        norm: impl FnOnce(Statistics<'_>) -> (Tensor<4>, Option<(Tensor<4>, Tensor<4>)>),
    ) -> Tensor<4> {
        match self {
            NormContext::Local | NormContext::Shared { .. } => norm(Statistics::Own).0,
            NormContext::Record(list) => {
                let (y, kept) = norm(Statistics::OwnKept);
                list.extend(kept);
                y
            }
            NormContext::Replay { stats, cursor } => {
                let (mean, var) = stats
                    .get(*cursor)
                    .expect("replayed statistics come from the same network");
                *cursor += 1;
                norm(Statistics::Given(mean, var)).0
            }
        }
    }

    /// The recorded statistics (empty unless recording).
    pub fn into_stats(self) -> NormStats {
        match self {
            NormContext::Record(s) | NormContext::Replay { stats: s, .. } | NormContext::Shared { used: s, .. } => s,
            NormContext::Local => Vec::new(),
        }
    }
}

/// A borrowed parameter of either rank the networks use.
#[derive(Debug, Clone, Copy)]
pub enum ParamRef<'a> {
    /// A kernel.
    R4(&'a Param<Tensor<4>>),
    /// A bias or a normalisation scale/shift.
    R1(&'a Param<Tensor<1>>),
}

impl ParamRef<'_> {
    /// The value on the host.
    pub fn host(self) -> Result<HostTensor> {
        match self {
            ParamRef::R4(p) => HostTensor::from_tensor(p.val().without_autodiff()),
            ParamRef::R1(p) => HostTensor::from_tensor(p.val().without_autodiff()),
        }
    }

    /// The gradient on the host, if `grads` holds one for this parameter.
    pub fn grad(self, grads: &Gradients) -> Result<Option<HostTensor>> {
        match self {
            ParamRef::R4(p) => p.val().grad(grads).map(HostTensor::from_tensor).transpose(),
            ParamRef::R1(p) => p.val().grad(grads).map(HostTensor::from_tensor).transpose(),
        }
    }
}

/// Visits `{prefix}weight` and, if there is one, `{prefix}bias`.
fn walk_kernel(
    prefix: &str,
    weight: &Param<Tensor<4>>,
    bias: Option<&Param<Tensor<1>>>,
    f: &mut dyn FnMut(String, ParamRef<'_>),
) {
    f(format!("{prefix}weight"), ParamRef::R4(weight));
    if let Some(b) = bias {
        f(format!("{prefix}bias"), ParamRef::R1(b));
    }
}

/// Collects every visited parameter as a state dict.
pub(crate) fn collect_weights(
    walk: impl FnOnce(&mut dyn FnMut(String, ParamRef<'_>)),
) -> Result<Weights> {
    let mut w = Weights::default();
    let mut err = None;
    walk(&mut |name, p| match p.host() {
        Ok(t) => {
            w.tensors.insert(name, t);
        }
        Err(e) => err = Some(e),
    });
    err.map_or(Ok(w), Err)
}

/// Collects the gradient of every visited parameter that has one, under the parameter's name.
pub(crate) fn collect_grads(
    grads: &Gradients,
    walk: impl FnOnce(&mut dyn FnMut(String, ParamRef<'_>)),
) -> Result<Weights> {
    let mut w = Weights::default();
    let mut err = None;
    walk(&mut |name, p| match p.grad(grads) {
        Ok(Some(t)) => {
            w.tensors.insert(name, t);
        }
        Ok(None) => {}
        Err(e) => err = Some(e),
    });
    err.map_or(Ok(w), Err)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    fn close(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn shared_statistics_blend_frames() {
        let dev = Default::default();
        let a = Tensor::<4>::random([1, 3, 6, 5], Distribution::Normal(2.0, 3.0), &dev);
        let b = Tensor::<4>::random([1, 3, 6, 5], Distribution::Normal(-1.0, 0.5), &dev);
        // The first frame normalises with its own statistics, as a picture on its own.
        let mut frames = FrameNorm::new(0.75);
        let mut ctx = frames.context();
        let first = ctx.normalize(a.clone(), 1e-5);
        frames.finish(ctx);
        assert!(close(first, NormContext::Local.normalize(a.clone(), 1e-5)) < 1e-5);
        // The second with 0.75 of the first frame's statistics and 0.25 of its own.
        let mut ctx = frames.context();
        let second = ctx.normalize(b.clone(), 1e-5);
        let mut rec_a = NormContext::Record(Vec::new());
        let _ = rec_a.normalize(a.clone(), 1e-5);
        let mut rec_b = NormContext::Record(Vec::new());
        let _ = rec_b.normalize(b.clone(), 1e-5);
        let ((ma, va), (mb, vb)) = (rec_a.into_stats().remove(0), rec_b.into_stats().remove(0));
        let blended = vec![(ma * 0.75 + mb * 0.25, va * 0.75 + vb * 0.25)];
        let want = NormContext::Replay { stats: blended.clone(), cursor: 0 }.normalize(b.clone(), 1e-5);
        assert!(close(second, want) < 1e-4);
        frames.finish(ctx);
        // A cut: the next frame is on its own again.
        frames.reset();
        let mut ctx = frames.context();
        assert!(close(ctx.normalize(b.clone(), 1e-5), NormContext::Local.normalize(b, 1e-5)) < 1e-5);
        // A tiled frame's statistics pass blends the same way.
        let mut tiled = FrameNorm::new(0.75);
        let mut rec = NormContext::Record(Vec::new());
        let _ = rec.normalize(a, 1e-5);
        let own = tiled.blend(rec.into_stats());
        assert_eq!(own.len(), 1);
    }
}
