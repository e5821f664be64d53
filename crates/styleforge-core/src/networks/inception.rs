//! The Inception-v3 of ArtFID as a feature extractor: the 2048 average-pooled features that the
//! FID part of ArtFID compares (Wright and Ommer, "ArtFID: Quantitative Evaluation of Neural Style
//! Transfer", GCPR 2022; reference code: the `art_fid` package, github.com/matthias-wright/art-fid,
//! `art_fid/inception.py` and `art_fid/art_fid.py`, Apache-2.0).
//!
//! The network is torchvision's `Inception3` (Szegedy et al., "Rethinking the Inception
//! Architecture for Computer Vision", CVPR 2016) with two classifier heads `fc1`, `fc2` and two
//! auxiliary heads `AuxLogits1`, `AuxLogits2`, none of which the features use:
//!
//! - stem: `Conv2d_1a_3x3` (3→32, stride 2), `Conv2d_2a_3x3` (32→32), `Conv2d_2b_3x3` (32→64,
//!   padding 1), 3×3 max pool at stride 2, `Conv2d_3b_1x1` (64→80), `Conv2d_4a_3x3` (80→192),
//!   3×3 max pool at stride 2;
//! - `Mixed_5b`, `Mixed_5c`, `Mixed_5d`: InceptionA (1×1; 1×1 → 5×5; 1×1 → 3×3 → 3×3; 3×3 average
//!   pool → 1×1), 256, 288 and 288 outputs;
//! - `Mixed_6a`: InceptionB (3×3 at stride 2; 1×1 → 3×3 → 3×3 at stride 2; 3×3 max pool at
//!   stride 2), 768 outputs;
//! - `Mixed_6b` to `Mixed_6e`: InceptionC with factorised 7×7 convolutions (1×7 with padding
//!   (0, 3), 7×1 with padding (3, 0)) on 128, 160, 160 and 192 channels, 768 outputs;
//! - `Mixed_7a`: InceptionD (1×1 → 3×3 at stride 2; 1×1 → 1×7 → 7×1 → 3×3 at stride 2; 3×3 max
//!   pool at stride 2), 1280 outputs;
//! - `Mixed_7b`, `Mixed_7c`: InceptionE (with the 1×3 and 3×1 halves of each split branch
//!   concatenated), 2048 outputs;
//! - adaptive average pool to 1×1: the features `[N, 2048]`.
//!
//! Every convolution is a `BasicConv2d`: convolution without bias, BatchNorm with eps 1e-3 (in
//! evaluation mode: running statistics), ReLU. The BatchNorm is folded into the convolution's
//! kernel and a bias at load, in `f64`. Max pools are 3×3 at stride 2 without padding (floor
//! mode); average pools are 3×3 at stride 1 with padding 1 and PyTorch's default
//! `count_include_pad=True` (every window divided by 9, padding included). Every convolution runs
//! through [`kernels::conv2d`], every pool through [`kernels::max_pool2d`] and
//! [`kernels::avg_pool2d`].
//!
//! Input is RGB in 0..1 `[N, 3, H, W]`, taken exactly as given: `art_fid` feeds `ToTensor()`
//! pictures at their own size with `transform_input=False`, so there is no resize and no
//! normalisation. The smallest input is 75×75 (the size that leaves a 3×3 map for `Mixed_7a`'s
//! stride-2 layers; see [`MIN_SIZE`]).
//!
//! Weights are the PyTorch state dict of `art_fid.inception.Inception3` (names such as
//! `Conv2d_1a_3x3.conv.weight`, `Conv2d_1a_3x3.bn.running_var`, `Mixed_5b.branch1x1.conv.weight`);
//! ArtFID's trained checkpoint is [`ART_INCEPTION_URL`]. `fc1.*`, `fc2.*`, `AuxLogits*` and
//! `num_batches_tracked` tensors are ignored.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels::{self, Geometry};
use crate::weights::{HostTensor, Weights};

/// ArtFID's Inception-v3 checkpoint (trained on art images; `art_fid.art_fid.CKPT_URL`).
pub const ART_INCEPTION_URL: &str =
    "https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth";

/// BatchNorm's eps in every `BasicConv2d`.
pub const BN_EPS: f64 = 1e-3;

/// The number of features per picture.
pub const FEATURES: usize = 2048;

