//! New images from a DCGAN generator: independent samples from seeded latents, or a strip
//! interpolating between two latents along the great circle, as pictures or one grid image.

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::networks::dcgan::{BnMode, DcganGenerator};
use crate::train::dcgan::IMAGE_SIZE;
use crate::train::rng::Rng;
use crate::train::{grid as tile_grid, pictures_from_unit};
use crate::weights::HostTensor;

/// Most images one call generates.
pub const MAX_IMAGES: usize = 256;

/// `n` images (64×64) from a DCGAN generator (batch norm in eval mode): independent latents from `seed`, or `n` steps of
/// a spherical interpolation between two latents.
pub fn samples(g: &DcganGenerator, n: usize, seed: u64, interpolate: bool, device: &Device) -> Result<Vec<Picture>> {
    if n == 0 || n > MAX_IMAGES {
        return Err(Error::Param(format!("the number of images must be within 1..={MAX_IMAGES}")));
    }
    let nz = g.config().nz;
    let mut rng = Rng::new(seed);
    let z = if interpolate {
        let (z0, z1) = (rng.normals(nz), rng.normals(nz));
        slerp_path(&z0, &z1, n)
    } else {
        rng.normals(n * nz)
    };
    let zt = HostTensor::new(vec![n, nz, 1, 1], z).to_tensor::<4>(device)?;
    let out = HostTensor::from_tensor(g.forward(zt, BnMode::Eval))?;
    Ok(pictures_from_unit(&out.data, n, IMAGE_SIZE, IMAGE_SIZE))
}

/// `n` latents along the great circle from `a` to `b` (ends included).
fn slerp_path(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let omega = (dot / (na * nb)).clamp(-1.0, 1.0).acos();
    let mut out = Vec::with_capacity(n * a.len());
    for i in 0..n {
        let t = if n == 1 { 0.0 } else { i as f64 / (n - 1) as f64 };
        let (wa, wb) = if omega.abs() < 1e-6 {
            (1.0 - t, t)
        } else {
            (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin())
        };
        out.extend(a.iter().zip(b).map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32));
    }
    out
}

/// The images of [`samples`] as one grid: square for samples, one row for an interpolation.
pub fn grid(g: &DcganGenerator, n: usize, seed: u64, interpolate: bool, device: &Device) -> Result<Picture> {
    let pics = samples(g, n, seed, interpolate, device)?;
    let cols = if interpolate { n } else { (n as f64).sqrt().ceil() as usize };
    tile_grid(&pics, cols, 2)
}
