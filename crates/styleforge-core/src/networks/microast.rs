//! MicroAST (Wang et al., "MicroAST: Towards Super-Fast Ultra-Resolution Arbitrary Style
//! Transfer", AAAI 2023; reference code EndyWon/MicroAST, `net_microAST.py`, MIT licence).
//!
//! Arbitrary style transfer without VGG at inference: a content encoder and a style encoder of
//! the same micro architecture (separate weights), a modulator, and a decoder.
//! - **Encoder** (`enc1`, `enc2`): reflection-padded convolutions 3→16 (9×9), 16→32 (3×3,
//!   stride 2, 16 groups), 32→32 (1×1), 32→64 (3×3, stride 2, 32 groups), 64→64 (1×1), each with a
//!   ReLU, then a residual layer; `enc2` is a second residual layer. Its two outputs `f0`, `f1`
//!   are `[N, 64, ⌈⌈H/2⌉/2⌉, ⌈⌈W/2⌉/2⌉]`.
//! - **Modulator**: for each style feature, two depthwise 3×3 convolutions followed by a global
//!   average pool give the per-channel filter weights and biases `[N, 64, 1, 1]`
//!   (`weight1`/`bias1` from `f0`, `weight2`/`bias2` from `f1`).
//! - **Decoder**: AdaIN of the content's `f1` to the style's `f1` (mean and standard deviation
//!   over H·W, unbiased variance + 1e-5), a residual layer whose two convolutions are modulated
//!   (`w·conv(x) + b·x`) with the second pair of signals, AdaIN to the style's `f0`, a residual
//!   layer modulated with the first pair, then two bilinear ×2 upsamplings (`align_corners =
//!   False`), each followed by a grouped 3×3 and a 1×1 convolution with ReLUs, and a 9×9
//!   convolution to RGB.
//!
//! Input RGB in 0..1 (no normalisation), output RGB in about 0..1, unclamped, of side
//! `4·⌈⌈H/2⌉/2⌉` (a multiple of 4, at least the input's).
//!
//! A library model holds the four published state dicts under the prefixes `content_encoder.`,
//! `style_encoder.`, `modulator.` and `decoder.` with their original key names.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::networks::layers::{Conv, Padding};
use crate::onnx::graph::{Graph, Interpolation};
use crate::weights::Weights;

/// Channels of the encoders' features (and of the modulation signals).
pub const CHANNELS: usize = 64;

/// The variance offset of the reference's `calc_mean_std`.
pub const EPS: f64 = 1e-5;

/// Smallest input side: the stride-2 convolutions reflect one pixel, so each stage needs two.
pub const MIN_SIDE: u32 = 4;

/// The four parts of a MicroAST model and their key prefixes in a library file.
pub const PARTS: [&str; 4] = ["content_encoder", "style_encoder", "modulator", "decoder"];

/// A reflection-padded convolution (`ConvLayer`: `{prefix}conv_layer.weight/bias`);
/// `shape` is `[out, in / groups, k, k]`.
fn conv_layer(w: &Weights, prefix: &str, shape: [usize; 4], stride: usize, device: &Device) -> Result<Conv> {
    Conv::load(w, &format!("{prefix}conv_layer."), shape, true, stride, Padding::Reflect, device)
}

/// The reference's `ResidualLayer` of two reflection-padded 3×3 convolutions (64 channels).
#[derive(Module, Debug)]
pub struct Residual {
    conv1: Conv,
    conv2: Conv,
}

impl Residual {
    fn load(w: &Weights, prefix: &str, device: &Device) -> Result<Self> {
        let shape = [CHANNELS, CHANNELS, 3, 3];
        Ok(Self {
            conv1: conv_layer(w, &format!("{prefix}conv1."), shape, 1, device)?,
            conv2: conv_layer(w, &format!("{prefix}conv2."), shape, 1, device)?,
        })
    }

