//! The `cartoon` method: GAN filters in one pass. CartoonGAN-light generators (Chen et al.,
//! CartoonGAN, CVPR 2018; mnicnc404/CartoonGan-tensorflow's light generator,
//! [`crate::networks::cartoongan`]; built in: `cartoon-paprika`, `cartoon-shinkai`) and AnimeGANv2
//! generators ([`crate::networks::animegan`]; the port's published checkpoints are in the
//! download manifest).
//!
//! Any size: the network's output (a multiple of 4) is cropped back to the input at the top left,
//! as the reference aligns it. Large images run in tiles normalised with the whole image's
//! statistics (its norms are global per image), recorded on a pass at 1024 pixels.

use burn::tensor::Device;

use crate::error::Result;
use crate::image_io::Picture;
use crate::library::ModelKind;
use crate::methods::MethodInfo;
use crate::methods::fast::{FeedForward, FeedForwardNet, StylizeOptions, run_one_pass_in};
use crate::networks::layers::FrameNorm;
use crate::networks::animegan::AnimeGan;
use crate::networks::cartoongan::CartoonGan;

impl FeedForwardNet for AnimeGan {
    fn stylize_frame(&self, pic: &Picture, opts: &StylizeOptions, device: &Device, frame: Option<&mut FrameNorm>) -> Result<Picture> {
        run_one_pass_in(pic, opts, device, frame, &|x, ctx| self.forward_any_size(x, ctx))
    }
}

impl FeedForwardNet for CartoonGan {
    fn stylize_frame(&self, pic: &Picture, opts: &StylizeOptions, device: &Device, frame: Option<&mut FrameNorm>) -> Result<Picture> {
        run_one_pass_in(pic, opts, device, frame, &|x, ctx| self.forward_any_size(x, ctx))
    }
}

/// The `cartoon` method.
pub static CARTOON: FeedForward = FeedForward {
    info: MethodInfo::feed_forward(
        "cartoon",
        "Cartoon and anime filters",
        "A GAN filter in an anime film's look (built in: cartoon-paprika, cartoon-shinkai).",
        "Chen et al., CartoonGAN (CVPR 2018), mnicnc404/CartoonGan-tensorflow (light generator); Chen et al., AnimeGAN (2019) v2, bryandlee/animegan2-pytorch",
        &[ModelKind::Cartoon, ModelKind::Anime],
    ),
    stage: "cartoonizing",
};
