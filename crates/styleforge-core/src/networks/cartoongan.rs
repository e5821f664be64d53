//! The CartoonGAN "light" generator (Chen et al., CartoonGAN, CVPR 2018; the ShuffleNet-V2
//! generator of mnicnc404/CartoonGan-tensorflow, `generator.py` with `light=True`, Apache-2.0).
//!
//! - `flat_conv1`: zero padding 2, 5×5 convolution 3→96 with bias, norm, ReLU.
//! - `down_conv1`, `down_conv2`: ShuffleNet-V2 down units 96→192 and 192→384 (stride-2 depthwise
//!   3×3 with TensorFlow `same` padding, asymmetric at even sizes).
//! - `residual_blocks`: eight ShuffleNet-V2 basic units on 384 channels (split, a 1×1 → depthwise
//!   3×3 → 1×1 branch on the second half, channel shuffle; no residual addition).
//! - `up_conv1`, `up_conv2`: TensorFlow's legacy bilinear ×2 resize (no half-pixel centres),
//!   a 1×1 convolution with bias (384→192, 192→96) and a basic unit. The convolution, and the
//!   unit's first 1×1 convolution, run before the resize here (they commute), on a quarter of
//!   the pixels.
//! - `final_conv`: zero padding 2, 5×5 convolution 96→3 with bias; tanh.
//!
//! Every norm is keras-contrib's `InstanceNormalization(axis=None)`: per sample over H, W and C
//! together, `(x - μ) / (σ + 1e-3)·γ + β` with the population σ and scalar γ, β.
//!
//! Input RGB in -1..1 `[N, 3, H, W]`; output RGB in -1..1 (tanh), `[N, 3, 4⌈H/4⌉, 4⌈W/4⌉]`.
//! Weights keep the checkpoint's variable names (without `/.ATTRIBUTES/VARIABLE_VALUE`) and its
//! layouts (kernels HWIO `[kh, kw, in, out]`, depthwise `[kh, kw, C, 1]`), converted on load.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels;
use crate::networks::layers::{Conv, GlobalEps, GlobalNormLayer, NormContext, Padding, ParamRef};
use crate::onnx::graph::{Graph, Interpolation, node_name};
use crate::weights::{HostTensor, Weights};

/// The norm's offset, added to σ.
pub const EPS: f64 = 1e-3;

/// The suffix TensorFlow object-based checkpoints give every variable.
pub const TF_SUFFIX: &str = "/.ATTRIBUTES/VARIABLE_VALUE";

/// Reads a kernel stored HWIO (`[k, k, in, out]`) or depthwise (`[k, k, C, 1]`) as PyTorch's
/// `[out, in/groups, k, k]`, checking the stored shape.
fn kernel(w: &Weights, name: &str, stored: [usize; 4], depthwise: bool, device: &Device) -> Result<Param<Tensor<4>>> {
    let t = w.get(name)?;
    if t.shape != stored {
        return Err(Error::Weights(format!("tensor `{name}` has shape {:?}, expected {stored:?}", t.shape)));
    }
    let [kh, kw, ci, co] = stored;
    let (o, i) = if depthwise { (ci, 1) } else { (co, ci) };
    let mut data = vec![0f32; t.data.len()];
    for y in 0..kh {
        for x in 0..kw {
            for c in 0..ci {
                for d in 0..co {
                    let src = ((y * kw + x) * ci + c) * co + d;
                    let (oo, ii) = if depthwise { (c, 0) } else { (d, c) };
                    data[((oo * i + ii) * kh + y) * kw + x] = t.data[src];
                }
            }
        }
    }
    Ok(Param::from_tensor(HostTensor::new(vec![o, i, kh, kw], data).to_tensor(device)?))
}

