//! Convolutions computed directly, without im2col or matrix products, for inference on the
//! flex CPU backend: grouped and depthwise layers (through [`crate::kernels::cpu_group`]) and
//! dense layers with at most [`dense_inputs`] input channels or at most four outputs
//! and a kernel larger than 1×1 (through [`crate::kernels::cpu_conv`]): MicroAST's layers, the
//! RGB input and output layers of the style and CycleGAN generators, 3×3 layers of up to 128
//! channels.
//!
//! A task is a band of output rows of one sample and group. It first copies the rows of the
//! group's input channels that the band reads into a padded buffer (the padding, reflection or
//! zero, and an optional nearest ×2 upsampling are folded into that copy), each row split into
//! `s` column phases at stride `s` so that every kernel tap reads consecutive values. Each
//! output row is then computed in stretches of `V` vectors of pixels for blocks of `B` output
//! channels, the `B × V` vectors of sums held in registers while the group's `C_g·k²` taps are
//! added in (per tap: `V` vector loads of the padded row, `B` broadcast weights, `B·V`
//! multiply-adds), with the bias and ReLU applied as the sums are stored. With enough sums in
//! flight this runs at the multiply-add units' rate, where im2col copies `C_g·k²` values per
//! output pixel first (memory-bound for the shallow RGB layers and thin grouped products) and
//! the products' output tiles are narrow for few output channels.
//!
//! The source may also be the input upsampled ×2 bilinearly (MicroAST's decoder, through
//! [`crate::kernels::upsample_bilinear2x_conv2d`]): a task then interpolates the input rows its band needs horizontally and blends
//! pairs of them into the upsampled rows as it pads them, so the upsampled tensor (four times
//! the input) is never stored.
//!
//! Dense layers take this route for inference only; the autodiff operations keep the products of
//! `cpu_conv`. The loops run through `pulp`'s dispatch on the CPU's widest vectors (AVX-512, AVX2+FMA or
//! scalar code), with a fused multiply-add where the CPU has one.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::kernels::Geometry;
use crate::kernels::cpu_conv::{flex_operands, source_index};
use crate::kernels::cpu_upsample as upsample;

/// Most input channels per group taken by the direct route (wider layers run as products).
pub const MAX_INPUTS: usize = 128;

/// Most input channels of a dense (one-group) layer with more than four outputs that
/// [`crate::kernels::cpu_conv`] sends here rather than to its matrix products: [`MAX_INPUTS`]
/// where the CPU has AVX-512 (16 lanes, where the direct sums were measured faster up to 128
/// channels), 32 elsewhere. With AVX2's 8 lanes the products win from 64 channels on: a 3×3
/// 64→64 layer at 256² took 524 ms direct and 137 ms as products, and the 512² rows of
/// TransformerNet (stock), MicroAST and AnimeGANv2 took 1.7–2.7× longer with the 128 bound.
pub fn dense_inputs() -> usize {
    static BOUND: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BOUND.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return MAX_INPUTS;
        }
        32
    })
}

/// About how many output values one task computes (a band of whole rows, at least one).
const TASK_VALUES: usize = 16 << 10;

/// Most padded input values one task holds (512 KiB), so that they stay in the core's cache.
const PADDED_VALUES: usize = 128 << 10;

/// A convolution of `source` (`x` `[N, C, H, W]` itself or upsampled) with `weight`
/// `[O, C/groups, k, k]` and an optional bias `[O]`, with the geometry `g` (as
/// [`crate::kernels::conv2d`]; for [`Source::Bilinear2x`] it applies to the upsampled image and
/// has no nearest upsampling). `None` unless the tensors are plain flex `f32` tensors with a
/// square kernel, at most [`MAX_INPUTS`] channels per group and shapes that fit (groups
/// dividing `O`, a reflection narrower than the image, a padded image at least the kernel's
/// size).
pub(crate) fn conv2d(
    x: &Tensor<4>,
    source: Source,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    g: Geometry,
) -> Option<Tensor<4>> {
    let (xs, ws, bs) = flex_operands(x, weight, bias)?;
    let dims: [usize; 4] = xs.layout().shape().dims();
    let [co, cg, k, k2]: [usize; 4] = ws.layout().shape().dims();
    if k != k2 || k == 0 || cg == 0 || cg > MAX_INPUTS || !dims[1].is_multiple_of(cg) || !co.is_multiple_of(dims[1] / cg) {
        return None;
    }
    let b = match &bs {
        Some(b) => Some(b.as_slice::<f32>()?),
        None => None,
    };
    let op = Operands { x: xs.as_slice::<f32>()?, dims, source, weight: ws.as_slice::<f32>()?, kernel: [co, cg, k], bias: b };
    let (out, out_dims) = convolve(op, g)?;
    Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(out, out_dims))))
}

