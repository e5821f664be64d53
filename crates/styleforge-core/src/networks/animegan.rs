//! The AnimeGANv2 generator (Chen et al., AnimeGAN, ISICA 2019; v2 by TachibanaYoshino) in the
//! layout of the widely used PyTorch port bryandlee/animegan2-pytorch (`model.py`, `Generator`;
//! MIT), whose published checkpoints (`face_paint_512_v1/v2`, `celeba_distill`, `paprika`) are
//! state dicts of this layout.
//!
//! `ConvNormLReLU` = padding (reflection; `(0, 1, 0, 1)` before the stride-2 convolutions),
//! convolution without bias (the depthwise ones have a bias), `GroupNorm(1, C)` (per sample over
//! C, H, W; eps 1e-5 on the variance; per-channel γ, β), LeakyReLU 0.2.
//! - `block_a`: 7×7 3→32; 3×3 stride 2 32→64; 3×3 64→64.
//! - `block_b`: 3×3 stride 2 64→128; 3×3 128→128.
//! - `block_c`: 3×3 128→128; four inverted residual blocks (1×1 expansion ×2, depthwise 3×3,
//!   1×1 projection + GroupNorm; the identity is added when the widths agree) 128→256→256→256→256;
//!   3×3 256→128.
//! - bilinear resize to `block_a`'s size (`align_corners = True`, or ×2 with
//!   `align_corners = False`), `block_d`: two 3×3 128→128.
//! - bilinear resize to the input's size (or ×2), `block_e`: 3×3 128→64, 3×3 64→64, 7×7 64→32.
//! - `out_layer`: 1×1 32→3 without bias, tanh.
//!
//! Input RGB in -1..1 `[N, 3, H, W]`, output RGB in -1..1: at the input's size with
//! `align_corners = True`, at `4⌈⌈H/2⌉/2⌉`-style doubled sizes with the ×2 variant.

use burn::module::{Module, Param};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::kernels::{self, Geometry};
use crate::networks::layers::{GlobalEps, GlobalNormLayer, NormContext, ParamRef};
use crate::onnx::graph::{Graph, Interpolation, PadMode};
use crate::weights::Weights;

/// The smallest side the network takes (the reflection padding after two stride-2 stages).
pub const MIN_SIDE: usize = 8;

/// GroupNorm's variance offset.
pub const EPS: f64 = 1e-5;

/// How the decoder resizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upsampling {
    /// To the exact earlier sizes, `align_corners = True` (the port's default).
    #[default]
    AlignCorners,
    /// ×2, `align_corners = False` (the port's `align_corners=False` option).
    Scale2,
}

/// `ConvNormLReLU`.
#[derive(Module, Debug)]
pub struct ConvNormLReLU {
    weight: Param<Tensor<4>>,
    bias: Option<Param<Tensor<1>>>,
    gamma: Param<Tensor<1>>,
    beta: Param<Tensor<1>>,
    #[module(skip)]
    stride: usize,
}

impl ConvNormLReLU {
    /// `{prefix}1.weight` `[out, in/groups, k, k]` (and `{prefix}1.bias`), `{prefix}2.{weight,bias}`.
    fn load(w: &Weights, prefix: &str, shape: [usize; 4], stride: usize, bias: bool, device: &Device) -> Result<Self> {
        Ok(Self {
            weight: w.param(&format!("{prefix}1.weight"), shape, device)?,
            bias: if bias { Some(w.param(&format!("{prefix}1.bias"), [shape[0]], device)?) } else { None },
            gamma: w.param(&format!("{prefix}2.weight"), [shape[0]], device)?,
            beta: w.param(&format!("{prefix}2.bias"), [shape[0]], device)?,
            stride,
        })
    }

    fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let k = self.weight.dims()[2];
        let pad = if self.stride == 2 { [0, 1, 0, 1] } else { [k / 2; 4] };
        let g = Geometry { stride: self.stride, pad, reflect: true, upsample: false, relu: false };
        let y = kernels::conv2d(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()), g);
        leaky_relu(group_norm(y, &self.gamma, &self.beta, ctx), 0.2)
    }

    /// ONNX export of the layer on `x` (`in` channels) under `prefix` (`block_a.0.`), named as
    /// the port's `nn.Sequential`: the reflection `Pad` `{prefix}0` (`(0, 1, 0, 1)` before a
    /// stride-2 convolution, `k/2` otherwise), the `Conv` `{prefix}1` (`{prefix}1.weight`, groups
    /// `in / weight.dims[1]`), `GroupNorm(1, C)` `{prefix}2` ([`export_group_norm`]) and the
    /// `LeakyRelu` `{prefix}3`.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str, channels_in: usize) -> Result<String> {
        let [_, per_group, k, _] = self.weight.dims();
        let pad = if self.stride == 2 { [0, 1, 0, 1] } else { [k / 2; 4] };
        let y = g.pad(&format!("{prefix}0"), x, pad, PadMode::Reflect);
        let weight = g.param(&format!("{prefix}1.weight"), ParamRef::R4(&self.weight))?;
        let bias = match &self.bias {
            Some(b) => Some(g.param(&format!("{prefix}1.bias"), ParamRef::R1(b))?),
            None => None,
        };
        let geometry = (k, self.stride, channels_in / per_group);
        let y = g.conv_node(&format!("{prefix}1"), &y, &weight, bias.as_deref(), geometry, [0; 4], false);
        let y = export_group_norm(g, &format!("{prefix}2"), &y, (&self.gamma, &self.beta))?;
        Ok(g.leaky_relu(&format!("{prefix}3"), &y, 0.2))
    }
}

/// ONNX export of `GroupNorm(1, C)` with per-channel γ, β on `x`: [`Graph::global_norm`] called
/// `name` with the initializers `{name}.weight` and `{name}.bias`, shaped `[1, C, 1, 1]`.
fn export_group_norm(g: &mut Graph, name: &str, x: &str, (gamma, beta): (&Param<Tensor<1>>, &Param<Tensor<1>>)) -> Result<String> {
    let gamma = g.channel_param(&format!("{name}.weight"), ParamRef::R1(gamma))?;
    let beta = g.channel_param(&format!("{name}.bias"), ParamRef::R1(beta))?;
    Ok(g.global_norm(name, x, GlobalEps::Variance(EPS), (&gamma, &beta), false))
}

/// `GroupNorm(1, C)` with per-channel γ, β.
fn group_norm(x: Tensor<4>, gamma: &Param<Tensor<1>>, beta: &Param<Tensor<1>>, ctx: &mut NormContext) -> Tensor<4> {
    ctx.normalize_global(x, GlobalNormLayer { eps: GlobalEps::Variance(EPS), affine: (&gamma.val(), &beta.val()), relu: false })
}

/// An inverted residual block.
#[derive(Module, Debug)]
pub struct InvertedResBlock {
    expand: ConvNormLReLU,
    depthwise: ConvNormLReLU,
    project: Param<Tensor<4>>,
    gamma: Param<Tensor<1>>,
    beta: Param<Tensor<1>>,
}

impl InvertedResBlock {
    fn load(w: &Weights, prefix: &str, cin: usize, cout: usize, device: &Device) -> Result<Self> {
        let mid = 2 * cin;
        let p = |s: &str| format!("{prefix}layers.{s}");
        Ok(Self {
            expand: ConvNormLReLU::load(w, &p("0."), [mid, cin, 1, 1], 1, false, device)?,
            depthwise: ConvNormLReLU::load(w, &p("1."), [mid, 1, 3, 3], 1, true, device)?,
            project: w.param(&p("2.weight"), [cout, mid, 1, 1], device)?,
            gamma: w.param(&p("3.weight"), [cout], device)?,
            beta: w.param(&p("3.bias"), [cout], device)?,
        })
    }

    fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let y = self.depthwise.forward(self.expand.forward(x.clone(), ctx), ctx);
        let y = kernels::conv2d(y, self.project.val(), None, Geometry::same(0, false));
        let y = group_norm(y, &self.gamma, &self.beta, ctx);
        if x.dims()[1] == y.dims()[1] { x + y } else { y }
    }

    /// ONNX export of the block on `x` (`channels_in` channels) under `prefix` (`block_c.1.`):
    /// `{prefix}layers.0` (expansion), `{prefix}layers.1` (depthwise), the 1×1 projection
    /// `{prefix}layers.2`, `GroupNorm` `{prefix}layers.3` and, when the widths agree, the `Add`
    /// `{prefix}` without its trailing dot.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str, channels_in: usize) -> Result<String> {
        let mid = self.expand.weight.dims()[0];
        let y = self.expand.export_onnx(g, &format!("{prefix}layers.0."), x, channels_in)?;
        let y = self.depthwise.export_onnx(g, &format!("{prefix}layers.1."), &y, mid)?;
        let w = g.param(&format!("{prefix}layers.2.weight"), ParamRef::R4(&self.project))?;
        let y = g.conv_node(&format!("{prefix}layers.2"), &y, &w, None, (1, 1, 1), [0; 4], false);
        let y = export_group_norm(g, &format!("{prefix}layers.3"), &y, (&self.gamma, &self.beta))?;
        let out = self.project.dims()[0];
        Ok(if out == channels_in { g.add(prefix.trim_end_matches('.'), x, &y) } else { y })
    }
}

/// The generator.
#[derive(Module, Debug)]
pub struct AnimeGan {
    block_a: Vec<ConvNormLReLU>,
    block_b: Vec<ConvNormLReLU>,
    c_in: ConvNormLReLU,
    c_blocks: Vec<InvertedResBlock>,
    c_out: ConvNormLReLU,
    block_d: Vec<ConvNormLReLU>,
    block_e: Vec<ConvNormLReLU>,
    out: Param<Tensor<4>>,
}

/// A `ConvNormLReLU` list: (index, [out, in, k], stride).
fn convs(w: &Weights, block: &str, layers: &[(usize, [usize; 3], usize)], device: &Device) -> Result<Vec<ConvNormLReLU>> {
    layers
        .iter()
        .map(|&(i, [o, c, k], s)| ConvNormLReLU::load(w, &format!("{block}.{i}."), [o, c, k, k], s, false, device))
        .collect()
}

impl AnimeGan {
    /// Whether the weights look like this generator.
    pub fn detect(w: &Weights) -> bool {
        w.has("block_a.0.1.weight") && w.has("block_c.1.layers.1.1.weight") && w.has("out_layer.0.weight")
    }

