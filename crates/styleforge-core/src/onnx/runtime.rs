//! Running imported ONNX graphs: any image-to-image model (one image in, one image out) through
//! tract, a pure-Rust ONNX runtime (sonos/tract), on the CPU.
//!
//! What a graph expects is its [`Conventions`]: the tensor layout and the fixed size, when it
//! has one, are read from the graph's input; the value range and channel order from the model's
//! metadata properties ([`super::meta`], written by styleforge's own export), else from what the
//! importer was told, else assumed (RGB, 0..255, the `fast_neural_style` convention) and
//! recorded as assumed.
//!
//! Sizes: a graph with symbolic height and width runs at any size (padded to its size multiple
//! by reflection and up to its minimum size by repeating edges, then cropped back; compiled
//! once per input shape); one with a fixed input size gets the picture resized to that
//! size and its output resized back (stated by [`Conventions::describe`]). Outputs a few pixels
//! larger than the input (graphs whose stride-2 convolutions round up) are cropped; outputs of
//! another scale are resized to the input's size.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Tensor, TensorData};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoTValue, TDim, TValue, Tensor as TractTensor, TypedModel, TypedRunnableModel,
    tvec,
};
use tract_onnx::tract_core::runtime::RunOptions;

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::methods::fast::{FeedForwardNet, StylizeOptions, finish, validate};
use crate::networks::layers::FrameNorm;
use crate::onnx::{ValueRange, meta};
use crate::tiling::{TileConfig, planes_to_tensor, run_padded, run_tiled_with_context, tensor_to_planes};

/// The largest ONNX file imported: 1 GiB (protobuf's own limit is 2 GiB).
pub const MAX_ONNX_BYTES: usize = 1 << 30;

/// The largest fixed input a graph may declare: 4096×4096 pixels, 8192 a side.
pub const MAX_FIXED_PIXELS: i64 = 4096 * 4096;
/// See [`MAX_FIXED_PIXELS`].
pub const MAX_FIXED_SIDE: i64 = 8192;

/// The tensor layout of an image input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[N, C, H, W]` (PyTorch).
    Nchw,
    /// `[N, H, W, C]` (TensorFlow).
    Nhwc,
}

impl Layout {
    /// `NCHW` or `NHWC`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        }
    }

    /// Parses [`Layout::name`] (any case).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "NCHW" => Ok(Layout::Nchw),
            "NHWC" => Ok(Layout::Nhwc),
            _ => Err(Error::Param(format!("layout must be NCHW or NHWC, got `{text}`"))),
        }
    }
}

/// The channel order of an image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV, Caffe).
    Bgr,
}

impl Channels {
    /// `RGB` or `BGR`.
    pub fn name(self) -> &'static str {
        match self {
            Channels::Rgb => "RGB",
            Channels::Bgr => "BGR",
        }
    }

    /// Parses [`Channels::name`] (any case).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "RGB" => Ok(Channels::Rgb),
            "BGR" => Ok(Channels::Bgr),
            _ => Err(Error::Param(format!("channel order must be RGB or BGR, got `{text}`"))),
        }
    }
}

/// What an image-to-image graph takes and returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Conventions {
    /// Name of the image input.
    pub input: String,
    /// Name of the image output (the graph's first output).
    pub output: String,
    /// The input's layout, read from its shape (the axis of size 3).
    pub layout: Layout,
    /// Channel order of input and output.
    pub channels: Channels,
    /// The input's value range.
    pub input_range: ValueRange,
    /// The output's value range.
    pub output_range: ValueRange,
    /// Whether the ranges were assumed rather than read from the model or given at import.
    pub range_assumed: bool,
    /// Height and width are padded up to a multiple of this (1: any size).
    pub size_multiple: u32,
    /// Smaller heights and widths are padded up to this (1: no minimum).
    pub min_size: u32,
    /// `(width, height)` when the graph's input has a fixed size.
    pub fixed_size: Option<(u32, u32)>,
}