/// The smallest height and width [`Inception3::features`] takes. Each of the five stride-2
/// layers (3×3, no padding, floor mode: `Conv2d_1a_3x3`, the stem's two max pools, `Mixed_6a`,
/// `Mixed_7a`) maps a side `s` to `(s - 3)/2 + 1`, and the stem's two unpadded 3×3 convolutions
/// (`Conv2d_2a_3x3`, `Conv2d_4a_3x3`) take 2 off: 75 → 37 → 35 → 17 → 15 → 7 → 3 → 1, so
/// `Mixed_7a` receives a 3×3 map and leaves 1×1. From 74: 36, 34, 16, 14, 6, then 2, where
/// `Mixed_7a`'s 3×3 windows no longer fit. (The same bound as torchvision's Inception-v3.)
pub const MIN_SIZE: usize = 75;

/// A `BasicConv2d` with its BatchNorm folded in: convolution with bias, then ReLU.
#[derive(Module, Debug)]
pub struct BasicConv {
    /// Kernel `[out, in, kh, kw]`, scaled by `γ / sqrt(running_var + eps)`.
    weight: Param<Tensor<4>>,
    /// `β - running_mean·γ / sqrt(running_var + eps)`, `[out]`.
    bias: Param<Tensor<1>>,
    /// Stride and zero padding (`[top, bottom, left, right]`), ReLU on.
    #[module(skip)]
    geometry: Geometry,
}

impl BasicConv {
    /// Loads `{name}.conv.weight` `shape` = `[out, in, kh, kw]` and `{name}.bn.{weight, bias,
    /// running_mean, running_var}` `[out]`, and folds the norm into the kernel.
    fn load(
        l: &Loader<'_>,
        name: &str,
        shape: [usize; 4],
        stride: usize,
        [ph, pw]: [usize; 2],
    ) -> Result<Self> {
        let name = format!("{}{name}", l.prefix);
        let kernel = l.checked(&format!("{name}.conv.weight"), &shape)?;
        let co = shape[0];
        let [gamma, beta, mean, var] = ["weight", "bias", "running_mean", "running_var"]
            .map(|p| l.checked(&format!("{name}.bn.{p}"), &[co]));
        let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
        let per_out = kernel.data.len() / co;
        let mut folded = Vec::with_capacity(kernel.data.len());
        let mut bias = Vec::with_capacity(co);
        for o in 0..co {
            let scale = gamma.data[o] as f64 / (var.data[o] as f64 + BN_EPS).sqrt();
            folded.extend(
                kernel.data[o * per_out..(o + 1) * per_out]
                    .iter()
                    .map(|&v| (v as f64 * scale) as f32),
            );
            bias.push((beta.data[o] as f64 - mean.data[o] as f64 * scale) as f32);
        }
        Ok(Self {
            weight: Param::from_tensor(
                HostTensor::new(shape.to_vec(), folded).to_tensor(l.device)?,
            ),
            bias: Param::from_tensor(HostTensor::new(vec![co], bias).to_tensor(l.device)?),
            geometry: Geometry {
                stride,
                pad: [ph, ph, pw, pw],
                reflect: false,
                upsample: false,
                relu: true,
            },
        })
    }

    /// Convolution, folded norm and ReLU of `x` `[N, in, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        kernels::conv2d(x, self.weight.val(), Some(self.bias.val()), self.geometry)
    }
}

/// The loader of one block's convolutions (`{prefix}{name}`), which notes every tensor it reads.
struct Loader<'a> {
    w: &'a Weights,
    prefix: &'a str,
    device: &'a Device,
    read: &'a RefCell<BTreeSet<String>>,
}

impl<'a> Loader<'a> {
    /// The same weights with another prefix (`Mixed_5b.`).
    fn block(&self, prefix: &'a str) -> Self {
        Self { prefix, ..*self }
    }

    /// The tensor `name`, which must have `shape`.
    fn checked(&self, name: &str, shape: &[usize]) -> Result<&'a HostTensor> {
        let t = self.w.get(name)?;
        if t.shape != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        self.read.borrow_mut().insert(name.to_string());
        Ok(t)
    }

    /// A square `k`×`k` convolution `in → out` with `stride` and padding `pad` on every side.
    fn square(
        &self,
        name: &str,
        [co, ci]: [usize; 2],
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<BasicConv> {
        BasicConv::load(self, name, [co, ci, k, k], stride, [pad, pad])
    }

    /// A `1×k` (`wide`) or `k×1` convolution `in → out` at stride 1 that keeps the size: padding
    /// `k/2` across the kernel's long axis only.
    fn line(&self, name: &str, [co, ci]: [usize; 2], k: usize, wide: bool) -> Result<BasicConv> {
        let (shape, pad) = if wide {
            ([co, ci, 1, k], [0, k / 2])
        } else {
            ([co, ci, k, 1], [k / 2, 0])
        };
        BasicConv::load(self, name, shape, 1, pad)
    }
}