    /// `x + conv2(relu(conv1(x)))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv2.forward(self.conv1.forward_relu(x.clone()));
        x + y
    }

    /// The filter-modulated form: `y = relu(w·conv1(x) + b·x)`, `x + w·conv2(y) + b·y`, with
    /// `w`, `b` `[N, 64, 1, 1]` (or full-size maps).
    pub fn forward_modulated(&self, x: Tensor<4>, w: &Tensor<4>, b: &Tensor<4>) -> Tensor<4> {
        let y = relu(self.conv1.forward(x.clone()) * w.clone() + x.clone() * b.clone());
        let z = self.conv2.forward(y.clone()) * w.clone() + y * b.clone();
        x + z
    }

    /// ONNX export of [`Residual::forward`] on `x` under `prefix` (`enc1.10.`): the two
    /// reflection-padded convolutions `{prefix}conv1.conv_layer` (with its ReLU) and
    /// `{prefix}conv2.conv_layer`, and the `Add` `{prefix}` without its trailing dot.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str) -> Result<String> {
        let y = self.conv1.export_onnx_relu(g, &format!("{prefix}conv1.conv_layer."), x, 1)?;
        let y = self.conv2.export_onnx(g, &format!("{prefix}conv2.conv_layer."), &y, 1)?;
        Ok(g.add(prefix.trim_end_matches('.'), x, &y))
    }

    /// ONNX export of [`Residual::forward_modulated`] on `x` with the modulation values `w` and
    /// `b` (`[N, 64, 1, 1]`), under `prefix` (`decoder.dec1.`): nodes `{prefix}conv1.*`,
    /// `{prefix}mod1.*`, `{prefix}conv2.*`, `{prefix}mod2.*` and the `Add` `{prefix}`.
    pub fn export_onnx_modulated(&self, g: &mut Graph, prefix: &str, x: &str, (w, b): (&str, &str)) -> Result<String> {
        let modulate = |g: &mut Graph, name: &str, conv: &str, input: &str| {
            let scaled = g.mul(&format!("{name}.weight"), conv, w);
            let shift = g.mul(&format!("{name}.bias"), input, b);
            g.add(name, &scaled, &shift)
        };
        let c = self.conv1.export_onnx(g, &format!("{prefix}conv1.conv_layer."), x, 1)?;
        let y = modulate(g, &format!("{prefix}mod1"), &c, x);
        let y = g.relu(&format!("{prefix}mod1.relu"), &y);
        let c = self.conv2.export_onnx(g, &format!("{prefix}conv2.conv_layer."), &y, 1)?;
        let z = modulate(g, &format!("{prefix}mod2"), &c, &y);
        Ok(g.add(prefix.trim_end_matches('.'), x, &z))
    }
}

/// A MicroAST encoder (content or style: the same architecture).
#[derive(Module, Debug)]
pub struct MicroEncoder {
    convs: Vec<Conv>,
    res1: Residual,
    res2: Residual,
}

/// The encoder's convolutions before its residual layers: (index in `enc1`, shape, stride).
const ENCODER: [(usize, [usize; 4], usize); 5] = [
    (0, [16, 3, 9, 9], 1),
    (2, [32, 1, 3, 3], 2),
    (4, [32, 32, 1, 1], 1),
    (6, [64, 1, 3, 3], 2),
    (8, [64, 64, 1, 1], 1),
];

