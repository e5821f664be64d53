//! Stride-1 convolutions on autodiff flex tensors, with [`cpu_conv`]'s im2col-free kernels in
//! both directions: a custom operation on burn's autodiff graph.
//!
//! - Forward: [`cpu_conv`]'s convolution of the inner tensors.
//! - Input gradient: the output gradient convolved with the kernel transposed (`[in, out]`) and
//!   flipped, with `k - 1` zeros of padding, gives the gradient of the padded input; the padding
//!   is then folded back (cropped for zeros, the mirrored rows and columns added onto the pixels
//!   they copy for reflection).
//! - Kernel gradient: per kernel row `kh`, one matrix product `dW_kh[out, (kw, in)] =
//!   dY[out, q] · X[q, (kw, in)]` over the output's "wide" positions `q`, reading the padded NHWC
//!   input in place through strides as the forward pass does.
//! - Bias gradient: the output gradient summed per channel.
//! - A fused ReLU keeps the output and masks the incoming gradient where it is not positive.
//!
//! burn's own route (im2col forward, im2col/col2im backward) stays in use for strides above 1,
//! upsampling and every other backend.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::cpu_autodiff::{contiguous, flex, operand, parents, record};
use crate::cpu_conv::{self, Geometry};

/// [`cpu_conv::conv2d`] at stride 1 without upsampling, recorded on the autodiff graph, where
/// the tensors are flex `f32` ones and at least one of them is an autodiff tensor (plain ones,
/// such as a frozen network's kernels, are constants); `None` elsewhere.
pub fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, g: Geometry) -> Option<Tensor<4>> {
    if g.stride != 1 || g.upsample {
        return None;
    }
    let (xs, x_node) = operand(x)?;
    let (ws, w_node) = operand(weight)?;
    let (bs, b_node) = match bias {
        Some(b) => {
            let (values, node) = operand(b)?;
            (Some(values), node)
        }
        None => (None, None),
    };
    let (nodes, slots) = parents([x_node, w_node, b_node]);
    if nodes.is_empty() {
        return None;
    }
    let out = cpu_conv::conv2d_flex(&xs, &ws, bs.as_ref(), g)?;
    let state = ConvState { x: xs, weight: ws, out: g.relu.then(|| out.clone()), g, slots };
    Some(match nodes.len() {
        1 => record::<_, 1>(ConvBackward::<1>, nodes, state, out),
        2 => record::<_, 2>(ConvBackward::<2>, nodes, state, out),
        _ => record::<_, 3>(ConvBackward::<3>, nodes, state, out),
    })
}

/// The convolution's backward step over its `N` tracked operands.
#[derive(Debug)]
struct ConvBackward<const N: usize>;

/// What the backward step keeps: the inputs, the output when a ReLU was fused, the geometry and
/// which parent (if any) the input, the kernel and the bias are.
#[derive(Debug, Clone)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    out: Option<FlexTensor>,
    g: Geometry,
    slots: [Option<usize>; 3],
}

impl<const N: usize> Backward<Flex, N> for ConvBackward<N> {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let ConvState { x, weight, out, g, slots } = ops.state;
        let grad = contiguous(&grad).expect("conv2d backward: f32 gradient");
        let dims_x: [usize; 4] = x.layout().shape().dims();
        let [co, _, k, _]: [usize; 4] = weight.layout().shape().dims();
        let dims_y: [usize; 4] = grad.layout().shape().dims();
        let mut dy = grad.as_slice::<f32>().expect("conv2d backward: gradient values").to_vec();
        if let Some(out) = out {
            let out = out.as_slice::<f32>().expect("conv2d backward: output values");
            dy.par_iter_mut().zip(out.par_iter()).for_each(|(d, &o)| {
                if o <= 0.0 {
                    *d = 0.0;
                }
            });
        }
        let x_data = x.as_slice::<f32>().expect("conv2d backward: input values");
        let w_data = weight.as_slice::<f32>().expect("conv2d backward: kernel values");
        let [node_x, node_w, node_b] = slots.map(|slot| slot.and_then(|i| ops.parents[i].clone()));
        if let Some(node) = node_x {
            let gx = input_grad(&dy, dims_y, w_data, dims_x, k, g);
            grads.register::<Flex>(node.id, flex(gx, dims_x));
        }
        if let Some(node) = node_w {
            let gw = kernel_grad(x_data, dims_x, &dy, dims_y, k, g);
            grads.register::<Flex>(node.id, flex(gw, [co, dims_x[1], k, k]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(bias_grad(&dy, dims_y), [co]));
        }
    }
}