/// InceptionA (`Mixed_5b`..`Mixed_5d`): `64 + 64 + 96 + pool_features` outputs.
#[derive(Module, Debug)]
pub struct InceptionA {
    branch1x1: BasicConv,
    branch5x5_1: BasicConv,
    branch5x5_2: BasicConv,
    branch3x3dbl_1: BasicConv,
    branch3x3dbl_2: BasicConv,
    branch3x3dbl_3: BasicConv,
    branch_pool: BasicConv,
}

impl InceptionA {
    fn load(l: &Loader<'_>, ci: usize, pool_features: usize) -> Result<Self> {
        Ok(Self {
            branch1x1: l.square("branch1x1", [64, ci], 1, 1, 0)?,
            branch5x5_1: l.square("branch5x5_1", [48, ci], 1, 1, 0)?,
            branch5x5_2: l.square("branch5x5_2", [64, 48], 5, 1, 2)?,
            branch3x3dbl_1: l.square("branch3x3dbl_1", [64, ci], 1, 1, 0)?,
            branch3x3dbl_2: l.square("branch3x3dbl_2", [96, 64], 3, 1, 1)?,
            branch3x3dbl_3: l.square("branch3x3dbl_3", [96, 96], 3, 1, 1)?,
            branch_pool: l.square("branch_pool", [pool_features, ci], 1, 1, 0)?,
        })
    }

    /// The block on `x` `[N, in, H, W]`: `[N, 224 + pool_features, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self
            .branch5x5_2
            .forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_1.forward(x.clone());
        let b3 = self.branch3x3dbl_3.forward(self.branch3x3dbl_2.forward(b3));
        let bp = self.branch_pool.forward(kernels::avg_pool2d(x, 3, 1, 1));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }
}

/// InceptionB (`Mixed_6a`): halves the size, `384 + 96 + in` outputs.
#[derive(Module, Debug)]
pub struct InceptionB {
    branch3x3: BasicConv,
    branch3x3dbl_1: BasicConv,
    branch3x3dbl_2: BasicConv,
    branch3x3dbl_3: BasicConv,
}

impl InceptionB {
    fn load(l: &Loader<'_>, ci: usize) -> Result<Self> {
        Ok(Self {
            branch3x3: l.square("branch3x3", [384, ci], 3, 2, 0)?,
            branch3x3dbl_1: l.square("branch3x3dbl_1", [64, ci], 1, 1, 0)?,
            branch3x3dbl_2: l.square("branch3x3dbl_2", [96, 64], 3, 1, 1)?,
            branch3x3dbl_3: l.square("branch3x3dbl_3", [96, 96], 3, 2, 0)?,
        })
    }

    /// The block on `x` `[N, in, H, W]`: `[N, 480 + in, (H - 3)/2 + 1, (W - 3)/2 + 1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_1.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(self.branch3x3dbl_2.forward(bd));
        let bp = kernels::max_pool2d(x, 3, 2);
        Tensor::cat(vec![b3, bd, bp], 1)
    }
}

/// InceptionC (`Mixed_6b`..`Mixed_6e`): factorised 7×7 convolutions on `channels_7x7`
/// channels, 768 outputs.
#[derive(Module, Debug)]
pub struct InceptionC {
    branch1x1: BasicConv,
    branch7x7_1: BasicConv,
    branch7x7_2: BasicConv,
    branch7x7_3: BasicConv,
    branch7x7dbl_1: BasicConv,
    branch7x7dbl_2: BasicConv,
    branch7x7dbl_3: BasicConv,
    branch7x7dbl_4: BasicConv,
    branch7x7dbl_5: BasicConv,
    branch_pool: BasicConv,
}

