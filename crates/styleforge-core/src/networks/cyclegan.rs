//! CycleGAN's networks as in junyanz/pytorch-CycleGAN-and-pix2pix: the ResNet generator and the
//! 70×70 PatchGAN (`NLayerDiscriminator`), both with instance norm without affine parameters
//! (eps 1e-5, biased variance), so every convolution has a bias. Images are RGB in `[-1, 1]`.
//!
//! Tensor names follow the reference's `nn.Sequential` indices (`model.N.weight/bias`); the
//! generator's width (`ngf`) and block count, and the discriminator's width and depth, are read
//! from the weights. The official zoo generators are ngf=64 with 9 blocks.
//!
//! Generator: ReflectionPad(3)+conv7×7+IN+ReLU; two stride-2 conv3×3 (zero pad 1)+IN+ReLU;
//! n residual blocks (ReflectionPad(1)+conv3×3+IN+ReLU+ReflectionPad(1)+conv3×3+IN, plus the skip);
//! two ConvTranspose2d(k3, s2, p1, output_padding 1)+IN+ReLU; ReflectionPad(3)+conv7×7+tanh.
//! Input sides must be multiples of 4 for the output to have the input's size.
//!
//! Discriminator: conv4×4 s2 p1 + LeakyReLU(0.2); `n_layers` conv4×4 p1 + IN + LeakyReLU(0.2),
//! stride 2 except the last (stride 1); a final conv4×4 s1 p1 to one channel (no activation).

use burn::module::{Module, Param};
use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{DType, Device, Gradients, Tensor};

use crate::kernels::cpu_conv::{self, Geometry};
use crate::kernels::{cpu_conv_grad, cpu_norm_grad};
use crate::error::{Error, Result};
use crate::networks::layers::{Conv, NormContext, Padding};
use crate::weights::{HostTensor, Weights};

/// Instance-norm epsilon of the reference.
pub const EPS: f64 = 1e-5;
/// LeakyReLU slope of the discriminator.
pub const LEAKY_SLOPE: f64 = 0.2;