/// What the importer was told about a graph (`styleforge models import --input-range ...`);
/// `None` leaves the graph's own metadata or the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// The input's value range.
    pub input_range: Option<ValueRange>,
    /// The output's value range (default: the input's).
    pub output_range: Option<ValueRange>,
    /// Channel order.
    pub channels: Option<Channels>,
    /// Size multiple.
    pub size_multiple: Option<u32>,
}

impl Conventions {
    /// Reads the conventions of `model`: its image input and output from the graph, the rest from
    /// `metadata` (the model's `metadata_props`, or a library file's metadata, which holds the
    /// same keys), with `overrides` first. Errors: [`Error::Weights`] for a graph that is not one
    /// image in and one image out.
    pub fn read(model: &pb::ModelProto, metadata: &BTreeMap<String, String>, overrides: &Overrides) -> Result<Self> {
        let graph = model.graph.as_ref().ok_or_else(|| Error::Weights("the ONNX model has no graph".into()))?;
        let constants: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = graph.input.iter().filter(|i| !constants.contains(&i.name.as_str())).collect();
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            if names.is_empty() {
                return Err(Error::Weights("the graph has no input to feed a picture to (every input has a constant value)".into()));
            }
            let hint = if names == ["content", "style"] {
                ": this is a MicroAST export, for other runtimes; styleforge runs MicroAST natively (built in as `microast`)"
            } else {
                ""
            };
            return Err(Error::Weights(format!(
                "styleforge imports image-to-image models (one input); this graph takes {} ({}){hint}",
                names.len(),
                names.join(", ")
            )));
        };
        let output = graph.output.first().ok_or_else(|| Error::Weights("the ONNX graph has no output".into()))?;
        let dims = tensor_dims(input)?;
        if dims.len() != 4 {
            return Err(Error::Weights(format!(
                "the input `{}` has {} dimensions; an image model takes [N, 3, H, W] or [N, H, W, 3]",
                input.name,
                dims.len()
            )));
        }
        let layout = match (dims[1], dims[3]) {
            (Some(3), _) => Layout::Nchw,
            (_, Some(3)) => Layout::Nhwc,
            _ => match metadata.get(meta::LAYOUT) {
                Some(l) => Layout::parse(l)?,
                None => {
                    return Err(Error::Weights(format!(
                        "the input `{}` has shape {}: neither its second nor its last dimension is 3 colour channels",
                        input.name,
                        show_dims(&dims)
                    )));
                }
            },
        };
        let (h, w) = match layout {
            Layout::Nchw => (dims[2], dims[3]),
            Layout::Nhwc => (dims[1], dims[2]),
        };
        let fixed_size = match (w, h) {
            (Some(w), Some(h)) if w > MAX_FIXED_SIDE || h > MAX_FIXED_SIDE || w * h > MAX_FIXED_PIXELS => {
                return Err(Error::Weights(format!(
                    "the input `{}` declares a fixed size of {w}×{h}: over the {MAX_FIXED_PIXELS} pixels (and {MAX_FIXED_SIDE} a side) styleforge runs a graph at",
                    input.name
                )));
            }
            (Some(w), Some(h)) => Some((w as u32, h as u32)),
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::Weights(format!(
                    "the input `{}` has shape {}: one image side fixed and the other not; styleforge runs graphs with both sides fixed or both free",
                    input.name,
                    show_dims(&dims)
                )));
            }
            _ => None,
        };
        let read = |key: &str| metadata.get(key).map(|v| v.as_str());
        let in_meta = |key: &str, e: Error| Error::Weights(format!("the model's metadata `{key}`: {}", e.to_string().trim_start_matches("invalid parameter: ")));
        let range = |key: &str| read(key).map(ValueRange::parse).transpose().map_err(|e| in_meta(key, e));
        let given_input = overrides.input_range.or(range(meta::INPUT_RANGE)?);
        let input_range = given_input.unwrap_or(ValueRange::Byte);
        let output_range = match overrides.output_range.or(range(meta::OUTPUT_RANGE)?) {
            Some(r) => r,
            None => input_range,
        };
        let channels = match overrides.channels {
            Some(c) => c,
            None => read(meta::CHANNELS).map(Channels::parse).transpose().map_err(|e| in_meta(meta::CHANNELS, e))?.unwrap_or(Channels::Rgb),
        };
        let number = |key: &str| -> Result<u32> {
            match read(key) {
                Some(m) => m.trim().parse().map_err(|_| Error::Weights(format!("the model's metadata `{key}`: not a whole number: `{m}`"))),
                None => Ok(1),
            }
        };
        let size_multiple = match overrides.size_multiple {
            Some(m) => m,
            None => number(meta::SIZE_MULTIPLE)?,
        };
        let min_size = number(meta::MIN_SIZE)?.clamp(1, 4096);
        if !(1..=256).contains(&size_multiple) {
            return Err(Error::Param(format!("the size multiple must be within 1..256, got {size_multiple}")));
        }
        Ok(Conventions {
            input: input.name.clone(),
            output: output.name.clone(),
            layout,
            channels,
            input_range,
            output_range,
            range_assumed: given_input.is_none(),
            size_multiple,
            min_size,
            fixed_size,
        })
    }

    /// The conventions as metadata entries (the [`super::meta`] keys), so that a library file
    /// keeps what its import was told.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if !self.range_assumed {
            m.insert(meta::INPUT_RANGE.into(), self.input_range.name().into());
            m.insert(meta::OUTPUT_RANGE.into(), self.output_range.name().into());
        }
        m.insert(meta::LAYOUT.into(), self.layout.name().into());
        m.insert(meta::CHANNELS.into(), self.channels.name().into());
        if self.size_multiple > 1 {
            m.insert(meta::SIZE_MULTIPLE.into(), self.size_multiple.to_string());
        }
        if self.min_size > 1 {
            m.insert(meta::MIN_SIZE.into(), self.min_size.to_string());
        }
        m
    }

    /// One line for people: layout, channels, ranges (and whether assumed) and the size rule.
    pub fn describe(&self) -> String {
        let size = match self.fixed_size {
            Some((w, h)) => format!("fixed input {w}×{h}: pictures are resized to it and back"),
            None if self.size_multiple > 1 => format!("any size (padded to a multiple of {})", self.size_multiple),
            None => "any size".into(),
        };
        format!(
            "input `{}` {} {}, values {}{}, output {}; {size}",
            self.input,
            self.layout.name(),
            self.channels.name(),
            self.input_range.name(),
            if self.range_assumed { " (assumed: pass --input-range if the model expects another)" } else { "" },
            self.output_range.name(),
        )
    }
}

