//! What kind of network a weight map holds, for the library, the CLI and the service.
//!
//! A library model is one safetensors file. Fast-style networks and VGG feature extractors keep
//! their reference key names; an AdaIN model holds its two networks under `encoder.` and
//! `decoder.` (the release's `vgg_normalised.pth` and `decoder.pth` combined).

use burn::tensor::Device;

use crate::adain::AdainModel;
use crate::cyclegan::CycleGan;
use crate::error::{Error, Result};
use crate::fast_style::{Family, FastStyleNet};
use crate::networks::adain::{AdainDecoder, AdainEncoder};
use crate::networks::dcgan::DcganGenerator;
use crate::networks::vgg::{Vgg, VggVariant};
use crate::weights::Weights;

/// The kinds of model the library stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A fast-style network.
    Fast(Family),
    /// AdaIN encoder + decoder.
    Adain,
    /// A VGG feature extractor (Gatys optimisation, perceptual losses).
    Vgg(VggVariant),
    /// A CycleGAN ResNet generator (photo → painting translation).
    CycleGan,
    /// A DCGAN generator (new images from random latents).
    Dcgan,
}

impl Kind {
    /// Method name (`fast`, `adain`, `vgg`, `cyclegan`, `generate`).
    pub fn method(self) -> &'static str {
        match self {
            Kind::Fast(_) => "fast",
            Kind::Adain => "adain",
            Kind::Vgg(_) => "vgg",
            Kind::CycleGan => "cyclegan",
            Kind::Dcgan => "generate",
        }
    }

    /// Network family name.
    pub fn family(self) -> &'static str {
        match self {
            Kind::Fast(f) => f.name(),
            Kind::Adain => "adain",
            Kind::Vgg(v) => v.name(),
            Kind::CycleGan => "cyclegan_resnet",
            Kind::Dcgan => "dcgan",
        }
    }
}

/// Recognises the kind from the tensor names alone.
pub fn detect(w: &Weights) -> Result<Kind> {
    if let Ok(f) = Family::detect(w) {
        return Ok(Kind::Fast(f));
    }
    if AdainEncoder::detect(&w.with_prefix("encoder.")) && AdainDecoder::detect(&w.with_prefix("decoder.")) {
        return Ok(Kind::Adain);
    }
    if CycleGan::detect(w) {
        return Ok(Kind::CycleGan);
    }
    if w.has("main.0.weight") && w.has("main.1.running_mean") && w.has("main.12.weight") {
        return Ok(Kind::Dcgan);
    }
    if let Some(v) = VggVariant::ALL.into_iter().find(|v| v.matches(w)) {
        return Ok(Kind::Vgg(v));
    }
    let some: Vec<&String> = w.tensors.keys().take(4).collect();
    Err(Error::Weights(format!(
        "not a model styleforge knows (fast-style TransformerNet or Engstrom, AdaIN encoder+decoder, VGG16/19, CycleGAN or DCGAN generator); first tensors: {some:?}"
    )))
}

/// Recognises the kind and builds the network on the CPU, proving the file is complete.
pub fn validate(w: &Weights) -> Result<Kind> {
    let kind = detect(w)?;
    let dev = Device::flex();
    match kind {
        Kind::Fast(_) => drop(FastStyleNet::from_weights(w, &dev)?),
        Kind::Adain => drop(load_adain(w, &dev)?),
        Kind::Vgg(v) => drop(Vgg::from_weights(w, Some(v), &dev)?),
        Kind::CycleGan => drop(CycleGan::from_weights(w, &dev)?),
        Kind::Dcgan => drop(DcganGenerator::load(w, &dev)?),
    }
    Ok(kind)
}

/// Builds an AdaIN model from a combined map (`encoder.*`, `decoder.*`).
pub fn load_adain(w: &Weights, device: &Device) -> Result<AdainModel> {
    AdainModel::from_weights(&w.with_prefix("encoder."), &w.with_prefix("decoder."), device)
}

/// Combines the release's two AdaIN files into one map, recognising which is which.
pub fn combine_adain(a: Weights, b: Weights) -> Result<Weights> {
    let (enc, dec) = if AdainEncoder::detect(&a) && AdainDecoder::detect(&b) {
        (a, b)
    } else if AdainEncoder::detect(&b) && AdainDecoder::detect(&a) {
        (b, a)
    } else {
        return Err(Error::Weights("expected the AdaIN encoder (vgg_normalised) and decoder files".into()));
    };
    let mut out = Weights::default();
    for (k, t) in enc.tensors {
        out.tensors.insert(format!("encoder.{k}"), t);
    }
    for (k, t) in dec.tensors {
        out.tensors.insert(format!("decoder.{k}"), t);
    }
    Ok(out)
}