/// The convolution on raw NCHW data, computed directly: `x` `[n, c, h, w]`, `weight`
/// `[co, cg, k, k]` with `c / cg` groups (one group: a dense convolution); returns the output
/// values and their shape, or `None` when the geometry does not fit the input (a reflection as
/// wide as the input, a kernel larger than the padded input, stride 0).
///
/// The block shape follows the number of outputs per group: one to four channels in one block
/// (with 4, 2, 3, 2 vectors of pixels, so that at least four sums are in flight), otherwise
/// blocks of 8 channels and 2 vectors.
pub(crate) fn direct(
    x: &[f32],
    dims: [usize; 4],
    weight: &[f32],
    kernel: [usize; 3],
    bias: Option<&[f32]>,
    g: Geometry,
) -> Option<(Vec<f32>, [usize; 4])> {
    convolve(Operands { x, dims, source: Source::Input, weight, kernel, bias }, g)
}

/// A direct convolution's operands: `x` `[n, c, h, w]` (read as `source` says), `weight`
/// `[co, cg, k, k]` given as `kernel = [co, cg, k]` (`c / cg` groups), an optional bias `[co]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operands<'a> {
    pub x: &'a [f32],
    pub dims: [usize; 4],
    pub source: Source,
    pub weight: &'a [f32],
    pub kernel: [usize; 3],
    pub bias: Option<&'a [f32]>,
}

/// What the convolution reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The input itself (nearest ×2 upsampled when the geometry says so).
    Input,
    /// The input upsampled ×2 bilinearly (PyTorch's `align_corners = False`, as
    /// [`crate::kernels::cpu_upsample`]); the geometry then applies to the upsampled image.
    Bilinear2x,
}

/// [`direct`] reading `source`.
pub(crate) fn convolve(op: Operands<'_>, g: Geometry) -> Option<(Vec<f32>, [usize; 4])> {
    let Operands { x, dims, source, weight, kernel, .. } = op;
    if source == Source::Bilinear2x && g.upsample {
        return None;
    }
    let [n, c, h, w] = dims;
    let [co, cg, k] = kernel;
    assert_eq!(x.len(), n * c * h * w, "direct conv2d: input length");
    assert_eq!(weight.len(), co * cg * k * k, "direct conv2d: kernel length");
    assert!(cg > 0 && c % cg == 0 && co % (c / cg) == 0, "direct conv2d: groups of {cg} in {c} channels, {co} outputs");
    if let Some(chunked) = by_input_chunks(op, g) {
        return chunked;
    }
    // Enough independent sums to hide the multiply-add latency where the layer is compute-bound.
    match co / (c / cg) {
        1 => direct_blocked::<1, 4>(op, g),
        2 => direct_blocked::<2, 2>(op, g),
        3 => direct_blocked::<3, 3>(op, g),
        4 => direct_blocked::<4, 2>(op, g),
        _ => direct_blocked::<8, 2>(op, g),
    }
}

