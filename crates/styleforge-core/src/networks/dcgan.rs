//! The DCGAN of pytorch/examples (`dcgan/main.py`): a generator of transposed convolutions from a
//! latent `z` of shape `(N, nz, 1, 1)` to a 64×64 image in `[-1, 1]`, and a discriminator of
//! strided convolutions to one probability per image. Batch norm between the layers, in eval mode
//! (running statistics) or train mode (batch statistics, running statistics updated as PyTorch does).
//!
//! Generator: ConvT(nz→8ngf, 4, s1, p0) BN ReLU; ConvT(8→4ngf, 4, s2, p1) BN ReLU; ConvT(4→2ngf) BN
//! ReLU; ConvT(2ngf→ngf) BN ReLU; ConvT(ngf→nc) tanh. No convolution has a bias.
//! Discriminator: Conv(nc→ndf, 4, s2, p1) LeakyReLU(0.2); Conv(ndf→2ndf) BN LeakyReLU; Conv(→4ndf)
//! BN LeakyReLU; Conv(→8ndf) BN LeakyReLU; Conv(8ndf→1, 4, s1, p0) sigmoid.
//!
//! Tensor names are the reference's `main.N.*` (with BatchNorm's `running_mean`, `running_var`
//! and `num_batches_tracked`); `nz`, `ngf`, `ndf` and `nc` are read from the shapes.

use std::sync::{Arc, Mutex};

use burn::module::{Module, Param};
use burn::tensor::activation::{leaky_relu, relu, sigmoid};
use burn::tensor::{DType, Device, Gradients, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::onnx::graph::{Attr, Graph};
use crate::networks::layers::{
    Conv, ConvTranspose, Padding, ParamRef, collect_grads, collect_weights,
};
use crate::weights::{HostTensor, Weights};

/// Batch-norm epsilon of the reference.
pub const EPS: f64 = 1e-5;
/// Running-statistics momentum of the reference.
pub const MOMENTUM: f64 = 0.1;
/// LeakyReLU slope of the discriminator.
pub const LEAKY_SLOPE: f64 = 0.2;

/// Which statistics batch norm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// The running statistics (PyTorch `model.eval()`).
    Eval,
    /// The batch's own statistics (mean and biased variance over N×H×W); the running statistics
    /// are then updated with momentum 0.1 and the unbiased variance (PyTorch `model.train()`).
    Train,
    /// The batch's own statistics, leaving the running statistics untouched (samples taken
    /// during training without changing the model).
    BatchStats,
}

/// Batch norm's running statistics, kept on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats {
    /// Running mean per channel.
    pub mean: Vec<f32>,
    /// Running (unbiased) variance per channel.
    pub var: Vec<f32>,
    /// Number of train-mode batches seen (`num_batches_tracked`).
    pub batches: u64,
}

/// `BatchNorm2d` with affine parameters; the running statistics are shared by clones of the
/// module (an optimiser step that rebuilds the module keeps them).
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// Scale `[C]` (`weight`).
    pub gamma: Param<Tensor<1>>,
    /// Shift `[C]` (`bias`).
    pub beta: Param<Tensor<1>>,
    #[module(skip)]
    running: Arc<Mutex<RunningStats>>,
}

impl BatchNorm2d {
    /// Loads `{prefix}weight/bias/running_mean/running_var` (and `num_batches_tracked` if present).
    pub fn load(w: &Weights, prefix: &str, channels: usize, device: &Device) -> Result<Self> {
        let host = |name: &str| -> Result<Vec<f32>> {
            let t = w.get(&format!("{prefix}{name}"))?;
            if t.shape != [channels] {
                return Err(Error::Weights(format!(
                    "tensor `{prefix}{name}` has shape {:?}, expected [{channels}]",
                    t.shape
                )));
            }
            Ok(t.data.clone())
        };
        let batches = match w.tensors.get(&format!("{prefix}num_batches_tracked")) {
            Some(t) if t.data.len() == 1 => t.data[0].max(0.0) as u64,
            Some(t) => {
                return Err(Error::Weights(format!(
                    "tensor `{prefix}num_batches_tracked` has shape {:?}, expected a scalar",
                    t.shape
                )));
            }
            None => 0,
        };
        Ok(Self {
            gamma: w.param(&format!("{prefix}weight"), [channels], device)?,
            beta: w.param(&format!("{prefix}bias"), [channels], device)?,
            running: Arc::new(Mutex::new(RunningStats {
                mean: host("running_mean")?,
                var: host("running_var")?,
                batches,
            })),
        })
    }

