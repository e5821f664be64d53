//! Training images: folders of photos held in memory, and random resized square crops with
//! horizontal flips drawn from the run's generator (so a resumed run sees the same crops).

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Rgb};

use super::rng::Rng;
use crate::error::{Error, Result};
use crate::image_io::{self, Picture};

/// Every JPEG, PNG or WebP file directly in `dir`, sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(
                        e.to_ascii_lowercase().as_str(),
                        "jpg" | "jpeg" | "png" | "webp"
                    )
                })
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Param(format!(
            "{} holds no JPEG, PNG or WebP images",
            dir.display()
        )));
    }
    Ok(paths)
}

type RgbF = ImageBuffer<Rgb<f32>, Vec<f32>>;

/// Images kept with their shorter side at `load_size`; samples are square `crop`×`crop` crops.
#[derive(Debug, Clone)]
pub struct CropDataset {
    images: Vec<RgbF>,
    crop: u32,
}

impl CropDataset {
    /// Scales each picture so its shorter side is `load_size` (at least `crop`).
    pub fn from_pictures(pictures: &[Picture], load_size: u32, crop: u32) -> Result<Self> {
        if crop < 16 || !crop.is_multiple_of(4) {
            return Err(Error::Param(format!(
                "crop size {crop} must be a multiple of 4 and at least 16"
            )));
        }
        if pictures.is_empty() {
            return Err(Error::Param("a dataset needs at least one image".into()));
        }
        let load = load_size.max(crop);
        let images = pictures
            .iter()
            .map(|p| {
                let s = load as f64 / p.width.min(p.height) as f64;
                let w = ((p.width as f64 * s).round() as u32).max(load);
                let h = ((p.height as f64 * s).round() as u32).max(load);
                let r = p.resize(w, h);
                let n = (w * h) as usize;
                let mut px = Vec::with_capacity(3 * n);
                for i in 0..n {
                    for c in 0..3 {
                        px.push(r.rgb[c * n + i] / 255.0);
                    }
                }
                RgbF::from_raw(w, h, px).expect("sized")
            })
            .collect();
        Ok(Self { images, crop })
    }

    /// Every image of a folder (see [`image_files`]).
    pub fn from_folder(dir: &Path, load_size: u32, crop: u32) -> Result<Self> {
        let pictures = image_files(dir)?
            .iter()
            .map(|p| image_io::read(p, image_io::DEFAULT_MAX_PIXELS))
            .collect::<Result<Vec<_>>>()?;
        Self::from_pictures(&pictures, load_size, crop)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are no images (never true for a constructed dataset).
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Side of the samples.
    pub fn crop(&self) -> u32 {
        self.crop
    }

    /// A random image, a random square of random side between the crop size and its shorter
    /// side, resized to the crop size, flipped with probability 1/2; planar `3×crop×crop` in `[-1, 1]`.
    pub fn sample(&self, rng: &mut Rng) -> Vec<f32> {
        let img = &self.images[rng.below(self.images.len() as u64) as usize];
        let (w, h) = img.dimensions();
        let short = w.min(h);
        let side = self.crop + rng.below((short - self.crop + 1) as u64) as u32;
        let x = rng.below((w - side + 1) as u64) as u32;
        let y = rng.below((h - side + 1) as u64) as u32;
        let flip = rng.chance(0.5);
        let view = imageops::crop_imm(img, x, y, side, side).to_image();
        let sized = if side == self.crop {
            view
        } else {
            imageops::resize(&view, self.crop, self.crop, FilterType::Triangle)
        };
        to_unit_planar(&sized, flip)
    }

    /// The centre square of image `i` at the crop size (fixed samples for grids).
    pub fn centre(&self, i: usize) -> Vec<f32> {
        let img = &self.images[i % self.images.len()];
        let (w, h) = img.dimensions();
        let short = w.min(h);
        let view = imageops::crop_imm(img, (w - short) / 2, (h - short) / 2, short, short).to_image();
        let sized = imageops::resize(&view, self.crop, self.crop, FilterType::Triangle);
        to_unit_planar(&sized, false)
    }
}

fn to_unit_planar(img: &RgbF, flip: bool) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let mut out = vec![0f32; 3 * (w * h) as usize];
    let n = (w * h) as usize;
    for y in 0..h {
        for x in 0..w {
            let p = img.get_pixel(if flip { w - 1 - x } else { x }, y);
            let i = (y * w + x) as usize;
            for c in 0..3 {
                out[c * n + i] = (p[c] * 2.0 - 1.0).clamp(-1.0, 1.0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_in_range_flipped_and_reproducible() {
        let (w, h) = (40u32, 24u32);
        let n = (w * h) as usize;
        // A horizontal ramp in red, constant green, vertical ramp in blue.
        let mut rgb = vec![0f32; 3 * n];
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) as usize;
                rgb[i] = 255.0 * x as f32 / (w - 1) as f32;
                rgb[n + i] = 100.0;
                rgb[2 * n + i] = 255.0 * y as f32 / (h - 1) as f32;
            }
        }
        let ds = CropDataset::from_pictures(&[Picture::from_planes(w, h, rgb)], 24, 16).unwrap();
        let mut a = Rng::new(3);
        let mut b = Rng::new(3);
        let (mut flips, mut straight) = (0, 0);
        for _ in 0..40 {
            let s = ds.sample(&mut a);
            assert_eq!(s, ds.sample(&mut b));
            assert_eq!(s.len(), 3 * 16 * 16);
            assert!(s.iter().all(|v| (-1.0..=1.0).contains(v)));
            // Green stays constant; red runs left to right unless flipped.
            assert!(s[256..512].iter().all(|v| (v - (100.0 / 127.5 - 1.0)).abs() < 0.02));
            if s[15] > s[0] {
                straight += 1;
            } else {
                flips += 1;
            }
        }
        assert!(flips > 5 && straight > 5, "flips {flips}, straight {straight}");
        assert!(CropDataset::from_pictures(&[], 24, 16).is_err());
        assert!(CropDataset::from_pictures(&[Picture::from_planes(4, 4, vec![0.0; 48])], 24, 18).is_err());
    }
}