/// A pointwise or 5×5 kernel `{prefix}kernel` (HWIO) with `{prefix}bias` when `bias`.
fn dense(w: &Weights, prefix: &str, stored: [usize; 4], bias: bool, padding: Padding, device: &Device) -> Result<Conv> {
    let weight = kernel(w, &format!("{prefix}kernel"), stored, false, device)?;
    let bias = if bias { Some(w.param(&format!("{prefix}bias"), [stored[3]], device)?) } else { None };
    Ok(Conv { weight, bias, stride: 1, padding })
}

/// A depthwise 3×3 kernel `{prefix}depthwise_kernel` with TensorFlow `same` padding.
fn depthwise(w: &Weights, prefix: &str, channels: usize, stride: usize, device: &Device) -> Result<Conv> {
    let weight = kernel(w, &format!("{prefix}depthwise_kernel"), [3, 3, channels, 1], true, device)?;
    Ok(Conv { weight, bias: None, stride, padding: Padding::TfSame })
}

/// The scalar norm `{prefix}{gamma,beta}`.
#[derive(Module, Debug)]
pub struct GlobalNorm {
    gamma: Param<Tensor<1>>,
    beta: Param<Tensor<1>>,
}

impl GlobalNorm {
    fn load(w: &Weights, prefix: &str, device: &Device) -> Result<Self> {
        Ok(Self { gamma: w.param(&format!("{prefix}gamma"), [1], device)?, beta: w.param(&format!("{prefix}beta"), [1], device)? })
    }

    /// Normalises each sample over C, H and W, then `γ·x̂ + β` and a ReLU when `relu`.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext, relu_after: bool) -> Tensor<4> {
        ctx.normalize_global(x, GlobalNormLayer { eps: GlobalEps::Sigma(EPS), affine: (&self.gamma.val(), &self.beta.val()), relu: relu_after })
    }

    /// [`GlobalNorm::forward`] of `x` (of `cat(left, x)` with `both`) and the channel shuffle
    /// of `left` (or of the normalised `left`) with it, in one pass.
    pub fn forward_shuffled(&self, left: Tensor<4>, x: Tensor<4>, both: bool, ctx: &mut NormContext, relu_after: bool) -> Tensor<4> {
        let affine = (&self.gamma.val(), &self.beta.val());
        ctx.normalize_global_shuffled(left, x, both, GlobalNormLayer { eps: GlobalEps::Sigma(EPS), affine, relu: relu_after })
    }

    /// ONNX export of [`GlobalNorm::forward`] (the sample's own statistics) on `x`:
    /// [`Graph::global_norm`] called `{prefix}` without its trailing `/`, with the scalar
    /// initializers `{prefix}gamma` and `{prefix}beta` (`[1]`).
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str, relu_after: bool) -> Result<String> {
        let gamma = g.param(&format!("{prefix}gamma"), ParamRef::R1(&self.gamma))?;
        let beta = g.param(&format!("{prefix}beta"), ParamRef::R1(&self.beta))?;
        Ok(g.global_norm(node_name(prefix), x, GlobalEps::Sigma(EPS), (&gamma, &beta), relu_after))
    }
}

/// A pointwise or 5×5 convolution `{prefix}` exported with its checkpoint names: the kernel
/// `{prefix}kernel` (stored here as `[out, in, k, k]`, not the checkpoint's HWIO) and `{prefix}bias`.
fn export_dense(conv: &Conv, g: &mut Graph, prefix: &str, x: &str) -> Result<String> {
    let names = [format!("{prefix}kernel"), format!("{prefix}bias")];
    conv.export_onnx_named(g, node_name(prefix), [&names[0], &names[1]], x, 1)
}

/// A depthwise 3×3 convolution `{prefix}` on `channels` channels, exported with the kernel
/// `{prefix}depthwise_kernel` (stored as `[C, 1, 3, 3]`) and TensorFlow `SAME` padding.
fn export_depthwise(conv: &Conv, g: &mut Graph, prefix: &str, x: &str) -> Result<String> {
    let channels = conv.weight.dims()[0];
    let names = [format!("{prefix}depthwise_kernel"), format!("{prefix}bias")];
    conv.export_onnx_named(g, node_name(prefix), [&names[0], &names[1]], x, channels)
}