impl MicroEncoder {
    /// Loads `enc1.*` and `enc2.*`, checking every shape.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let convs = ENCODER
            .iter()
            .map(|&(i, shape, s)| conv_layer(w, &format!("enc1.{i}."), shape, s, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            convs,
            res1: Residual::load(w, "enc1.10.", device)?,
            res2: Residual::load(w, "enc2.0.", device)?,
        })
    }

    /// Whether the weights look like a MicroAST encoder.
    pub fn detect(w: &Weights) -> bool {
        w.shape("enc1.2.conv_layer.weight").is_ok_and(|s| s == [32, 1, 3, 3]) && w.has("enc2.0.conv1.conv_layer.weight")
    }

    /// The features `[f0, f1]` (`enc1`'s and `enc2`'s outputs) of RGB in 0..1 `[N, 3, H, W]`
    /// (H, W ≥ [`MIN_SIDE`]).
    pub fn forward(&self, x: Tensor<4>) -> [Tensor<4>; 2] {
        let mut y = x;
        for conv in &self.convs {
            y = conv.forward_relu(y);
        }
        let f0 = self.res1.forward(y);
        let f1 = self.res2.forward(f0.clone());
        [f0, f1]
    }

    /// ONNX export of [`MicroEncoder::forward`] on `x` (RGB 0..1) under `prefix`
    /// (`content_encoder.`): the convolutions `{prefix}enc1.{i}.conv_layer` (reflection `Pad`
    /// `….pad`, grouped where the reference groups) with their ReLUs, and the residual layers
    /// `{prefix}enc1.10` and `{prefix}enc2.0`. Returns `[f0, f1]`.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, x: &str) -> Result<[String; 2]> {
        let mut y = x.to_string();
        let mut channels = 3;
        for (conv, &(i, shape, _)) in self.convs.iter().zip(ENCODER.iter()) {
            y = conv.export_onnx_relu(g, &format!("{prefix}enc1.{i}.conv_layer."), &y, channels / shape[1])?;
            channels = shape[0];
        }
        let f0 = self.res1.export_onnx(g, &format!("{prefix}enc1.10."), &y)?;
        let f1 = self.res2.export_onnx(g, &format!("{prefix}enc2.0."), &f0)?;
        Ok([f0, f1])
    }
}

/// The modulator: style features to filter weights and biases.
#[derive(Module, Debug)]
pub struct Modulator {
    weight1: Conv,
    bias1: Conv,
    weight2: Conv,
    bias2: Conv,
}

impl Modulator {
    /// Loads `weight1.0.*`, `bias1.0.*`, `weight2.0.*`, `bias2.0.*` (depthwise 3×3).
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let dw = |name: &str| conv_layer(w, &format!("{name}.0."), [CHANNELS, 1, 3, 3], 1, device);
        Ok(Self { weight1: dw("weight1")?, bias1: dw("bias1")?, weight2: dw("weight2")?, bias2: dw("bias2")? })
    }

    /// Whether the weights look like the modulator.
    pub fn detect(w: &Weights) -> bool {
        w.shape("weight1.0.conv_layer.weight").is_ok_and(|s| s == [CHANNELS, 1, 3, 3])
    }

    /// `([w0, w1], [b0, b1])`, each `[N, 64, 1, 1]`, from the style features `[f0, f1]`.
    pub fn forward(&self, f: &[Tensor<4>; 2]) -> ([Tensor<4>; 2], [Tensor<4>; 2]) {
        let pool = |conv: &Conv, x: &Tensor<4>| conv.forward(x.clone()).mean_dim(3).mean_dim(2);
        (
            [pool(&self.weight1, &f[0]), pool(&self.weight2, &f[1])],
            [pool(&self.bias1, &f[0]), pool(&self.bias2, &f[1])],
        )
    }

    /// ONNX export of [`Modulator::forward`] on the style features `[f0, f1]` under `prefix`
    /// (`modulator.`): each depthwise convolution `{prefix}{weight1,bias1,weight2,bias2}.0.conv_layer`
    /// followed by a `ReduceMean` over H, W (`….pool`). Returns `([w0, w1], [b0, b1])`.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, f: &[String; 2]) -> Result<([String; 2], [String; 2])> {
        let mut pool = |conv: &Conv, name: &str, x: &str| -> Result<String> {
            let y = conv.export_onnx(g, &format!("{prefix}{name}.0.conv_layer."), x, CHANNELS)?;
            Ok(g.reduce_mean(&format!("{prefix}{name}.pool"), &y, &[2, 3]))
        };
        let w0 = pool(&self.weight1, "weight1", &f[0])?;
        let b0 = pool(&self.bias1, "bias1", &f[0])?;
        let w1 = pool(&self.weight2, "weight2", &f[1])?;
        let b1 = pool(&self.bias2, "bias2", &f[1])?;
        Ok(([w0, w1], [b0, b1]))
    }
}

