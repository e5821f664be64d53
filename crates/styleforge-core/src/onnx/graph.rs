//! Building ONNX graphs: a small builder over the protobuf types generated from the official
//! `onnx.proto` (`tract_onnx::pb`), with the operators the networks need, each written the way
//! the engine computes it (PyTorch / TensorFlow semantics), for [`super::export`].
//!
//! Values are named: every node has one output named after the node (made unique when a name is
//! taken), initializers keep the reference's state-dict names, and the constants the operators
//! take (pads, axes, scales) are shared initializers under `const.*`. Image tensors are NCHW
//! float32 throughout; the opset is [`super::export::OPSET`].

use std::collections::{BTreeMap, HashMap, HashSet};

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};

use crate::error::Result;
use crate::kernels::GlobalEps;
use crate::networks::layers::{Padding, ParamRef};
use crate::weights::HostTensor;

/// A dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size (`dim_param`): the same name means the same size everywhere.
    Named(String),
}

impl Dim {
    /// A symbolic dimension called `name`.
    pub fn named(name: &str) -> Self {
        Dim::Named(name.to_string())
    }
}

/// The value of a node attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
    /// `STRING` (UTF-8).
    Str(String),
}

/// How [`Graph::resize`] interpolates, each the ONNX `Resize` attributes that reproduce the
/// engine's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// PyTorch's `interpolate(mode="nearest")`: output `i` takes input `⌊i / scale⌋`
    /// (`mode=nearest`, `coordinate_transformation_mode=asymmetric`, `nearest_mode=floor`).
    NearestFloor,
    /// PyTorch's bilinear with `align_corners=False`: output `i` samples `(i + 0.5) / scale - 0.5`,
    /// clamped to the edge (`mode=linear`, `half_pixel`).
    LinearHalfPixel,
    /// PyTorch's bilinear with `align_corners=True`: output `i` samples `i·(in-1)/(out-1)`
    /// (`mode=linear`, `align_corners`).
    LinearAlignCorners,
    /// TensorFlow's legacy bilinear resize (`align_corners=False`, no half-pixel centres): output
    /// `i` samples `i / scale`, the last ones clamped to the edge ([`crate::kernels::resize_legacy2x`];
    /// `mode=linear`, `asymmetric`).
    LinearAsymmetric,
}

impl Interpolation {
    fn attrs(self) -> Vec<(&'static str, Attr)> {
        let s = |v: &str| Attr::Str(v.to_string());
        match self {
            Interpolation::NearestFloor => vec![
                ("mode", s("nearest")),
                ("coordinate_transformation_mode", s("asymmetric")),
                ("nearest_mode", s("floor")),
            ],
            Interpolation::LinearHalfPixel => {
                vec![("mode", s("linear")), ("coordinate_transformation_mode", s("half_pixel"))]
            }
            Interpolation::LinearAlignCorners => {
                vec![("mode", s("linear")), ("coordinate_transformation_mode", s("align_corners"))]
            }
            Interpolation::LinearAsymmetric => {
                vec![("mode", s("linear")), ("coordinate_transformation_mode", s("asymmetric"))]
            }
        }
    }
}

/// How [`Graph::pad`] fills the border (ONNX `Pad` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// Zeros (`constant`).
    Zero,
    /// Mirror without repeating the edge (`reflect`, PyTorch's `ReflectionPad2d`).
    Reflect,
    /// Repeat the edge (`edge`, PyTorch's `ReplicationPad2d`).
    Edge,
}

/// A 2-D convolution's geometry for [`Graph::conv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Kernel side.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// The padding rule ([`Padding`]).
    pub padding: Padding,
    /// Groups (`in / weight.dims[1]`; 1 for a dense convolution).
    pub groups: usize,
}

/// An ONNX graph under construction: nodes in topological order (each is added after its
/// inputs), initializers, inputs and outputs. [`Graph::into_model`] wraps it in a model.
#[derive(Debug, Default)]
pub struct Graph {
    name: String,
    doc: String,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    used: HashSet<String>,
    int_consts: HashMap<(String, Vec<i64>), String>,
    float_consts: HashMap<(String, Vec<usize>, Vec<u32>), String>,
}