    /// A copy of the running statistics.
    pub fn running(&self) -> RunningStats {
        self.running
            .lock()
            .expect("running statistics lock")
            .clone()
    }

    /// Normalises an NCHW tensor.
    ///
    /// In train mode on an autodiff device the statistics and normalisation run in float64, for
    /// the reason given at [`crate::kernels::instance_norm`] (the backward pass sums the
    /// gradient over N×H×W per channel).
    pub fn forward(&self, x: Tensor<4>, mode: BnMode) -> Tensor<4> {
        let c = self.gamma.dims()[0];
        let device = x.device();
        let y = match mode {
            BnMode::Eval => {
                let s = self.running();
                let dt = x.dtype();
                let shape = [1, c, 1, 1];
                let inv: Vec<f32> = s
                    .var
                    .iter()
                    .map(|v| (1.0 / (*v as f64 + EPS).sqrt()) as f32)
                    .collect();
                let mean = Tensor::<4>::from_data(TensorData::new(s.mean, shape), &device).cast(dt);
                let inv = Tensor::<4>::from_data(TensorData::new(inv, shape), &device).cast(dt);
                (x - mean) * inv
            }
            BnMode::Train | BnMode::BatchStats => {
                let [n, _, h, w] = x.dims();
                let dt = x.dtype();
                let xs = if x.is_autodiff() && dt != DType::F64 {
                    x.cast(DType::F64)
                } else {
                    x
                };
                let mean = xs.clone().mean_dim(0).mean_dim(2).mean_dim(3);
                let centred = xs - mean.clone();
                let var = centred
                    .clone()
                    .powi_scalar(2)
                    .mean_dim(0)
                    .mean_dim(2)
                    .mean_dim(3);
                let y = centred.div((var.clone() + EPS).sqrt()).cast(dt);
                if mode == BnMode::Train {
                    self.update_running(mean, var, n * h * w);
                }
                y
            }
        };
        y * self.gamma.val().reshape([1, c, 1, 1]) + self.beta.val().reshape([1, c, 1, 1])
    }

    fn update_running(&self, mean: Tensor<4>, var: Tensor<4>, count: usize) {
        let host = |t: Tensor<4>| -> Vec<f64> {
            t.without_autodiff()
                .cast(DType::F64)
                .into_data()
                .convert::<f64>()
                .try_into_vec::<f64>()
                .expect("float statistics")
        };
        let (mean, var) = (host(mean), host(var));
        let unbias = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            1.0
        };
        let mut s = self.running.lock().expect("running statistics lock");
        for (r, m) in s.mean.iter_mut().zip(&mean) {
            *r = ((1.0 - MOMENTUM) * *r as f64 + MOMENTUM * m) as f32;
        }
        for (r, v) in s.var.iter_mut().zip(&var) {
            *r = ((1.0 - MOMENTUM) * *r as f64 + MOMENTUM * v * unbias) as f32;
        }
        s.batches += 1;
    }

    /// ONNX export of [`BatchNorm2d::forward`] in [`BnMode::Eval`] on `x`: a
    /// `BatchNormalization` node called `name` (inference mode, epsilon [`EPS`]) with the
    /// initializers `{prefix}weight`, `{prefix}bias`, `{prefix}running_mean` and
    /// `{prefix}running_var`.
    pub fn export_onnx(&self, g: &mut Graph, prefix: &str, name: &str, x: &str) -> Result<String> {
        let gamma = g.param(&format!("{prefix}weight"), ParamRef::R1(&self.gamma))?;
        let beta = g.param(&format!("{prefix}bias"), ParamRef::R1(&self.beta))?;
        let s = self.running();
        let c = s.mean.len();
        let mean = g.initializer(&format!("{prefix}running_mean"), &[c], &s.mean);
        let var = g.initializer(&format!("{prefix}running_var"), &[c], &s.var);
        Ok(g.node("BatchNormalization", name, &[x, &gamma, &beta, &mean, &var], vec![("epsilon", Attr::Float(EPS as f32))]))
    }

    fn walk(&self, prefix: &str, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        f(format!("{prefix}weight"), ParamRef::R1(&self.gamma));
        f(format!("{prefix}bias"), ParamRef::R1(&self.beta));
    }

    fn export_running(&self, prefix: &str, out: &mut Weights) {
        let s = self.running();
        let c = s.mean.len();
        out.tensors.insert(
            format!("{prefix}running_mean"),
            HostTensor::new(vec![c], s.mean),
        );
        out.tensors.insert(
            format!("{prefix}running_var"),
            HostTensor::new(vec![c], s.var),
        );
        out.tensors.insert(
            format!("{prefix}num_batches_tracked"),
            HostTensor::new(vec![], vec![s.batches as f32]),
        );
    }
}

