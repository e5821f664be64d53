//! Instance normalisation, its per-channel affine map and an optional ReLU in one pass over a
//! plain flex `f32` tensor, in place when the tensor's buffer is not shared.
//!
//! burn's generic route computes the same result with about eight whole-tensor passes (two
//! means, a subtraction, a square, a division, a multiplication, an addition, the ReLU), each
//! allocating a new buffer; this one reads each plane twice (mean, then variance, in `f64`) and
//! writes it once.

use burn::backend::Flex;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::cpu_simd::{mean_var, vectorized};

/// Per-(sample, channel) mean and biased variance, in `[N·C]` order.
pub struct PlaneStats {
    /// Means.
    pub mean: Vec<f32>,
    /// Biased variances.
    pub var: Vec<f32>,
}

/// `relu?(gamma · (x - mean) / sqrt(var + eps) + beta)` over `x` `[N, C, H, W]`, with the
/// statistics of `x` itself or the given ones; also returns the statistics used. Gives `x` back
/// unchanged when it is not a plain flex `f32` tensor.
pub fn instance_norm(
    x: Tensor<4>,
    stats: Option<&PlaneStats>,
    affine: Option<(&Tensor<1>, &Tensor<1>)>,
    relu: bool,
    eps: f64,
) -> Result<(Tensor<4>, PlaneStats), Tensor<4>> {
    let [n, c, h, w] = x.dims();
    let affine = match affine {
        Some((g, b)) => match (host_f32(g), host_f32(b)) {
            (Some(g), Some(b)) => Some((g, b)),
            _ => return Err(x),
        },
        None => None,
    };
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let Ok(prim) = x.clone().try_into_primitive::<Flex>() else {
        return Err(x);
    };
    drop(x);
    let mut prim = if prim.is_contiguous() && prim.layout().start_offset() == 0 {
        prim
    } else {
        prim.to_contiguous()
    };
    let plane = h * w;
    let mut mean = vec![0f32; n * c];
    let mut var = vec![0f32; n * c];
    if let Some(s) = stats {
        assert_eq!(s.mean.len(), n * c, "instance_norm: statistics for another shape");
        mean.copy_from_slice(&s.mean);
        var.copy_from_slice(&s.var);
    }
    let replay = stats.is_some();
    let affine = affine.as_ref();
    // The scale and shift of plane `i`, measuring its statistics first unless replaying.
    let coefficients = |i: usize, src: &[f32], m: &mut f32, v: &mut f32| {
        if !replay {
            let (mu, var) = mean_var(src);
            *m = mu as f32;
            *v = var as f32;
        }
        let (g, b) = affine.map_or((1.0, 0.0), |(g, b)| (g[i % c] as f64, b[i % c] as f64));
        let scale = g / (*v as f64 + eps).sqrt();
        (scale as f32, (b - *m as f64 * scale) as f32)
    };
    let map = move |x: f32, scale: f32, shift: f32| {
        let y = x * scale + shift;
        if relu { y.max(0.0) } else { y }
    };
    let stats_iter = mean.par_iter_mut().zip(var.par_iter_mut());
    let result = match prim.try_storage_mut::<f32>() {
        Some(data) => {
            data[..n * c * plane].par_chunks_mut(plane).zip(stats_iter).enumerate().for_each(
                |(i, (p, (m, v)))| {
                    let (scale, shift) = coefficients(i, p, m, v);
                    vectorized(
                        #[inline(always)]
                        || p.iter_mut().for_each(|x| *x = map(*x, scale, shift)),
                    );
                },
            );
            prim
        }
        None => {
            let src = prim.as_slice::<f32>().expect("a contiguous f32 tensor");
            let mut out = vec![0f32; n * c * plane];
            out.par_chunks_mut(plane).zip(src.par_chunks(plane)).zip(stats_iter).enumerate().for_each(
                |(i, ((o, p), (m, v)))| {
                    let (scale, shift) = coefficients(i, p, m, v);
                    vectorized(
                        #[inline(always)]
                        || o.iter_mut().zip(p).for_each(|(o, &x)| *o = map(x, scale, shift)),
                    );
                },
            );
            FlexTensor::from_data(TensorData::new(out, [n, c, h, w]))
        }
    };
    Ok((Tensor::from_primitive::<Flex>(result), PlaneStats { mean, var }))
}