/// A dense layer with at most four outputs whose padded rows for one output row would not fit
/// in [`PADDED_VALUES`] (CartoonGAN's 5×5 96→3 output layer at 512 px: 96 channels of five
/// 516-value rows) is computed over chunks of input channels that do, each chunk's sums added to
/// the output, then the bias and ReLU: a band would otherwise be one output row that copies `k`
/// padded rows of every channel, `k` times the input and out of the cache. `None` for the layers
/// that fit (and grouped ones), which take the bands directly.
fn by_input_chunks(op: Operands<'_>, g: Geometry) -> Option<Option<(Vec<f32>, [usize; 4])>> {
    let Operands { x, dims: [n, c, h, w], source, weight, kernel: [co, cg, k], bias } = op;
    let s = g.stride.max(1);
    let wide = if g.upsample || source == Source::Bilinear2x { 2 * w } else { w };
    let stride_q = (wide + g.pad[2] + g.pad[3]).div_ceil(s) + SLACK;
    // Input channels whose padded rows for a band of 32 output rows fit.
    let chunk = (PADDED_VALUES / ((31 * s + k) * s * stride_q)).max(1);
    if cg != c || co > 4 || cg <= chunk {
        return None;
    }
    let plain = Geometry { relu: false, ..g };
    let mut out: Vec<f32> = Vec::new();
    let mut out_dims = [n, co, 0, 0];
    for sample in 0..n {
        let mut sum: Vec<f32> = Vec::new();
        for c0 in (0..c).step_by(chunk) {
            let cc = chunk.min(c - c0);
            let part = &x[(sample * c + c0) * h * w..(sample * c + c0 + cc) * h * w];
            let kernel: Vec<f32> =
                (0..co).flat_map(|o| weight[(o * c + c0) * k * k..(o * c + c0 + cc) * k * k].iter().copied()).collect();
            let chunk_op = Operands { x: part, dims: [1, cc, h, w], source, weight: &kernel, kernel: [co, cc, k], bias: None };
            let Some((y, dims)) = convolve(chunk_op, plain) else {
                return Some(None);
            };
            out_dims = [n, co, dims[2], dims[3]];
            if sum.is_empty() {
                sum = y;
            } else {
                sum.par_iter_mut().zip(y.par_iter()).for_each(|(a, b)| *a += b);
            }
        }
        out.extend(sum);
    }
    let plane = out_dims[2] * out_dims[3];
    if plane > 0 && (bias.is_some() || g.relu) {
        out.par_chunks_mut(plane).enumerate().for_each(|(i, p)| {
            let b = bias.map_or(0.0, |b| b[i % co]);
            p.iter_mut().for_each(|v| *v = if g.relu { (*v + b).max(0.0) } else { *v + b });
        });
    }
    Some(Some((out, out_dims)))
}

/// Spare values after each padded row phase, so that a row's last stretch (at most 4 vectors
/// of 16) may read past its end, into outputs that are dropped.
const SLACK: usize = 64;

/// The layout of one task's padded input rows and of the work on them.
struct Plan<'a> {
    /// Input `[n, c, h, w]`.
    x: &'a [f32],
    dims: [usize; 4],
    /// Input channels per group, kernel size, stride.
    cg: usize,
    k: usize,
    s: usize,
    /// The source row of each padded row (`None`: a row of zeros).
    rows: &'a [Option<usize>],
    /// Per column phase, the source column of each of its values.
    phase_cols: &'a [Vec<Option<usize>>],
    /// `Some(left)` when a row's interior is one run from `left` on (stride 1, no upsampling).
    interior: Option<usize>,
    /// The source rows are bilinear ×2 upsampled input rows (`rows` and `phase_cols` index the
    /// upsampled image).
    bilinear: bool,
    /// Values per padded row phase (`wq + SLACK`).
    stride_q: usize,
    /// Output width and ReLU.
    wo: usize,
    relu: bool,
}

