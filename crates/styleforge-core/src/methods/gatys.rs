//! Optimisation-based style transfer (Gatys, Ecker and Bethge, "Image Style Transfer Using
//! Convolutional Neural Networks", CVPR 2016): the image itself is optimised so that its VGG
//! features match the content image's and its feature correlations (Gram matrices) match the
//! style image's.
//!
//! Losses, on RGB in `[0, 1]` (the definitions the parity vectors check):
//! - `gram(F) = F Fᵀ / (C·H·W)` for features `F` reshaped to `C × HW`;
//! - content: `Σ_l w_l · mean((F_l(x) − F_l(content))²)`, by default at `relu4_2` only;
//! - style: `Σ_l w_l · mean((gram(F_l(x)) − G_l)²)`, by default over `relu1_1`, `relu2_1`,
//!   `relu3_1`, `relu4_1`, `relu5_1`, where `G_l` is the style's Gram matrix (with several
//!   styles, the blend-weighted mean of theirs);
//! - total variation: `mean(dy²) + mean(dx²)` of the image;
//! - total: `content_weight · content + style_weight · style + tv_weight · tv`, by default
//!   `1, 1e5, 1e-2`.
//!
//! The gradient comes from burn's autodiff (the device's `.autodiff()` twin); the optimisers
//! ([`optim`]: L-BFGS with a strong-Wolfe line search, and Adam) run on the host. Coarse-to-fine
//! optimisation runs at several sizes, each initialised from the upsampled result of the one
//! before. Colour preservation and strength reuse [`crate::methods::fast::finish`].

pub mod optim;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::methods::fast::{StylizeOptions, finish};
use crate::image_io::Picture;
use crate::library::{Loaded, ModelKind};
use crate::methods::{self as registry, Execution, Input, Method, MethodInfo, Params, StyleSource, wrong_model};
use crate::networks::vgg::{LayerKind, Vgg};
use crate::weights::HostTensor;

use optim::{Control, Halt, Termination};

/// The layer, weight pairs and term weights of the loss.
#[derive(Debug, Clone, PartialEq)]
pub struct LossConfig {
    /// Content layers and their weights.
    pub content_layers: Vec<(String, f32)>,
    /// Style layers and their weights.
    pub style_layers: Vec<(String, f32)>,
    /// Weight of the content term in the total.
    pub content_weight: f32,
    /// Weight of the style term in the total.
    pub style_weight: f32,
    /// Weight of the total-variation term in the total.
    pub tv_weight: f32,
}

/// The default content layer.
pub const CONTENT_LAYERS: [&str; 1] = ["relu4_2"];
/// The default style layers.
pub const STYLE_LAYERS: [&str; 5] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            content_layers: CONTENT_LAYERS
                .iter()
                .map(|n| (n.to_string(), 1.0))
                .collect(),
            style_layers: STYLE_LAYERS.iter().map(|n| (n.to_string(), 1.0)).collect(),
            content_weight: 1.0,
            style_weight: 1e5,
            tv_weight: 1e-2,
        }
    }
}

/// The loss terms at one point: content, style and total variation unweighted, total weighted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Losses {
    /// Content term (layer weights applied).
    pub content: f64,
    /// Style term (layer weights applied).
    pub style: f64,
    /// Total variation.
    pub tv: f64,
    /// `content_weight · content + style_weight · style + tv_weight · tv`.
    pub total: f64,
}

/// The optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// L-BFGS with a strong-Wolfe line search, keeping `history` curvature pairs (the quality
    /// standard; one iteration may take several evaluations).
    Lbfgs {
        /// Curvature pairs kept (memory: two images' worth each).
        history: usize,
    },
    /// Adam with this step size (pixel values are in `[0, 1]`); one evaluation per iteration.
    Adam {
        /// Step size.
        learning_rate: f32,
    },
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer::Lbfgs { history: 20 }
    }
}

/// The starting image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// The content image.
    #[default]
    Content,
    /// The first style image with a positive blend weight, resized to the output (stretched).
    Style,
    /// Uniform noise in `[0, 1]` from this seed.
    Noise {
        /// Seed of the generator.
        seed: u64,
    },
}

