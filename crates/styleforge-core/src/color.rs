//! Colour operations on planar RGB (0..255): strength blending and colour preservation.
//!
//! Colour preservation keeps the content's chroma and takes only the luminance of the
//! stylised image, in full-range YCbCr (ITU-R BT.601, as JPEG uses): luminance and chroma are
//! separated linearly, so the result has the content's hues under the style's light and texture.

use crate::error::{Error, Result};

/// `strength * stylised + (1 - strength) * content`, per sample.
pub fn blend(content: &[f32], stylised: &mut [f32], strength: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&strength) {
        return Err(Error::Param(format!(
            "strength must be within 0..1, got {strength}"
        )));
    }
    if content.len() != stylised.len() {
        return Err(Error::Param("blend: images differ in size".into()));
    }
    if strength < 1.0 {
        for (s, c) in stylised.iter_mut().zip(content) {
            *s = strength * *s + (1.0 - strength) * c;
        }
    }
    Ok(())
}

/// Replaces the chroma of `stylised` with that of `content`, keeping the stylised luminance.
pub fn preserve_color(content: &[f32], stylised: &mut [f32]) -> Result<()> {
    if content.len() != stylised.len() || content.len() % 3 != 0 {
        return Err(Error::Param("preserve_color: images differ in size".into()));
    }
    let n = content.len() / 3;
    for i in 0..n {
        let y = luma(stylised[i], stylised[n + i], stylised[2 * n + i]);
        let (_, cb, cr) = rgb_to_ycbcr(content[i], content[n + i], content[2 * n + i]);
        let (r, g, b) = ycbcr_to_rgb(y, cb, cr);
        stylised[i] = r.clamp(0.0, 255.0);
        stylised[n + i] = g.clamp(0.0, 255.0);
        stylised[2 * n + i] = b.clamp(0.0, 255.0);
    }
    Ok(())
}

fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Full-range BT.601 RGB → YCbCr (chroma centred on 128).
pub fn rgb_to_ycbcr(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let y = luma(r, g, b);
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    (y, cb, cr)
}

/// Full-range BT.601 YCbCr → RGB.
pub fn ycbcr_to_rgb(y: f32, cb: f32, cr: f32) -> (f32, f32, f32) {
    let r = y + 1.402 * (cr - 128.0);
    let g = y - 0.344_136 * (cb - 128.0) - 0.714_136 * (cr - 128.0);
    let b = y + 1.772 * (cb - 128.0);
    (r, g, b)
}

/// Mean absolute difference between two equally sized sample buffers.
pub fn mean_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let s: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum();
    (s / a.len().max(1) as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_round_trips() {
        for &(r, g, b) in &[
            (0.0, 0.0, 0.0),
            (255.0, 0.0, 0.0),
            (12.0, 200.0, 77.0),
            (255.0, 255.0, 255.0),
        ] {
            let (y, cb, cr) = rgb_to_ycbcr(r, g, b);
            let (r2, g2, b2) = ycbcr_to_rgb(y, cb, cr);
            assert!(
                (r - r2).abs() < 0.01 && (g - g2).abs() < 0.01 && (b - b2).abs() < 0.01,
                "{r},{g},{b}"
            );
        }
    }

    #[test]
    fn preserve_color_keeps_content_chroma_and_stylised_luma() {
        // content: saturated red; stylised: mid grey. Result: red hue at grey's luminance.
        let content = vec![200.0, 20.0, 20.0];
        let mut out = vec![120.0, 120.0, 120.0];
        preserve_color(&content, &mut out).unwrap();
        let (y, cb, cr) = rgb_to_ycbcr(out[0], out[1], out[2]);
        let (_, ccb, ccr) = rgb_to_ycbcr(200.0, 20.0, 20.0);
        assert!((y - 120.0).abs() < 0.5, "luma {y}");
        assert!(
            (cb - ccb).abs() < 0.5 && (cr - ccr).abs() < 0.5,
            "chroma {cb} {cr}"
        );
        assert!(out[0] > out[1] && out[0] > out[2]);
    }

    #[test]
    fn blend_interpolates_and_rejects_bad_strength() {
        let c = vec![0.0, 100.0];
        let mut s = vec![100.0, 0.0];
        blend(&c, &mut s, 0.25).unwrap();
        assert_eq!(s, vec![25.0, 75.0]);
        assert!(blend(&c, &mut s, 1.5).is_err());
        assert!(blend(&c, &mut s, f32::NAN).is_err());
    }
}
