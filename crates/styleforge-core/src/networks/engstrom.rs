//! Logan Engstrom's TensorFlow fast-style-transfer network (the ml5.js model zoo layout).
//!
//! No conv biases; TensorFlow `SAME` zero padding; transposed convolutions for upsampling;
//! instance norm with eps 1e-3 and per-layer `scale`/`shift`; ReLU after every norm except the
//! second conv of each residual block and the output conv; output `150 * tanh(y) + 127.5`.

use burn::module::Module;
use burn::tensor::activation::tanh;
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::networks::layers::{Affine, Conv, ConvTransposeSame, NormContext, Padding};
use crate::weights::Weights;

const EPS: f64 = 1e-3;

#[derive(Module, Debug)]
struct ConvIn {
    conv: Conv,
    norm: Affine,
}

impl ConvIn {
    fn load(
        w: &Weights,
        name: &str,
        shape: [usize; 4],
        stride: usize,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            conv: Conv::load(
                w,
                &format!("{name}."),
                shape,
                false,
                stride,
                Padding::TfSame,
                device,
            )?,
            norm: Affine::load(
                w,
                &format!("{name}.scale"),
                &format!("{name}.shift"),
                shape[0],
                device,
            )?,
        })
    }

    fn forward(&self, x: Tensor<4>, ctx: &mut NormContext, relu: bool) -> Tensor<4> {
        ctx.normalize_affine(self.conv.forward(x), Some(&self.norm), relu, EPS)
    }
}

#[derive(Module, Debug)]
struct Residual {
    a: ConvIn,
    b: ConvIn,
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
    res: Vec<Residual>,
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
            ConvIn::load(w, "conv1", [c1, 3, 9, 9], 1, device)?,
            ConvIn::load(w, "conv2", [c2, c1, 3, 3], 2, device)?,
            ConvIn::load(w, "conv3", [c3, c2, 3, 3], 2, device)?,
        ];
        let res = (1..=5)
            .map(|i| {
                Ok(Residual {
                    a: ConvIn::load(w, &format!("res{i}.conv1"), [c3, c3, 3, 3], 1, device)?,
                    b: ConvIn::load(w, &format!("res{i}.conv2"), [c3, c3, 3, 3], 1, device)?,
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
        let out = ConvIn::load(w, "conv_out", [3, c1, 9, 9], 1, device)?;
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
            let r = y.clone();
            let h = block.a.forward(y, ctx, true);
            y = block.b.forward(h, ctx, false) + r;
        }
        for layer in &self.up {
            y = ctx.normalize_affine(layer.conv.forward(y), Some(&layer.norm), true, EPS);
        }
        tanh(self.out.forward(y, ctx, false)) * 150.0 + 127.5
    }
}