/// A ShuffleNet-V2 basic unit on `c` channels.
#[derive(Module, Debug)]
pub struct BasicUnit {
    pw1: Conv,
    n1: GlobalNorm,
    dw: Conv,
    n2: GlobalNorm,
    pw2: Conv,
    n3: GlobalNorm,
}

impl BasicUnit {
    fn load(w: &Weights, prefix: &str, c: usize, device: &Device) -> Result<Self> {
        let h = c / 2;
        Ok(Self {
            pw1: dense(w, &format!("{prefix}layer-0/"), [1, 1, h, h], false, Padding::Valid, device)?,
            n1: GlobalNorm::load(w, &format!("{prefix}layer-1/"), device)?,
            dw: depthwise(w, &format!("{prefix}layer-3/"), h, 1, device)?,
            n2: GlobalNorm::load(w, &format!("{prefix}layer-4/"), device)?,
            pw2: dense(w, &format!("{prefix}layer-5/"), [1, 1, h, h], false, Padding::Valid, device)?,
            n3: GlobalNorm::load(w, &format!("{prefix}layer-6/"), device)?,
        })
    }

    /// `[N, C, H, W]` to the same shape; the last norm and the channel shuffle are one pass.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let c = x.dims()[1];
        let (left, right) = (x.clone().narrow(1, 0, c / 2), x.narrow(1, c / 2, c / 2));
        self.rest(left, self.pw1.forward(right), ctx)
    }

    /// [`BasicUnit::forward`] of TensorFlow's legacy ×2 resize of `x` (`[N, C, H, W]` to
    /// `[N, C, 2H, 2W]`), with the first 1×1 convolution before the resize: the resize weights
    /// sum to one and the convolution has no bias, so the two commute, and the convolution runs
    /// on a quarter of the pixels.
    pub fn forward_resized(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let c = x.dims()[1];
        let (left, right) = (x.clone().narrow(1, 0, c / 2), x.narrow(1, c / 2, c / 2));
        let b = kernels::resize_legacy2x(self.pw1.forward(right));
        self.rest(kernels::resize_legacy2x(left), b, ctx)
    }

    /// The unit after its first 1×1 convolution `b`: norm, depthwise convolution, norm, 1×1
    /// convolution, and the last norm with the channel shuffle of `left` and the branch.
    fn rest(&self, left: Tensor<4>, b: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let b = self.n1.forward(b, ctx, true);
        let b = self.n2.forward(self.dw.forward(b), ctx, false);
        self.n3.forward_shuffled(left, self.pw2.forward(b), false, ctx, true)
    }

    /// ONNX export of [`BasicUnit::forward`] on `x` with the checkpoint's names under `prefix`
    /// (`{prefix}layer-0/kernel`, ...): `Slice`s `{prefix}left` and `{prefix}right`, the branch,
    /// and the channel shuffle `{prefix}shuffle` ([`Graph::channel_shuffle`]).
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str) -> Result<String> {
        let h = self.pw1.weight.dims()[0] as i64;
        let left = g.slice(&format!("{prefix}left"), x, 1, 0, h);
        let right = g.slice(&format!("{prefix}right"), x, 1, h, 2 * h);
        let b = export_dense(&self.pw1, g, &format!("{prefix}layer-0/"), &right)?;
        let b = self.n1.export_onnx(g, &format!("{prefix}layer-1/"), &b, true)?;
        let b = export_depthwise(&self.dw, g, &format!("{prefix}layer-3/"), &b)?;
        let b = self.n2.export_onnx(g, &format!("{prefix}layer-4/"), &b, false)?;
        let b = export_dense(&self.pw2, g, &format!("{prefix}layer-5/"), &b)?;
        let b = self.n3.export_onnx(g, &format!("{prefix}layer-6/"), &b, true)?;
        Ok(g.channel_shuffle(&format!("{prefix}shuffle"), &left, &b, h as usize))
    }
}