/// Binary cross-entropy of probabilities `p` against a constant target, mean over elements, with
/// the logarithms clamped at -100 as PyTorch's `BCELoss` does.
pub fn bce(p: Tensor<4>, target: f32) -> Tensor<1> {
    let t = target as f64;
    let lp = p.clone().log().clamp_min(-100.0);
    let lq = (p.neg() + 1.0).log().clamp_min(-100.0);
    if t == 1.0 {
        lp.mean().neg()
    } else if t == 0.0 {
        lq.mean().neg()
    } else {
        (lp * t + lq * (1.0 - t)).mean().neg()
    }
}

/// The parameters `walk` visits and the running statistics of `norms`, the `i`-th batch norm's
/// under `main.{index(i)}.`.
/// What the DCGAN generator and discriminator share: parameters under the reference's names
/// (`main.<index>.weight`, as in the PyTorch DCGAN example) and batch norms with running
/// statistics.
pub trait DcganNetwork {
    /// Visits every trainable parameter with its reference name.
    fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>));

    /// The batch norms in layer order, and the index in `main` of the `k`-th one.
    fn norms(&self) -> (&[BatchNorm2d], fn(usize) -> usize);

    /// The state dict with the reference's names, running statistics included.
    fn to_weights(&self) -> Result<Weights> {
        let (norms, index) = self.norms();
        state_dict(|f| self.walk(f), norms, index)
    }

    /// The parameters' gradients after a backward pass, under the parameters' names.
    fn gradients(&self, grads: &Gradients) -> Result<Weights> {
        collect_grads(grads, |f| self.walk(f))
    }

    /// The batch norms' running statistics, in layer order.
    fn running_stats(&self) -> Vec<RunningStats> {
        self.norms().0.iter().map(BatchNorm2d::running).collect()
    }
}

fn state_dict(
    walk: impl FnOnce(&mut dyn FnMut(String, ParamRef<'_>)),
    norms: &[BatchNorm2d],
    index: impl Fn(usize) -> usize,
) -> Result<Weights> {
    let mut w = collect_weights(walk)?;
    for (i, bn) in norms.iter().enumerate() {
        bn.export_running(&format!("main.{}.", index(i)), &mut w);
    }
    Ok(w)
}

fn bn_shapes(prefix: &str, c: usize, v: &mut Vec<(String, Vec<usize>)>) {
    for k in ["weight", "bias", "running_mean", "running_var"] {
        v.push((format!("{prefix}{k}"), vec![c]));
    }
    v.push((format!("{prefix}num_batches_tracked"), vec![]));
}

/// Fresh weights as pytorch/examples initialises them (`weights_init`): kernels ~ N(0, 0.02²),
/// batch-norm scales ~ N(1, 0.02²), shifts 0, running mean 0, running variance 1.
fn init_dcgan(shapes: Vec<(String, Vec<usize>)>, normal: &mut dyn FnMut() -> f32) -> Weights {
    let mut w = Weights::default();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let data = if shape.len() == 4 {
            (0..n).map(|_| 0.02 * normal()).collect()
        } else if name.ends_with(".weight") {
            (0..n).map(|_| 1.0 + 0.02 * normal()).collect()
        } else if name.ends_with(".running_var") {
            vec![1.0; n]
        } else {
            vec![0.0; n]
        };
        w.tensors.insert(name, HostTensor::new(shape, data));
    }
    w
}

/// Shape of the DCGAN generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Latent size.
    pub nz: usize,
    /// Width of the last hidden layer (the first has `8 * ngf` channels).
    pub ngf: usize,
    /// Image channels.
    pub nc: usize,
}

impl GeneratorConfig {
    /// Reads the configuration from a state dict.
    pub fn from_weights(w: &Weights) -> Result<Self> {
        let first = w.shape("main.0.weight")?;
        let last = w.shape("main.12.weight")?;
        if first.len() != 4 || last.len() != 4 || first[1] % 8 != 0 || first[1] == 0 {
            return Err(Error::Weights(format!(
                "main.0.weight {first:?} / main.12.weight {last:?} do not form a DCGAN generator"
            )));
        }
        Ok(Self {
            nz: first[0],
            ngf: first[1] / 8,
            nc: last[1],
        })
    }

