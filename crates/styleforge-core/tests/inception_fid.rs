//! ArtFID's FID part against the reference implementation (the `art_fid` 0.0.2 package): its
//! Inception-v3 filled with the formula weights of `fixtures/formula_weights.py` on two formula
//! pictures of odd sizes, and its Fréchet distance (`np.cov` covariances, `scipy.linalg.sqrtm`)
//! on formula sets and on the reference features (`fixtures/inception_parity.json`, made by
//! `fixtures/inception_reference.py`).


use crate::common::{device, formula, rel_l2};
use styleforge_core::error::Error;
use styleforge_core::metrics::fid::frechet_distance;
use styleforge_core::networks::inception::{FEATURES, Inception3};
use styleforge_core::weights::{HostTensor, Weights};

fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("fixtures/inception_parity.json")).unwrap()
}

fn shape(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn params(v: &serde_json::Value) -> Vec<(String, Vec<usize>)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), shape(&e[1])))
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The formula weights of the reference's state dict, with a BatchNorm step counter as the
/// checkpoint has them (ignored).
fn weights(f: &serde_json::Value) -> Weights {
    let mut w = formula::weights(&params(&f["params"]));
    w.tensors.insert(
        "Conv2d_1a_3x3.bn.num_batches_tracked".into(),
        HostTensor::new(vec![], vec![0.0]),
    );
    w
}

/// Rows of `[n, d]` values.
fn rows(t: &HostTensor) -> Vec<Vec<f32>> {
    t.data
        .chunks_exact(t.shape[1])
        .map(<[f32]>::to_vec)
        .collect()
}

/// The reference's "scrambled" set: `frac(997·v)` of the formula picture's values, in `f64`.
fn scrambled(name: &str, shape: &[usize]) -> HostTensor {
    let p = formula::picture(name, shape);
    let data = p
        .data
        .iter()
        .map(|&v| (v as f64 * 997.0).fract() as f32)
        .collect();
    HostTensor::new(p.shape, data)
}

fn set(kind: &str, spec: &serde_json::Value) -> Vec<Vec<f32>> {
    let (name, shape) = (spec[0].as_str().unwrap(), shape(&spec[1]));
    rows(&match kind {
        "scrambled" => scrambled(name, &shape),
        "tensor" => formula::tensor(name, &shape),
        other => panic!("unknown set kind {other}"),
    })
}

