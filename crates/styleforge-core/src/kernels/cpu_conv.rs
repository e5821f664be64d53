//! Convolutions for inference on the flex CPU backend, computed without im2col.
//!
//! The input is copied once into a padded NHWC buffer (the padding, reflection or zero, and an
//! optional nearest ×2 upsampling are folded into that copy). At stride 1, the values a kernel
//! window needs from kernel row `kh` at output position `q` are then `k·C` consecutive floats
//! starting at `((q_row + kh)·Wp + q_col)·C`, so the convolution is `k` matrix products that read
//! the buffer in place through strides: `out[co, q] += W_kh[co, (kw, ci)] · X[(kw, ci), q]`, with
//! `q` running over `Ho × Wp` "wide" positions whose surplus columns are dropped afterwards.
//! At stride `s` the buffer is stored as `s × s` phase planes (rows and columns split by their
//! remainder mod `s`), which turns the strided windows into the same consecutive runs: one
//! product per kernel row and column phase. burn's generic route instead writes `k²` copies of
//! the input (im2col) before its product.
//!
//! For inference, [`conv2d`] hands most layers with kernels larger than 1×1 to
//! [`crate::kernels::cpu_direct`] (computed directly, without products) and 1×1 layers to one
//! product on the NCHW values; the products here serve the wider layers, the nearest-upsampled
//! 3×3 layers and the autodiff operations (`cpu_conv_grad`).
//!
//! Used only on plain flex `f32` tensors (no autodiff); [`conv2d`] returns `None` elsewhere
//! and the caller falls back to burn's convolution.

use burn::backend::Flex;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::cpu_direct;
use crate::kernels::cpu_simd::vectorized;

/// The geometry of a convolution: stride, padding and an optional upsampling of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Stride in both directions.
    pub stride: usize,
    /// Padding `[top, bottom, left, right]`.
    pub pad: [usize; 4],
    /// Reflection padding (PyTorch `ReflectionPad2d`) rather than zeros.
    pub reflect: bool,
    /// Nearest ×2 upsampling of the input before padding.
    pub upsample: bool,
    /// A ReLU on the result, applied in the output pass.
    pub relu: bool,
}

impl Geometry {
    /// Stride 1 with `p` pixels of padding on every side.
    pub fn same(p: usize, reflect: bool) -> Self {
        Self { stride: 1, pad: [p; 4], reflect, upsample: false, relu: false }
    }
}

/// A convolution of `x` `[N, C, H, W]` with `weight` `[O, C, k, k]` and an optional bias, with the
/// given geometry; `None` unless the tensors are plain flex `f32` tensors.
///
/// Kernels larger than 1×1 with at most [`cpu_direct::dense_inputs`] input channels or at most 4
/// outputs (except the nearest-upsampled 3×3 layers, folded into 2×2 kernels) are computed by
/// [`cpu_direct`], and unpadded 1×1 layers as one product on the NCHW values; the rest as the
/// products of this module. The autodiff operations of `cpu_conv_grad` call those products
/// directly, so their rounding (which decides which near-zero ReLU inputs pass a gradient) does
/// not depend on these inference routes.
pub fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, g: Geometry) -> Option<Tensor<4>> {
    let (xs, ws, bs) = flex_operands(x, weight, bias)?;
    let dims: [usize; 4] = xs.layout().shape().dims();
    let [co, ci, k, k2]: [usize; 4] = ws.layout().shape().dims();
    let nearest_3x3 = g.upsample && g.stride == 1 && k == 3 && g.pad == [1; 4];
    if ci == dims[1] && k == k2 {
        let (x_data, w_data) = (xs.as_slice::<f32>()?, ws.as_slice::<f32>()?);
        let b_data = match &bs {
            Some(b) => Some(b.as_slice::<f32>()?),
            None => None,
        };
        let out = if k > 1 && !nearest_3x3 && (ci <= cpu_direct::dense_inputs() || co <= 4) {
            cpu_direct::direct(x_data, dims, w_data, [co, ci, k], b_data, g)
        } else if k == 1 && g.stride == 1 && g.pad == [0; 4] && !g.upsample {
            let [n, _, h, w] = dims;
            Some((pointwise(x_data, [n, ci, h * w], w_data, co, b_data, g.relu), [n, co, h, w]))
        } else {
            None
        };
        if let Some((out, dims)) = out {
            return Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(out, dims))));
        }
    }
    let out = conv2d_flex(&xs, &ws, bs.as_ref(), g)?;
    Some(Tensor::from_primitive::<Flex>(out))
}

