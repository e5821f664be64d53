//! Convolutions and transposed convolutions on autodiff flex tensors, with [`cpu_conv`]'s
//! im2col-free kernels in both directions: custom operations on burn's autodiff graph.
//!
//! - Forward: [`cpu_conv`]'s convolution of the inner tensors.
//! - Input gradient (the transposed convolution): split by output phase (row and column mod the
//!   stride `s`), the gradient of the padded input is `s²` stride-1 "full" convolutions of the
//!   output gradient with the phase's taps, transposed (`[in, out]`) and flipped; the padding is
//!   then folded back (cropped for zeros, the mirrored rows and columns added onto the pixels
//!   they copy for reflection). At stride 1 that is one convolution with `k - 1` zeros of padding;
//!   with zero padding, `k - 1 - p` instead gives the unpadded input's gradient directly.
//! - Kernel gradient: per kernel row and column phase, one matrix product `dW[out, (kw, in)] =
//!   dY[out, q] · X[q, (kw, in)]` over the output's "wide" positions `q`, reading the padded NHWC
//!   phase planes in place through strides as the forward pass does.
//! - Bias gradient: the output gradient summed per channel.
//! - A fused ReLU keeps the output and masks the incoming gradient where it is not positive.
//! - A transposed convolution is the input gradient of the convolution with the same kernel, so
//!   its forward pass, input gradient and kernel gradient are the three functions above with the
//!   roles exchanged.
//!
//! burn's own route (im2col forward, im2col/col2im backward) stays in use for upsampling and
//! every other backend.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops};
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::cpu_autodiff::{flex, operand, parents, record, unpack};
use crate::kernels::cpu_conv::{self, Geometry};

