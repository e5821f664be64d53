//! Arbitrary style transfer with adaptive instance normalisation (AdaIN, Huang & Belongie 2017):
//! one encoder/decoder pair stylises with any style image.
//!
//! The content's relu4_1 features are renormalised, channel by channel, to the style's mean and
//! standard deviation (`t = (c - mean_c) / std_c * std_s + mean_s`, with
//! `std = sqrt(unbiased variance over H×W + 1e-5)` as the reference computes it), blended with
//! the content features by `alpha`, and decoded. A style enters only through its per-channel
//! statistics ([`StyleStats`], 512 means and 512 deviations), so a preset style is measured once,
//! stored (safetensors or JSON) and then costs nothing per request.
//!
//! Several styles mix by interpolating their AdaIN targets with normalised weights, as the
//! reference's style interpolation does. Since AdaIN is affine in the style statistics, that is
//! computed exactly as one AdaIN with the weighted mean of the styles' means and deviations.
//!
//! Spatial control: a mask (0..1 at the content's size, 1 = foreground) is averaged down to the
//! feature grid; the foreground takes the style set, the background another style set or the
//! plain content features, and a soft mask blends the two feature maps. Every region is
//! normalised with the whole image's content statistics, so each region looks exactly as the
//! same style applied to the whole image would look there.
//!
//! Tiled inference: the style statistics are measured once; the content statistics used by every
//! tile's AdaIN are those of the whole image, measured on one pass over the image scaled to
//! [`AdainOptions::stats_size`] (exact when the image is no larger than that), so all tiles get the
//! same normalisation and no tile drifts towards its own local colours.
//!
//! Official weights (naoto0804/pytorch-AdaIN, release v0.0.0), loaded as they are:
//! - encoder: <https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth>
//! - decoder: <https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth>

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::methods::fast::{StylizeOptions, finish};
use crate::image_io::{Picture, write_atomic};
use crate::library::{Loaded, ModelKind};
use crate::methods::{Control, Execution, Input, Method, MethodInfo, Outcome, Params, StyleSource, tile_for, wrong_model};
use crate::networks::adain::{AdainDecoder, AdainEncoder, FEATURE_CHANNELS};
use crate::tiling::{TileConfig, planes_to_tensor, run_tiled, tensor_to_planes};
use crate::weights::{HostTensor, Weights};

/// Release URL of the encoder weights (`vgg_normalised.pth`, the whole normalised VGG-19).
pub const VGG_URL: &str =
    "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth";

/// Release URL of the decoder weights (`decoder.pth`).
pub const DECODER_URL: &str =
    "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth";

/// The epsilon added to the unbiased variance before the square root.
pub const EPS: f64 = 1e-5;

/// Smallest image side the encoder takes (relu4_1 must be at least 2×2 for reflection padding).
pub const MIN_SIDE: u32 = 9;

/// Per-channel mean and standard deviation of a style's relu4_1 features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleStats {
    /// Mean over H×W, one per channel.
    pub mean: Vec<f32>,
    /// `sqrt(unbiased variance + 1e-5)`, one per channel.
    pub std: Vec<f32>,
}

