//! Stride-1 convolutions for inference on the flex CPU backend, computed without im2col.
//!
//! The input is copied once into a padded NHWC buffer (the padding, reflection or zero, and an
//! optional nearest ×2 upsampling are folded into that copy). For one kernel row `kh`, the
//! values a kernel window needs at output position `q` are then `k·C` consecutive floats starting
//! at `((q_row + kh)·Wp + q_col)·C`, so the convolution is `k` matrix products that read the
//! buffer in place through strides: `out[co, q] += W_kh[co, (kw, ci)] · X[(kw, ci), q]`, with `q`
//! running over `Ho × Wp` "wide" positions whose last `k - 1` columns are dropped afterwards.
//! burn's generic route instead writes `k²` copies of the input (im2col) before its product.
//!
//! Used only on plain flex `f32` tensors (no autodiff); [`conv2d`] returns `None` elsewhere
//! and the caller falls back to burn's convolution.

use burn::backend::Flex;
use burn::tensor::{DType, Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// How the input is extended before a stride-1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// `p` zeros on each side.
    Zero(usize),
    /// Reflection of `p` pixels on each side (PyTorch `ReflectionPad2d`).
    Reflect(usize),
}

/// A stride-1 convolution of `x` `[N, C, H, W]` with `weight` `[O, C, k, k]`, after an optional
/// nearest ×2 upsampling of `x` and the `border` extension; `None` unless both are plain flex
/// `f32` tensors.
pub fn conv2d(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    border: Border,
    upsample: bool,
) -> Option<Tensor<4>> {
    let xs = flex_f32(x)?;
    let ws = flex_f32(weight)?;
    let bs = match bias {
        Some(b) => Some(flex_f32(&b.clone().reshape([-1, 1, 1, 1]))?),
        None => None,
    };
    let [n, ci, h, w] = x.dims();
    let [co, wci, k, k2] = weight.dims();
    assert!(wci == ci && k == k2, "conv2d: kernel {:?} for input {:?}", weight.dims(), x.dims());
    let (h2, w2) = if upsample { (2 * h, 2 * w) } else { (h, w) };
    let p = match border {
        Border::Zero(p) | Border::Reflect(p) => p,
    };
    let (hp, wp) = (h2 + 2 * p, w2 + 2 * p);
    assert!(hp >= k && wp >= k, "conv2d: kernel {k} larger than the padded input {hp}×{wp}");
    if let Border::Reflect(p) = border {
        assert!(p < h2 && p < w2, "conv2d: reflection of {p} needs more than {h2}×{w2} pixels");
    }
    let (ho, wo) = (hp + 1 - k, wp + 1 - k);
    let rows = source_index(hp, h2, p, border, upsample);
    let cols = source_index(wp, w2, p, border, upsample);

    let x_data = xs.as_slice::<f32>()?;
    let w_data = ws.as_slice::<f32>()?;
    let b_data = bs.as_ref().and_then(|b| b.as_slice::<f32>());
    let packed = pack_weight(w_data, co, ci, k);
    let nq = ho * wp;
    let mut out = vec![0f32; n * co * ho * wo];
    let mut wide = vec![0f32; co * nq];
    let mut padded = vec![0f32; (hp * wp + k - 1) * ci];
    for s in 0..n {
        let src = &x_data[s * ci * h * w..(s + 1) * ci * h * w];
        fill_padded(&mut padded, src, ci, w, wp, &rows, &cols);
        for kh in 0..k {
            // SAFETY: the three matrices are in bounds: `wide` holds `co × nq`; the packed
            // kernel row holds `(k·ci) × co`; the last rhs read is at
            // `(kh·wp + nq - 1)·ci + k·ci - 1 < (hp·wp + k - 1)·ci`, the padded buffer's length.
            unsafe {
                gemm::gemm(
                    co,
                    nq,
                    k * ci,
                    wide.as_mut_ptr(),
                    1,
                    nq as isize,
                    kh > 0,
                    packed[kh * k * ci * co..].as_ptr(),
                    co as isize,
                    1,
                    padded[kh * wp * ci..].as_ptr(),
                    ci as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                );
            }
        }
        let dst = &mut out[s * co * ho * wo..(s + 1) * co * ho * wo];
        dst.par_chunks_mut(ho * wo).enumerate().for_each(|(o, plane)| {
            let b = b_data.map_or(0.0, |b| b[o]);
            let src = &wide[o * nq..(o + 1) * nq];
            for (row, line) in plane.chunks_mut(wo).enumerate() {
                for (d, v) in line.iter_mut().zip(&src[row * wp..row * wp + wo]) {
                    *d = v + b;
                }
            }
        });
    }
    let data = TensorData::new(out, [n, co, ho, wo]);
    Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(data)))
}

/// The tensor's flex primitive in contiguous form, if it is a plain flex `f32` tensor.
fn flex_f32<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let prim = t.clone().try_into_primitive::<Flex>().ok()?;
    Some(if prim.is_contiguous() { prim } else { prim.to_contiguous() })
}

