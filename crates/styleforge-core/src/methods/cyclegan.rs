//! The `cyclegan` stylisation method: a trained CycleGAN generator (junyanz ResNet generator,
//! e.g. the zoo's photo→Monet) applied to a picture of any size, with the options the other
//! methods have: a size limit, tiled inference, strength and colour preservation.
//!
//! The generator takes RGB in `[-1, 1]`; sides are padded to a multiple of 4 (at least 8) and the
//! output is cropped back. Tiled inference normalises every tile with instance-norm statistics
//! measured on the whole picture (scaled to [`STATS_SIZE`]), so tiles agree with each other.

use std::path::Path;

use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::methods::fast::{self, FeedForward, FeedForwardNet, StylizeOptions};
use crate::image_io::Picture;
use crate::library::ModelKind;
use crate::methods::MethodInfo;
use crate::networks::layers::{FrameNorm, NormContext, NormStats};
use crate::networks::cyclegan::{GeneratorConfig, ResnetGenerator};
use crate::tiling::norm_stats;
use crate::weights::Weights;

/// Long side of the pass that measures instance-norm statistics for tiled inference.
pub const STATS_SIZE: u32 = 1024;

/// Options for [`CycleGan::stylize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CycleGanOptions {
    /// Scale down so the longer side is at most this (never up).
    pub max_size: Option<u32>,
    /// Tiled inference with this tile size (at least 64); `None` runs the whole image at once.
    pub tile: Option<u32>,
    /// 0 gives the content, 1 the full translation (pixel blend).
    pub strength: f32,
    /// Keep the content's colours; take only the translation's luminance.
    pub preserve_color: bool,
}

impl Default for CycleGanOptions {
    fn default() -> Self {
        Self {
            max_size: None,
            tile: None,
            strength: 1.0,
            preserve_color: false,
        }
    }
}

impl CycleGanOptions {
    fn as_stylize(&self) -> StylizeOptions {
        StylizeOptions {
            strength: self.strength,
            preserve_color: self.preserve_color,
            max_size: self.max_size,
            tile: self.tile,
            stats_size: STATS_SIZE,
        }
    }
}

/// Checks user-facing options (strength within 0..1, a non-zero size limit, tiles of 64 or more).
pub fn validate(opts: &CycleGanOptions) -> Result<()> {
    fast::validate(&opts.as_stylize())
}

/// A loaded CycleGAN generator, RGB to RGB.
#[derive(Debug)]
pub struct CycleGan {
    generator: ResnetGenerator,
}

impl CycleGan {
    /// Whether the tensor names look like a CycleGAN ResNet generator.
    pub fn detect(w: &Weights) -> bool {
        ResnetGenerator::detect(w)
    }

    /// Builds the generator from a state dict (`latest_net_G.pth` of the zoo, or an export).
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        let generator = ResnetGenerator::load(w, device)?;
        let cfg = generator.config();
        if cfg.input_nc != 3 || cfg.output_nc != 3 {
            return Err(Error::Weights(format!(
                "the generator maps {} to {} channels; stylisation needs RGB to RGB",
                cfg.input_nc, cfg.output_nc
            )));
        }
        Ok(Self { generator })
    }

    /// Loads a `.safetensors` or `.pth` file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::load(path)?, device)
    }

    /// Wraps a generator (for instance one being trained).
    pub fn from_generator(generator: ResnetGenerator) -> Self {
        Self { generator }
    }

    /// The generator.
    pub fn generator(&self) -> &ResnetGenerator {
        &self.generator
    }

    /// The generator's shape (width, blocks).
    pub fn config(&self) -> GeneratorConfig {
        self.generator.config()
    }

    /// RGB 0..255 NCHW of any size in, RGB 0..255 of the same size out (clamped).
    pub fn forward_any_size(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let th = h.next_multiple_of(4).max(8);
        let tw = w.next_multiple_of(4).max(8);
        let (ph, pw) = (th - h, tw - w);
        let x = x / 127.5 - 1.0;
        let x = if ph == 0 && pw == 0 {
            x
        } else {
            let mode = if ph < h && pw < w {
                PadMode::Reflect
            } else {
                PadMode::Edge
            };
            x.pad([(0, ph), (0, pw)], mode)
        };
        let y = self.generator.forward(x, ctx);
        let c = y.dims()[1];
        ((y.slice([0..n, 0..c, 0..h, 0..w]) + 1.0) * 127.5).clamp(0.0, 255.0)
    }

    /// Instance-norm statistics of every layer, measured on the picture scaled to `size` (long side).
    pub fn norm_stats(&self, pic: &Picture, size: u32, device: &Device) -> NormStats {
        norm_stats(pic, size, device, &|x, ctx| self.forward_any_size(x, ctx))
    }

    /// Translates a picture with the given options; alpha is carried through unchanged.
    pub fn stylize(
        &self,
        input: &Picture,
        opts: &CycleGanOptions,
        device: &Device,
    ) -> Result<Picture> {
        fast::run_one_pass(input, &opts.as_stylize(), device, &|x, ctx| self.forward_any_size(x, ctx))
    }
}

impl FeedForwardNet for CycleGan {
    fn stylize_frame(&self, pic: &Picture, opts: &StylizeOptions, device: &Device, frame: Option<&mut FrameNorm>) -> Result<Picture> {
        let opts = CycleGanOptions {
            max_size: opts.max_size,
            tile: opts.tile,
            strength: opts.strength,
            preserve_color: opts.preserve_color,
        };
        fast::run_one_pass_in(pic, &opts.as_stylize(), device, frame, &|x, ctx| self.forward_any_size(x, ctx))
    }
}

/// The `cyclegan` method: a CycleGAN generator translates photos into a painter's style
/// (Zhu et al., ICCV 2017; junyanz/pytorch-CycleGAN-and-pix2pix).
pub static CYCLEGAN: FeedForward = FeedForward {
    info: MethodInfo::feed_forward(
        "cyclegan",
        "GAN translation",
        "A generator trained on this painter's work.",
        "Zhu et al., Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks (ICCV 2017), junyanz/pytorch-CycleGAN-and-pix2pix",
        &[ModelKind::CycleGan],
    ),
    stage: "translating",
};