impl StyleStats {
    /// Statistics of a `[1, C, H, W]` feature map (H×W at least 2).
    pub fn from_features(feat: Tensor<4>) -> Result<Self> {
        let [n, c, h, w] = feat.dims();
        if n != 1 || h * w < 2 {
            return Err(Error::Param(format!(
                "feature statistics need one feature map of at least 2 positions, got {:?}",
                [n, c, h, w]
            )));
        }
        let flat = feat.reshape([c, h * w]);
        let mean = flat.clone().mean_dim(1);
        let var = (flat - mean.clone())
            .powi_scalar(2)
            .sum_dim(1)
            .div_scalar((h * w - 1) as f64);
        let std = (var + EPS).sqrt();
        Ok(Self {
            mean: HostTensor::from_tensor(mean)?.data,
            std: HostTensor::from_tensor(std)?.data,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Checks that the statistics suit the AdaIN networks (512 channels, finite, positive deviations).
    pub fn validate(&self) -> Result<()> {
        if self.mean.len() != FEATURE_CHANNELS || self.std.len() != FEATURE_CHANNELS {
            return Err(Error::Param(format!(
                "style statistics must have {FEATURE_CHANNELS} channels, got {} means and {} deviations",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().any(|v| !v.is_finite())
            || self.std.iter().any(|v| !v.is_finite() || *v <= 0.0)
        {
            return Err(Error::Param(
                "style statistics hold non-finite means or non-positive deviations".into(),
            ));
        }
        Ok(())
    }

    /// The statistics whose AdaIN target is the weighted mean of the parts' targets (weights normalised).
    pub fn mix(parts: &[(StyleStats, f32)]) -> Result<Self> {
        let weights = normalised_weights(parts.iter().map(|p| p.1))?;
        let mut mean = vec![0f32; FEATURE_CHANNELS];
        let mut std = vec![0f32; FEATURE_CHANNELS];
        for ((s, _), w) in parts.iter().zip(weights) {
            s.validate()?;
            for c in 0..FEATURE_CHANNELS {
                mean[c] += w * s.mean[c];
                std[c] += w * s.std[c];
            }
        }
        Ok(Self { mean, std })
    }

    /// Serialises as safetensors (`mean` and `std`, float32, `[C]`).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let c = self.channels();
        let mut w = Weights::default();
        w.tensors
            .insert("mean".into(), HostTensor::new(vec![c], self.mean.clone()));
        w.tensors
            .insert("std".into(), HostTensor::new(vec![c], self.std.clone()));
        w.metadata = BTreeMap::from([
            ("kind".to_string(), "adain_style_stats".to_string()),
            ("layer".to_string(), "relu4_1".to_string()),
        ]);
        w.to_safetensors_bytes()
    }

    /// Parses what [`StyleStats::to_safetensors_bytes`] wrote, checking the result.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        let w = Weights::from_safetensors_bytes(bytes)?;
        let s = Self {
            mean: w.get("mean")?.data.clone(),
            std: w.get("std")?.data.clone(),
        };
        s.validate()?;
        Ok(s)
    }

    /// Serialises as JSON (`{"mean": [...], "std": [...]}`); floats round-trip exactly.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Param(format!("style statistics: {e}")))
    }

    /// Parses what [`StyleStats::to_json`] wrote, checking the result.
    pub fn from_json(text: &str) -> Result<Self> {
        let s: Self = serde_json::from_str(text)
            .map_err(|e| Error::Param(format!("not AdaIN style statistics ({e})")))?;
        s.validate()?;
        Ok(s)
    }

    /// Writes to `path`: JSON if it ends in `.json`, safetensors otherwise.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let bytes = if json {
            self.to_json()?.into_bytes()
        } else {
            self.to_safetensors_bytes()?
        };
        write_atomic(path, &bytes)
    }

    /// Reads a file written by [`StyleStats::save`] (format recognised by content).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let parsed = if first == Some(&b'{') {
            std::str::from_utf8(&bytes)
                .map_err(|_| Error::Param("style statistics: not UTF-8 JSON".into()))
                .and_then(Self::from_json)
        } else {
            Self::from_safetensors_bytes(&bytes)
        };
        parsed.map_err(|e| Error::Param(format!("{}: {e}", path.display())))
    }

    /// Mean and deviation as `[1, C, 1, 1]` tensors.
    fn tensors(&self, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let c = self.channels();
        let t =
            |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, c, 1, 1]), device);
        (t(&self.mean), t(&self.std))
    }
}

/// AdaIN of content features `[1, C, H, W]` to a style, with the content's own statistics.
pub fn adain(content: Tensor<4>, style: &StyleStats) -> Result<Tensor<4>> {
    let own = StyleStats::from_features(content.clone())?;
    adain_with(content, &own, style)
}

/// AdaIN with given content statistics (the whole image's, for tiles).
fn adain_with(content: Tensor<4>, cs: &StyleStats, style: &StyleStats) -> Result<Tensor<4>> {
    let c = content.dims()[1];
    if cs.channels() != c || style.channels() != c {
        return Err(Error::Param(format!(
            "AdaIN: features have {c} channels, statistics {} and {}",
            cs.channels(),
            style.channels()
        )));
    }
    let device = content.device();
    let (cm, cd) = cs.tensors(&device);
    let (sm, sd) = style.tensors(&device);
    Ok((content - cm) / cd * sd + sm)
}

