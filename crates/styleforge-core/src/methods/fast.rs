//! Fast (feed-forward, per-style) stylisation: a loaded network plus the options users expect:
//! strength, colour preservation, a size limit and tiled inference for large images.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::color;
use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::library::{Loaded, ModelKind};
use crate::methods::{Control, Input, Method, MethodInfo, Outcome, Params, tile_for, wrong_model};
use crate::networks::layers::NormContext;
use crate::networks::engstrom::EngstromNet;
use crate::networks::transformer_net::TransformerNet;
use crate::networks::layers::FrameNorm;
use crate::tiling::{NormalizedNet, TileConfig, norm_stats, run_normalized_in, run_padded};
use crate::weights::Weights;

/// The fast-style network families styleforge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// pytorch/examples `TransformerNet` (Johnson et al.).
    TransformerNet,
    /// Engstrom's TensorFlow network.
    Engstrom,
}

impl Family {
    /// The family's name as stored in model metadata.
    pub fn name(self) -> &'static str {
        match self {
            Family::TransformerNet => "transformer_net",
            Family::Engstrom => "engstrom",
        }
    }

    /// Recognises the family from the tensor names.
    pub fn detect(w: &Weights) -> Result<Self> {
        if TransformerNet::detect(w) {
            Ok(Family::TransformerNet)
        } else if EngstromNet::detect(w) {
            Ok(Family::Engstrom)
        } else {
            let some: Vec<&String> = w.tensors.keys().take(4).collect();
            Err(Error::Weights(format!(
                "not a fast-style network (neither TransformerNet nor Engstrom layout; first tensors: {some:?})"
            )))
        }
    }
}

/// A loaded fast-style network.
#[derive(Debug)]
pub enum FastStyleNet {
    /// pytorch/examples TransformerNet.
    TransformerNet(TransformerNet),
    /// Engstrom's network.
    Engstrom(EngstromNet),
}

/// Options for [`FastStyleNet::stylize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StylizeOptions {
    /// 0 gives the content, 1 the full style (pixel blend).
    pub strength: f32,
    /// Keep the content's colours; take only the style's luminance.
    pub preserve_color: bool,
    /// Scale down so the longer side is at most this (never up).
    pub max_size: Option<u32>,
    /// Tiled inference with this tile size; `None` runs the whole image at once.
    pub tile: Option<u32>,
    /// Long side of the pass that measures instance-norm statistics for tiled inference.
    pub stats_size: u32,
}

impl Default for StylizeOptions {
    fn default() -> Self {
        Self {
            strength: 1.0,
            preserve_color: false,
            max_size: None,
            tile: None,
            stats_size: 1024,
        }
    }
}

impl FastStyleNet {
    /// Builds the network for whichever family the weights hold.
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        Ok(match Family::detect(w)? {
            Family::TransformerNet => {
                FastStyleNet::TransformerNet(TransformerNet::load(w, device)?)
            }
            Family::Engstrom => FastStyleNet::Engstrom(EngstromNet::load(w, device)?),
        })
    }

    /// Loads a `.safetensors` or `.pth` file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_weights(&Weights::load(path)?, device)
    }

    /// The network's family.
    pub fn family(&self) -> Family {
        match self {
            FastStyleNet::TransformerNet(_) => Family::TransformerNet,
            FastStyleNet::Engstrom(_) => Family::Engstrom,
        }
    }

    /// Raw network: RGB 0..255 NCHW in, RGB (unclamped) out. Sizes must suit the family
    /// (multiples of 4 keep input and output sizes equal).
    pub fn forward(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        match self {
            FastStyleNet::TransformerNet(n) => n.forward(x, ctx),
            FastStyleNet::Engstrom(n) => n.forward(x, ctx),
        }
    }

    /// Network output for any size: padded to a multiple of 4, cropped back, clamped to 0..255.
    pub fn forward_any_size(&self, x: Tensor<4>, ctx: &mut NormContext) -> Tensor<4> {
        run_padded(x, 4, &mut |t| self.forward(t, ctx)).clamp(0.0, 255.0)
    }

    /// Stylises a picture with the given options; alpha is carried through unchanged.
    pub fn stylize(
        &self,
        input: &Picture,
        opts: &StylizeOptions,
        device: &Device,
    ) -> Result<Picture> {
        run_one_pass(input, opts, device, &|x, ctx| self.forward_any_size(x, ctx))
    }

    /// Instance-norm statistics of every layer, measured on the picture scaled to `size` (long side).
    pub fn norm_stats(&self, pic: &Picture, size: u32, device: &Device) -> crate::networks::layers::NormStats {
        norm_stats(pic, size, device, &|x, ctx| self.forward_any_size(x, ctx))
    }
}

/// Runs a one-pass network on a picture with the feed-forward options: scaled down to
/// `opts.max_size`, run whole or in tiles normalised with whole-image statistics (measured at
/// `opts.stats_size`), colour preservation and strength applied; alpha carried through.
/// Errors: options [`validate`] refuses, backend errors.
pub fn run_one_pass(input: &Picture, opts: &StylizeOptions, device: &Device, net: NormalizedNet<'_>) -> Result<Picture> {
    run_one_pass_in(input, opts, device, None, net)
}

