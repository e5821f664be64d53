//! Imported ONNX models: the two published fast-style graphs in `../shared/models/onnx_fast_style`
//! against ONNX Runtime's outputs, the library import, and the conventions (layout, channel
//! order, value range, fixed sizes) on small graphs built here.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use styleforge_core::image_io::Picture;
use styleforge_core::library::{Library, Loaded, ModelInfo, ModelKind};
use styleforge_core::methods::fast::{FeedForwardNet, StylizeOptions};
use styleforge_core::onnx::runtime::{Channels, Layout, OnnxNet, Overrides};
use styleforge_core::onnx::{ValueRange, meta};
use styleforge_core::shared;
use styleforge_core::weights::Weights;
use tract_onnx::pb;

use crate::common::{device, rel_l2};

const CASES: [&str; 3] = ["tubingen_256x192", "chicago_256x192", "tubingen_250x187"];

fn model_bytes(name: &str) -> Arc<[u8]> {
    std::fs::read(shared::path(&format!("models/onnx_fast_style/{name}.onnx"))).unwrap().into()
}

#[test]
fn published_graphs_match_onnx_runtime() {
    let reference = common::reference("models/onnx_fast_style/reference/onnx_ref.safetensors");
    for model in ["model", "efficientmodel_big"] {
        let net = OnnxNet::load(model_bytes(model), &BTreeMap::new(), &Overrides::default()).unwrap();
        let c = net.conventions();
        assert_eq!((c.layout, c.channels, c.input_range, c.fixed_size), (Layout::Nchw, Channels::Rgb, ValueRange::Byte, None));
        assert!(c.range_assumed, "nothing in these graphs says their range");
        let w = Weights::from_onnx_bytes(model_bytes(model).to_vec()).unwrap();
        let Loaded::Onnx(loaded) = ModelKind::Onnx.load_weights(&w, &device()).unwrap() else { panic!() };
        assert_eq!(loaded.native_kind(), None, "{model}: no native network of this architecture");
        for case in CASES {
            let input = reference.get(&format!("input.{case}")).unwrap();
            let want = reference.get(&format!("{model}.{case}.output")).unwrap();
            let (got, shape) = net.run_raw(input.data.clone(), &input.shape).unwrap();
            assert_eq!(shape, want.shape, "{model} {case}: output shape");
            let err = rel_l2(&got, &want.data);
            let max = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            eprintln!("{model} {case}: relative L2 {err:.2e}, max abs {max:.2e} (0..255 scale)");
            assert!(err < 1e-4, "{model} {case}: relative L2 {err:.2e}");
            assert!(max < 3e-3, "{model} {case}: max abs {max}");
        }
    }
}

#[test]
fn odd_sizes_come_back_at_the_input_size() {
    let net = OnnxNet::load(model_bytes("model"), &BTreeMap::new(), &Overrides::default()).unwrap();
    let pic = gradient(250, 187);
    let opts = StylizeOptions::default();
    let out = net.stylize_with(&pic, &opts, &device()).unwrap();
    assert_eq!((out.width, out.height), (250, 187));
    assert!(out.rgb.iter().all(|v| v.is_finite()));
    // Tiles of 128 over a 250×187 picture give a full picture too, close to the whole run away
    // from the seams' feathering (instance norm sees each tile alone).
    let tiled = net.stylize_with(&pic, &StylizeOptions { tile: Some(128), ..opts }, &device()).unwrap();
    assert_eq!((tiled.width, tiled.height), (250, 187));
    assert!(rel_l2(&tiled.rgb, &out.rgb) < 0.5);
}