/// A style given as an image or as precomputed statistics.
#[derive(Debug, Clone, PartialEq)]
pub enum Style {
    /// A style image (RGB 0..255); its statistics are measured per call.
    Picture(Picture),
    /// Statistics measured earlier (a cached preset).
    Stats(StyleStats),
}

impl From<Picture> for Style {
    fn from(p: Picture) -> Self {
        Style::Picture(p)
    }
}

impl From<StyleStats> for Style {
    fn from(s: StyleStats) -> Self {
        Style::Stats(s)
    }
}

/// How to keep the content's colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreserveColor {
    /// Take the style's colours.
    #[default]
    Off,
    /// Recolour each style image to the content's colour mean and covariance before encoding ([`coral`]); needs style images.
    Coral,
    /// Keep the content's chroma and take only the stylised luminance ([`crate::color::preserve_color`]).
    Luminance,
}

/// Spatial control: where the styles apply, and what the rest gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Width in pixels (the content's width as given to [`AdainModel::stylize`]).
    pub width: u32,
    /// Height in pixels (the content's height).
    pub height: u32,
    /// Row-major weights in 0..1: 1 takes the styles, 0 the background, between blends features.
    pub values: Vec<f32>,
    /// Styles and weights for the background; empty keeps the content features there.
    pub background: Vec<(Style, f32)>,
}

impl Mask {
    /// A mask from an image's luminance (white = foreground), with the given background styles.
    pub fn from_picture(pic: &Picture, background: Vec<(Style, f32)>) -> Self {
        let n = pic.pixels();
        let values = (0..n)
            .map(|i| {
                let l = 0.299 * pic.rgb[i] + 0.587 * pic.rgb[n + i] + 0.114 * pic.rgb[2 * n + i];
                (l / 255.0).clamp(0.0, 1.0)
            })
            .collect();
        Self {
            width: pic.width,
            height: pic.height,
            values,
            background,
        }
    }
}

/// Options for [`AdainModel::stylize`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdainOptions {
    /// Style strength in 0..1: features are `alpha * t + (1 - alpha) * content features`.
    pub alpha: f32,
    /// Colour preservation.
    pub preserve_color: PreserveColor,
    /// Spatial control; `None` styles the whole image.
    pub mask: Option<Mask>,
    /// Scale the content down so its longer side is at most this (never up).
    pub max_size: Option<u32>,
    /// Scale style images down so their longer side is at most this (never up).
    pub style_size: Option<u32>,
    /// Tiled inference with this tile size; `None` runs the whole image at once.
    pub tile: Option<u32>,
    /// Long side of the pass that measures the content statistics for tiled inference.
    pub stats_size: u32,
}

impl Default for AdainOptions {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            preserve_color: PreserveColor::Off,
            mask: None,
            max_size: None,
            style_size: Some(512),
            tile: None,
            stats_size: 1024,
        }
    }
}

/// The AdaIN encoder (normalised VGG-19 to relu4_1) and decoder.
#[derive(Debug)]
pub struct AdainModel {
    /// Encoder: RGB 0..1 to relu4_1 features.
    pub encoder: AdainEncoder,
    /// Decoder: features to RGB 0..1 (unclamped).
    pub decoder: AdainDecoder,
}

impl AdainModel {
    /// Loads the release's `vgg_normalised.pth` and `decoder.pth` (or safetensors with the same keys).
    pub fn load(vgg_path: &Path, decoder_path: &Path, device: &Device) -> Result<Self> {
        let vgg = Weights::load(vgg_path)?;
        let dec = Weights::load(decoder_path)?;
        let encoder = Self::encoder_from(&vgg, device).map_err(|e| in_file(vgg_path, e))?;
        let decoder = Self::decoder_from(&dec, device).map_err(|e| in_file(decoder_path, e))?;
        Ok(Self { encoder, decoder })
    }

    /// Builds the model from the two weight maps.
    pub fn from_weights(vgg: &Weights, decoder: &Weights, device: &Device) -> Result<Self> {
        Ok(Self {
            encoder: Self::encoder_from(vgg, device)?,
            decoder: Self::decoder_from(decoder, device)?,
        })
    }

