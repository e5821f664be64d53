//! Johnson et al.'s fast-style network as in pytorch/examples `fast_neural_style` (`TransformerNet`).
//!
//! Reflection-padded convolutions, instance norm with affine parameters (eps 1e-5), five residual
//! blocks, nearest ×2 upsampling before the two up convolutions; input and output RGB 0..255.
//! The width is read from the weights (`conv1.conv2d.weight` has `nc` output channels: nc, 2nc, 4nc).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::onnx::graph::Graph;
use crate::networks::layers::{
    Conv, ConvIn, ConvInLayout, NormContext, Padding, ParamRef, ResidualIn, collect_weights,
};
use crate::weights::{HostTensor, Weights};

const EPS: f64 = 1e-5;

/// Convolutions with biases and reflection padding, eps 1e-5.
const LAYOUT: ConvInLayout = ConvInLayout { bias: true, padding: Padding::Reflect, eps: EPS };

/// The convolution's prefix `{conv}.conv2d.` and the norm's keys `{norm}.weight`, `{norm}.bias`.
fn keys(conv: &str, norm: &str) -> (String, [String; 2]) {
    (format!("{conv}.conv2d."), [format!("{norm}.weight"), format!("{norm}.bias")])
}

/// The block of convolution `conv` and instance norm `norm`.
fn conv_in(
    w: &Weights,
    (conv, norm): (&str, &str),
    shape: [usize; 4],
    stride: usize,
    device: &Device,
) -> Result<ConvIn> {
    let (prefix, [scale, shift]) = keys(conv, norm);
    ConvIn::load(w, &prefix, [&scale, &shift], shape, stride, LAYOUT, device)
}