#[test]
fn features_and_distances_match_art_fid() {
    let f = fixture();
    let w = weights(&f);
    let net = Inception3::from_weights(&w, &device()).unwrap();
    let mut all_features = Vec::new();
    let mut own_features = Vec::new();
    for (input, want) in f["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(f["features"].as_array().unwrap())
    {
        let (name, shape) = (input[0].as_str().unwrap(), shape(&input[1]));
        let x = formula::picture(name, &shape)
            .to_tensor::<4>(&device())
            .unwrap();
        let got = net.features(x).unwrap();
        assert_eq!(got.dims(), [shape[0], FEATURES], "{name}");
        let got = HostTensor::from_tensor(got).unwrap();
        let want = floats(want);
        let err = rel_l2(&got.data, &want);
        eprintln!("features of {name} {shape:?}: relative L2 error {err:.3e}");
        assert!(err < 1e-4, "features of {name}: relative L2 error {err:e}");
        own_features.extend(rows(&got));
        all_features.extend(want.chunks_exact(FEATURES).map(<[f32]>::to_vec));
    }
    for case in f["fid"].as_array().unwrap() {
        let label = case["label"].as_str().unwrap();
        let kind = case["kind"].as_str().unwrap();
        let (a, b) = if label == "features" {
            (all_features.clone(), set(kind, &case["b"]))
        } else {
            (set(kind, &case["a"]), set(kind, &case["b"]))
        };
        let got = frechet_distance(&a, &b).unwrap();
        let (art_fid, exact) = (
            case["art_fid"].as_f64().unwrap(),
            case["exact"].as_f64().unwrap(),
        );
        let (e_art, e_exact) = (
            (got - art_fid).abs() / art_fid.abs(),
            (got - exact).abs() / exact.abs(),
        );
        eprintln!(
            "FID {label} ({} × {} against {} × {}): {got:.12}, art_fid {art_fid:.12} (relative {e_art:.2e}), exact {exact:.12} (relative {e_exact:.2e})",
            a.len(),
            a[0].len(),
            b.len(),
            b[0].len()
        );
        // The singular values in f64 give the trace exactly; scipy's sqrtm rounds on the zero
        // eigenvalues of a singular Σ1·Σ2, most where the sets span only 4 dimensions of 40
        // ("low_rank": its own value is 1.1e-6 off the exact one).
        let art_fid_tol = if label == "low_rank" { 2e-6 } else { 1e-6 };
        assert!(
            e_art < art_fid_tol,
            "FID {label}: {got} against art_fid's {art_fid}"
        );
        assert!(
            e_exact < 1e-9,
            "FID {label}: {got} against the exact {exact}"
        );
        if label == "features" {
            let own = frechet_distance(&own_features, &b).unwrap();
            eprintln!(
                "FID of this crate's own features: {own:.12} (relative {:.2e})",
                (own - got).abs() / got
            );
            assert!((own - got).abs() < 1e-4 * got);
        }
    }
}

#[test]
fn refuses_small_pictures_missing_tensors_and_small_sets() {
    let f = fixture();
    let mut w = weights(&f);
    let net = Inception3::from_weights(&w, &device()).unwrap();
    let x = formula::picture("inception.small", &[1, 3, 60, 60])
        .to_tensor::<4>(&device())
        .unwrap();
    let e = net.features(x).unwrap_err();
    assert!(
        matches!(e, Error::Param(_)) && e.to_string().contains("75×75"),
        "{e}"
    );
    let x = formula::picture("inception.narrow", &[1, 3, 299, 74])
        .to_tensor::<4>(&device())
        .unwrap();
    assert!(matches!(net.features(x), Err(Error::Param(_))));
    // The smallest size passes.
    let x = formula::picture("inception.min", &[1, 3, 75, 75])
        .to_tensor::<4>(&device())
        .unwrap();
    assert_eq!(net.features(x).unwrap().dims(), [1, FEATURES]);

    let name = "Mixed_6c.branch7x7dbl_3.bn.running_var";
    let kept = w.tensors.remove(name).unwrap();
    let e = Inception3::from_weights(&w, &device()).unwrap_err();
    assert!(
        matches!(e, Error::Weights(_)) && e.to_string().contains(name),
        "{e}"
    );
    w.tensors.insert(name.into(), kept);
    // A 3×1 kernel where a 1×3 one belongs.
    let name = "Mixed_7b.branch3x3_2a.conv.weight";
    w.tensors
        .insert(name.into(), formula::tensor(name, &[384, 384, 3, 1]));
    let e = Inception3::from_weights(&w, &device()).unwrap_err();
    assert!(
        matches!(e, Error::Weights(_)) && e.to_string().contains(name),
        "{e}"
    );
    w.tensors
        .insert(name.into(), formula::tensor(name, &[384, 384, 1, 3]));
    // A tensor of no layer.
    w.tensors.insert(
        "Mixed_5b.branch9x9.conv.weight".into(),
        formula::tensor("x", &[1, 1, 1, 1]),
    );
    let e = Inception3::from_weights(&w, &device()).unwrap_err();
    assert!(
        e.to_string().contains("Mixed_5b.branch9x9.conv.weight"),
        "{e}"
    );

    let one = vec![vec![0.5f32; FEATURES]];
    let two = vec![vec![0.5f32; FEATURES], vec![0.25; FEATURES]];
    assert!(matches!(frechet_distance(&one, &two), Err(Error::Param(_))));
    assert!(matches!(frechet_distance(&two, &one), Err(Error::Param(_))));
    assert!(matches!(
        frechet_distance(&two, &[vec![0.0; 3], vec![1.0; 3]]),
        Err(Error::Param(_))
    ));
}
