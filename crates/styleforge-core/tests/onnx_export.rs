//! ONNX export: every exportable kind of network, with real or parity weights, is written as an
//! ONNX model, checked by `onnx.checker.check_model(full_check=True)`, and run by two runtimes,
//! tract (in process) and ONNX Runtime (Python, `tests/fixtures/onnx_run.py`, through `.npy`
//! files), on the same inputs as the engine at two sizes (an odd one where the network takes any
//! size): both agree with the engine's one-pass forward to a relative L2 error below 1e-4.
//!
//! The Python interpreter is `.tools/py/bin/python` at the repository root, with onnxruntime and
//! onnx installed by `scripts/install-test-tools.sh`; without them the tests fail.


use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Tensor;
use crate::common::{device, python, rel_l2};
use prost::Message;
use styleforge_core::image_io::{self, Picture};
use styleforge_core::library::{Loaded, ModelInfo, ModelKind, builtin};
use styleforge_core::methods::fast::FastStyleNet;
use styleforge_core::networks::animegan::Upsampling;
use styleforge_core::networks::dcgan::BnMode;
use styleforge_core::networks::layers::NormContext;
use styleforge_core::onnx::export::{self, OPSET};
use styleforge_core::onnx::meta;
use styleforge_core::shared;
use styleforge_core::weights::{HostTensor, Weights};
use tract_onnx::prelude::*;

const TOL: f64 = 1e-4;

/// One run of a model: its named inputs and the engine's output on them (unclamped), and, for
/// the image networks, the engine's clamped one-pass output (`forward_any_size`).
struct Case {
    label: String,
    inputs: Vec<(&'static str, HostTensor)>,
    engine: HostTensor,
    clamped: Option<HostTensor>,
}

fn host(t: Tensor<4>) -> HostTensor {
    HostTensor::from_tensor(t).unwrap()
}

fn tensor(t: &HostTensor) -> Tensor<4> {
    t.to_tensor::<4>(&device()).unwrap()
}

/// A `w`×`h` crop of the shipped test photo (RGB 0..255, planar) starting at `(x, y)`.
fn photo(x: u32, y: u32, w: u32, h: u32) -> HostTensor {
    let pic = image_io::read(&shared::path("data/content/small/cat_chelsea_256.jpg"), 1 << 24).unwrap();
    let pic = pic.crop(x, y, w, h);
    HostTensor::new(vec![1, 3, h as usize, w as usize], pic.rgb)
}

/// A built-in painting scaled to `w`×`h` (RGB 0..255).
fn painting(name: &str, w: u32, h: u32) -> HostTensor {
    let pic: Picture = builtin::painting(name).unwrap().picture().unwrap().resize(w, h);
    HostTensor::new(vec![1, 3, h as usize, w as usize], pic.rgb)
}

fn library_info(name: &str, kind: ModelKind) -> ModelInfo {
    builtin::model_info(name).unwrap_or_else(|| ModelInfo {
        name: name.into(),
        title: format!("{name} (test)"),
        method: kind.name().into(),
        license: "test weights".into(),
        ..Default::default()
    })
}

fn load(kind: ModelKind, w: &Weights) -> Loaded {
    kind.load_weights(w, &device()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// .npy files (float32, C order), the exchange format with the Python side.

fn write_npy(path: &Path, t: &HostTensor) {
    let shape = t.shape.iter().map(|d| format!("{d}, ")).collect::<String>();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(t.data.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

fn read_npy(path: &Path) -> HostTensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}: not a .npy file", path.display());
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + len]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let dims = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = dims.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let data: Vec<f32> = bytes[start + len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{}", path.display());
    HostTensor::new(shape, data)
}

// ---------------------------------------------------------------------------------------------
// The two runtimes.


/// Checks the model and runs every case with ONNX Runtime; the outputs in case order.
fn run_onnxruntime(model: &[u8], cases: &[Case]) -> Vec<HostTensor> {
    let dir = tempfile::tempdir().unwrap();
    let model_path = dir.path().join("model.onnx");
    std::fs::write(&model_path, model).unwrap();
    let mut case_dirs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let d = dir.path().join(format!("case{i}"));
        std::fs::create_dir(&d).unwrap();
        for (name, t) in &case.inputs {
            write_npy(&d.join(format!("in_{name}.npy")), t);
        }
        case_dirs.push(d);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx_run.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&model_path)
        .args(&case_dirs)
        .output()
        .expect("start the test interpreter");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!("{stderr}ONNX Runtime is not installed for the tests: run scripts/install-test-tools.sh");
    }
    assert!(out.status.success(), "onnx_run.py failed ({}):\n{stdout}\n{stderr}", out.status);
    eprint!("{stdout}");
    case_dirs.iter().map(|d| read_npy(&d.join("out_output.npy"))).collect()
}

/// How tract compiles the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TractPlan {
    /// Once, with the graph's symbolic sizes: the plan must run every case.
    AnySize,
    /// Once per case, with the input shapes fixed (for graphs tract cannot run with symbolic
    /// sizes); the symbolic plan is still tried and its outcome printed.
    PerShape,
}