    /// Every tensor name and shape, in layer order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let g = self.ngf;
        let chans = [self.nz, 8 * g, 4 * g, 2 * g, g, self.nc];
        let mut v = Vec::new();
        for i in 0..5 {
            v.push((
                format!("main.{}.weight", 3 * i),
                vec![chans[i], chans[i + 1], 4, 4],
            ));
            if i < 4 {
                bn_shapes(&format!("main.{}.", 3 * i + 1), chans[i + 1], &mut v);
            }
        }
        v
    }

    /// Fresh weights as the reference initialises them, from a standard normal sampler.
    pub fn init_weights(&self, normal: &mut dyn FnMut() -> f32) -> Weights {
        init_dcgan(self.tensor_shapes(), normal)
    }
}

/// The pytorch/examples DCGAN generator.
#[derive(Module, Debug)]
pub struct DcganGenerator {
    convs: Vec<ConvTranspose>,
    norms: Vec<BatchNorm2d>,
    #[module(skip)]
    config: GeneratorConfig,
}

impl DcganGenerator {
    /// Builds the generator from a state dict; any tensor it does not use is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let cfg = GeneratorConfig::from_weights(w)?;
        let shapes = cfg.tensor_shapes();
        let g = cfg.ngf;
        let chans = [cfg.nz, 8 * g, 4 * g, 2 * g, g, cfg.nc];
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for i in 0..5 {
            let (s, p) = if i == 0 { (1, 0) } else { (2, 1) };
            convs.push(ConvTranspose::load(
                w,
                &format!("main.{}.", 3 * i),
                [chans[i], chans[i + 1], 4, 4],
                false,
                (s, p, 0),
                device,
            )?);
            if i < 4 {
                norms.push(BatchNorm2d::load(
                    w,
                    &format!("main.{}.", 3 * i + 1),
                    chans[i + 1],
                    device,
                )?);
            }
        }
        w.reject_unexpected(|k| shapes.iter().any(|(n, _)| n == k))?;
        Ok(Self {
            convs,
            norms,
            config: cfg,
        })
    }

    /// The generator's shape.
    pub fn config(&self) -> GeneratorConfig {
        self.config
    }

    /// Images `(N, nc, 64, 64)` in `[-1, 1]` from latents `(N, nz, 1, 1)`.
    pub fn forward(&self, z: Tensor<4>, mode: BnMode) -> Tensor<4> {
        let mut y = z;
        for (i, conv) in self.convs.iter().enumerate() {
            y = conv.forward(y);
            if let Some(bn) = self.norms.get(i) {
                y = relu(bn.forward(y, mode));
            }
        }
        y.tanh()
    }

    /// ONNX export of [`DcganGenerator::forward`] in [`BnMode::Eval`]: `z` is the latent
    /// `[N, nz, 1, 1]`, the returned value the images `[N, nc, 64, 64]` in `[-1, 1]` (tanh).
    /// Nodes and initializers keep the reference's names: `main.0` (`ConvTranspose`), `main.1`
    /// (`BatchNormalization` with `main.1.running_mean`, ...), `main.2` (`Relu`), ..., `main.12`,
    /// `main.13` (`Tanh`).
    pub fn export_onnx(&self, g: &mut Graph, z: &str) -> Result<String> {
        let mut y = z.to_string();
        for (i, conv) in self.convs.iter().enumerate() {
            y = conv.export_onnx(g, &format!("main.{}.", 3 * i), &y)?;
            if let Some(bn) = self.norms.get(i) {
                let prefix = format!("main.{}.", 3 * i + 1);
                y = bn.export_onnx(g, &prefix, &format!("main.{}", 3 * i + 1), &y)?;
                y = g.relu(&format!("main.{}", 3 * i + 2), &y);
            }
        }
        Ok(g.tanh(&format!("main.{}", 3 * self.convs.len() - 2), &y))
    }

    /// Visits every trainable parameter with its reference name.
    pub fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        for (i, conv) in self.convs.iter().enumerate() {
            conv.walk(&format!("main.{}.", 3 * i), f);
            if let Some(bn) = self.norms.get(i) {
                bn.walk(&format!("main.{}.", 3 * i + 1), f);
            }
        }
    }

}

impl DcganNetwork for DcganGenerator {
    fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        DcganGenerator::walk(self, f)
    }

    fn norms(&self) -> (&[BatchNorm2d], fn(usize) -> usize) {
        (&self.norms, |i| 3 * i + 1)
    }
}

