//! LPIPS against the reference implementation (the `lpips` 0.1.4 package with its published
//! v0.1 linear layers, which styleforge ships): AlexNet and VGG-16 backbones filled with the
//! formula weights of `fixtures/formula_weights.py`, two picture pairs, every per-layer term
//! (`fixtures/lpips_parity.json`, made by `fixtures/lpips_reference.py`).


use burn::tensor::Tensor;
use crate::common::{device, formula, rel_l2};
use styleforge_core::metrics::lpips::{Backbone, Lpips};
use styleforge_core::networks::alexnet::AlexNet;
use styleforge_core::networks::vgg::{Vgg, VggVariant};

fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("fixtures/lpips_parity.json")).unwrap()
}

fn params(v: &serde_json::Value) -> Vec<(String, Vec<usize>)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e[0].as_str().unwrap().to_string();
            let shape = e[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (name, shape)
        })
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    let mut out = Vec::new();
    for x in v.as_array().unwrap() {
        match x.as_array() {
            Some(row) => out.extend(row.iter().map(|y| y.as_f64().unwrap() as f32)),
            None => out.push(x.as_f64().unwrap() as f32),
        }
    }
    out
}

fn backbone(net: &str, f: &serde_json::Value) -> Backbone {
    let w = formula::weights(&params(&f[net]["params"]));
    match net {
        "alex" => Backbone::Alex(AlexNet::from_weights(&w, &device()).unwrap()),
        _ => Backbone::Vgg(Vgg::from_weights(&w, Some(VggVariant::Vgg16), &device()).unwrap()),
    }
}

fn pictures() -> (Tensor<4>, Tensor<4>) {
    let shape = [2, 3, 64, 72];
    let x = formula::picture("lpips.x", &shape)
        .to_tensor::<4>(&device())
        .unwrap();
    let y = formula::picture("lpips.y", &shape)
        .to_tensor::<4>(&device())
        .unwrap();
    (x, y.neg() + 1.0)
}

#[test]
fn lpips_matches_the_reference_on_alexnet_and_vgg16() {
    let f = fixture();
    let (x, y) = pictures();
    for net in ["alex", "vgg"] {
        let lpips = Lpips::new(backbone(net, &f), &device()).unwrap();
        assert_eq!(lpips.backbone().name(), net);
        let layers = lpips.layers(x.clone(), y.clone()).unwrap();
        let got: Vec<f32> = layers.iter().flatten().map(|&v| v as f32).collect();
        let want = floats(&f[net]["layers"]);
        let err = rel_l2(&got, &want);
        eprintln!("LPIPS-{net}: per-layer terms {got:?}, relative L2 error {err:.2e}");
        assert!(
            err < 1e-4,
            "LPIPS-{net} per-layer terms: relative L2 {err:e}"
        );
        let distance = lpips.distance(x.clone(), y.clone()).unwrap();
        for (d, want) in distance.iter().zip(floats(&f[net]["distance"])) {
            assert!(
                (d - want as f64).abs() <= 1e-4 * want as f64,
                "LPIPS-{net}: {d} against {want}"
            );
        }
        let same = lpips.distance(x.clone(), x.clone()).unwrap();
        assert!(
            same.iter().all(|&d| d == 0.0),
            "LPIPS-{net} of a picture with itself: {same:?}"
        );
        let swapped = lpips.distance(y.clone(), x.clone()).unwrap();
        for (a, b) in distance.iter().zip(&swapped) {
            assert!(
                (a - b).abs() <= 1e-6 * a,
                "LPIPS-{net} is symmetric: {a} against {b}"
            );
        }
    }
}

#[test]
fn lpips_refuses_what_it_cannot_compare() {
    let f = fixture();
    let lpips = Lpips::new(backbone("alex", &f), &device()).unwrap();
    let d = device();
    let a = Tensor::<4>::ones([1, 3, 40, 40], &d);
    let b = Tensor::<4>::ones([1, 3, 40, 44], &d);
    let e = lpips.distance(a.clone(), b).unwrap_err().to_string();
    assert!(e.contains("one size"), "{e}");
    let small = Tensor::<4>::ones([1, 3, 24, 24], &d);
    let e = lpips
        .distance(small.clone(), small)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 31×31"), "{e}");
    // A VGG-16 file that stops before conv5_3 cannot give relu5_3.
    let mut w = formula::weights(&params(&f["vgg"]["params"]));
    w.tensors
        .retain(|k, _| !k.starts_with("features.26.") && !k.starts_with("features.28."));
    let short = Vgg::from_weights(&w, Some(VggVariant::Vgg16), &d).unwrap();
    let e = Lpips::new(Backbone::Vgg(short), &d)
        .unwrap_err()
        .to_string();
    assert!(e.contains("relu5_3"), "{e}");
    // A missing linear layer is named.
    let mut lin = styleforge_core::library::builtin::lpips_linear_weights("alex.pth").unwrap();
    lin.tensors.remove("lin3.model.1.weight");
    let e = Lpips::with_linear(backbone("alex", &f), &lin, &d)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lin3.model.1.weight"), "{e}");
    let e = styleforge_core::library::builtin::lpips_linear_weights("squeeze.pth")
        .unwrap_err()
        .to_string();
    assert!(e.contains("alex.pth"), "{e}");
}
