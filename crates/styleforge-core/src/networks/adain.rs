//! The AdaIN networks of Huang & Belongie (2017) as released in naoto0804/pytorch-AdaIN: the
//! normalised VGG-19 encoder up to relu4_1 and its mirror-image decoder.
//!
//! Both are `nn.Sequential` state dicts whose keys are layer indices (`0.weight`, `2.weight`, ...).
//! The encoder is a 1×1 convolution (which folds in the input normalisation: RGB in 0..1 goes
//! in as is), then ReflectionPad(1) + 3×3 convolution + ReLU blocks with
//! `MaxPool2d(2, 2, ceil_mode=True)` between the stages. The released `vgg_normalised.pth` holds
//! the whole VGG-19; only the layers relu4_1 needs are read and the rest is ignored.
//! The decoder uses reflection-padded 3×3 convolutions with ReLU, nearest ×2 upsampling, and a
//! final convolution without ReLU; its output is RGB in (roughly) 0..1, unclamped.

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::kernels;
use crate::networks::layers::{Conv, Padding};
use crate::weights::Weights;

/// Channels of the relu4_1 features (the encoder's output, the decoder's input).
pub const FEATURE_CHANNELS: usize = 512;

/// Encoder layers: (Sequential index, out, in, whether a ceil-mode max-pool follows the ReLU).
const ENCODER: [(usize, usize, usize, bool); 9] = [
    (2, 64, 3, false),
    (5, 64, 64, true),
    (9, 128, 64, false),
    (12, 128, 128, true),
    (16, 256, 128, false),
    (19, 256, 256, false),
    (22, 256, 256, false),
    (25, 256, 256, true),
    (29, 512, 256, false),
];

/// Index of the last layer the encoder needs (the ReLU after conv4_1).
const ENCODER_LAST: usize = 30;

/// Decoder layers: (Sequential index, out, in, whether a nearest ×2 upsampling follows the ReLU).
const DECODER: [(usize, usize, usize, bool); 8] = [
    (1, 256, 512, true),
    (5, 256, 256, false),
    (8, 256, 256, false),
    (11, 256, 256, false),
    (14, 128, 256, true),
    (18, 128, 128, false),
    (21, 64, 128, true),
    (25, 64, 64, false),
];

/// Index and shape of the decoder's last convolution (no ReLU after it).
const DECODER_OUT: (usize, usize, usize) = (28, 3, 64);

/// The normalised VGG-19 encoder truncated at relu4_1.
#[derive(Module, Debug)]
pub struct AdainEncoder {
    pre: Conv,
    convs: Vec<Conv>,
    #[module(skip)]
    pool_after: Vec<bool>,
}

impl AdainEncoder {
    /// Whether the weights look like `vgg_normalised` (a 3→3 1×1 convolution at index 0).
    pub fn detect(w: &Weights) -> bool {
        w.shape("0.weight").is_ok_and(|s| s == [3, 3, 1, 1]) && w.has("29.weight")
    }

    /// Builds the encoder, checking every shape; layers past relu4_1 (`N.weight`/`N.bias`
    /// with N > 30) are ignored, any other unexpected key is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let pre = Conv::load(w, "0.", [3, 3, 1, 1], true, 1, Padding::Valid, device)?;
        let convs = ENCODER
            .iter()
            .map(|&(i, o, c, _)| reflect_conv(w, (i, o, c), device))
            .collect::<Result<Vec<_>>>()?;
        let mut used: Vec<usize> = ENCODER.iter().map(|l| l.0).collect();
        used.push(0);
        w.reject_unexpected(|k| match sequential_index(k) {
            Some(i) => used.contains(&i) || i > ENCODER_LAST,
            None => false,
        })?;
        Ok(Self {
            pre,
            convs,
            pool_after: ENCODER.iter().map(|l| l.3).collect(),
        })
    }

    /// relu4_1 features `[N, 512, ceil(H/8), ceil(W/8)]` of RGB in 0..1 (`[N, 3, H, W]`, H, W ≥ 9).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = self.pre.forward(x);
        for (conv, &pool) in self.convs.iter().zip(&self.pool_after) {
            y = relu(conv.forward(y));
            if pool {
                y = kernels::max_pool2x2(y, true);
            }
        }
        y
    }
}

