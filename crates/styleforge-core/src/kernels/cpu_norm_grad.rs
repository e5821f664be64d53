//! Instance normalisation with its optional affine map and ReLU as one custom operation on
//! burn's autodiff graph, for flex `f32` tensors.
//!
//! burn's generic route records about eight whole-tensor operations forward (means, subtraction,
//! square, division, affine, ReLU) and as many again backward, each allocating a buffer. This
//! one reads each plane twice and writes it once in each direction, with the statistics and the
//! backward sums in `f64`:
//!
//! - forward: `y = relu?(γ·x̂ + β)`, `x̂ = (x - μ)/σ`, `σ = sqrt(var + eps)` (biased variance);
//! - backward, per plane of `M` values with `g = γ·dy` (`dy` masked where the ReLU cut):
//!   `dx = (g - mean(g) - x̂·mean(g·x̂))/σ`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::cpu_autodiff::{flex, operand, parents, record, unpack};
use crate::kernels::cpu_simd::{masked_sums, mean_var, vectorized};

/// `relu?(γ·(x - mean)/sqrt(var + eps) + β)` per sample and channel of `x` `[N, C, H, W]`,
/// recorded on the autodiff graph, where `x` is an autodiff flex `f32` tensor (γ and β may be
/// autodiff or plain); `None` elsewhere.
pub fn instance_norm(
    x: &Tensor<4>,
    affine: Option<(&Tensor<1>, &Tensor<1>)>,
    relu: bool,
    eps: f64,
) -> Option<Tensor<4>> {
    if !x.is_autodiff() {
        return None;
    }
    let (xs, x_node) = operand(x)?;
    let [n, c, h, w]: [usize; 4] = xs.layout().shape().dims();
    let ((gamma, g_node), (beta, b_node)) = match affine {
        Some((g, b)) => (operand(g)?, operand(b)?),
        None => ((flex(vec![1.0; c], [c]), None), (flex(vec![0.0; c], [c]), None)),
    };
    let (nodes, slots) = parents([x_node, g_node, b_node]);
    let plane = h * w;
    let x_data = xs.as_slice::<f32>()?;
    let (gv, bv) = (gamma.as_slice::<f32>()?, beta.as_slice::<f32>()?);
    assert!(gv.len() == c && bv.len() == c, "instance_norm: affine of {} for {c} channels", gv.len());
    let mut out = vec![0f32; n * c * plane];
    let mut stats = vec![(0f64, 0f64); n * c];
    out.par_chunks_mut(plane)
        .zip(x_data.par_chunks(plane))
        .zip(stats.par_iter_mut())
        .enumerate()
        .for_each(|(p, ((dst, src), st))| {
            let (mean, var) = mean_var(src);
            vectorized(#[inline(always)] || {
                let rstd = 1.0 / (var + eps).sqrt();
                *st = (mean, rstd);
                let scale = gv[p % c] as f64 * rstd;
                let shift = bv[p % c] as f64 - mean * scale;
                let (scale, shift) = (scale as f32, shift as f32);
                for (d, &v) in dst.iter_mut().zip(src) {
                    let y = v * scale + shift;
                    *d = if relu { y.max(0.0) } else { y };
                }
            })
        });
    let out = flex(out, [n, c, h, w]);
    let state = NormState { x: xs, gamma, stats, out: relu.then(|| out.clone()), slots };
    Some(match nodes.len() {
        1 => record::<_, 1>(NormBackward::<1>, nodes, state, out),
        2 => record::<_, 2>(NormBackward::<2>, nodes, state, out),
        _ => record::<_, 3>(NormBackward::<3>, nodes, state, out),
    })
}

/// The normalisation's backward step over its `N` tracked operands.
#[derive(Debug)]
struct NormBackward<const N: usize>;

/// What the backward step keeps: the input, γ, per-plane `(mean, 1/σ)`, the output when a ReLU
/// was fused, and which parent (if any) the input, γ and β are.
#[derive(Debug, Clone)]
struct NormState {
    x: FlexTensor,
    gamma: FlexTensor,
    stats: Vec<(f64, f64)>,
    out: Option<FlexTensor>,
    slots: [Option<usize>; 3],
}

impl<const N: usize> Backward<Flex, N> for NormBackward<N> {
    type State = NormState;

