//! The kinds of model the library stores: the one vocabulary the engine, the CLI and the service
//! use for "what network does this file hold", how it is recognised from its tensor names, and
//! how it loads.
//!
//! A library model is one safetensors file. Fast-style networks and VGG feature extractors keep
//! their reference key names; an AdaIN model holds its two networks under `encoder.` and
//! `decoder.` (the release's `vgg_normalised.pth` and `decoder.pth` combined).

use std::path::Path;

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::library::ModelInfo;
use crate::methods::adain::AdainModel;
use crate::methods::cyclegan::CycleGan;
use crate::methods::fast::{Family, FastStyleNet};
use crate::networks::adain::{AdainDecoder, AdainEncoder};
use crate::networks::alexnet::AlexNet;
use crate::networks::animegan::AnimeGan;
use crate::networks::cartoongan::{self, CartoonGan};
use crate::networks::dcgan::DcganGenerator;
use crate::networks::inception::Inception3;
use crate::networks::microast::{self, MicroAst, MicroDecoder, MicroEncoder, Modulator};
use crate::networks::vgg::{Vgg, VggVariant};
use crate::onnx::runtime::{OnnxNet, Overrides};
use crate::weights::Weights;

/// The kinds of model the library stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// A fast-style network (TransformerNet or Engstrom): one style per model.
    Fast,
    /// AdaIN encoder + decoder: any style image.
    Adain,
    /// A VGG feature extractor (Gatys optimisation, perceptual losses).
    Vgg,
    /// A CycleGAN ResNet generator (photo → painting translation).
    CycleGan,
    /// A DCGAN generator (new images from random latents).
    Dcgan,
    /// MicroAST encoders, modulator and decoder: any style image, no VGG.
    MicroAst,
    /// A CartoonGAN-light generator (a cartoon filter).
    Cartoon,
    /// An AnimeGANv2 generator (an anime filter).
    Anime,
    /// An imported ONNX image-to-image model (one style per model), run by tract.
    Onnx,
    /// A network behind an evaluation metric ([`crate::metrics`]): torchvision's AlexNet (the
    /// LPIPS backbone) or ArtFID's art Inception-v3. No method stylises with it.
    Metric,
}

impl ModelKind {
    /// Every kind.
    pub const ALL: [ModelKind; 10] = [
        ModelKind::Fast,
        ModelKind::Adain,
        ModelKind::Vgg,
        ModelKind::CycleGan,
        ModelKind::Dcgan,
        ModelKind::MicroAst,
        ModelKind::Cartoon,
        ModelKind::Anime,
        ModelKind::Onnx,
        ModelKind::Metric,
    ];