/// A 1×1 convolution without padding of `[n, ci, hw]` data: per sample, one product
/// `[co, ci] × [ci, hw]` on the NCHW values in place, then the bias and ReLU.
fn pointwise(x: &[f32], [n, ci, hw]: [usize; 3], weight: &[f32], co: usize, bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    let len = n * co * hw;
    if hw == 0 || co == 0 || ci == 0 {
        return vec![0f32; len];
    }
    // The product writes every output value, so the buffer is not zeroed first (a pass over
    // memory as large as the output).
    let mut out: Vec<f32> = Vec::with_capacity(len);
    for (dst, src) in out.spare_capacity_mut()[..len].chunks_exact_mut(co * hw).zip(x.chunks_exact(ci * hw)) {
        matmul_into([co, hw, ci], (dst, 1, hw), (weight, 1, ci), (src, 1, hw));
    }
    // SAFETY: `matmul_into` wrote all `co × hw` values of each of the `n` samples.
    unsafe { out.set_len(len) };
    for dst in out.chunks_exact_mut(co * hw) {
        if bias.is_some() || relu {
            dst.par_chunks_mut(hw).enumerate().for_each(|(o, plane)| {
                let b = bias.map_or(0.0, |b| b[o]);
                vectorized(
                    #[inline(always)]
                    || {
                        for v in plane.iter_mut() {
                            *v = epilogue(*v + b, relu);
                        }
                    },
                )
            });
        }
    }
    out
}

/// [`conv2d`] on contiguous flex `f32` primitives; `None` if one is not.
pub(crate) fn conv2d_flex(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>, g: Geometry) -> Option<FlexTensor> {
    let [n, ci, h, w]: [usize; 4] = x.layout().shape().dims();
    let [co, wci, k, k2]: [usize; 4] = weight.layout().shape().dims();
    assert!(wci == ci && k == k2, "conv2d: kernel {:?} for input {:?}", [co, wci, k, k2], [n, ci, h, w]);
    let x_data = x.as_slice::<f32>()?;
    let w_data = weight.as_slice::<f32>()?;
    let b_data = match bias {
        Some(b) => Some(b.as_slice::<f32>()?),
        None => None,
    };
    let (out, dims) = conv2d_slices(x_data, [n, ci, h, w], w_data, [co, k], b_data, g);
    Some(FlexTensor::from_data(TensorData::new(out, dims)))
}

