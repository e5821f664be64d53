//! Exporting library networks as ONNX models.
//!
//! [`export`] writes a loaded network as an ONNX model (protobuf bytes, IR version
//! [`IR_VERSION`], operator set `ai.onnx` [`OPSET`]) that computes what the engine's one-pass
//! forward computes, layer by layer, with the reference's parameter names (each network's
//! `export_onnx`, built with [`super::graph`]):
//!
//! - image-to-image networks (`fast`, `cyclegan`, `cartoon`, `anime`) take `input`, RGB float32
//!   NCHW `[1, 3, height, width]` in 0..255, and return `output` of the same shape in 0..255,
//!   unclamped: the scaling to and from the network's own range is in the graph, and so is the
//!   crop of an output larger than the input (CartoonGAN). Networks the engine runs on a copy
//!   padded to a multiple of 4 (fast-style networks, CycleGAN) declare the multiple
//!   ([`meta::SIZE_MULTIPLE`]) instead of padding in the graph (tract takes `Pad` amounts only
//!   as constants, not computed from a symbolic size); their output is cropped to the input's
//!   size too, a no-op at the declared multiples that keeps the output's shape the input's.
//!   Sides below a network's smallest are declared by [`meta::MIN_SIZE`]. AnimeGANv2 resizes
//!   to sizes taken from earlier tensors (`Shape` → `Resize` with `sizes`, as PyTorch exports
//!   `interpolate(size=...)`): ONNX Runtime runs it at any size, tract 0.23.9 only when compiled
//!   for the input's concrete shape (its `Resize` does not resolve symbolic sizes at run time:
//!   "Undetermined symbol in expression: (height)/2");
//! - MicroAST takes `content` `[1, 3, height, width]` and `style` `[1, 3, style_height,
//!   style_width]` in 0..255 and returns `output` like `content` (the engine scales style images
//!   to at most [`crate::methods::microast::STYLE_SIZE`] pixels first);
//! - a DCGAN generator takes the latent `z` `[batch, nz, 1, 1]` (standard normal) and returns
//!   `output` `[batch, 3, 64, 64]` in -1..1 (its tanh, as the reference).
//!
//! The model's metadata properties are the library's ([`ModelInfo::to_metadata`]) and the
//! conventions of [`meta`].

use std::collections::BTreeMap;

use prost::Message;

use crate::error::{Error, Result};
use crate::library::{Loaded, ModelInfo, ModelKind};
use crate::methods::fast::FastStyleNet;
use crate::networks::animegan;
use crate::onnx::graph::{Dim, Graph};
use crate::onnx::{ValueRange, meta};

/// Opset used (ai.onnx), a current one: 17 or later.
pub const OPSET: i64 = 17;

/// The ONNX IR version written (8: the version that goes with opset 17).
pub const IR_VERSION: i64 = 8;

/// Whether models of `kind` can be exported: every kind but AdaIN and VGG.
pub fn exportable(kind: ModelKind) -> bool {
    matches!(
        kind,
        ModelKind::Fast | ModelKind::CycleGan | ModelKind::Dcgan | ModelKind::MicroAst | ModelKind::Cartoon | ModelKind::Anime
    )
}