    /// The name stored in a model's metadata (its `method` field) and shown to users:
    /// `fast`, `adain`, `vgg`, `cyclegan`, `generate`, `microast`, `cartoon`, `anime`, `onnx`,
    /// `metric`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Fast => "fast",
            ModelKind::Adain => "adain",
            ModelKind::Vgg => "vgg",
            ModelKind::CycleGan => "cyclegan",
            ModelKind::Dcgan => "generate",
            ModelKind::MicroAst => "microast",
            ModelKind::Cartoon => "cartoon",
            ModelKind::Anime => "anime",
            ModelKind::Onnx => "onnx",
            ModelKind::Metric => "metric",
        }
    }

    /// What a model of this kind is called in messages (`AdaIN model`, `VGG loss network`).
    pub fn title(self) -> &'static str {
        match self {
            ModelKind::Fast => "fast-style network",
            ModelKind::Adain => "AdaIN model",
            ModelKind::Vgg => "VGG loss network",
            ModelKind::CycleGan => "CycleGAN generator",
            ModelKind::Dcgan => "DCGAN generator",
            ModelKind::MicroAst => "MicroAST model",
            ModelKind::Cartoon => "CartoonGAN generator",
            ModelKind::Anime => "AnimeGANv2 generator",
            ModelKind::Onnx => "ONNX model",
            ModelKind::Metric => "evaluation network",
        }
    }

    /// [`ModelKind::title`] with its indefinite article (`an AdaIN model`, `a CycleGAN
    /// generator`), for messages.
    pub fn a_title(self) -> String {
        let t = self.title();
        let article = if t.starts_with(['A', 'E', 'I', 'O', 'U', 'a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        format!("{article} {t}")
    }

    /// What a library file of this kind holds and how to get one, for messages.
    pub fn contents(self) -> &'static str {
        match self {
            ModelKind::Fast => "a TransformerNet or Engstrom state dict with method `fast`: `styleforge models download` or `styleforge train fast-style`",
            ModelKind::Adain => "the encoder (`encoder.*`) and decoder (`decoder.*`) tensors with method `adain`: `styleforge models download adain`, or `styleforge models import vgg_normalised.pth decoder.pth --name adain`",
            ModelKind::Vgg => "`features.N.*` tensors, method `vgg`: `styleforge models download vgg19`",
            ModelKind::CycleGan => "a ResNet generator state dict with method `cyclegan`: `styleforge train cyclegan --export NAME`",
            ModelKind::Dcgan => "a DCGAN generator state dict with method `generate`: `styleforge train dcgan --export NAME`",
            ModelKind::MicroAst => "the four MicroAST state dicts under `content_encoder.`, `style_encoder.`, `modulator.`, `decoder.` with method `microast`: built in as `microast`, or `styleforge models import content_encoder_iter_160000.pth.tar style_encoder_iter_160000.pth.tar modulator_iter_160000.pth.tar decoder_iter_160000.pth.tar --name NAME`",
            ModelKind::Cartoon => "a CartoonGAN-light generator (TensorFlow checkpoint variables) with method `cartoon`: built in as `cartoon-paprika` and `cartoon-shinkai`, or `styleforge models import CHECKPOINT_DIR --name NAME`",
            ModelKind::Anime => "an AnimeGANv2 generator state dict (bryandlee/animegan2-pytorch layout) with method `anime`: `styleforge models download animegan2-face-paint-v2 --trust`",
            ModelKind::Onnx => "an ONNX image-to-image model (one image in, one out) with method `onnx`: `styleforge models import model.onnx --name NAME [--input-range 0..255|0..1|-1..1]`",
            ModelKind::Metric => "torchvision's AlexNet (`features.N.*`, for LPIPS and ArtFID) or ArtFID's Inception-v3 (`Mixed_7c.*`) with method `metric`: `styleforge models download alexnet`, `styleforge models download art-inception --trust`",
        }
    }

    /// The kind a metadata name stands for (`gatys` is an older name of `vgg`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gatys" => Some(ModelKind::Vgg),
            _ => Self::ALL.into_iter().find(|k| k.name() == name),
        }
    }

    /// The kind of a library model, from its metadata (a model named `vgg*` without a known
    /// method is a VGG); `None` for anything styleforge does not run.
    pub fn of(info: &ModelInfo) -> Option<Self> {
        Self::from_name(&info.method).or_else(|| info.name.starts_with("vgg").then_some(ModelKind::Vgg))
    }

    /// Builds this kind of network from a weight map (checking every tensor's presence and shape).
    pub fn load_weights(self, w: &Weights, device: &Device) -> Result<Loaded> {
        Ok(match self {
            ModelKind::Fast => Loaded::Fast(FastStyleNet::from_weights(w, device)?),
            ModelKind::Adain => Loaded::Adain(load_adain(w, device)?),
            ModelKind::Vgg => Loaded::Vgg(Vgg::from_weights(w, None, device)?),
            ModelKind::CycleGan => Loaded::CycleGan(CycleGan::from_weights(w, device)?),
            ModelKind::Dcgan => Loaded::Dcgan(DcganGenerator::load(w, device)?),
            ModelKind::MicroAst => Loaded::MicroAst(MicroAst::from_weights(w, device)?),
            ModelKind::Cartoon => Loaded::Cartoon(CartoonGan::from_weights(w, device)?),
            ModelKind::Anime => Loaded::Anime(AnimeGan::from_weights(w, device)?),
            ModelKind::Onnx => Loaded::Onnx(load_onnx(w, device)?),
            ModelKind::Metric => Loaded::Metric(MetricNet::from_weights(w, device)?),
        })
    }

    /// Loads a `.safetensors` or `.pth` file as this kind of network.
    pub fn load(self, path: &Path, device: &Device) -> Result<Loaded> {
        self.load_weights(&Weights::load(path)?, device)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A loaded network of any kind, as the methods take it.
#[derive(Debug)]
pub enum Loaded {
    /// A fast-style network.
    Fast(FastStyleNet),
    /// The AdaIN encoder and decoder.
    Adain(AdainModel),
    /// A VGG feature network (the Gatys loss network).
    Vgg(Vgg),
    /// A CycleGAN generator.
    CycleGan(CycleGan),
    /// A DCGAN generator.
    Dcgan(DcganGenerator),
    /// The MicroAST networks.
    MicroAst(MicroAst),
    /// A CartoonGAN-light generator.
    Cartoon(CartoonGan),
    /// An AnimeGANv2 generator.
    Anime(AnimeGan),
    /// An imported ONNX model.
    Onnx(OnnxNet),
    /// An evaluation network.
    Metric(MetricNet),
}

/// The networks of [`ModelKind::Metric`].
#[derive(Debug)]
pub enum MetricNet {
    /// torchvision's AlexNet features (LPIPS's backbone).
    Alex(AlexNet),
    /// ArtFID's Inception-v3 (its FID features).
    Inception(Box<Inception3>),
}

impl MetricNet {
    /// Recognises and builds the network: AlexNet ([`AlexNet::detect`]) or Inception-v3
    /// ([`Inception3::detect`]). Errors: [`Error::Weights`] for anything else or an incomplete file.
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        if AlexNet::detect(w) {
            Ok(MetricNet::Alex(AlexNet::from_weights(w, device)?))
        } else if Inception3::detect(w) {
            Ok(MetricNet::Inception(Box::new(Inception3::from_weights(
                w, device,
            )?)))
        } else {
            Err(Error::Weights("not an evaluation network styleforge knows (torchvision AlexNet, ArtFID Inception-v3)".into()))
        }
    }
}

