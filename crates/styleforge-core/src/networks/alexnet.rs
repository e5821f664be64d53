//! The AlexNet feature extractor in torchvision's layout (`features.N.weight/bias`), the
//! backbone of LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
//! Perceptual Metric", CVPR 2018; richzhang/PerceptualSimilarity, `lpips/pretrained_networks.py`
//! class `alexnet`) and so of ArtFID's content distance.
//!
//! `torchvision.models.alexnet().features` (Krizhevsky 2014, "One weird trick", the single-tower
//! variant): `conv1` 11×11 stride 4 padding 2, 3→64; max pool 3×3 stride 2; `conv2` 5×5 padding 2,
//! 64→192; max pool; `conv3` 3×3 192→384; `conv4` 3×3 384→256; `conv5` 3×3 256→256; each
//! convolution followed by a ReLU. The outputs are the five ReLUs `relu1`..`relu5` (LPIPS's
//! slices `features[0:2]`, `[2:5]`, `[5:8]`, `[8:10]`, `[10:12]`); the last max pool and the
//! classifier are not used, and `classifier.*` tensors of a full checkpoint are ignored.
//!
//! The pretrained ImageNet weights are torchvision's
//! <https://download.pytorch.org/models/alexnet-owt-7be5be79.pth> (BSD-3-Clause code; the eight hex
//! digits are the prefix of the file's SHA-256). Input is RGB in `[0, 1]`, NCHW, at least 31×31
//! pixels; the ImageNet normalisation is applied inside. LPIPS's `ScalingLayer` (`(x - shift) /
//! scale` on `2u - 1` with shift `[-0.030, -0.088, -0.188]`, scale `[0.458, 0.448, 0.450]`) is the
//! same map as the ImageNet normalisation of `u`, so both uses share this input convention.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels;
use crate::networks::layers::{Conv, Padding};
use crate::networks::vgg::Vgg;
use crate::weights::Weights;

/// torchvision's AlexNet ImageNet weights.
pub const ALEXNET_URL: &str = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth";

/// The output channels of `relu1`..`relu5`.
pub const CHANNELS: [usize; 5] = [64, 192, 384, 256, 256];

/// The smallest input side: conv1 must leave 7 pixels for the two 3×3 stride-2 max pools to
/// leave one (`(H - 7) / 4 + 1 ≥ 7`).
pub const MIN_SIDE: usize = 31;

/// `(features index, [out, in, k, k], stride, padding)` of the five convolutions.
const CONVS: [(usize, [usize; 4], usize, usize); 5] = [
    (0, [64, 3, 11, 11], 4, 2),
    (3, [192, 64, 5, 5], 1, 2),
    (6, [384, 192, 3, 3], 1, 1),
    (8, [256, 384, 3, 3], 1, 1),
    (10, [256, 256, 3, 3], 1, 1),
];

/// AlexNet's convolutional features.
#[derive(Module, Debug)]
pub struct AlexNet {
    convs: Vec<Conv>,
}

impl AlexNet {
    /// Whether the weights look like torchvision's AlexNet features (`features.0.weight` is
    /// `[64, 3, 11, 11]`).
    pub fn detect(w: &Weights) -> bool {
        w.shape("features.0.weight")
            .is_ok_and(|s| s == [64, 3, 11, 11])
            && w.has("features.10.weight")
    }

    /// Builds the extractor from `features.{0,3,6,8,10}.{weight,bias}`, checking every shape.
    /// Errors: [`Error::Weights`] naming a missing or wrongly shaped tensor.
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        let convs = CONVS
            .iter()
            .map(|&(i, shape, stride, pad)| {
                Conv::load(
                    w,
                    &format!("features.{i}."),
                    shape,
                    true,
                    stride,
                    Padding::Explicit(pad),
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()
            .map_err(|e| Error::Weights(format!("not a torchvision AlexNet: {e}")))?;
        Ok(Self { convs })
    }

    /// RGB in `[0, 1]` `[N, 3, H, W]` (H, W ≥ [`MIN_SIDE`]) to `relu1`..`relu5`:
    /// `[N, 64, H1, W1]` with `H1 = (H - 7) / 4 + 1`, `[N, 192, H2, W2]` with
    /// `H2 = (H1 - 3) / 2 + 1`, then three of `[N, C, H3, W3]` with `H3 = (H2 - 3) / 2 + 1`.
    /// Errors: [`Error::Param`] for a smaller input.
    pub fn forward(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        let [_, c, h, w] = x.dims();
        if c != 3 || h < MIN_SIDE || w < MIN_SIDE {
            return Err(Error::Param(format!(
                "AlexNet needs an RGB picture of at least {MIN_SIDE}×{MIN_SIDE} pixels, got {w}×{h} with {c} channels"
            )));
        }
        let mut out = Vec::with_capacity(5);
        let mut y = Vgg::normalize(x);
        for (i, conv) in self.convs.iter().enumerate() {
            if i == 1 || i == 2 {
                y = kernels::max_pool2d(y, 3, 2);
            }
            y = conv.forward_relu(y);
            out.push(y.clone());
        }
        Ok(out)
    }
}
