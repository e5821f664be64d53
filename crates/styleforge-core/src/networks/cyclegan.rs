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

use burn::module::Module;
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Gradients, Tensor};

use crate::error::{Error, Result};
use crate::onnx::graph::Graph;
use crate::networks::layers::{
    Conv, ConvTranspose, NormContext, Padding, ParamRef, collect_grads, collect_weights,
};
use crate::weights::{HostTensor, Weights};

/// Instance-norm epsilon of the reference.
pub const EPS: f64 = 1e-5;
/// LeakyReLU slope of the discriminator.
pub const LEAKY_SLOPE: f64 = 0.2;

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
    /// operations run; see [`crate::kernels::instance_norm`]. On flex tensors the fused operation
    /// ([`crate::kernels::cpu_norm_grad`]) runs either way, with `f64` statistics and sums.
    /// Inference is float32.
    pub fn with_exact_norm_gradients(mut self, exact: bool) -> Self {
        self.exact_norm_gradients = exact;
        self
    }

    /// Instance norm without affine parameters, and a ReLU when `relu`.
    fn norm(&self, ctx: &mut NormContext, x: Tensor<4>, relu: bool) -> Tensor<4> {
        ctx.normalize_affine_with(x, None, relu, EPS, self.exact_norm_gradients)
    }

    /// The generator's shape.
    pub fn config(&self) -> GeneratorConfig {
        self.config
    }

    /// Runs the generator on NCHW images in `[-1, 1]` (sides multiples of 4); output in `[-1, 1]`.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let mut y = self.norm(ctx, self.stem.forward(x), true);
        for c in &self.down {
            y = self.norm(ctx, c.forward(y), true);
        }
        for b in &self.blocks {
            let h = self.norm(ctx, b.a.forward(y.clone()), true);
            y = y + self.norm(ctx, b.b.forward(h), false);
        }
        for u in &self.up {
            y = self.norm(ctx, u.forward(y), true);
        }
        self.out.forward(y).tanh()
    }

    /// ONNX export of [`ResnetGenerator::forward`] (local instance-norm statistics): `x` is RGB
    /// in `[-1, 1]` NCHW (sides multiples of 4, at least 8), the returned value RGB in `[-1, 1]`
    /// (tanh). Nodes are named after the reference's `nn.Sequential` indices (`model.1` the stem
    /// convolution, `model.2` its norm, `model.3` its ReLU, `model.10.conv_block.1`, ...; a
    /// reflection pad before a convolution is `{conv}.pad`), initializers after its state dict.
    /// The norms have no affine parameters: shared scales of 1 and shifts of 0.
    pub fn export_onnx(&self, g: &mut Graph, x: &str) -> Result<String> {
        let cfg = self.config;
        let (ngf, nb) = (cfg.ngf, cfg.n_blocks);
        // Instance norm `norm` of `c` channels, then the ReLU `relu` if any.
        let ir = |g: &mut Graph, y: &str, norm: &str, relu: Option<&str>, c: usize| -> String {
            let n = g.instance_norm_plain(norm, y, c, EPS);
            match relu {
                Some(r) => g.relu(r, &n),
                None => n,
            }
        };
        let y = self.stem.export_onnx(g, "model.1.", x, 1)?;
        let mut y = ir(g, &y, "model.2", Some("model.3"), ngf);
        for (j, c) in self.down.iter().enumerate() {
            let i = 4 + 3 * j;
            y = c.export_onnx(g, &format!("model.{i}."), &y, 1)?;
            y = ir(g, &y, &format!("model.{}", i + 1), Some(&format!("model.{}", i + 2)), ngf << (j + 1));
        }
        let second = if cfg.dropout_layout { 6 } else { 5 };
        for (j, b) in self.blocks.iter().enumerate() {
            let p = format!("model.{}.conv_block", 10 + j);
            let h = b.a.export_onnx(g, &format!("{p}.1."), &y, 1)?;
            let h = ir(g, &h, &format!("{p}.2"), Some(&format!("{p}.3")), 4 * ngf);
            let h = b.b.export_onnx(g, &format!("{p}.{second}."), &h, 1)?;
            let h = ir(g, &h, &format!("{p}.{}", second + 1), None, 4 * ngf);
            y = g.add(&format!("model.{}", 10 + j), &y, &h);
        }
        for (j, u) in self.up.iter().enumerate() {
            let i = 10 + nb + 3 * j;
            y = u.export_onnx(g, &format!("model.{i}."), &y)?;
            y = ir(g, &y, &format!("model.{}", i + 1), Some(&format!("model.{}", i + 2)), ngf << (1 - j));
        }
        let y = self.out.export_onnx(g, &format!("model.{}.", 17 + nb), &y, 1)?;
        Ok(g.tanh(&format!("model.{}", 18 + nb), &y))
    }

    /// Visits every parameter with its reference name.
    pub fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        let nb = self.config.n_blocks;
        self.stem.walk("model.1.", f);
        self.down[0].walk("model.4.", f);
        self.down[1].walk("model.7.", f);
        let second = if self.config.dropout_layout { 6 } else { 5 };
        for (i, b) in self.blocks.iter().enumerate() {
            b.a.walk(&format!("model.{}.conv_block.1.", 10 + i), f);
            b.b.walk(&format!("model.{}.conv_block.{second}.", 10 + i), f);
        }
        self.up[0].walk(&format!("model.{}.", 10 + nb), f);
        self.up[1].walk(&format!("model.{}.", 13 + nb), f);
        self.out.walk(&format!("model.{}.", 17 + nb), f);
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
    first: Conv,
    mid: Vec<Conv>,
    last: Conv,
    #[module(skip)]
    config: DiscriminatorConfig,
    #[module(skip)]
    exact_norm_gradients: bool,
}

impl PatchDiscriminator {
    /// Builds the discriminator from a state dict; any tensor it does not use is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let cfg = DiscriminatorConfig::from_weights(w)?;
        // Every convolution is 4×4 with zero padding 1.
        let conv = |prefix: &str, shape, stride| {
            Conv::load(w, prefix, shape, true, stride, Padding::Explicit(1), device)
        };
        let first = conv("model.0.", [cfg.ndf, cfg.input_nc, 4, 4], 2)?;
        let widths = cfg.widths();
        let mid = widths
            .iter()
            .enumerate()
            .map(|(j, (c, o))| {
                let stride = if j + 1 == cfg.n_layers { 1 } else { 2 };
                conv(&format!("model.{}.", 2 + 3 * j), [*o, *c, 4, 4], stride)
            })
            .collect::<Result<Vec<_>>>()?;
        let last_c = widths.last().map(|w| w.1).unwrap_or(cfg.ndf);
        let last = conv(&format!("model.{}.", 2 + 3 * cfg.n_layers), [1, last_c, 4, 4], 1)?;
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
            let h = ctx.normalize_affine_with(c.forward(y), None, false, EPS, self.exact_norm_gradients);
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