/// [`direct`] with blocks of `B` output channels and stretches of `V` vectors.
fn direct_blocked<const B: usize, const V: usize>(op: Operands<'_>, g: Geometry) -> Option<(Vec<f32>, [usize; 4])> {
    let Operands { x, dims: [n, c, h, w], source, weight, kernel: [co, cg, k], bias } = op;
    let groups = c / cg;
    let og = co / groups;
    let s = g.stride;
    let (h2, w2) = if g.upsample || source == Source::Bilinear2x { (2 * h, 2 * w) } else { (h, w) };
    let [top, bottom, left, right] = g.pad;
    let (hp, wp) = (h2 + top + bottom, w2 + left + right);
    if s == 0 || hp < k || wp < k || (g.reflect && g.pad.iter().any(|&p| p >= h2.min(w2))) {
        return None;
    }
    let (ho, wo) = ((hp - k) / s + 1, (wp - k) / s + 1);
    let rows = source_index(hp, h2, top, g);
    let cols = source_index(wp, w2, left, g);
    // Phase `p` of a padded row holds its columns p, p + s, ...; a tap at kernel column `kw`
    // reads phase `kw % s` from offset `kw / s`.
    let wq = wp.div_ceil(s);
    let phase_cols: Vec<Vec<Option<usize>>> =
        (0..s).map(|p| (0..wq).map(|j| cols.get(j * s + p).copied().flatten()).collect()).collect();
    // The kernel as `[group, block, (ci, kh, kw), B]`, blocks padded with zero weights.
    let blocks = og.div_ceil(B);
    let taps = cg * k * k;
    let mut packed = vec![0f32; groups * blocks * taps * B];
    for o in 0..co {
        let (group, j) = (o / og, o % og);
        let at = ((group * blocks + j / B) * taps) * B + j % B;
        for t in 0..taps {
            packed[at + t * B] = weight[o * taps + t];
        }
    }
    let plan = Plan {
        x,
        dims: [n, c, h, w],
        cg,
        k,
        s,
        rows: &rows,
        phase_cols: &phase_cols,
        interior: (s == 1 && !g.upsample).then_some(left),
        bilinear: source == Source::Bilinear2x,
        stride_q: wq + SLACK,
        wo,
        relu: g.relu,
    };
    // Bands of about TASK_VALUES outputs whose padded rows stay within PADDED_VALUES.
    let fit = (PADDED_VALUES / (cg * s * plan.stride_q)).saturating_sub(k) / s + 1;
    let band = (TASK_VALUES / wo.max(1)).max(k).min(fit).clamp(1, ho.max(1));
    let plane_out = ho * wo;
    let mut out = vec![0f32; n * co * plane_out];
    if out.is_empty() {
        return Some((out, [n, co, ho, wo]));
    }
    // Tasks: (sample·groups + group, first output row, the group's output rows of the band).
    let mut tasks = Vec::with_capacity(n * groups * ho.div_ceil(band));
    for (ng, chunk) in out.chunks_mut(og * plane_out).enumerate() {
        let mut planes: Vec<_> = chunk.chunks_mut(plane_out).map(|p| p.chunks_mut(band * wo)).collect();
        for y0 in (0..ho).step_by(band) {
            let lines: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.next().expect("a band per plane")).collect();
            tasks.push((ng, y0, lines));
        }
    }
    tasks.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |(padded, offsets, wide): &mut (Vec<f32>, Vec<usize>, Vec<f32>), (ng, y0, lines)| {
            let group = ng % groups;
            let bias = bias.map(|b| &b[group * og..(group + 1) * og]);
            let packed = &packed[group * blocks * taps * B..(group + 1) * blocks * taps * B];
            pulp::Arch::new().dispatch(Band::<B, V> { plan: &plan, ng, y0, lines, padded, offsets, wide, packed, bias });
        },
    );
    Some((out, [n, co, ho, wo]))
}

/// One task of [`direct_blocked`]: the output rows from `y0` of every channel of one sample and
/// group (`lines`, one slice per channel).
struct Band<'a, 'b, const B: usize, const V: usize> {
    plan: &'a Plan<'a>,
    /// `sample · groups + group`.
    ng: usize,
    y0: usize,
    lines: Vec<&'b mut [f32]>,
    /// Scratch: the padded rows, the taps' offsets in them, and for a bilinear source the
    /// widened input rows and one upsampled row.
    padded: &'a mut Vec<f32>,
    offsets: &'a mut Vec<usize>,
    wide: &'a mut Vec<f32>,
    /// The group's packed kernel `[block, tap, B]` and bias.
    packed: &'a [f32],
    bias: Option<&'a [f32]>,
}