/// [`run_one_pass`] for a frame of a sequence: with `frame`, instance-norm statistics are
/// shared with the frames before ([`FrameNorm`]).
pub fn run_one_pass_in(input: &Picture, opts: &StylizeOptions, device: &Device, frame: Option<&mut FrameNorm>, net: NormalizedNet<'_>) -> Result<Picture> {
    validate(opts)?;
    let pic = match opts.max_size {
        Some(m) => input.fit_within(m),
        None => input.clone(),
    };
    let mut out = run_normalized_in(&pic, opts.tile, opts.stats_size, device, frame, net)?;
    finish(&pic, &mut out, opts)?;
    Ok(Picture { width: pic.width, height: pic.height, rgb: out, alpha: pic.alpha.clone() })
}

/// Checks user-facing options.
pub fn validate(opts: &StylizeOptions) -> Result<()> {
    if !(0.0..=1.0).contains(&opts.strength) {
        return Err(Error::Param(format!(
            "strength must be within 0..1, got {}",
            opts.strength
        )));
    }
    if opts.max_size == Some(0) {
        return Err(Error::Param("max size must be at least 1 pixel".into()));
    }
    if let Some(t) = opts.tile {
        TileConfig::new(t)?;
    }
    if opts.stats_size < 64 {
        return Err(Error::Param(
            "the statistics pass needs at least 64 pixels".into(),
        ));
    }
    Ok(())
}

/// Applies colour preservation and strength against the content (shared by every method).
pub fn finish(content: &Picture, out: &mut [f32], opts: &StylizeOptions) -> Result<()> {
    if opts.preserve_color {
        color::preserve_color(&content.rgb, out)?;
    }
    color::blend(&content.rgb, out, opts.strength)
}

/// A network that stylises a picture in one pass with the feed-forward options (strength,
/// colour preservation, size limit, tiles): fast-style networks, CycleGAN generators.
pub trait FeedForwardNet {
    /// Stylises `pic` (RGB 0..255, alpha carried through) at its size after `opts.max_size`;
    /// with `frame`, as a frame of a sequence whose instance-norm statistics are shared
    /// ([`FrameNorm`]).
    fn stylize_frame(&self, pic: &Picture, opts: &StylizeOptions, device: &Device, frame: Option<&mut FrameNorm>) -> Result<Picture>;

    /// Stylises `pic` on its own.
    fn stylize_with(&self, pic: &Picture, opts: &StylizeOptions, device: &Device) -> Result<Picture> {
        self.stylize_frame(pic, opts, device, None)
    }
}

impl FeedForwardNet for FastStyleNet {
    fn stylize_frame(&self, pic: &Picture, opts: &StylizeOptions, device: &Device, frame: Option<&mut FrameNorm>) -> Result<Picture> {
        run_one_pass_in(pic, opts, device, frame, &|x, ctx| self.forward_any_size(x, ctx))
    }
}

/// A feed-forward method: a network per style (the model is the style), run in one pass with
/// [`StylizeOptions`], answered at once and tiled for large outputs.
#[derive(Debug)]
pub struct FeedForward {
    /// The method's description.
    pub info: MethodInfo,
    /// The progress stage shown while it runs.
    pub stage: &'static str,
}

impl Method for FeedForward {
    fn info(&self) -> &MethodInfo {
        &self.info
    }

    fn compute(&self, model: &Loaded, input: &Input, params: &Params, device: &Device, control: &mut Control<'_>) -> Result<Outcome> {
        let net = model
            .feed_forward()
            .filter(|_| self.info.accepts(model.kind()))
            .ok_or_else(|| wrong_model(&self.info, model))?;
        control.stage(0.1, self.stage);
        let opts = StylizeOptions::from_params(&self.info, params, &input.content);
        Ok(Outcome::done(net.stylize_frame(&input.content, &opts, device, control.frame_norm.as_deref_mut())?))
    }
}

/// The `fast` method: a feed-forward network trained for one style (Johnson et al., ECCV 2016;
/// Engstrom's TensorFlow variant).
pub static FAST: FeedForward = FeedForward {
    info: MethodInfo::feed_forward(
        "fast",
        "Fast network",
        "Trained for this style. About a second.",
        "Johnson et al., Perceptual Losses for Real-Time Style Transfer (ECCV 2016), pytorch/examples fast_neural_style; Engstrom, fast-style-transfer",
        &[ModelKind::Fast, ModelKind::Onnx],
    ),
    stage: "stylizing",
};

impl StylizeOptions {
    /// The options of a feed-forward run: strength, colour preservation, size limit and the
    /// registry's tiling rule.
    pub fn from_params(info: &MethodInfo, params: &Params, content: &Picture) -> Self {
        StylizeOptions {
            strength: params.strength(),
            preserve_color: params.flag("preserve_color"),
            max_size: params.max_size(),
            tile: tile_for(info, params, content.width, content.height),
            ..Default::default()
        }
    }
}