/// A ShuffleNet-V2 down unit, `cin` to `2·cb` channels at half the size.
#[derive(Module, Debug)]
pub struct DownUnit {
    l_dw: Conv,
    l_n: GlobalNorm,
    l_pw: Conv,
    r_pw1: Conv,
    r_n1: GlobalNorm,
    r_dw: Conv,
    r_n2: GlobalNorm,
    r_pw2: Conv,
    n: GlobalNorm,
}

impl DownUnit {
    fn load(w: &Weights, prefix: &str, cin: usize, cb: usize, device: &Device) -> Result<Self> {
        let l = format!("{prefix}l_model/");
        let r = format!("{prefix}r_model/");
        Ok(Self {
            l_dw: depthwise(w, &format!("{l}layer-0/"), cin, 2, device)?,
            l_n: GlobalNorm::load(w, &format!("{l}layer-1/"), device)?,
            l_pw: dense(w, &format!("{l}layer-2/"), [1, 1, cin, cb], false, Padding::Valid, device)?,
            r_pw1: dense(w, &format!("{r}layer-0/"), [1, 1, cin, cb], false, Padding::Valid, device)?,
            r_n1: GlobalNorm::load(w, &format!("{r}layer-1/"), device)?,
            r_dw: depthwise(w, &format!("{r}layer-3/"), cb, 2, device)?,
            r_n2: GlobalNorm::load(w, &format!("{r}layer-4/"), device)?,
            r_pw2: dense(w, &format!("{r}layer-5/"), [1, 1, cb, cb], false, Padding::Valid, device)?,
            n: GlobalNorm::load(w, &format!("{prefix}bn_act/layer-0/"), device)?,
        })
    }

    /// `[N, cin, H, W]` to `[N, 2·cb, ⌈H/2⌉, ⌈W/2⌉]`.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let l = self.l_pw.forward(self.l_n.forward(self.l_dw.forward(x.clone()), ctx, false));
        let r = self.r_n1.forward(self.r_pw1.forward(x), ctx, true);
        let r = self.r_pw2.forward(self.r_n2.forward(self.r_dw.forward(r), ctx, false));
        self.n.forward_shuffled(l, r, true, ctx, true)
    }

    /// ONNX export of [`DownUnit::forward`] on `x` with the checkpoint's names under `prefix`
    /// (`{prefix}l_model/layer-0/depthwise_kernel`, ...): both branches, their `Concat`
    /// `{prefix}concat`, the norm `{prefix}bn_act/layer-0` and the channel shuffle
    /// `{prefix}shuffle` of its two halves.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str) -> Result<String> {
        let (l, r) = (format!("{prefix}l_model/"), format!("{prefix}r_model/"));
        let a = export_depthwise(&self.l_dw, g, &format!("{l}layer-0/"), x)?;
        let a = self.l_n.export_onnx(g, &format!("{l}layer-1/"), &a, false)?;
        let a = export_dense(&self.l_pw, g, &format!("{l}layer-2/"), &a)?;
        let b = export_dense(&self.r_pw1, g, &format!("{r}layer-0/"), x)?;
        let b = self.r_n1.export_onnx(g, &format!("{r}layer-1/"), &b, true)?;
        let b = export_depthwise(&self.r_dw, g, &format!("{r}layer-3/"), &b)?;
        let b = self.r_n2.export_onnx(g, &format!("{r}layer-4/"), &b, false)?;
        let b = export_dense(&self.r_pw2, g, &format!("{r}layer-5/"), &b)?;
        let cat = g.concat(&format!("{prefix}concat"), &[&a, &b], 1);
        let cat = self.n.export_onnx(g, &format!("{prefix}bn_act/layer-0/"), &cat, true)?;
        Ok(g.interleave_halves(&format!("{prefix}shuffle"), &cat, self.l_pw.weight.dims()[0]))
    }
}

