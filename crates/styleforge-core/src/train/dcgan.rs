//! DCGAN training as in pytorch/examples `dcgan/main.py`: 64×64 images in `[-1, 1]`, latent
//! `z ~ N(0, 1)`, BCE losses, Adam(2e-4, β1 0.5) for both networks, weights initialised as the
//! example does. Each step updates the discriminator on a real and a fake batch
//! (`BCE(D(x), 1) + BCE(D(G(z)), 0)`), then the generator through the updated discriminator
//! (`BCE(D(G(z)), 1)`), batch norm in train mode throughout.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Value, json};

use super::adam::{Adam, AdamSettings, param_names};
use super::rng::Rng;
use super::{Trainer, grid, pictures_from_unit};
use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::networks::dcgan::{
    BnMode, DcganDiscriminator, DcganGenerator, DcganNetwork, DiscriminatorConfig, GeneratorConfig, bce,
};
use crate::weights::{HostTensor, Weights};

/// Side of the images DCGAN generates and discriminates.
pub const IMAGE_SIZE: u32 = 64;
/// Number of fixed latents shown in sample grids.
pub const SAMPLES: usize = 16;

/// Sizes and optimiser settings of a DCGAN run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DcganSettings {
    /// Latent size.
    pub nz: usize,
    /// Generator width.
    pub ngf: usize,
    /// Discriminator width.
    pub ndf: usize,
    /// Images per batch.
    pub batch: usize,
    /// Adam for both networks.
    pub adam: AdamSettings,
}

impl Default for DcganSettings {
    /// The example's defaults: nz 100, widths 64, batch 64, Adam(2e-4, 0.5, 0.999).
    fn default() -> Self {
        Self {
            nz: 100,
            ngf: 64,
            ndf: 64,
            batch: 64,
            adam: AdamSettings::gan(),
        }
    }
}

/// Training images, 3×64×64 each, in `[-1, 1]`, held in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    data: Vec<f32>,
    n: usize,
}

const IMG_LEN: usize = 3 * (IMAGE_SIZE * IMAGE_SIZE) as usize;

impl Dataset {
    /// Images already at 64×64, planar, in `[-1, 1]`, concatenated.
    pub fn from_unit_images(data: Vec<f32>) -> Result<Self> {
        if data.is_empty() || !data.len().is_multiple_of(IMG_LEN) {
            return Err(Error::Param(format!(
                "{} values are not a whole number of 3x64x64 images",
                data.len()
            )));
        }
        let n = data.len() / IMG_LEN;
        Ok(Self { data, n })
    }

    /// Pictures scaled so the shorter side is 64, centre-cropped to 64×64 (the example's
    /// `Resize(64)` and `CenterCrop(64)`).
    pub fn from_pictures(pictures: &[Picture]) -> Result<Self> {
        let mut data = Vec::with_capacity(pictures.len() * IMG_LEN);
        for p in pictures {
            data.extend(to_unit_64(p));
        }
        Self::from_unit_images(data)
    }

    /// Every JPEG, PNG or WebP file directly in `dir`.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let paths = super::data::image_files(dir)?;
        let mut data = Vec::with_capacity(paths.len() * IMG_LEN);
        for p in &paths {
            let pic = crate::image_io::read(p, crate::image_io::DEFAULT_MAX_PIXELS)?;
            data.extend(to_unit_64(&pic));
        }
        Self::from_unit_images(data)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no images (never true for a constructed dataset).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Image `i`, planar 3×64×64 in `[-1, 1]`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.data[i * IMG_LEN..(i + 1) * IMG_LEN]
    }
}

fn to_unit_64(p: &Picture) -> Vec<f32> {
    let s = IMAGE_SIZE as f64 / p.width.min(p.height) as f64;
    let w = ((p.width as f64 * s).round() as u32).max(IMAGE_SIZE);
    let h = ((p.height as f64 * s).round() as u32).max(IMAGE_SIZE);
    let r = p.resize(w, h);
    let (x0, y0) = ((w - IMAGE_SIZE) / 2, (h - IMAGE_SIZE) / 2);
    let n = (w * h) as usize;
    let mut out = Vec::with_capacity(IMG_LEN);
    for c in 0..3 {
        for y in y0..y0 + IMAGE_SIZE {
            let row = c * n + (y * w + x0) as usize;
            out.extend(
                r.rgb[row..row + IMAGE_SIZE as usize]
                    .iter()
                    .map(|v| v / 127.5 - 1.0),
            );
        }
    }
    out
}

