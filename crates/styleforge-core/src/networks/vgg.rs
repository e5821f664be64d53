//! VGG16 and VGG19 feature extractors in torchvision's layout (`features.N.weight/bias`), the
//! perceptual networks behind optimisation-based style transfer.
//!
//! One implementation serves both variants: a configuration lists the convolutions and pools of
//! `torchvision.models.vgg{16,19}().features` (3×3 convolutions with zero padding 1, each followed
//! by ReLU; `MaxPool2d(2, 2)` between blocks). Module `N` of the `Sequential` is addressed by the
//! usual names: `conv3_1`, `relu3_1` (the ReLU after it), `pool3`.
//!
//! The pretrained ImageNet weights are torchvision's:
//! - VGG19: <https://download.pytorch.org/models/vgg19-dcbb9e9d.pth>
//! - VGG16: <https://download.pytorch.org/models/vgg16-397923af.pth>
//!
//! The eight hex digits in each file name are the prefix of the file's SHA-256, which
//! `torch.hub` verifies. A file may hold fewer layers than the full network (for example only
//! `features.0` to `features.28`, up to conv5_1): the extractor is built with the layers present and
//! refuses requests for deeper ones. The `classifier.*` tensors of a full checkpoint are ignored.
//!
//! Input is RGB in `[0, 1]`, NCHW; the ImageNet normalisation (mean 0.485, 0.456, 0.406; standard
//! deviation 0.229, 0.224, 0.225) is applied inside, as torchvision's models expect it.

use std::path::Path;

use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::kernels;
use crate::networks::layers::{Conv, Padding};
use crate::weights::Weights;

/// ImageNet channel means (RGB, `[0, 1]` scale).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB, `[0, 1]` scale).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// torchvision's VGG19 ImageNet weights.
pub const VGG19_URL: &str = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth";
/// torchvision's VGG16 ImageNet weights.
pub const VGG16_URL: &str = "https://download.pytorch.org/models/vgg16-397923af.pth";

/// Output channels of the five blocks (each a run of 3×3 convolutions, then a pool).
const BLOCK_WIDTHS: [usize; 5] = [64, 128, 256, 512, 512];

/// The VGG variants styleforge reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VggVariant {
    /// 13 convolutions (torchvision `vgg16`, configuration "D").
    Vgg16,
    /// 16 convolutions (torchvision `vgg19`, configuration "E").
    Vgg19,
}

impl VggVariant {
    /// Both variants, the one most used for style transfer first.
    pub const ALL: [VggVariant; 2] = [VggVariant::Vgg19, VggVariant::Vgg16];

    /// The variant's name (`vgg16`, `vgg19`).
    pub fn name(self) -> &'static str {
        match self {
            VggVariant::Vgg16 => "vgg16",
            VggVariant::Vgg19 => "vgg19",
        }
    }

    /// Parses `vgg16` / `vgg19` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "vgg16" => Some(VggVariant::Vgg16),
            "vgg19" => Some(VggVariant::Vgg19),
            _ => None,
        }
    }

    /// torchvision's download address for the ImageNet weights.
    pub fn url(self) -> &'static str {
        match self {
            VggVariant::Vgg16 => VGG16_URL,
            VggVariant::Vgg19 => VGG19_URL,
        }
    }

    /// The SHA-256 prefix in the file name (what `torch.hub` checks).
    pub fn sha256_prefix(self) -> &'static str {
        match self {
            VggVariant::Vgg16 => "397923af",
            VggVariant::Vgg19 => "dcbb9e9d",
        }
    }

    /// Convolutions per block: torchvision's configurations "D" (VGG16) and "E" (VGG19).
    fn block_convs(self) -> [usize; 5] {
        match self {
            VggVariant::Vgg16 => [2, 2, 3, 3, 3],
            VggVariant::Vgg19 => [2, 2, 4, 4, 4],
        }
    }

    /// Number of convolutions in the full network.
    pub fn conv_count(self) -> usize {
        self.block_convs().iter().sum()
    }

    /// Every named layer of the full network, in order, with its `features` index.
    pub fn layers(self) -> Vec<LayerInfo> {
        let mut out = Vec::new();
        let (mut index, mut conv) = (0, 0);
        let mut in_ch = 3;
        for (b, (&convs, &ch)) in (1..).zip(self.block_convs().iter().zip(&BLOCK_WIDTHS)) {
            for i in 1..=convs {
                out.push(LayerInfo {
                    name: format!("conv{b}_{i}"),
                    index,
                    kind: LayerKind::Conv {
                        conv,
                        shape: [ch, in_ch, 3, 3],
                    },
                });
                out.push(LayerInfo {
                    name: format!("relu{b}_{i}"),
                    index: index + 1,
                    kind: LayerKind::Relu,
                });
                index += 2;
                conv += 1;
                in_ch = ch;
            }
            out.push(LayerInfo {
                name: format!("pool{b}"),
                index,
                kind: LayerKind::Pool,
            });
            index += 1;
        }
        out
    }

    /// Whether the weights hold `features.0` in this variant's layout, with no tensor that
    /// contradicts it.
    pub fn matches(self, w: &Weights) -> bool {
        let Ok(prefix) = features_prefix(w) else {
            return false;
        };
        count_convs(self, w, &prefix).is_ok()
    }
}