    fn encoder_from(w: &Weights, device: &Device) -> Result<AdainEncoder> {
        if !AdainEncoder::detect(w) && AdainDecoder::detect(w) {
            return Err(Error::Weights(
                "this is the AdaIN decoder, not the encoder (vgg_normalised)".into(),
            ));
        }
        AdainEncoder::load(w, device)
    }

    fn decoder_from(w: &Weights, device: &Device) -> Result<AdainDecoder> {
        if !AdainDecoder::detect(w) && AdainEncoder::detect(w) {
            return Err(Error::Weights(
                "this is the AdaIN encoder (vgg_normalised), not the decoder".into(),
            ));
        }
        AdainDecoder::load(w, device)
    }

    /// Measures a style image's statistics, after scaling it to `style_size` (long side, never up).
    pub fn style_stats(
        &self,
        style: &Picture,
        style_size: Option<u32>,
        device: &Device,
    ) -> Result<StyleStats> {
        if style_size == Some(0) {
            return Err(Error::Param("style size must be at least 1 pixel".into()));
        }
        let pic = match style_size {
            Some(s) => style.fit_within(s),
            None => style.clone(),
        };
        self.picture_stats(&pic, "style image", device)
    }

    /// Statistics of a picture's relu4_1 features, at its own size.
    fn picture_stats(&self, pic: &Picture, what: &str, device: &Device) -> Result<StyleStats> {
        check_side(pic, what)?;
        let x = to_unit(pic, device);
        StyleStats::from_features(self.encoder.forward(x))
    }

    /// Stylises `content` with the weighted `styles` (weights are normalised); returns RGB 0..255
    /// at the content's size (after `max_size`), clamped, with the content's alpha.
    pub fn stylize(
        &self,
        content: &Picture,
        styles: &[(Style, f32)],
        opts: &AdainOptions,
        device: &Device,
    ) -> Result<Picture> {
        validate(content, styles, opts)?;
        let pic = match opts.max_size {
            Some(m) => content.fit_within(m),
            None => content.clone(),
        };
        check_side(&pic, "content image")?;
        let (w, h) = (pic.width as usize, pic.height as usize);
        let fg = self.mix_styles(styles, &pic, opts, device)?;
        let (bg, mask) = match &opts.mask {
            None => (None, None),
            Some(m) => {
                let bg = if m.background.is_empty() {
                    None
                } else {
                    Some(self.mix_styles(&m.background, &pic, opts, device)?)
                };
                let values = area_resize(&m.values, m.width as usize, m.height as usize, w, h);
                (bg, Some(values))
            }
        };
        let targets = Targets {
            fg: &fg,
            bg: bg.as_ref(),
            alpha: opts.alpha,
        };
        let unit: Vec<f32> = pic.rgb.iter().map(|v| v / 255.0).collect();
        let tiled = opts.tile.filter(|&t| pic.width > t || pic.height > t);
        let mut out = match tiled {
            None => {
                let x = planes_to_tensor(&unit, pic.width, pic.height, device);
                let fmask = mask
                    .as_ref()
                    .map(|m| feature_mask(m, w, (0, 0), (w, h), device));
                let y = self.render(x, None, &targets, fmask)?;
                tensor_to_planes(y)?
            }
            Some(tile) => {
                let cfg = TileConfig::new(tile)?;
                // A thin picture keeps AdaIN's smallest side across (its own, when padded).
                let small = pic.fit_within_keeping(opts.stats_size, MIN_SIDE);
                let cs = self.picture_stats(&small, "content statistics pass", device)?;
                let origins = match &mask {
                    Some(_) => tile_origins(pic.width, pic.height, cfg, device)?,
                    None => Vec::new(),
                };
                let mut index = 0usize;
                run_tiled(&unit, pic.width, pic.height, cfg, device, &mut |t| {
                    let [_, _, th, tw] = t.dims();
                    let fmask = match &mask {
                        Some(m) => {
                            let origin = *origins.get(index).ok_or_else(|| {
                                Error::Backend("more tiles than tile origins".into())
                            })?;
                            Some(feature_mask(m, w, origin, (tw, th), device))
                        }
                        None => None,
                    };
                    index += 1;
                    self.render(t, Some(&cs), &targets, fmask)
                })?
            }
        };
        for v in out.iter_mut() {
            *v = (*v * 255.0).clamp(0.0, 255.0);
        }
        let finishing = StylizeOptions {
            strength: 1.0,
            preserve_color: opts.preserve_color == PreserveColor::Luminance,
            ..StylizeOptions::default()
        };
        finish(&pic, &mut out, &finishing)?;
        Ok(Picture {
            width: pic.width,
            height: pic.height,
            rgb: out,
            alpha: pic.alpha.clone(),
        })
    }

