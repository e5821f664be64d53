//! The engine's integration tests, one binary: network parity against the reference vectors,
//! methods, training, tiling, sizes, metrics, ONNX and downloads (one module a file).
//! One binary rather than one a file, so that the dependencies are linked once.

mod common;
mod adain_options;
mod avatar;
mod download;
mod gatys_optim;
mod inception_fid;
mod lpips;
mod metrics;
mod microast_method;
mod onnx_export;
mod onnx_import;
mod parity_adain;
mod parity_animegan;
mod parity_cartoongan;
mod parity_cyclegan;
mod parity_dcgan;
mod parity_face_detector;
mod parity_fast_style;
mod parity_gatys;
mod parity_microast;
mod shift_sum_conv;
mod sizes;
mod temporal_consistency;
mod tiling;
mod train_cyclegan;
mod train_dcgan;
mod train_fast_style;