/// [`cpu_conv::conv2d`] without upsampling, recorded on the autodiff graph, where the tensors
/// are flex `f32` ones and at least one of them is an autodiff tensor (plain ones, such as a
/// frozen network's kernels, are constants); `None` elsewhere.
pub fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, g: Geometry) -> Option<Tensor<4>> {
    if g.upsample || g.stride == 0 {
        return None;
    }
    let ((xs, ws, bs), [x_node, w_node, b_node]) = conv_operands(x, weight, bias)?;
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

/// PyTorch's `ConvTranspose2d` of `x` `[n, ci, h, w]` with `weight` `[ci, co, k, k]`, stride
/// `s`, padding `p` and output padding `op ≤ p` (output side `(h - 1)·s - 2p + k + op`), on flex
/// `f32` tensors: plain ones, or with at least one autodiff tensor, recorded on the graph;
/// `None` elsewhere.
pub fn conv_transpose2d(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    [s, p, op]: [usize; 3],
) -> Option<Tensor<4>> {
    if s == 0 || op > p {
        return None;
    }
    let ((xs, ws, bs), [x_node, w_node, b_node]) = conv_operands(x, weight, bias)?;
    let dims_x: [usize; 4] = xs.layout().shape().dims();
    let [n, ci, h, w] = dims_x;
    let [wci, co, k, k2]: [usize; 4] = ws.layout().shape().dims();
    assert!(wci == ci && k == k2, "conv_transpose2d: kernel {:?} for input {dims_x:?}", [wci, co, k, k2]);
    let (ho, wo) = (((h - 1) * s + k + op).checked_sub(2 * p)?, ((w - 1) * s + k + op).checked_sub(2 * p)?);
    if ho == 0 || wo == 0 || h == 0 || w == 0 {
        return None;
    }
    // The convolution it transposes: `weight` as `[out = ci, in = co]`, from `[co, ho, wo]`
    // padded by `p` (less `op` at the end) to `[ci, h, w]`.
    let g = Geometry { stride: s, pad: [p, p - op, p, p - op], reflect: false, upsample: false, relu: false };
    let x_data = xs.as_slice::<f32>()?;
    let w_data = ws.as_slice::<f32>()?;
    let mut y = input_grad(x_data, dims_x, w_data, [n, co, ho, wo], k, g);
    if let Some(b) = &bs {
        let b = b.as_slice::<f32>()?;
        y.par_chunks_mut(ho * wo).enumerate().for_each(|(i, plane)| {
            let v = b[i % co];
            plane.iter_mut().for_each(|y| *y += v);
        });
    }
    let out = flex(y, [n, co, ho, wo]);
    let (nodes, slots) = parents([x_node, w_node, b_node]);
    let state = ConvState { x: xs, weight: ws, out: None, g, slots };
    Some(match nodes.len() {
        0 => Tensor::from_primitive::<Flex>(out),
        1 => record::<_, 1>(TransposeBackward::<1>, nodes, state, out),
        2 => record::<_, 2>(TransposeBackward::<2>, nodes, state, out),
        _ => record::<_, 3>(TransposeBackward::<3>, nodes, state, out),
    })
}

/// The transposed convolution's backward step over its `N` tracked operands: the input gradient
/// is the convolution it transposes applied to the output gradient, the kernel gradient that
/// convolution's kernel gradient with the two exchanged.
#[derive(Debug)]
struct TransposeBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for TransposeBackward<N> {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (grad, ConvState { x, weight, g, slots, .. }, parents) = unpack(ops, grads, "conv_transpose2d");
        let dims_x: [usize; 4] = x.layout().shape().dims();
        let [ci, co, k, _]: [usize; 4] = weight.layout().shape().dims();
        let dims_y: [usize; 4] = grad.layout().shape().dims();
        let dy = grad.as_slice::<f32>().expect("conv_transpose2d backward: gradient values");
        let x_data = x.as_slice::<f32>().expect("conv_transpose2d backward: input values");
        let w_data = weight.as_slice::<f32>().expect("conv_transpose2d backward: kernel values");
        let [node_x, node_w, node_b] = slots.map(|slot| slot.and_then(|i| parents[i]));
        if let Some(node) = node_x {
            let (gx, dims) = cpu_conv::conv2d_slices(dy, dims_y, w_data, [ci, k], None, g);
            assert_eq!(dims, dims_x, "conv_transpose2d backward: input gradient shape");
            grads.register::<Flex>(node, flex(gx, dims_x));
        }
        if let Some(node) = node_w {
            let gw = kernel_grad(dy, dims_y, x_data, dims_x, k, g);
            grads.register::<Flex>(node, flex(gw, [ci, co, k, k]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node, flex(bias_grad(dy, dims_y), [co]));
        }
    }
}

/// The contiguous values of a convolution's input, kernel and optional bias, and the graph node
/// of each that is an autodiff tensor.
#[allow(clippy::type_complexity)]
fn conv_operands(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
) -> Option<((FlexTensor, FlexTensor, Option<FlexTensor>), [Option<NodeGuard>; 3])> {
    let (xs, x_node) = operand(x)?;
    let (ws, w_node) = operand(weight)?;
    let (bs, b_node) = match bias {
        Some(b) => {
            let (values, node) = operand(b)?;
            (Some(values), node)
        }
        None => (None, None),
    };
    Some(((xs, ws, bs), [x_node, w_node, b_node]))
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
        let (grad, ConvState { x, weight, out, g, slots }, parents) = unpack(ops, grads, "conv2d");
        let dims_x: [usize; 4] = x.layout().shape().dims();
        let [co, _, k, _]: [usize; 4] = weight.layout().shape().dims();
        let dims_y: [usize; 4] = grad.layout().shape().dims();
        let incoming = grad.as_slice::<f32>().expect("conv2d backward: gradient values");
        let masked: Vec<f32>;
        let dy = match out {
            Some(out) => {
                let out = out.as_slice::<f32>().expect("conv2d backward: output values");
                masked = incoming.par_iter().zip(out.par_iter()).map(|(&d, &o)| if o > 0.0 { d } else { 0.0 }).collect();
                &masked[..]
            }
            None => incoming,
        };
        let x_data = x.as_slice::<f32>().expect("conv2d backward: input values");
        let w_data = weight.as_slice::<f32>().expect("conv2d backward: kernel values");
        let [node_x, node_w, node_b] = slots.map(|slot| slot.and_then(|i| parents[i]));
        if let Some(node) = node_x {
            let gx = input_grad(dy, dims_y, w_data, dims_x, k, g);
            grads.register::<Flex>(node, flex(gx, dims_x));
        }
        if let Some(node) = node_w {
            let gw = kernel_grad(x_data, dims_x, dy, dims_y, k, g);
            grads.register::<Flex>(node, flex(gw, [co, dims_x[1], k, k]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node, flex(bias_grad(dy, dims_y), [co]));
        }
    }
}

/// Gradient of the input `[n, ci, h, w]` from the output gradient `dy` `[n, co, ho, wo]`.
pub(crate) fn input_grad(
    dy: &[f32],
    dims_y: [usize; 4],
    weight: &[f32],
    [_, ci, h, w]: [usize; 4],
    k: usize,
    g: Geometry,
) -> Vec<f32> {
    let [top, bottom, left, right] = g.pad;
    if g.stride == 1 && !g.reflect && g.pad.iter().all(|&p| p < k) {
        // Zero padding: the full convolution's padding less the forward padding gives the
        // unpadded input's gradient directly.
        let flipped = flipped_transposed(weight, dims_y[1], ci, k);
        let pad = g.pad.map(|p| k - 1 - p);
        let direct = Geometry { pad, ..Geometry::same(0, false) };
        let (gx, dims) = cpu_conv::conv2d_slices(dy, dims_y, &flipped, [ci, k], None, direct);
        assert_eq!(dims, [dims_y[0], ci, h, w], "conv2d backward: input gradient shape");
        return gx;
    }
    let (hp, wp) = (h + top + bottom, w + left + right);
    let padded = padded_input_grad(dy, dims_y, weight, [ci, k, g.stride], [hp, wp]);
    let rows = cpu_conv::source_index(hp, h, top, g);
    let cols = cpu_conv::source_index(wp, w, left, g);
    let mut gx = vec![0f32; dims_y[0] * ci * h * w];
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

/// The kernel `[co, ci, k, k]` transposed to `[ci, co, k, k]` and flipped in both directions.
fn flipped_transposed(weight: &[f32], co: usize, ci: usize, k: usize) -> Vec<f32> {
    let mut flipped = vec![0f32; weight.len()];
    flipped.par_chunks_mut(co * k * k).enumerate().for_each(|(c, dst)| {
        for o in 0..co {
            for t in 0..k * k {
                dst[o * k * k + k * k - 1 - t] = weight[(o * ci + c) * k * k + t];
            }
        }
    });
    flipped
}

/// Gradient of the padded input `[n, ci, hp, wp]` of a stride-`s` convolution with `weight`
/// `[co, ci, k, k]` from its output gradient (the transposed convolution of `dy`). At stride 1,
/// one full convolution of `dy` with the kernel transposed and flipped; at larger strides, one
/// matrix product `C[(ci, kh, kw), q] = Wᵀ · dY[co, q]` whose columns are added onto the windows
/// they came from (col2im: each input pixel then sums at most `⌈k/s⌉²` terms).
fn padded_input_grad(
    dy: &[f32],
    [n, co, ho, wo]: [usize; 4],
    weight: &[f32],
    [ci, k, s]: [usize; 3],
    [hp, wp]: [usize; 2],
) -> Vec<f32> {
    if s == 1 {
        let flipped = flipped_transposed(weight, co, ci, k);
        let full = Geometry::same(k - 1, false);
        let (padded, dims) = cpu_conv::conv2d_slices(dy, [n, co, ho, wo], &flipped, [ci, k], None, full);
        assert_eq!(dims, [n, ci, hp, wp], "conv2d backward: padded input shape");
        return padded;
    }
    let (m, q) = (ci * k * k, ho * wo);
    let mut columns = vec![0f32; m * q];
    let mut padded = vec![0f32; n * ci * hp * wp];
    for sample in 0..n {
        let grad = &dy[sample * co * q..(sample + 1) * co * q];
        cpu_conv::matmul([m, q, co], (&mut columns, 1, q), (weight, m, 1), (grad, 1, q), false);
        let dst = &mut padded[sample * ci * hp * wp..(sample + 1) * ci * hp * wp];
        dst.par_chunks_mut(hp * wp).zip(columns.par_chunks(k * k * q)).for_each(|(plane, taps)| {
            for (t, column) in taps.chunks(q).enumerate() {
                let (kh, kw) = (t / k, t % k);
                for (y, line) in column.chunks(wo).enumerate() {
                    let row = &mut plane[(s * y + kh) * wp..];
                    for (x, v) in line.iter().enumerate() {
                        row[s * x + kw] += v;
                    }
                }
            }
        });
    }
    padded
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
    let s = g.stride;
    let [top, bottom, left, right] = g.pad;
    let (hp, wp) = (h + top + bottom, w + left + right);
    assert!(
        ho == (hp - k) / s + 1 && wo == (wp - k) / s + 1,
        "conv2d backward: output {ho}×{wo} for input {hp}×{wp}, k {k}, stride {s}"
    );
    let rows = cpu_conv::source_index(hp, h, top, g);
    let cols = cpu_conv::source_index(wp, w, left, g);
    // Phase planes, as the forward pass lays them out.
    let (hq, wq) = (hp.div_ceil(s), wp.div_ceil(s));
    let phase_len = (hq * wq + k.div_ceil(s)) * ci;
    let mut padded = vec![0f32; s * s * phase_len];
    let nq = ho * wq;
    let mut wide = vec![0f32; co * nq];
    // Per kernel row and column phase b: `[co, (j, ci)]` for the taps kw = b + s·j.
    let groups: Vec<(usize, usize, usize)> =
        (0..k).flat_map(|kh| (0..s.min(k)).map(move |b| (kh, b, (k - b).div_ceil(s)))).collect();
    let mut offsets = Vec::with_capacity(groups.len());
    let mut total = 0;
    for &(_, _, taps) in &groups {
        offsets.push(total);
        total += co * taps * ci;
    }
    let mut sums = vec![0f32; total];
    for sample in 0..n {
        let src = &x[sample * ci * h * w..(sample + 1) * ci * h * w];
        cpu_conv::fill_phases(&mut padded, src, ci, w, s, (hq, wq, phase_len), &rows, &cols);
        let grad = &dy[sample * co * ho * wo..(sample + 1) * co * ho * wo];
        wide.par_chunks_mut(nq).zip(grad.par_chunks(ho * wo)).for_each(|(dst, src)| {
            for (line, from) in dst.chunks_mut(wq).zip(src.chunks(wo)) {
                line[..wo].copy_from_slice(from);
                line[wo..].fill(0.0);
            }
        });
        for (&(kh, b, taps), &offset) in groups.iter().zip(&offsets) {
            let depth = taps * ci;
            let phase = (kh % s) * s + b;
            let start = phase * phase_len + (kh / s) * wq * ci;
            let input = &padded[start..(phase + 1) * phase_len];
            let dst = &mut sums[offset..offset + co * depth];
            cpu_conv::matmul([co, depth, nq], (dst, 1, depth), (&wide, 1, nq), (input, 1, ci), sample > 0);
        }
    }
    let mut gw = vec![0f32; co * ci * k * k];
    gw.par_chunks_mut(ci * k * k).enumerate().for_each(|(o, dst)| {
        for (&(kh, b, taps), &offset) in groups.iter().zip(&offsets) {
            let depth = taps * ci;
            for j in 0..taps {
                let kw = b + s * j;
                for c in 0..ci {
                    dst[(c * k + kh) * k + kw] = sums[offset + o * depth + j * ci + c];
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
        let y = burn_conv2d(x, w, b, ConvOptions::new([g.stride; 2], [0, 0], [1, 1], 1));
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
        check(1, 8, 12, 3, [9, 10], Geometry { stride: 2, ..zero(1) }, true);
        check(2, 5, 7, 3, [8, 8], Geometry { stride: 2, ..reflect(1) }, true);
        check(1, 4, 6, 4, [11, 9], Geometry { stride: 3, ..zero(1) }, false);
        check(1, 70, 16, 3, [6, 7], Geometry { stride: 2, ..zero(1) }, true);
    }

    #[test]
    fn transposed_convolutions_match_burn() {
        use burn::tensor::module::conv_transpose2d as burn_conv_transpose2d;
        use burn::tensor::ops::ConvTransposeOptions;
        let device = Device::flex();
        let ad = device.clone().autodiff();
        for (ci, co, k, [s, p, op], hw) in [(6, 5, 3, [2, 1, 1], [5, 6]), (4, 7, 4, [2, 1, 0], [4, 5]), (5, 3, 3, [1, 1, 0], [6, 4]), (3, 4, 3, [3, 1, 1], [3, 4])] {
            let x = Tensor::<4>::random([2, ci, hw[0], hw[1]], Distribution::Normal(0.0, 1.0), &ad).require_grad();
            let w = Tensor::<4>::random([ci, co, k, k], Distribution::Normal(0.0, 0.3), &ad).require_grad();
            let b = Tensor::<1>::random([co], Distribution::Normal(0.0, 0.3), &ad).require_grad();
            let options = ConvTransposeOptions::new([s, s], [p, p], [op, op], [1, 1], 1);
            let theirs = burn_conv_transpose2d(x.clone(), w.clone(), Some(b.clone()), options.clone());
            let probe = Tensor::<4>::random(theirs.dims(), Distribution::Normal(0.0, 1.0), &ad);
            let grads_of = |y: Tensor<4>| {
                let grads = (y * probe.clone()).sum().backward();
                [x.grad(&grads).unwrap(), w.grad(&grads).unwrap(), b.grad(&grads).unwrap().reshape([1, 1, 1, co])]
            };
            let ours = conv_transpose2d(&x, &w, Some(&b), [s, p, op]).expect("autodiff flex tensors");
            let what = format!("ci{ci} co{co} k{k} s{s} p{p} op{op}");
            assert!(max_rel(ours.clone().without_autodiff(), theirs.clone().without_autodiff()) < 1e-5, "output {what}");
            for (i, (a, b)) in grads_of(ours).into_iter().zip(grads_of(theirs)).enumerate() {
                assert!(max_rel(a, b) < 1e-5, "gradient {i} {what}");
            }
            // Plain tensors: inference without the graph.
            let plain = |t: &Tensor<4>| t.clone().without_autodiff();
            let bp = b.clone().without_autodiff();
            let ours = conv_transpose2d(&plain(&x), &plain(&w), Some(&bp), [s, p, op]).expect("plain flex tensors");
            let theirs = burn_conv_transpose2d(plain(&x), plain(&w), Some(bp), options);
            assert!(max_rel(ours, theirs) < 1e-5, "plain output {what}");
        }
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
    fn plain_tensors_and_upsampling_are_declined() {
        let device = Device::flex();
        let x = Tensor::<4>::zeros([1, 2, 6, 6], &device);
        let w = Tensor::<4>::zeros([2, 2, 3, 3], &device);
        assert!(conv2d(&x, &w, None, Geometry::same(1, false)).is_none());
        let ad = device.autodiff();
        let (x, w) = (Tensor::<4>::zeros([1, 2, 6, 6], &ad), Tensor::<4>::zeros([2, 2, 3, 3], &ad));
        assert!(conv2d(&x, &w, None, Geometry { upsample: true, ..Geometry::same(1, false) }).is_none());
        assert!(conv2d(&x, &w, None, Geometry::same(1, false)).is_some());
    }
}