/// The element type and dimensions of a graph input (`None`: symbolic or unknown).
fn tensor_dims(v: &pb::ValueInfoProto) -> Result<Vec<Option<i64>>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(Error::Weights(format!("the input `{}` is not a tensor", v.name)));
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(Error::Weights(format!(
            "the input `{}` is of element type {}; styleforge feeds float32 images",
            v.name,
            pb::tensor_proto::DataType::try_from(t.elem_type).map(|d| d.as_str_name()).unwrap_or("unknown")
        )));
    }
    let shape = t.shape.as_ref().ok_or_else(|| Error::Weights(format!("the input `{}` has no shape", v.name)))?;
    Ok(shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Value::DimValue(n)) if n > 0 => Some(n),
            _ => None,
        })
        .collect())
}

fn show_dims(dims: &[Option<i64>]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |n| n.to_string())).collect();
    format!("[{}]", d.join(", "))
}

/// Decodes an ONNX model (protobuf bytes). Errors: [`Error::Weights`] for bytes that are not an
/// ONNX model, a model over [`MAX_ONNX_BYTES`], or one whose tensors live in external files.
pub fn decode(bytes: &[u8]) -> Result<pb::ModelProto> {
    if bytes.len() > MAX_ONNX_BYTES {
        return Err(Error::Weights(format!("the ONNX model is {} bytes; the limit is {MAX_ONNX_BYTES}", bytes.len())));
    }
    let model = pb::ModelProto::decode(bytes).map_err(|e| Error::Weights(format!("not an ONNX model ({e})")))?;
    let graph = model.graph.as_ref().filter(|g| !g.node.is_empty()).ok_or_else(|| {
        Error::Weights("not an ONNX model (no graph with nodes)".into())
    })?;
    if model.ir_version <= 0 {
        return Err(Error::Weights("not an ONNX model (no IR version)".into()));
    }
    if graph.initializer.iter().any(|t| t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)) {
        return Err(Error::Weights(
            "the ONNX model keeps its weights in external files; save it with all tensors inside (onnx.save(model, path, save_as_external_data=False))".into(),
        ));
    }
    Ok(model)
}

