//! Logan Engstrom's TensorFlow fast-style-transfer network (the ml5.js model zoo layout).
//!
//! No conv biases; TensorFlow `SAME` zero padding; transposed convolutions for upsampling;
//! instance norm with eps 1e-3 and per-layer `scale`/`shift`; ReLU after every norm except the
//! second conv of each residual block and the output conv; output `150 * tanh(y) + 127.5`.

use burn::module::Module;
use burn::tensor::activation::tanh;
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::onnx::graph::Graph;
use crate::networks::layers::{
    Affine, ConvIn, ConvInLayout, ConvTransposeSame, NormContext, Padding, ParamRef, ResidualIn,
};
use crate::weights::Weights;

const EPS: f64 = 1e-3;

/// No conv biases, TensorFlow `SAME` padding, eps 1e-3.
const LAYOUT: ConvInLayout = ConvInLayout { bias: false, padding: Padding::TfSame, eps: EPS };

/// The block `{name}` (`{name}.weight`, `{name}.scale`, `{name}.shift`).
fn conv_in(w: &Weights, name: &str, shape: [usize; 4], stride: usize, device: &Device) -> Result<ConvIn> {
    let norm = [format!("{name}.scale"), format!("{name}.shift")];
    ConvIn::load(w, &format!("{name}."), [&norm[0], &norm[1]], shape, stride, LAYOUT, device)
}

#[derive(Module, Debug)]
struct DeconvIn {
    conv: ConvTransposeSame,
    norm: Affine,
}

/// Engstrom's fast-style network; widths read from the weights.
#[derive(Module, Debug)]
pub struct EngstromNet {
    down: Vec<ConvIn>,
    res: Vec<ResidualIn>,
    up: Vec<DeconvIn>,
    out: ConvIn,
}

impl EngstromNet {
    /// Whether the weights are in this network's layout.
    pub fn detect(w: &Weights) -> bool {
        w.has("conv1.weight") && w.has("conv1.shift") && w.has("conv_out.weight")
    }

    /// Builds the network from its 48 tensors.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let c1 = w.shape("conv1.weight")?[0];
        let c2 = w.shape("conv2.weight")?[0];
        let c3 = w.shape("conv3.weight")?[0];
        let down = vec![
            conv_in(w, "conv1", [c1, 3, 9, 9], 1, device)?,
            conv_in(w, "conv2", [c2, c1, 3, 3], 2, device)?,
            conv_in(w, "conv3", [c3, c2, 3, 3], 2, device)?,
        ];
        let res = (1..=5)
            .map(|i| {
                Ok(ResidualIn {
                    a: conv_in(w, &format!("res{i}.conv1"), [c3, c3, 3, 3], 1, device)?,
                    b: conv_in(w, &format!("res{i}.conv2"), [c3, c3, 3, 3], 1, device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let deconv = |name: &str, shape: [usize; 4]| -> Result<DeconvIn> {
            Ok(DeconvIn {
                conv: ConvTransposeSame {
                    weight: w.param(&format!("{name}.weight"), shape, device)?,
                    stride: 2,
                },
                norm: Affine::load(
                    w,
                    &format!("{name}.scale"),
                    &format!("{name}.shift"),
                    shape[1],
                    device,
                )?,
            })
        };
        let up = vec![
            deconv("deconv1", [c3, c2, 3, 3])?,
            deconv("deconv2", [c2, c1, 3, 3])?,
        ];
        let out = conv_in(w, "conv_out", [3, c1, 9, 9], 1, device)?;
        w.reject_unexpected(|k| {
            let layer = k.rsplit_once('.').map(|(l, _)| l).unwrap_or("");
            let known = matches!(
                layer,
                "conv1" | "conv2" | "conv3" | "deconv1" | "deconv2" | "conv_out"
            ) || (1..=5)
                .any(|i| layer == format!("res{i}.conv1") || layer == format!("res{i}.conv2"));
            known && (k.ends_with(".weight") || k.ends_with(".scale") || k.ends_with(".shift"))
        })?;
        Ok(Self { down, res, up, out })
    }

    /// Runs the network on RGB 0..255 NCHW; output in 0..255 before clamping (150·tanh + 127.5).
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let mut y = x;
        for layer in &self.down {
            y = layer.forward(y, ctx, true);
        }
        for block in &self.res {
            y = block.forward(y, ctx);
        }
        for layer in &self.up {
            y = ctx.normalize_affine(layer.conv.forward(y), Some(&layer.norm), true, EPS);
        }
        tanh(self.out.forward(y, ctx, false)) * 150.0 + 127.5
    }

    /// ONNX export of [`EngstromNet::forward`] (local instance-norm statistics): `x` is RGB
    /// 0..255 NCHW (sides multiples of 4 keep the output at the input's size), the returned value
    /// `150·tanh(y) + 127.5`, unclamped. TensorFlow `SAME` convolutions at stride 2 use
    /// `auto_pad = SAME_UPPER`; the transposed ones are one `ConvTranspose` each
    /// ([`ConvTransposeSame::export_onnx`]). Names are the ml5.js variables' (`conv1` with
    /// `conv1.weight`, `conv1.scale`, `conv1.shift`, ...).
    pub fn export_onnx(&self, g: &mut Graph, x: &str) -> Result<String> {
        let names = |layer: &str| (format!("{layer}."), [format!("{layer}.scale"), format!("{layer}.shift")]);
        let mut y = x.to_string();
        for (i, l) in self.down.iter().enumerate() {
            let (conv, [scale, shift]) = names(&format!("conv{}", i + 1));
            y = l.export_onnx(g, &conv, [&scale, &shift], &y, true, false)?;
        }
        for (i, b) in self.res.iter().enumerate() {
            let r = i + 1;
            let (c1, [s1, t1]) = names(&format!("res{r}.conv1"));
            let (c2, [s2, t2]) = names(&format!("res{r}.conv2"));
            y = b.export_onnx(g, [(&c1, [&s1, &t1]), (&c2, [&s2, &t2])], &format!("res{r}"), &y)?;
        }
        for (i, l) in self.up.iter().enumerate() {
            let layer = format!("deconv{}", i + 1);
            y = l.conv.export_onnx(g, &layer, &format!("{layer}.weight"), &y)?;
            let gamma = g.param(&format!("{layer}.scale"), ParamRef::R1(&l.norm.gamma))?;
            let beta = g.param(&format!("{layer}.shift"), ParamRef::R1(&l.norm.beta))?;
            y = g.instance_norm(&format!("{layer}.norm"), &y, &gamma, &beta, EPS);
            y = g.relu(&format!("{layer}.relu"), &y);
        }
        let (conv, [scale, shift]) = names("conv_out");
        let y = self.out.export_onnx(g, &conv, [&scale, &shift], &y, false, false)?;
        let y = g.tanh("output.tanh", &y);
        Ok(g.affine("output.scale", &y, 150.0, 127.5))
    }
}
