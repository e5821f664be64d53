//! Whole-sample normalisation (keras-contrib's `InstanceNormalization(axis=None)`, PyTorch's
//! `GroupNorm(1, C)`), its affine map and an optional ReLU over a plain flex `f32` tensor: the
//! statistics in `f64` from two reads of the sample (mean, then the squared deviations), each
//! split over the channels' planes in parallel, and one output pass `x·a_c + b_c`, in place when
//! the tensor's buffer is not shared. burn's generic route takes about ten whole-tensor passes.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::{GlobalEps, GlobalNormLayer};
use crate::kernels::cpu_conv::flex_f32;
use crate::kernels::cpu_simd::{squared_deviations, sum, vectorized};

/// [`crate::kernels::global_norm`] on the CPU; gives `x` back when it (or a statistic or affine
/// tensor) is not a plain flex `f32` tensor, or when the affine tensors are neither `[1]` nor
/// `[C]`.
#[allow(clippy::type_complexity)]
pub fn global_norm(
    x: Tensor<4>,
    given: Option<(&Tensor<4>, &Tensor<4>)>,
    GlobalNormLayer { eps, affine, relu }: GlobalNormLayer<'_>,
) -> Result<(Tensor<4>, (Tensor<4>, Tensor<4>)), Tensor<4>> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let Some(plan) = Plan::new(n, c, given, eps, affine) else { return Err(x) };
    let Some(mut prim) = contiguous(x.clone()) else { return Err(x) };
    drop(x);
    let plane = h * w;
    let (coefficients, stats) = plan.coefficients(&[prim.as_slice::<f32>().expect("a contiguous f32 tensor")], plane);
    let out = match prim.try_storage_mut::<f32>() {
        Some(data) => {
            if plane > 0 {
                data[..n * c * plane].par_chunks_mut(plane).zip(coefficients.par_iter()).for_each(|(p, &k)| map(p, k, relu));
            }
            prim
        }
        None => {
            let src = prim.as_slice::<f32>().expect("a contiguous f32 tensor");
            let out = written(n * c * plane, |out| {
                if plane > 0 {
                    out.par_chunks_mut(plane).zip(src.par_chunks(plane)).zip(coefficients.par_iter()).for_each(|((o, p), &k)| map_into(o, p, Some(k), relu));
                }
            });
            FlexTensor::from_data(TensorData::new(out, [n, c, h, w]))
        }
    };
    Ok((Tensor::from_primitive::<Flex>(out), stats.into_tensors(&device)))
}

/// [`crate::kernels::global_norm_shuffled`] on the CPU: the normalisation and the channel
/// shuffle in one output pass. Gives `(left, x)` back where [`global_norm`] would give `x` back,
/// or when the two shapes differ.
#[allow(clippy::type_complexity)]
pub fn global_norm_shuffled(
    left: Tensor<4>,
    x: Tensor<4>,
    both: bool,
    given: Option<(&Tensor<4>, &Tensor<4>)>,
    GlobalNormLayer { eps, affine, relu }: GlobalNormLayer<'_>,
) -> Result<(Tensor<4>, (Tensor<4>, Tensor<4>)), (Tensor<4>, Tensor<4>)> {
    let [n, c, h, w] = x.dims();
    if left.dims() != x.dims() {
        return Err((left, x));
    }
    let device = x.device();
    let Some(plan) = Plan::new(n, if both { 2 * c } else { c }, given, eps, affine) else { return Err((left, x)) };
    let (Some(a), Some(b)) = (contiguous(left.clone()), contiguous(x.clone())) else { return Err((left, x)) };
    let (a, b) = (a.as_slice::<f32>().expect("a contiguous f32 tensor"), b.as_slice::<f32>().expect("a contiguous f32 tensor"));
    let plane = h * w;
    let parts: &[&[f32]] = if both { &[a, b] } else { &[b] };
    let (coefficients, stats) = plan.coefficients(parts, plane);
    let out = written(n * 2 * c * plane, |out| {
        if plane == 0 {
            return;
        }
        out.par_chunks_mut(plane).enumerate().for_each(|(q, dst)| {
            let (s, j) = (q / (2 * c), q % (2 * c));
            let (i, odd) = (j / 2, j % 2 == 1);
            let src = if odd { b } else { a };
            let at = (s * c + i) * plane;
            // The coefficients of channel `i` of `x`, or of `left` when both are normalised
            // (channels `0..c` for `left` and `c..2c` for `x`, as in their concatenation).
            let k = match (both, odd) {
                (false, false) => None,
                (false, true) => Some(coefficients[s * c + i]),
                (true, _) => Some(coefficients[s * 2 * c + if odd { c + i } else { i }]),
            };
            map_into(dst, &src[at..at + plane], k, relu && k.is_some());
        });
    });
    let out = FlexTensor::from_data(TensorData::new(out, [n, 2 * c, h, w]));
    Ok((Tensor::from_primitive::<Flex>(out), stats.into_tensors(&device)))
}