/// An up block: legacy bilinear ×2, a 1×1 convolution with bias and a basic unit.
#[derive(Module, Debug)]
pub struct UpBlock {
    pw: Conv,
    unit: BasicUnit,
}

impl UpBlock {
    fn load(w: &Weights, prefix: &str, cin: usize, cout: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            pw: dense(w, &format!("{prefix}model/layer-0/"), [1, 1, cin, cout], true, Padding::Valid, device)?,
            unit: BasicUnit::load(w, &format!("{prefix}model/layer-1/model/"), cout, device)?,
        })
    }

    fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        // The resize interpolates with weights that sum to one and the 1×1 convolutions map each
        // pixel on their own, so they commute: the block's convolution and the unit's first one
        // run before the resize, on a quarter of the pixels.
        self.unit.forward_resized(self.pw.forward(x), ctx)
    }

    /// ONNX export of the up block on `x` under `prefix`: the 1×1 convolution
    /// `{prefix}model/layer-0`, TensorFlow's legacy bilinear ×2 (`{prefix}model/resize`, a linear
    /// `Resize` with `asymmetric` coordinates) and the basic unit `{prefix}model/layer-1/model/`.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str) -> Result<String> {
        let y = export_dense(&self.pw, g, &format!("{prefix}model/layer-0/"), x)?;
        let y = g.resize_scale(&format!("{prefix}model/resize"), &y, 2.0, Interpolation::LinearAsymmetric);
        self.unit.export_onnx(g, &format!("{prefix}model/layer-1/model/"), &y)
    }
}

/// The intermediate outputs of one pass, for parity checks (NCHW).
#[derive(Debug)]
pub struct Trace {
    /// `(block name, output)` in order: `flat_conv1`, `down_conv1`, `down_conv2`,
    /// `residual_blocks.0`, `residual_blocks`, `up_conv1`, `up_conv2`, `final_conv`.
    pub blocks: Vec<(&'static str, Tensor<4>)>,
    /// The output (tanh).
    pub output: Tensor<4>,
}

/// The light generator.
#[derive(Module, Debug)]
pub struct CartoonGan {
    flat: Conv,
    flat_n: GlobalNorm,
    down1: DownUnit,
    down2: DownUnit,
    blocks: Vec<BasicUnit>,
    up1: UpBlock,
    up2: UpBlock,
    last: Conv,
}

impl CartoonGan {
    /// Whether the weights look like a CartoonGAN-light generator.
    pub fn detect(w: &Weights) -> bool {
        w.has("flat_conv1/model/layer-1/kernel") && w.has("down_conv1/l_model/layer-0/depthwise_kernel")
    }

    /// Builds the generator from the checkpoint's variables (names with or without the
    /// [`TF_SUFFIX`]), checking every shape and refusing unknown tensors.
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        let stripped;
        let w = if w.tensors.keys().any(|k| k.ends_with(TF_SUFFIX)) {
            stripped = crate::library::kind::strip_tf_suffix(w);
            &stripped
        } else {
            w
        };
        let roots = ["flat_conv1/", "down_conv1/", "down_conv2/", "residual_blocks/", "up_conv1/", "up_conv2/", "final_conv/"];
        w.reject_unexpected(|k| roots.iter().any(|r| k.starts_with(r)))?;
        Ok(Self {
            flat: dense(w, "flat_conv1/model/layer-1/", [5, 5, 3, 96], true, Padding::Explicit(2), device)?,
            flat_n: GlobalNorm::load(w, "flat_conv1/model/layer-2/", device)?,
            down1: DownUnit::load(w, "down_conv1/", 96, 96, device)?,
            down2: DownUnit::load(w, "down_conv2/", 192, 192, device)?,
            blocks: (0..8)
                .map(|i| BasicUnit::load(w, &format!("residual_blocks/layer-{i}/model/"), 384, device))
                .collect::<Result<Vec<_>>>()?,
            up1: UpBlock::load(w, "up_conv1/", 384, 192, device)?,
            up2: UpBlock::load(w, "up_conv2/", 192, 96, device)?,
            last: dense(w, "final_conv/layer-1/", [5, 5, 96, 3], true, Padding::Explicit(2), device)?,
        })
    }