/// The convolution on raw NCHW data: `x` `[n, ci, h, w]`, `weight` `[co, ci, k, k]`; returns the
/// output values and their shape.
pub(crate) fn conv2d_slices(
    x_data: &[f32],
    [n, ci, h, w]: [usize; 4],
    w_data: &[f32],
    [co, k]: [usize; 2],
    b_data: Option<&[f32]>,
    g: Geometry,
) -> (Vec<f32>, [usize; 4]) {
    assert_eq!(x_data.len(), n * ci * h * w, "conv2d: input length");
    assert_eq!(w_data.len(), co * ci * k * k, "conv2d: kernel length");
    if g.upsample && g.stride == 1 && k == 3 && g.pad == [1; 4] {
        let out = upsampled_3x3(x_data, [n, ci, h, w], w_data, co, b_data, g.reflect, g.relu);
        return (out, [n, co, 2 * h, 2 * w]);
    }
    let s = g.stride;
    assert!(s >= 1, "conv2d: stride 0");
    let (h2, w2) = if g.upsample { (2 * h, 2 * w) } else { (h, w) };
    let [top, bottom, left, right] = g.pad;
    let (hp, wp) = (h2 + top + bottom, w2 + left + right);
    assert!(hp >= k && wp >= k, "conv2d: kernel {k} larger than the padded input {hp}×{wp}");
    if g.reflect {
        assert!(
            g.pad.iter().all(|&p| p < h2.min(w2)),
            "conv2d: reflection of {:?} needs more than {h2}×{w2} pixels",
            g.pad
        );
    }
    let (ho, wo) = ((hp - k) / s + 1, (wp - k) / s + 1);
    // Phase planes: rows (and columns) r, r+s, r+2s... of the padded input.
    let (hq, wq) = (hp.div_ceil(s), wp.div_ceil(s));
    let slack = k.div_ceil(s);
    let phase_len = (hq * wq + slack) * ci;
    let rows = source_index(hp, h2, top, g);
    let cols = source_index(wp, w2, left, g);

    if s == 1 && co <= 4 && k >= 3 {
        let geometry = ((hp, wp), (&rows[..], &cols[..]));
        let mut out = shifted_sums(x_data, [n, ci, h, w], w_data, co, k, b_data, geometry, SHIFT_SUM_VALUES);
        if g.relu {
            out.par_iter_mut().for_each(|v| *v = v.max(0.0));
        }
        return (out, [n, co, ho, wo]);
    }
    let (packed, runs) = pack_weight(w_data, co, ci, k, s);
    let nq = ho * wq;
    let mut out = vec![0f32; n * co * ho * wo];
    let mut wide = vec![0f32; co * nq];
    let mut padded = vec![0f32; s * s * phase_len];
    let mut patches = Vec::new();
    for sample in 0..n {
        let src = &x_data[sample * ci * h * w..(sample + 1) * ci * h * w];
        fill_phases(&mut padded, src, ci, w, s, (hq, wq, phase_len), &rows, &cols);
        if s == 1 && ci * k < PATCH_DEPTH {
            // Shallow runs: gather whole k×k windows (strips of im2col rows) for one deep product.
            let depth = k * k * ci;
            let strip = (PATCH_VALUES / depth).clamp(1, nq);
            patches.resize(strip * depth, 0.0);
            for q0 in (0..nq).step_by(strip) {
                let len = strip.min(nq - q0);
                patches[..len * depth].par_chunks_mut(depth).enumerate().for_each(|(i, row)| {
                    for (kh, part) in row.chunks_mut(k * ci).enumerate() {
                        let at = (q0 + i + kh * wq) * ci;
                        part.copy_from_slice(&padded[at..at + k * ci]);
                    }
                });
                accumulate((&mut wide[q0..], nq), co, len, depth, &packed, (&patches, depth), true);
            }
        } else {
            for (i, run) in runs.iter().enumerate() {
                let phase = (run.kh % s) * s + run.kw0 % s;
                let start = phase * phase_len + ((run.kh / s) * wq + run.kw0 / s) * ci;
                let input = &padded[start..phase_len * (phase + 1)];
                let weights = &packed[run.offset..];
                accumulate((&mut wide, nq), co, nq, run.taps * ci, weights, (input, ci), i == 0);
            }
        }
        let dst = &mut out[sample * co * ho * wo..(sample + 1) * co * ho * wo];
        dst.par_chunks_mut(ho * wo).enumerate().for_each(|(o, plane)| {
            let b = b_data.map_or(0.0, |b| b[o]);
            let src = &wide[o * nq..(o + 1) * nq];
            for (row, line) in plane.chunks_mut(wo).enumerate() {
                for (d, v) in line.iter_mut().zip(&src[row * wq..row * wq + wo]) {
                    *d = epilogue(v + b, g.relu);
                }
            }
        });
    }
    (out, [n, co, ho, wo])
}

/// `dst[o·dst_stride + q] (+)= Σ_d weights[d·co + o] · x[q·x_stride + d]` for `o < co`,
/// `q < nq`, `d < depth`: one matrix product reading the NHWC buffer `x` in place (overwriting
/// `dst` when `first`).
#[allow(clippy::too_many_arguments)]
fn accumulate(
    (dst, dst_stride): (&mut [f32], usize),
    co: usize,
    nq: usize,
    depth: usize,
    weights: &[f32],
    (x, x_stride): (&[f32], usize),
    first: bool,
) {
    matmul([co, nq, depth], (dst, 1, dst_stride), (weights, co, 1), (x, x_stride, 1), !first);
}