/// What the decoder aims at for one level: the AdaIN target mean and standard deviation and the
/// filter modulation, each `[1, 64, 1, 1]` or, for spatially varying styles, `[1, 64, h, w]` at
/// the features' size.
#[derive(Debug, Clone)]
pub struct LevelTarget {
    /// Target mean.
    pub mean: Tensor<4>,
    /// Target standard deviation (`sqrt(unbiased variance + 1e-5)`).
    pub std: Tensor<4>,
    /// Filter weight `w`.
    pub weight: Tensor<4>,
    /// Filter bias `b`.
    pub bias: Tensor<4>,
}

/// Per-channel mean and standard deviation (`sqrt(unbiased variance + 1e-5)`) of each sample's
/// features `[N, C, H, W]` over H·W (at least 2 positions), `[N, C, 1, 1]` each: the reference's
/// `calc_mean_std`.
pub fn mean_std(x: &Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [n, c, h, w] = x.dims();
    let flat = x.clone().reshape([n, c, h * w]);
    let mean = flat.clone().mean_dim(2);
    let var = (flat - mean.clone()).powi_scalar(2).sum_dim(2).div_scalar((h * w).max(2) as f64 - 1.0);
    (mean.reshape([n, c, 1, 1]), (var + EPS).sqrt().reshape([n, c, 1, 1]))
}

/// ONNX export of [`mean_std`] on `x` `[N, C, H, W]`: nodes `{name}.mean` (`ReduceMean` over
/// H, W) and `{name}.std` (`sqrt(Σ(x - mean)² / (max(H·W, 2) - 1) + 1e-5)`); the count H·W is a
/// `ReduceSum` of ones over one channel's plane, so no shape arithmetic enters the graph.
/// Returns `(mean, std)`, `[N, C, 1, 1]` each.
pub fn export_mean_std(g: &mut Graph, name: &str, x: &str) -> (String, String) {
    let mean = g.reduce_mean(&format!("{name}.mean"), x, &[2, 3]);
    let centred = g.sub(&format!("{name}.centred"), x, &mean);
    let square = g.mul(&format!("{name}.square"), &centred, &centred);
    let sum = g.reduce_sum(&format!("{name}.sum"), &square, &[2, 3]);
    let plane = g.slice(&format!("{name}.plane"), x, 1, 0, 1);
    let zero = g.scalar("0e0", 0.0);
    let one = g.scalar("1e0", 1.0);
    let two = g.scalar("2e0", 2.0);
    let zeros = g.mul(&format!("{name}.zeros"), &plane, &zero);
    let ones = g.add(&format!("{name}.ones"), &zeros, &one);
    let count = g.reduce_sum(&format!("{name}.count"), &ones, &[2, 3]);
    let count = g.node("Max", &format!("{name}.count_at_least_2"), &[&count, &two], vec![]);
    let dof = g.sub(&format!("{name}.dof"), &count, &one);
    let var = g.div(&format!("{name}.var"), &sum, &dof);
    let eps = g.scalar(&format!("{:e}", EPS as f32), EPS as f32);
    let var = g.add(&format!("{name}.var_eps"), &var, &eps);
    let std = g.node("Sqrt", &format!("{name}.std"), &[&var], vec![]);
    (mean, std)
}

