//! 2×2 max pooling with stride 2 (VGG's and AdaIN's encoder pools) on flex `f32` tensors, plain
//! or autodiff, in one pass per plane.
//!
//! burn's generic pooling tracks every window's arg-max through a strided loop with bounds
//! checks, which cost VGG19's forward pass about a tenth of its time. Here each output takes the
//! first largest value of its window in row-major order (a NaN wins, as in PyTorch), and on an
//! autodiff tensor the backward step sends each output gradient to that position.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::kernels::cpu_autodiff::{flex, operand, record, unpack};

/// Max pooling of `x` `[N, C, H, W]` over 2×2 windows at stride 2; with `ceil`, a last odd row
/// or column forms a partial window (PyTorch's `ceil_mode`), otherwise it is dropped. `None`
/// unless `x` is a flex `f32` tensor (plain or autodiff).
pub fn max_pool2x2(x: &Tensor<4>, ceil: bool) -> Option<Tensor<4>> {
    let (xs, node) = operand(x)?;
    let [n, c, h, w]: [usize; 4] = xs.layout().shape().dims();
    let (ho, wo) = if ceil { (h.div_ceil(2), w.div_ceil(2)) } else { (h / 2, w / 2) };
    let values = xs.as_slice::<f32>()?;
    let tracked = node.is_some();
    let mut out = vec![0f32; n * c * ho * wo];
    // Per output, the position of its maximum within its input plane.
    let mut arg = vec![0u32; if tracked { out.len() } else { 0 }];
    let (plane_in, plane_out) = (h * w, ho * wo);
    let pool = |dst: &mut [f32], src: &[f32], mut arg: Option<&mut [u32]>| {
        for oy in 0..ho {
            let rows = 2 * oy..(2 * oy + 2).min(h);
            for ox in 0..wo {
                let cols = 2 * ox..(2 * ox + 2).min(w);
                let (mut best, mut at) = (f32::NEG_INFINITY, rows.start * w + cols.start);
                'window: for r in rows.clone() {
                    for col in cols.clone() {
                        let v = src[r * w + col];
                        if v > best || v.is_nan() {
                            (best, at) = (v, r * w + col);
                            if v.is_nan() {
                                break 'window;
                            }
                        }
                    }
                }
                dst[oy * wo + ox] = best;
                if let Some(arg) = arg.as_deref_mut() {
                    arg[oy * wo + ox] = at as u32;
                }
            }
        }
    };
    if plane_out > 0 {
        let planes = out.par_chunks_mut(plane_out).zip(values.par_chunks(plane_in));
        if tracked {
            planes.zip(arg.par_chunks_mut(plane_out)).for_each(|((dst, src), arg)| pool(dst, src, Some(arg)));
        } else {
            planes.for_each(|(dst, src)| pool(dst, src, None));
        }
    }
    let out = flex(out, [n, c, ho, wo]);
    Some(match node {
        None => Tensor::from_primitive::<Flex>(out),
        Some(node) => record::<_, 1>(PoolBackward, vec![node], PoolState { arg, input: [n, c, h, w] }, out),
    })
}

/// The pooling's backward step.
#[derive(Debug)]
struct PoolBackward;

/// Each output's arg-max within its plane, and the input's shape.
#[derive(Debug, Clone)]
struct PoolState {
    arg: Vec<u32>,
    input: [usize; 4],
}

impl Backward<Flex, 1> for PoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<PoolState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (grad, PoolState { arg, input }, [parent]) = unpack(ops, grads, "max_pool2x2");
        let Some(node) = parent else {
            return;
        };
        let [n, c, h, w] = input;
        let dy = grad.as_slice::<f32>().expect("max_pool2x2 backward: gradient values");
        assert_eq!(dy.len(), arg.len(), "max_pool2x2 backward: gradient shape");
        let mut dx = vec![0f32; n * c * h * w];
        let plane_out = arg.len() / (n * c).max(1);
        if plane_out > 0 {
            dx.par_chunks_mut(h * w).zip(dy.par_chunks(plane_out)).zip(arg.par_chunks(plane_out)).for_each(
                |((dst, g), at)| {
                    for (&g, &i) in g.iter().zip(at) {
                        dst[i as usize] += g;
                    }
                },
            );
        }
        grads.register::<Flex>(node, flex(dx, input));
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    use burn::tensor::{Device, Distribution, TensorData};

    use super::*;

    fn reference(x: Tensor<4>, ceil: bool) -> Tensor<4> {
        max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]).with_ceil_mode(ceil))
    }

    #[test]
    fn matches_burn_values_and_gradients() {
        let flex_device = Device::flex();
        let ad = flex_device.clone().autodiff();
        for (h, w, ceil) in [(6, 8, false), (7, 9, false), (7, 9, true), (5, 4, true), (1, 3, true)] {
            // Values on a coarse grid, so that windows hold ties (as after a ReLU).
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Uniform(-2.0, 2.0), &flex_device).round().clamp_min(0.0);
            let got = max_pool2x2(&x, ceil).expect("a flex f32 tensor");
            let want = reference(x.clone(), ceil);
            assert_eq!(got.dims(), want.dims(), "{h}×{w} ceil {ceil}");
            assert_eq!(got.into_data().try_to_vec::<f32>().unwrap(), want.clone().into_data().try_to_vec::<f32>().unwrap());

            let xa = Tensor::<4>::from_data(x.into_data(), &ad).require_grad();
            let probe = Tensor::<4>::random(want.dims(), Distribution::Normal(0.0, 1.0), &ad);
            let grad = |ours: bool| {
                let y = if ours { max_pool2x2(&xa, ceil).expect("autodiff flex") } else { reference(xa.clone(), ceil) };
                let grads = (y * probe.clone()).sum().backward();
                xa.grad(&grads).expect("input gradient").into_data().try_to_vec::<f32>().unwrap()
            };
            assert_eq!(grad(true), grad(false), "gradient {h}×{w} ceil {ceil}");
        }
    }

    #[test]
    fn first_maximum_and_nan_win() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(vec![1.0, 1.0, f32::NAN, 3.0, 0.0, 0.0, 2.0, 5.0], [1, 1, 2, 4]), &device);
        let got = max_pool2x2(&x, false).unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(got[0], 1.0);
        assert!(got[1].is_nan());
    }
}