/// For each padded coordinate, the source coordinate in the unpadded (pre-upsampling) input, or
/// `None` for a zero.
fn source_index(padded: usize, size: usize, p: usize, border: Border, upsample: bool) -> Vec<Option<usize>> {
    (0..padded)
        .map(|i| {
            let u = i as isize - p as isize;
            let u = if (0..size as isize).contains(&u) {
                u
            } else if let Border::Reflect(_) = border {
                if u < 0 { -u } else { 2 * (size as isize - 1) - u }
            } else {
                return None;
            };
            let u = u as usize;
            Some(if upsample { u / 2 } else { u })
        })
        .collect()
}

/// Kernel `[O, C, k, k]` as `k` row blocks of `[(kw, ci), O]`.
fn pack_weight(w: &[f32], co: usize, ci: usize, k: usize) -> Vec<f32> {
    let mut packed = vec![0f32; k * k * ci * co];
    for o in 0..co {
        for c in 0..ci {
            for kh in 0..k {
                for kw in 0..k {
                    packed[((kh * k + kw) * ci + c) * co + o] = w[((o * ci + c) * k + kh) * k + kw];
                }
            }
        }
    }
    packed
}

/// Writes one sample `[C, H, W]` into the padded NHWC buffer `[Hp, Wp, C]` (the slack after it
/// stays zero).
fn fill_padded(
    padded: &mut [f32],
    src: &[f32],
    ci: usize,
    w: usize,
    wp: usize,
    rows: &[Option<usize>],
    cols: &[Option<usize>],
) {
    let plane = src.len() / ci;
    padded[..rows.len() * wp * ci].par_chunks_mut(wp * ci).zip(rows).for_each(|(line, row)| {
        match row {
            None => line.fill(0.0),
            Some(r) => {
                for (px, col) in line.chunks_mut(ci).zip(cols) {
                    match col {
                        None => px.fill(0.0),
                        Some(c) => {
                            let at = r * w + c;
                            for (ch, v) in px.iter_mut().enumerate() {
                                *v = src[ch * plane + at];
                            }
                        }
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::{ConvOptions, PadMode};
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::layers::upsample_nearest2;

    /// burn's padded convolution on the same input, the reference for the fused path.
    fn reference(x: Tensor<4>, w: Tensor<4>, b: Option<Tensor<1>>, border: Border, up: bool) -> Tensor<4> {
        let x = if up { upsample_nearest2(x) } else { x };
        let (x, p) = match border {
            Border::Reflect(p) => (x.pad([(p, p), (p, p)], PadMode::Reflect), 0),
            Border::Zero(p) => (x, p),
        };
        burn_conv2d(x, w, b, ConvOptions::new([1, 1], [p, p], [1, 1], 1))
    }

    #[test]
    fn matches_burn_convolution() {
        let device = Device::default();
        let cases = [
            // (n, ci, h, w, co, k, border, upsample, bias)
            (1, 16, 11, 13, 24, 3, Border::Reflect(1), false, true),
            (2, 8, 7, 9, 5, 3, Border::Zero(1), false, false),
            (1, 6, 6, 5, 7, 3, Border::Reflect(1), true, true),
            (1, 3, 12, 10, 8, 9, Border::Reflect(4), false, true),
            (1, 4, 9, 9, 6, 5, Border::Zero(2), true, false),
            (2, 32, 5, 4, 16, 1, Border::Zero(0), false, true),
        ];
        for (n, ci, h, w, co, k, border, up, with_bias) in cases {
            let x = Tensor::<4>::random([n, ci, h, w], Distribution::Normal(0.0, 1.0), &device);
            let wt = Tensor::<4>::random([co, ci, k, k], Distribution::Normal(0.0, 0.2), &device);
            let b = with_bias.then(|| Tensor::<1>::random([co], Distribution::Normal(0.0, 1.0), &device));
            let got = conv2d(&x, &wt, b.as_ref(), border, up).expect("a flex f32 tensor");
            let want = reference(x, wt, b, border, up);
            assert_eq!(got.dims(), want.dims(), "case {n} {ci} {h} {w} {co} {k} {border:?} {up}");
            let err = (got - want.clone()).abs().max().into_scalar::<f32>();
            let scale = want.abs().max().into_scalar::<f32>();
            assert!(err <= 1e-5 * scale, "case {ci}/{co} k{k} {border:?} up={up}: error {err} of {scale}");
        }
    }

    #[test]
    fn declines_autodiff_tensors() {
        let device = Device::default().autodiff();
        let x = Tensor::<4>::ones([1, 4, 5, 5], &device).require_grad();
        let w = Tensor::<4>::ones([4, 4, 3, 3], &device);
        assert!(conv2d(&x, &w, None, Border::Zero(1), false).is_none());
    }
}
