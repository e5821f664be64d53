//! styleforge engine: the CPU kernels (`kernels`), the style-transfer networks generic over burn's
//! backends (`networks`), the stylisation methods built on them and their registry (`methods`),
//! the trainers (`train`), the model library and downloader (`library`), face-aware avatars
//! (`avatar`), ONNX import and export (`onnx`), and image I/O, tiling and colour operations.

pub mod animation;
pub mod avatar;
pub mod color;
pub mod device;
pub mod error;
pub mod image_io;
pub mod kernels;
pub mod library;
pub mod methods;
pub mod metrics;
pub mod networks;
pub mod onnx;
pub mod sequence;
pub mod shared;
pub mod temporal;
pub mod tiling;
pub mod train;
pub mod video;
pub mod weights;

pub use error::{Error, Result};