/// `dst (+)= lhs · rhs` (added to `dst` when `accumulate`) for an `m × k` left and a `k × n` right
/// operand, each operand given as (values, column stride, row stride): element `(i, j)` is at
/// `i·row_stride + j·column_stride`. Every index is checked to lie within its slice, and the
/// output's elements to be distinct; the product runs on rayon's threads.
pub(crate) fn matmul(
    dims: [usize; 3],
    (dst, dst_cs, dst_rs): (&mut [f32], usize, usize),
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    accumulate: bool,
) {
    // SAFETY: `dst` is initialised, so reading it (when accumulating) reads values.
    unsafe { gemm_checked(dims, (dst.as_mut_ptr(), dst.len(), dst_cs, dst_rs), lhs, rhs, accumulate) }
}

/// [`matmul`] into a buffer that need not be initialised: every element `(i, j)` of the `m × n`
/// output is written (zeros when `k = 0`), none is read. The caller may treat those elements as
/// initialised afterwards.
pub(crate) fn matmul_into(
    [m, n, k]: [usize; 3],
    (dst, dst_cs, dst_rs): (&mut [std::mem::MaybeUninit<f32>], usize, usize),
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
) {
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                dst[i * dst_rs + j * dst_cs].write(0.0);
            }
        }
        return;
    }
    // SAFETY: with `accumulate` false the product writes the output without reading it.
    unsafe { gemm_checked([m, n, k], (dst.as_mut_ptr().cast::<f32>(), dst.len(), dst_cs, dst_rs), lhs, rhs, false) }
}

/// The checked product behind [`matmul`] and [`matmul_into`].
///
/// # Safety
/// `dst` points to `dst_len` writable values; when `accumulate`, the output's elements are
/// initialised.
unsafe fn gemm_checked(
    [m, n, k]: [usize; 3],
    (dst, dst_len, dst_cs, dst_rs): (*mut f32, usize, usize, usize),
    (lhs, lhs_cs, lhs_rs): (&[f32], usize, usize),
    (rhs, rhs_cs, rhs_rs): (&[f32], usize, usize),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, cs: usize, rs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        (dst_cs == 1 && dst_rs >= n) || (dst_rs == 1 && dst_cs >= m),
        "matmul: output strides {dst_cs}/{dst_rs} overlap for {m}×{n}"
    );
    assert!(dst_len > last(m, n, dst_cs, dst_rs), "matmul: short output");
    if k > 0 {
        assert!(lhs.len() > last(m, k, lhs_cs, lhs_rs), "matmul: short left operand");
        assert!(rhs.len() > last(k, n, rhs_cs, rhs_rs), "matmul: short right operand");
    }
    // SAFETY: the asserts bound the last index each operand is read or written at (strides are
    // non-negative, so that is the largest), and the output strides map distinct `(i, j)` to
    // distinct elements, so the threads write disjoint values; the caller vouches for `dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// Nearest ×2 upsampling, one pixel of padding and a 3×3 convolution, computed on the
