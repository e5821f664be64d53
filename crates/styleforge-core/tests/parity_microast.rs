//! MicroAST (EndyWon/MicroAST) reproduces the reference outputs made by the original code with the
//! four published weight files: encoder features, modulation signals and the output of every
//! case in `models/microast/reference/microast_ref.safetensors` (alpha 1, and the published
//! alpha 0.5 whose output leaves 0..1).


use crate::common::{assert_close, device, reference};
use styleforge_core::library::kind::combine_microast;
use styleforge_core::networks::microast::MicroAst;
use styleforge_core::shared;
use styleforge_core::weights::Weights;

const TOL: f64 = 1e-4;

/// The model from the four published `.pth.tar` files (the pre-1.6 PyTorch serialisation).
fn model() -> MicroAst {
    let files = ["content_encoder", "style_encoder", "modulator", "decoder"]
        .into_iter()
        .map(|p| {
            let name = format!("{p}_iter_160000.pth.tar");
            let w = Weights::load(&shared::path(&format!("models/microast/{name}"))).unwrap();
            (name, w)
        })
        .collect();
    MicroAst::from_weights(&combine_microast(files).unwrap(), &device()).unwrap()
}

fn cases(r: &Weights) -> Vec<String> {
    let mut keys: Vec<String> = r.tensors.keys().filter_map(|k| k.strip_suffix(".output")).map(str::to_string).collect();
    keys.sort();
    keys
}

#[test]
fn every_reference_case_with_its_intermediate_tensors() {
    let m = model();
    let r = reference("models/microast/reference/microast_ref.safetensors");
    let cases = cases(&r);
    assert!(cases.len() >= 4, "reference cases: {cases:?}");
    assert!(cases.iter().filter(|c| c.ends_with("__a1.0")).count() >= 3);
    for case in &cases {
        let alpha: f32 = case.rsplit("__a").next().unwrap().parse().unwrap();
        let t = |name: &str| r.get(&format!("{case}.{name}")).unwrap().to_tensor::<4>(&device()).unwrap();
        let want = |name: &str| r.get(&format!("{case}.{name}")).unwrap();
        let trace = m.forward_traced(t("content"), t("style"), alpha);
        assert_close(&format!("{case} content_feat1"), trace.content[1].clone(), want("content_feat1"), TOL);
        assert_close(&format!("{case} style_feat0"), trace.style[0].clone(), want("style_feat0"), TOL);
        assert_close(&format!("{case} filter_weight0"), trace.weight[0].clone(), want("filter_weight0"), TOL);
        assert_close(&format!("{case} filter_bias1"), trace.bias[1].clone(), want("filter_bias1"), TOL);
        assert_close(&format!("{case} output"), trace.output, want("output"), TOL);
    }
}

#[test]
fn wrong_or_missing_parts_are_named() {
    let load = |p: &str| {
        let name = format!("{p}_iter_160000.pth.tar");
        (name.clone(), Weights::load(&shared::path(&format!("models/microast/{name}"))).unwrap())
    };
    let three = vec![load("content_encoder"), load("style_encoder"), load("decoder")];
    let e = combine_microast(three).unwrap_err().to_string();
    assert!(e.contains("four files"), "{e}");
    let twice = vec![load("content_encoder"), load("style_encoder"), load("decoder"), load("decoder")];
    let e = combine_microast(twice).unwrap_err().to_string();
    assert!(e.contains("second MicroAST decoder"), "{e}");
    // A combined map missing a tensor names the part and the tensor.
    let all = ["content_encoder", "style_encoder", "modulator", "decoder"].map(load).to_vec();
    let mut w = combine_microast(all).unwrap();
    w.tensors.remove("decoder.dec3.10.conv_layer.bias");
    let e = MicroAst::from_weights(&w, &device()).unwrap_err().to_string();
    assert!(e.contains("decoder") && e.contains("dec3.10.conv_layer.bias"), "{e}");
}