/// The graph's float32 initializers as a weight map under their own names (a PyTorch export
/// keeps the state dict's names), leaving out styleforge's export constants (`const.*`).
pub fn initializers(model: &pb::ModelProto) -> crate::weights::Weights {
    let mut w = crate::weights::Weights::default();
    let Some(graph) = &model.graph else { return w };
    for t in &graph.initializer {
        if t.data_type != pb::tensor_proto::DataType::Float as i32 || t.name.starts_with("const.") {
            continue;
        }
        let data: Vec<f32> = if !t.raw_data.is_empty() {
            t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        } else {
            t.float_data.clone()
        };
        let shape: Vec<usize> = t.dims.iter().map(|d| (*d).max(0) as usize).collect();
        if shape.iter().product::<usize>() == data.len() {
            w.tensors.insert(t.name.clone(), crate::weights::HostTensor::new(shape, data));
        }
    }
    w
}

/// The `metadata_props` of a model as a map.
pub fn metadata(model: &pb::ModelProto) -> BTreeMap<String, String> {
    model.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect()
}

/// Whether `bytes` start like an ONNX model (the protobuf tag of `ir_version`, field 1, varint),
/// for telling ONNX files from weight files by content.
pub fn looks_like_onnx(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x08) && bytes.get(1).is_some_and(|v| (1..=32).contains(v))
}

/// What is done to an output of another size than the input ([`OnnxNet::fit_output`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFit {
    /// Cropped to the input's size (at the top left).
    Crop,
    /// Resized to the input's size.
    Resize,
}

/// How many compiled plans (one per input shape) a model keeps: a tiled run needs up to four
/// (full tiles, the right and bottom edges, the corner).
const PLANS_KEPT: usize = 6;

/// An imported ONNX image-to-image model, compiled by tract.
///
/// Plans are compiled per input shape and kept ([`PLANS_KEPT`]): tract optimises a graph with
/// concrete sizes far better than one with symbolic sizes (measured here 10–30× faster and a
/// tenth of the memory), and some graphs (resizes whose target size is computed from the input)
/// only run with concrete sizes.
pub struct OnnxNet {
    bytes: Arc<[u8]>,
    proto: pb::ModelProto,
    conventions: Conventions,
    plans: Mutex<Vec<(Vec<usize>, Arc<TypedRunnableModel>)>>,
    /// The same network as one of styleforge's own, when the graph's weights are a state dict
    /// of a network styleforge runs natively and both give the same picture ([`OnnxNet::with_native`]).
    native: Option<Box<crate::library::Loaded>>,
}

impl std::fmt::Debug for OnnxNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxNet").field("bytes", &self.bytes.len()).field("conventions", &self.conventions).finish()
    }
}

