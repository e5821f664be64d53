//! Bilinear ×2 upsampling for inference on the flex CPU backend.
//!
//! Not yet specialised: [`bilinear2x`] answers `None` and the dispatch runs burn's interpolation.

use burn::tensor::Tensor;

/// Bilinear ×2 upsampling (`align_corners = false`) of `x` `[N, C, H, W]`; `None` unless this
/// kernel takes the tensor.
pub fn bilinear2x(_x: &Tensor<4>) -> Option<Tensor<4>> {
    None
}