    /// RGB in -1..1 `[N, 3, H, W]` to RGB in -1..1 `[N, 3, 4⌈H/4⌉, 4⌈W/4⌉]`, with the
    /// intermediate outputs when `trace`.
    pub fn forward_traced(&self, x: Tensor<4>, ctx: &mut NormContext, trace: bool) -> Trace {
        let mut blocks = Vec::new();
        let mut keep = |name: &'static str, t: &Tensor<4>| {
            if trace {
                blocks.push((name, t.clone()));
            }
        };
        let y = self.flat_n.forward(self.flat.forward(x), ctx, true);
        keep("flat_conv1", &y);
        let y = self.down1.forward(y, ctx);
        keep("down_conv1", &y);
        let mut y = self.down2.forward(y, ctx);
        keep("down_conv2", &y);
        for (i, b) in self.blocks.iter().enumerate() {
            y = b.forward(y, ctx);
            if i == 0 {
                keep("residual_blocks.0", &y);
            }
        }
        keep("residual_blocks", &y);
        let y = self.up1.forward(y, ctx);
        keep("up_conv1", &y);
        let y = self.up2.forward(y, ctx);
        keep("up_conv2", &y);
        let y = self.last.forward(y);
        keep("final_conv", &y);
        Trace { blocks, output: y.tanh() }
    }

    /// ONNX export of [`CartoonGan::forward_traced`]'s output (the sample's own statistics):
    /// `x` is RGB in -1..1 `[N, 3, H, W]` (any size), the returned value RGB in -1..1 (tanh)
    /// `[N, 3, 4⌈H/4⌉, 4⌈W/4⌉]`. Names are the checkpoint's variables (`flat_conv1/model/layer-1`
    /// with `flat_conv1/model/layer-1/kernel`, ...); stride-2 depthwise convolutions use
    /// `auto_pad = SAME_UPPER`, as TensorFlow's `same` padding.
    pub fn export_onnx(&self, g: &mut Graph, x: &str) -> Result<String> {
        let y = export_dense(&self.flat, g, "flat_conv1/model/layer-1/", x)?;
        let y = self.flat_n.export_onnx(g, "flat_conv1/model/layer-2/", &y, true)?;
        let y = self.down1.export_onnx(g, "down_conv1/", &y)?;
        let mut y = self.down2.export_onnx(g, "down_conv2/", &y)?;
        for (i, b) in self.blocks.iter().enumerate() {
            y = b.export_onnx(g, &format!("residual_blocks/layer-{i}/model/"), &y)?;
        }
        let y = self.up1.export_onnx(g, "up_conv1/", &y)?;
        let y = self.up2.export_onnx(g, "up_conv2/", &y)?;
        let y = export_dense(&self.last, g, "final_conv/layer-1/", &y)?;
        Ok(g.tanh("final_conv/tanh", &y))
    }

    /// RGB 0..255 `[1, 3, H, W]` of any size (at least 1×1) in, RGB 0..255 of the same size
    /// out (clamped): the network's output cropped to the input at the top left, as the reference
    /// aligns it.
    pub fn forward_any_size(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let y = self.forward_traced(x / 127.5 - 1.0, ctx, false).output;
        ((y.slice([0..n, 0..3, 0..h, 0..w]) + 1.0) * 127.5).clamp(0.0, 255.0)
    }
}