/// low-resolution input: each output pixel parity `(a, b)` sees a 2×2 kernel (the 3×3 taps that
/// land on the same input pixel summed), so the work is 4/9 of convolving the upsampled image.
/// Reflection of the upsampled image is replication of the input at this scale.
fn upsampled_3x3(
    x: &[f32],
    [n, ci, h, w]: [usize; 4],
    weight: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    reflect: bool,
    relu: bool,
) -> Vec<f32> {
    let (hp, wp) = (h + 2, w + 2);
    let edge = |i: usize, size: usize| match (i, reflect) {
        (0, true) => Some(0),
        (0, false) => None,
        (i, true) if i > size => Some(size - 1),
        (i, false) if i > size => None,
        (i, _) => Some(i - 1),
    };
    let rows: Vec<_> = (0..hp).map(|i| edge(i, h)).collect();
    let cols: Vec<_> = (0..wp).map(|i| edge(i, w)).collect();
    // Taps of the 3×3 kernel that parity `a` folds onto offset `d` (rows and columns alike).
    const FOLD: [[&[usize]; 2]; 2] = [[&[0], &[1, 2]], [&[0, 1], &[2]]];
    // Per (a, b, dy): a `[(dx, ci), co]` block.
    let mut packed = Vec::with_capacity(8 * 2 * ci * co);
    for a in 0..2 {
        for b in 0..2 {
            for dy in 0..2 {
                for dx in 0..2 {
                    for c in 0..ci {
                        packed.extend((0..co).map(|o| {
                            let at = |kh: usize, kw: usize| weight[((o * ci + c) * 3 + kh) * 3 + kw];
                            FOLD[a][dy].iter().flat_map(|&kh| FOLD[b][dx].iter().map(move |&kw| (kh, kw))).map(|(kh, kw)| at(kh, kw)).sum::<f32>()
                        }));
                    }
                }
            }
        }
    }
    let block = 2 * ci * co;
    let nq = h * wp;
    let (ho, wo) = (2 * h, 2 * w);
    let mut out = vec![0f32; n * co * ho * wo];
    let mut wide = vec![0f32; co * nq];
    let len = (hp * wp + 4) * ci;
    let mut padded = vec![0f32; len];
    for sample in 0..n {
        let src = &x[sample * ci * h * w..(sample + 1) * ci * h * w];
        fill_phases(&mut padded, src, ci, w, 1, (hp, wp, len), &rows, &cols);
        let dst = &mut out[sample * co * ho * wo..(sample + 1) * co * ho * wo];
        for a in 0..2 {
            for b in 0..2 {
                for dy in 0..2 {
                    let at = ((a * 2 + b) * 2 + dy) * block;
                    let start = ((a + dy) * wp + b) * ci;
                    accumulate((&mut wide, nq), co, nq, 2 * ci, &packed[at..at + block], (&padded[start..], ci), dy == 0);
                }
                dst.par_chunks_mut(ho * wo).enumerate().for_each(|(o, plane)| {
                    let bias = bias.map_or(0.0, |v| v[o]);
                    let src = &wide[o * nq..(o + 1) * nq];
                    for i in 0..h {
                        let line = &mut plane[(2 * i + a) * wo..(2 * i + a + 1) * wo];
                        for (j, v) in src[i * wp..i * wp + w].iter().enumerate() {
                            line[2 * j + b] = epilogue(v + bias, relu);
                        }
                    }
                });
            }
        }
    }
    out
}

/// A stride-1 convolution with few outputs and a kernel of 3×3 or more (the 9×9 and 7×7 layers
/// that end the style and CycleGAN generators, the image gradient of VGG's first layer): one
/// matrix product gives every tap's contribution at
/// every input pixel (`[k²·O, C] × [C, pixels]`, a shape the matrix kernels run at full speed),
/// and each output is the sum of its k² shifted tap planes. Runs in horizontal strips of
/// [`SHIFT_SUM_VALUES`] tap values. (Convolving directly would feed products only `O` wide.)
#[allow(clippy::too_many_arguments)]
fn shifted_sums(
    x: &[f32],
    [n, ci, h, w]: [usize; 4],
    weight: &[f32],
    co: usize,
    k: usize,
    bias: Option<&[f32]>,
    ((hp, wp), (rows, cols)): ((usize, usize), (&[Option<usize>], &[Option<usize>])),
    budget: usize,
) -> Vec<f32> {
    let (ho, wo) = (hp + 1 - k, wp + 1 - k);
    let taps = k * k * co;
    // `[C, (kh, kw, O)]`.
    let mut packed = vec![0f32; ci * taps];
    for o in 0..co {
        for c in 0..ci {
            for t in 0..k * k {
                packed[c * taps + t * co + o] = weight[(o * ci + c) * k * k + t];
            }
        }
    }
    let strip = (budget / (taps * wp)).saturating_sub(k - 1).clamp(1, ho);
    let len = (hp * wp + k) * ci;
    let mut padded = vec![0f32; len];
    let mut planes = vec![0f32; taps * ((strip + k - 1) * wp + k)];
    let mut out = vec![0f32; n * co * ho * wo];
    for sample in 0..n {
        let src = &x[sample * ci * h * w..(sample + 1) * ci * h * w];
        fill_phases(&mut padded, src, ci, w, 1, (hp, wp, len), rows, cols);
        let dst = &mut out[sample * co * ho * wo..(sample + 1) * co * ho * wo];
        for y0 in (0..ho).step_by(strip) {
            let y1 = (y0 + strip).min(ho);
            let np = (y1 - y0 + k - 1) * wp + k;
            let np = np.min(len / ci - y0 * wp);
            accumulate((&mut planes, np), taps, np, ci, &packed, (&padded[y0 * wp * ci..], ci), true);
            let planes = &planes[..taps * np];
            dst.par_chunks_mut(wo).enumerate().filter(|(i, _)| (y0..y1).contains(&(i % ho))).for_each(|(i, line)| {
                let (o, y) = (i / ho, i % ho - y0);
                line.fill(bias.map_or(0.0, |b| b[o]));
                for kh in 0..k {
                    for kw in 0..k {
                        let plane = &planes[((kh * k + kw) * co + o) * np..][..np];
                        let from = (y + kh) * wp + kw;
                        for (d, v) in line.iter_mut().zip(&plane[from..from + wo]) {
                            *d += v;
                        }
                    }
                }
            });
        }
    }
    out
}