fn attribute(name: &str, value: Attr) -> pb::AttributeProto {
    let mut a = pb::AttributeProto { name: name.to_string(), ..Default::default() };
    match value {
        Attr::Int(i) => {
            a.r#type = AttributeType::Int as i32;
            a.i = i;
        }
        Attr::Ints(v) => {
            a.r#type = AttributeType::Ints as i32;
            a.ints = v;
        }
        Attr::Float(f) => {
            a.r#type = AttributeType::Float as i32;
            a.f = f;
        }
        Attr::Str(s) => {
            a.r#type = AttributeType::String as i32;
            a.s = s.into_bytes();
        }
    }
    a
}

fn value_info(name: &str, dims: &[Dim], doc: &str) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Dim::Fixed(v) => dimension::Value::DimValue(*v),
                Dim::Named(n) => dimension::Value::DimParam(n.clone()),
            }),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        doc_string: doc.to_string(),
    }
}

/// The node name a parameter prefix stands for: `conv1.conv2d.` → `conv1.conv2d`,
/// `flat_conv1/model/layer-1/` → `flat_conv1/model/layer-1`.
pub fn node_name(prefix: &str) -> &str {
    prefix.trim_end_matches(['.', '/'])
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        Self { name: name.to_string(), ..Default::default() }
    }

    /// Sets the graph's documentation (`GraphProto.doc_string`).
    pub fn set_doc(&mut self, doc: impl Into<String>) {
        self.doc = doc.into();
    }

    /// `base` if no value has that name yet, else `base_2`, `base_3`, ...; the name is taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 2;
        while self.used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// Declares a float32 graph input of shape `dims`; returns its name (`name`, which must be free).
    pub fn add_input(&mut self, name: &str, dims: &[Dim], doc: &str) -> String {
        let name = self.fresh(name);
        self.inputs.push(value_info(&name, dims, doc));
        name
    }

    /// Declares the value `value` a float32 graph output called `name` of shape `dims`: the output
    /// of the node that computes `value` is renamed to `name` when nothing else reads it (the node
    /// keeps its name), else an `Identity` node gives the value its output name.
    pub fn add_output(&mut self, value: &str, name: &str, dims: &[Dim], doc: &str) {
        let read = self.nodes.iter().any(|n| n.input.iter().any(|i| i == value))
            || self.outputs.iter().any(|o| o.name == value);
        let producer = self.nodes.iter().position(|n| n.output.iter().any(|o| o == value));
        let out = match producer {
            Some(p) if !read && !self.used.contains(name) => {
                let node = &mut self.nodes[p];
                for o in node.output.iter_mut().filter(|o| *o == value) {
                    *o = name.to_string();
                }
                self.used.insert(name.to_string());
                name.to_string()
            }
            _ => self.node("Identity", name, &[value], vec![]),
        };
        self.outputs.push(value_info(&out, dims, doc));
    }

    /// Adds a float32 initializer `name` of `shape` (row-major `data`); returns its name.
    pub fn initializer(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        let name = self.fresh(name);
        self.initializers.push(pb::TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds a host tensor as the initializer `name` (its own shape).
    pub fn host(&mut self, name: &str, t: &HostTensor) -> String {
        self.initializer(name, &t.shape, &t.data)
    }

    /// Adds a network parameter, read back from the device ([`ParamRef::host`]), as the
    /// initializer `name`.
    pub fn param(&mut self, name: &str, p: ParamRef<'_>) -> Result<String> {
        Ok(self.host(name, &p.host()?))
    }

    /// Adds a per-channel parameter `[C]` as the initializer `name` of shape `[1, C, 1, 1]`, ready
    /// to broadcast over NCHW tensors.
    pub fn channel_param(&mut self, name: &str, p: ParamRef<'_>) -> Result<String> {
        let t = p.host()?;
        let c = t.data.len();
        Ok(self.initializer(name, &[1, c, 1, 1], &t.data))
    }

    /// A shared int64 constant of rank 1 called `const.{base}` (one initializer per base and
    /// values).
    pub fn ints(&mut self, base: &str, values: &[i64]) -> String {
        let key = (base.to_string(), values.to_vec());
        if let Some(n) = self.int_consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh(&format!("const.{base}"));
        self.initializers.push(pb::TensorProto {
            dims: vec![values.len() as i64],
            data_type: DataType::Int64 as i32,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        self.int_consts.insert(key, name.clone());
        name
    }

    /// A shared float32 constant of `shape` called `const.{base}` (one initializer per base,
    /// shape and values).
    pub fn floats(&mut self, base: &str, shape: &[usize], values: &[f32]) -> String {
        let key = (base.to_string(), shape.to_vec(), values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        if let Some(n) = self.float_consts.get(&key) {
            return n.clone();
        }
        let name = self.initializer(&format!("const.{base}"), shape, values);
        self.float_consts.insert(key, name.clone());
        name
    }

    /// A shared float32 scalar (rank 0).
    pub fn scalar(&mut self, base: &str, v: f32) -> String {
        self.floats(base, &[], &[v])
    }

    /// Adds a node `op_type` called `name` (made unique) reading `inputs` (`""` for an omitted
    /// optional input) with `attrs`; returns its one output, named as the node.
    pub fn node(&mut self, op_type: &str, name: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(name);
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op_type.to_string(),
            domain: String::new(),
            attribute: attrs.into_iter().map(|(n, v)| attribute(n, v)).collect(),
            doc_string: String::new(),
        });
        out
    }

    /// `Relu`.
    pub fn relu(&mut self, name: &str, x: &str) -> String {
        self.node("Relu", name, &[x], vec![])
    }

    /// `LeakyRelu` with slope `alpha` for negative inputs.
    pub fn leaky_relu(&mut self, name: &str, x: &str, alpha: f32) -> String {
        self.node("LeakyRelu", name, &[x], vec![("alpha", Attr::Float(alpha))])
    }

    /// `Tanh`.
    pub fn tanh(&mut self, name: &str, x: &str) -> String {
        self.node("Tanh", name, &[x], vec![])
    }

    /// `a + b` (broadcasting).
    pub fn add(&mut self, name: &str, a: &str, b: &str) -> String {
        self.node("Add", name, &[a, b], vec![])
    }

    /// `a - b` (broadcasting).
    pub fn sub(&mut self, name: &str, a: &str, b: &str) -> String {
        self.node("Sub", name, &[a, b], vec![])
    }

    /// `a · b` (broadcasting).
    pub fn mul(&mut self, name: &str, a: &str, b: &str) -> String {
        self.node("Mul", name, &[a, b], vec![])
    }

    /// `a / b` (broadcasting).
    pub fn div(&mut self, name: &str, a: &str, b: &str) -> String {
        self.node("Div", name, &[a, b], vec![])
    }

    /// `x · scale + offset` with scalar constants; a factor of 1 or an offset of 0 adds no node.
    /// Nodes `{name}.scale` and `{name}.offset` (the last one called `name` itself).
    pub fn affine(&mut self, name: &str, x: &str, scale: f32, offset: f32) -> String {
        let mut y = x.to_string();
        if scale != 1.0 {
            let s = self.scalar(&format!("{scale:e}"), scale);
            let n = if offset == 0.0 { name.to_string() } else { format!("{name}.scale") };
            y = self.mul(&n, &y, &s);
        }
        if offset != 0.0 {
            let o = self.scalar(&format!("{offset:e}"), offset);
            y = self.add(name, &y, &o);
        }
        y
    }

    /// `Pad` of the last two axes of an NCHW tensor by `[top, bottom, left, right]` (no node,
    /// `x` itself, when every amount is 0).
    pub fn pad(&mut self, name: &str, x: &str, [t, b, l, r]: [usize; 4], mode: PadMode) -> String {
        if [t, b, l, r] == [0; 4] {
            return x.to_string();
        }
        let pads = [0, 0, t as i64, l as i64, 0, 0, b as i64, r as i64];
        let pads = self.ints(&format!("pads.{t}_{b}_{l}_{r}"), &pads);
        let mode = match mode {
            PadMode::Zero => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
        };
        self.node("Pad", name, &[x, &pads], vec![("mode", Attr::Str(mode.into()))])
    }

    /// A `Conv` node with explicit zero pads `[top, bottom, left, right]` (or `auto_pad =
    /// SAME_UPPER` when `same_upper`) on the padded input; `weight` is `[out, in/groups, k, k]`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_node(
        &mut self,
        name: &str,
        x: &str,
        weight: &str,
        bias: Option<&str>,
        (kernel, stride, groups): (usize, usize, usize),
        [t, b, l, r]: [usize; 4],
        same_upper: bool,
    ) -> String {
        let k = kernel as i64;
        let mut attrs = vec![
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![stride as i64; 2])),
            ("dilations", Attr::Ints(vec![1, 1])),
            ("group", Attr::Int(groups as i64)),
        ];
        if same_upper {
            attrs.push(("auto_pad", Attr::Str("SAME_UPPER".into())));
        } else {
            attrs.push(("pads", Attr::Ints(vec![t as i64, l as i64, b as i64, r as i64])));
        }
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        self.node("Conv", name, &inputs, attrs)
    }

    /// A convolution with `spec`'s padding rule, as [`crate::kernels::conv2d`] computes it:
    /// [`Padding::Reflect`] as a reflect `Pad` node (`{name}.pad`) of `k/2` then an unpadded
    /// `Conv`; [`Padding::Zero`] and [`Padding::Explicit`] as the `Conv`'s pads; [`Padding::TfSame`]
    /// as fixed pads at stride 1 (`(k-1)/2` before, the rest after) and `auto_pad = SAME_UPPER`
    /// otherwise (the padding then depends on the input's size, as TensorFlow's does);
    /// [`Padding::Valid`] as no padding.
    pub fn conv(&mut self, name: &str, x: &str, weight: &str, bias: Option<&str>, spec: ConvSpec) -> String {
        let k = spec.kernel;
        let geometry = (k, spec.stride, spec.groups);
        match spec.padding {
            Padding::Reflect => {
                let padded = self.pad(&format!("{name}.pad"), x, [k / 2; 4], PadMode::Reflect);
                self.conv_node(name, &padded, weight, bias, geometry, [0; 4], false)
            }
            Padding::Zero => self.conv_node(name, x, weight, bias, geometry, [k / 2; 4], false),
            Padding::Explicit(p) => self.conv_node(name, x, weight, bias, geometry, [p; 4], false),
            Padding::Valid => self.conv_node(name, x, weight, bias, geometry, [0; 4], false),
            Padding::TfSame if spec.stride == 1 => {
                let (before, after) = ((k - 1) / 2, k - 1 - (k - 1) / 2);
                self.conv_node(name, x, weight, bias, geometry, [before, after, before, after], false)
            }
            Padding::TfSame => self.conv_node(name, x, weight, bias, geometry, [0; 4], true),
        }
    }

    /// A `ConvTranspose` node (PyTorch's `ConvTranspose2d`, `weight` `[in, out, k, k]`): output
    /// side `(in - 1)·stride + k - top - bottom + output_padding`, pads `[top, bottom, left, right]`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_transpose(
        &mut self,
        name: &str,
        x: &str,
        weight: &str,
        bias: Option<&str>,
        (kernel, stride): (usize, usize),
        [t, b, l, r]: [usize; 4],
        output_padding: usize,
    ) -> String {
        let k = kernel as i64;
        let attrs = vec![
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![stride as i64; 2])),
            ("dilations", Attr::Ints(vec![1, 1])),
            ("group", Attr::Int(1)),
            ("pads", Attr::Ints(vec![t as i64, l as i64, b as i64, r as i64])),
            ("output_padding", Attr::Ints(vec![output_padding as i64; 2])),
        ];
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        self.node("ConvTranspose", name, &inputs, attrs)
    }

    /// `InstanceNormalization`: per sample and channel over H×W, `(x - mean) / sqrt(var + eps)`
    /// with the biased variance, then `scale·x̂ + bias` (`[C]` each).
    pub fn instance_norm(&mut self, name: &str, x: &str, scale: &str, bias: &str, eps: f64) -> String {
        self.node("InstanceNormalization", name, &[x, scale, bias], vec![("epsilon", Attr::Float(eps as f32))])
    }

    /// [`Graph::instance_norm`] without affine parameters: shared scale 1 and shift 0 of
    /// `channels` elements.
    pub fn instance_norm_plain(&mut self, name: &str, x: &str, channels: usize, eps: f64) -> String {
        let ones = self.floats(&format!("ones.{channels}"), &[channels], &vec![1.0; channels]);
        let zeros = self.floats(&format!("zeros.{channels}"), &[channels], &vec![0.0; channels]);
        self.instance_norm(name, x, &ones, &zeros, eps)
    }

    /// `ReduceMean` over `axes`, keeping them (opset 17: axes as an attribute).
    pub fn reduce_mean(&mut self, name: &str, x: &str, axes: &[i64]) -> String {
        self.node("ReduceMean", name, &[x], vec![("axes", Attr::Ints(axes.to_vec())), ("keepdims", Attr::Int(1))])
    }

    /// `ReduceSum` over `axes`, keeping them (axes as an input since opset 13).
    pub fn reduce_sum(&mut self, name: &str, x: &str, axes: &[i64]) -> String {
        let label = axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("_");
        let axes = self.ints(&format!("axes.{label}"), axes);
        self.node("ReduceSum", name, &[x, &axes], vec![("keepdims", Attr::Int(1))])
    }

    /// Whole-sample normalisation ([`crate::kernels::global_norm`]): per sample, the mean μ and
    /// the biased variance σ² over C·H·W, then `(x - μ) / (σ + eps)` ([`GlobalEps::Sigma`]) or
    /// `(x - μ) / sqrt(σ² + eps)` ([`GlobalEps::Variance`]), `γ·x̂ + β` (initializers of shape
    /// `[1]` or `[1, C, 1, 1]`) and a ReLU when `relu`. Nodes `{name}.*`; the affine output is
    /// `name`.
    pub fn global_norm(&mut self, name: &str, x: &str, eps: GlobalEps, (gamma, beta): (&str, &str), relu: bool) -> String {
        let mean = self.reduce_mean(&format!("{name}.mean"), x, &[1, 2, 3]);
        let centred = self.sub(&format!("{name}.centred"), x, &mean);
        let square = self.mul(&format!("{name}.square"), &centred, &centred);
        let var = self.reduce_mean(&format!("{name}.var"), &square, &[1, 2, 3]);
        let denom = match eps {
            GlobalEps::Sigma(e) => {
                let std = self.node("Sqrt", &format!("{name}.std"), &[&var], vec![]);
                let e = self.scalar(&format!("{:e}", e as f32), e as f32);
                self.add(&format!("{name}.std_eps"), &std, &e)
            }
            GlobalEps::Variance(e) => {
                let e = self.scalar(&format!("{:e}", e as f32), e as f32);
                let v = self.add(&format!("{name}.var_eps"), &var, &e);
                self.node("Sqrt", &format!("{name}.std"), &[&v], vec![])
            }
        };
        let normalized = self.div(&format!("{name}.normalized"), &centred, &denom);
        let scaled = self.mul(&format!("{name}.scaled"), &normalized, gamma);
        let y = self.add(name, &scaled, beta);
        if relu { self.relu(&format!("{name}.relu"), &y) } else { y }
    }

    /// `Resize` of the last two axes by `scale` (the same factor on both).
    pub fn resize_scale(&mut self, name: &str, x: &str, scale: f32, mode: Interpolation) -> String {
        let scales = self.floats(&format!("scales.{scale}"), &[4], &[1.0, 1.0, scale, scale]);
        self.node("Resize", name, &[x, "", &scales], mode.attrs())
    }

    /// `Resize` of `x` `[N, C, h, w]` to the height and width of `like` `[_, _, H, W]` (the sizes
    /// computed in the graph from both shapes).
    pub fn resize_like(&mut self, name: &str, x: &str, like: &str, mode: Interpolation) -> String {
        let nc = self.node("Shape", &format!("{name}.nc"), &[x], vec![("start", Attr::Int(0)), ("end", Attr::Int(2))]);
        let hw = self.node("Shape", &format!("{name}.hw"), &[like], vec![("start", Attr::Int(2)), ("end", Attr::Int(4))]);
        let sizes = self.node("Concat", &format!("{name}.sizes"), &[&nc, &hw], vec![("axis", Attr::Int(0))]);
        self.node("Resize", name, &[x, "", "", &sizes], mode.attrs())
    }

    /// `Slice` of `axis` from `start` to `end` (constant bounds).
    pub fn slice(&mut self, name: &str, x: &str, axis: i64, start: i64, end: i64) -> String {
        let starts = self.ints(&format!("starts.{start}"), &[start]);
        let ends = self.ints(&format!("ends.{end}"), &[end]);
        let axes = self.ints(&format!("axes.{axis}"), &[axis]);
        self.node("Slice", name, &[x, &starts, &ends, &axes], vec![])
    }

    /// `x` `[N, C, H', W']` cropped at the top left to the height and width of `like`
    /// `[_, _, H, W]` (`H ≤ H'`, `W ≤ W'`): a `Slice` whose ends are `like`'s shape.
    pub fn crop_like(&mut self, name: &str, x: &str, like: &str) -> String {
        let hw = self.node("Shape", &format!("{name}.hw"), &[like], vec![("start", Attr::Int(2)), ("end", Attr::Int(4))]);
        let starts = self.ints("starts.0_0", &[0, 0]);
        let axes = self.ints("axes.2_3", &[2, 3]);
        self.node("Slice", name, &[x, &starts, &hw, &axes], vec![])
    }

    /// `Concat` along `axis`.
    pub fn concat(&mut self, name: &str, xs: &[&str], axis: i64) -> String {
        self.node("Concat", name, xs, vec![("axis", Attr::Int(axis))])
    }

    /// Interleaves the channels of `a` and `b` (`[N, C, H, W]` each, `C = channels`):
    /// `out[2i] = a[i]`, `out[2i+1] = b[i]` ([`crate::kernels::generic::channel_shuffle`]),
    /// as a `Concat` (`{name}.concat`) and a `Gather` of the channels in interleaved order.
    pub fn channel_shuffle(&mut self, name: &str, a: &str, b: &str, channels: usize) -> String {
        let cat = self.concat(&format!("{name}.concat"), &[a, b], 1);
        self.interleave_halves(name, &cat, channels)
    }

    /// `x` `[N, 2C, H, W]` with its halves interleaved (`C = channels`): channel `2i` is `x[i]`,
    /// `2i + 1` is `x[C + i]`; a `Gather` on the channel axis.
    pub fn interleave_halves(&mut self, name: &str, x: &str, channels: usize) -> String {
        let order: Vec<i64> = (0..channels as i64).flat_map(|i| [i, channels as i64 + i]).collect();
        let order = self.ints(&format!("shuffle.{channels}"), &order);
        self.node("Gather", name, &[x, &order], vec![("axis", Attr::Int(1))])
    }

    /// The graph as a `GraphProto`.
    pub fn into_proto(self) -> pb::GraphProto {
        pb::GraphProto {
            node: self.nodes,
            name: self.name,
            initializer: self.initializers,
            doc_string: self.doc,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        }
    }

    /// The graph as a model: ONNX IR version `ir_version`, the default operator set (`ai.onnx`)
    /// at `opset`, producer `styleforge` at this crate's version, `doc` and the metadata
    /// properties `metadata` (in key order).
    pub fn into_model(self, ir_version: i64, opset: i64, doc: &str, metadata: &BTreeMap<String, String>) -> pb::ModelProto {
        pb::ModelProto {
            ir_version,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
            producer_name: "styleforge".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            domain: String::new(),
            model_version: 1,
            doc_string: doc.to_string(),
            graph: Some(self.into_proto()),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| pb::StringStringEntryProto { key: k.clone(), value: v.clone() })
                .collect(),
            ..Default::default()
        }
    }
}