impl Loaded {
    /// The network as a one-pass stylisation network, for the kinds that are one.
    pub fn feed_forward(&self) -> Option<&dyn crate::methods::fast::FeedForwardNet> {
        match self {
            Loaded::Fast(n) => Some(n),
            Loaded::CycleGan(g) => Some(g),
            Loaded::Cartoon(g) => Some(g),
            Loaded::Anime(g) => Some(g),
            Loaded::Onnx(g) => Some(g),
            _ => None,
        }
    }

    /// The kind of network held.
    pub fn kind(&self) -> ModelKind {
        match self {
            Loaded::Fast(_) => ModelKind::Fast,
            Loaded::Adain(_) => ModelKind::Adain,
            Loaded::Vgg(_) => ModelKind::Vgg,
            Loaded::CycleGan(_) => ModelKind::CycleGan,
            Loaded::Dcgan(_) => ModelKind::Dcgan,
            Loaded::MicroAst(_) => ModelKind::MicroAst,
            Loaded::Cartoon(_) => ModelKind::Cartoon,
            Loaded::Anime(_) => ModelKind::Anime,
            Loaded::Onnx(_) => ModelKind::Onnx,
            Loaded::Metric(_) => ModelKind::Metric,
        }
    }
}

/// What a weight map was recognised as: its kind and network family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    /// The kind.
    pub kind: ModelKind,
    /// The network family stored in the metadata (`transformer_net`, `engstrom`, `adain`,
    /// `vgg16`, `vgg19`, `cyclegan_resnet`, `dcgan`).
    pub family: &'static str,
    /// The fast-style family, for fast-style networks.
    pub fast_family: Option<Family>,
    /// The VGG variant, for VGG feature extractors.
    pub vgg: Option<VggVariant>,
}

impl Detected {
    fn new(kind: ModelKind, family: &'static str) -> Self {
        Self { kind, family, fast_family: None, vgg: None }
    }
}

/// Recognises the kind from the tensor names alone.
pub fn detect(w: &Weights) -> Result<Detected> {
    if w.graph.is_some() {
        return Ok(Detected::new(ModelKind::Onnx, "onnx"));
    }
    if let Ok(f) = Family::detect(w) {
        return Ok(Detected { fast_family: Some(f), ..Detected::new(ModelKind::Fast, f.name()) });
    }
    if AdainEncoder::detect(&w.with_prefix("encoder.")) && AdainDecoder::detect(&w.with_prefix("decoder.")) {
        return Ok(Detected::new(ModelKind::Adain, "adain"));
    }
    if CartoonGan::detect(w) || CartoonGan::detect(&strip_tf_suffix(w)) {
        return Ok(Detected::new(ModelKind::Cartoon, "cartoongan_light"));
    }
    if AnimeGan::detect(w) {
        return Ok(Detected::new(ModelKind::Anime, "animegan2"));
    }
    if MicroAst::detect(w) {
        return Ok(Detected::new(ModelKind::MicroAst, "microast"));
    }
    if CycleGan::detect(w) {
        return Ok(Detected::new(ModelKind::CycleGan, "cyclegan_resnet"));
    }
    if w.has("main.0.weight") && w.has("main.1.running_mean") && w.has("main.12.weight") {
        return Ok(Detected::new(ModelKind::Dcgan, "dcgan"));
    }
    if AlexNet::detect(w) {
        return Ok(Detected::new(ModelKind::Metric, "alexnet"));
    }
    if Inception3::detect(w) {
        return Ok(Detected::new(ModelKind::Metric, "inception_v3"));
    }
    if let Some(v) = VggVariant::ALL.into_iter().find(|v| v.matches(w)) {
        return Ok(Detected { vgg: Some(v), ..Detected::new(ModelKind::Vgg, v.name()) });
    }
    let some: Vec<&String> = w.tensors.keys().take(4).collect();
    Err(Error::Weights(format!(
        "not a model styleforge knows (fast-style TransformerNet or Engstrom, AdaIN encoder+decoder, MicroAST, CartoonGAN-light, AnimeGANv2, VGG16/19, CycleGAN or DCGAN generator, AlexNet or Inception-v3 for the metrics); first tensors: {some:?}"
    )))
}