/// A convolution with explicit zero padding on every side; weights `[out, in, k, k]`.
#[derive(Module, Debug)]
pub struct PaddedConv {
    /// Kernel `[out, in, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Bias `[out]`, if the layer has one.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl PaddedConv {
    /// Loads `{prefix}weight` (and `{prefix}bias` when `bias`), checking `[out, in, k, k]`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        shape: [usize; 4],
        bias: bool,
        stride: usize,
        pad: usize,
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
            pad,
        })
    }

    /// Applies the convolution ([`cpu_conv`] and [`cpu_conv_grad`] on flex tensors).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (s, p) = (self.stride, self.pad);
        let (weight, bias) = (self.weight.val(), self.bias.as_ref().map(|b| b.val()));
        let g = Geometry { stride: s, pad: [p; 4], reflect: false, upsample: false, relu: false };
        cpu_conv::conv2d(&x, &weight, bias.as_ref(), g)
            .or_else(|| cpu_conv_grad::conv2d(&x, &weight, bias.as_ref(), g))
            .unwrap_or_else(|| conv2d(x, weight, bias, ConvOptions::new([s, s], [p, p], [1, 1], 1)))
    }

    /// Visits `{prefix}weight` (and `{prefix}bias`).
    pub fn walk(&self, prefix: &str, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        f(format!("{prefix}weight"), ParamRef::R4(&self.weight));
        if let Some(b) = &self.bias {
            f(format!("{prefix}bias"), ParamRef::R1(b));
        }
    }
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
        let weight = w.param(&format!("{prefix}weight"), shape, device)?;
        let bias = if bias {
            Some(w.param(&format!("{prefix}bias"), [shape[1]], device)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            pad,
            out_pad,
        })
    }

    /// Applies the transposed convolution ([`cpu_conv_grad::conv_transpose2d`] on flex tensors).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (s, p, o) = (self.stride, self.pad, self.out_pad);
        let (weight, bias) = (self.weight.val(), self.bias.as_ref().map(|b| b.val()));
        cpu_conv_grad::conv_transpose2d(&x, &weight, bias.as_ref(), [s, p, o]).unwrap_or_else(|| {
            conv_transpose2d(x, weight, bias, ConvTransposeOptions::new([s, s], [p, p], [o, o], [1, 1], 1))
        })
    }

    /// Visits `{prefix}weight` (and `{prefix}bias`).
    pub fn walk(&self, prefix: &str, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        f(format!("{prefix}weight"), ParamRef::R4(&self.weight));
        if let Some(b) = &self.bias {
            f(format!("{prefix}bias"), ParamRef::R1(b));
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

fn conv_walk(c: &Conv, prefix: &str, f: &mut dyn FnMut(String, ParamRef<'_>)) {
    f(format!("{prefix}weight"), ParamRef::R4(&c.weight));
    if let Some(b) = &c.bias {
        f(format!("{prefix}bias"), ParamRef::R1(b));
    }
}

/// Instance normalisation (per sample and channel over H×W, biased variance) through `ctx`.
///
/// With a local context on an autodiff device the arithmetic runs in float64: the backward pass of
/// a normalisation subtracts per-channel sums of the incoming gradient, and float32 sums leave a
/// residual per-channel mean that the next convolution's kernel gradient multiplies by its input's
/// mean, a relative error of about 1e-2 after a few layers. PyTorch accumulates these sums in
/// double on the CPU; this does the same. Inference stays in float32 (its error is ~1e-6).
pub fn instance_norm(ctx: &mut NormContext, x: Tensor<4>, eps: f64) -> Tensor<4> {
    if x.is_autodiff() && matches!(ctx, NormContext::Local) && x.dtype() != DType::F64 {
        let dt = x.dtype();
        return ctx.normalize(x.cast(DType::F64), eps).cast(dt);
    }
    ctx.normalize(x, eps)
}

/// Instance norm and an optional ReLU as the networks use them: one fused pass on flex tensors
/// ([`crate::kernels::cpu_norm`] for inference, [`cpu_norm_grad`] on autodiff ones with local statistics,
/// its arithmetic in `f64`), otherwise burn's operations, in `f64` when `exact`.
fn norm_then(ctx: &mut NormContext, x: Tensor<4>, with_relu: bool, exact: bool) -> Tensor<4> {
    if !x.is_autodiff() {
        return ctx.normalize_affine(x, None, with_relu, EPS);
    }
    if matches!(ctx, NormContext::Local) {
        if let Some(y) = cpu_norm_grad::instance_norm(&x, None, with_relu, EPS) {
            return y;
        }
    }
    let y = if exact { instance_norm(ctx, x, EPS) } else { ctx.normalize(x, EPS) };
    if with_relu { relu(y) } else { y }
}

/// Sorted indices `N` of the 4-D tensors named `model.N.weight`.
fn model_conv_indices(w: &Weights) -> Vec<usize> {
    let mut idx: Vec<usize> = w
        .tensors
        .iter()
        .filter(|(_, t)| t.shape.len() == 4)
        .filter_map(|(k, _)| {
            k.strip_prefix("model.")?
                .strip_suffix(".weight")?
                .parse()
                .ok()
        })
        .collect();
    idx.sort_unstable();
    idx
}

/// Whether a key is an instance-norm buffer that PyTorch before 0.4 saved (`running_mean`,
/// `running_var`, `num_batches_tracked`): instance norm without tracked statistics never reads
/// them, and the reference deletes them when it loads such a checkpoint.
pub fn is_legacy_norm_buffer(key: &str) -> bool {
    key.ends_with(".running_mean") || key.ends_with(".running_var") || key.ends_with(".num_batches_tracked")
}

/// Shape of the generator, read from the weights or chosen for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Input channels (3 for RGB).
    pub input_nc: usize,
    /// Output channels (3 for RGB).
    pub output_nc: usize,
    /// Base width: the stem has `ngf` channels, the residual blocks `4 * ngf`.
    pub ngf: usize,
    /// Number of residual blocks.
    pub n_blocks: usize,
    /// Whether the blocks hold a dropout layer (shifts the second convolution's index from 5 to 6;
    /// dropout is the identity at inference, and training here never uses it).
    pub dropout_layout: bool,
}

impl GeneratorConfig {
    /// RGB to RGB with the given width and block count.
    pub fn new(ngf: usize, n_blocks: usize) -> Self {
        Self {
            input_nc: 3,
            output_nc: 3,
            ngf,
            n_blocks,
            dropout_layout: false,
        }
    }

    /// Reads the configuration from a state dict.
    pub fn from_weights(w: &Weights) -> Result<Self> {
        let stem = w.shape("model.1.weight")?;
        if stem.len() != 4 || stem[2] != 7 || stem[3] != 7 {
            return Err(Error::Weights(format!(
                "model.1.weight has shape {stem:?}; a ResNet generator starts with a 7x7 convolution"
            )));
        }
        let (ngf, input_nc) = (stem[0], stem[1]);
        let mut n_blocks = 0;
        while w.has(&format!("model.{}.conv_block.1.weight", 10 + n_blocks)) {
            n_blocks += 1;
        }
        let dropout_layout = n_blocks > 0 && w.has("model.10.conv_block.6.weight");
        let last = format!("model.{}.weight", 17 + n_blocks);
        let output_nc = w.shape(&last)?[0];
        let cfg = Self {
            input_nc,
            output_nc,
            ngf,
            n_blocks,
            dropout_layout,
        };
        if ngf == 0 || input_nc == 0 || output_nc == 0 {
            return Err(Error::Weights(format!(
                "degenerate generator shape {cfg:?}"
            )));
        }
        Ok(cfg)
    }

    /// Every tensor name and shape of this generator, in layer order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (g, nb) = (self.ngf, self.n_blocks);
        let mut v = Vec::new();
        let mut conv = |name: String, shape: [usize; 4], bias: usize| {
            v.push((format!("{name}.weight"), shape.to_vec()));
            v.push((format!("{name}.bias"), vec![bias]));
        };
        conv("model.1".into(), [g, self.input_nc, 7, 7], g);
        conv("model.4".into(), [2 * g, g, 3, 3], 2 * g);
        conv("model.7".into(), [4 * g, 2 * g, 3, 3], 4 * g);
        let second = if self.dropout_layout { 6 } else { 5 };
        for i in 0..nb {
            let b = 10 + i;
            conv(
                format!("model.{b}.conv_block.1"),
                [4 * g, 4 * g, 3, 3],
                4 * g,
            );
            conv(
                format!("model.{b}.conv_block.{second}"),
                [4 * g, 4 * g, 3, 3],
                4 * g,
            );
        }
        conv(format!("model.{}", 10 + nb), [4 * g, 2 * g, 3, 3], 2 * g);
        conv(format!("model.{}", 13 + nb), [2 * g, g, 3, 3], g);
        conv(
            format!("model.{}", 17 + nb),
            [self.output_nc, g, 7, 7],
            self.output_nc,
        );
        v
    }

    /// Fresh weights as the reference initialises them (`init_type=normal`, gain 0.02):
    /// convolution kernels drawn from N(0, 0.02²) by `normal` (a standard normal sampler), biases 0.
    pub fn init_weights(&self, normal: &mut dyn FnMut() -> f32) -> Weights {
        init_conv_weights(self.tensor_shapes(), normal)
    }
}

/// Kernels (rank 4) ~ N(0, 0.02²), everything else zero.
pub(crate) fn init_conv_weights(
    shapes: Vec<(String, Vec<usize>)>,
    normal: &mut dyn FnMut() -> f32,
) -> Weights {
    let mut w = Weights::default();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let data = if shape.len() == 4 {
            (0..n).map(|_| 0.02 * normal()).collect()
        } else {
            vec![0.0; n]
        };
        w.tensors.insert(name, HostTensor::new(shape, data));
    }
    w
}