/// What a named layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// A 3×3 convolution: its number among the convolutions (0-based) and kernel shape.
    Conv {
        /// Position among the network's convolutions.
        conv: usize,
        /// `[out, in, 3, 3]`.
        shape: [usize; 4],
    },
    /// The ReLU after a convolution.
    Relu,
    /// A 2×2 max pool with stride 2.
    Pool,
}

/// A named layer of a VGG network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// `conv3_1`, `relu3_1`, `pool3`...
    pub name: String,
    /// Index of the module in torchvision's `features` `Sequential`.
    pub index: usize,
    /// What the module does.
    pub kind: LayerKind,
}

/// A VGG feature extractor with the convolutions its weights hold.
#[derive(Module, Debug)]
pub struct Vgg {
    convs: Vec<Conv>,
    #[module(skip)]
    variant: VggVariant,
}

impl Vgg {
    /// Loads a torchvision checkpoint (`.pth`, float32 or float16, or `.safetensors`), recognising
    /// the variant from its tensors.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let w = Weights::load(path)?;
        Self::from_weights(&w, None, device)
            .map_err(|e| Error::Weights(format!("{}: {}", path.display(), strip(e))))
    }

    /// Builds the extractor from a state dict. `variant` forces a layout; `None` recognises it
    /// (VGG19 first; a file that stops before the first layer where the two differ, conv3_4, is
    /// read as VGG19). Keys are `features.N.weight/bias` or bare `N.weight/bias`.
    pub fn from_weights(w: &Weights, variant: Option<VggVariant>, device: &Device) -> Result<Self> {
        let prefix = features_prefix(w)?;
        let (variant, count) = match variant {
            Some(v) => (v, count_convs(v, w, &prefix)?),
            None => {
                let mut first_err = None;
                let mut found = None;
                for v in VggVariant::ALL {
                    match count_convs(v, w, &prefix) {
                        Ok(n) => {
                            found = Some((v, n));
                            break;
                        }
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                match found {
                    Some(f) => f,
                    None => {
                        return Err(Error::Weights(format!(
                            "not a torchvision VGG16/VGG19 feature extractor ({})",
                            strip(first_err.expect("tried a variant"))
                        )));
                    }
                }
            }
        };
        let mut convs = Vec::with_capacity(count);
        for info in variant.layers() {
            if let LayerKind::Conv { conv, shape } = info.kind {
                if conv >= count {
                    break;
                }
                convs.push(Conv::load(
                    w,
                    &format!("{prefix}{}.", info.index),
                    shape,
                    true,
                    1,
                    Padding::Zero,
                    device,
                )?);
            }
        }
        Ok(Self { convs, variant })
    }

    /// The variant.
    pub fn variant(&self) -> VggVariant {
        self.variant
    }

    /// Number of convolutions the weights provide (16 for a full VGG19, 13 for VGG16).
    pub fn conv_count(&self) -> usize {
        self.convs.len()
    }

    /// The named layers this extractor can compute, in order.
    pub fn available_layers(&self) -> Vec<LayerInfo> {
        let n = self.convs.len();
        self.variant
            .layers()
            .into_iter()
            .take_while(|l| !matches!(l.kind, LayerKind::Conv { conv, .. } if conv >= n))
            .collect()
    }

    /// The deepest layer available (`relu5_1` for a file that stops at conv5_1).
    pub fn deepest_layer(&self) -> String {
        self.available_layers()
            .into_iter()
            .rev()
            .find(|l| l.kind == LayerKind::Relu)
            .map(|l| l.name)
            .unwrap_or_default()
    }

    /// The `features` index of a named layer, or an error saying which layers exist.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        let all = self.variant.layers();
        let Some(info) = all.iter().find(|l| l.name == name) else {
            return Err(Error::Param(format!(
                "{} has no layer `{name}` (names look like relu4_2, conv3_1, pool2)",
                self.variant.name()
            )));
        };
        let available = self.available_layers();
        if available.iter().any(|l| l.name == name) {
            Ok(info.index)
        } else {
            Err(Error::Param(format!(
                "layer `{name}` is deeper than the loaded {} weights reach (they end at {})",
                self.variant.name(),
                self.deepest_layer()
            )))
        }
    }

    /// Checks that every name is a layer this extractor computes.
    pub fn check_layers(&self, names: &[&str]) -> Result<()> {
        names
            .iter()
            .try_for_each(|n| self.layer_index(n).map(|_| ()))
    }

    /// ImageNet normalisation of RGB `[0, 1]` NCHW input.
    pub fn normalize(x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let mean = Tensor::<1>::from_data(TensorData::new(IMAGENET_MEAN.to_vec(), [3]), &device)
            .reshape([1, 3, 1, 1]);
        let std = Tensor::<1>::from_data(TensorData::new(IMAGENET_STD.to_vec(), [3]), &device)
            .reshape([1, 3, 1, 1]);
        (x - mean) / std
    }

    /// Runs the network on RGB `[0, 1]` NCHW input and returns the named layers, in the order
    /// asked (a name may repeat). Computation stops at the deepest layer requested.
    pub fn forward(&self, x: Tensor<4>, names: &[&str]) -> Result<Vec<Tensor<4>>> {
        let indices = names
            .iter()
            .map(|n| self.layer_index(n))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.forward_indices(x, &indices))
    }

    /// Like [`Vgg::forward`], with `features` indices already checked by [`Vgg::layer_index`].
    pub fn forward_indices(&self, x: Tensor<4>, indices: &[usize]) -> Vec<Tensor<4>> {
        let mut out: Vec<Option<Tensor<4>>> = vec![None; indices.len()];
        let Some(&deepest) = indices.iter().max() else {
            return Vec::new();
        };
        let mut y = Self::normalize(x);
        let mut keep = |index: usize, y: &Tensor<4>| {
            for (slot, &want) in out.iter_mut().zip(indices) {
                if want == index {
                    *slot = Some(y.clone());
                }
            }
        };
        let layers = self.variant.layers();
        let mut relu_done = false;
        for (i, info) in layers.iter().enumerate() {
            if info.index > deepest {
                break;
            }
            y = match info.kind {
                LayerKind::Conv { conv, .. } => {
                    // A ReLU right after a convolution whose own output nobody asked for runs
                    // in the convolution's output pass.
                    let fuse = !indices.contains(&info.index)
                        && layers.get(i + 1).is_some_and(|next| matches!(next.kind, LayerKind::Relu));
                    relu_done = fuse;
                    if fuse { self.convs[conv].forward_relu(y) } else { self.convs[conv].forward(y) }
                }
                LayerKind::Relu if relu_done => {
                    relu_done = false;
                    y
                }
                LayerKind::Relu => relu(y),
                LayerKind::Pool => kernels::max_pool2x2(y, false),
            };
            keep(info.index, &y);
        }
        out.into_iter()
            .map(|t| t.expect("every index was checked against the loaded layers"))
            .collect()
    }
}