/// The ONNX model (protobuf bytes) of a loaded network, with `info`'s metadata
/// (`info.to_metadata()`) plus the [`meta`] keys ([`meta::INPUT_RANGE`] for image inputs,
/// [`meta::OUTPUT_RANGE`], [`meta::LAYOUT`] = `NCHW`, [`meta::CHANNELS`] = `RGB`,
/// [`meta::SIZE_MULTIPLE`] and [`meta::MIN_SIZE`] when needed, [`meta::KIND`] = the kind's name)
/// as metadata properties. See the module documentation for the graphs' inputs and outputs.
/// Errors: [`Error::Param`] for kinds that cannot be exported (AdaIN, VGG).
pub fn export(model: &Loaded, info: &ModelInfo) -> Result<Vec<u8>> {
    let kind = model.kind();
    if !exportable(kind) {
        return Err(Error::Param(format!(
            "{} models cannot be exported as ONNX (exportable: fast, cyclegan, generate, microast, cartoon, anime)",
            kind.title()
        )));
    }
    let name = if info.name.is_empty() { kind.name().to_string() } else { info.name.clone() };
    let mut g = Graph::new(&name);
    let image = |h: &str, w: &str| [Dim::Fixed(1), Dim::Fixed(3), Dim::named(h), Dim::named(w)];
    let mut conventions = Conventions { input_range: Some(ValueRange::Byte), output_range: ValueRange::Byte, size_multiple: None, min_size: None };
    let doc = match model {
        Loaded::Dcgan(net) => {
            let cfg = net.config();
            let dims = [Dim::named("batch"), Dim::Fixed(cfg.nz as i64), Dim::Fixed(1), Dim::Fixed(1)];
            let z = g.add_input("z", &dims, "latent vectors, standard normal samples");
            let y = net.export_onnx(&mut g, &z)?;
            let out = [Dim::named("batch"), Dim::Fixed(cfg.nc as i64), Dim::Fixed(64), Dim::Fixed(64)];
            g.add_output(&y, "output", &out, "images, RGB in -1..1 (tanh)");
            conventions.input_range = None;
            conventions.output_range = ValueRange::Signed;
            format!(
                "DCGAN generator of pytorch/examples dcgan/main.py (Radford et al., 2016), batch norm in eval mode: latent z [batch, {}, 1, 1] to RGB images [batch, {}, 64, 64] in -1..1.",
                cfg.nz, cfg.nc
            )
        }
        Loaded::MicroAst(net) => {
            let content = g.add_input("content", &image("height", "width"), "content image, RGB 0..255");
            let style = g.add_input(
                "style",
                &image("style_height", "style_width"),
                "style image, RGB 0..255 (styleforge scales it to at most 512 pixels a side first)",
            );
            let c = g.affine("content.unit", &content, 1.0 / 255.0, 0.0);
            let s = g.affine("style.unit", &style, 1.0 / 255.0, 0.0);
            let y = net.export_onnx(&mut g, &c, &s)?;
            let y = g.crop_like("output.crop", &y, &content);
            let y = g.affine("output.pixels", &y, 255.0, 0.0);
            g.add_output(&y, "output", &image("height", "width"), "stylised content, RGB 0..255, unclamped");
            conventions.min_size = Some(8);
            "MicroAST (Wang et al., AAAI 2023; EndyWon/MicroAST, MIT): arbitrary style transfer from a content image and a style image, both RGB 0..255 NCHW; output RGB 0..255 (unclamped) at the content's size. The style's signals (feature statistics, filter modulation) are computed from the `style` input in the graph; the engine scales style images to at most 512 pixels a side first.".to_string()
        }
        _ => {
            let x = g.add_input("input", &image("height", "width"), "RGB 0..255");
            let (y, doc) = image_network(&mut g, model, &x, &mut conventions)?;
            // Networks that work on multiples of 4 give at least the input's size at any size;
            // the crop (a no-op at the declared multiples) keeps the output's shape the input's.
            let y = if conventions.size_multiple.is_some() { g.crop_like("output.crop", &y, &x) } else { y };
            g.add_output(&y, "output", &image("height", "width"), "RGB 0..255, unclamped");
            doc
        }
    };
    let mut graph_doc = doc.clone();
    if let Some(m) = conventions.size_multiple {
        graph_doc.push_str(&format!(" Height and width must be multiples of {m}."));
    }
    if let Some(m) = conventions.min_size {
        graph_doc.push_str(&format!(" Every image input's height and width must be at least {m}."));
    }
    g.set_doc(graph_doc.clone());
    let mut metadata: BTreeMap<String, String> = info.to_metadata();
    if let Some(r) = conventions.input_range {
        metadata.insert(meta::INPUT_RANGE.into(), r.name().into());
    }
    metadata.insert(meta::OUTPUT_RANGE.into(), conventions.output_range.name().into());
    metadata.insert(meta::LAYOUT.into(), "NCHW".into());
    metadata.insert(meta::CHANNELS.into(), "RGB".into());
    if let Some(m) = conventions.size_multiple {
        metadata.insert(meta::SIZE_MULTIPLE.into(), m.to_string());
    }
    if let Some(m) = conventions.min_size {
        metadata.insert(meta::MIN_SIZE.into(), m.to_string());
    }
    metadata.insert(meta::KIND.into(), kind.name().into());
    let title = if info.title.is_empty() { name.clone() } else { info.title.clone() };
    let model_doc = format!("{title}: {graph_doc}");
    Ok(g.into_model(IR_VERSION, OPSET, &model_doc, &metadata).encode_to_vec())
}