/// `x = relu?(x·a + b)` in place.
fn map(x: &mut [f32], (a, b): (f32, f32), relu: bool) {
    vectorized(
        #[inline(always)]
        || x.iter_mut().for_each(|d| *d = if relu { (*d * a + b).max(0.0) } else { *d * a + b }),
    )
}

/// `dst = relu?(src·a + b)`, or a plain copy of `src` without coefficients, into values that
/// need not be initialised (each one is written).
fn map_into(dst: &mut [MaybeUninit<f32>], src: &[f32], k: Option<(f32, f32)>, relu: bool) {
    assert_eq!(dst.len(), src.len(), "map_into: lengths");
    let Some((a, b)) = k else {
        dst.iter_mut().zip(src).for_each(|(d, &x)| {
            d.write(x);
        });
        return;
    };
    vectorized(
        #[inline(always)]
        || {
            dst.iter_mut().zip(src).for_each(|(d, &x)| {
                d.write(if relu { (x * a + b).max(0.0) } else { x * a + b });
            })
        },
    )
}

/// A new buffer of `len` values that `fill` writes every one of: not zeroed first, which would
/// be a pass over memory as large as the output.
fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: `fill` writes all `len` values (its callers map every plane of the output).
    unsafe { out.set_len(len) };
    out
}

/// The host values of a normalisation's operands: sample count, channels normalised, given
/// statistics, the offset rule and the affine map.
struct Plan {
    n: usize,
    c: usize,
    given: Option<(Vec<f32>, Vec<f32>)>,
    eps: GlobalEps,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// Per-sample means and variances, `[N]` each.
struct Stats {
    means: Vec<f32>,
    vars: Vec<f32>,
}

impl Stats {
    fn into_tensors(self, device: &burn::tensor::Device) -> (Tensor<4>, Tensor<4>) {
        let n = self.means.len();
        let t = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [n, 1, 1, 1]), device);
        (t(self.means), t(self.vars))
    }
}

impl Plan {
    /// `None` unless the affine tensors are `[1]` or `[c]` and every tensor is a flex `f32` one.
    fn new(n: usize, c: usize, given: Option<(&Tensor<4>, &Tensor<4>)>, eps: GlobalEps, (gamma, beta): (&Tensor<1>, &Tensor<1>)) -> Option<Self> {
        let (gamma, beta) = (host(gamma)?, host(beta)?);
        if gamma.len() != beta.len() || (gamma.len() != 1 && gamma.len() != c) {
            return None;
        }
        let given = match given {
            Some((m, v)) => match (host(m), host(v)) {
                (Some(m), Some(v)) if m.len() == n && v.len() == n => Some((m, v)),
                _ => return None,
            },
            None => None,
        };
        Some(Self { n, c, given, eps, gamma, beta })
    }

    /// The statistics of each sample of `parts` taken together (each part `[n, ·]`, sample `s`
    /// being its `s`-th equal slice, in planes of `plane` values) or the given ones, and each
    /// sample and channel's `(scale, shift)`, `[n·c]`.
    fn coefficients(&self, parts: &[&[f32]], plane: usize) -> (Vec<(f32, f32)>, Stats) {
        let (n, c) = (self.n, self.c);
        let (mut means, mut vars) = (vec![0f32; n], vec![0f32; n]);
        let mut coefficients = vec![(0f32, 0f32); n * c];
        for s in 0..n {
            let samples: Vec<&[f32]> = parts.iter().map(|p| &p[s * p.len() / n.max(1)..(s + 1) * p.len() / n.max(1)]).collect();
            let (mean, var) = match &self.given {
                Some((m, v)) => (m[s] as f64, v[s] as f64),
                None => moments(&samples, plane.max(1)),
            };
            means[s] = mean as f32;
            vars[s] = var as f32;
            let denominator = match self.eps {
                GlobalEps::Sigma(e) => (var as f32 as f64).sqrt() + e,
                GlobalEps::Variance(e) => (var as f32 as f64 + e).sqrt(),
            };
            for ch in 0..c {
                let k = if self.gamma.len() == 1 { 0 } else { ch };
                let a = self.gamma[k] as f64 / denominator;
                coefficients[s * c + ch] = (a as f32, (self.beta[k] as f64 - mean as f32 as f64 * a) as f32);
            }
        }
        (coefficients, Stats { means, vars })
    }
}

/// A plain flex `f32` tensor's primitive, contiguous from its buffer's start.
fn contiguous(x: Tensor<4>) -> Option<FlexTensor> {
    if x.dtype() != DType::F32 {
        return None;
    }
    let prim = x.try_into_primitive::<Flex>().ok()?;
    Some(if prim.is_contiguous() && prim.layout().start_offset() == 0 { prim } else { prim.to_contiguous() })
}