    fn backward(self, ops: Ops<NormState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (grad, NormState { x, gamma, stats, out, slots }, parents) = unpack(ops, grads, "instance_norm");
        let dims: [usize; 4] = x.layout().shape().dims();
        let [_, c, h, w] = dims;
        let plane = h * w;
        let dy = grad.as_slice::<f32>().expect("instance_norm backward: gradient values");
        let x = x.as_slice::<f32>().expect("instance_norm backward: input values");
        let gamma = gamma.as_slice::<f32>().expect("instance_norm backward: gamma values");
        let out = out.as_ref().map(|o| o.as_slice::<f32>().expect("instance_norm backward: output values"));
        let [node_x, node_g, node_b] = slots.map(|slot| slot.and_then(|i| parents[i]));
        let mut dx = vec![0f32; if node_x.is_some() { x.len() } else { 0 }];
        // Per plane: (Σ dy·x̂, Σ dy), with `dy` masked where the ReLU cut.
        let sums: Vec<(f64, f64)> = (0..stats.len())
            .into_par_iter()
            .map(|p| {
                let at = p * plane..(p + 1) * plane;
                let (mean, rstd) = stats[p];
                let kept = out.map(|o| &o[at.clone()]);
                let (s_dy, s_dyx) = masked_sums(&dy[at.clone()], &x[at.clone()], kept);
                ((s_dyx - mean * s_dy) * rstd, s_dy)
            })
            .collect();
        if node_x.is_some() {
            dx.par_chunks_mut(plane).enumerate().for_each(|(p, dst)| {
                let at = p * plane..(p + 1) * plane;
                let (mean, rstd) = stats[p];
                let (s_dyx, s_dy) = sums[p];
                // dx = a·dy - a·rstd·mean(dy·x̂)·(x - μ) - a·mean(dy), with a = γ/σ.
                let a = gamma[p % c] as f64 * rstd;
                let k_x = (-a * rstd * s_dyx / plane as f64) as f32;
                let k_0 = (-a * s_dy / plane as f64) as f32;
                let (a, mean) = (a as f32, mean as f32);
                let (dy, x, kept) = (&dy[at.clone()], &x[at.clone()], out.map(|o| &o[at.clone()]));
                vectorized(#[inline(always)] || match kept {
                    Some(kept) => {
                        for (((d, &g), &v), &k) in dst.iter_mut().zip(dy).zip(x).zip(kept) {
                            let g = if k > 0.0 { g } else { 0.0 };
                            *d = a * g + k_x * (v - mean) + k_0;
                        }
                    }
                    None => {
                        for ((d, &g), &v) in dst.iter_mut().zip(dy).zip(x) {
                            *d = a * g + k_x * (v - mean) + k_0;
                        }
                    }
                });
            });
        }
        let per_channel = |pick: fn(&(f64, f64)) -> f64| -> Vec<f32> {
            (0..c).map(|ch| sums.iter().skip(ch).step_by(c).map(pick).sum::<f64>() as f32).collect()
        };
        if let Some(node) = node_x {
            grads.register::<Flex>(node, flex(dx, dims));
        }
        if let Some(node) = node_g {
            grads.register::<Flex>(node, flex(per_channel(|s| s.0), [c]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node, flex(per_channel(|s| s.1), [c]));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, activation};

    use super::*;

    /// The same function from burn's tensor operations.
    fn reference(x: Tensor<4>, affine: Option<(Tensor<1>, Tensor<1>)>, relu: bool, eps: f64) -> Tensor<4> {
        let c = x.dims()[1];
        let mean = x.clone().mean_dim(2).mean_dim(3);
        let var = (x.clone() - mean.clone()).powi_scalar(2).mean_dim(2).mean_dim(3);
        let y = (x - mean).div((var + eps).sqrt());
        let y = match affine {
            Some((g, b)) => y * g.reshape([1, c, 1, 1]) + b.reshape([1, c, 1, 1]),
            None => y,
        };
        if relu { activation::relu(y) } else { y }
    }

    fn max_rel<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-6);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    #[test]
    fn gradients_match_burn() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        for (affine, relu, plain_affine) in [(false, false, false), (false, true, false), (true, true, false), (true, false, true)] {
            let x = Tensor::<4>::random([2, 5, 7, 6], Distribution::Normal(0.5, 2.0), &ad).require_grad();
            let on = if plain_affine { &device } else { &ad };
            let gamma = Tensor::<1>::random([5], Distribution::Normal(1.0, 0.5), on);
            let beta = Tensor::<1>::random([5], Distribution::Normal(0.0, 0.5), on);
            let (gamma, beta) = if plain_affine { (gamma, beta) } else { (gamma.require_grad(), beta.require_grad()) };
            let probe = Tensor::<4>::random([2, 5, 7, 6], Distribution::Normal(0.0, 1.0), &ad);
            let run = |ours: bool| {
                let params = affine.then(|| (gamma.clone(), beta.clone()));
                let y = if ours {
                    let params = params.as_ref().map(|(g, b)| (g, b));
                    instance_norm(&x, params, relu, 1e-5).expect("autodiff flex input")
                } else {
                    reference(x.clone(), params, relu, 1e-5)
                };
                let grads = (y.clone() * probe.clone()).sum().backward();
                let trainable = affine && !plain_affine;
                let gg = trainable.then(|| (gamma.grad(&grads).expect("gamma gradient"), beta.grad(&grads).expect("beta gradient")));
                (y.without_autodiff(), x.grad(&grads).expect("input gradient"), gg)
            };
            let (y1, gx1, gg1) = run(true);
            let (y2, gx2, gg2) = run(false);
            let what = format!("affine {affine} relu {relu} plain affine {plain_affine}");
            assert!(max_rel(y1, y2) < 1e-5, "output, {what}");
            assert!(max_rel(gx1, gx2) < 1e-4, "input gradient, {what}");
            if let (Some((g1, b1)), Some((g2, b2))) = (gg1, gg2) {
                assert!(max_rel(g1, g2) < 1e-5, "gamma gradient, {what}");
                assert!(max_rel(b1, b2) < 1e-5, "beta gradient, {what}");
            }
        }
    }

    #[test]
    fn plain_inputs_are_declined() {
        let x = Tensor::<4>::zeros([1, 2, 3, 3], &Device::flex());
        assert!(instance_norm(&x, None, false, 1e-5).is_none());
    }
}
