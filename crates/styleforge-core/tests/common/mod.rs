#![allow(dead_code)]
//! Helpers shared by the integration tests.

pub mod formula;

use burn::tensor::{Device, Tensor};
use styleforge_core::shared;
use styleforge_core::weights::{HostTensor, Weights};

/// Reference tensors from a shared safetensors file.
pub fn reference(rel: &str) -> Weights {
    Weights::load(&shared::path(rel)).unwrap()
}

/// ||a - b|| / ||b||.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        num += ((x - y) as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    (num / den).sqrt()
}

/// Compares a backend tensor to a reference tensor: same shape, relative L2 below `tol`.
pub fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: &HostTensor, tol: f64) {
    let got = HostTensor::from_tensor(got).unwrap();
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let err = rel_l2(&got.data, &want.data);
    eprintln!("{what}: relative L2 error {err:.3e}");
    assert!(err < tol, "{what}: relative L2 error {err:.3e} >= {tol:e}");
}

pub fn device() -> Device {
    Device::flex()
}

/// The repository's test interpreter (`.tools/py/bin/python`, with onnxruntime, onnx and
/// scikit-image); fails the test, naming the install script, when it is missing.
pub fn python() -> std::path::PathBuf {
    let py = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/py/bin/python");
    assert!(
        py.is_file(),
        "{} not found: run scripts/install-test-tools.sh (it installs onnxruntime, onnx and scikit-image for these tests)",
        py.display()
    );
    py
}