/// A DCGAN being trained: both networks, their optimisers, the data and the fixed sample latents.
pub struct DcganTrainer {
    settings: DcganSettings,
    g: DcganGenerator,
    d: DcganDiscriminator,
    names_g: HashMap<ParamId, String>,
    names_d: HashMap<ParamId, String>,
    adam_g: Adam,
    adam_d: Adam,
    data: Dataset,
    fixed_noise: Vec<f32>,
    device: Device,
}

impl DcganTrainer {
    /// Fresh networks initialised from `seed` (also the fixed sample latents); `device` is the
    /// plain device, training runs on its autodiff twin.
    pub fn new(settings: DcganSettings, data: Dataset, device: &Device, seed: u64) -> Result<Self> {
        if settings.batch < 2 || settings.nz == 0 || settings.ngf == 0 || settings.ndf == 0 {
            return Err(Error::Param(format!(
                "invalid DCGAN settings {settings:?} (batch norm needs a batch of 2 or more)"
            )));
        }
        let mut rng = Rng::new(seed ^ 0x5eed_dc6a);
        let mut normal = || rng.normal();
        let gw = GeneratorConfig {
            nz: settings.nz,
            ngf: settings.ngf,
            nc: 3,
        }
        .init_weights(&mut normal);
        let dw = DiscriminatorConfig {
            ndf: settings.ndf,
            nc: 3,
        }
        .init_weights(&mut normal);
        let fixed_noise = rng.normals(SAMPLES * settings.nz);
        let mut t = Self {
            settings,
            g: DcganGenerator::load(&gw, &device.clone().autodiff())?,
            d: DcganDiscriminator::load(&dw, &device.clone().autodiff())?,
            names_g: HashMap::new(),
            names_d: HashMap::new(),
            adam_g: Adam::new(settings.adam, device),
            adam_d: Adam::new(settings.adam, device),
            data,
            fixed_noise,
            device: device.clone().without_autodiff(),
        };
        t.refresh_names();
        Ok(t)
    }

    fn refresh_names(&mut self) {
        self.names_g = param_names(|f| self.g.walk(f));
        self.names_d = param_names(|f| self.d.walk(f));
    }

    /// The settings.
    pub fn settings(&self) -> DcganSettings {
        self.settings
    }

    /// The generator (on the autodiff device).
    pub fn generator(&self) -> &DcganGenerator {
        &self.g
    }

    /// The generator's state dict (reference names, running statistics included), with metadata.
    pub fn export_generator(&self) -> Result<Weights> {
        let mut w = self.g.to_weights()?;
        w.metadata.insert("styleforge.kind".into(), "dcgan".into());
        w.metadata
            .insert("styleforge.nz".into(), self.settings.nz.to_string());
        w.metadata
            .insert("styleforge.steps".into(), self.adam_g.steps().to_string());
        Ok(w)
    }

    /// Images from latents (`n` × `nz` values), planar 3×64×64 each in `[-1, 1]`, concatenated.
    /// `BnMode::BatchStats` normalises with the batch's statistics without touching the running
    /// ones, `BnMode::Eval` uses the running statistics (`Train` would update them).
    pub fn generate(&self, z: &[f32], mode: BnMode) -> Result<Vec<f32>> {
        let nz = self.settings.nz;
        if z.is_empty() || !z.len().is_multiple_of(nz) {
            return Err(Error::Param(format!(
                "latents must be a multiple of nz={nz} values"
            )));
        }
        let n = z.len() / nz;
        let g = self.g.valid();
        let zt = Tensor::<4>::from_data(TensorData::new(z.to_vec(), [n, nz, 1, 1]), &self.device);
        Ok(HostTensor::from_tensor(g.forward(zt, mode))?.data)
    }

    fn batch_real(&self, rng: &mut Rng, device: &Device) -> Tensor<4> {
        let b = self.settings.batch;
        let mut x = Vec::with_capacity(b * IMG_LEN);
        for _ in 0..b {
            let i = rng.below(self.data.len() as u64) as usize;
            x.extend_from_slice(self.data.image(i));
        }
        let s = IMAGE_SIZE as usize;
        Tensor::from_data(TensorData::new(x, [b, 3, s, s]), device)
    }
}

fn scalar(t: &Tensor<1>) -> f64 {
    t.clone().without_autodiff().into_scalar::<f32>() as f64
}

fn sub_weights(w: &Weights, prefix: &str) -> Weights {
    Weights {
        tensors: w
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect(),
        metadata: Default::default(),
        graph: None,
    }
}

