//! The `microast` method: arbitrary style transfer with MicroAST (Wang et al., AAAI 2023;
//! EndyWon/MicroAST), the network of [`crate::networks::microast`], built into styleforge.
//!
//! - **Style signals.** A style image gives, per level, the AdaIN target (mean and standard
//!   deviation of the style encoder's features) and the modulator's filter weights and biases:
//!   256 numbers per level ([`StyleSignals`]). Several styles blend by averaging their signals
//!   with the given weights. Signals are cached per model and style image, so a gallery style
//!   costs one encoder pass per process.
//! - **Strength.** The published `alpha` blends only the AdaIN steps while the filter modulation
//!   stays at full strength, which leaves the valid range below 1. Strength `s` here moves every
//!   signal, AdaIN targets and filter modulation alike, from the content's own signals (the
//!   content as a style of itself) to the style's, and then blends the result with the content
//!   pixels by `s`: 0 gives the content exactly, 1 the full transfer, and the steps between
//!   stay within range.
//! - **Colour.** `preserve_color` keeps the content's chroma ([`crate::color::preserve_color`]);
//!   `color_match` recolours each style image to the content's colour statistics first.
//! - **Masks.** The mask blends the rendering with the styles and the background's: a
//!   rendering with the background styles, or the content's pixels when there are none.
//! - **Size.** The network's output side is a multiple of 4; it is cropped back to the input's
//!   size (the same top-left alignment as the reference). Images under 8 pixels a side are
//!   edge-padded first. Large images run in overlapping tiles with the whole image's feature
//!   statistics from a pass at 1024 pixels, so memory is bounded by the tile.

use std::collections::HashMap;
use std::sync::Mutex;

use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::library::Loaded;
use crate::methods::adain::{Style, area_resize, coral, normalised_weights};
use crate::methods::fast::{StylizeOptions, finish};
use crate::methods::{Control, Execution, Input, Method, MethodInfo, Outcome, Params, StyleSource, tile_for, wrong_model};
use crate::library::ModelKind;
use crate::networks::microast::{CHANNELS, LevelTarget, MicroAst, mean_std};
use crate::tiling::{TileConfig, planes_to_tensor, run_tiled, tensor_to_planes};

/// Style images are scaled so their long side is at most this before encoding (never up).
pub const STYLE_SIZE: u32 = 512;

/// Long side of the pass that measures the content's feature statistics for tiled runs, and of
/// the content's own signals.
pub const STATS_SIZE: u32 = 1024;

/// Inputs are edge-padded to at least this many pixels a side.
const PAD_TO: usize = 8;

/// One level's signals: AdaIN target mean and deviation, filter weight and bias (64 each).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelSignals {
    /// Target mean per channel.
    pub mean: Vec<f32>,
    /// Target standard deviation per channel.
    pub std: Vec<f32>,
    /// Filter weight per channel.
    pub weight: Vec<f32>,
    /// Filter bias per channel.
    pub bias: Vec<f32>,
}

/// A style as MicroAST uses it: the signals of levels 0 and 1.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleSignals {
    /// Levels 0 (`enc1`'s features, driving `dec2`) and 1 (`enc2`'s, driving `dec1`).
    pub levels: [LevelSignals; 2],
}

impl LevelSignals {
    fn parts(&self) -> [&Vec<f32>; 4] {
        [&self.mean, &self.std, &self.weight, &self.bias]
    }

    fn from_parts([mean, std, weight, bias]: [Vec<f32>; 4]) -> Self {
        Self { mean, std, weight, bias }
    }
}

impl StyleSignals {
    /// The signals of a picture (RGB 0..255) at its own size.
    pub fn of(model: &MicroAst, pic: &Picture, device: &Device) -> Result<Self> {
        let x = pad_min(planes_to_tensor(&pic.rgb, pic.width, pic.height, device).div_scalar(255.0));
        let targets = model.style_targets(x);
        let host = |t: &Tensor<4>| -> Result<Vec<f32>> { Ok(crate::weights::HostTensor::from_tensor(t.clone())?.data) };
        let level = |t: &LevelTarget| -> Result<LevelSignals> {
            Ok(LevelSignals { mean: host(&t.mean)?, std: host(&t.std)?, weight: host(&t.weight)?, bias: host(&t.bias)? })
        };
        let signals = Self { levels: [level(&targets[0])?, level(&targets[1])?] };
        if signals.levels.iter().flat_map(|l| l.parts()).flatten().any(|v| !v.is_finite()) {
            return Err(Error::Param("the style image gives non-finite MicroAST signals".into()));
        }
        Ok(signals)
    }