/// `features.` or the empty prefix, whichever the file uses.
fn features_prefix(w: &Weights) -> Result<String> {
    if w.has("features.0.weight") {
        Ok("features.".into())
    } else if w.has("0.weight") {
        Ok(String::new())
    } else {
        Err(Error::Weights(
            "no `features.0.weight` (not a torchvision VGG state dict)".into(),
        ))
    }
}

/// How many convolutions of `variant` the file holds (a prefix of the network, at least one),
/// checking every shape and rejecting feature tensors the layout does not have.
fn count_convs(variant: VggVariant, w: &Weights, prefix: &str) -> Result<usize> {
    let mut count = 0;
    let mut expected = Vec::new();
    let mut ended = false;
    for info in variant.layers() {
        let LayerKind::Conv { shape, .. } = info.kind else {
            continue;
        };
        let weight = format!("{prefix}{}.weight", info.index);
        let bias = format!("{prefix}{}.bias", info.index);
        if ended || !w.has(&weight) {
            ended = true;
            continue;
        }
        let got = w.shape(&weight)?;
        if got != shape {
            return Err(Error::Weights(format!(
                "`{weight}` ({}) has shape {got:?}, {} expects {shape:?}",
                info.name,
                variant.name()
            )));
        }
        let got = w.shape(&bias)?;
        if got != [shape[0]] {
            return Err(Error::Weights(format!(
                "`{bias}` has shape {got:?}, expected [{}]",
                shape[0]
            )));
        }
        expected.push(weight);
        expected.push(bias);
        count += 1;
    }
    if count == 0 {
        return Err(Error::Weights(format!("no `{prefix}0.weight`")));
    }
    let unexpected: Vec<&String> = w
        .tensors
        .keys()
        .filter(|k| {
            let is_feature = if prefix.is_empty() {
                k.split('.')
                    .next()
                    .is_some_and(|n| n.parse::<usize>().is_ok())
            } else {
                k.starts_with(prefix)
            };
            is_feature && !expected.contains(k)
        })
        .collect();
    if !unexpected.is_empty() {
        let mut names: Vec<String> = unexpected
            .iter()
            .take(4)
            .map(|k| format!("`{k}`"))
            .collect();
        if unexpected.len() > 4 {
            names.push(format!("and {} more", unexpected.len() - 4));
        }
        return Err(Error::Weights(format!(
            "tensors {} do not fit the {} layout (batch-norm variants are not supported)",
            names.join(", "),
            variant.name()
        )));
    }
    Ok(count)
}

fn strip(e: Error) -> String {
    match e {
        Error::Weights(m) => m,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_indices() {
        let l = VggVariant::Vgg19.layers();
        let idx = |n: &str| l.iter().find(|x| x.name == n).unwrap().index;
        assert_eq!(idx("relu1_1"), 1);
        assert_eq!(idx("relu2_1"), 6);
        assert_eq!(idx("relu3_1"), 11);
        assert_eq!(idx("relu4_1"), 20);
        assert_eq!(idx("relu4_2"), 22);
        assert_eq!(idx("conv5_1"), 28);
        assert_eq!(idx("relu5_1"), 29);
        assert_eq!(idx("pool5"), 36);
        let l = VggVariant::Vgg16.layers();
        let idx = |n: &str| l.iter().find(|x| x.name == n).unwrap().index;
        assert_eq!(idx("relu3_3"), 15);
        assert_eq!(idx("relu4_3"), 22);
        assert_eq!(idx("conv5_1"), 24);
        assert_eq!(idx("pool5"), 30);
        assert_eq!(VggVariant::Vgg19.conv_count(), 16);
        assert_eq!(VggVariant::Vgg16.conv_count(), 13);
    }
}
