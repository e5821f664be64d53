//! ONNX in and out: imported graphs run through a pure-Rust runtime ([`runtime`], tract), and
//! every network kind the library holds is written out as an ONNX model ([`export`]) built with
//! [`graph`] on the protobuf types generated from the official `onnx.proto` (`tract_onnx::pb`).
//!
//! The conventions both directions share are the model's metadata properties ([`meta`]): an
//! image-to-image model takes and returns RGB NCHW float32 in the value range it declares.

pub mod export;
pub mod graph;
pub mod runtime;

use crate::error::{Error, Result};

/// The metadata property keys styleforge reads and writes (`ModelProto.metadata_props`).
///
/// Exported models carry the library's own model metadata under its usual names (`name`,
/// `title`, `method`, `family`, `license`, `source_url`, ...) and the conventions below, which
/// an import reads back instead of asking for them.
pub mod meta {
    /// The input's value range: [`super::ValueRange::name`] (`0..255`, `0..1`, `-1..1`).
    pub const INPUT_RANGE: &str = "styleforge.input_range";
    /// The output's value range, as [`INPUT_RANGE`].
    pub const OUTPUT_RANGE: &str = "styleforge.output_range";
    /// The image tensor layout: `NCHW` or `NHWC`.
    pub const LAYOUT: &str = "styleforge.layout";
    /// The channel order: `RGB` or `BGR`.
    pub const CHANNELS: &str = "styleforge.channels";
    /// Height and width must be multiples of this (absent: any size).
    pub const SIZE_MULTIPLE: &str = "styleforge.size_multiple";
    /// Height and width must be at least this (absent: 1). The engine edge-pads smaller images
    /// at the bottom and right and crops the output back.
    pub const MIN_SIZE: &str = "styleforge.min_size";
    /// The library's model kind of the network exported ([`crate::library::ModelKind::name`]).
    pub const KIND: &str = "styleforge.kind";
}

/// The value range of an image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRange {
    /// 0..255 (pytorch/examples `fast_neural_style`, Engstrom).
    Byte,
    /// 0..1 (torchvision's `ToTensor`).
    Unit,
    /// -1..1 (GAN generators with a tanh output).
    Signed,
}

impl ValueRange {
    /// Every range.
    pub const ALL: [ValueRange; 3] = [ValueRange::Byte, ValueRange::Unit, ValueRange::Signed];

    /// `0..255`, `0..1` or `-1..1`.
    pub fn name(self) -> &'static str {
        match self {
            ValueRange::Byte => "0..255",
            ValueRange::Unit => "0..1",
            ValueRange::Signed => "-1..1",
        }
    }

    /// Parses [`ValueRange::name`]. Errors: [`Error::Param`] naming the accepted values.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|r| r.name() == text.trim()).ok_or_else(|| {
            Error::Param(format!("value range must be one of 0..255, 0..1, -1..1, got `{text}`"))
        })
    }

    /// `(scale, offset)` mapping 0..255 pixels into this range: `v = p * scale + offset`.
    pub fn from_pixels(self) -> (f32, f32) {
        match self {
            ValueRange::Byte => (1.0, 0.0),
            ValueRange::Unit => (1.0 / 255.0, 0.0),
            ValueRange::Signed => (2.0 / 255.0, -1.0),
        }
    }

    /// `(scale, offset)` mapping this range back to 0..255 pixels: `p = v * scale + offset`.
    pub fn to_pixels(self) -> (f32, f32) {
        match self {
            ValueRange::Byte => (1.0, 0.0),
            ValueRange::Unit => (255.0, 0.0),
            ValueRange::Signed => (127.5, 127.5),
        }
    }
}

/// Whether a model's terms let it be handed out as a file (the service's ONNX download): not
/// research-only, and a licence is stated (neither empty nor "unknown").
pub fn redistributable(info: &crate::library::ModelInfo) -> bool {
    let license = info.license.trim();
    !info.research_only && !license.is_empty() && !license.eq_ignore_ascii_case("unknown")
}

/// Whether [`model_bytes`] can write models of `kind`: the exported kinds and imported graphs.
pub fn available(kind: crate::library::ModelKind) -> bool {
    kind == crate::library::ModelKind::Onnx || export::exportable(kind)
}

/// The ONNX model (protobuf bytes) of a loaded library model: an imported graph as it was
/// imported, with `info`'s metadata and its conventions as metadata properties; any other kind
/// through [`export::export`]. Errors: [`Error::Param`] for kinds that cannot be exported.
pub fn model_bytes(model: &crate::library::Loaded, info: &crate::library::ModelInfo) -> Result<Vec<u8>> {
    use prost::Message;
    let crate::library::Loaded::Onnx(net) = model else {
        return export::export(model, info);
    };
    let mut proto = runtime::decode(net.bytes())?;
    let mut props = runtime::metadata(&proto);
    props.extend(info.to_metadata().into_iter().filter(|(_, v)| !v.is_empty()));
    props.extend(net.conventions().to_metadata());
    props.insert(meta::KIND.into(), crate::library::ModelKind::Onnx.name().into());
    proto.metadata_props =
        props.into_iter().map(|(key, value)| tract_onnx::pb::StringStringEntryProto { key, value }).collect();
    Ok(proto.encode_to_vec())
}