#[test]
fn library_import_records_the_conventions_and_runs_as_a_fast_style() {
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let file = shared::path("models/onnx_fast_style/model.onnx");
    let info = ModelInfo { name: "mindgame".into(), license: "MIT".into(), ..Default::default() };
    let overrides = Overrides { input_range: Some(ValueRange::Byte), ..Default::default() };
    let (info, conventions) = lib.import_onnx(&file, info, &overrides, false).unwrap();
    assert_eq!((info.method.as_str(), info.family.as_str()), ("onnx", "onnx"));
    assert!(!conventions.range_assumed);
    assert_eq!(info.sha256, "dd7c9b7a1be9bf372b2b92cf3f3bdbd5e755f001f17a8d79f932746bff143073");
    // One file, read back by name with its metadata and conventions.
    let listed = lib.list().unwrap();
    let m = listed.iter().find(|m| m.name == "mindgame").unwrap();
    assert_eq!(ModelKind::of(m), Some(ModelKind::Onnx));
    let w = lib.weights("mindgame").unwrap();
    assert_eq!(w.metadata.get(meta::INPUT_RANGE).map(String::as_str), Some("0..255"));
    assert_eq!(w.graph.as_deref().map(<[u8]>::len), Some(41081));
    let loaded = ModelKind::Onnx.load_weights(&w, &device()).unwrap();
    let Loaded::Onnx(net) = &loaded else { panic!("not an ONNX model") };
    assert!(!net.conventions().range_assumed);
    // The registry's fast method runs it like any per-style network.
    let fast = styleforge_core::methods::get("fast").unwrap();
    assert!(fast.info().accepts(ModelKind::Onnx));
    let input = styleforge_core::methods::Input::content(gradient(96, 64));
    let mut params = styleforge_core::methods::Params::new();
    params.set_number("strength", Some(0.5)).unwrap();
    let mut report = |_: &styleforge_core::methods::Progress<'_>| {};
    let mut control = styleforge_core::methods::Control::new(None, &mut report);
    let out = fast.run(&loaded, &input, &params, &device(), &mut control).unwrap();
    assert_eq!((out.picture.width, out.picture.height), (96, 64));
    // A second import of that name is refused; an unknown range is refused with the choices.
    assert!(lib.import_onnx(&file, ModelInfo { name: "mindgame".into(), ..Default::default() }, &Overrides::default(), false).is_err());
    let e = ValueRange::parse("0..65535").unwrap_err().to_string();
    assert!(e.contains("0..255, 0..1, -1..1"), "{e}");
}

#[test]
fn broken_and_unsuitable_graphs_are_refused_clearly() {
    let bytes = model_bytes("model");
    let cut = Weights::from_onnx_bytes(bytes[..bytes.len() / 2].to_vec()).unwrap_err().to_string();
    assert!(cut.contains("not an ONNX model"), "{cut}");
    let junk = Weights::from_onnx_bytes(b"\x08\x07 definitely not protobuf".to_vec());
    assert!(junk.is_err());
    // Two image inputs: not an image-to-image model.
    let two = model(vec![input("a", &[1, 3, 8, 8]), input("b", &[1, 3, 8, 8])], vec![node("Add", &["a", "b"], "y")], vec![], "y");
    let e = OnnxNet::load(two.into(), &BTreeMap::new(), &Overrides::default()).unwrap_err().to_string();
    assert!(e.contains("one input") && e.contains("takes 2 (a, b)"), "{e}");
    // A non-image input.
    let flat = model(vec![input("x", &[1, 10])], vec![node("Relu", &["x"], "y")], vec![], "y");
    let e = OnnxNet::load(flat.into(), &BTreeMap::new(), &Overrides::default()).unwrap_err().to_string();
    assert!(e.contains("2 dimensions"), "{e}");
}