impl InceptionC {
    fn load(l: &Loader<'_>, ci: usize, c7: usize) -> Result<Self> {
        Ok(Self {
            branch1x1: l.square("branch1x1", [192, ci], 1, 1, 0)?,
            branch7x7_1: l.square("branch7x7_1", [c7, ci], 1, 1, 0)?,
            branch7x7_2: l.line("branch7x7_2", [c7, c7], 7, true)?,
            branch7x7_3: l.line("branch7x7_3", [192, c7], 7, false)?,
            branch7x7dbl_1: l.square("branch7x7dbl_1", [c7, ci], 1, 1, 0)?,
            branch7x7dbl_2: l.line("branch7x7dbl_2", [c7, c7], 7, false)?,
            branch7x7dbl_3: l.line("branch7x7dbl_3", [c7, c7], 7, true)?,
            branch7x7dbl_4: l.line("branch7x7dbl_4", [c7, c7], 7, false)?,
            branch7x7dbl_5: l.line("branch7x7dbl_5", [192, c7], 7, true)?,
            branch_pool: l.square("branch_pool", [192, ci], 1, 1, 0)?,
        })
    }

    /// The block on `x` `[N, in, H, W]`: `[N, 768, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b7 = self.branch7x7_1.forward(x.clone());
        let b7 = self.branch7x7_3.forward(self.branch7x7_2.forward(b7));
        let bd = self.branch7x7dbl_1.forward(x.clone());
        let bd = self.branch7x7dbl_3.forward(self.branch7x7dbl_2.forward(bd));
        let bd = self.branch7x7dbl_5.forward(self.branch7x7dbl_4.forward(bd));
        let bp = self.branch_pool.forward(kernels::avg_pool2d(x, 3, 1, 1));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }
}

/// InceptionD (`Mixed_7a`): halves the size, `320 + 192 + in` outputs.
#[derive(Module, Debug)]
pub struct InceptionD {
    branch3x3_1: BasicConv,
    branch3x3_2: BasicConv,
    branch7x7x3_1: BasicConv,
    branch7x7x3_2: BasicConv,
    branch7x7x3_3: BasicConv,
    branch7x7x3_4: BasicConv,
}

impl InceptionD {
    fn load(l: &Loader<'_>, ci: usize) -> Result<Self> {
        Ok(Self {
            branch3x3_1: l.square("branch3x3_1", [192, ci], 1, 1, 0)?,
            branch3x3_2: l.square("branch3x3_2", [320, 192], 3, 2, 0)?,
            branch7x7x3_1: l.square("branch7x7x3_1", [192, ci], 1, 1, 0)?,
            branch7x7x3_2: l.line("branch7x7x3_2", [192, 192], 7, true)?,
            branch7x7x3_3: l.line("branch7x7x3_3", [192, 192], 7, false)?,
            branch7x7x3_4: l.square("branch7x7x3_4", [192, 192], 3, 2, 0)?,
        })
    }

    /// The block on `x` `[N, in, H, W]`: `[N, 512 + in, (H - 3)/2 + 1, (W - 3)/2 + 1]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self
            .branch3x3_2
            .forward(self.branch3x3_1.forward(x.clone()));
        let b7 = self.branch7x7x3_1.forward(x.clone());
        let b7 = self.branch7x7x3_3.forward(self.branch7x7x3_2.forward(b7));
        let b7 = self.branch7x7x3_4.forward(b7);
        let bp = kernels::max_pool2d(x, 3, 2);
        Tensor::cat(vec![b3, b7, bp], 1)
    }
}

/// InceptionE (`Mixed_7b`, `Mixed_7c`): 2048 outputs.
#[derive(Module, Debug)]
pub struct InceptionE {
    branch1x1: BasicConv,
    branch3x3_1: BasicConv,
    branch3x3_2a: BasicConv,
    branch3x3_2b: BasicConv,
    branch3x3dbl_1: BasicConv,
    branch3x3dbl_2: BasicConv,
    branch3x3dbl_3a: BasicConv,
    branch3x3dbl_3b: BasicConv,
    branch_pool: BasicConv,
}