/// tract's result as a styleforge error.
fn tract_error(what: &str, e: impl std::fmt::Display + std::fmt::Debug) -> Error {
    Error::Weights(format!("{what}: {e:#}"))
}

impl OnnxNet {
    /// Compiles `bytes` (an ONNX model) with the conventions read from `metadata` and
    /// `overrides` ([`Conventions::read`]). Errors: [`Error::Weights`] for models that are not
    /// ONNX, not one image in and one out, or that tract cannot run (the message names the
    /// operator or shape it failed on).
    pub fn load(bytes: Arc<[u8]>, metadata: &BTreeMap<String, String>, overrides: &Overrides) -> Result<Self> {
        let model = decode(&bytes)?;
        let mut meta = self::metadata(&model);
        meta.extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let conventions = Conventions::read(&model, &meta, overrides)?;
        let net = OnnxNet { bytes, proto: model, conventions, plans: Mutex::new(Vec::new()), native: None };
        // Prove that tract compiles and runs the graph, at two sizes and aspects, and that it
        // returns a picture, before it is accepted.
        let c = &net.conventions;
        let fit = |v: usize| v.next_multiple_of(c.size_multiple as usize).max(c.min_size as usize);
        let probes = match c.fixed_size {
            Some((w, h)) => vec![(w as usize, h as usize)],
            None => vec![(fit(64), fit(64)), (fit(96), fit(72))],
        };
        for (i, (w, h)) in probes.iter().enumerate() {
            let planes: Vec<f32> = (0..3 * w * h).map(|k| (k % 251) as f32).collect();
            let checked = net.run_planes(&planes, *w, *h).and_then(|(_, ow, oh)| net.fit_output(ow, oh, *w, *h).map(|_| ()));
            if let Err(e) = checked {
                let e = e.to_string();
                let e = e.trim_start_matches("backend: ");
                return Err(Error::Weights(match i {
                    0 => format!("the graph does not run on a {w}×{h} picture: {e}"),
                    _ => format!(
                        "the graph runs on a {}×{} picture but not on a {w}×{h} one ({e}); if it takes one size only, its input should declare it",
                        probes[0].0, probes[0].1
                    ),
                }));
            }
        }
        Ok(net)
    }