/// Options for [`run`].
#[derive(Debug, Clone)]
pub struct GatysOptions {
    /// Scale the content down so the longer side is at most this (never up); the result has
    /// the scaled content's size.
    pub max_size: Option<u32>,
    /// Number of sizes for coarse-to-fine optimisation (1: the output size only).
    pub scales: usize,
    /// Ratio between successive sizes (above 1).
    pub scale_factor: f32,
    /// Optimiser iterations at each size.
    pub iterations: usize,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// The starting image (at the first size; later sizes start from the previous result).
    pub init: Init,
    /// Layers and weights of the loss.
    pub loss: LossConfig,
    /// Style images are resized so their longer side is this multiple of the current output's.
    pub style_scale: f32,
    /// Transfer the content's colour distribution (mean and covariance) to the styles first.
    pub match_style_colors: bool,
    /// Keep the content's colours, taking only the result's luminance.
    pub preserve_color: bool,
    /// 0 gives the content, 1 the full result (pixel blend).
    pub strength: f32,
    /// Pass an intermediate image to the progress callback every this many iterations.
    pub preview_every: Option<usize>,
    /// Stops the optimisation (checked before every evaluation) when set.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for GatysOptions {
    fn default() -> Self {
        Self {
            max_size: None,
            scales: 1,
            scale_factor: 2.0,
            iterations: 300,
            optimizer: Optimizer::default(),
            init: Init::default(),
            loss: LossConfig::default(),
            style_scale: 1.0,
            match_style_colors: false,
            preserve_color: false,
            strength: 1.0,
            preview_every: None,
            cancel: None,
        }
    }
}

/// What the progress callback sees after each iteration (and for each size's starting point).
#[derive(Debug)]
pub struct Progress<'a> {
    /// Iteration at the current size (0: its starting point).
    pub iteration: usize,
    /// Iterations planned at each size.
    pub iterations: usize,
    /// Current size (0 is the coarsest).
    pub scale: usize,
    /// Number of sizes.
    pub scales: usize,
    /// Width at the current size.
    pub width: u32,
    /// Height at the current size.
    pub height: u32,
    /// Loss evaluations so far, over all sizes.
    pub evaluations: usize,
    /// Loss terms at the current point.
    pub losses: Losses,
    /// Time since the start.
    pub elapsed: Duration,
    /// Estimated time to finish (after the first iteration).
    pub eta: Option<Duration>,
    /// The current image at the current size, colour options applied (every `preview_every`).
    pub image: Option<&'a Picture>,
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The stylised image, at the (scaled) content's size.
    pub picture: Picture,
    /// Whether the optimisation was stopped early (the picture is the state at that point).
    pub cancelled: bool,
    /// Iterations over all sizes.
    pub iterations: usize,
    /// Loss evaluations over all sizes.
    pub evaluations: usize,
    /// Loss terms at the final point (at the last size optimised).
    pub losses: Losses,
    /// Wall time.
    pub elapsed: Duration,
}

/// Gram matrices `F Fᵀ / (C·H·W)` of NCHW features, `[N, C, C]`.
pub fn gram(features: Tensor<4>) -> Tensor<3> {
    let [n, c, h, w] = features.dims();
    let f = features.reshape([n, c, h * w]);
    f.clone().matmul(f.swap_dims(1, 2)) / ((c * h * w) as f32)
}

/// Total variation `mean(dy²) + mean(dx²)` of an NCHW image (H and W at least 2).
pub fn tv_loss(x: Tensor<4>) -> Tensor<1> {
    let [n, c, h, w] = x.dims();
    let dy =
        x.clone().slice([0..n, 0..c, 1..h, 0..w]) - x.clone().slice([0..n, 0..c, 0..h - 1, 0..w]);
    let dx = x.clone().slice([0..n, 0..c, 0..h, 1..w]) - x.slice([0..n, 0..c, 0..h, 0..w - 1]);
    dy.powi_scalar(2).mean() + dx.powi_scalar(2).mean()
}

/// The loss terms as tensors (each of one element), for a backward pass.
#[derive(Debug, Clone)]
pub struct LossTerms {
    /// Content term.
    pub content: Tensor<1>,
    /// Style term.
    pub style: Tensor<1>,
    /// Total variation.
    pub tv: Tensor<1>,
    /// Weighted total.
    pub total: Tensor<1>,
}

/// The optimisation targets at one size: content features and blended style Gram matrices.
#[derive(Debug, Clone)]
pub struct Targets {
    indices: Vec<usize>,
    content: Vec<(usize, Tensor<4>, f32)>,
    style: Vec<(usize, Tensor<3>, f32)>,
    weights: [f32; 3],
    content_dims: [usize; 4],
}