    /// The weighted mix of a style set's statistics, measured against the working content.
    fn mix_styles(
        &self,
        styles: &[(Style, f32)],
        content: &Picture,
        opts: &AdainOptions,
        device: &Device,
    ) -> Result<StyleStats> {
        let mut parts = Vec::with_capacity(styles.len());
        for (style, wt) in styles.iter().filter(|s| s.1 > 0.0) {
            let stats = match style {
                Style::Stats(s) => s.clone(),
                Style::Picture(p) => {
                    let p = match opts.style_size {
                        Some(s) => p.fit_within(s),
                        None => p.clone(),
                    };
                    let p = if opts.preserve_color == PreserveColor::Coral {
                        coral(&p, content)?
                    } else {
                        p
                    };
                    self.picture_stats(&p, "style image", device)?
                }
            };
            parts.push((stats, *wt));
        }
        StyleStats::mix(&parts)
    }

    /// Encodes RGB 0..1 `[1, 3, h, w]`, applies AdaIN (with `cs` or the input's own statistics),
    /// alpha and the mask, decodes, and crops back to `h×w` (0..1, unclamped).
    fn render(
        &self,
        x: Tensor<4>,
        cs: Option<&StyleStats>,
        targets: &Targets<'_>,
        mask: Option<Tensor<4>>,
    ) -> Result<Tensor<4>> {
        let [_, _, h, w] = x.dims();
        let c = self.encoder.forward(x);
        let own;
        let cs = match cs {
            Some(s) => s,
            None => {
                own = StyleStats::from_features(c.clone())?;
                &own
            }
        };
        let alpha = targets.alpha;
        let blend = |t: Tensor<4>| t * alpha + c.clone() * (1.0 - alpha);
        let fg = blend(adain_with(c.clone(), cs, targets.fg)?);
        let f = match mask {
            None => fg,
            Some(m) => {
                let bg = match targets.bg {
                    Some(s) => blend(adain_with(c.clone(), cs, s)?),
                    None => c.clone(),
                };
                let dims = fg.dims();
                let m = m.expand(dims);
                fg * m.clone() + bg * (m.mul_scalar(-1.0).add_scalar(1.0))
            }
        };
        let y = self.decoder.forward(f);
        Ok(y.slice([0..1, 0..3, 0..h, 0..w]))
    }
}

/// Prefixes a weights error with the file it concerns.
fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Weights(m) if !m.starts_with(&path.display().to_string()) => {
            Error::Weights(format!("{}: {m}", path.display()))
        }
        other => other,
    }
}

/// The resolved style targets of one call.
struct Targets<'a> {
    fg: &'a StyleStats,
    bg: Option<&'a StyleStats>,
    alpha: f32,
}

/// Checks user-facing parameters before any work.
fn validate(content: &Picture, styles: &[(Style, f32)], opts: &AdainOptions) -> Result<()> {
    if !(0.0..=1.0).contains(&opts.alpha) {
        return Err(Error::Param(format!(
            "alpha must be within 0..1, got {}",
            opts.alpha
        )));
    }
    if opts.max_size == Some(0) {
        return Err(Error::Param("max size must be at least 1 pixel".into()));
    }
    if opts.style_size == Some(0) {
        return Err(Error::Param("style size must be at least 1 pixel".into()));
    }
    if let Some(t) = opts.tile {
        TileConfig::new(t)?;
    }
    if opts.stats_size < 64 {
        return Err(Error::Param(
            "the statistics pass needs at least 64 pixels".into(),
        ));
    }
    if styles.is_empty() {
        return Err(Error::Param("at least one style is needed".into()));
    }
    check_style_set(styles, opts.preserve_color)?;
    if let Some(m) = &opts.mask {
        if m.width != content.width || m.height != content.height {
            return Err(Error::Param(format!(
                "the mask is {}x{}, the content {}x{}: they must be the same size",
                m.width, m.height, content.width, content.height
            )));
        }
        if m.values.len() != (m.width as usize) * (m.height as usize) {
            return Err(Error::Param(format!(
                "the mask holds {} values for {}x{} pixels",
                m.values.len(),
                m.width,
                m.height
            )));
        }
        if m.values.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(Error::Param("mask values must be within 0..1".into()));
        }
        if !m.background.is_empty() {
            check_style_set(&m.background, opts.preserve_color)?;
        }
    }
    Ok(())
}