#[test]
fn layout_channels_ranges_and_fixed_sizes_are_honoured() {
    // NHWC, BGR, 0..1: the graph zeroes its first channel (blue), so the picture loses its blue.
    let zero_first = tensor("k", &[1, 1, 1, 3], &[0.0, 1.0, 1.0]);
    let nhwc = model(vec![input_dyn("x", &["n", "h", "w", "3"])], vec![node("Mul", &["x", "k"], "y")], vec![zero_first], "y");
    let overrides = Overrides { input_range: Some(ValueRange::Unit), channels: Some(Channels::Bgr), ..Default::default() };
    let net = OnnxNet::load(nhwc.into(), &BTreeMap::new(), &overrides).unwrap();
    assert_eq!(net.conventions().layout, Layout::Nhwc);
    let pic = gradient(33, 21);
    let out = net.stylize_with(&pic, &StylizeOptions::default(), &device()).unwrap();
    let n = 33 * 21;
    assert!(rel_l2(&out.rgb[..2 * n], &pic.rgb[..2 * n]) < 1e-6, "red and green pass through 0..1 and back");
    assert!(out.rgb[2 * n..].iter().all(|v| *v == 0.0), "blue is the graph's first channel");
    // A fixed 32×32 input, -1..1 in and out, identity: any picture is resized there and back.
    let ident = model(vec![input("x", &[1, 3, 32, 32])], vec![node("Identity", &["x"], "y")], vec![], "y");
    let mut metadata = BTreeMap::new();
    metadata.insert(meta::INPUT_RANGE.to_string(), "-1..1".to_string());
    let net = OnnxNet::load(ident.into(), &metadata, &Overrides::default()).unwrap();
    assert_eq!(net.conventions().fixed_size, Some((32, 32)));
    assert_eq!(net.conventions().output_range, ValueRange::Signed);
    assert!(net.conventions().describe().contains("fixed input 32×32"));
    let flat = Picture { width: 50, height: 40, rgb: vec![100.0; 3 * 50 * 40], alpha: None };
    let out = net.stylize_with(&flat, &StylizeOptions::default(), &device()).unwrap();
    assert_eq!((out.width, out.height), (50, 40));
    assert!(out.rgb.iter().all(|v| (v - 100.0).abs() < 1e-3), "a flat picture survives -1..1 and two resizes");
}

/// A picture with smooth colour ramps.
fn gradient(w: u32, h: u32) -> Picture {
    let n = (w * h) as usize;
    let mut rgb = vec![0f32; 3 * n];
    for y in 0..h as usize {
        for x in 0..w as usize {
            let p = y * w as usize + x;
            rgb[p] = 255.0 * x as f32 / w as f32;
            rgb[n + p] = 255.0 * y as f32 / h as f32;
            rgb[2 * n + p] = 128.0 + 100.0 * ((x + y) as f32 / 9.0).sin();
        }
    }
    Picture { width: w, height: h, rgb, alpha: None }
}

fn input(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    value(name, dims.iter().map(|d| pb::tensor_shape_proto::dimension::Value::DimValue(*d)).collect())
}

/// An input whose numeric dims are fixed and others symbolic.
fn input_dyn(name: &str, dims: &[&str]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::dimension::Value;
    value(name, dims.iter().map(|d| d.parse().map(Value::DimValue).unwrap_or_else(|_| Value::DimParam(d.to_string()))).collect())
}