/// A small tensor's values, if it is a flex `f32` tensor.
fn host_f32(t: &Tensor<1>) -> Option<Vec<f32>> {
    let prim = t.clone().try_into_primitive::<Flex>().ok()?;
    Some(prim.to_contiguous().as_slice::<f32>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::networks::layers::{Affine, NormContext};

    /// The generic path: normalise, affine map, ReLU, as separate burn operations.
    fn reference(x: Tensor<4>, g: &Tensor<1>, b: &Tensor<1>, relu: bool) -> Tensor<4> {
        let c = g.dims()[0];
        let y = NormContext::Local.normalize(x, 1e-5);
        let y = y * g.clone().reshape([1, c, 1, 1]) + b.clone().reshape([1, c, 1, 1]);
        if relu { burn::tensor::activation::relu(y) } else { y }
    }

    #[test]
    fn matches_the_generic_path_shared_or_not() {
        let device = Device::default();
        let x = Tensor::<4>::random([2, 5, 9, 7], Distribution::Normal(3.0, 2.0), &device);
        let g = Tensor::<1>::random([5], Distribution::Normal(1.0, 0.5), &device);
        let b = Tensor::<1>::random([5], Distribution::Normal(0.0, 1.0), &device);
        for relu in [false, true] {
            let want = reference(x.clone(), &g, &b, relu);
            // `x` is still held here, so the kernel writes a new buffer.
            let (shared, _) = instance_norm(x.clone(), None, Some((&g, &b)), relu, 1e-5).ok().unwrap();
            // A private copy is normalised in place.
            let own = Tensor::<4>::from_data(x.to_data(), &device);
            let (in_place, stats) = instance_norm(own, None, Some((&g, &b)), relu, 1e-5).ok().unwrap();
            for got in [shared, in_place] {
                let err = (got - want.clone()).abs().max().into_scalar::<f32>();
                assert!(err < 1e-5, "relu={relu}: error {err}");
            }
            assert_eq!(stats.mean.len(), 10);
        }
        assert_eq!(x.to_data().try_to_vec::<f32>().unwrap().len(), 2 * 5 * 9 * 7, "x is intact");
    }

    #[test]
    fn recorded_statistics_replay_through_the_context() {
        let device = Device::default();
        let whole = Tensor::<4>::random([1, 4, 16, 16], Distribution::Normal(1.0, 2.0), &device);
        let part = whole.clone().slice([0..1, 0..4, 0..8, 0..8]);
        let affine = Affine {
            gamma: burn::module::Param::from_tensor(Tensor::ones([4], &device)),
            beta: burn::module::Param::from_tensor(Tensor::zeros([4], &device)),
        };
        let mut record = NormContext::Record(Vec::new());
        let _ = record.normalize_affine(whole.clone(), Some(&affine), false, 1e-5);
        let stats = record.into_stats();
        let mut replay = NormContext::Replay { stats: stats.clone(), cursor: 0 };
        let got = replay.normalize_affine(part.clone(), Some(&affine), false, 1e-5);
        let mut generic = NormContext::Replay { stats, cursor: 0 };
        let want = generic.normalize(part, 1e-5);
        let err = (got - want).abs().max().into_scalar::<f32>();
        assert!(err < 1e-5, "replayed statistics: error {err}");
        // The whole image's statistics, not the part's: the part is not zero-mean per channel.
        assert!(matches!(replay, NormContext::Replay { cursor: 1, .. }));
    }
}