#[derive(Module, Debug)]
struct ResBlock {
    a: Conv,
    b: Conv,
}

/// The junyanz ResNet generator (`ResnetGenerator`, instance norm, no dropout at inference).
#[derive(Module, Debug)]
pub struct ResnetGenerator {
    stem: Conv,
    down: Vec<Conv>,
    blocks: Vec<ResBlock>,
    up: Vec<ConvTranspose>,
    out: Conv,
    #[module(skip)]
    config: GeneratorConfig,
    #[module(skip)]
    exact_norm_gradients: bool,
}

impl ResnetGenerator {
    /// Whether the tensor names look like a ResNet generator.
    pub fn detect(w: &Weights) -> bool {
        w.has("model.1.weight") && w.has("model.10.conv_block.1.weight")
    }

    /// Builds the generator from a state dict; any tensor it does not use is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let cfg = GeneratorConfig::from_weights(w)?;
        let (g, nb) = (cfg.ngf, cfg.n_blocks);
        let conv = |name: &str, shape, stride, padding| {
            Conv::load(w, name, shape, true, stride, padding, device)
        };
        let stem = conv("model.1.", [g, cfg.input_nc, 7, 7], 1, Padding::Reflect)?;
        let down = vec![
            conv("model.4.", [2 * g, g, 3, 3], 2, Padding::Zero)?,
            conv("model.7.", [4 * g, 2 * g, 3, 3], 2, Padding::Zero)?,
        ];
        let second = if cfg.dropout_layout { 6 } else { 5 };
        let blocks = (0..nb)
            .map(|i| {
                let b = 10 + i;
                Ok(ResBlock {
                    a: conv(
                        &format!("model.{b}.conv_block.1."),
                        [4 * g, 4 * g, 3, 3],
                        1,
                        Padding::Reflect,
                    )?,
                    b: conv(
                        &format!("model.{b}.conv_block.{second}."),
                        [4 * g, 4 * g, 3, 3],
                        1,
                        Padding::Reflect,
                    )?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let up = vec![
            ConvTranspose::load(
                w,
                &format!("model.{}.", 10 + nb),
                [4 * g, 2 * g, 3, 3],
                true,
                (2, 1, 1),
                device,
            )?,
            ConvTranspose::load(
                w,
                &format!("model.{}.", 13 + nb),
                [2 * g, g, 3, 3],
                true,
                (2, 1, 1),
                device,
            )?,
        ];
        let out = conv(
            &format!("model.{}.", 17 + nb),
            [cfg.output_nc, g, 7, 7],
            1,
            Padding::Reflect,
        )?;
        let names: Vec<String> = cfg.tensor_shapes().into_iter().map(|(n, _)| n).collect();
        w.reject_unexpected(|k| names.iter().any(|n| n == k) || is_legacy_norm_buffer(k))?;
        Ok(Self {
            stem,
            down,
            blocks,
            up,
            out,
            config: cfg,
            exact_norm_gradients: true,
        })
    }

    /// Chooses float64 (the default: gradients within ~1e-5 of PyTorch's) or float32 (faster,
    /// gradients within ~1e-2) instance-norm arithmetic on an autodiff device where burn's
    /// operations run; see [`instance_norm`]. On flex tensors the fused operation
    /// ([`cpu_norm_grad`]) runs either way, with `f64` statistics and sums. Inference is float32.
    pub fn with_exact_norm_gradients(mut self, exact: bool) -> Self {
        self.exact_norm_gradients = exact;
        self
    }

    fn norm(&self, ctx: &mut NormContext, x: Tensor<4>) -> Tensor<4> {
        norm_then(ctx, x, false, self.exact_norm_gradients)
    }

    fn norm_relu(&self, ctx: &mut NormContext, x: Tensor<4>) -> Tensor<4> {
        norm_then(ctx, x, true, self.exact_norm_gradients)
    }

    /// The generator's shape.
    pub fn config(&self) -> GeneratorConfig {
        self.config
    }

    /// Runs the generator on NCHW images in `[-1, 1]` (sides multiples of 4); output in `[-1, 1]`.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let mut y = self.norm_relu(ctx, self.stem.forward(x));
        for c in &self.down {
            y = self.norm_relu(ctx, c.forward(y));
        }
        for b in &self.blocks {
            let h = self.norm_relu(ctx, b.a.forward(y.clone()));
            y = y + self.norm(ctx, b.b.forward(h));
        }
        for u in &self.up {
            y = self.norm_relu(ctx, u.forward(y));
        }
        self.out.forward(y).tanh()
    }

    /// Visits every parameter with its reference name.
    pub fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        let nb = self.config.n_blocks;
        conv_walk(&self.stem, "model.1.", f);
        conv_walk(&self.down[0], "model.4.", f);
        conv_walk(&self.down[1], "model.7.", f);
        let second = if self.config.dropout_layout { 6 } else { 5 };
        for (i, b) in self.blocks.iter().enumerate() {
            conv_walk(&b.a, &format!("model.{}.conv_block.1.", 10 + i), f);
            conv_walk(&b.b, &format!("model.{}.conv_block.{second}.", 10 + i), f);
        }
        self.up[0].walk(&format!("model.{}.", 10 + nb), f);
        self.up[1].walk(&format!("model.{}.", 13 + nb), f);
        conv_walk(&self.out, &format!("model.{}.", 17 + nb), f);
    }

    /// The parameters as a state dict with the reference's names.
    pub fn to_weights(&self) -> Result<Weights> {
        collect_weights(|f| self.walk(f))
    }

    /// The parameters' gradients after a backward pass, under the parameters' names.
    pub fn gradients(&self, grads: &Gradients) -> Result<Weights> {
        collect_grads(grads, |f| self.walk(f))
    }
}

/// Shape of the PatchGAN discriminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscriminatorConfig {
    /// Input channels (3 for RGB).
    pub input_nc: usize,
    /// Width of the first convolution.
    pub ndf: usize,
    /// Number of normalised convolutions (3 for the 70×70 PatchGAN).
    pub n_layers: usize,
}