/// ONNX export of [`adain`]: `(x - mean) / std · target_std + target_mean`, nodes `{name}.*`
/// and the last one `name`.
pub fn export_adain(g: &mut Graph, name: &str, x: &str, (mean, std): (&str, &str), (target_mean, target_std): (&str, &str)) -> String {
    let centred = g.sub(&format!("{name}.centred"), x, mean);
    let normalized = g.div(&format!("{name}.normalized"), &centred, std);
    let scaled = g.mul(&format!("{name}.scaled"), &normalized, target_std);
    g.add(name, &scaled, target_mean)
}

/// AdaIN of `x` with its statistics `(mean, std)` to the target's.
pub fn adain(x: Tensor<4>, (mean, std): &(Tensor<4>, Tensor<4>), target: &LevelTarget) -> Tensor<4> {
    (x - mean.clone()) / std.clone() * target.std.clone() + target.mean.clone()
}

/// The decoder.
#[derive(Module, Debug)]
pub struct MicroDecoder {
    dec1: Residual,
    dec2: Residual,
    head: Vec<Conv>,
}

/// The convolutions of `dec3`: (index, shape); bilinear ×2 upsamplings stand at 0 and 5.
const HEAD: [(usize, [usize; 4]); 5] = [
    (1, [32, 2, 3, 3]),
    (3, [32, 32, 1, 1]),
    (6, [16, 2, 3, 3]),
    (8, [16, 16, 1, 1]),
    (10, [3, 16, 9, 9]),
];

impl MicroDecoder {
    /// Loads `dec1.*`, `dec2.*`, `dec3.*`, checking every shape.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let head = HEAD
            .iter()
            .map(|&(i, shape)| conv_layer(w, &format!("dec3.{i}."), shape, 1, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { dec1: Residual::load(w, "dec1.", device)?, dec2: Residual::load(w, "dec2.", device)?, head })
    }

    /// Whether the weights look like the decoder.
    pub fn detect(w: &Weights) -> bool {
        w.shape("dec3.10.conv_layer.weight").is_ok_and(|s| s == [3, 16, 9, 9])
    }

    /// The first stage: the content's `f1` (with its statistics) brought to the level-1 target
    /// and blended with itself by `alpha` (the reference's alpha; 1 for a full transfer), then the
    /// modulated `dec1`. Returns the features the second AdaIN normalises.
    pub fn stage1(&self, f1: Tensor<4>, stats: &(Tensor<4>, Tensor<4>), target: &LevelTarget, alpha: f32) -> Tensor<4> {
        let x = blend(adain(f1.clone(), stats, target), f1, alpha);
        self.dec1.forward_modulated(x, &target.weight, &target.bias)
    }

    /// The second stage: [`MicroDecoder::stage1`]'s output (with its statistics) brought to the
    /// level-0 target, blended by `alpha`, the modulated `dec2`, and the upsampling head: RGB
    /// `[N, 3, 4h, 4w]` in about 0..1, unclamped.
    pub fn stage2(&self, x: Tensor<4>, stats: &(Tensor<4>, Tensor<4>), target: &LevelTarget, alpha: f32) -> Tensor<4> {
        let y = blend(adain(x.clone(), stats, target), x, alpha);
        let mut y = self.dec2.forward_modulated(y, &target.weight, &target.bias);
        for (i, conv) in self.head.iter().enumerate() {
            y = match i {
                0 | 2 => conv.forward_bilinear_relu(y),
                4 => conv.forward(y),
                _ => conv.forward_relu(y),
            };
        }
        y
    }

