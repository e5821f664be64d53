//! styleforge engine: image I/O, the style-transfer networks (generic over burn's backends),
//! the stylisation methods built on them, tiled inference and the model library.

pub mod adain;
pub mod color;
pub(crate) mod cpu_autodiff;
pub mod cpu_conv;
pub mod cpu_conv_grad;
pub mod cpu_norm;
pub mod cpu_norm_grad;
pub mod cpu_pool;
pub(crate) mod cpu_simd;
pub mod cyclegan;
pub mod device;
pub mod download;
pub mod error;
pub mod fast_style;
pub mod gatys;
pub mod generate;
pub mod image_io;
pub mod layers;
pub mod library;
pub mod model;
pub mod networks;
pub mod shared;
pub mod tiling;
pub mod train;
pub mod weights;

pub use error::{Error, Result};