impl<const B: usize, const V: usize> pulp::WithSimd for Band<'_, '_, B, V> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Band { plan, ng, y0, mut lines, padded, offsets, wide, packed, bias } = self;
        let Plan { x, dims: [_, c, h, w], cg, k, s, stride_q, wo, .. } = *plan;
        let groups = c / cg;
        let (sample, group) = (ng / groups, ng % groups);
        let rows_out = lines[0].len() / wo;
        let span = (rows_out - 1) * s + k;
        // The band's padded rows: `[cg, span, s, stride_q]`.
        padded.resize(cg * span * s * stride_q, 0.0);
        let band_rows = &plan.rows[y0 * s..y0 * s + span];
        // For a bilinear source: the input rows that the band's upsampled rows blend (upsampled
        // row `2i` blends input rows `i - 1` and `i`, row `2i + 1` rows `i` and `i + 1`).
        let (first, last) = match plan.bilinear {
            true => band_rows.iter().flatten().fold((usize::MAX, 0), |(a, b), &u| {
                (a.min((u / 2).saturating_sub(1 - u % 2)), b.max((u.div_ceil(2)).min(h - 1)))
            }),
            false => (1, 0),
        };
        for ci in 0..cg {
            let channel = sample * c + group * cg + ci;
            let src = &x[channel * h * w..(channel + 1) * h * w];
            if first <= last {
                wide.resize((last + 1 - first + 1) * 2 * w, 0.0);
                let (rows, upsampled) = wide.split_at_mut((last + 1 - first) * 2 * w);
                for (i, line) in (first..=last).zip(rows.chunks_exact_mut(2 * w)) {
                    upsample::widen(line, &src[i * w..(i + 1) * w]);
                }
                let row = |i: usize| &rows[(i - first) * 2 * w..(i - first + 1) * 2 * w];
                for (r, &u) in band_rows.iter().enumerate() {
                    let line = &mut padded[(ci * span + r) * s * stride_q..(ci * span + r + 1) * s * stride_q];
                    let Some(u) = u else {
                        line.fill(0.0);
                        continue;
                    };
                    let i = u / 2;
                    match (u % 2, i) {
                        (0, 0) => upsampled.copy_from_slice(row(0)),
                        (0, _) => upsample::blend(upsampled, row(i - 1), row(i)),
                        _ => upsample::blend(upsampled, row((i + 1).min(h - 1)), row(i)),
                    }
                    fill_row(line, stride_q, upsampled, plan.phase_cols, plan.interior);
                }
                continue;
            }
            for (r, &row) in band_rows.iter().enumerate() {
                let line = &mut padded[(ci * span + r) * s * stride_q..(ci * span + r + 1) * s * stride_q];
                match row {
                    None => line.fill(0.0),
                    Some(row) => fill_row(line, stride_q, &src[row * w..(row + 1) * w], plan.phase_cols, plan.interior),
                }
            }
        }
        // Where each tap's values start for the band's output row 0, column 0.
        offsets.clear();
        for ci in 0..cg {
            for kh in 0..k {
                offsets.extend((0..k).map(|kw| ((ci * span + kh) * s + kw % s) * stride_q + kw / s));
            }
        }
        let taps = offsets.len();
        let lanes = S::F32_LANES;
        let step = V * lanes;
        for (block, weights) in packed.chunks_exact(taps * B).enumerate() {
            let outputs = (lines.len() - block * B).min(B);
            for y in 0..rows_out {
                let row = y * s * s * stride_q;
                for x0 in (0..wo).step_by(step) {
                    let sums = stretch::<S, B, V>(simd, padded, offsets, row + x0, weights);
                    let len = step.min(wo - x0);
                    for (j, sums) in sums.iter().enumerate().take(outputs) {
                        let b = bias.map_or(0.0, |b| b[block * B + j]);
                        let sums: &[f32] = pulp::bytemuck::cast_slice(sums);
                        let dst = &mut lines[block * B + j][y * wo + x0..y * wo + x0 + len];
                        for (d, &v) in dst.iter_mut().zip(sums) {
                            *d = if plan.relu { (v + b).max(0.0) } else { v + b };
                        }
                    }
                }
            }
        }
    }
}

/// The sums of `V` vectors of consecutive outputs of `B` channels: `Σ_t weights[t·B + j] ·
/// padded[at + offsets[t] + l]`.
#[inline(always)]
fn stretch<S: pulp::Simd, const B: usize, const V: usize>(
    simd: S,
    padded: &[f32],
    offsets: &[usize],
    at: usize,
    weights: &[f32],
) -> [[S::f32s; V]; B] {
    let lanes = S::F32_LANES;
    let mut sums = [[simd.splat_f32s(0.0); V]; B];
    for (&offset, taps) in offsets.iter().zip(weights.chunks_exact(B)) {
        let src = &padded[at + offset..at + offset + V * lanes];
        let values: [S::f32s; V] =
            std::array::from_fn(|i| pulp::bytemuck::pod_read_unaligned(pulp::bytemuck::cast_slice(&src[i * lanes..(i + 1) * lanes])));
        for (sum, &t) in sums.iter_mut().zip(taps) {
            let t = simd.splat_f32s(t);
            for (s, &v) in sum.iter_mut().zip(&values) {
                *s = simd.mul_add_e_f32s(t, v, *s);
            }
        }
    }
    sums
}

