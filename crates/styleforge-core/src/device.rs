//! Choosing the compute device: burn's `flex` CPU backend by default, CUDA with the `cuda` feature.

use burn::tensor::Device;

use crate::error::{Error, Result};

/// Parses a device name: `cpu` (burn `flex`), or `cuda` / `cuda:N` when built with the `cuda` feature.
pub fn parse(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        s if s == "cuda" || s.starts_with("cuda:") => {
            let index: usize = s
                .strip_prefix("cuda:")
                .unwrap_or("0")
                .parse()
                .map_err(|_| Error::Param(format!("bad CUDA device `{s}` (use cuda or cuda:N)")))?;
            Ok(Device::cuda(index))
        }
        other => Err(Error::Param(format!(
            "unknown device `{other}` (available: cpu{})",
            if cfg!(feature = "cuda") {
                ", cuda, cuda:N"
            } else {
                "; build with --features cuda for GPUs"
            }
        ))),
    }
}

/// Runs a computation on one of rayon's worker threads and returns its result. The CPU kernels
/// start a parallel loop for every layer, norm and gradient; started from a thread outside the
/// pool, each loop is queued and the caller sleeps on a lock until it ends (two context
/// switches per loop). Started from a worker, a loop runs on the caller with the other workers
/// helping. Panics inside `f` reach the caller.
pub fn on_compute_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