/// The mean and biased variance of the values of `parts` together, in `f64`, summed in parallel
/// over chunks of `chunk` values (a channel's plane); `(0, 0)` when empty.
fn moments(parts: &[&[f32]], chunk: usize) -> (f64, f64) {
    let count = parts.iter().map(|p| p.len()).sum::<usize>() as f64;
    if count == 0.0 {
        return (0.0, 0.0);
    }
    let chunks = || parts.par_iter().flat_map(|p| p.par_chunks(chunk));
    let mean = chunks().map(sum).sum::<f64>() / count;
    let var = chunks().map(|p| squared_deviations(p, mean)).sum::<f64>() / count;
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
                let (want, (wm, wv)) = generic::global_norm(x.clone(), None, GlobalNormLayer { eps, affine: (&gamma, &beta), relu });
                let (scale, _) = generic::global_norm(x.clone(), None, GlobalNormLayer { eps, affine: (&gamma, &beta), relu: false });
                let (got, (gm, gv)) = global_norm(x.clone(), None, GlobalNormLayer { eps, affine: (&gamma, &beta), relu }).ok().expect("a flex tensor");
                assert!(close(got, want, scale) < 1e-6, "{dims:?} {eps:?}");
                assert!(close(gm.clone(), wm.clone(), wm) < 1e-6 && close(gv.clone(), wv.clone(), wv) < 1e-6, "{dims:?} statistics");
                // Replaying the statistics on another tensor.
                let other = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
                let (want, _) = generic::global_norm(other.clone(), Some((&gm, &gv)), GlobalNormLayer { eps, affine: (&gamma, &beta), relu });
                let (scale, _) = generic::global_norm(other.clone(), Some((&gm, &gv)), GlobalNormLayer { eps, affine: (&gamma, &beta), relu: false });
                let (got, _) = global_norm(other, Some((&gm, &gv)), GlobalNormLayer { eps, affine: (&gamma, &beta), relu }).ok().expect("a flex tensor");
                assert!(close(got, want, scale) < 1e-6, "{dims:?} {eps:?} given");
            }
        }
    }

    /// The fused channel shuffle equals the norm followed by burn's shuffle: the branch alone
    /// normalised (a ShuffleNet-V2 basic unit) or both halves with joint statistics (a down
    /// unit), scalar and per-channel affine maps, own and given statistics, a batch of two.
    #[test]
    fn shuffled_matches_norm_then_shuffle() {
        let device = Device::flex();
        for dims in [[1, 3, 7, 5], [2, 4, 6, 6]] {
            let left = Tensor::<4>::random(dims, Distribution::Normal(-0.5, 1.5), &device);
            let x = Tensor::<4>::random(dims, Distribution::Normal(0.5, 2.0), &device);
            let c = dims[1];
            for (both, k, relu) in [(false, 1, true), (true, 1, true), (false, c, false), (true, 2 * c, false)] {
                let gamma = Tensor::<1>::random([k], Distribution::Normal(1.0, 0.5), &device);
                let beta = Tensor::<1>::random([k], Distribution::Normal(0.0, 0.5), &device);
                let eps = GlobalEps::Sigma(1e-3);
                let normalised = if both { Tensor::cat(vec![left.clone(), x.clone()], 1) } else { x.clone() };
                let (y, (m, v)) = generic::global_norm(normalised, None, GlobalNormLayer { eps, affine: (&gamma, &beta), relu });
                let want = if both {
                    generic::channel_shuffle(y.clone().narrow(1, 0, c), y.narrow(1, c, c))
                } else {
                    generic::channel_shuffle(left.clone(), y)
                };
                let (got, (gm, gv)) = global_norm_shuffled(left.clone(), x.clone(), both, None, GlobalNormLayer { eps, affine: (&gamma, &beta), relu }).ok().expect("flex tensors");
                assert!(close(got, want.clone(), want.clone()) < 1e-6, "{dims:?} both={both} k={k}");
                assert!(close(gm.clone(), m.clone(), m) < 1e-6 && close(gv.clone(), v.clone(), v) < 1e-6, "{dims:?} statistics");
                let (got, _) = global_norm_shuffled(left.clone(), x.clone(), both, Some((&gm, &gv)), GlobalNormLayer { eps, affine: (&gamma, &beta), relu }).ok().expect("flex tensors");
                assert!(close(got, want.clone(), want) < 1e-6, "{dims:?} both={both} given");
            }
            let other = Tensor::<4>::random([1, 2, 3, 3], Distribution::Normal(0.0, 1.0), &device);
            let one = Tensor::<1>::ones([1], &device);
            assert!(global_norm_shuffled(other, x.clone(), false, None, GlobalNormLayer { eps: GlobalEps::Sigma(1e-3), affine: (&one, &one), relu: false }).is_err(), "shapes differ");
        }
    }
}
