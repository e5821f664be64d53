//! LPIPS, the learned perceptual image patch similarity (Zhang, Isola, Efros, Shechtman and Wang,
//! "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018; reference:
//! richzhang/PerceptualSimilarity, the `lpips` package 0.1.4, `lpips.LPIPS(net=..., version='0.1')`).
//!
//! For two pictures `x`, `y` (RGB 0..1): both go through a backbone ([`Backbone`]: AlexNet's
//! `relu1`..`relu5`, or VGG-16's `relu1_2`, `relu2_2`, `relu3_3`, `relu4_3`, `relu5_3`); each
//! feature map is divided by its per-pixel L2 norm over channels (plus 1e-10, `normalize_tensor`);
//! the squared difference is weighted per channel by the layer's linear weights (a 1×1
//! convolution to one channel without bias, `NetLinLayer`) and averaged over the pixels; the
//! distance is the sum over the five layers. 0 for identical pictures; typical values run from
//! about 0.1 (mild distortions) to 0.7 (unrelated pictures).
//!
//! The reference feeds pictures in -1..1 through a `ScalingLayer`; that equals the ImageNet
//! normalisation the backbones apply to 0..1 input here (see [`crate::networks::alexnet`]).
//! The linear layers are the published v0.1 ones, built in
//! ([`crate::library::builtin::lpips_linear_weights`]); the backbones' ImageNet weights come from
//! the library (`alexnet`, `vgg16`).

use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::library::builtin;
use crate::networks::alexnet::{self, AlexNet};
use crate::networks::vgg::{Vgg, VggVariant};
use crate::weights::Weights;

/// The VGG-16 layers LPIPS reads.
pub const VGG_LAYERS: [&str; 5] = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"];

/// The VGG-16 channels of [`VGG_LAYERS`].
pub const VGG_CHANNELS: [usize; 5] = [64, 128, 256, 512, 512];

/// The offset added to the feature norms.
pub const EPS: f64 = 1e-10;

/// The network under the linear layers.
#[derive(Debug)]
pub enum Backbone {
    /// torchvision's AlexNet (`net='alex'`, the reference's default and what ArtFID uses).
    Alex(AlexNet),
    /// torchvision's VGG-16 (`net='vgg'`).
    Vgg(Vgg),
}

impl Backbone {
    /// The reference's name of the backbone: `alex` or `vgg`.
    pub fn name(&self) -> &'static str {
        match self {
            Backbone::Alex(_) => "alex",
            Backbone::Vgg(_) => "vgg",
        }
    }

    fn channels(&self) -> [usize; 5] {
        match self {
            Backbone::Alex(_) => alexnet::CHANNELS,
            Backbone::Vgg(_) => VGG_CHANNELS,
        }
    }

    /// The five feature maps of RGB 0..1 `[N, 3, H, W]`.
    fn features(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        match self {
            Backbone::Alex(net) => net.forward(x),
            Backbone::Vgg(net) => net.forward(x, &VGG_LAYERS),
        }
    }
}

/// An LPIPS metric: a backbone and its five linear layers.
#[derive(Debug)]
pub struct Lpips {
    backbone: Backbone,
    /// Per layer, the channel weights `[1, C, 1, 1]`.
    lins: Vec<Tensor<4>>,
}

impl Lpips {
    /// The metric with the published v0.1 linear layers for `backbone` (built in).
    /// Errors: a VGG that is not a VGG-16 reaching `conv5_3` ([`Error::Weights`]).
    pub fn new(backbone: Backbone, device: &Device) -> Result<Self> {
        let file = match &backbone {
            Backbone::Alex(_) => "alex.pth",
            Backbone::Vgg(_) => "vgg.pth",
        };
        Self::with_linear(backbone, &builtin::lpips_linear_weights(file)?, device)
    }

    /// The metric with linear layers from `lin`: `lin{k}.model.1.weight`, `[1, C_k, 1, 1]`, as the
    /// reference's state dicts store them. Errors: [`Error::Weights`] for a missing or wrongly
    /// shaped tensor, or a VGG that is not a VGG-16 reaching `conv5_3`.
    pub fn with_linear(backbone: Backbone, lin: &Weights, device: &Device) -> Result<Self> {
        if let Backbone::Vgg(v) = &backbone
            && (v.variant() != VggVariant::Vgg16 || v.check_layers(&VGG_LAYERS).is_err())
        {
            return Err(Error::Weights(format!(
                "LPIPS needs a VGG-16 with every layer up to relu5_3; got {} with {} convolutions",
                v.variant().name(),
                v.conv_count()
            )));
        }
        let lins = backbone
            .channels()
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                lin.param::<4>(&format!("lin{k}.model.1.weight"), [1, c, 1, 1], device)
                    .map(|p| p.val())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { backbone, lins })
    }

    /// The backbone.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The smallest picture side the backbone takes: 31 for AlexNet, 16 for VGG-16.
    pub fn min_side(&self) -> usize {
        match self.backbone {
            Backbone::Alex(_) => alexnet::MIN_SIDE,
            Backbone::Vgg(_) => 16,
        }
    }

    /// The five per-layer terms for each sample of `x` and `y` (RGB 0..1, `[N, 3, H, W]` both,
    /// the same shape, at least 31×31 for AlexNet and 16×16 for VGG-16); their sum is the
    /// distance. Errors: [`Error::Param`] for different or too small shapes; [`Error::Weights`]
    /// when a term is not finite (weights holding NaN or infinity).
    pub fn layers(&self, x: Tensor<4>, y: Tensor<4>) -> Result<Vec<[f64; 5]>> {
        if x.dims() != y.dims() {
            return Err(Error::Param(format!(
                "LPIPS compares pictures of one size; got {:?} and {:?}",
                x.dims(),
                y.dims()
            )));
        }
        let [n, _, h, w] = x.dims();
        let min = self.min_side();
        if h < min || w < min {
            return Err(Error::Param(format!("LPIPS on {} needs pictures of at least {min}×{min} pixels, got {w}×{h}", self.backbone.name())));
        }
        let fx = self.backbone.features(x)?;
        let fy = self.backbone.features(y)?;
        let mut out = vec![[0f64; 5]; n];
        for (k, ((a, b), lin)) in fx.into_iter().zip(fy).zip(&self.lins).enumerate() {
            let d = (unit_norm(a) - unit_norm(b)).powi_scalar(2);
            let per_sample = (d * lin.clone())
                .sum_dim(1)
                .mean_dim(2)
                .mean_dim(3)
                .reshape([n]);
            let v: Vec<f32> = per_sample
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::Backend(format!("reading LPIPS terms: {e:?}")))?;
            for (s, v) in out.iter_mut().zip(v) {
                if !v.is_finite() {
                    return Err(Error::Weights(format!("LPIPS layer {k} gave {v}: the backbone's or the linear layers' weights hold NaN or infinity")));
                }
                s[k] = v as f64;
            }
        }
        Ok(out)
    }

    /// The LPIPS distance of each sample pair (see [`Lpips::layers`]).
    pub fn distance(&self, x: Tensor<4>, y: Tensor<4>) -> Result<Vec<f64>> {
        Ok(self.layers(x, y)?.iter().map(|l| l.iter().sum()).collect())
    }
}

/// `f / (‖f‖₂ over channels + 1e-10)` per pixel (the reference's `normalize_tensor`).
fn unit_norm(f: Tensor<4>) -> Tensor<4> {
    let norm = f.clone().powi_scalar(2).sum_dim(1).sqrt() + EPS;
    f / norm
}
