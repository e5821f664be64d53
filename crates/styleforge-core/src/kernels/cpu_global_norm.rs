//! Whole-sample normalisation (keras-contrib's `InstanceNormalization(axis=None)`, PyTorch's
//! `GroupNorm(1, C)`), its affine map and an optional ReLU over a plain flex `f32` tensor: the
//! statistics in `f64` from two reads of the sample (mean, then the squared deviations), each
//! split over the channels' planes in parallel, and one output pass `x·a_c + b_c`, in place when
//! the tensor's buffer is not shared. burn's generic route takes about ten whole-tensor passes.

use burn::backend::Flex;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::GlobalEps;
use crate::kernels::cpu_conv::flex_f32;
use crate::kernels::cpu_simd::vectorized;

/// [`crate::kernels::global_norm`] on the CPU; gives `x` back when it (or a statistic or affine
/// tensor) is not a plain flex `f32` tensor, or when the affine tensors are neither `[1]` nor
/// `[C]`.
#[allow(clippy::type_complexity)]
pub fn global_norm(
    x: Tensor<4>,
    given: Option<(&Tensor<4>, &Tensor<4>)>,
    eps: GlobalEps,
    (gamma, beta): (&Tensor<1>, &Tensor<1>),
    relu: bool,
) -> Result<(Tensor<4>, (Tensor<4>, Tensor<4>)), Tensor<4>> {
    let [n, c, h, w] = x.dims();
    let (Some(gamma), Some(beta)) = (host(gamma), host(beta)) else { return Err(x) };
    if gamma.len() != beta.len() || (gamma.len() != 1 && gamma.len() != c) {
        return Err(x);
    }
    let given = match given {
        Some((m, v)) => match (host(m), host(v)) {
            (Some(m), Some(v)) if m.len() == n && v.len() == n => Some((m, v)),
            _ => return Err(x),
        },
        None => None,
    };
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let device = x.device();
    let Ok(prim) = x.clone().try_into_primitive::<Flex>() else { return Err(x) };
    drop(x);
    let mut prim = if prim.is_contiguous() && prim.layout().start_offset() == 0 { prim } else { prim.to_contiguous() };
    let plane = h * w;
    let sample = c * plane;
    let (mut means, mut vars) = (vec![0f32; n], vec![0f32; n]);
    // Per sample: the statistics, then each channel's scale and shift.
    let mut coefficients = vec![(0f32, 0f32); n * c];
    {
        let data = prim.as_slice::<f32>().expect("a contiguous f32 tensor");
        for s in 0..n {
            let values = &data[s * sample..(s + 1) * sample];
            let (mean, var) = match &given {
                Some((m, v)) => (m[s] as f64, v[s] as f64),
                None => moments(values, plane.max(1)),
            };
            means[s] = mean as f32;
            vars[s] = var as f32;
            let denominator = match eps {
                GlobalEps::Sigma(e) => (var as f32 as f64).sqrt() + e,
                GlobalEps::Variance(e) => (var as f32 as f64 + e).sqrt(),
            };
            for ch in 0..c {
                let k = if gamma.len() == 1 { 0 } else { ch };
                let a = gamma[k] as f64 / denominator;
                coefficients[s * c + ch] = (a as f32, (beta[k] as f64 - mean as f32 as f64 * a) as f32);
            }
        }
    }
    let map = move |dst: &mut [f32], src: Option<&[f32]>, (a, b): (f32, f32)| {
        vectorized(
            #[inline(always)]
            || match src {
                Some(src) => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = if relu { (x * a + b).max(0.0) } else { x * a + b }),
                None => dst.iter_mut().for_each(|d| *d = if relu { (*d * a + b).max(0.0) } else { *d * a + b }),
            },
        )
    };
    let out = match prim.try_storage_mut::<f32>() {
        Some(data) => {
            if plane > 0 {
                data[..n * sample].par_chunks_mut(plane).zip(coefficients.par_iter()).for_each(|(p, &k)| map(p, None, k));
            }
            prim
        }
        None => {
            let src = prim.as_slice::<f32>().expect("a contiguous f32 tensor");
            let mut out = vec![0f32; n * sample];
            if plane > 0 {
                out.par_chunks_mut(plane).zip(src.par_chunks(plane)).zip(coefficients.par_iter()).for_each(|((o, p), &k)| map(o, Some(p), k));
            }
            FlexTensor::from_data(TensorData::new(out, [n, c, h, w]))
        }
    };
    let stat = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [n, 1, 1, 1]), &device);
    Ok((Tensor::from_primitive::<Flex>(out), (stat(means), stat(vars))))
}

