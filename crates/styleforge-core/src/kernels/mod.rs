//! The CPU kernels: convolutions, transposed convolutions, instance norms and pooling on `flex`
//! tensors, plain (`cpu_conv`, `cpu_norm`, `cpu_pool`) and as custom operations on burn's
//! autodiff graph (`cpu_conv_grad`, `cpu_norm_grad`), with their memory-bound loops vectorised
//! in `cpu_simd`. The networks reach them through the layers in [`crate::networks::layers`].

pub(crate) mod cpu_autodiff;
pub mod cpu_conv;
pub mod cpu_conv_grad;
pub mod cpu_norm;
pub mod cpu_norm_grad;
pub mod cpu_pool;
pub(crate) mod cpu_simd;