/// Shape of the DCGAN discriminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscriminatorConfig {
    /// Width of the first layer (the last hidden layer has `8 * ndf` channels).
    pub ndf: usize,
    /// Image channels.
    pub nc: usize,
}

impl DiscriminatorConfig {
    /// Reads the configuration from a state dict.
    pub fn from_weights(w: &Weights) -> Result<Self> {
        let first = w.shape("main.0.weight")?;
        if first.len() != 4 || first[2] != 4 || !w.has("main.11.weight") {
            return Err(Error::Weights(format!(
                "main.0.weight {first:?} does not start a DCGAN discriminator (main.0..main.11)"
            )));
        }
        Ok(Self {
            ndf: first[0],
            nc: first[1],
        })
    }

    /// Every tensor name and shape, in layer order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.ndf;
        let chans = [self.nc, d, 2 * d, 4 * d, 8 * d, 1];
        let mut v = Vec::new();
        for i in 0..5 {
            let idx = if i == 0 { 0 } else { 3 * i - 1 };
            v.push((
                format!("main.{idx}.weight"),
                vec![chans[i + 1], chans[i], 4, 4],
            ));
            if (1..4).contains(&i) {
                bn_shapes(&format!("main.{}.", idx + 1), chans[i + 1], &mut v);
            }
        }
        v
    }

    /// Fresh weights as the reference initialises them, from a standard normal sampler.
    pub fn init_weights(&self, normal: &mut dyn FnMut() -> f32) -> Weights {
        init_dcgan(self.tensor_shapes(), normal)
    }
}

/// The pytorch/examples DCGAN discriminator (64×64 input).
#[derive(Module, Debug)]
pub struct DcganDiscriminator {
    convs: Vec<Conv>,
    norms: Vec<BatchNorm2d>,
    #[module(skip)]
    config: DiscriminatorConfig,
}

impl DcganDiscriminator {
    /// Builds the discriminator from a state dict; any tensor it does not use is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let cfg = DiscriminatorConfig::from_weights(w)?;
        let shapes = cfg.tensor_shapes();
        let d = cfg.ndf;
        let chans = [cfg.nc, d, 2 * d, 4 * d, 8 * d, 1];
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for i in 0..5 {
            let idx = if i == 0 { 0 } else { 3 * i - 1 };
            let (s, p) = if i == 4 { (1, 0) } else { (2, 1) };
            convs.push(Conv::load(
                w,
                &format!("main.{idx}."),
                [chans[i + 1], chans[i], 4, 4],
                false,
                s,
                Padding::Explicit(p),
                device,
            )?);
            if (1..4).contains(&i) {
                norms.push(BatchNorm2d::load(
                    w,
                    &format!("main.{}.", idx + 1),
                    chans[i + 1],
                    device,
                )?);
            }
        }
        w.reject_unexpected(|k| shapes.iter().any(|(n, _)| n == k))?;
        Ok(Self {
            convs,
            norms,
            config: cfg,
        })
    }

    /// The discriminator's shape.
    pub fn config(&self) -> DiscriminatorConfig {
        self.config
    }

    /// Raw scores `(N, 1, 1, 1)` before the sigmoid.
    pub fn forward_logits(&self, x: Tensor<4>, mode: BnMode) -> Tensor<4> {
        let mut y = leaky_relu(self.convs[0].forward(x), LEAKY_SLOPE);
        for (conv, bn) in self.convs[1..4].iter().zip(&self.norms) {
            y = leaky_relu(bn.forward(conv.forward(y), mode), LEAKY_SLOPE);
        }
        self.convs[4].forward(y)
    }

    /// Probabilities `(N, 1, 1, 1)` that each image is real.
    pub fn forward(&self, x: Tensor<4>, mode: BnMode) -> Tensor<4> {
        sigmoid(self.forward_logits(x, mode))
    }

    /// Visits every trainable parameter with its reference name.
    pub fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        for (i, conv) in self.convs.iter().enumerate() {
            let idx = if i == 0 { 0 } else { 3 * i - 1 };
            conv.walk(&format!("main.{idx}."), f);
            if (1..4).contains(&i) {
                self.norms[i - 1].walk(&format!("main.{}.", idx + 1), f);
            }
        }
    }

}

impl DcganNetwork for DcganDiscriminator {
    fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        DcganDiscriminator::walk(self, f)
    }

    fn norms(&self) -> (&[BatchNorm2d], fn(usize) -> usize) {
        (&self.norms, |i| 3 * i + 3)
    }
}