fn check_style_set(styles: &[(Style, f32)], preserve: PreserveColor) -> Result<()> {
    normalised_weights(styles.iter().map(|s| s.1))?;
    for (style, _) in styles {
        match style {
            Style::Stats(s) => {
                s.validate()?;
                if preserve == PreserveColor::Coral {
                    return Err(Error::Param(
                        "colour matching (coral) recolours the style image: give the image, not precomputed statistics".into(),
                    ));
                }
            }
            Style::Picture(p) => {
                if p.pixels() == 0 || p.rgb.len() != 3 * p.pixels() {
                    return Err(Error::Param("a style image is empty or malformed".into()));
                }
            }
        }
    }
    Ok(())
}

/// Weights divided by their sum; each must be finite and non-negative, the sum positive.
pub(crate) fn normalised_weights(weights: impl Iterator<Item = f32>) -> Result<Vec<f32>> {
    let w: Vec<f32> = weights.collect();
    if w.is_empty() {
        return Err(Error::Param("at least one style is needed".into()));
    }
    if let Some(bad) = w.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(Error::Param(format!(
            "style weights must be finite and non-negative, got {bad}"
        )));
    }
    let sum: f32 = w.iter().sum();
    if sum <= 0.0 {
        return Err(Error::Param("style weights must not all be zero".into()));
    }
    Ok(w.into_iter().map(|v| v / sum).collect())
}

fn check_side(pic: &Picture, what: &str) -> Result<()> {
    if pic.width < MIN_SIDE || pic.height < MIN_SIDE {
        return Err(Error::Param(format!(
            "the {what} is {}x{}; AdaIN needs at least {MIN_SIDE} pixels on each side",
            pic.width, pic.height
        )));
    }
    Ok(())
}

/// A picture as a `[1, 3, h, w]` tensor in 0..1.
fn to_unit(pic: &Picture, device: &Device) -> Tensor<4> {
    planes_to_tensor(&pic.rgb, pic.width, pic.height, device).div_scalar(255.0)
}

/// Area-weighted resampling of a row-major plane (each output pixel averages the source area it covers).
pub(crate) fn area_resize(v: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    if sw == dw && sh == dh {
        return v.to_vec();
    }
    let wx = area_weights(sw, dw);
    let wy = area_weights(sh, dh);
    let mut rows = vec![0f32; sh * dw];
    for y in 0..sh {
        for (x, taps) in wx.iter().enumerate() {
            rows[y * dw + x] = taps.iter().map(|&(k, t)| t * v[y * sw + k]).sum();
        }
    }
    let mut out = vec![0f32; dh * dw];
    for (y, taps) in wy.iter().enumerate() {
        for x in 0..dw {
            out[y * dw + x] = taps.iter().map(|&(k, t)| t * rows[k * dw + x]).sum();
        }
    }
    out
}

/// For each of `dst` output cells, the source indices it overlaps and their weights (summing to 1).
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (a, b) = (i as f64 * scale, (i + 1) as f64 * scale);
            let mut taps = Vec::new();
            let mut k = a.floor() as usize;
            while (k as f64) < b && k < src {
                let overlap = b.min(k as f64 + 1.0) - a.max(k as f64);
                if overlap > 0.0 {
                    taps.push((k, (overlap / scale) as f32));
                }
                k += 1;
            }
            taps
        })
        .collect()
}