    /// The weighted mean of several styles' signals (weights normalised; each finite, ≥ 0).
    pub fn mix(parts: &[(StyleSignals, f32)]) -> Result<Self> {
        let weights = normalised_weights(parts.iter().map(|p| p.1))?;
        let level = |l: usize| {
            let mut acc: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0f32; CHANNELS]);
            for ((s, _), w) in parts.iter().zip(&weights) {
                for (a, v) in acc.iter_mut().zip(s.levels[l].parts()) {
                    for (x, y) in a.iter_mut().zip(v) {
                        *x += w * y;
                    }
                }
            }
            LevelSignals::from_parts(acc)
        };
        Ok(Self { levels: [level(0), level(1)] })
    }

    /// `(1 - t)·self + t·other`.
    pub fn lerp(&self, other: &Self, t: f32) -> Self {
        Self::mix(&[(self.clone(), 1.0 - t), (other.clone(), t)]).unwrap_or_else(|_| other.clone())
    }

    /// The decoder's targets, `[1, 64, 1, 1]` each.
    fn targets(&self, device: &Device) -> [LevelTarget; 2] {
        let t = |v: &Vec<f32>| Tensor::<4>::from_data(TensorData::new(v.clone(), [1, CHANNELS, 1, 1]), device);
        let level = |l: &LevelSignals| LevelTarget { mean: t(&l.mean), std: t(&l.std), weight: t(&l.weight), bias: t(&l.bias) };
        [level(&self.levels[0]), level(&self.levels[1])]
    }
}

/// Edge-pads `[1, 3, h, w]` at the bottom and right to at least [`PAD_TO`] pixels a side.
fn pad_min(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if h >= PAD_TO && w >= PAD_TO {
        return x;
    }
    x.pad([(0, PAD_TO.saturating_sub(h)), (0, PAD_TO.saturating_sub(w))], PadMode::Edge)
}

/// Cached signals, keyed by model and style image.
static CACHE: Mutex<Option<HashMap<[u8; 32], StyleSignals>>> = Mutex::new(None);
const CACHE_ENTRIES: usize = 256;

/// The signals of a style image, scaled to [`STYLE_SIZE`]; from the cache when the same model
/// has seen the same pixels.
pub fn style_signals(model: &MicroAst, style: &Picture, device: &Device) -> Result<StyleSignals> {
    if style.pixels() == 0 || style.rgb.len() != 3 * style.pixels() {
        return Err(Error::Param("a style image is empty or malformed".into()));
    }
    let mut h = Sha256::new();
    h.update(model.id.to_le_bytes());
    h.update(style.width.to_le_bytes());
    h.update(style.height.to_le_bytes());
    for v in &style.rgb {
        h.update(v.to_le_bytes());
    }
    let key: [u8; 32] = h.finalize().into();
    if let Some(s) = CACHE.lock().ok().and_then(|c| c.as_ref().and_then(|m| m.get(&key).cloned())) {
        return Ok(s);
    }
    let signals = StyleSignals::of(model, &style.fit_within(STYLE_SIZE), device)?;
    if let Ok(mut c) = CACHE.lock() {
        let map = c.get_or_insert_with(HashMap::new);
        if map.len() >= CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key, signals.clone());
    }
    Ok(signals)
}

/// Options for [`stylize`].
#[derive(Debug, Clone, PartialEq)]
pub struct MicroAstOptions {
    /// 0 gives the content, 1 the full style (see the module documentation).
    pub strength: f32,
    /// Keep the content's chroma.
    pub preserve_color: bool,
    /// Recolour style images to the content's colour statistics before encoding.
    pub color_match: bool,
    /// Scale the content down so its long side is at most this (never up).
    pub max_size: Option<u32>,
    /// Tiled inference with this tile size; `None` runs the whole image at once.
    pub tile: Option<u32>,
}