    /// ONNX export of [`MicroDecoder::stage1`] and [`MicroDecoder::stage2`] at `alpha = 1` under
    /// `prefix` (`decoder.`): `f1` is the content's level-1 features, `targets[l]` the level-`l`
    /// target `(mean, std, weight, bias)` values. The AdaIN steps (`{prefix}adain1`,
    /// `{prefix}adain0`) normalise with the features' own statistics; the head's bilinear ×2
    /// upsamplings are `Resize` nodes (`half_pixel`, PyTorch's `align_corners=False`) called
    /// `{prefix}dec3.0` and `{prefix}dec3.5`. Returns RGB `[N, 3, 4h, 4w]` in about 0..1.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, f1: &str, targets: &[[String; 4]; 2]) -> Result<String> {
        let level = |l: usize| {
            let [m, s, w, b] = &targets[l];
            (m.clone(), s.clone(), w.clone(), b.clone())
        };
        let (m1, s1, w1, b1) = level(1);
        let (mean, std) = export_mean_std(g, &format!("{prefix}adain1.content"), f1);
        let x = export_adain(g, &format!("{prefix}adain1"), f1, (&mean, &std), (&m1, &s1));
        let x = self.dec1.export_onnx_modulated(g, &format!("{prefix}dec1."), &x, (&w1, &b1))?;
        let (m0, s0, w0, b0) = level(0);
        let (mean, std) = export_mean_std(g, &format!("{prefix}adain0.content"), &x);
        let y = export_adain(g, &format!("{prefix}adain0"), &x, (&mean, &std), (&m0, &s0));
        let mut y = self.dec2.export_onnx_modulated(g, &format!("{prefix}dec2."), &y, (&w0, &b0))?;
        let mut channels = CHANNELS;
        for (conv, &(i, shape)) in self.head.iter().zip(HEAD.iter()) {
            if i == 1 || i == 6 {
                y = g.resize_scale(&format!("{prefix}dec3.{}", i - 1), &y, 2.0, Interpolation::LinearHalfPixel);
            }
            let name = format!("{prefix}dec3.{i}.conv_layer.");
            let groups = channels / shape[1];
            y = if i == 10 { conv.export_onnx(g, &name, &y, groups)? } else { conv.export_onnx_relu(g, &name, &y, groups)? };
            channels = shape[0];
        }
        Ok(y)
    }
}