/// The mask over the region at `origin` of size `size` (of a plane `width` wide), averaged over
/// each relu4_1 cell (8×8 pixels, partial at the far edges as ceil-mode pooling makes them),
/// as a `[1, 1, ceil(h/8), ceil(w/8)]` tensor.
fn feature_mask(
    mask: &[f32],
    width: usize,
    origin: (usize, usize),
    size: (usize, usize),
    device: &Device,
) -> Tensor<4> {
    let ((x0, y0), (tw, th)) = (origin, size);
    let (fw, fh) = (tw.div_ceil(8), th.div_ceil(8));
    let mut cells = Vec::with_capacity(fw * fh);
    for i in 0..fh {
        for j in 0..fw {
            let (ya, yb) = (8 * i, (8 * i + 8).min(th));
            let (xa, xb) = (8 * j, (8 * j + 8).min(tw));
            let mut s = 0f32;
            for y in ya..yb {
                let row = (y0 + y) * width + x0;
                s += mask[row + xa..row + xb].iter().sum::<f32>();
            }
            cells.push(s / ((yb - ya) * (xb - xa)) as f32);
        }
    }
    Tensor::from_data(TensorData::new(cells, [1, 1, fh, fw]), device)
}

/// The top-left corner of every tile [`run_tiled`] visits, in its order: found by tiling a plane
/// of pixel coordinates through the identity, so the layout is the tiler's own.
fn tile_origins(
    width: u32,
    height: u32,
    cfg: TileConfig,
    device: &Device,
) -> Result<Vec<(usize, usize)>> {
    let (w, h) = (width as usize, height as usize);
    let n = w * h;
    let mut coords = vec![0f32; 3 * n];
    for y in 0..h {
        for x in 0..w {
            coords[y * w + x] = x as f32;
            coords[n + y * w + x] = y as f32;
        }
    }
    let mut origins = Vec::new();
    run_tiled(&coords, width, height, cfg, device, &mut |t| {
        let corner = HostTensor::from_tensor(t.clone().slice([0..1, 0..2, 0..1, 0..1]))?.data;
        origins.push((corner[0] as usize, corner[1] as usize));
        Ok(t)
    })?;
    Ok(origins)
}

/// Recolours `source` to the colour mean and covariance of `target` (CORAL, as the AdaIN
/// reference's `coral`): each channel is standardised, decorrelated with the inverse square root
/// of its correlation matrix, recorrelated with the square root of the target's, and given the
/// target's deviations and means. Correlations are normalised by the pixel count, so images of
/// different sizes match. The result is clamped to 0..255; the source's alpha is kept.
pub fn coral(source: &Picture, target: &Picture) -> Result<Picture> {
    if source.pixels() < 2 || target.pixels() < 2 {
        return Err(Error::Param(
            "colour matching needs at least 2 pixels".into(),
        ));
    }
    let s = ColorStats::of(source);
    let t = ColorStats::of(target);
    let m = mat_mul(&sym_pow(&t.corr, 0.5), &sym_pow(&s.corr, -0.5));
    Ok(crate::color::map_pixels(source, |x| {
        let z: [f64; 3] = std::array::from_fn(|c| (x[c] - s.mean[c]) / s.std[c]);
        std::array::from_fn(|c| (m[c][0] * z[0] + m[c][1] * z[1] + m[c][2] * z[2]) * t.std[c] + t.mean[c])
    }))
}

use crate::color::{Mat3, mat_mul};

/// Channel means, deviations (unbiased) and the correlation matrix of the standardised channels.
struct ColorStats {
    mean: [f64; 3],
    std: [f64; 3],
    corr: Mat3,
}

impl ColorStats {
    fn of(p: &Picture) -> Self {
        // Floors keep flat channels and rank-deficient colour sets invertible.
        const STD_FLOOR: f64 = 1e-3;
        const CORR_EPS: f64 = 1e-4;
        let n = p.pixels();
        let (mean, cov) = crate::color::channel_scatter(&p.rgb, n);
        let denom = (n - 1) as f64;
        let std: [f64; 3] = std::array::from_fn(|c| (cov[c][c] / denom).sqrt().max(STD_FLOOR));
        let mut corr = [[0f64; 3]; 3];
        for a in 0..3 {
            for b in 0..3 {
                corr[a][b] = cov[a][b] / denom / (std[a] * std[b]);
            }
            corr[a][a] += CORR_EPS;
        }
        Self { mean, std, corr }
    }
}