fn value(name: &str, dims: Vec<pb::tensor_shape_proto::dimension::Value>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims.into_iter().map(|v| pb::tensor_shape_proto::Dimension { value: Some(v), ..Default::default() }).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: format!("{op}_{output}"),
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

/// A model of `nodes` (opset 17) with graph inputs, initializers and one output `y`.
fn model(inputs: Vec<pb::ValueInfoProto>, nodes: Vec<pb::NodeProto>, initializer: Vec<pb::TensorProto>, output: &str) -> Vec<u8> {
    let out = pb::ValueInfoProto { name: output.into(), ..Default::default() };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "styleforge-tests".into(),
        graph: Some(pb::GraphProto { name: "g".into(), node: nodes, input: inputs, output: vec![out], initializer, ..Default::default() }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// styleforge's own exports, imported again, stylise a picture of an odd size as the native
/// networks do (the import reads the size multiple and minimum from the export's metadata).
#[test]
fn exported_networks_round_trip_through_the_importer() {
    let cases: Vec<(&str, Weights)> = vec![
        ("cartoon-paprika", styleforge_core::library::builtin::weights("cartoon-paprika").unwrap()),
        ("transformer_net", Weights::load(&shared::path("parity/transformer_net_stock_legacy.pth")).unwrap()),
        ("animegan2", Weights::load(&shared::path("parity/animegan2_generator.pth")).unwrap()),
    ];
    for (name, w) in cases {
        let kind = styleforge_core::library::kind::detect(&w).unwrap().kind;
        let native = kind.load_weights(&w, &device()).unwrap();
        let info = ModelInfo { name: name.into(), ..Default::default() };
        let bytes = styleforge_core::onnx::model_bytes(&native, &info).unwrap();
        let imported = Weights::from_onnx_bytes(bytes).unwrap();
        let Loaded::Onnx(net) = ModelKind::Onnx.load_weights(&imported, &device()).unwrap() else { panic!("not ONNX") };
        assert!(!net.conventions().range_assumed, "{name}: the export states its range");
        eprintln!("{name}: runs as {:?}", net.native_kind());
        if name == "transformer_net" {
            // Its weights keep the state dict's names: it runs as the native network.
            assert_eq!(net.native_kind(), Some(ModelKind::Fast));
        }
        let pic = gradient(67, 45);
        let opts = StylizeOptions::default();
        let want = native.feed_forward().unwrap().stylize_with(&pic, &opts, &device()).unwrap();
        let got = net.stylize_with(&pic, &opts, &device()).unwrap();
        let err = rel_l2(&got.rgb, &want.rgb);
        eprintln!("{name}: exported and imported vs native at 67×45: relative L2 {err:.2e}");
        assert!(err < 1e-4, "{name}: relative L2 {err:.2e}");
    }
}

/// Graphs that would exhaust memory, do not return the picture, or return NaN are refused at
/// import, with the reason; built-in names are not taken; a model's own terms are kept.
#[test]
fn unsafe_or_lying_graphs_are_refused_at_import() {
    let refuse = |bytes: Vec<u8>, needle: &str| {
        let e = OnnxNet::load(bytes.into(), &BTreeMap::new(), &Overrides::default()).unwrap_err().to_string();
        assert!(e.contains(needle), "expected `{needle}` in: {e}");
    };
    let huge = model(vec![input("x", &[1, 3, 100_000, 100_000])], vec![node("Identity", &["x"], "y")], vec![], "y");
    refuse(huge, "declares a fixed size of 100000×100000");
    let dims = ["1", "3", "h", "w"];
    let pooled = model(vec![input_dyn("x", &dims)], vec![node("GlobalAveragePool", &["x"], "y")], vec![], "y");
    refuse(pooled, "returned a 1×1 picture for a 64×64 input");
    let shift = tensor("k", &[1], &[1000.0]);
    let nan = model(vec![input_dyn("x", &dims)], vec![node("Sub", &["x", "k"], "d"), node("Log", &["d"], "y")], vec![shift], "y");
    refuse(nan, "NaN or infinite");
    let only64 = tensor("k", &[1, 3, 64, 64], &vec![1.0; 3 * 64 * 64]);
    let fixed_by_accident = model(vec![input_dyn("x", &dims)], vec![node("Add", &["x", "k"], "y")], vec![only64], "y");
    refuse(fixed_by_accident, "runs on a 64×64 picture but not on a 96×72 one");

    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let ident = model(vec![input_dyn("x", &dims)], vec![node("Identity", &["x"], "y")], vec![], "y");
    for name in ["microast", "starry-night"] {
        let e = lib.import_onnx_bytes(ident.clone(), ModelInfo { name: name.into(), ..Default::default() }, &Overrides::default(), false);
        assert!(e.unwrap_err().to_string().contains("built-in"), "{name}");
    }
    // Research-only terms and tags written in the model survive an import that does not repeat them.
    let mut proto = pb::ModelProto::decode(&ident[..]).unwrap();
    for (k, v) in [("research_only", "true"), ("tags", "ink,noir"), ("license", "CC BY-NC")] {
        proto.metadata_props.push(pb::StringStringEntryProto { key: k.into(), value: v.into() });
    }
    let (info, _) = lib.import_onnx_bytes(proto.encode_to_vec(), ModelInfo { name: "noir".into(), ..Default::default() }, &Overrides::default(), false).unwrap();
    assert!(info.research_only);
    assert_eq!(info.tags, ["ink", "noir"]);
    assert_eq!(info.license, "CC BY-NC");
}