impl DiscriminatorConfig {
    /// RGB input with the given width and depth.
    pub fn new(ndf: usize, n_layers: usize) -> Self {
        Self {
            input_nc: 3,
            ndf,
            n_layers,
        }
    }

    /// Reads the configuration from a state dict.
    pub fn from_weights(w: &Weights) -> Result<Self> {
        let idx = model_conv_indices(w);
        let expected: Vec<usize> = if idx.len() >= 3 {
            let m = idx.len() - 2;
            std::iter::once(0)
                .chain((0..m).map(|i| 2 + 3 * i))
                .chain(std::iter::once(2 + 3 * m))
                .collect()
        } else {
            Vec::new()
        };
        if idx.len() < 3 || idx != expected {
            return Err(Error::Weights(format!(
                "convolutions at model.{idx:?} do not form an instance-norm NLayerDiscriminator"
            )));
        }
        let first = w.shape("model.0.weight")?;
        Ok(Self {
            input_nc: first[1],
            ndf: first[0],
            n_layers: idx.len() - 2,
        })
    }

    /// Channels of the normalised convolutions, `(in, out)` each, in order.
    fn widths(&self) -> Vec<(usize, usize)> {
        let mult = |n: usize| 1usize << n.min(3);
        (1..=self.n_layers)
            .map(|n| (self.ndf * mult(n - 1), self.ndf * mult(n)))
            .collect()
    }