/// Recognises the kind and builds the network on the CPU, proving the file is complete.
pub fn validate(w: &Weights) -> Result<Detected> {
    let detected = detect(w)?;
    drop(detected.kind.load_weights(w, &Device::flex())?);
    Ok(detected)
}

/// Compiles the ONNX model weights hold ([`Weights::graph`]) with the conventions their metadata
/// records. When the graph's weights are the state dict of a one-pass network styleforge runs
/// natively (a PyTorch export of TransformerNet, a styleforge export) and that network gives the
/// graph's picture on a probe ([`OnnxNet::agrees_with`]), it runs as that network on `device`.
/// Errors: [`Error::Weights`] for weights without a graph, or a graph tract cannot run.
pub fn load_onnx(w: &Weights, device: &Device) -> Result<OnnxNet> {
    let graph = w.graph.clone().ok_or_else(|| Error::Weights("these weights hold tensors, not an ONNX model".into()))?;
    let net = OnnxNet::load(graph, &w.metadata, &Overrides::default())?;
    let state_dict = crate::onnx::runtime::initializers(net.proto());
    let native = match detect(&state_dict) {
        Ok(d) if d.kind != ModelKind::Onnx => d.kind.load_weights(&state_dict, device).ok(),
        _ => None,
    };
    Ok(match native {
        Some(n) if n.feed_forward().is_some_and(|f| net.agrees_with(f, device)) => net.with_native(n),
        _ => net,
    })
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

/// Combines MicroAST's four published state dicts into one map under [`microast::PARTS`]'
/// prefixes. `files` are `(file name, weights)`: the modulator and the decoder are recognised by
/// their tensors; the two encoders, which share one architecture, by `content`/`style` in their
/// file names (as published: `content_encoder_iter_160000.pth.tar`), else by their order.
pub fn combine_microast(files: Vec<(String, Weights)>) -> Result<Weights> {
    if files.len() != 4 {
        return Err(Error::Param(format!(
            "MicroAST takes four files (content encoder, style encoder, modulator, decoder), got {}",
            files.len()
        )));
    }
    let mut parts: [Option<Weights>; 4] = Default::default();
    let mut encoders = Vec::new();
    for (name, w) in files {
        let slot = if Modulator::detect(&w) {
            2
        } else if MicroDecoder::detect(&w) {
            3
        } else if MicroEncoder::detect(&w) {
            encoders.push((name, w));
            continue;
        } else {
            return Err(Error::Weights(format!("{name}: not a MicroAST encoder, modulator or decoder")));
        };
        if parts[slot].replace(w).is_some() {
            return Err(Error::Weights(format!("{name}: a second MicroAST {}", microast::PARTS[slot])));
        }
    }
    if encoders.len() != 2 {
        return Err(Error::Weights(format!("expected two MicroAST encoders, found {}", encoders.len())));
    }
    let named = |n: &str, key: &str| n.to_ascii_lowercase().contains(key);
    if named(&encoders[1].0, "content") || named(&encoders[0].0, "style") {
        encoders.swap(0, 1);
    }
    let mut encoders = encoders.into_iter();
    parts[0] = encoders.next().map(|e| e.1);
    parts[1] = encoders.next().map(|e| e.1);
    let mut out = Weights::default();
    for (prefix, part) in microast::PARTS.iter().zip(parts) {
        let part = part.ok_or_else(|| Error::Weights(format!("the MicroAST {prefix} is missing")))?;
        for (k, t) in part.tensors {
            out.tensors.insert(format!("{prefix}.{k}"), t);
        }
    }
    Ok(out)
}

/// The map with TensorFlow's object-checkpoint suffix ([`cartoongan::TF_SUFFIX`]) removed from
/// every name.
pub fn strip_tf_suffix(w: &Weights) -> Weights {
    Weights {
        tensors: w.tensors.iter().map(|(k, t)| (k.trim_end_matches(cartoongan::TF_SUFFIX).to_string(), t.clone())).collect(),
        metadata: w.metadata.clone(),
        graph: w.graph.clone(),
    }
}