/// `A^p` of a symmetric positive semi-definite 3×3 matrix (eigenvalues floored at a small epsilon).
fn sym_pow(a: &Mat3, p: f64) -> Mat3 {
    crate::color::sym_fn(a, |l| l.max(1e-8).powf(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_power_inverts_and_squares() {
        let a: Mat3 = [[2.0, 0.5, 0.1], [0.5, 1.5, -0.3], [0.1, -0.3, 1.0]];
        let r = sym_pow(&a, 0.5);
        let rr = mat_mul(&r, &r);
        let inv = mat_mul(&sym_pow(&a, -0.5), &r);
        for i in 0..3 {
            for j in 0..3 {
                assert!((rr[i][j] - a[i][j]).abs() < 1e-9, "sqrt^2 {rr:?}");
                let id = if i == j { 1.0 } else { 0.0 };
                assert!((inv[i][j] - id).abs() < 1e-9, "inverse {inv:?}");
            }
        }
    }

    #[test]
    fn area_resize_preserves_mean_and_hard_edges() {
        let (w, h) = (16, 4);
        let v: Vec<f32> = (0..w * h)
            .map(|i| if i % w < 8 { 1.0 } else { 0.0 })
            .collect();
        let r = area_resize(&v, w, h, 8, 2);
        assert_eq!(r, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0].repeat(2));
        let odd = area_resize(&v, w, h, 5, 3);
        let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len() as f32;
        assert!((mean(&odd) - mean(&v)).abs() < 1e-6);
    }

    #[test]
    fn weights_are_normalised_and_checked() {
        assert_eq!(
            normalised_weights([1.0, 3.0].into_iter()).unwrap(),
            vec![0.25, 0.75]
        );
        assert!(normalised_weights([1.0, -1.0].into_iter()).is_err());
        assert!(normalised_weights([0.0].into_iter()).is_err());
        assert!(normalised_weights([f32::NAN].into_iter()).is_err());
        assert!(normalised_weights(std::iter::empty()).is_err());
    }
}

/// The `adain` method: any picture is a style, in one pass (Huang & Belongie, ICCV 2017;
/// xunhuang1995/AdaIN-style).
#[derive(Debug)]
pub struct Adain;

static ADAIN: MethodInfo = MethodInfo {
    name: "adain",
    title: "Arbitrary (AdaIN)",
    summary: "Any style image, in one pass.",
    source: "Huang & Belongie, Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization (ICCV 2017), xunhuang1995/AdaIN-style",
    model_kinds: &[ModelKind::Adain],
    default_model: Some("adain"),
    style: StyleSource::Images { max: 8 },
    mask: true,
    execution: Execution::Sync,
    tiles: true,
    min_side: MIN_SIDE,
    options: &["strength", "preserve_color", "max_size", "tile", "alpha", "color_match"],
};

impl Method for Adain {
    fn info(&self) -> &MethodInfo {
        &ADAIN
    }

    fn compute(&self, model: &Loaded, input: &Input, params: &Params, device: &Device, control: &mut Control<'_>) -> Result<Outcome> {
        let Loaded::Adain(m) = model else {
            return Err(wrong_model(&ADAIN, model));
        };
        if input.styles.is_empty() {
            return Err(Error::Param("method adain needs at least one style image or statistics file".into()));
        }
        let mask = input.content_mask()?;
        control.stage(0.1, "stylizing");
        let content = &input.content;
        let opts = AdainOptions {
            alpha: (params.number("alpha") * params.number("strength")) as f32,
            preserve_color: match (params.flag("color_match"), params.flag("preserve_color")) {
                (true, _) => PreserveColor::Coral,
                (false, true) => PreserveColor::Luminance,
                (false, false) => PreserveColor::Off,
            },
            mask,
            max_size: params.max_size(),
            tile: tile_for(&ADAIN, params, content.width, content.height),
            ..Default::default()
        };
        Ok(Outcome::done(m.stylize(content, &input.styles, &opts, device)?))
    }
}
