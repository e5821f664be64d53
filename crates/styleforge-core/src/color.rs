//! Colour operations on planar RGB (0..255): strength blending, colour preservation, and the
//! 3×3 linear algebra of colour transfer.
//!
//! Colour preservation keeps the content's chroma and takes only the luminance of the
//! stylised image, in full-range YCbCr (ITU-R BT.601, as JPEG uses): luminance and chroma are
//! separated linearly, so the result has the content's hues under the style's light and texture.
//!
//! Colour transfer (AdaIN's CORAL, Gatys's colour matching) maps every pixel through an affine
//! map built from the channels' means and scatter ([`channel_scatter`]) and matrix functions of
//! symmetric 3×3 matrices ([`sym_fn`], by the Jacobi eigensolver [`jacobi_eigen`]), applied by
//! [`map_pixels`].

use crate::error::{Error, Result};
use crate::image_io::Picture;

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

/// A 3×3 matrix of `f64`, rows first.
pub type Mat3 = [[f64; 3]; 3];

/// The matrix product `a · b`.
pub fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// `f(A)` of a symmetric 3×3 matrix through its eigendecomposition: `V · diag(f(λ)) · Vᵀ`.
/// `f` sees the raw eigenvalues; callers floor or shift them as their reference does.
pub fn sym_fn(a: &Mat3, f: impl Fn(f64) -> f64) -> Mat3 {
    let (vals, vecs) = jacobi_eigen(a);
    let d: [f64; 3] = std::array::from_fn(|k| f(vals[k]));
    std::array::from_fn(|i| {
        std::array::from_fn(|j| (0..3).map(|k| vecs[i][k] * d[k] * vecs[j][k]).sum())
    })
}

/// Eigenvalues and eigenvectors (columns) of a symmetric 3×3 matrix, by cyclic Jacobi rotations,
/// until the off-diagonal mass is below `1e-28` of the matrix's (at most 64 sweeps).
pub fn jacobi_eigen(a: &Mat3) -> ([f64; 3], Mat3) {
    let mut a = *a;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let scale: f64 = a.iter().flatten().map(|x| x * x).sum::<f64>().max(1e-300);
    for _ in 0..64 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        if off <= 1e-28 * scale {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
            let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // a <- Jᵀ a J, v <- v J, with J the rotation in the (p, q) plane.
            for row in a.iter_mut() {
                let (akp, akq) = (row[p], row[q]);
                row[p] = c * akp - s * akq;
                row[q] = s * akp + c * akq;
            }
            let (rp, rq) = (a[p], a[q]);
            a[p] = std::array::from_fn(|k| c * rp[k] - s * rq[k]);
            a[q] = std::array::from_fn(|k| s * rp[k] + c * rq[k]);
            for row in v.iter_mut() {
                let (vkp, vkq) = (row[p], row[q]);
                row[p] = c * vkp - s * vkq;
                row[q] = s * vkp + c * vkq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// The channel means of the first `n` pixels of planar RGB `rgb` and their scatter matrix
/// `Σ (x - μ)(x - μ)ᵀ` (unnormalised), in `f64`.
pub fn channel_scatter(rgb: &[f32], n: usize) -> ([f64; 3], Mat3) {
    let ch = |c: usize| &rgb[c * n..(c + 1) * n];
    let mean: [f64; 3] =
        std::array::from_fn(|c| ch(c).iter().map(|&v| v as f64).sum::<f64>() / n as f64);
    let mut scatter = [[0f64; 3]; 3];
    for i in 0..n {
        let d: [f64; 3] = std::array::from_fn(|c| ch(c)[i] as f64 - mean[c]);
        for a in 0..3 {
            for b in 0..3 {
                scatter[a][b] += d[a] * d[b];
            }
        }
    }
    (mean, scatter)
}

/// `p` with every pixel's RGB (as `f64`) mapped through `f`, clamped to 0..255; alpha is kept.
pub fn map_pixels(p: &Picture, f: impl Fn([f64; 3]) -> [f64; 3]) -> Picture {
    let n = p.pixels();
    let mut rgb = vec![0f32; 3 * n];
    for i in 0..n {
        let y = f(std::array::from_fn(|c| p.rgb[c * n + i] as f64));
        for c in 0..3 {
            rgb[c * n + i] = y[c].clamp(0.0, 255.0) as f32;
        }
    }
    Picture {
        width: p.width,
        height: p.height,
        rgb,
        alpha: p.alpha.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_symmetric_matrices() {
        for a in [
            [[2.0, 0.5, 0.1], [0.5, 1.5, -0.3], [0.1, -0.3, 1.0]],
            [[4.0e4, 1.0e4, 5.0e3], [1.0e4, 3.0e4, 2.0e3], [5.0e3, 2.0e3, 2.0e4]],
            [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
            [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]],
        ] {
            let (vals, v) = jacobi_eigen(&a);
            let scale = a.iter().flatten().fold(0f64, |m, x| m.max(x.abs()));
            let vt: Mat3 = std::array::from_fn(|i| std::array::from_fn(|j| v[j][i]));
            let d: Mat3 = std::array::from_fn(|i| std::array::from_fn(|j| if i == j { vals[i] } else { 0.0 }));
            let back = mat_mul(&mat_mul(&v, &d), &vt);
            let id = mat_mul(&vt, &v);
            for i in 0..3 {
                for j in 0..3 {
                    assert!((back[i][j] - a[i][j]).abs() < 1e-12 * scale, "V D Vᵀ {back:?} for {a:?}");
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((id[i][j] - want).abs() < 1e-12, "Vᵀ V {id:?}");
                }
            }
        }
        let r = sym_fn(&[[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]], f64::sqrt);
        let back = mat_mul(&r, &r);
        assert!((back[0][0] - 4.0).abs() < 1e-12 && (back[1][2] - 0.2).abs() < 1e-12, "{back:?}");
    }

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