impl Default for MicroAstOptions {
    fn default() -> Self {
        Self { strength: 1.0, preserve_color: false, color_match: false, max_size: None, tile: None }
    }
}

/// The signals of a weighted style set (images only), after colour matching when asked.
fn set_signals(model: &MicroAst, styles: &[(Style, f32)], content: &Picture, opts: &MicroAstOptions, device: &Device) -> Result<StyleSignals> {
    let mut parts = Vec::with_capacity(styles.len());
    for (style, wt) in styles {
        let Style::Picture(p) = style else {
            return Err(Error::Param("style statistics files apply to method adain, not microast".into()));
        };
        let s = if opts.color_match {
            StyleSignals::of(model, &coral(&p.fit_within(STYLE_SIZE), content)?, device)?
        } else {
            style_signals(model, p, device)?
        };
        parts.push((s, *wt));
    }
    StyleSignals::mix(&parts)
}

/// Stylises `content` (RGB 0..255, alpha kept) with the weighted `styles`: the picture at the
/// content's size after `max_size`, clamped to 0..255. `mask` (the content's size, values 0..1,
/// white takes the styles) with `background` styles (empty: the content stays there).
pub fn stylize(
    model: &MicroAst,
    content: &Picture,
    styles: &[(Style, f32)],
    mask: Option<(&[f32], &[(Style, f32)])>,
    opts: &MicroAstOptions,
    device: &Device,
) -> Result<Picture> {
    if !(0.0..=1.0).contains(&opts.strength) {
        return Err(Error::Param(format!("strength must be within 0..1, got {}", opts.strength)));
    }
    if styles.is_empty() {
        return Err(Error::Param("method microast needs at least one style image".into()));
    }
    if opts.max_size == Some(0) {
        return Err(Error::Param("max size must be at least 1 pixel".into()));
    }
    let pic = match opts.max_size {
        Some(m) => content.fit_within(m),
        None => content.clone(),
    };
    if pic.pixels() == 0 {
        return Err(Error::Param("the content image is empty".into()));
    }
    let (w, h) = (pic.width as usize, pic.height as usize);
    let mask = match mask {
        Some((values, _)) if values.len() != content.pixels() => {
            return Err(Error::Param(format!("the mask holds {} values for {} pixels", values.len(), content.pixels())));
        }
        Some((values, bg)) => Some((area_resize(values, content.width as usize, content.height as usize, w, h), bg)),
        None => None,
    };
    let s = opts.strength;
    let style = set_signals(model, styles, &pic, opts, device)?;
    let own = if s < 1.0 { Some(StyleSignals::of(model, &pic.fit_within(STATS_SIZE), device)?) } else { None };
    let toward = |target: StyleSignals| match &own {
        Some(o) => o.lerp(&target, s),
        None => target,
    };
    let unit: Vec<f32> = pic.rgb.iter().map(|v| v / 255.0).collect();
    let tile = opts.tile.filter(|&t| pic.width > t || pic.height > t);
    let render = |signals: StyleSignals| render_all(model, &pic, &unit, &toward(signals).targets(device), tile, device);
    let mut out = render(style)?;
    if let Some((m, bg)) = &mask {
        // The mask blends the foreground rendering with the background's: a rendering with the
        // background styles, or the content itself.
        let other = if bg.is_empty() { unit.clone() } else { render(set_signals(model, bg, &pic, opts, device)?)? };
        let n = w * h;
        for c in 0..3 {
            for (p, mv) in m.iter().enumerate() {
                let i = c * n + p;
                out[i] = mv * out[i] + (1.0 - mv) * other[i];
            }
        }
    }
    for v in out.iter_mut() {
        *v = (*v * 255.0).clamp(0.0, 255.0);
    }
    let finishing = StylizeOptions { strength: s, preserve_color: opts.preserve_color, ..StylizeOptions::default() };
    finish(&pic, &mut out, &finishing)?;
    Ok(Picture { width: pic.width, height: pic.height, rgb: out, alpha: pic.alpha.clone() })
}