impl Targets {
    /// Computes the targets from a content image and weighted style images (RGB `[0, 1]`,
    /// `[1, 3, H, W]`, any sizes). Blend weights are normalised to sum to 1.
    pub fn new(
        vgg: &Vgg,
        cfg: &LossConfig,
        content: Tensor<4>,
        styles: &[(Tensor<4>, f32)],
    ) -> Result<Self> {
        let mut indices: Vec<usize> = Vec::new();
        let mut slot = |name: &str| -> Result<usize> {
            let i = vgg.layer_index(name)?;
            Ok(match indices.iter().position(|&j| j == i) {
                Some(p) => p,
                None => {
                    indices.push(i);
                    indices.len() - 1
                }
            })
        };
        let content_slots = cfg
            .content_layers
            .iter()
            .map(|(n, w)| Ok((slot(n)?, *w)))
            .collect::<Result<Vec<_>>>()?;
        let style_slots = cfg
            .style_layers
            .iter()
            .map(|(n, w)| Ok((slot(n)?, *w)))
            .collect::<Result<Vec<_>>>()?;
        let content_dims = content.dims();
        let content_targets = if content_slots.is_empty() {
            Vec::new()
        } else {
            let idx: Vec<usize> = content_slots.iter().map(|(s, _)| indices[*s]).collect();
            let feats = vgg.forward_indices(content.without_autodiff(), &idx);
            content_slots
                .iter()
                .zip(feats)
                .map(|((s, w), f)| (*s, f.without_autodiff(), *w))
                .collect()
        };
        let mut style_targets = Vec::new();
        if !style_slots.is_empty() {
            let total: f32 = styles.iter().map(|(_, b)| *b).sum();
            if styles.is_empty() || total.is_nan() || total <= 0.0 {
                return Err(Error::Param(
                    "style layers need at least one style image with a positive blend weight"
                        .into(),
                ));
            }
            let idx: Vec<usize> = style_slots.iter().map(|(s, _)| indices[*s]).collect();
            let mut blended: Vec<Option<Tensor<3>>> = vec![None; idx.len()];
            for (image, b) in styles {
                if *b == 0.0 {
                    continue;
                }
                let feats = vgg.forward_indices(image.clone().without_autodiff(), &idx);
                for (acc, f) in blended.iter_mut().zip(feats) {
                    let g = gram(f).without_autodiff() * (*b / total);
                    *acc = Some(match acc.take() {
                        Some(a) => a + g,
                        None => g,
                    });
                }
            }
            style_targets = style_slots
                .iter()
                .zip(blended)
                .map(|((s, w), g)| (*s, g.expect("a style with positive weight"), *w))
                .collect();
        }
        Ok(Self {
            indices,
            content: content_targets,
            style: style_targets,
            weights: [cfg.content_weight, cfg.style_weight, cfg.tv_weight],
            content_dims,
        })
    }

    /// The blended style Gram matrix at the `k`-th style layer of the configuration.
    pub fn style_gram(&self, k: usize) -> Option<Tensor<3>> {
        self.style.get(k).map(|(_, g, _)| g.clone())
    }

    /// Loss terms of `x` (RGB `[0, 1]`, the content's size): call `total.backward()` on an
    /// autodiff `x` for the gradient.
    pub fn evaluate(&self, vgg: &Vgg, x: Tensor<4>) -> LossTerms {
        let device = x.device();
        let feats = vgg.forward_indices(x.clone(), &self.indices);
        let zero = || Tensor::<1>::zeros([1], &device);
        let mut content = zero();
        for (s, target, w) in &self.content {
            content = content + (feats[*s].clone() - target.clone()).powi_scalar(2).mean() * *w;
        }
        let mut style = zero();
        for (s, target, w) in &self.style {
            style = style
                + (gram(feats[*s].clone()) - target.clone())
                    .powi_scalar(2)
                    .mean()
                    * *w;
        }
        let tv = tv_loss(x);
        let [cw, sw, tw] = self.weights;
        let total = content.clone() * cw + style.clone() * sw + tv.clone() * tw;
        LossTerms {
            content,
            style,
            tv,
            total,
        }
    }

    /// Loss terms and gradient of the total at `x` (planar RGB `[0, 1]`, the content's size),
    /// the gradient written into `grad`. `device` is the plain device; autodiff runs on its twin.
    pub fn loss_and_grad(
        &self,
        vgg: &Vgg,
        x: &[f32],
        device: &Device,
        grad: &mut [f32],
    ) -> Result<Losses> {
        let [_, _, h, w] = self.content_dims;
        if x.len() != 3 * h * w || grad.len() != x.len() {
            return Err(Error::Param(format!(
                "image has {} values, the targets expect 3x{h}x{w}",
                x.len()
            )));
        }
        let ad = device.clone().autodiff();
        let xt =
            Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 3, h, w]), &ad).require_grad();
        let terms = self.evaluate(vgg, xt.clone());
        let values = Tensor::cat(
            vec![
                terms.content.clone().without_autodiff(),
                terms.style.clone().without_autodiff(),
                terms.tv.clone().without_autodiff(),
                terms.total.clone().without_autodiff(),
            ],
            0,
        );
        let values = HostTensor::from_tensor(values)?.data;
        let grads = terms.total.backward();
        let g = xt
            .grad(&grads)
            .ok_or_else(|| Error::Backend("autodiff produced no gradient for the image".into()))?;
        let g = HostTensor::from_tensor(g)?.data;
        grad.copy_from_slice(&g);
        Ok(Losses {
            content: values[0] as f64,
            style: values[1] as f64,
            tv: values[2] as f64,
            total: values[3] as f64,
        })
    }
}

