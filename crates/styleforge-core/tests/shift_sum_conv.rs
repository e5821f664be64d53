//! The shift-and-sum convolution used for wide-kernel layers with few outputs equals burn's
//! convolution, in whole images and in strips, with and without bias, and through autodiff.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use styleforge_core::kernels::generic::{SHIFT_SUM_BUDGET, shift_sum_conv};

fn max_rel(a: Tensor<4>, b: Tensor<4>) -> f32 {
    let scale = a.clone().abs().max().into_scalar::<f32>();
    (a - b).abs().max().into_scalar::<f32>() / scale
}

#[test]
fn equals_the_direct_convolution() {
    let d = Device::flex();
    // (batch, in, out, kernel, side): the last needs several strips under the budget.
    let side_for_strips = (SHIFT_SUM_BUDGET / (81 * 3 * 300)) + 40;
    for (n, ci, co, k, hw) in [(1, 32, 3, 9, 64), (2, 16, 2, 5, 33), (1, 24, 3, 7, 50), (1, 20, 3, 9, side_for_strips)] {
        let x = Tensor::<4>::random([n, ci, hw + k - 1, 300.max(hw + k - 1)], Distribution::Uniform(-1.0, 1.0), &d);
        let w = Tensor::<4>::random([co, ci, k, k], Distribution::Uniform(-0.1, 0.1), &d);
        let b = Tensor::<1>::random([co], Distribution::Uniform(-1.0, 1.0), &d);
        let want = conv2d(x.clone(), w.clone(), Some(b.clone()), ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        let got = shift_sum_conv(x, w, Some(b));
        assert_eq!(want.dims(), got.dims());
        let e = max_rel(want, got);
        assert!(e < 1e-5, "{n}x{ci}->{co} k{k} @{hw}: relative error {e:e}");
    }
}

#[test]
fn gradients_equal_the_direct_convolution() {
    let d = Device::flex().autodiff();
    let x = Tensor::<4>::random([1, 16, 24, 24], Distribution::Uniform(-1.0, 1.0), &d).require_grad();
    let w = Tensor::<4>::random([3, 16, 7, 7], Distribution::Uniform(-0.1, 0.1), &d).require_grad();
    let target = Tensor::<4>::random([1, 3, 18, 18], Distribution::Uniform(-1.0, 1.0), &d);
    let loss = |y: Tensor<4>| (y - target.clone()).powi_scalar(2).mean();
    let g1 = loss(conv2d(x.clone(), w.clone(), None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))).backward();
    let g2 = loss(shift_sum_conv(x.clone(), w.clone(), None)).backward();
    let (gx1, gx2) = (x.grad(&g1).unwrap(), x.grad(&g2).unwrap());
    let (gw1, gw2) = (w.grad(&g1).unwrap(), w.grad(&g2).unwrap());
    assert!(max_rel(gx1, gx2) < 1e-4);
    assert!(max_rel(gw1, gw2) < 1e-4);
}