impl InceptionE {
    fn load(l: &Loader<'_>, ci: usize) -> Result<Self> {
        Ok(Self {
            branch1x1: l.square("branch1x1", [320, ci], 1, 1, 0)?,
            branch3x3_1: l.square("branch3x3_1", [384, ci], 1, 1, 0)?,
            branch3x3_2a: l.line("branch3x3_2a", [384, 384], 3, true)?,
            branch3x3_2b: l.line("branch3x3_2b", [384, 384], 3, false)?,
            branch3x3dbl_1: l.square("branch3x3dbl_1", [448, ci], 1, 1, 0)?,
            branch3x3dbl_2: l.square("branch3x3dbl_2", [384, 448], 3, 1, 1)?,
            branch3x3dbl_3a: l.line("branch3x3dbl_3a", [384, 384], 3, true)?,
            branch3x3dbl_3b: l.line("branch3x3dbl_3b", [384, 384], 3, false)?,
            branch_pool: l.square("branch_pool", [192, ci], 1, 1, 0)?,
        })
    }

    /// The block on `x` `[N, in, H, W]`: `[N, 2048, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let t = self.branch3x3_1.forward(x.clone());
        let b3 = [
            self.branch3x3_2a.forward(t.clone()),
            self.branch3x3_2b.forward(t),
        ];
        let d = self
            .branch3x3dbl_2
            .forward(self.branch3x3dbl_1.forward(x.clone()));
        let bd = [
            self.branch3x3dbl_3a.forward(d.clone()),
            self.branch3x3dbl_3b.forward(d),
        ];
        let bp = self.branch_pool.forward(kernels::avg_pool2d(x, 3, 1, 1));
        let [b3a, b3b] = b3;
        let [bda, bdb] = bd;
        Tensor::cat(vec![b1, b3a, b3b, bda, bdb, bp], 1)
    }
}

/// ArtFID's Inception-v3 up to its average-pooled features (the classifier and auxiliary heads
/// are not loaded).
#[derive(Module, Debug)]
pub struct Inception3 {
    conv2d_1a_3x3: BasicConv,
    conv2d_2a_3x3: BasicConv,
    conv2d_2b_3x3: BasicConv,
    conv2d_3b_1x1: BasicConv,
    conv2d_4a_3x3: BasicConv,
    mixed_5b: InceptionA,
    mixed_5c: InceptionA,
    mixed_5d: InceptionA,
    mixed_6a: InceptionB,
    mixed_6b: InceptionC,
    mixed_6c: InceptionC,
    mixed_6d: InceptionC,
    mixed_6e: InceptionC,
    mixed_7a: InceptionD,
    mixed_7b: InceptionE,
    mixed_7c: InceptionE,
}

/// Whether a state-dict tensor is one the features do not use: the classifier heads `fc1`,
/// `fc2`, the auxiliary heads and BatchNorm's step counters.
fn ignored(name: &str) -> bool {
    name.starts_with("fc1.")
        || name.starts_with("fc2.")
        || name.starts_with("AuxLogits")
        || name.ends_with("num_batches_tracked")
}

impl Inception3 {
    /// Whether the weights look like an Inception-v3 state dict (`Conv2d_1a_3x3.conv.weight` and
    /// `Mixed_7c.branch_pool.conv.weight` present).
    pub fn detect(w: &Weights) -> bool {
        w.has("Conv2d_1a_3x3.conv.weight") && w.has("Mixed_7c.branch_pool.conv.weight")
    }