/// Checks the options against the extractor and the styles.
pub fn validate(opts: &GatysOptions, vgg: &Vgg, styles: &[(Picture, f32)]) -> Result<()> {
    crate::methods::fast::validate(&StylizeOptions {
        strength: opts.strength,
        preserve_color: opts.preserve_color,
        max_size: opts.max_size,
        ..Default::default()
    })?;
    if opts.iterations == 0 {
        return Err(Error::Param("iterations must be at least 1".into()));
    }
    if opts.scales == 0 {
        return Err(Error::Param("scales must be at least 1".into()));
    }
    if !(opts.scale_factor > 1.0 && opts.scale_factor.is_finite()) {
        return Err(Error::Param(format!(
            "scale factor must be above 1, got {}",
            opts.scale_factor
        )));
    }
    if !(opts.style_scale > 0.0 && opts.style_scale.is_finite()) {
        return Err(Error::Param(format!(
            "style scale must be positive, got {}",
            opts.style_scale
        )));
    }
    if opts.preview_every == Some(0) {
        return Err(Error::Param("preview interval must be at least 1".into()));
    }
    match opts.optimizer {
        Optimizer::Lbfgs { history: 0 } => {
            return Err(Error::Param("L-BFGS history must be at least 1".into()));
        }
        Optimizer::Adam { learning_rate }
            if !(learning_rate > 0.0 && learning_rate.is_finite()) =>
        {
            return Err(Error::Param(format!(
                "learning rate must be positive, got {learning_rate}"
            )));
        }
        _ => {}
    }
    let l = &opts.loss;
    for (what, v) in [
        ("content weight", l.content_weight),
        ("style weight", l.style_weight),
        ("tv weight", l.tv_weight),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(Error::Param(format!(
                "{what} must be finite and non-negative, got {v}"
            )));
        }
    }
    for (name, w) in l.content_layers.iter().chain(&l.style_layers) {
        vgg.layer_index(name)?;
        if !w.is_finite() {
            return Err(Error::Param(format!("layer {name} has weight {w}")));
        }
    }
    if l.content_layers.is_empty() && l.style_layers.is_empty() {
        return Err(Error::Param("no content or style layers".into()));
    }
    if styles.is_empty() {
        return Err(Error::Param("at least one style image is needed".into()));
    }
    if styles.iter().any(|(_, b)| !(*b >= 0.0 && b.is_finite())) {
        return Err(Error::Param(
            "style blend weights must be finite and non-negative".into(),
        ));
    }
    if styles.iter().map(|(_, b)| *b).sum::<f32>() <= 0.0 {
        return Err(Error::Param(
            "at least one style blend weight must be positive".into(),
        ));
    }
    Ok(())
}

/// The smallest image side the loss layers accept: one pixel at the deepest layer.
pub fn min_side(vgg: &Vgg, cfg: &LossConfig) -> Result<u32> {
    let mut deepest = 0;
    for (name, _) in cfg.content_layers.iter().chain(&cfg.style_layers) {
        deepest = deepest.max(vgg.layer_index(name)?);
    }
    let pools = vgg
        .variant()
        .layers()
        .iter()
        .filter(|l| l.kind == LayerKind::Pool && l.index < deepest)
        .count();
    Ok((1u32 << pools).max(2))
}

/// Sizes for coarse-to-fine optimisation, coarsest first, ending with `width`×`height`: each
/// `factor` times smaller than the next, those with a side below `min_side` left out.
pub fn scale_sizes(
    width: u32,
    height: u32,
    scales: usize,
    factor: f32,
    min_side: u32,
) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for k in (0..scales).rev() {
        let f = (factor as f64).powi(k as i32);
        let w = ((width as f64 / f).round() as u32).max(1);
        let h = ((height as f64 / f).round() as u32).max(1);
        if k > 0 && w.min(h) < min_side {
            continue;
        }
        if out.last() != Some(&(w, h)) {
            out.push((w, h));
        }
    }
    out
}

/// Transfers `reference`'s colour distribution to `source`: an affine map of RGB that gives
/// `source` the mean and covariance of `reference` (`x' = Σ_r^{1/2} Σ_s^{-1/2} (x − μ_s) + μ_r`,
/// the linear colour transfer of Gatys et al., "Controlling Perceptual Factors in Neural Style
/// Transfer", 2017). Alpha is kept.
pub fn match_colors(source: &Picture, reference: &Picture) -> Picture {
    let (ms, cs) = color_stats(source);
    let (mr, cr) = color_stats(reference);
    let a = mat_mul(&sym_fn(cr, f64::sqrt), &sym_fn(cs, |l| 1.0 / l.sqrt()));
    crate::color::map_pixels(source, |x| {
        let p: [f64; 3] = std::array::from_fn(|c| x[c] - ms[c]);
        std::array::from_fn(|c| a[c][0] * p[0] + a[c][1] * p[1] + a[c][2] * p[2] + mr[c])
    })
}