/// Writes one source row into its padded, phase-split form: `s` phases of `stride` values, of
/// which the first `wq` are set: `phase_cols[p][j]` is the source column of phase `p`'s `j`-th
/// value (`None`: a zero). With `interior = Some(left)` (stride 1, no upsampling) the source
/// columns are copied as one run from `left` on and only the padding is looked up.
#[inline(always)]
fn fill_row(line: &mut [f32], stride: usize, src: &[f32], phase_cols: &[Vec<Option<usize>>], interior: Option<usize>) {
    let wq = phase_cols[0].len();
    if let Some(left) = interior {
        line[left..left + src.len()].copy_from_slice(src);
        for j in (0..left).chain(left + src.len()..wq) {
            line[j] = phase_cols[0][j].map_or(0.0, |c| src[c]);
        }
        return;
    }
    for (part, cols) in line.chunks_exact_mut(stride).zip(phase_cols) {
        for (d, col) in part.iter_mut().zip(cols) {
            *d = col.map_or(0.0, |c| src[c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::kernels::generic;

    /// burn's convolution is the reference for dense layers of every block shape, strides 1 to
    /// 3, both paddings, asymmetric padding, upsampling, a batch of two, planes narrower than a
    /// stretch and wider than several, bands of several rows, chunks of input channels.
    #[test]
    fn dense_layers_match_burn_convolution() {
        let device = Device::flex();
        let geometry = |stride, pad, reflect, upsample, relu| Geometry { stride, pad, reflect, upsample, relu };
        let cases = [
            // (n, c, h, w, o, k, geometry)
            (1, 3, 21, 19, 16, 9, geometry(1, [4; 4], true, false, true)),
            (1, 16, 19, 21, 3, 9, geometry(1, [4; 4], true, false, false)),
            (2, 5, 9, 11, 1, 3, geometry(1, [1; 4], false, false, true)),
            (1, 6, 9, 11, 2, 5, geometry(2, [2; 4], true, false, false)),
            (1, 7, 13, 9, 4, 3, geometry(3, [1, 2, 0, 1], false, false, true)),
            (1, 24, 11, 9, 21, 3, geometry(1, [1; 4], true, false, true)),
            (1, 64, 9, 70, 64, 3, geometry(1, [1; 4], true, false, true)),
            (1, 4, 6, 5, 12, 3, geometry(1, [1; 4], true, true, false)),
            (1, 3, 40, 150, 8, 7, geometry(1, [3; 4], true, false, true)),
            (1, 8, 1, 1, 5, 3, geometry(1, [1; 4], false, false, false)),
            // Wide rows of many channels into few outputs: summed over chunks of input channels.
            (2, 96, 7, 520, 3, 5, geometry(1, [2; 4], false, false, true)),
            (1, 40, 9, 1100, 1, 3, geometry(2, [0, 1, 0, 1], false, false, false)),
        ];
        for (n, c, h, w, o, k, g) in cases {
            let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
            let wt = Tensor::<4>::random([o, c, k, k], Distribution::Normal(0.0, 0.2), &device);
            let b = Tensor::<1>::random([o], Distribution::Normal(0.0, 0.5), &device);
            let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
            let bias = b.clone().into_data().try_to_vec::<f32>().unwrap();
            let (got, dims) =
                direct(&values(x.clone()), [n, c, h, w], &values(wt.clone()), [o, c, k], Some(&bias), g).expect("a fitting geometry");
            let want = generic::conv2d(x, wt, Some(b), g);
            assert_eq!(dims, want.dims(), "{n}×{c}×{h}×{w} → {o}, k{k} {g:?}");
            let want = values(want);
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-5 * scale, "{n}×{c}×{h}×{w} → {o}, k{k} {g:?}: error {err} of {scale}");
        }
    }

    #[test]
    fn declines_geometries_that_do_not_fit() {
        let g = |pad, reflect| Geometry { stride: 1, pad, reflect, upsample: false, relu: false };
        let x = vec![0f32; 4];
        let w = vec![0f32; 9];
        assert!(direct(&x, [1, 1, 2, 2], &w, [1, 1, 3], None, g([2; 4], true)).is_none());
        assert!(direct(&x, [1, 1, 2, 2], &w, [1, 1, 3], None, g([0; 4], false)).is_none());
        assert!(direct(&x, [1, 1, 2, 2], &w, [1, 1, 3], None, g([1; 4], true)).is_some());
    }
}