/// What an exported image network declares besides its layout.
struct Conventions {
    input_range: Option<ValueRange>,
    output_range: ValueRange,
    size_multiple: Option<u32>,
    min_size: Option<u32>,
}

/// The image-to-image networks on `x` (RGB 0..255): their graph's output (RGB 0..255 at the
/// input's size, unclamped) and the graph's description; fills the size conventions.
fn image_network(g: &mut Graph, model: &Loaded, x: &str, conventions: &mut Conventions) -> Result<(String, String)> {
    // The GAN generators work in -1..1.
    let (to_signed, from_signed) = (ValueRange::Signed.from_pixels(), ValueRange::Signed.to_pixels());
    Ok(match model {
        Loaded::Fast(FastStyleNet::TransformerNet(net)) => {
            conventions.size_multiple = Some(4);
            conventions.min_size = Some(8);
            let y = net.export_onnx(g, x)?;
            (y, "Fast style network (Johnson et al., ECCV 2016; pytorch/examples fast_neural_style TransformerNet): RGB 0..255 NCHW in, RGB 0..255 out (unclamped), instance norm with each image's own statistics.".into())
        }
        Loaded::Fast(FastStyleNet::Engstrom(net)) => {
            conventions.size_multiple = Some(4);
            conventions.min_size = Some(4);
            let y = net.export_onnx(g, x)?;
            (y, "Fast style network (Engstrom's TensorFlow fast-style-transfer): RGB 0..255 NCHW in, 150·tanh(y) + 127.5 out (unclamped), instance norm with each image's own statistics.".into())
        }
        Loaded::CycleGan(net) => {
            conventions.size_multiple = Some(4);
            conventions.min_size = Some(8);
            let x = g.affine("input.signed", x, to_signed.0, to_signed.1);
            let y = net.generator().export_onnx(g, &x)?;
            let y = g.affine("output.pixels", &y, from_signed.0, from_signed.1);
            (y, "CycleGAN ResNet generator (Zhu et al., ICCV 2017; junyanz/pytorch-CycleGAN-and-pix2pix): RGB 0..255 NCHW in (mapped to -1..1 in the graph), RGB 0..255 out (unclamped).".into())
        }
        Loaded::Cartoon(net) => {
            let s = g.affine("input.signed", x, to_signed.0, to_signed.1);
            let y = net.export_onnx(g, &s)?;
            let y = g.crop_like("output.crop", &y, x);
            let y = g.affine("output.pixels", &y, from_signed.0, from_signed.1);
            (y, "CartoonGAN light generator (Chen et al., CVPR 2018; mnicnc404/CartoonGan-tensorflow): RGB 0..255 NCHW of any size in (mapped to -1..1 in the graph), RGB 0..255 out (unclamped), the network's output (a multiple of 4) cropped to the input at the top left.".into())
        }
        Loaded::Anime(net) => {
            conventions.min_size = Some(animegan::MIN_SIDE as u32);
            let s = g.affine("input.signed", x, to_signed.0, to_signed.1);
            let y = net.export_onnx(g, &s)?;
            let y = g.affine("output.pixels", &y, from_signed.0, from_signed.1);
            (y, "AnimeGANv2 generator (bryandlee/animegan2-pytorch layout, align_corners=True): RGB 0..255 NCHW in (mapped to -1..1 in the graph), RGB 0..255 out (unclamped) at the input's size.".into())
        }
        other => {
            return Err(Error::Param(format!("{} models cannot be exported as ONNX", other.kind().title())));
        }
    })
}