use crate::color::{Mat3, mat_mul};

fn color_stats(p: &Picture) -> ([f64; 3], Mat3) {
    let n = p.pixels().max(1);
    let (mean, mut cov) = crate::color::channel_scatter(&p.rgb, n);
    for row in cov.iter_mut() {
        for v in row.iter_mut() {
            *v /= n as f64;
        }
    }
    (mean, cov)
}

/// `f` applied to a symmetric positive semi-definite matrix through its eigendecomposition
/// (eigenvalues floored at a small positive value so flat images stay finite).
fn sym_fn(a: Mat3, f: impl Fn(f64) -> f64) -> Mat3 {
    crate::color::sym_fn(&a, |l| f(l.max(0.0) + 1e-2))
}

/// Planar RGB 0..255 → planar `[0, 1]`.
fn unit(p: &Picture) -> Vec<f32> {
    p.rgb.iter().map(|v| v / 255.0).collect()
}

/// Planar `[0, 1]` (clamped) → picture.
fn to_picture(x: &[f32], width: u32, height: u32) -> Picture {
    Picture::from_planes(
        width,
        height,
        x.iter().map(|v| v.clamp(0.0, 1.0) * 255.0).collect(),
    )
}

fn upload(p: &Picture, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(unit(p), [1, 3, p.height as usize, p.width as usize]),
        device,
    )
}

/// Resizes a style image so its longer side is `style_scale` times the longer of `width`, `height`,
/// but with at most [`STYLE_AREA_CAP`] times the content's pixels (times `style_scale²`): a thin
/// content (32×4000, a 1×4000 image padded) would otherwise scale a style image to 4000×3000,
/// a hundred times the content's cost. Content and style of similar shapes are not affected.
fn fit_style(style: &Picture, width: u32, height: u32, style_scale: f32, min_side: u32) -> Picture {
    let long = (width.max(height) as f64 * style_scale as f64)
        .round()
        .max(1.0);
    let mut s = long / style.width.max(style.height) as f64;
    let cap = STYLE_AREA_CAP * width as f64 * height as f64 * (style_scale as f64).powi(2);
    let area = style.width as f64 * style.height as f64 * s * s;
    if area > cap {
        s *= (cap / area).sqrt();
    }
    let mut w = ((style.width as f64 * s).round() as u32).max(1);
    let mut h = ((style.height as f64 * s).round() as u32).max(1);
    // Keep enough pixels for the deepest layer.
    let short = w.min(h);
    if short < min_side {
        let k = min_side as f64 / short as f64;
        w = (w as f64 * k).ceil() as u32;
        h = (h as f64 * k).ceil() as u32;
    }
    style.resize(w, h)
}

/// How many times the content's pixel count a style image may have (see [`fit_style`]).
const STYLE_AREA_CAP: f64 = 4.0;