/// Visits the parameters of the block of convolution `conv` and instance norm `norm`.
fn walk_conv_in(block: &ConvIn, conv: &str, norm: &str, f: &mut dyn FnMut(String, ParamRef<'_>)) {
    let (prefix, [scale, shift]) = keys(conv, norm);
    block.walk(&prefix, [&scale, &shift], f);
}

/// The pytorch/examples TransformerNet at any width.
#[derive(Module, Debug)]
pub struct TransformerNet {
    down: Vec<ConvIn>,
    res: Vec<ResidualIn>,
    up: Vec<ConvIn>,
    out: Conv,
}

impl TransformerNet {
    /// The tensor names a state dict for this network holds (legacy running stats excluded).
    pub fn detect(w: &Weights) -> bool {
        w.has("conv1.conv2d.weight") && w.has("deconv3.conv2d.weight")
    }

    /// Base width `nc` read from the weights.
    pub fn width(w: &Weights) -> Result<usize> {
        Ok(w.shape("conv1.conv2d.weight")?[0])
    }

    /// Builds the network from a state dict. Legacy `inN.running_mean/var` keys are ignored,
    /// as `neural_style.py` does; any other unexpected key is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let nc = Self::width(w)?;
        if nc == 0 {
            return Err(Error::Weights("conv1 has no output channels".into()));
        }
        let (c1, c2, c3) = (nc, 2 * nc, 4 * nc);
        let down = vec![
            conv_in(w, ("conv1", "in1"), [c1, 3, 9, 9], 1, device)?,
            conv_in(w, ("conv2", "in2"), [c2, c1, 3, 3], 2, device)?,
            conv_in(w, ("conv3", "in3"), [c3, c2, 3, 3], 2, device)?,
        ];
        let res = (1..=5)
            .map(|i| {
                Ok(ResidualIn {
                    a: conv_in(w, (&format!("res{i}.conv1"), &format!("res{i}.in1")), [c3, c3, 3, 3], 1, device)?,
                    b: conv_in(w, (&format!("res{i}.conv2"), &format!("res{i}.in2")), [c3, c3, 3, 3], 1, device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let up = vec![
            conv_in(w, ("deconv1", "in4"), [c2, c3, 3, 3], 1, device)?,
            conv_in(w, ("deconv2", "in5"), [c1, c2, 3, 3], 1, device)?,
        ];
        let out = Conv::load(
            w,
            "deconv3.conv2d.",
            [3, c1, 9, 9],
            true,
            1,
            Padding::Reflect,
            device,
        )?;
        let allowed = expected_keys();
        w.reject_unexpected(|k| {
            allowed.iter().any(|a| a == k)
                || k.ends_with(".running_mean")
                || k.ends_with(".running_var")
        })?;
        Ok(Self { down, res, up, out })
    }

    /// Fresh weights of width `nc` initialised as PyTorch does: convolution kernels and biases
    /// uniform in `±1/√fan_in` (`uniform` draws from `[0, 1)`), instance-norm scales 1, shifts 0.
    pub fn init_weights(nc: usize, uniform: &mut dyn FnMut() -> f32) -> Weights {
        let (c1, c2, c3) = (nc, 2 * nc, 4 * nc);
        let mut w = Weights::default();
        let mut conv = |name: &str, shape: [usize; 4], norm: Option<&str>| {
            let bound = 1.0 / ((shape[1] * shape[2] * shape[3]) as f32).sqrt();
            let mut draw = |n: usize| (0..n).map(|_| (2.0 * uniform() - 1.0) * bound).collect();
            let kernel = draw(shape.iter().product());
            let bias = draw(shape[0]);
            w.tensors.insert(format!("{name}.conv2d.weight"), HostTensor::new(shape.to_vec(), kernel));
            w.tensors.insert(format!("{name}.conv2d.bias"), HostTensor::new(vec![shape[0]], bias));
            if let Some(n) = norm {
                w.tensors.insert(format!("{n}.weight"), HostTensor::new(vec![shape[0]], vec![1.0; shape[0]]));
                w.tensors.insert(format!("{n}.bias"), HostTensor::new(vec![shape[0]], vec![0.0; shape[0]]));
            }
        };
        conv("conv1", [c1, 3, 9, 9], Some("in1"));
        conv("conv2", [c2, c1, 3, 3], Some("in2"));
        conv("conv3", [c3, c2, 3, 3], Some("in3"));
        for i in 1..=5 {
            conv(&format!("res{i}.conv1"), [c3, c3, 3, 3], Some(&format!("res{i}.in1")));
            conv(&format!("res{i}.conv2"), [c3, c3, 3, 3], Some(&format!("res{i}.in2")));
        }
        conv("deconv1", [c2, c3, 3, 3], Some("in4"));
        conv("deconv2", [c1, c2, 3, 3], Some("in5"));
        conv("deconv3", [3, c1, 9, 9], None);
        w
    }

    /// Visits every parameter with its pytorch/examples name.
    pub fn walk(&self, f: &mut dyn FnMut(String, ParamRef<'_>)) {
        for (i, l) in self.down.iter().enumerate() {
            walk_conv_in(l, &format!("conv{}", i + 1), &format!("in{}", i + 1), f);
        }
        for (i, b) in self.res.iter().enumerate() {
            walk_conv_in(&b.a, &format!("res{}.conv1", i + 1), &format!("res{}.in1", i + 1), f);
            walk_conv_in(&b.b, &format!("res{}.conv2", i + 1), &format!("res{}.in2", i + 1), f);
        }
        for (i, l) in self.up.iter().enumerate() {
            walk_conv_in(l, &format!("deconv{}", i + 1), &format!("in{}", i + 4), f);
        }
        self.out.walk("deconv3.conv2d.", f);
    }

    /// The parameters as a pytorch/examples state dict.
    pub fn to_weights(&self) -> Result<Weights> {
        collect_weights(|f| self.walk(f))
    }

    /// Runs the network on RGB 0..255 NCHW; the output is unclamped.
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let mut y = self.forward_to_res5(x, ctx);
        for layer in &self.up {
            y = layer.forward_upsampled(y, ctx);
        }
        self.out.forward(y)
    }

    /// ONNX export of [`TransformerNet::forward`] (local instance-norm statistics): `x` is RGB
    /// 0..255 NCHW (sides multiples of 4 keep the output at the input's size), the returned value
    /// RGB 0..255, unclamped. Nodes and initializers keep the pytorch/examples names (`conv1.conv2d`
    /// with `conv1.conv2d.weight`, `in1`, `res1`, `deconv1.upsample`, ...).
    pub fn export_onnx(&self, g: &mut Graph, x: &str) -> Result<String> {
        let mut y = x.to_string();
        for (i, l) in self.down.iter().enumerate() {
            let (conv, [scale, shift]) = keys(&format!("conv{}", i + 1), &format!("in{}", i + 1));
            y = l.export_onnx(g, &conv, [&scale, &shift], &y, true, false)?;
        }
        for (i, b) in self.res.iter().enumerate() {
            let r = i + 1;
            let (c1, [s1, t1]) = keys(&format!("res{r}.conv1"), &format!("res{r}.in1"));
            let (c2, [s2, t2]) = keys(&format!("res{r}.conv2"), &format!("res{r}.in2"));
            y = b.export_onnx(g, [(&c1, [&s1, &t1]), (&c2, [&s2, &t2])], &format!("res{r}"), &y)?;
        }
        for (i, l) in self.up.iter().enumerate() {
            let (conv, [scale, shift]) = keys(&format!("deconv{}", i + 1), &format!("in{}", i + 4));
            y = l.export_onnx(g, &conv, [&scale, &shift], &y, true, true)?;
        }
        self.out.export_onnx(g, "deconv3.conv2d.", &y, 1)
    }

    /// Output after the fifth residual block (a checkpoint the reference files provide).
    pub fn forward_to_res5(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let mut y = x;
        for layer in &self.down {
            y = layer.forward(y, ctx, true);
        }
        for block in &self.res {
            y = block.forward(y, ctx);
        }
        y
    }
}

fn expected_keys() -> Vec<String> {
    let mut keys = Vec::new();
    let mut conv = |c: &str, n: Option<&str>| {
        keys.push(format!("{c}.conv2d.weight"));
        keys.push(format!("{c}.conv2d.bias"));
        if let Some(n) = n {
            keys.push(format!("{n}.weight"));
            keys.push(format!("{n}.bias"));
        }
    };
    conv("conv1", Some("in1"));
    conv("conv2", Some("in2"));
    conv("conv3", Some("in3"));
    for i in 1..=5 {
        conv(&format!("res{i}.conv1"), Some(&format!("res{i}.in1")));
        conv(&format!("res{i}.conv2"), Some(&format!("res{i}.in2")));
    }
    conv("deconv1", Some("in4"));
    conv("deconv2", Some("in5"));
    conv("deconv3", None);
    keys
}