/// The mean and biased variance of `values` in `f64`, summed in parallel over chunks of `chunk`
/// values (a channel's plane); `(0, 0)` when empty.
fn moments(values: &[f32], chunk: usize) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let count = values.len() as f64;
    let mean = values.par_chunks(chunk).map(|p| p.iter().map(|&x| x as f64).sum::<f64>()).sum::<f64>() / count;
    let var = values.par_chunks(chunk).map(|p| p.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>()).sum::<f64>() / count;
    (mean, var)
}

/// A small tensor's values, if it is a flex `f32` tensor.
fn host<const D: usize>(t: &Tensor<D>) -> Option<Vec<f32>> {
    Some(flex_f32(t)?.as_slice::<f32>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::kernels::generic;

    fn norm(t: Tensor<4>) -> f32 {
        t.powi_scalar(2).sum().sqrt().into_scalar::<f32>()
    }

    /// The L2 distance of `a` from `b` relative to `scale`'s norm: with the ReLU, `b` alone can
    /// be a few small survivors, so the scale is the output before the ReLU.
    fn close(a: Tensor<4>, b: Tensor<4>, scale: Tensor<4>) -> f32 {
        norm(a - b) / norm(scale).max(1e-12)
    }

    /// burn's route is the reference: both offsets, scalar and per-channel affine maps, with and
    /// without the ReLU, own and given statistics, a batch of two and a one-pixel image.
    #[test]
    fn matches_the_generic_route() {
        let device = Device::flex();
        for dims in [[1, 6, 17, 9], [2, 3, 5, 4], [1, 4, 1, 1]] {
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.5, 2.0), &device);
            for (k, eps, relu) in [(1, GlobalEps::Sigma(1e-3), true), (dims[1], GlobalEps::Variance(1e-5), false)] {
                let gamma = Tensor::<1>::random([k], Distribution::Normal(1.0, 0.5), &device);
                let beta = Tensor::<1>::random([k], Distribution::Normal(0.0, 0.5), &device);
                let (want, (wm, wv)) = generic::global_norm(x.clone(), None, eps, (&gamma, &beta), relu);
                let (scale, _) = generic::global_norm(x.clone(), None, eps, (&gamma, &beta), false);
                let (got, (gm, gv)) = global_norm(x.clone(), None, eps, (&gamma, &beta), relu).ok().expect("a flex tensor");
                assert!(close(got, want, scale) < 1e-6, "{dims:?} {eps:?}");
                assert!(close(gm.clone(), wm.clone(), wm) < 1e-6 && close(gv.clone(), wv.clone(), wv) < 1e-6, "{dims:?} statistics");
                // Replaying the statistics on another tensor.
                let other = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
                let (want, _) = generic::global_norm(other.clone(), Some((&gm, &gv)), eps, (&gamma, &beta), relu);
                let (scale, _) = generic::global_norm(other.clone(), Some((&gm, &gv)), eps, (&gamma, &beta), false);
                let (got, _) = global_norm(other, Some((&gm, &gv)), eps, (&gamma, &beta), relu).ok().expect("a flex tensor");
                assert!(close(got, want, scale) < 1e-6, "{dims:?} {eps:?} given");
            }
        }
    }
}