    /// Every tensor name and shape, in layer order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        let mut conv = |i: usize, o: usize, c: usize| {
            v.push((format!("model.{i}.weight"), vec![o, c, 4, 4]));
            v.push((format!("model.{i}.bias"), vec![o]));
        };
        conv(0, self.ndf, self.input_nc);
        let widths = self.widths();
        for (j, (c, o)) in widths.iter().enumerate() {
            conv(2 + 3 * j, *o, *c);
        }
        let last_c = widths.last().map(|w| w.1).unwrap_or(self.ndf);
        conv(2 + 3 * self.n_layers, 1, last_c);
        v
    }

    /// Fresh weights as the reference initialises them (kernels N(0, 0.02²), biases 0).
    pub fn init_weights(&self, normal: &mut dyn FnMut() -> f32) -> Weights {
        init_conv_weights(self.tensor_shapes(), normal)
    }
}

/// The junyanz `NLayerDiscriminator` with instance norm (a PatchGAN; 70×70 receptive field at 3 layers).
#[derive(Module, Debug)]
pub struct PatchDiscriminator {
    first: PaddedConv,
    mid: Vec<PaddedConv>,
    last: PaddedConv,
    #[module(skip)]
    config: DiscriminatorConfig,
    #[module(skip)]
    exact_norm_gradients: bool,
}