/// Gradient of the input `[n, ci, h, w]` from the output gradient `dy` `[n, co, ho, wo]`.
pub(crate) fn input_grad(
    dy: &[f32],
    [n, co, ho, wo]: [usize; 4],
    weight: &[f32],
    [_, ci, h, w]: [usize; 4],
    k: usize,
    g: Geometry,
) -> Vec<f32> {
    // `[ci, co, k, k]`, flipped in both directions.
    let mut flipped = vec![0f32; weight.len()];
    flipped.par_chunks_mut(co * k * k).enumerate().for_each(|(c, dst)| {
        for o in 0..co {
            for t in 0..k * k {
                dst[o * k * k + k * k - 1 - t] = weight[(o * ci + c) * k * k + t];
            }
        }
    });
    let full = Geometry::same(k - 1, false);
    let (padded, [_, _, hp, wp]) = cpu_conv::conv2d_slices(dy, [n, co, ho, wo], &flipped, [ci, k], None, full);
    let [top, _, left, _] = g.pad;
    let rows = cpu_conv::source_index(hp, h, top, g);
    let cols = cpu_conv::source_index(wp, w, left, g);
    let mut gx = vec![0f32; n * ci * h * w];
    gx.par_chunks_mut(h * w).zip(padded.par_chunks(hp * wp)).for_each(|(dst, src)| {
        for (r, line) in src.chunks(wp).enumerate() {
            let Some(sr) = rows[r] else { continue };
            let dst = &mut dst[sr * w..(sr + 1) * w];
            for (c, v) in line.iter().enumerate() {
                if let Some(sc) = cols[c] {
                    dst[sc] += v;
                }
            }
        }
    });
    gx
}

/// Gradient of the kernel `[co, ci, k, k]` from the input and the output gradient.
pub(crate) fn kernel_grad(
    x: &[f32],
    [n, ci, h, w]: [usize; 4],
    dy: &[f32],
    [_, co, ho, wo]: [usize; 4],
    k: usize,
    g: Geometry,
) -> Vec<f32> {
    let [top, bottom, left, right] = g.pad;
    let (hp, wp) = (h + top + bottom, w + left + right);
    assert!(ho == hp + 1 - k && wo == wp + 1 - k, "conv2d backward: output {ho}×{wo} for input {hp}×{wp}, k {k}");
    let rows = cpu_conv::source_index(hp, h, top, g);
    let cols = cpu_conv::source_index(wp, w, left, g);
    let len = (hp * wp + k) * ci;
    let mut padded = vec![0f32; len];
    let nq = ho * wp;
    let mut wide = vec![0f32; co * nq];
    let depth = k * ci;
    // Per kernel row: `[co, (kw, ci)]`.
    let mut rows_grad = vec![0f32; k * co * depth];
    for sample in 0..n {
        let src = &x[sample * ci * h * w..(sample + 1) * ci * h * w];
        cpu_conv::fill_phases(&mut padded, src, ci, w, 1, (hp, wp, len), &rows, &cols);
        let grad = &dy[sample * co * ho * wo..(sample + 1) * co * ho * wo];
        wide.par_chunks_mut(nq).zip(grad.par_chunks(ho * wo)).for_each(|(dst, src)| {
            for (line, from) in dst.chunks_mut(wp).zip(src.chunks(wo)) {
                line[..wo].copy_from_slice(from);
                line[wo..].fill(0.0);
            }
        });
        for (kh, dst) in rows_grad.chunks_mut(co * depth).enumerate() {
            let input = &padded[kh * wp * ci..];
            assert!(input.len() >= (nq - 1) * ci + depth, "kernel_grad: reads past the input");
            // SAFETY: `dst` holds `co·depth` values written at `o·depth + j` (o < co, j < depth);
            // `wide` holds `co·nq` values read at `o·nq + q`; `input` is read at `q·ci + j` for
            // q < nq, j < depth, bounded by the assert above.
            unsafe {
                gemm::gemm(
                    co,
                    depth,
                    nq,
                    dst.as_mut_ptr(),
                    1,
                    depth as isize,
                    sample > 0,
                    wide.as_ptr(),
                    1,
                    nq as isize,
                    input.as_ptr(),
                    1,
                    ci as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                );
            }
        }
    }
    let mut gw = vec![0f32; co * ci * k * k];
    gw.par_chunks_mut(ci * k * k).enumerate().for_each(|(o, dst)| {
        for c in 0..ci {
            for kh in 0..k {
                for kw in 0..k {
                    dst[(c * k + kh) * k + kw] = rows_grad[(kh * co + o) * depth + kw * ci + c];
                }
            }
        }
    });
    gw
}

