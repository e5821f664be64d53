//! Quality metrics of a stylisation, as papers report them: structural similarity to the content
//! (SSIM) and content and style losses in VGG-19 feature space.
//!
//! - [`ssim`]: Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error
//!   visibility to structural similarity" (IEEE TIP 2004), with the paper's settings as
//!   scikit-image's `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
//!   use_sample_covariance=False, data_range=255, channel_axis=-1)` computes them: an 11×11
//!   Gaussian window (σ 1.5, truncated at 3.5σ), K1 0.01, K2 0.03, statistics filtered over the
//!   whole image with symmetric ("reflect") borders, the SSIM map averaged without its 5-pixel
//!   border, and the three channels averaged.
//! - [`VggReference`] and [`vgg_losses`]: the content loss is the mean squared difference of
//!   `relu4_1` features (Huang and Belongie, AdaIN, ICCV 2017, who evaluate there; Gatys et al.
//!   use `relu4_2`, [`content_loss`] takes any layer); two style losses over `relu1_1`..`relu5_1`:
//!   the sum over layers of the mean squared difference of Gram matrices `F Fᵀ / (C·H·W)`
//!   (Gatys et al., CVPR 2016, as [`crate::methods::gatys`] optimises it), and the sum over layers
//!   of the mean squared differences of per-channel means and standard deviations (AdaIN's style
//!   loss; unbiased variance + 1e-5 as its `calc_mean_std`). VGG inputs are RGB 0..1 (the network
//!   normalises them itself).
//! - [`lpips`]: the learned perceptual distance LPIPS (Zhang et al., CVPR 2018) on AlexNet or
//!   VGG-16 features.

pub mod fid;
pub mod lpips;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::methods::gatys::{STYLE_LAYERS, gram};
use crate::networks::vgg::Vgg;

/// The layer of the content loss.
pub const CONTENT_LAYER: &str = "relu4_1";

/// SSIM's Gaussian σ.
const SIGMA: f64 = 1.5;
/// The window is truncated at this many σ (radius 5: an 11×11 window).
const TRUNCATE: f64 = 3.5;

/// Mean structural similarity of two pictures of one size (RGB 0..255; alpha ignored): 1 for
/// identical pictures, lower the less alike, at worst about -1. Errors: [`Error::Param`] when the
/// sizes differ or a side is under 7 pixels (the window's border would leave nothing).
pub fn ssim(a: &Picture, b: &Picture) -> Result<f64> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(Error::Param(format!(
            "SSIM compares pictures of one size, got {}×{} and {}×{}",
            a.width, a.height, b.width, b.height
        )));
    }
    let radius = (TRUNCATE * SIGMA + 0.5) as usize;
    let (w, h) = (a.width as usize, a.height as usize);
    if w < 7 || h < 7 || w <= 2 * radius || h <= 2 * radius {
        return Err(Error::Param(format!("SSIM needs pictures of at least 11×11 pixels, got {w}×{h}")));
    }
    let kernel = gaussian_kernel(radius);
    let n = w * h;
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    for c in 0..3 {
        let x: Vec<f64> = a.rgb[c * n..(c + 1) * n].iter().map(|v| *v as f64).collect();
        let y: Vec<f64> = b.rgb[c * n..(c + 1) * n].iter().map(|v| *v as f64).collect();
        let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
        let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
        let xy: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
        let [ux, uy, uxx, uyy, uxy] = [&x, &y, &xx, &yy, &xy].map(|p| filter(p, w, h, &kernel));
        let mut sum = 0.0;
        for row in radius..h - radius {
            for col in radius..w - radius {
                let i = row * w + col;
                let (mx, my) = (ux[i], uy[i]);
                let vx = uxx[i] - mx * mx;
                let vy = uyy[i] - my * my;
                let vxy = uxy[i] - mx * my;
                sum += ((2.0 * mx * my + c1) * (2.0 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
            }
        }
        total += sum / ((h - 2 * radius) * (w - 2 * radius)) as f64;
    }
    Ok(total / 3.0)
}

/// The normalised Gaussian weights `exp(-x²/2σ²)` for `x` in `-radius..=radius`.
fn gaussian_kernel(radius: usize) -> Vec<f64> {
    let k: Vec<f64> = (0..=2 * radius).map(|i| (-((i as f64 - radius as f64).powi(2)) / (2.0 * SIGMA * SIGMA)).exp()).collect();
    let s: f64 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// Index `i` (possibly outside `0..n`) reflected as scipy's `mode="reflect"` does:
/// `d c b a | a b c d | d c b a`.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// Separable Gaussian filter of a `w`×`h` plane with reflected borders.
fn filter(p: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
    let r = (k.len() / 2) as isize;
    let mut tmp = vec![0f64; w * h];
    for y in 0..h {
        let row = &p[y * w..(y + 1) * w];
        for x in 0..w {
            tmp[y * w + x] = k.iter().enumerate().map(|(j, kv)| kv * row[reflect(x as isize + j as isize - r, w)]).sum();
        }
    }
    let mut out = vec![0f64; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = k.iter().enumerate().map(|(j, kv)| kv * tmp[reflect(y as isize + j as isize - r, h) * w + x]).sum();
        }
    }
    out
}

/// The VGG features a loss compares against: the content's at [`CONTENT_LAYER`], or a style's
/// Gram matrices and channel statistics at [`STYLE_LAYERS`]; computed once per picture.
#[derive(Debug, Clone)]
pub struct VggReference {
    content: Option<Tensor<4>>,
    grams: Vec<Tensor<3>>,
    stats: Vec<(Tensor<1>, Tensor<1>)>,
}

/// The three VGG losses of one output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VggLosses {
    /// Mean squared difference to the content's `relu4_1` features.
    pub content: f64,
    /// Gram style loss summed over `relu1_1`..`relu5_1` (`None` without a style picture).
    pub style_gram: Option<f64>,
    /// Mean/std style loss summed over `relu1_1`..`relu5_1` (`None` without a style picture).
    pub style_mean_std: Option<f64>,
}

