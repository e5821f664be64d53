//! Image-to-image networks on images of any size: padding to the network's size multiple, and
//! overlapping tiles blended with feathered weights so no seams show.
//!
//! Memory is bounded by the tile, not the image: only one tile is on the backend at a time,
//! and the host keeps the input, the weighted sum and the weight plane. Networks with instance
//! normalisation get the whole image's statistics from the caller (see [`crate::networks::layers::NormContext`]);
//! the tiler itself knows nothing of the network.

use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::networks::layers::{FrameNorm, NormContext, NormStats};
use crate::weights::HostTensor;

/// How to split an image into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileConfig {
    /// Tile side in pixels (the network sees at most this plus padding).
    pub tile: u32,
    /// Overlap between neighbouring tiles, over which they are cross-faded.
    pub overlap: u32,
}

impl TileConfig {
    /// Tiles of `tile` pixels with a quarter-tile overlap (at least 32, at most 128 pixels).
    pub fn new(tile: u32) -> Result<Self> {
        if tile < 64 {
            return Err(Error::Param(format!(
                "tile size must be at least 64 pixels, got {tile}"
            )));
        }
        Ok(Self {
            tile,
            overlap: (tile / 4).clamp(32, 128),
        })
    }
}

/// Uploads planar RGB (`3×h×w`) as a `[1, 3, h, w]` tensor.
pub fn planes_to_tensor(rgb: &[f32], width: u32, height: u32, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(rgb.to_vec(), [1, 3, height as usize, width as usize]),
        device,
    )
}

/// Downloads a `[1, 3, h, w]` tensor as planar RGB.
pub fn tensor_to_planes(t: Tensor<4>) -> Result<Vec<f32>> {
    Ok(HostTensor::from_tensor(t)?.data)
}

/// Runs `net` on `x` after padding H and W up to a multiple of `multiple` (reflection where the
/// image is large enough, edge replication otherwise), and crops the result back.
pub fn run_padded(
    x: Tensor<4>,
    multiple: usize,
    net: &mut dyn FnMut(Tensor<4>) -> Tensor<4>,
) -> Tensor<4> {
    let [n, _, h, w] = x.dims();
    let ph = h.next_multiple_of(multiple) - h;
    let pw = w.next_multiple_of(multiple) - w;
    if ph == 0 && pw == 0 {
        return net(x);
    }
    let mode = if ph < h && pw < w {
        PadMode::Reflect
    } else {
        PadMode::Edge
    };
    let y = net(x.pad([(0, ph), (0, pw)], mode));
    let c = y.dims()[1];
    y.slice([0..n, 0..c, 0..h, 0..w])
}

/// Runs `net` over `rgb` (planar, `width`×`height`) tile by tile and blends the tiles.
/// `net` maps a `[1, 3, h, w]` tile to a `[1, 3, h, w]` output of the same size.
pub fn run_tiled(
    rgb: &[f32],
    width: u32,
    height: u32,
    cfg: TileConfig,
    device: &Device,
    net: &mut dyn FnMut(Tensor<4>) -> Result<Tensor<4>>,
) -> Result<Vec<f32>> {
    run_tiled_with_context(rgb, width, height, cfg, 0, device, net)
}

/// [`run_tiled`] for networks whose output near a picture's edge differs from the inside
/// (opaque graphs that cannot share whole-image statistics, or that draw borders): each tile
/// is run with up to `context` more pixels of the picture on every side, which are cut off the
/// output before the tiles are blended, so no tile's own edge shows inside the picture.
pub fn run_tiled_with_context(
    rgb: &[f32],
    width: u32,
    height: u32,
    cfg: TileConfig,
    context: u32,
    device: &Device,
    net: &mut dyn FnMut(Tensor<4>) -> Result<Tensor<4>>,
) -> Result<Vec<f32>> {
    let (w, h) = (width as usize, height as usize);
    let context = context as usize;
    let n = w * h;
    let xs = tile_starts(w, cfg);
    let ys = tile_starts(h, cfg);
    let mut acc = vec![0f32; 3 * n];
    let mut wsum = vec![0f32; n];
    for &y0 in &ys {
        for &x0 in &xs {
            let tw = (cfg.tile as usize).min(w - x0);
            let th = (cfg.tile as usize).min(h - y0);
            // The tile with its context: `(left, top)` more pixels before it, and after it.
            let (left, top) = (context.min(x0), context.min(y0));
            let (cw, ch) = (left + tw + context.min(w - x0 - tw), top + th + context.min(h - y0 - th));
            let (cx, cy) = (x0 - left, y0 - top);
            let mut crop = Vec::with_capacity(3 * cw * ch);
            for c in 0..3 {
                for y in cy..cy + ch {
                    let row = c * n + y * w + cx;
                    crop.extend_from_slice(&rgb[row..row + cw]);
                }
            }
            let t = Tensor::<4>::from_data(TensorData::new(crop, [1, 3, ch, cw]), device);
            let out = net(t)?;
            if out.dims() != [1, 3, ch, cw] {
                return Err(Error::Backend(format!(
                    "tile output {:?} != input [1, 3, {ch}, {cw}]",
                    out.dims()
                )));
            }
            let out = tensor_to_planes(out)?;
            let out: Vec<f32> = if (cw, ch) == (tw, th) {
                out
            } else {
                (0..3).flat_map(|c| (0..th).flat_map(move |y| (0..tw).map(move |x| (c, y, x)))).map(|(c, y, x)| out[c * cw * ch + (top + y) * cw + left + x]).collect()
            };
            let ramp_x = ramp(tw, x0 > 0, x0 + tw < w, cfg.overlap as usize);
            let ramp_y = ramp(th, y0 > 0, y0 + th < h, cfg.overlap as usize);
            for (ty, ry) in ramp_y.iter().enumerate() {
                for (tx, rx) in ramp_x.iter().enumerate() {
                    let wt = ry * rx;
                    let p = (y0 + ty) * w + x0 + tx;
                    wsum[p] += wt;
                    for c in 0..3 {
                        acc[c * n + p] += wt * out[c * th * tw + ty * tw + tx];
                    }
                }
            }
        }
    }
    for p in 0..n {
        let s = wsum[p];
        for c in 0..3 {
            acc[c * n + p] /= s;
        }
    }
    Ok(acc)
}