/// Gradient of the bias: the output gradient summed over samples and pixels, per channel.
fn bias_grad(dy: &[f32], [n, co, ho, wo]: [usize; 4]) -> Vec<f32> {
    (0..co)
        .into_par_iter()
        .map(|o| {
            let total: f64 = (0..n)
                .map(|s| dy[(s * co + o) * ho * wo..][..ho * wo].iter().map(|&v| v as f64).sum::<f64>())
                .sum();
            total as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::{ConvOptions, PadMode};
    use burn::tensor::{Device, Distribution, activation};

    use super::*;

    /// burn's convolution with the same geometry, on the same autodiff tensors.
    fn reference(x: Tensor<4>, w: Tensor<4>, b: Option<Tensor<1>>, g: Geometry) -> Tensor<4> {
        let [t, bo, l, r] = g.pad;
        let mode = if g.reflect { PadMode::Reflect } else { PadMode::Constant(0.0) };
        let x = x.pad([(t, bo), (l, r)], mode);
        let y = burn_conv2d(x, w, b, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        if g.relu { activation::relu(y) } else { y }
    }

    fn max_rel(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-6);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    fn check(n: usize, ci: usize, co: usize, k: usize, hw: [usize; 2], g: Geometry, bias: bool) {
        let ad = Device::flex().autodiff();
        let x = Tensor::<4>::random([n, ci, hw[0], hw[1]], Distribution::Normal(0.0, 1.0), &ad);
        let w = Tensor::<4>::random([co, ci, k, k], Distribution::Normal(0.0, 0.3), &ad);
        let b = Tensor::<1>::random([co], Distribution::Normal(0.0, 0.3), &ad);
        // A loss whose gradient differs per output element.
        let probe = Tensor::<4>::random([n, co, 1, 1], Distribution::Normal(0.0, 1.0), &ad);
        let run = |ours: bool| {
            let (x, w, b) = (x.clone().require_grad(), w.clone().require_grad(), b.clone().require_grad());
            let b_in = bias.then(|| b.clone());
            let y = if ours {
                conv2d(&x, &w, b_in.as_ref(), g).expect("autodiff flex tensors take the fast path")
            } else {
                reference(x.clone(), w.clone(), b_in, g)
            };
            let loss = (y.clone() * y.clone() * probe.clone() + y.clone()).sum();
            let grads = loss.backward();
            let gb = bias.then(|| b.grad(&grads).expect("bias gradient"));
            (y.without_autodiff(), x.grad(&grads).expect("input gradient"), w.grad(&grads).expect("kernel gradient"), gb)
        };
        let (y1, gx1, gw1, gb1) = run(true);
        let (y2, gx2, gw2, gb2) = run(false);
        let what = format!("n{n} ci{ci} co{co} k{k} {hw:?} {g:?}");
        assert!(max_rel(y1, y2) < 1e-5, "output {what}");
        assert!(max_rel(gx1, gx2) < 1e-5, "input gradient {what}");
        assert!(max_rel(gw1, gw2) < 1e-5, "kernel gradient {what}");
        if let (Some(a), Some(b)) = (gb1, gb2) {
            let scale = b.clone().abs().max().into_scalar::<f32>();
            assert!((a - b).abs().max().into_scalar::<f32>() / scale < 1e-5, "bias gradient {what}");
        }
    }

    #[test]
    fn gradients_match_burn() {
        let zero = |p| Geometry::same(p, false);
        let reflect = |p| Geometry::same(p, true);
        check(1, 8, 16, 3, [9, 11], zero(1), true);
        check(2, 70, 12, 3, [6, 7], reflect(1), true);
        check(1, 3, 32, 7, [12, 10], reflect(3), true);
        check(1, 32, 3, 7, [10, 12], reflect(3), false);
        check(1, 16, 8, 3, [8, 8], Geometry { relu: true, ..zero(1) }, true);
        check(1, 5, 6, 4, [9, 9], Geometry { pad: [1, 2, 2, 1], ..zero(0) }, false);
        check(1, 4, 4, 1, [5, 6], zero(0), true);
    }

    #[test]
    fn frozen_plain_kernels_give_the_input_gradient() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let x = Tensor::<4>::random([1, 12, 9, 10], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let w = Tensor::<4>::random([20, 12, 3, 3], Distribution::Normal(0.0, 0.3), &device);
        let b = Tensor::<1>::random([20], Distribution::Normal(0.0, 0.3), &device);
        let g = Geometry { relu: true, ..Geometry::same(1, true) };
        let grad = |y: Tensor<4>| {
            let grads = (y.clone() * y).sum().backward();
            x.grad(&grads).expect("input gradient")
        };
        let ours = grad(conv2d(&x, &w, Some(&b), g).expect("an autodiff input takes the fast path"));
        let theirs = grad(reference(x.clone(), w.clone(), Some(b.clone()), g));
        assert!(max_rel(ours, theirs) < 1e-5);
    }

    #[test]
    fn plain_tensors_and_strides_are_declined() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([1, 2, 6, 6], &device);
        let w = Tensor::<4>::zeros([2, 2, 3, 3], &device);
        assert!(conv2d(&x, &w, None, Geometry::same(1, false)).is_none());
        let ad = device.autodiff();
        let (x, w) = (Tensor::<4>::zeros([1, 2, 6, 6], &ad), Tensor::<4>::zeros([2, 2, 3, 3], &ad));
        assert!(conv2d(&x, &w, None, Geometry { stride: 2, ..Geometry::same(1, false) }).is_none());
        assert!(conv2d(&x, &w, None, Geometry::same(1, false)).is_some());
    }
}
