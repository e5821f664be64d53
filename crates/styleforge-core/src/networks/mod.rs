//! The networks, one file each, built from [`crate::weights::Weights`] and generic over burn's backends (chosen by `Device`).

pub mod adain;
pub mod alexnet;
pub mod animegan;
pub mod cartoongan;
pub mod cyclegan;
pub mod dcgan;
pub mod face_detector;
pub mod engstrom;
pub mod inception;
pub mod layers;
pub mod microast;
pub mod transformer_net;
pub mod vgg;