/// An image network with instance normalisation: `[1, 3, h, w]` RGB 0..255 in, same size out.
pub type NormalizedNet<'a> = &'a dyn Fn(Tensor<4>, &mut NormContext) -> Tensor<4>;

/// The statistics pass keeps at least this many pixels on the short side (or the picture's own,
/// when smaller), so a thin picture is not scaled below what the networks run on.
pub const STATS_MIN_SIDE: u32 = 32;

/// Instance-norm statistics of every layer of `net`, measured on `pic` scaled to `size` (long
/// side; larger for thin pictures, see [`STATS_MIN_SIDE`]).
pub fn norm_stats(pic: &Picture, size: u32, device: &Device, net: NormalizedNet<'_>) -> NormStats {
    let small = pic.fit_within_keeping(size, STATS_MIN_SIDE);
    let x = planes_to_tensor(&small.rgb, small.width, small.height, device);
    let mut ctx = NormContext::Record(Vec::new());
    let _ = net(x, &mut ctx);
    ctx.into_stats()
}

/// Runs `net` over a picture: in one pass when it fits within `tile` (or `tile` is `None`),
/// otherwise tile by tile, every tile normalised with the statistics of a pass over the
/// picture scaled to `stats_size`. Returns planar RGB.
pub fn run_normalized(
    pic: &Picture,
    tile: Option<u32>,
    stats_size: u32,
    device: &Device,
    net: NormalizedNet<'_>,
) -> Result<Vec<f32>> {
    run_normalized_in(pic, tile, stats_size, device, None, net)
}

/// [`run_normalized`] for a frame of a sequence: with `frame`, the statistics are shared with
/// the frames before ([`FrameNorm`]), in one pass or, tiled, blended from the statistics pass.
pub fn run_normalized_in(
    pic: &Picture,
    tile: Option<u32>,
    stats_size: u32,
    device: &Device,
    frame: Option<&mut FrameNorm>,
    net: NormalizedNet<'_>,
) -> Result<Vec<f32>> {
    match (tile.filter(|&t| pic.width > t || pic.height > t), frame) {
        (None, None) => {
            let x = planes_to_tensor(&pic.rgb, pic.width, pic.height, device);
            tensor_to_planes(net(x, &mut NormContext::Local))
        }
        (None, Some(frame)) => {
            let x = planes_to_tensor(&pic.rgb, pic.width, pic.height, device);
            let mut ctx = frame.context();
            let y = net(x, &mut ctx);
            frame.finish(ctx);
            tensor_to_planes(y)
        }
        (Some(tile), frame) => {
            let own = norm_stats(pic, stats_size, device, net);
            let stats = match frame {
                Some(f) => f.blend(own),
                None => own,
            };
            run_tiled(&pic.rgb, pic.width, pic.height, TileConfig::new(tile)?, device, &mut |t| {
                Ok(net(t, &mut NormContext::Replay { stats: stats.clone(), cursor: 0 }))
            })
        }
    }
}

/// Start offsets so that tiles of `cfg.tile` overlap by at least `cfg.overlap` and cover `len`.
fn tile_starts(len: usize, cfg: TileConfig) -> Vec<usize> {
    let tile = cfg.tile as usize;
    if len <= tile {
        return vec![0];
    }
    let step = tile - cfg.overlap as usize;
    let count = (len - cfg.overlap as usize).div_ceil(step);
    // Spread the tiles evenly so every overlap is at least `overlap`.
    (0..count).map(|i| i * (len - tile) / (count - 1)).collect()
}

/// Blend weights along one tile side: rising over `overlap` pixels where a neighbour precedes,
/// falling where one follows, and strictly positive everywhere.
fn ramp(len: usize, rise: bool, fall: bool, overlap: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let mut v = 1.0f32;
            if rise && i < overlap {
                v = v.min((i as f32 + 0.5) / overlap as f32);
            }
            if fall && len - 1 - i < overlap {
                v = v.min(((len - 1 - i) as f32 + 0.5) / overlap as f32);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_with_overlap() {
        let cfg = TileConfig {
            tile: 256,
            overlap: 64,
        };
        for len in [100, 256, 257, 500, 1000, 4096] {
            let s = tile_starts(len, cfg);
            assert_eq!(s[0], 0);
            assert_eq!(
                s.last().unwrap() + 256.min(len),
                len,
                "covers the end for {len}"
            );
            for pair in s.windows(2) {
                assert!(pair[0] + 256 - pair[1] >= 64, "overlap for {len}: {s:?}");
            }
        }
    }

    #[test]
    fn identity_network_is_reproduced_exactly() {
        let device = Device::flex();
        let (w, h) = (300u32, 217u32);
        let rgb: Vec<f32> = (0..3 * w * h).map(|i| (i % 251) as f32).collect();
        let out = run_tiled(
            &rgb,
            w,
            h,
            TileConfig {
                tile: 128,
                overlap: 32,
            },
            &device,
            &mut |t| Ok(t),
        )
        .unwrap();
        let max = rgb
            .iter()
            .zip(&out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(max < 1e-3, "max diff {max}");
    }
}