/// Uniform noise in `[0, 1)` from a seed (splitmix64), the same on every platform.
fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Stylises `content` with the weighted `styles` by optimisation, with statistics.
///
/// `device` is the plain (non-autodiff) device the VGG weights were loaded on. The progress
/// callback runs for each size's starting point and after every iteration; returning `false`
/// stops the optimisation, as does setting `opts.cancel`: the result is then the image reached
/// so far (resized to the output size, colour options applied) with `cancelled` set.
pub fn run(
    content: &Picture,
    styles: &[(Picture, f32)],
    opts: &GatysOptions,
    vgg: &Vgg,
    device: &Device,
    progress: &mut dyn FnMut(&Progress) -> bool,
) -> Result<Outcome> {
    validate(opts, vgg, styles)?;
    let device = device.clone().without_autodiff();
    let start = Instant::now();
    let content = match opts.max_size {
        Some(m) => content.fit_within(m),
        None => content.clone(),
    };
    let (fw, fh) = (content.width, content.height);
    let need = min_side(vgg, &opts.loss)?;
    if fw.min(fh) < need {
        return Err(Error::Param(format!(
            "the image is {fw}x{fh}; the loss layers need at least {need} pixels on each side"
        )));
    }
    let sizes = scale_sizes(fw, fh, opts.scales, opts.scale_factor, need.max(32));
    let styles: Vec<(Picture, f32)> = styles
        .iter()
        .map(|(s, b)| {
            let s = if opts.match_style_colors {
                match_colors(s, &content)
            } else {
                s.clone()
            };
            (s, *b)
        })
        .collect();
    let stylize_opts = StylizeOptions {
        strength: opts.strength,
        preserve_color: opts.preserve_color,
        ..Default::default()
    };
    let cancel = opts.cancel.clone();
    let cancelled_flag = || cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));

    let units = |(w, h): (u32, u32)| opts.iterations as f64 * w as f64 * h as f64;
    let total_units: f64 = sizes.iter().map(|s| units(*s)).sum();
    let mut done_units = 0f64;
    let mut x: Vec<f32> = Vec::new();
    let mut x_size = (0u32, 0u32);
    let mut iterations = 0;
    let mut evaluations = 0;
    let mut losses = Losses::default();
    let mut cancelled = false;

    for (scale, &(w, h)) in sizes.iter().enumerate() {
        let content_s = content.resize(w, h);
        let x0 = if scale == 0 {
            match opts.init {
                Init::Content => unit(&content_s),
                Init::Style => {
                    let (first, _) = styles
                        .iter()
                        .find(|(_, b)| *b > 0.0)
                        .expect("validated: a positive blend weight");
                    unit(&first.resize(w, h))
                }
                Init::Noise { seed } => noise(3 * (w * h) as usize, seed),
            }
        } else {
            unit(&to_picture(&x, x_size.0, x_size.1).resize(w, h))
        };
        let style_ts: Vec<(Tensor<4>, f32)> = styles
            .iter()
            .filter(|(_, b)| *b > 0.0)
            .map(|(s, b)| {
                (
                    upload(&fit_style(s, w, h, opts.style_scale, need), &device),
                    *b,
                )
            })
            .collect();
        let targets = Targets::new(vgg, &opts.loss, upload(&content_s, &device), &style_ts)?;

        let evals_before = evaluations;
        let mut objective =
            |xv: &[f32], g: &mut [f32]| -> std::result::Result<(f64, Losses), Halt> {
                if cancelled_flag() {
                    return Err(Halt::Cancelled);
                }
                let l = targets.loss_and_grad(vgg, xv, &device, g)?;
                Ok((l.total, l))
            };
        let pixels = w as f64 * h as f64;
        let mut callback = |it: &optim::Iteration<'_, Losses>| -> Control {
            let elapsed = start.elapsed();
            let done = done_units + it.iteration as f64 * pixels;
            let eta = (done > 0.0).then(|| {
                let rate = elapsed.as_secs_f64() / done;
                Duration::from_secs_f64((rate * (total_units - done)).max(0.0))
            });
            let preview = opts
                .preview_every
                .filter(|&n| it.iteration > 0 && it.iteration.is_multiple_of(n))
                .map(|_| {
                    let mut p = to_picture(it.x, w, h);
                    // The options were validated: finishing cannot fail.
                    let _ = finish(&content_s, &mut p.rgb, &stylize_opts);
                    p.alpha = content_s.alpha.clone();
                    p
                });
            let keep_going = progress(&Progress {
                iteration: it.iteration,
                iterations: opts.iterations,
                scale,
                scales: sizes.len(),
                width: w,
                height: h,
                evaluations: evals_before + it.evaluations,
                losses: *it.aux,
                elapsed,
                eta,
                image: preview.as_ref(),
            });
            if keep_going && !cancelled_flag() {
                Control::Continue
            } else {
                Control::Stop
            }
        };
        let out = match opts.optimizer {
            Optimizer::Lbfgs { history } => optim::lbfgs(
                x0,
                &optim::LbfgsConfig {
                    history,
                    max_iterations: opts.iterations,
                    max_evaluations: opts.iterations * 2 + 20,
                    ..Default::default()
                },
                &mut objective,
                &mut callback,
            )?,
            Optimizer::Adam { learning_rate } => optim::adam(
                x0,
                &optim::AdamConfig {
                    learning_rate: learning_rate as f64,
                    max_iterations: opts.iterations,
                    ..Default::default()
                },
                &mut objective,
                &mut callback,
            )?,
        };
        done_units += units((w, h));
        iterations += out.iterations;
        evaluations += out.evaluations;
        if out.evaluations > 0 {
            losses = out.aux;
        }
        x = out.x;
        x_size = (w, h);
        if out.termination == Termination::Cancelled {
            cancelled = true;
            break;
        }
    }

    let mut picture = to_picture(&x, x_size.0, x_size.1);
    if x_size != (fw, fh) {
        picture = picture.resize(fw, fh);
    }
    finish(&content, &mut picture.rgb, &stylize_opts)?;
    picture.alpha = content.alpha.clone();
    Ok(Outcome {
        picture,
        cancelled,
        iterations,
        evaluations,
        losses,
        elapsed: start.elapsed(),
    })
}

/// Timing of loss-and-gradient evaluations (one VGG forward and backward each, the unit of
/// work of every optimiser step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTiming {
    /// The first evaluation (allocations, kernel selection).
    pub first: Duration,
    /// Mean of the following evaluations.
    pub mean: Duration,
    /// Fastest of the following evaluations.
    pub min: Duration,
}