/// Below this depth (`C·k`) a kernel row's product is too shallow to pay for re-reading its
/// output, and stride-1 convolutions gather whole windows instead (the RGB input layers).
pub const PATCH_DEPTH: usize = 64;

/// Most window values gathered at once for shallow layers (4 Mi floats, 16 MiB).
pub const PATCH_VALUES: usize = 4 << 20;

/// The output pass's optional ReLU.
#[inline(always)]
fn epilogue(v: f32, relu: bool) -> f32 {
    if relu { v.max(0.0) } else { v }
}

/// Most tap values [`shifted_sums`] holds at once (4 Mi floats, 16 MiB).
pub const SHIFT_SUM_VALUES: usize = 4 << 20;

/// The tensor's flex primitive in contiguous form, if it is a plain flex `f32` tensor.
pub(crate) fn flex_f32<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let prim = t.clone().try_into_primitive::<Flex>().ok()?;
    Some(if prim.is_contiguous() { prim } else { prim.to_contiguous() })
}

/// A convolution's input, kernel and optional bias as contiguous flex `f32` primitives; `None`
/// if one is not a plain flex `f32` tensor.
pub(crate) fn flex_operands(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
) -> Option<(FlexTensor, FlexTensor, Option<FlexTensor>)> {
    let bias = match bias {
        Some(b) => Some(flex_f32(b)?),
        None => None,
    };
    Some((flex_f32(x)?, flex_f32(weight)?, bias))
}

/// For each padded coordinate, the source coordinate in the unpadded (pre-upsampling) input, or
/// `None` for a zero.
pub(crate) fn source_index(padded: usize, size: usize, before: usize, g: Geometry) -> Vec<Option<usize>> {
    (0..padded)
        .map(|i| {
            let u = i as isize - before as isize;
            let u = if (0..size as isize).contains(&u) {
                u
            } else if g.reflect {
                if u < 0 { -u } else { 2 * (size as isize - 1) - u }
            } else {
                return None;
            };
            let u = u as usize;
            Some(if g.upsample { u / 2 } else { u })
        })
        .collect()
}

/// Kernel taps `kh, kw0, kw0 + s, ...` that one matrix product covers.
struct Run {
    kh: usize,
    kw0: usize,
    taps: usize,
    /// Where the run's `[(tap, ci), O]` block starts in the packed kernel.
    offset: usize,
}

/// Kernel `[O, C, k, k]` as one `[(tap, ci), O]` block per kernel row and column phase.
fn pack_weight(w: &[f32], co: usize, ci: usize, k: usize, s: usize) -> (Vec<f32>, Vec<Run>) {
    let mut packed = Vec::with_capacity(k * k * ci * co);
    let mut runs = Vec::new();
    for kh in 0..k {
        for kw0 in 0..s.min(k) {
            let taps = (kw0..k).step_by(s).count();
            runs.push(Run { kh, kw0, taps, offset: packed.len() });
            for kw in (kw0..k).step_by(s) {
                for c in 0..ci {
                    packed.extend((0..co).map(|o| w[((o * ci + c) * k + kh) * k + kw]));
                }
            }
        }
    }
    (packed, runs)
}

