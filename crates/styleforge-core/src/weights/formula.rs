//! Deterministic "formula" weights and pictures for parity fixtures and tests.
//!
//! Parity fixtures for large backbones (VGG-16, AlexNet, Inception-v3) cannot carry random
//! weights (tens of megabytes), so the reference scripts fill every tensor of the PyTorch model
//! from this formula (`tests/fixtures/formula_weights.py` in this crate is the Python side) and
//! store only names, shapes, input sizes and reference outputs. The values are quasi-random, in
//! ranges that keep activations finite and non-trivial through deep networks:
//!
//! `v[i] = sin(0.7853·i + p)·cos(0.0131·i + 2p)`, `p = (Σ UTF-8 bytes of the name mod 997) / 100`;
//! a tensor of rank ≥ 2 (convolution, linear) is `v·sqrt(6 / fan_in)` with `fan_in` the product
//! of its dimensions after the first; `…running_var` is `1 + 0.5·v²`; another `….weight` of rank
//! 1 (a norm's scale) `1 + 0.2·v`; any other rank-1 tensor `0.1·v`. A picture is `0.5 + 0.5·v`
//! (RGB 0..1). Computed in `f64`, rounded to `f32`.

use crate::weights::{HostTensor, Weights};

fn values(name: &str, n: usize) -> impl Iterator<Item = f64> {
    let p = (name.bytes().map(u64::from).sum::<u64>() % 997) as f64 / 100.0;
    (0..n).map(move |i| {
        let i = i as f64;
        (0.7853 * i + p).sin() * (0.0131 * i + 2.0 * p).cos()
    })
}

/// The formula tensor `name` of `shape`.
pub fn tensor(name: &str, shape: &[usize]) -> HostTensor {
    let n = shape.iter().product();
    let data = if shape.len() >= 2 {
        let scale = (6.0 / shape[1..].iter().product::<usize>() as f64).sqrt();
        values(name, n).map(|v| (v * scale) as f32).collect()
    } else if name.ends_with("running_var") {
        values(name, n)
            .map(|v| (1.0 + 0.5 * v * v) as f32)
            .collect()
    } else if name.ends_with(".weight") {
        values(name, n).map(|v| (1.0 + 0.2 * v) as f32).collect()
    } else {
        values(name, n).map(|v| (0.1 * v) as f32).collect()
    };
    HostTensor::new(shape.to_vec(), data)
}

/// A weight map with every `(name, shape)` filled by the formula.
pub fn weights(entries: &[(String, Vec<usize>)]) -> Weights {
    let mut w = Weights::default();
    for (name, shape) in entries {
        w.tensors.insert(name.clone(), tensor(name, shape));
    }
    w
}

/// The formula picture `name` in 0..1, `shape` = `[n, 3, h, w]`.
pub fn picture(name: &str, shape: &[usize]) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::new(
        shape.to_vec(),
        values(name, n).map(|v| (0.5 + 0.5 * v) as f32).collect(),
    )
}

#[cfg(test)]
mod tests {
    /// The values numpy gives for the same names (`formula_weights.py`), to the last bit.
    #[test]
    fn formula_values_are_those_of_the_python_side() {
        let cases: [(super::HostTensor, &[f32]); 3] = [
            (
                super::tensor("a.weight", &[2, 3]),
                &[
                    -1.4031425714492798,
                    -0.9351756572723389,
                    0.07815059274435043,
                    1.0420944690704346,
                    1.3929789066314697,
                    0.928138017654419,
                ],
            ),
            (
                super::tensor("bn.running_var", &[3]),
                &[1.3966351747512817, 1.2965407371520996, 1.0189052820205688],
            ),
            (
                super::picture("p", &[1, 3, 1, 2]),
                &[
                    0.22080612182617188,
                    0.20218421518802643,
                    0.36037352681159973,
                    0.6067519187927246,
                    0.7972419261932373,
                    0.8166487216949463,
                ],
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.data, want);
        }
    }
}