/// Times `steps` (at least 1) loss-and-gradient evaluations at `width`×`height` with the default
/// loss, after one untimed warm-up, on synthetic content and style images.
pub fn time_step(
    vgg: &Vgg,
    device: &Device,
    width: u32,
    height: u32,
    steps: usize,
) -> Result<StepTiming> {
    let device = device.clone().without_autodiff();
    let n = (width * height) as usize;
    let pattern = |f: &dyn Fn(f32, f32, usize) -> f32| {
        let mut rgb = vec![0f32; 3 * n];
        for c in 0..3 {
            for y in 0..height as usize {
                for x in 0..width as usize {
                    let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
                    rgb[c * n + y * width as usize + x] = (f(u, v, c) * 255.0).clamp(0.0, 255.0);
                }
            }
        }
        Picture::from_planes(width, height, rgb)
    };
    let content = pattern(&|u, v, c| 0.5 + 0.4 * ((u * 7.0 + c as f32).sin() * (v * 5.0).cos()));
    let style = pattern(&|u, v, c| 0.5 + 0.5 * ((u * 40.0 + v * 30.0 + c as f32 * 2.0).sin()));
    let cfg = LossConfig::default();
    let targets = Targets::new(
        vgg,
        &cfg,
        upload(&content, &device),
        &[(upload(&style, &device), 1.0)],
    )?;
    let x = noise(3 * n, 1);
    let mut g = vec![0f32; 3 * n];
    let t0 = Instant::now();
    targets.loss_and_grad(vgg, &x, &device, &mut g)?;
    let first = t0.elapsed();
    let mut times = Vec::new();
    for _ in 0..steps.max(1) {
        let t = Instant::now();
        targets.loss_and_grad(vgg, &x, &device, &mut g)?;
        times.push(t.elapsed());
    }
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let min = times.iter().min().copied().unwrap_or_default();
    Ok(StepTiming { first, mean, min })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_and_tv_on_small_tensors() {
        let device = Device::flex();
        // One sample, two channels, 1x2: F = [[1, 2], [3, 4]].
        let f = Tensor::<4>::from_data(
            TensorData::new(vec![1f32, 2.0, 3.0, 4.0], [1, 2, 1, 2]),
            &device,
        );
        let g = HostTensor::from_tensor(gram(f)).unwrap();
        assert_eq!(g.shape, vec![1, 2, 2]);
        let want = [5.0 / 4.0, 11.0 / 4.0, 11.0 / 4.0, 25.0 / 4.0];
        for (a, b) in g.data.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", g.data);
        }
        // 1 channel 2x2 [[0, 1], [3, 5]]: dy = [3, 4] -> 12.5, dx = [1, 2] -> 2.5.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0f32, 1.0, 3.0, 5.0], [1, 1, 2, 2]),
            &device,
        );
        let tv = HostTensor::from_tensor(tv_loss(x)).unwrap().data[0];
        assert!((tv - 15.0).abs() < 1e-5, "{tv}");
    }

    #[test]
    fn sizes_go_coarse_to_fine() {
        assert_eq!(scale_sizes(512, 384, 1, 2.0, 32), vec![(512, 384)]);
        assert_eq!(
            scale_sizes(512, 384, 3, 2.0, 32),
            vec![(128, 96), (256, 192), (512, 384)]
        );
        // Too small a coarse size is left out.
        assert_eq!(scale_sizes(100, 60, 3, 2.0, 32), vec![(100, 60)]);
        assert_eq!(
            scale_sizes(200, 120, 3, 2.0, 32),
            vec![(100, 60), (200, 120)]
        );
    }

    #[test]
    fn noise_is_seeded_and_in_range() {
        let a = noise(1000, 3);
        assert_eq!(a, noise(1000, 3));
        assert_ne!(a, noise(1000, 4));
        assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
        let mean: f32 = a.iter().sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn color_matching_transfers_mean_and_covariance() {
        let (w, h) = (40u32, 30u32);
        let n = (w * h) as usize;
        let mut src = vec![0f32; 3 * n];
        let mut reference = vec![0f32; 3 * n];
        for i in 0..n {
            let (u, v) = ((i % 40) as f32 / 40.0, (i / 40) as f32 / 30.0);
            src[i] = 50.0 + 100.0 * u;
            src[n + i] = 60.0 + 50.0 * v + 20.0 * u;
            src[2 * n + i] = 120.0 + 30.0 * (u * 9.0).sin();
            reference[i] = 180.0 - 40.0 * v;
            reference[n + i] = 90.0 + 30.0 * u * v;
            reference[2 * n + i] = 40.0 + 25.0 * (v * 7.0).cos() + 10.0 * u;
        }
        let s = Picture::from_planes(w, h, src);
        let r = Picture::from_planes(w, h, reference);
        let out = match_colors(&s, &r);
        let (mo, co) = color_stats(&out);
        let (mr, cr) = color_stats(&r);
        for c in 0..3 {
            assert!((mo[c] - mr[c]).abs() < 0.05, "mean {mo:?} vs {mr:?}");
            for d in 0..3 {
                assert!(
                    (co[c][d] - cr[c][d]).abs() < 0.05 * cr[c][c].max(1.0),
                    "cov {co:?} vs {cr:?}"
                );
            }
        }
    }

    #[test]
    fn jacobi_square_root_squares_back() {
        let a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let r = sym_fn(a, f64::sqrt);
        let back = mat_mul(&r, &r);
        for i in 0..3 {
            for j in 0..3 {
                let want = a[i][j] + if i == j { 1e-2 } else { 0.0 };
                assert!((back[i][j] - want).abs() < 1e-9, "{back:?}");
            }
        }
    }
}