    /// Loads a checkpoint (`.pth` or `.safetensors`) holding `art_fid.inception.Inception3`'s
    /// state dict, such as [`ART_INCEPTION_URL`]'s. Errors as [`Inception3::from_weights`], with
    /// the file's path.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let w = Weights::load(path)?;
        Self::from_weights(&w, device).map_err(|e| match e {
            Error::Weights(m) => Error::Weights(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Builds the extractor from `art_fid.inception.Inception3`'s state dict (torchvision's
    /// names: `Conv2d_1a_3x3.conv.weight`, `Conv2d_1a_3x3.bn.{weight, bias, running_mean,
    /// running_var}`, `Mixed_5b.branch1x1.conv.weight`, ...), folding each BatchNorm into its
    /// convolution. `fc1.*`, `fc2.*`, `AuxLogits*` and `*.num_batches_tracked` are ignored.
    ///
    /// Errors: [`Error::Weights`] naming the tensor when one is missing or has the wrong shape,
    /// or naming the tensors that belong to no layer of the network (a different file).
    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        let read = RefCell::new(BTreeSet::new());
        let stem = Loader {
            w,
            prefix: "",
            device,
            read: &read,
        };
        let net = Self {
            conv2d_1a_3x3: stem.square("Conv2d_1a_3x3", [32, 3], 3, 2, 0)?,
            conv2d_2a_3x3: stem.square("Conv2d_2a_3x3", [32, 32], 3, 1, 0)?,
            conv2d_2b_3x3: stem.square("Conv2d_2b_3x3", [64, 32], 3, 1, 1)?,
            conv2d_3b_1x1: stem.square("Conv2d_3b_1x1", [80, 64], 1, 1, 0)?,
            conv2d_4a_3x3: stem.square("Conv2d_4a_3x3", [192, 80], 3, 1, 0)?,
            mixed_5b: InceptionA::load(&stem.block("Mixed_5b."), 192, 32)?,
            mixed_5c: InceptionA::load(&stem.block("Mixed_5c."), 256, 64)?,
            mixed_5d: InceptionA::load(&stem.block("Mixed_5d."), 288, 64)?,
            mixed_6a: InceptionB::load(&stem.block("Mixed_6a."), 288)?,
            mixed_6b: InceptionC::load(&stem.block("Mixed_6b."), 768, 128)?,
            mixed_6c: InceptionC::load(&stem.block("Mixed_6c."), 768, 160)?,
            mixed_6d: InceptionC::load(&stem.block("Mixed_6d."), 768, 160)?,
            mixed_6e: InceptionC::load(&stem.block("Mixed_6e."), 768, 192)?,
            mixed_7a: InceptionD::load(&stem.block("Mixed_7a."), 768)?,
            mixed_7b: InceptionE::load(&stem.block("Mixed_7b."), 1280)?,
            mixed_7c: InceptionE::load(&stem.block("Mixed_7c."), 2048)?,
        };
        let read = read.into_inner();
        w.reject_unexpected(|k| ignored(k) || read.contains(k))
            .map_err(|e| {
                Error::Weights(format!("not art_fid's Inception3 state dict: {}", strip(e)))
            })?;
        Ok(net)
    }

    /// The 2048 features of each picture of `x`, RGB in 0..1 `[N, 3, H, W]` taken as given (no
    /// resize, no normalisation, as `art_fid` feeds `ToTensor()` pictures): the adaptive average
    /// pool to 1×1 after `Mixed_7c`, flattened to `[N, 2048]` (`model(x, return_features=True)`).
    ///
    /// Errors: [`Error::Param`] when `x` does not have 3 channels, holds no picture, or is smaller
    /// than [`MIN_SIZE`]×[`MIN_SIZE`] (75×75) pixels.
    pub fn features(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let [n, c, h, w] = x.dims();
        if c != 3 {
            return Err(Error::Param(format!(
                "Inception-v3 takes RGB pictures [N, 3, H, W], got {c} channels"
            )));
        }
        if n == 0 {
            return Err(Error::Param(
                "Inception-v3 features of an empty batch".into(),
            ));
        }
        if h < MIN_SIZE || w < MIN_SIZE {
            return Err(Error::Param(format!(
                "Inception-v3 needs pictures of at least {MIN_SIZE}×{MIN_SIZE} pixels (its stride-2 layers leave nothing of smaller ones), got {w}×{h}"
            )));
        }
        let x = self.conv2d_1a_3x3.forward(x);
        let x = self.conv2d_2a_3x3.forward(x);
        let x = self.conv2d_2b_3x3.forward(x);
        let x = kernels::max_pool2d(x, 3, 2);
        let x = self.conv2d_3b_1x1.forward(x);
        let x = self.conv2d_4a_3x3.forward(x);
        let x = kernels::max_pool2d(x, 3, 2);
        let x = self.mixed_5b.forward(x);
        let x = self.mixed_5c.forward(x);
        let x = self.mixed_5d.forward(x);
        let x = self.mixed_6a.forward(x);
        let x = self.mixed_6b.forward(x);
        let x = self.mixed_6c.forward(x);
        let x = self.mixed_6d.forward(x);
        let x = self.mixed_6e.forward(x);
        let x = self.mixed_7a.forward(x);
        let x = self.mixed_7b.forward(x);
        let x = self.mixed_7c.forward(x);
        let [n, c, _, _] = x.dims();
        Ok(x.mean_dim(2).mean_dim(3).reshape([n, c]))
    }
}

/// The message of a weights error, without the `weights:` of its display.
fn strip(e: Error) -> String {
    match e {
        Error::Weights(m) => m,
        other => other.to_string(),
    }
}