/// The picture `pic` (planar RGB 0..1 in `unit`) rendered towards `targets`: RGB 0..1 planes
/// at its size, unclamped; whole, or in tiles of `tile` with the statistics of a pass at
/// [`STATS_SIZE`].
fn render_all(model: &MicroAst, pic: &Picture, unit: &[f32], targets: &[LevelTarget; 2], tile: Option<u32>, device: &Device) -> Result<Vec<f32>> {
    let crop = |x: Tensor<4>, stats: Option<&Stats>| {
        let [_, _, th, tw] = x.dims();
        run(model, pad_min(x), stats, targets).slice([0..1, 0..3, 0..th, 0..tw])
    };
    match tile {
        None => tensor_to_planes(crop(planes_to_tensor(unit, pic.width, pic.height, device), None)),
        Some(tile) => {
            let cfg = TileConfig::new(tile)?;
            let small = pic.fit_within(STATS_SIZE);
            let x = pad_min(planes_to_tensor(&small.rgb, small.width, small.height, device).div_scalar(255.0));
            let stats = measure(model, x, targets);
            run_tiled(unit, pic.width, pic.height, cfg, device, &mut |t| Ok(crop(t, Some(&stats))))
        }
    }
}

/// The content statistics of the two AdaIN steps (level 1, then level 0).
type Stats = [(Tensor<4>, Tensor<4>); 2];

/// One pass: content encoder, decoder stage 1 and 2, with given or own statistics.
fn run(model: &MicroAst, x: Tensor<4>, stats: Option<&Stats>, targets: &[LevelTarget; 2]) -> Tensor<4> {
    let [_, f1] = model.content_encoder.forward(x);
    let s1 = match stats {
        Some(s) => s[0].clone(),
        None => mean_std(&f1),
    };
    let y = model.decoder.stage1(f1, &s1, &targets[1], 1.0);
    let s0 = match stats {
        Some(s) => s[1].clone(),
        None => mean_std(&y),
    };
    model.decoder.stage2(y, &s0, &targets[0], 1.0)
}

/// The whole image's statistics for tiled runs, measured on a smaller copy `x` (RGB 0..1).
fn measure(model: &MicroAst, x: Tensor<4>, targets: &[LevelTarget; 2]) -> Stats {
    let [_, f1] = model.content_encoder.forward(x);
    let s1 = mean_std(&f1);
    let y = model.decoder.stage1(f1, &s1, &targets[1], 1.0);
    let s0 = mean_std(&y);
    [s1, s0]
}

/// The `microast` method.
#[derive(Debug)]
pub struct MicroAstMethod;

static MICROAST: MethodInfo = MethodInfo {
    name: "microast",
    title: "Arbitrary, built in (MicroAST)",
    summary: "Any style image or built-in painting, in one fast pass; no download needed.",
    source: "Wang et al., MicroAST: Towards Super-Fast Ultra-Resolution Arbitrary Style Transfer (AAAI 2023), EndyWon/MicroAST",
    model_kinds: &[ModelKind::MicroAst],
    default_model: Some(crate::library::builtin::MICROAST),
    style: StyleSource::Images { max: 8 },
    mask: true,
    execution: Execution::Sync,
    tiles: true,
    min_side: crate::methods::FEED_FORWARD_MIN_SIDE,
    options: &["strength", "preserve_color", "max_size", "tile", "color_match"],
};

impl Method for MicroAstMethod {
    fn info(&self) -> &MethodInfo {
        &MICROAST
    }

    fn compute(&self, model: &Loaded, input: &Input, params: &Params, device: &Device, control: &mut Control<'_>) -> Result<Outcome> {
        let Loaded::MicroAst(m) = model else {
            return Err(wrong_model(&MICROAST, model));
        };
        let mask = input.content_mask()?;
        control.stage(0.1, "stylizing");
        let content = &input.content;
        let opts = MicroAstOptions {
            strength: params.strength(),
            preserve_color: params.flag("preserve_color"),
            color_match: params.flag("color_match"),
            max_size: params.max_size(),
            tile: tile_for(&MICROAST, params, content.width, content.height),
        };
        let mask = mask.as_ref().map(|m| (m.values.as_slice(), m.background.as_slice()));
        Ok(Outcome::done(stylize(m, content, &input.styles, mask, &opts, device)?))
    }
}