    /// Builds the generator, checking every shape and refusing unknown tensors.
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        w.reject_unexpected(|k| ["block_a.", "block_b.", "block_c.", "block_d.", "block_e.", "out_layer."].iter().any(|p| k.starts_with(p)))?;
        Ok(Self {
            block_a: convs(w, "block_a", &[(0, [32, 3, 7], 1), (1, [64, 32, 3], 2), (2, [64, 64, 3], 1)], device)?,
            block_b: convs(w, "block_b", &[(0, [128, 64, 3], 2), (1, [128, 128, 3], 1)], device)?,
            c_in: ConvNormLReLU::load(w, "block_c.0.", [128, 128, 3, 3], 1, false, device)?,
            c_blocks: [(1, 128, 256), (2, 256, 256), (3, 256, 256), (4, 256, 256)]
                .iter()
                .map(|&(i, ci, co)| InvertedResBlock::load(w, &format!("block_c.{i}."), ci, co, device))
                .collect::<Result<Vec<_>>>()?,
            c_out: ConvNormLReLU::load(w, "block_c.5.", [128, 256, 3, 3], 1, false, device)?,
            block_d: convs(w, "block_d", &[(0, [128, 128, 3], 1), (1, [128, 128, 3], 1)], device)?,
            block_e: convs(w, "block_e", &[(0, [64, 128, 3], 1), (1, [64, 64, 3], 1), (2, [32, 64, 7], 1)], device)?,
            out: w.param("out_layer.0.weight", [3, 32, 1, 1], device)?,
        })
    }

    /// RGB in -1..1 to RGB in -1..1 (tanh), with `block_c`'s output.
    pub fn forward_traced(&self, x: Tensor<4>, up: Upsampling, ctx: &mut NormContext) -> (Tensor<4>, Tensor<4>) {
        let [_, _, h, w] = x.dims();
        let mut y = x;
        for l in &self.block_a {
            y = l.forward(y, ctx);
        }
        let [_, _, hh, hw] = y.dims();
        for l in &self.block_b {
            y = l.forward(y, ctx);
        }
        y = self.c_in.forward(y, ctx);
        for b in &self.c_blocks {
            y = b.forward(y, ctx);
        }
        let c = self.c_out.forward(y, ctx);
        let resize = |t: Tensor<4>, size: [usize; 2]| match up {
            Upsampling::AlignCorners => kernels::resize_bilinear_aligned(t, size),
            Upsampling::Scale2 => kernels::upsample_bilinear2x(t),
        };
        let mut y = resize(c.clone(), [hh, hw]);
        for l in &self.block_d {
            y = l.forward(y, ctx);
        }
        y = resize(y, [h, w]);
        for l in &self.block_e {
            y = l.forward(y, ctx);
        }
        let y = kernels::conv2d(y, self.out.val(), None, Geometry::same(0, false)).tanh();
        (y, c)
    }

    /// ONNX export of [`AnimeGan::forward_traced`]'s output with [`Upsampling::AlignCorners`]
    /// (the sample's own statistics): `x` is RGB in -1..1 `[N, 3, H, W]` (sides at least
    /// [`MIN_SIDE`]), the returned value RGB in -1..1 (tanh) at the input's size. The two
    /// resizes (`block_d.resize`, `block_e.resize`) take their sizes from `block_a`'s output and
    /// the input in the graph (`Shape`, `align_corners`). Names follow the port's state dict
    /// (`block_a.0.1` with `block_a.0.1.weight`, ..., `out_layer.0`, `out_layer.1` the tanh).
    pub fn export_onnx(&self, g: &mut Graph, x: &str) -> Result<String> {
        let mut y = x.to_string();
        let mut c = 3;
        for (i, l) in self.block_a.iter().enumerate() {
            y = l.export_onnx(g, &format!("block_a.{i}."), &y, c)?;
            c = l.weight.dims()[0];
        }
        let half = y.clone();
        for (i, l) in self.block_b.iter().enumerate() {
            y = l.export_onnx(g, &format!("block_b.{i}."), &y, c)?;
            c = l.weight.dims()[0];
        }
        y = self.c_in.export_onnx(g, "block_c.0.", &y, c)?;
        c = self.c_in.weight.dims()[0];
        for (i, b) in self.c_blocks.iter().enumerate() {
            y = b.export_onnx(g, &format!("block_c.{}.", i + 1), &y, c)?;
            c = b.project.dims()[0];
        }
        y = self.c_out.export_onnx(g, "block_c.5.", &y, c)?;
        c = self.c_out.weight.dims()[0];
        y = g.resize_like("block_d.resize", &y, &half, Interpolation::LinearAlignCorners);
        for (i, l) in self.block_d.iter().enumerate() {
            y = l.export_onnx(g, &format!("block_d.{i}."), &y, c)?;
            c = l.weight.dims()[0];
        }
        y = g.resize_like("block_e.resize", &y, x, Interpolation::LinearAlignCorners);
        for (i, l) in self.block_e.iter().enumerate() {
            y = l.export_onnx(g, &format!("block_e.{i}."), &y, c)?;
            c = l.weight.dims()[0];
        }
        let w = g.param("out_layer.0.weight", ParamRef::R4(&self.out))?;
        let y = g.conv_node("out_layer.0", &y, &w, None, (1, 1, 1), [0; 4], false);
        Ok(g.tanh("out_layer.1", &y))
    }

    /// RGB 0..255 `[1, 3, H, W]` in, RGB 0..255 of the same size out (clamped). Sides under 8
    /// pixels (too small for the reflection padding after two stride-2 stages) are edge-padded
    /// first and cropped back.
    pub fn forward_any_size(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let pad = |v: usize| MIN_SIDE.saturating_sub(v);
        let x = x / 127.5 - 1.0;
        let x = if h < MIN_SIDE || w < MIN_SIDE { x.pad([(0, pad(h)), (0, pad(w))], burn::tensor::ops::PadMode::Edge) } else { x };
        let (y, _) = self.forward_traced(x, Upsampling::AlignCorners, ctx);
        ((y.slice([0..n, 0..3, 0..h, 0..w]) + 1.0) * 127.5).clamp(0.0, 255.0)
    }
}