impl PatchDiscriminator {
    /// Builds the discriminator from a state dict; any tensor it does not use is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let cfg = DiscriminatorConfig::from_weights(w)?;
        let first = PaddedConv::load(
            w,
            "model.0.",
            [cfg.ndf, cfg.input_nc, 4, 4],
            true,
            2,
            1,
            device,
        )?;
        let widths = cfg.widths();
        let mid = widths
            .iter()
            .enumerate()
            .map(|(j, (c, o))| {
                let stride = if j + 1 == cfg.n_layers { 1 } else { 2 };
                PaddedConv::load(
                    w,
                    &format!("model.{}.", 2 + 3 * j),
                    [*o, *c, 4, 4],
                    true,
                    stride,
                    1,
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let last_c = widths.last().map(|w| w.1).unwrap_or(cfg.ndf);
        let last = PaddedConv::load(
            w,
            &format!("model.{}.", 2 + 3 * cfg.n_layers),
            [1, last_c, 4, 4],
            true,
            1,
            1,
            device,
        )?;
        let names: Vec<String> = cfg.tensor_shapes().into_iter().map(|(n, _)| n).collect();
        w.reject_unexpected(|k| names.iter().any(|n| n == k))?;
        Ok(Self {
            first,
            mid,
            last,
            config: cfg,
            exact_norm_gradients: true,
        })
    }

    /// Float64 (default) or float32 instance-norm arithmetic on an autodiff device, as
    /// [`ResnetGenerator::with_exact_norm_gradients`].
    pub fn with_exact_norm_gradients(mut self, exact: bool) -> Self {
        self.exact_norm_gradients = exact;
        self
    }

    /// The discriminator's shape.
    pub fn config(&self) -> DiscriminatorConfig {
        self.config
    }

    /// The patch map (raw scores, one channel) for NCHW images in `[-1, 1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = leaky_relu(self.first.forward(x), LEAKY_SLOPE);
        let mut ctx = NormContext::Local;
        for c in &self.mid {
            let h = norm_then(&mut ctx, c.forward(y), false, self.exact_norm_gradients);
            y = leaky_relu(h, LEAKY_SLOPE);
        }
        self.last.forward(y)
    }

    /// Visits every parameter with its reference name.
    pub fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        self.first.walk("model.0.", f);
        for (j, c) in self.mid.iter().enumerate() {
            c.walk(&format!("model.{}.", 2 + 3 * j), f);
        }
        self.last
            .walk(&format!("model.{}.", 2 + 3 * self.mid.len()), f);
    }

    /// The parameters as a state dict with the reference's names.
    pub fn to_weights(&self) -> Result<Weights> {
        collect_weights(|f| self.walk(f))
    }

    /// The parameters' gradients after a backward pass, under the parameters' names.
    pub fn gradients(&self, grads: &Gradients) -> Result<Weights> {
        collect_grads(grads, |f| self.walk(f))
    }
}