    /// The model's bytes, as imported.
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.bytes
    }

    /// The decoded model.
    pub fn proto(&self) -> &pb::ModelProto {
        &self.proto
    }

    /// Runs as `native` from now on: the caller has built it from [`initializers`] and checked
    /// that it gives this graph's pictures ([`OnnxNet::agrees_with`]). Its instance-norm
    /// statistics can then be shared across video frames and tiles, and it runs at the native
    /// networks' speed.
    pub fn with_native(mut self, native: crate::library::Loaded) -> Self {
        self.native = Some(Box::new(native));
        self
    }

    /// The kind of native network it runs as, if any.
    pub fn native_kind(&self) -> Option<crate::library::ModelKind> {
        self.native.as_ref().map(|n| n.kind())
    }

    /// Whether `other` gives this graph's picture on a probe picture (relative L2 under 1e-4
    /// on a 64×48 gradient, default options), so it may stand in for the graph.
    pub fn agrees_with(&self, other: &dyn FeedForwardNet, device: &Device) -> bool {
        let (w, h) = (64u32, 48u32);
        let n = (w * h) as usize;
        let rgb = (0..3 * n)
            .map(|i| {
                let (c, p) = (i / n, i % n);
                let (x, y) = ((p % w as usize) as f32, (p / w as usize) as f32);
                (128.0 + 100.0 * ((x * (c + 1) as f32 + 2.0 * y) / 13.0).sin()).clamp(0.0, 255.0)
            })
            .collect();
        let pic = Picture { width: w, height: h, rgb, alpha: None };
        let opts = StylizeOptions::default();
        match (self.stylize_with(&pic, &opts, device), other.stylize_with(&pic, &opts, device)) {
            (Ok(a), Ok(b)) => {
                let num: f64 = a.rgb.iter().zip(&b.rgb).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
                let den: f64 = a.rgb.iter().map(|x| (*x as f64).powi(2)).sum();
                den > 0.0 && (num / den).sqrt() < 1e-4
            }
            _ => false,
        }
    }

    /// What the graph takes and returns.
    pub fn conventions(&self) -> &Conventions {
        &self.conventions
    }

    /// The input tensor shape for a `width`×`height` picture (the fixed size, if any, wins).
    fn input_shape(&self, width: usize, height: usize) -> Vec<usize> {
        let (w, h) = match self.conventions.fixed_size {
            Some((w, h)) => (w as usize, h as usize),
            None => (width, height),
        };
        match self.conventions.layout {
            Layout::Nchw => vec![1, 3, h, w],
            Layout::Nhwc => vec![1, h, w, 3],
        }
    }

    /// The plan for an input `shape`, compiled on first use.
    fn plan_for(&self, shape: &[usize]) -> Result<Arc<TypedRunnableModel>> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = plans.iter().position(|(s, _)| s == shape) {
            let entry = plans.remove(i);
            let plan = entry.1.clone();
            plans.push(entry);
            return Ok(plan);
        }
        let plan = compile(&self.proto, shape)?;
        plans.push((shape.to_vec(), plan.clone()));
        if plans.len() > PLANS_KEPT {
            plans.remove(0);
        }
        Ok(plan)
    }

    /// Runs the graph on an input tensor in the model's own layout, range and channel order;
    /// returns the first output's data and shape. Errors: [`Error::Backend`] when tract fails on
    /// this input (for instance a size the graph cannot take).
    pub fn run_raw(&self, data: Vec<f32>, shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        let plan = self.plan_for(shape)?;
        let input = TractTensor::from_shape(shape, &data).map_err(|e| tract_error("input tensor", e))?;
        let out = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| Error::Backend(format!("the ONNX graph failed on a {shape:?} input: {e:#}")))?;
        let first: &TValue = out.first().ok_or_else(|| Error::Backend("the ONNX graph returned no output".into()))?;
        let t = first.cast_to::<f32>().map_err(|e| tract_error("output", e))?;
        let shape = t.shape().to_vec();
        let data = t.try_as_plain_ram().and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec)).map_err(|e| tract_error("output", e))?;
        Ok((data, shape))
    }

    /// Runs the graph on planar RGB 0..255 (`3×h×w`) and returns planar RGB at the graph's output
    /// size `(data, width, height)`, converting range, channel order and layout, clamped to
    /// 0..255 as the native networks' outputs are.
    pub fn run_planes(&self, rgb: &[f32], width: usize, height: usize) -> Result<(Vec<f32>, usize, usize)> {
        let c = &self.conventions;
        let n = width * height;
        let (scale, offset) = c.input_range.from_pixels();
        let channel = |k: usize| match c.channels {
            Channels::Rgb => k,
            Channels::Bgr => 2 - k,
        };
        let data: Vec<f32> = match c.layout {
            Layout::Nchw => (0..3).flat_map(|k| rgb[channel(k) * n..(channel(k) + 1) * n].iter().map(|v| v * scale + offset)).collect(),
            Layout::Nhwc => (0..n).flat_map(|p| (0..3).map(move |k| rgb[channel(k) * n + p] * scale + offset)).collect(),
        };
        let (out, shape) = self.run_raw(data, &self.input_shape(width, height))?;
        let (oh, ow) = match (c.layout, shape.as_slice()) {
            (Layout::Nchw, [1, 3, h, w]) => (*h, *w),
            (Layout::Nhwc, [1, h, w, 3]) => (*h, *w),
            _ => {
                return Err(Error::Backend(format!(
                    "the ONNX graph returned a {shape:?} tensor; an image model returns one {} image",
                    c.layout.name()
                )));
            }
        };
        if out.iter().any(|v| !v.is_finite()) {
            return Err(Error::Backend("the ONNX graph returned NaN or infinite values".into()));
        }
        let (scale, offset) = c.output_range.to_pixels();
        let m = oh * ow;
        let mut planes = vec![0f32; 3 * m];
        for k in 0..3 {
            let dst = &mut planes[channel(k) * m..(channel(k) + 1) * m];
            match c.layout {
                Layout::Nchw => dst.iter_mut().zip(&out[k * m..(k + 1) * m]).for_each(|(d, v)| *d = (v * scale + offset).clamp(0.0, 255.0)),
                Layout::Nhwc => dst.iter_mut().enumerate().for_each(|(p, d)| *d = (out[p * 3 + k] * scale + offset).clamp(0.0, 255.0)),
            }
        }
        Ok((planes, ow, oh))
    }

    /// Runs the graph on a `[1, 3, h, w]` RGB 0..255 tensor and returns the same size: a fixed
    /// input size is met by resizing, other sizes by padding to the size multiple; outputs a
    /// few pixels larger are cropped, other output sizes resized.
    fn run_tensor(&self, x: Tensor<4>, device: &Device) -> Result<Tensor<4>> {
        let [_, _, h, w] = x.dims();
        let pic = Picture { width: w as u32, height: h as u32, rgb: tensor_to_planes(x)?, alpha: None };
        let out = self.run_picture(&pic)?;
        Ok(planes_to_tensor(&out.rgb, out.width, out.height, device))
    }

    /// How an output of `ow`×`oh` for a `w`×`h` input becomes `w`×`h`: the same size or a few
    /// pixels more (stride-2 stages that round up add rows and columns at the end) is cropped;
    /// a whole-number scale of the input (a super-resolution or half-size graph) is resized.
    /// Errors: [`Error::Backend`] for any other size (a graph that does not return this picture).
    fn fit_output(&self, ow: usize, oh: usize, w: usize, h: usize) -> Result<OutputFit> {
        if ow >= w && oh >= h && ow - w < 8 && oh - h < 8 {
            return Ok(OutputFit::Crop);
        }
        let scaled = |k: usize| (ow == w * k && oh == h * k) || (w == ow * k && h == oh * k && ow > 0 && oh > 0);
        if (2..=8).any(scaled) {
            return Ok(OutputFit::Resize);
        }
        Err(Error::Backend(format!("the ONNX graph returned a {ow}×{oh} picture for a {w}×{h} input")))
    }

    /// [`OnnxNet::run_tensor`] on a picture.
    fn run_picture(&self, pic: &Picture) -> Result<Picture> {
        let min = self.conventions.min_size;
        if self.conventions.fixed_size.is_none() && (pic.width < min || pic.height < min) {
            let padded = pic.pad_edges(pic.width.max(min), pic.height.max(min), 0, 0);
            return Ok(self.run_picture(&padded)?.crop(0, 0, pic.width, pic.height));
        }
        let (w, h) = (pic.width as usize, pic.height as usize);
        if let Some((fw, fh)) = self.conventions.fixed_size {
            let small = pic.resize(fw, fh);
            let (out, ow, oh) = self.run_planes(&small.rgb, fw as usize, fh as usize)?;
            let out = Picture { width: ow as u32, height: oh as u32, rgb: out, alpha: None };
            let out = match self.fit_output(ow, oh, fw as usize, fh as usize)? {
                OutputFit::Crop => out.crop(0, 0, fw, fh),
                OutputFit::Resize => out,
            };
            return Ok(out.resize(pic.width, pic.height));
        }
        let m = self.conventions.size_multiple as usize;
        let x = planes_to_tensor(&pic.rgb, pic.width, pic.height, &Device::flex());
        let mut failed = None;
        let y = run_padded(x, m, &mut |t: Tensor<4>| {
            let [_, _, ph, pw] = t.dims();
            let device = t.device();
            let result = tensor_to_planes(t).and_then(|planes| self.run_planes(&planes, pw, ph));
            match result {
                Ok((out, ow, oh)) => match self.fit_output(ow, oh, pw, ph) {
                    Ok(fit) => {
                        let out = Picture { width: ow as u32, height: oh as u32, rgb: out, alpha: None };
                        let fitted = match fit {
                            OutputFit::Crop => out.crop(0, 0, pw as u32, ph as u32),
                            OutputFit::Resize => out.resize(pw as u32, ph as u32),
                        };
                        Tensor::from_data(TensorData::new(fitted.rgb, [1, 3, ph, pw]), &device)
                    }
                    Err(e) => {
                        failed = Some(e);
                        Tensor::zeros([1, 3, ph, pw], &device)
                    }
                },
                Err(e) => {
                    failed = Some(e);
                    Tensor::zeros([1, 3, ph, pw], &device)
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(Picture { width: w as u32, height: h as u32, rgb: tensor_to_planes(y)?, alpha: None })
    }
}

/// Compiles the graph for one input shape.
fn compile(model: &pb::ModelProto, shape: &[usize]) -> Result<Arc<TypedRunnableModel>> {
    let onnx = tract_onnx::onnx();
    let mut inference = onnx.model_for_proto_model(model).map_err(|e| tract_error("reading the ONNX graph", e))?;
    let conventions = Conventions::read(model, &self::metadata(model), &Overrides::default())?;
    let fact = InferenceFact::dt_shape(DatumType::F32, shape.iter().map(|d| TDim::from(*d as i64)).collect::<Vec<_>>());
    let input = inference
        .input_outlets()
        .map_err(|e| tract_error("the ONNX graph's inputs", e))?
        .iter()
        .position(|o| inference.node(o.node).name == conventions.input)
        .unwrap_or(0);
    inference.set_input_fact(input, fact).map_err(|e| tract_error("the ONNX graph's input", e))?;
    let typed: TypedModel = inference.into_optimized().map_err(|e| tract_error("compiling the ONNX graph", e))?;
    let options = RunOptions { executor: Some(tract_linalg::multithread::Executor::RayonGlobal), ..Default::default() };
    typed.into_runnable_with_options(&options).map_err(|e| tract_error("planning the ONNX graph", e))
}

impl FeedForwardNet for OnnxNet {
    /// Runs the graph on the whole picture, or tile by tile when `opts.tile` asks for tiles
    /// (tiles are independent: an opaque graph's normalisation statistics cannot be shared, so
    /// `frame` is not used); a graph that runs as a native network runs as that network does.
    fn stylize_frame(&self, pic: &Picture, opts: &StylizeOptions, device: &Device, frame: Option<&mut FrameNorm>) -> Result<Picture> {
        if let Some(net) = self.native.as_ref().and_then(|n| n.feed_forward()) {
            return net.stylize_frame(pic, opts, device, frame);
        }
        validate(opts)?;
        let pic = match opts.max_size {
            Some(m) => pic.fit_within(m),
            None => pic.clone(),
        };
        let tiles = opts.tile.filter(|t| self.conventions.fixed_size.is_none() && (pic.width > *t || pic.height > *t));
        let mut out = match tiles {
            Some(t) => {
                let cfg = TileConfig::new(t)?;
                // Each tile sees an overlap's worth of the picture around it, cut off afterwards:
                // graphs draw their own borders, which must not show where tiles meet.
                run_tiled_with_context(&pic.rgb, pic.width, pic.height, cfg, cfg.overlap, device, &mut |x| self.run_tensor(x, device))?
            }
            None => self.run_picture(&pic)?.rgb,
        };
        finish(&pic, &mut out, opts)?;
        Ok(Picture { width: pic.width, height: pic.height, rgb: out, alpha: pic.alpha.clone() })
    }
}