/// Loads the model with tract, optimises it (once with symbolic sizes, or per case with the
/// case's input shapes) and runs every case.
fn run_tract(model: &[u8], cases: &[Case], mode: TractPlan) -> Vec<HostTensor> {
    let compile = |shapes: Option<&[(&str, HostTensor)]>| {
        let mut m = tract_onnx::onnx().model_for_read(&mut &model[..]).expect("tract reads the model");
        for (i, (_, t)) in shapes.unwrap_or(&[]).iter().enumerate() {
            let dims: Vec<TDim> = t.shape.iter().map(|&d| TDim::from(d as i64)).collect();
            m = m.with_input_fact(i, InferenceFact::dt_shape(DatumType::F32, dims)).unwrap();
        }
        m.into_optimized().expect("tract optimises the model").into_runnable().expect("tract plans the model")
    };
    let inputs = |case: &Case| -> TVec<TValue> {
        case.inputs.iter().map(|(_, t)| tract_onnx::prelude::Tensor::from_shape(&t.shape, &t.data).unwrap().into()).collect()
    };
    let host_out = |outputs: TVec<TValue>| {
        let out = &outputs[0];
        let data: Vec<f32> = out.to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        HostTensor::new(out.shape().to_vec(), data)
    };
    let any = compile(None);
    cases
        .iter()
        .map(|case| {
            let symbolic = any.run(inputs(case));
            match mode {
                TractPlan::AnySize => host_out(symbolic.unwrap_or_else(|e| panic!("tract runs {} (symbolic sizes): {e:?}", case.label))),
                TractPlan::PerShape => {
                    match symbolic {
                        Ok(_) => eprintln!("tract {}: the symbolic-size plan runs too", case.label),
                        Err(e) => eprintln!("tract {}: the symbolic-size plan fails: {e:#}; compiled for this shape", case.label),
                    }
                    let plan = compile(Some(&case.inputs));
                    host_out(plan.run(inputs(case)).unwrap_or_else(|e| panic!("tract runs {}: {e:?}", case.label)))
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The check every kind goes through.

/// Exports `model`, checks the model's declaration, runs the cases with both runtimes and
/// compares with the engine.
fn check_export(what: &str, model: &Loaded, info: &ModelInfo, cases: &[Case], expect: &[(&str, &str)], mode: TractPlan) {
    let bytes = export::export(model, info).unwrap();
    // STYLEFORGE_ONNX_EXPORT_DIR keeps the exported models for inspection.
    if let Some(dir) = std::env::var_os("STYLEFORGE_ONNX_EXPORT_DIR") {
        let name = what.split_whitespace().next().unwrap_or("model");
        std::fs::write(Path::new(&dir).join(format!("{name}-{}.onnx", info.name)), &bytes).unwrap();
    }
    let proto = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
    assert_eq!(proto.producer_name, "styleforge");
    assert_eq!(proto.producer_version, env!("CARGO_PKG_VERSION"));
    assert!(proto.opset_import.iter().any(|o| o.domain.is_empty() && o.version == OPSET && OPSET >= 17));
    let graph = proto.graph.as_ref().unwrap();
    assert!(!graph.doc_string.is_empty());
    let inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(inputs, cases[0].inputs.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "{what}: inputs");
    assert_eq!(graph.output.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["output"], "{what}: outputs");
    let props: std::collections::BTreeMap<&str, &str> =
        proto.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
    assert_eq!(props.get(meta::KIND), Some(&model.kind().name()), "{what}: kind");
    assert_eq!(props.get(meta::LAYOUT), Some(&"NCHW"));
    assert_eq!(props.get(meta::CHANNELS), Some(&"RGB"));
    assert_eq!(props.get("name"), Some(&info.name.as_str()));
    for (k, v) in expect {
        assert_eq!(props.get(k).copied(), if v.is_empty() { None } else { Some(*v) }, "{what}: metadata {k}");
    }
    eprintln!("{what}: {} bytes, {} nodes, {} initializers", bytes.len(), graph.node.len(), graph.initializer.len());

    let ort = run_onnxruntime(&bytes, cases);
    let tract = run_tract(&bytes, cases, mode);
    for ((case, o), t) in cases.iter().zip(&ort).zip(&tract) {
        for (runtime, got) in [("onnxruntime", o), ("tract", t)] {
            assert_eq!(got.shape, case.engine.shape, "{what} {}: {runtime} output shape", case.label);
            let err = rel_l2(&got.data, &case.engine.data);
            eprintln!("{what} {}: {runtime} relative L2 {err:.2e}", case.label);
            assert!(err < TOL, "{what} {}: {runtime} relative L2 {err:.3e} >= {TOL:e}", case.label);
            if let Some(clamped) = &case.clamped {
                let c: Vec<f32> = got.data.iter().map(|v| v.clamp(0.0, 255.0)).collect();
                let err = rel_l2(&c, &clamped.data);
                assert!(err < TOL, "{what} {}: {runtime} clamped vs forward_any_size {err:.3e}", case.label);
            }
        }
    }
}

fn image_case(label: &str, x: HostTensor, engine: HostTensor, clamped: Option<HostTensor>) -> Case {
    Case { label: label.into(), inputs: vec![("input", x)], engine, clamped }
}

// ---------------------------------------------------------------------------------------------
// One test per kind.

#[test]
fn fast_transformer_net() {
    let w = Weights::load(&shared::path("parity/transformer_net_stock_legacy.pth")).unwrap();
    let model = load(ModelKind::Fast, &w);
    let Loaded::Fast(net @ FastStyleNet::TransformerNet(_)) = &model else { panic!("not a TransformerNet") };
    // Sizes must be multiples of 4 (declared): the engine pads other sizes before the network.
    let cases: Vec<Case> = [(0, 0, 48, 36), (100, 40, 40, 52)]
        .into_iter()
        .map(|(x, y, w, h)| {
            let input = photo(x, y, w, h);
            let engine = host(net.forward(tensor(&input), &mut NormContext::Local));
            let clamped = host(net.forward_any_size(tensor(&input), &mut NormContext::Local));
            image_case(&format!("{w}x{h}"), input, engine, Some(clamped))
        })
        .collect();
    let expect = [(meta::INPUT_RANGE, "0..255"), (meta::OUTPUT_RANGE, "0..255"), (meta::SIZE_MULTIPLE, "4"), (meta::MIN_SIZE, "8")];
    check_export("fast transformer_net_stock", &model, &library_info("stock", ModelKind::Fast), &cases, &expect, TractPlan::AnySize);
}

#[test]
fn fast_engstrom() {
    let w = Weights::load(&shared::path("models/fast_style_engstrom/udnie.safetensors")).unwrap();
    let model = load(ModelKind::Fast, &w);
    let Loaded::Fast(net @ FastStyleNet::Engstrom(_)) = &model else { panic!("not an Engstrom network") };
    let cases: Vec<Case> = [(0, 0, 44, 32), (60, 80, 36, 48)]
        .into_iter()
        .map(|(x, y, w, h)| {
            let input = photo(x, y, w, h);
            let engine = host(net.forward(tensor(&input), &mut NormContext::Local));
            let clamped = host(net.forward_any_size(tensor(&input), &mut NormContext::Local));
            image_case(&format!("{w}x{h}"), input, engine, Some(clamped))
        })
        .collect();
    let expect = [(meta::SIZE_MULTIPLE, "4"), (meta::OUTPUT_RANGE, "0..255")];
    check_export("fast engstrom udnie", &model, &library_info("udnie", ModelKind::Fast), &cases, &expect, TractPlan::AnySize);
}

#[test]
fn cyclegan_generator() {
    let w = Weights::load(&shared::path("parity/cyclegan_G_ngf32_6blocks.pth")).unwrap();
    let model = load(ModelKind::CycleGan, &w);
    let Loaded::CycleGan(gan) = &model else { unreachable!() };
    let cases: Vec<Case> = [(0, 0, 32, 24), (90, 30, 28, 40)]
        .into_iter()
        .map(|(x, y, w, h)| {
            let input = photo(x, y, w, h);
            let y = gan.generator().forward(tensor(&input) / 127.5 - 1.0, &mut NormContext::Local);
            let engine = host((y + 1.0) * 127.5);
            let clamped = host(gan.forward_any_size(tensor(&input), &mut NormContext::Local));
            image_case(&format!("{w}x{h}"), input, engine, Some(clamped))
        })
        .collect();
    let expect = [(meta::SIZE_MULTIPLE, "4"), (meta::MIN_SIZE, "8"), (meta::INPUT_RANGE, "0..255")];
    check_export("cyclegan ngf32 6 blocks", &model, &library_info("cyclegan-test", ModelKind::CycleGan), &cases, &expect, TractPlan::AnySize);
}

#[test]
fn dcgan_generator() {
    let w = Weights::load(&shared::path("parity/dcgan_netG_ngf32.pth")).unwrap();
    let model = load(ModelKind::Dcgan, &w);
    let Loaded::Dcgan(g) = &model else { unreachable!() };
    let nz = g.config().nz;
    // Standard normal latents (Box-Muller on a fixed LCG).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let cases: Vec<Case> = [1usize, 3]
        .into_iter()
        .map(|n| {
            let z: Vec<f32> = (0..n * nz)
                .map(|_| ((-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos()) as f32)
                .collect();
            let z = HostTensor::new(vec![n, nz, 1, 1], z);
            let engine = host(g.forward(tensor(&z), BnMode::Eval));
            Case { label: format!("batch {n}"), inputs: vec![("z", z)], engine, clamped: None }
        })
        .collect();
    let expect = [(meta::OUTPUT_RANGE, "-1..1"), (meta::INPUT_RANGE, ""), (meta::SIZE_MULTIPLE, "")];
    check_export("dcgan ngf32", &model, &library_info("dcgan-test", ModelKind::Dcgan), &cases, &expect, TractPlan::AnySize);
}

#[test]
fn cartoon_paprika() {
    let model = load(ModelKind::Cartoon, &builtin::weights("cartoon-paprika").unwrap());
    let Loaded::Cartoon(net) = &model else { unreachable!() };
    // Any size: the graph crops the network's output (a multiple of 4) to the input.
    let cases: Vec<Case> = [(0, 0, 67, 45), (120, 60, 32, 40), (200, 100, 7, 5)]
        .into_iter()
        .map(|(x, y, w, h)| {
            let input = photo(x, y, w, h);
            let out = net.forward_traced(tensor(&input) / 127.5 - 1.0, &mut NormContext::Local, false).output;
            let engine = host((out.slice([0..1, 0..3, 0..h as usize, 0..w as usize]) + 1.0) * 127.5);
            let clamped = host(net.forward_any_size(tensor(&input), &mut NormContext::Local));
            image_case(&format!("{w}x{h}"), input, engine, Some(clamped))
        })
        .collect();
    let expect = [(meta::SIZE_MULTIPLE, ""), (meta::MIN_SIZE, ""), (meta::OUTPUT_RANGE, "0..255")];
    check_export("cartoon-paprika", &model, &library_info("cartoon-paprika", ModelKind::Cartoon), &cases, &expect, TractPlan::AnySize);
}

#[test]
fn animegan2() {
    let w = Weights::load(&shared::path("parity/animegan2_generator.pth")).unwrap();
    let model = load(ModelKind::Anime, &w);
    let Loaded::Anime(net) = &model else { unreachable!() };
    let cases: Vec<Case> = [(10, 20, 67, 45), (130, 70, 32, 40)]
        .into_iter()
        .map(|(x, y, w, h)| {
            let input = photo(x, y, w, h);
            let (out, _) = net.forward_traced(tensor(&input) / 127.5 - 1.0, Upsampling::AlignCorners, &mut NormContext::Local);
            let engine = host((out + 1.0) * 127.5);
            let clamped = host(net.forward_any_size(tensor(&input), &mut NormContext::Local));
            image_case(&format!("{w}x{h}"), input, engine, Some(clamped))
        })
        .collect();
    let expect = [(meta::MIN_SIZE, "8"), (meta::SIZE_MULTIPLE, "")];
    check_export("animegan2 (parity weights)", &model, &library_info("animegan-test", ModelKind::Anime), &cases, &expect, TractPlan::PerShape);
}

#[test]
fn microast_builtin() {
    let model = load(ModelKind::MicroAst, &builtin::weights(builtin::MICROAST).unwrap());
    let Loaded::MicroAst(net) = &model else { unreachable!() };
    let cases: Vec<Case> = [((0, 0, 67, 45), ("starry-night", 48, 37)), ((100, 50, 32, 40), ("great-wave", 40, 40))]
        .into_iter()
        .map(|((x, y, w, h), (style, sw, sh))| {
            let content = photo(x, y, w, h);
            let style_img = painting(style, sw, sh);
            let trace = net.forward_traced(tensor(&content) / 255.0, tensor(&style_img) / 255.0, 1.0);
            let engine = host(trace.output.slice([0..1, 0..3, 0..h as usize, 0..w as usize]) * 255.0);
            Case {
                label: format!("{w}x{h} with {style} {sw}x{sh}"),
                inputs: vec![("content", content), ("style", style_img)],
                engine,
                clamped: None,
            }
        })
        .collect();
    let expect = [(meta::MIN_SIZE, "8"), (meta::INPUT_RANGE, "0..255"), (meta::OUTPUT_RANGE, "0..255")];
    check_export("microast (built in)", &model, &library_info(builtin::MICROAST, ModelKind::MicroAst), &cases, &expect, TractPlan::AnySize);
}

/// AdaIN and VGG are not exported, and say so.
#[test]
fn adain_and_vgg_are_refused() {
    assert!(!export::exportable(ModelKind::Adain) && !export::exportable(ModelKind::Vgg));
    for kind in [ModelKind::Fast, ModelKind::CycleGan, ModelKind::Dcgan, ModelKind::MicroAst, ModelKind::Cartoon, ModelKind::Anime] {
        assert!(export::exportable(kind), "{kind}");
    }
    let a = Weights::load(&shared::path("parity/adain_vgg_normalised_relu4_1.pth")).unwrap();
    let b = Weights::load(&shared::path("parity/adain_decoder.pth")).unwrap();
    let w = styleforge_core::library::kind::combine_adain(a, b).unwrap();
    let model = load(ModelKind::Adain, &w);
    let e = export::export(&model, &library_info("adain", ModelKind::Adain)).unwrap_err();
    assert!(matches!(e, styleforge_core::Error::Param(_)), "{e}");
    assert!(e.to_string().contains("AdaIN"), "{e}");
}