fn blend(t: Tensor<4>, x: Tensor<4>, alpha: f32) -> Tensor<4> {
    if alpha >= 1.0 { t } else { t * alpha + x * (1.0 - alpha) }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The four networks of MicroAST.
#[derive(Module, Debug)]
pub struct MicroAst {
    /// Content encoder.
    pub content_encoder: MicroEncoder,
    /// Style encoder.
    pub style_encoder: MicroEncoder,
    /// Modulator.
    pub modulator: Modulator,
    /// Decoder.
    pub decoder: MicroDecoder,
    /// A number unique to this model in the process (keys caches of style signals).
    #[module(skip)]
    pub id: u64,
}

/// The intermediate tensors of one reference pass, for parity checks.
#[derive(Debug)]
pub struct Trace {
    /// The content encoder's `[f0, f1]`.
    pub content: [Tensor<4>; 2],
    /// The style encoder's `[f0, f1]`.
    pub style: [Tensor<4>; 2],
    /// Filter weights `[w0, w1]`.
    pub weight: [Tensor<4>; 2],
    /// Filter biases `[b0, b1]`.
    pub bias: [Tensor<4>; 2],
    /// The output, RGB `[N, 3, 4h, 4w]`, unclamped.
    pub output: Tensor<4>,
}

impl MicroAst {
    /// Builds the model from a combined map (`content_encoder.*`, `style_encoder.*`,
    /// `modulator.*`, `decoder.*`), checking every shape and refusing unknown tensors.
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        w.reject_unexpected(|k| PARTS.iter().any(|p| k.strip_prefix(p).is_some_and(|r| r.starts_with('.'))))?;
        let part = |p: &str| w.with_prefix(&format!("{p}."));
        let in_part = |p: &'static str| move |e: Error| match e {
            Error::Weights(m) => Error::Weights(format!("MicroAST {p}: {m}")),
            other => other,
        };
        Ok(Self {
            content_encoder: MicroEncoder::load(&part("content_encoder"), device).map_err(in_part("content encoder"))?,
            style_encoder: MicroEncoder::load(&part("style_encoder"), device).map_err(in_part("style encoder"))?,
            modulator: Modulator::load(&part("modulator"), device).map_err(in_part("modulator"))?,
            decoder: MicroDecoder::load(&part("decoder"), device).map_err(in_part("decoder"))?,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Whether a combined map holds the four parts.
    pub fn detect(w: &Weights) -> bool {
        MicroEncoder::detect(&w.with_prefix("content_encoder."))
            && MicroEncoder::detect(&w.with_prefix("style_encoder."))
            && Modulator::detect(&w.with_prefix("modulator."))
            && MicroDecoder::detect(&w.with_prefix("decoder."))
    }

    /// The style's targets for levels 0 and 1 from a style image, RGB 0..1 `[1, 3, H, W]`.
    pub fn style_targets(&self, style: Tensor<4>) -> [LevelTarget; 2] {
        let f = self.style_encoder.forward(style);
        let ([w0, w1], [b0, b1]) = self.modulator.forward(&f);
        let [f0, f1] = f;
        let (m0, s0) = mean_std(&f0);
        let (m1, s1) = mean_std(&f1);
        [
            LevelTarget { mean: m0, std: s0, weight: w0, bias: b0 },
            LevelTarget { mean: m1, std: s1, weight: w1, bias: b1 },
        ]
    }

    /// ONNX export of the reference's `TestNet.forward(content, style, 1)` ([`MicroAst::forward_traced`]
    /// at `alpha = 1`): `content` and `style` are RGB 0..1 `[N, 3, H, W]` and `[N, 3, Hs, Ws]`
    /// (sides at least [`MIN_SIDE`]); the returned value is RGB in about 0..1, unclamped,
    /// `[N, 3, 4⌈⌈H/2⌉/2⌉, 4⌈⌈W/2⌉/2⌉]`. The style's signals (the style encoder's feature
    /// statistics and the modulator's filter weights and biases) are computed in the graph from
    /// the `style` input and modulate the decoder per channel (`Mul`/`Add` of `[N, 64, 1, 1]`
    /// values): no convolution kernel depends on the style, so every runtime with the standard
    /// operators runs it. Names: the four parts' state dicts under their prefixes
    /// (`content_encoder.enc1.0.conv_layer.weight`, ...).
    pub fn export_onnx(&self, g: &mut Graph, content: &str, style: &str) -> Result<String> {
        let sf = self.style_encoder.export_onnx(g, "style_encoder.", style)?;
        let (weight, bias) = self.modulator.export_onnx(g, "modulator.", &sf)?;
        let [_, f1] = self.content_encoder.export_onnx(g, "content_encoder.", content)?;
        let target = |g: &mut Graph, l: usize| {
            let (mean, std) = export_mean_std(g, &format!("style.level{l}"), &sf[l]);
            [mean, std, weight[l].clone(), bias[l].clone()]
        };
        let targets = [target(g, 0), target(g, 1)];
        self.decoder.export_onnx(g, "decoder.", &f1, &targets)
    }

    /// The reference's `TestNet.forward(content, style, alpha)` with its intermediate tensors:
    /// content and style RGB 0..1 `[1, 3, H, W]`; alpha as published (it blends only the AdaIN
    /// steps; below 1 the filter modulation stays at full strength and the output leaves 0..1).
    pub fn forward_traced(&self, content: Tensor<4>, style: Tensor<4>, alpha: f32) -> Trace {
        let sf = self.style_encoder.forward(style);
        let (weight, bias) = self.modulator.forward(&sf);
        let cf = self.content_encoder.forward(content);
        let target = |level: usize| {
            let (mean, std) = mean_std(&sf[level]);
            LevelTarget { mean, std, weight: weight[level].clone(), bias: bias[level].clone() }
        };
        let x = self.decoder.stage1(cf[1].clone(), &mean_std(&cf[1]), &target(1), alpha);
        let output = self.decoder.stage2(x.clone(), &mean_std(&x), &target(0), alpha);
        Trace { content: cf, style: sf, weight, bias, output }
    }
}