/// The AdaIN decoder: relu4_1 features back to RGB (0..1, unclamped), eight times larger.
#[derive(Module, Debug)]
pub struct AdainDecoder {
    convs: Vec<Conv>,
    #[module(skip)]
    upsample_after: Vec<bool>,
    out: Conv,
}

impl AdainDecoder {
    /// Whether the weights look like the AdaIN decoder (a 512→256 3×3 convolution at index 1).
    pub fn detect(w: &Weights) -> bool {
        w.shape("1.weight")
            .is_ok_and(|s| s == [256, FEATURE_CHANNELS, 3, 3])
            && w.has("28.weight")
    }

    /// Builds the decoder, checking every shape; any unexpected key is an error.
    pub fn load(w: &Weights, device: &Device) -> Result<Self> {
        let convs = DECODER
            .iter()
            .map(|&(i, o, c, _)| reflect_conv(w, (i, o, c), device))
            .collect::<Result<Vec<_>>>()?;
        let out = reflect_conv(w, DECODER_OUT, device)?;
        let mut used: Vec<usize> = DECODER.iter().map(|l| l.0).collect();
        used.push(DECODER_OUT.0);
        w.reject_unexpected(|k| sequential_index(k).is_some_and(|i| used.contains(&i)))?;
        Ok(Self {
            convs,
            upsample_after: DECODER.iter().map(|l| l.3).collect(),
            out,
        })
    }

    /// RGB `[N, 3, 8h, 8w]` (0..1, unclamped) from features `[N, 512, h, w]` (h, w ≥ 2).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x;
        let mut up = false;
        for (conv, &up_after) in self.convs.iter().zip(&self.upsample_after) {
            y = relu(if up { conv.forward_upsampled(y) } else { conv.forward(y) });
            up = up_after;
        }
        if up { self.out.forward_upsampled(y) } else { self.out.forward(y) }
    }
}

/// The reflection-padded 3×3 convolution `{index}.weight/bias` from `in` to `out` channels.
fn reflect_conv(w: &Weights, (index, out, inp): (usize, usize, usize), device: &Device) -> Result<Conv> {
    Conv::load(w, &format!("{index}."), [out, inp, 3, 3], true, 1, Padding::Reflect, device)
}

/// The layer index of an `nn.Sequential` key `N.weight` / `N.bias`.
fn sequential_index(key: &str) -> Option<usize> {
    let (i, rest) = key.split_once('.')?;
    matches!(rest, "weight" | "bias")
        .then(|| i.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;

    #[test]
    fn ceil_mode_pool_keeps_partial_windows() {
        let device = Device::flex();
        let (h, w) = (5usize, 7usize);
        let data: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 23) as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(data.clone(), [1, 1, h, w]), &device);
        let y = max_pool2d(
            x,
            MaxPoolOptions::new([2, 2])
                .with_stride([2, 2])
                .with_ceil_mode(true),
        );
        assert_eq!(y.dims(), [1, 1, 3, 4]);
        let got = y.into_data().try_into_vec::<f32>().unwrap();
        for oy in 0..3 {
            for ox in 0..4 {
                let mut m = f32::MIN;
                for yy in 2 * oy..(2 * oy + 2).min(h) {
                    for xx in 2 * ox..(2 * ox + 2).min(w) {
                        m = m.max(data[yy * w + xx]);
                    }
                }
                assert_eq!(got[oy * 4 + ox], m, "window ({oy}, {ox})");
            }
        }
    }

    #[test]
    fn sequential_keys() {
        assert_eq!(sequential_index("29.weight"), Some(29));
        assert_eq!(sequential_index("3.bias"), Some(3));
        assert_eq!(sequential_index("3.running_mean"), None);
        assert_eq!(sequential_index("conv.weight"), None);
    }
}