/// The `gatys` method: optimisation of the image against VGG-19 content and style losses
/// (Gatys et al., CVPR 2016; jcjohnson/neural-style, the PyTorch tutorial).
#[derive(Debug)]
pub struct Gatys;

static GATYS: MethodInfo = MethodInfo {
    name: "gatys",
    title: "Optimisation (Gatys)",
    summary: "Finest detail. Runs as a job with progress.",
    source: "Gatys et al., Image Style Transfer Using Convolutional Neural Networks (CVPR 2016), jcjohnson/neural-style",
    model_kinds: &[ModelKind::Vgg],
    default_model: Some("vgg19"),
    style: StyleSource::Images { max: 8 },
    mask: false,
    execution: Execution::Job,
    tiles: false,
    // The smallest size of its coarse-to-fine pyramid; VGG-19's loss layers need 16.
    min_side: 32,
    options: &[
        "strength",
        "preserve_color",
        "max_size",
        "color_match",
        "iterations",
        "scales",
        "optimizer",
        "content_weight",
        "style_weight",
        "tv_weight",
        "init",
        "seed",
        "preview_every",
    ],
};

impl GatysOptions {
    /// The options of a run from the registry's parameters.
    pub fn from_params(params: &Params) -> Self {
        let loss = LossConfig {
            content_weight: params.number("content_weight") as f32,
            style_weight: params.number("style_weight") as f32,
            tv_weight: params.number("tv_weight") as f32,
            ..LossConfig::default()
        };
        GatysOptions {
            max_size: params.max_size(),
            scales: params.integer("scales").unwrap_or(1) as usize,
            iterations: params.integer("iterations").unwrap_or(300) as usize,
            optimizer: match params.choice("optimizer") {
                "adam" => Optimizer::Adam { learning_rate: 0.02 },
                _ => Optimizer::default(),
            },
            init: match params.choice("init") {
                "style" => Init::Style,
                "noise" => Init::Noise { seed: params.integer("seed").unwrap_or(0) },
                _ => Init::Content,
            },
            loss,
            match_style_colors: params.flag("color_match"),
            preserve_color: params.flag("preserve_color"),
            strength: params.strength(),
            preview_every: params.integer("preview_every").map(|n| n as usize),
            ..Default::default()
        }
    }
}

impl Method for Gatys {
    fn info(&self) -> &MethodInfo {
        &GATYS
    }

    fn compute(&self, model: &Loaded, input: &Input, params: &Params, device: &Device, control: &mut registry::Control<'_>) -> Result<registry::Outcome> {
        let Loaded::Vgg(vgg) = model else {
            return Err(wrong_model(&GATYS, model));
        };
        let styles = input.style_pictures(GATYS.name)?;
        if styles.is_empty() {
            return Err(Error::Param("method gatys needs at least one style image".into()));
        }
        let opts = GatysOptions { cancel: control.cancel.clone(), ..GatysOptions::from_params(params) };
        let report = &mut control.progress;
        let out = run(&input.content, &styles, &opts, vgg, device, &mut |p| {
            let done = (p.scale * p.iterations + p.iteration) as u64;
            let total = (p.scales * p.iterations).max(1) as u64;
            let l = &p.losses;
            report(&registry::Progress {
                fraction: 0.05 + 0.9 * done as f64 / total as f64,
                stage: format!("optimising {}x{}", p.width, p.height),
                step: Some((done, total)),
                eta: p.eta,
                detail: Some(format!(
                    "loss {:.4e} (content {:.3e} style {:.3e} tv {:.3e})",
                    l.total, l.content, l.style, l.tv
                )),
                preview: p.image.map(|img| (img, format!("scale{}.iter{}", p.scale, p.iteration))),
            });
            true
        })?;
        let summary = format!(
            "gatys: {} iterations, {} evaluations, final loss {:.4e}, {:.1} s",
            out.iterations,
            out.evaluations,
            out.losses.total,
            out.elapsed.as_secs_f64()
        );
        Ok(registry::Outcome {
            picture: out.picture,
            cancelled: out.cancelled,
            losses: Some((out.losses.content, out.losses.style)),
            summary: Some(summary),
        })
    }
}