/// Writes one sample `[C, H, W]` into the `s × s` padded NHWC phase planes `[Hq, Wq, C]` (phase
/// `(a, b)` holds padded rows `a, a+s, ...` and columns `b, b+s, ...`; the rest stays zero).
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_phases(
    padded: &mut [f32],
    src: &[f32],
    ci: usize,
    w: usize,
    s: usize,
    (hq, wq, phase_len): (usize, usize, usize),
    rows: &[Option<usize>],
    cols: &[Option<usize>],
) {
    let plane = src.len() / ci;
    for (phase, buf) in padded.chunks_mut(phase_len).enumerate() {
        let (a, b) = (phase / s, phase % s);
        // Source columns of this phase's pixels.
        let src_cols: Vec<Option<usize>> = (0..wq).map(|qx| cols.get(qx * s + b).copied().flatten()).collect();
        buf[..hq * wq * ci].par_chunks_mut(wq * ci).enumerate().for_each(|(qy, line)| {
            let Some(r) = rows.get(qy * s + a).copied().flatten() else {
                line.fill(0.0);
                return;
            };
            // Transposed in blocks of 16 pixels, so that each channel's reads are a short
            // contiguous run and the block stays in L1.
            for (block, px) in line.chunks_mut(16 * ci).zip(src_cols.chunks(16)) {
                // The first source column when the block's sixteen are consecutive.
                let run_start = px[0].filter(|&first| px.len() == 16 && px.iter().zip(first..).all(|(&c, e)| c == Some(e)));
                vectorized(#[inline(always)] || {
                    for (ch, channel) in src.chunks_exact(plane).enumerate() {
                        let row = &channel[r * w..(r + 1) * w];
                        if let Some(first) = run_start {
                            let run: &[f32; 16] = row[first..first + 16].try_into().expect("16 columns");
                            for (j, &v) in run.iter().enumerate() {
                                block[j * ci + ch] = v;
                            }
                        } else {
                            for (j, col) in px.iter().enumerate() {
                                block[j * ci + ch] = col.map_or(0.0, |c| row[c]);
                            }
                        }
                    }
                })
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::{ConvOptions, PadMode};
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::kernels::generic::upsample_nearest2;

    /// burn's padded convolution on the same input, the reference for the fused path.
    fn reference(x: Tensor<4>, w: Tensor<4>, b: Option<Tensor<1>>, g: Geometry) -> Tensor<4> {
        let x = if g.upsample { upsample_nearest2(x) } else { x };
        let [t, bo, l, r] = g.pad;
        let mode = if g.reflect { PadMode::Reflect } else { PadMode::Constant(0.0) };
        let x = x.pad([(t, bo), (l, r)], mode);
        let s = g.stride;
        burn_conv2d(x, w, b, ConvOptions::new([s, s], [0, 0], [1, 1], 1))
    }

    fn geometry(stride: usize, pad: [usize; 4], reflect: bool, upsample: bool) -> Geometry {
        Geometry { stride, pad, reflect, upsample, relu: false }
    }

    #[test]
    fn matches_burn_convolution() {
        let device = Device::default();
        let cases = [
            // (n, ci, h, w, co, k, geometry, bias)
            (1, 16, 11, 13, 24, 3, Geometry::same(1, true), true),
            (2, 8, 7, 9, 5, 3, Geometry::same(1, false), false),
            (1, 6, 6, 5, 7, 3, geometry(1, [1; 4], true, true), true),
            (2, 5, 4, 7, 6, 3, geometry(1, [1; 4], false, true), false),
            (1, 3, 12, 10, 8, 9, Geometry::same(4, true), true),
            (1, 32, 12, 10, 3, 9, Geometry::same(4, true), true),
            (1, 4, 9, 9, 6, 5, geometry(1, [2; 4], false, true), false),
            (2, 32, 5, 4, 16, 1, Geometry::same(0, false), true),
            (1, 8, 10, 11, 12, 3, geometry(2, [1; 4], true, false), true),
            (2, 5, 9, 8, 7, 3, geometry(2, [0, 1, 1, 1], false, false), false),
            (1, 4, 13, 12, 6, 4, geometry(2, [1, 2, 1, 2], false, false), true),
            (1, 3, 16, 15, 8, 7, geometry(3, [3; 4], true, false), true),
            (1, 6, 8, 8, 4, 3, geometry(1, [0; 4], false, false), false),
            (1, 24, 9, 10, 16, 3, Geometry::same(1, false), true),
            // More window rows than one gathered strip holds.
            (1, 3, 420, 400, 4, 3, Geometry::same(1, true), true),
        ];
        for (n, ci, h, w, co, k, g, with_bias) in cases {
            let x = Tensor::<4>::random([n, ci, h, w], Distribution::Normal(0.0, 1.0), &device);
            let wt = Tensor::<4>::random([co, ci, k, k], Distribution::Normal(0.0, 0.2), &device);
            let b = with_bias.then(|| Tensor::<1>::random([co], Distribution::Normal(0.0, 1.0), &device));
            let got = conv2d(&x, &wt, b.as_ref(), g).expect("a flex f32 tensor");
            let want = reference(x.clone(), wt.clone(), b.clone(), g);
            // The product routes, which the autodiff operations take for every layer.
            let bf = b.as_ref().map(|b| flex_f32(b).unwrap());
            let products = conv2d_flex(&flex_f32(&x).unwrap(), &flex_f32(&wt).unwrap(), bf.as_ref(), g).unwrap();
            let products = Tensor::<4>::from_primitive::<Flex>(products);
            let relu = conv2d(&x, &wt, b.as_ref(), Geometry { relu: true, ..g }).expect("a flex f32 tensor");
            let relu_err = (relu - burn::tensor::activation::relu(want.clone())).abs().max().into_scalar::<f32>();
            assert_eq!(got.dims(), want.dims(), "case {n} {ci} {h} {w} {co} {k} {g:?}");
            let err = (got - want.clone()).abs().max().into_scalar::<f32>();
            let products_err = (products - want.clone()).abs().max().into_scalar::<f32>();
            let scale = want.abs().max().into_scalar::<f32>();
            assert!(products_err <= 1e-5 * scale, "case {ci}/{co} k{k} {g:?} as products: error {products_err} of {scale}");
            assert!(err <= 1e-5 * scale, "case {ci}/{co} k{k} {g:?}: error {err} of {scale}");
            assert!(relu_err <= 1e-5 * scale, "case {ci}/{co} k{k} {g:?} with ReLU: error {relu_err}");
        }
    }

    #[test]
    fn shifted_sums_agree_across_strip_sizes() {
        let device = Device::default();
        let (ci, h, w, co, k) = (5, 14, 11, 3, 7);
        let x = Tensor::<4>::random([2, ci, h, w], Distribution::Normal(0.0, 1.0), &device);
        let wt = Tensor::<4>::random([co, ci, k, k], Distribution::Normal(0.0, 0.2), &device);
        let g = Geometry::same(3, true);
        let want = reference(x.clone(), wt.clone(), None, g).into_data().try_to_vec::<f32>().unwrap();
        let xs = x.into_data().try_to_vec::<f32>().unwrap();
        let ws = wt.into_data().try_to_vec::<f32>().unwrap();
        let (hp, wp) = (h + 6, w + 6);
        let rows = source_index(hp, h, 3, g);
        let cols = source_index(wp, w, 3, g);
        let taps = k * k * co;
        // Budgets for strips of 1, 3 and all output rows.
        for budget in [taps * wp * k, taps * wp * (k + 2), 1 << 24] {
            let got = shifted_sums(&xs, [2, ci, h, w], &ws, co, k, None, ((hp, wp), (&rows, &cols)), budget);
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-4, "budget {budget}: error {err}");
        }
    }

    #[test]
    fn declines_autodiff_tensors() {
        let device = Device::default().autodiff();
        let x = Tensor::<4>::ones([1, 4, 5, 5], &device).require_grad();
        let w = Tensor::<4>::ones([4, 4, 3, 3], &device);
        assert!(conv2d(&x, &w, None, Geometry::same(1, false)).is_none());
    }
}
