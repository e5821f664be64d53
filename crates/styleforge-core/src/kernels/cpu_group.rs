//! Grouped and depthwise convolutions for inference on the flex CPU backend.
//!
//! Not yet specialised: [`conv2d`] answers `None` and the dispatch runs burn's grouped
//! convolution.

use burn::tensor::Tensor;

use crate::kernels::Geometry;

/// A grouped convolution of `x` `[N, C, H, W]` with `weight` `[O, C/groups, k, k]`; `None` unless
/// this kernel takes the tensors.
pub fn conv2d(_x: &Tensor<4>, _weight: &Tensor<4>, _bias: Option<&Tensor<1>>, _g: Geometry) -> Option<Tensor<4>> {
    None
}