/// A picture as a `[1, 3, H, W]` tensor in 0..1.
pub fn unit_tensor(pic: &Picture, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(pic.rgb.iter().map(|v| v / 255.0).collect::<Vec<f32>>(), [1, 3, pic.height as usize, pic.width as usize]),
        device,
    )
}

/// Per-channel mean and standard deviation (unbiased variance + 1e-5, AdaIN's `calc_mean_std`)
/// of `[1, C, H, W]` features.
fn mean_std(f: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    let [_, c, h, w] = f.dims();
    let f = f.reshape([c, h * w]);
    let mean = f.clone().mean_dim(1);
    let n = (h * w).max(2) as f32;
    let var = (f - mean.clone()).powi_scalar(2).sum_dim(1) / (n - 1.0) + 1e-5;
    (mean.reshape([c]), var.sqrt().reshape([c]))
}

impl VggReference {
    /// The content's features at [`CONTENT_LAYER`] (`x`: RGB 0..1, `[1, 3, H, W]`).
    pub fn content(vgg: &Vgg, x: Tensor<4>) -> Result<Self> {
        let f = vgg.forward(x, &[CONTENT_LAYER])?.remove(0);
        Ok(Self { content: Some(f), grams: Vec::new(), stats: Vec::new() })
    }

    /// A style's Gram matrices and channel statistics at [`STYLE_LAYERS`].
    pub fn style(vgg: &Vgg, x: Tensor<4>) -> Result<Self> {
        let feats = vgg.forward(x, &STYLE_LAYERS)?;
        let grams = feats.iter().map(|f| gram(f.clone())).collect();
        let stats = feats.into_iter().map(mean_std).collect();
        Ok(Self { content: None, grams, stats })
    }
}

/// Mean squared difference of `layer` features of `output` and `content` (both RGB 0..1,
/// `[1, 3, H, W]`, one size). Errors: an unknown layer, different sizes.
pub fn content_loss(vgg: &Vgg, output: Tensor<4>, content: Tensor<4>, layer: &str) -> Result<f64> {
    if output.dims() != content.dims() {
        return Err(Error::Param(format!("content loss of different sizes: {:?} and {:?}", output.dims(), content.dims())));
    }
    let a = vgg.forward(output, &[layer])?.remove(0);
    let b = vgg.forward(content, &[layer])?.remove(0);
    Ok(scalar((a - b).powi_scalar(2).mean()))
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().iter::<f32>().next().unwrap_or(f32::NAN) as f64
}

/// The content loss of `output` against `content` and, with `style`, both style losses (all
/// RGB 0..1, `[1, 3, H, W]`; the output at the content's size, the style at any size).
pub fn vgg_losses(vgg: &Vgg, output: Tensor<4>, content: &VggReference, style: Option<&VggReference>) -> Result<VggLosses> {
    let target = content.content.clone().ok_or_else(|| Error::Param("not a content reference".into()))?;
    let mut layers: Vec<&str> = vec![CONTENT_LAYER];
    if style.is_some() {
        layers.extend(STYLE_LAYERS.iter().filter(|l| **l != CONTENT_LAYER));
    }
    let feats = vgg.forward(output, &layers)?;
    let f_content = feats[0].clone();
    if f_content.dims() != target.dims() {
        return Err(Error::Param(format!("the output's features {:?} differ from the content's {:?}", f_content.dims(), target.dims())));
    }
    let content_loss = scalar((f_content.clone() - target).powi_scalar(2).mean());
    let (mut style_gram, mut style_mean_std) = (None, None);
    if let Some(s) = style {
        let (mut g_sum, mut m_sum) = (0.0, 0.0);
        for (k, layer) in STYLE_LAYERS.iter().enumerate() {
            let f = if *layer == CONTENT_LAYER { f_content.clone() } else { feats[layers.iter().position(|l| l == layer).expect("asked")].clone() };
            g_sum += scalar((gram(f.clone()) - s.grams[k].clone()).powi_scalar(2).mean());
            let (m, sd) = mean_std(f);
            let (tm, tsd) = s.stats[k].clone();
            m_sum += scalar((m - tm).powi_scalar(2).mean()) + scalar((sd - tsd).powi_scalar(2).mean());
        }
        style_gram = Some(g_sum);
        style_mean_std = Some(m_sum);
    }
    Ok(VggLosses { content: content_loss, style_gram, style_mean_std })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: u32, h: u32, seed: u32) -> Picture {
        let mut s = seed;
        let rgb = (0..3 * w * h)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 24) as f32
            })
            .collect();
        Picture { width: w, height: h, rgb, alpha: None }
    }

    #[test]
    fn ssim_is_one_for_equal_pictures_and_symmetric() {
        let a = noise(32, 24, 1);
        let b = noise(32, 24, 2);
        assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        let (ab, ba) = (ssim(&a, &b).unwrap(), ssim(&b, &a).unwrap());
        assert!((ab - ba).abs() < 1e-12 && ab < 0.2, "{ab}");
        assert!(ssim(&a, &noise(31, 24, 1)).is_err());
        assert!(ssim(&noise(10, 10, 1), &noise(10, 10, 2)).is_err());
    }

    #[test]
    fn reflection_follows_scipy() {
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }
}