impl Trainer for DcganTrainer {
    fn kind(&self) -> &'static str {
        "dcgan"
    }

    fn step(&mut self, _step: u64, rng: &mut Rng) -> Result<Vec<(String, f64)>> {
        let ad = self.device.clone().autodiff();
        let (b, nz) = (self.settings.batch, self.settings.nz);
        let real = self.batch_real(rng, &ad);
        let z = Tensor::<4>::from_data(TensorData::new(rng.normals(b * nz), [b, nz, 1, 1]), &ad);

        // Discriminator: real batch labelled 1, fake batch (no gradient into G) labelled 0.
        let fake = self.g.forward(z, BnMode::Train);
        let d_real = self.d.forward(real, BnMode::Train);
        let loss_real = bce(d_real.clone(), 1.0);
        let d_fake = self.d.forward(fake.clone().detach(), BnMode::Train);
        let loss_fake = bce(d_fake.clone(), 0.0);
        let loss_d = loss_real + loss_fake;
        let grads = loss_d.backward();
        self.d = self.adam_d.step(self.d.clone(), &self.names_d, &grads);

        // Generator: the same fakes through the updated discriminator, labelled 1.
        let d_fake2 = self.d.forward(fake, BnMode::Train);
        let loss_g = bce(d_fake2.clone(), 1.0);
        let grads = loss_g.backward();
        self.g = self.adam_g.step(self.g.clone(), &self.names_g, &grads);

        Ok(vec![
            ("loss_d".into(), scalar(&loss_d)),
            ("loss_g".into(), scalar(&loss_g)),
            ("d_real".into(), scalar(&d_real.mean())),
            ("d_fake".into(), scalar(&d_fake.mean())),
            ("d_fake_after".into(), scalar(&d_fake2.mean())),
        ])
    }

    fn save_state(&self) -> Result<(Weights, Value)> {
        let mut w = Weights::default();
        for (k, v) in self.g.to_weights()?.tensors {
            w.tensors.insert(format!("G.{k}"), v);
        }
        for (k, v) in self.d.to_weights()?.tensors {
            w.tensors.insert(format!("D.{k}"), v);
        }
        self.adam_g.state_tensors("adam_G.", &mut w)?;
        self.adam_d.state_tensors("adam_D.", &mut w)?;
        w.tensors.insert(
            "fixed_noise".into(),
            HostTensor::new(
                vec![SAMPLES, self.settings.nz, 1, 1],
                self.fixed_noise.clone(),
            ),
        );
        let json = json!({
            "settings": self.settings,
            "adam_g_steps": self.adam_g.steps(),
            "adam_d_steps": self.adam_d.steps(),
        });
        Ok((w, json))
    }

    fn load_state(&mut self, tensors: &Weights, json: &Value) -> Result<()> {
        let settings: DcganSettings = serde_json::from_value(json["settings"].clone())
            .map_err(|e| Error::Param(format!("checkpoint settings: {e}")))?;
        let ad = self.device.clone().autodiff();
        let g = DcganGenerator::load(&sub_weights(tensors, "G."), &ad)?;
        let d = DcganDiscriminator::load(&sub_weights(tensors, "D."), &ad)?;
        let steps = |k: &str| {
            json[k]
                .as_u64()
                .ok_or_else(|| Error::Param(format!("checkpoint field `{k}` missing")))
        };
        let mut adam_g = Adam::new(settings.adam, &self.device);
        adam_g.load_state(tensors, "adam_G.", steps("adam_g_steps")?)?;
        let mut adam_d = Adam::new(settings.adam, &self.device);
        adam_d.load_state(tensors, "adam_D.", steps("adam_d_steps")?)?;
        let noise = tensors.get("fixed_noise")?;
        if noise.data.len() != SAMPLES * settings.nz {
            return Err(Error::Weights("fixed_noise does not match nz".into()));
        }
        self.fixed_noise = noise.data.clone();
        self.settings = settings;
        self.g = g;
        self.d = d;
        self.adam_g = adam_g;
        self.adam_d = adam_d;
        self.refresh_names();
        Ok(())
    }

    fn sample_grid(&self) -> Result<Picture> {
        let imgs = self.generate(&self.fixed_noise, BnMode::BatchStats)?;
        let pics = pictures_from_unit(&imgs, SAMPLES, IMAGE_SIZE, IMAGE_SIZE);
        grid(&pics, 4, 2)
    }
}
