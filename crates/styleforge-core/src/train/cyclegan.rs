//! CycleGAN training as in junyanz/pytorch-CycleGAN-and-pix2pix (`cycle_gan_model.py`): two
//! ResNet generators (`G_A`: A→B, `G_B`: B→A) and two PatchGAN discriminators (`D_A` judges
//! domain B, `D_B` domain A), all instance-normalised, images in `[-1, 1]`.
//!
//! One step, in the reference's order:
//! 1. `fake_B = G_A(A)`, `rec_A = G_B(fake_B)`, `fake_A = G_B(B)`, `rec_B = G_A(fake_A)`;
//! 2. generators (discriminators frozen): LSGAN `MSE(D_A(fake_B), 1) + MSE(D_B(fake_A), 1)`, cycle
//!    `λ·(|rec_A − A|₁ + |rec_B − B|₁)`, identity `0.5λ·(|G_A(B) − B|₁ + |G_B(A) − A|₁)`;
//! 3. discriminators: `½(MSE(D(real), 1) + MSE(D(pool(fake)), 0))` for each, where the pool holds
//!    up to 50 earlier fakes and answers with one of them half of the time once full.
//!
//! Adam(2e-4, β1 0.5) for all four networks; the learning rate stays constant, then decays
//! linearly over the last `decay_steps` steps (the reference's `linear` policy, counted in steps
//! instead of epochs). Training samples are random resized square crops with flips
//! ([`super::data::CropDataset`]).

use std::collections::HashMap;

use burn::module::{Module, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Value, json};

use super::adam::{Adam, AdamSettings, param_names};
use super::data::CropDataset;
use super::rng::Rng;
use super::{Trainer, grid, pictures_from_unit};
use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::networks::layers::NormContext;
use crate::networks::cyclegan::{
    DiscriminatorConfig, GeneratorConfig, PatchDiscriminator, ResnetGenerator,
};
use crate::weights::{HostTensor, Weights};

/// Images per domain shown in sample grids.
pub const SAMPLES: usize = 4;

/// Network sizes, losses and schedule of a CycleGAN run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CycleGanSettings {
    /// Generator width (64 in the reference).
    pub ngf: usize,
    /// Residual blocks (9 in the reference at 256², 6 at 128²).
    pub n_blocks: usize,
    /// Discriminator width (64 in the reference).
    pub ndf: usize,
    /// Discriminator depth (3: the 70×70 PatchGAN).
    pub n_layers_d: usize,
    /// Images per batch and domain.
    pub batch: usize,
    /// Cycle-consistency weight λ (10).
    pub lambda_cycle: f64,
    /// Identity weight as a fraction of λ (0.5).
    pub lambda_identity: f64,
    /// Size of the pool of past fakes (50; 0 uses the newest fakes only).
    pub pool_size: usize,
    /// Steps over which the learning rate decays linearly to zero at the end of the run.
    pub decay_steps: u64,
    /// Total steps of the schedule (constant phase = `total_steps - decay_steps`).
    pub total_steps: u64,
    /// Adam for all four networks (its `lr` is the initial rate).
    pub adam: AdamSettings,
    /// Float64 instance-norm arithmetic in the backward pass (exact, slower).
    pub exact_norm: bool,
}

impl CycleGanSettings {
    /// The reference's settings (ngf/ndf 64, 9 blocks, λ 10, identity 0.5, pool 50, Adam 2e-4/0.5)
    /// for a run of `total_steps`, the second half decaying.
    pub fn reference(total_steps: u64) -> Self {
        Self {
            ngf: 64,
            n_blocks: 9,
            ndf: 64,
            n_layers_d: 3,
            batch: 1,
            lambda_cycle: 10.0,
            lambda_identity: 0.5,
            pool_size: 50,
            decay_steps: total_steps / 2,
            total_steps,
            adam: AdamSettings::gan(),
            exact_norm: false,
        }
    }

    /// The learning rate for step `step` (1-based): constant, then linear decay.
    pub fn lr_at(&self, step: u64) -> f64 {
        let constant = self.total_steps.saturating_sub(self.decay_steps);
        let over = step.saturating_sub(constant) as f64;
        self.adam.lr * (1.0 - over / (self.decay_steps as f64 + 1.0)).max(0.0)
    }

    fn check(&self) -> Result<()> {
        if self.ngf == 0 || self.ndf == 0 || self.n_blocks == 0 || self.n_layers_d == 0 {
            return Err(Error::Param(format!("invalid network sizes in {self:?}")));
        }
        if self.batch == 0 || self.decay_steps > self.total_steps {
            return Err(Error::Param(format!(
                "batch must be positive and decay steps at most the total ({self:?})"
            )));
        }
        if !(self.lambda_cycle >= 0.0 && self.lambda_identity >= 0.0 && self.adam.lr > 0.0) {
            return Err(Error::Param("loss weights and the learning rate must be positive".into()));
        }
        Ok(())
    }
}

/// The pool of earlier fakes that the discriminators also learn from.
#[derive(Debug, Clone, Default)]
struct ImagePool {
    size: usize,
    images: Vec<Vec<f32>>,
}

impl ImagePool {
    /// For each new fake: while the pool fills, store and return it; then with probability ½
    /// return a stored fake and store the new one in its place, otherwise return the new one.
    fn query(&mut self, fakes: Vec<Vec<f32>>, rng: &mut Rng) -> Vec<Vec<f32>> {
        if self.size == 0 {
            return fakes;
        }
        fakes
            .into_iter()
            .map(|f| {
                if self.images.len() < self.size {
                    self.images.push(f.clone());
                    f
                } else if rng.chance(0.5) {
                    let i = rng.below(self.size as u64) as usize;
                    std::mem::replace(&mut self.images[i], f)
                } else {
                    f
                }
            })
            .collect()
    }

    fn save(&self, name: &str, side: usize, out: &mut Weights) {
        if !self.images.is_empty() {
            out.tensors.insert(
                name.into(),
                HostTensor::new(
                    vec![self.images.len(), 3, side, side],
                    self.images.concat(),
                ),
            );
        }
    }

    fn load(size: usize, name: &str, side: usize, w: &Weights) -> Result<Self> {
        let mut pool = Self { size, images: Vec::new() };
        if let Ok(t) = w.get(name) {
            let len = 3 * side * side;
            if t.shape.len() != 4 || t.shape[1..] != [3, side, side] || t.shape[0] > size {
                return Err(Error::Weights(format!("{name} has shape {:?}", t.shape)));
            }
            pool.images = t.data.chunks(len).map(<[f32]>::to_vec).collect();
        }
        Ok(pool)
    }
}

/// A CycleGAN being trained: four networks, their optimisers, the two datasets and the pools.
pub struct CycleGanTrainer {
    settings: CycleGanSettings,
    g_a: ResnetGenerator,
    g_b: ResnetGenerator,
    d_a: PatchDiscriminator,
    d_b: PatchDiscriminator,
    names: [HashMap<ParamId, String>; 4],
    adam: [Adam; 4],
    pool_a: ImagePool,
    pool_b: ImagePool,
    data_a: CropDataset,
    data_b: CropDataset,
    device: Device,
}

const NETS: [&str; 4] = ["G_A", "G_B", "D_A", "D_B"];

fn mse(x: Tensor<4>, target: f32) -> Tensor<1> {
    x.sub_scalar(target).powi_scalar(2).mean()
}

fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    (a - b).abs().mean()
}

fn scalar(t: &Tensor<1>) -> f64 {
    t.clone().without_autodiff().into_scalar::<f32>() as f64
}

impl CycleGanTrainer {
    /// Fresh networks initialised from `seed` as the reference does (N(0, 0.02²) kernels, zero
    /// biases); `device` is the plain device, training runs on its autodiff twin.
    pub fn new(
        settings: CycleGanSettings,
        data_a: CropDataset,
        data_b: CropDataset,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        settings.check()?;
        if data_a.crop() != data_b.crop() {
            return Err(Error::Param("both domains must use the same crop size".into()));
        }
        let mut rng = Rng::new(seed ^ 0xc1c1_e6a4);
        let mut normal = || rng.normal();
        let gc = GeneratorConfig::new(settings.ngf, settings.n_blocks);
        let dc = DiscriminatorConfig::new(settings.ndf, settings.n_layers_d);
        let weights = [
            gc.init_weights(&mut normal),
            gc.init_weights(&mut normal),
            dc.init_weights(&mut normal),
            dc.init_weights(&mut normal),
        ];
        let device = device.clone().without_autodiff();
        let [g_a, g_b, d_a, d_b] = weights;
        let (g_a, g_b, d_a, d_b) = networks([&g_a, &g_b, &d_a, &d_b], &device, settings.exact_norm)?;
        let mut t = Self {
            settings,
            g_a,
            g_b,
            d_a,
            d_b,
            names: Default::default(),
            adam: std::array::from_fn(|_| Adam::new(settings.adam, &device)),
            pool_a: ImagePool { size: settings.pool_size, images: Vec::new() },
            pool_b: ImagePool { size: settings.pool_size, images: Vec::new() },
            data_a,
            data_b,
            device,
        };
        t.refresh_names();
        Ok(t)
    }

    fn refresh_names(&mut self) {
        self.names = [
            param_names(|f| self.g_a.walk(f)),
            param_names(|f| self.g_b.walk(f)),
            param_names(|f| self.d_a.walk(f)),
            param_names(|f| self.d_b.walk(f)),
        ];
    }

    /// The settings.
    pub fn settings(&self) -> CycleGanSettings {
        self.settings
    }

    /// The A→B generator (`a_to_b`) or the B→A one, as a state dict with the reference's names.
    pub fn export_generator(&self, a_to_b: bool) -> Result<Weights> {
        if a_to_b { self.g_a.to_weights() } else { self.g_b.to_weights() }
    }

    /// Translates planar `3×s×s` images in `[-1, 1]` (`n` of them, concatenated) A→B or B→A.
    pub fn translate(&self, x: &[f32], side: usize, a_to_b: bool) -> Result<Vec<f32>> {
        let len = 3 * side * side;
        if x.is_empty() || !x.len().is_multiple_of(len) {
            return Err(Error::Param("translate takes whole 3xSxS images".into()));
        }
        let g = if a_to_b { self.g_a.valid() } else { self.g_b.valid() };
        let t = Tensor::<4>::from_data(
            TensorData::new(x.to_vec(), [x.len() / len, 3, side, side]),
            &self.device,
        );
        Ok(HostTensor::from_tensor(g.forward(t, &mut NormContext::Local))?.data)
    }

    fn batch(&self, a: bool, rng: &mut Rng) -> Vec<Vec<f32>> {
        let data = if a { &self.data_a } else { &self.data_b };
        (0..self.settings.batch).map(|_| data.sample(rng)).collect()
    }

    fn tensor(&self, images: Vec<Vec<f32>>, device: &Device) -> Tensor<4> {
        let s = self.data_a.crop() as usize;
        let n = images.len();
        Tensor::from_data(TensorData::new(images.concat(), [n, 3, s, s]), device)
    }
}

type Networks = (ResnetGenerator, ResnetGenerator, PatchDiscriminator, PatchDiscriminator);

/// G_A, G_B, D_A, D_B from their state dicts, on the autodiff twin of `device`.
fn networks(w: [&Weights; 4], device: &Device, exact: bool) -> Result<Networks> {
    let ad = device.clone().autodiff();
    Ok((
        ResnetGenerator::load(w[0], &ad)?.with_exact_norm_gradients(exact),
        ResnetGenerator::load(w[1], &ad)?.with_exact_norm_gradients(exact),
        PatchDiscriminator::load(w[2], &ad)?.with_exact_norm_gradients(exact),
        PatchDiscriminator::load(w[3], &ad)?.with_exact_norm_gradients(exact),
    ))
}

fn split(t: &Tensor<4>) -> Result<Vec<Vec<f32>>> {
    let [n, ..] = t.dims();
    let host = HostTensor::from_tensor(t.clone().without_autodiff())?;
    let len = host.data.len() / n;
    Ok(host.data.chunks(len).map(<[f32]>::to_vec).collect())
}

impl Trainer for CycleGanTrainer {
    fn kind(&self) -> &'static str {
        "cyclegan"
    }

    fn step(&mut self, step: u64, rng: &mut Rng) -> Result<Vec<(String, f64)>> {
        let s = self.settings;
        let lr = s.lr_at(step);
        for a in &mut self.adam {
            a.settings.lr = lr;
        }
        let ad = self.device.clone().autodiff();
        let real_a = self.tensor(self.batch(true, rng), &ad);
        let real_b = self.tensor(self.batch(false, rng), &ad);
        let local = || NormContext::Local;

        // 1. Translations and reconstructions.
        let fake_b = self.g_a.forward(real_a.clone(), &mut local());
        let rec_a = self.g_b.forward(fake_b.clone(), &mut local());
        let fake_a = self.g_b.forward(real_b.clone(), &mut local());
        let rec_b = self.g_a.forward(fake_a.clone(), &mut local());

        // 2. Generators, through frozen discriminators.
        let (lc, li) = (s.lambda_cycle, s.lambda_cycle * s.lambda_identity);
        let d_a = self.d_a.clone().no_grad();
        let d_b = self.d_b.clone().no_grad();
        let gan_a = mse(d_a.forward(fake_b.clone()), 1.0);
        let gan_b = mse(d_b.forward(fake_a.clone()), 1.0);
        let cycle_a = l1(rec_a, real_a.clone());
        let cycle_b = l1(rec_b, real_b.clone());
        let mut loss_g = gan_a.clone() + gan_b.clone() + (cycle_a.clone() + cycle_b.clone()) * lc;
        let mut idt = (0.0, 0.0);
        if li > 0.0 {
            let idt_a = l1(self.g_a.forward(real_b.clone(), &mut local()), real_b.clone());
            let idt_b = l1(self.g_b.forward(real_a.clone(), &mut local()), real_a.clone());
            idt = (scalar(&idt_a), scalar(&idt_b));
            loss_g = loss_g + (idt_a + idt_b) * li;
        }
        let grads = loss_g.backward();
        self.g_a = self.adam[0].step(self.g_a.clone(), &self.names[0], &grads);
        self.g_b = self.adam[1].step(self.g_b.clone(), &self.names[1], &grads);

        // 3. Discriminators, on real images and pooled (detached) fakes.
        let pooled_b = self.pool_b.query(split(&fake_b)?, rng);
        let pooled_a = self.pool_a.query(split(&fake_a)?, rng);
        let fake_b_t = self.tensor(pooled_b, &ad);
        let fake_a_t = self.tensor(pooled_a, &ad);
        let d_a_real = mse(self.d_a.forward(real_b), 1.0);
        let d_a_fake = mse(self.d_a.forward(fake_b_t), 0.0);
        let d_b_real = mse(self.d_b.forward(real_a), 1.0);
        let d_b_fake = mse(self.d_b.forward(fake_a_t), 0.0);
        let loss_d_a = (d_a_real + d_a_fake) * 0.5;
        let loss_d_b = (d_b_real + d_b_fake) * 0.5;
        let grads = (loss_d_a.clone() + loss_d_b.clone()).backward();
        self.d_a = self.adam[2].step(self.d_a.clone(), &self.names[2], &grads);
        self.d_b = self.adam[3].step(self.d_b.clone(), &self.names[3], &grads);

        Ok(vec![
            ("D_A".into(), scalar(&loss_d_a)),
            ("G_A".into(), scalar(&gan_a)),
            ("cycle_A".into(), scalar(&cycle_a)),
            ("idt_A".into(), idt.0),
            ("D_B".into(), scalar(&loss_d_b)),
            ("G_B".into(), scalar(&gan_b)),
            ("cycle_B".into(), scalar(&cycle_b)),
            ("idt_B".into(), idt.1),
            ("lr".into(), lr),
        ])
    }

    fn save_state(&self) -> Result<(Weights, Value)> {
        let mut w = Weights::default();
        let nets = [
            self.g_a.to_weights()?,
            self.g_b.to_weights()?,
            self.d_a.to_weights()?,
            self.d_b.to_weights()?,
        ];
        for (name, net) in NETS.iter().zip(nets) {
            for (k, v) in net.tensors {
                w.tensors.insert(format!("{name}.{k}"), v);
            }
        }
        for (name, adam) in NETS.iter().zip(&self.adam) {
            adam.state_tensors(&format!("adam_{name}."), &mut w)?;
        }
        let side = self.data_a.crop() as usize;
        self.pool_a.save("pool_A", side, &mut w);
        self.pool_b.save("pool_B", side, &mut w);
        let steps: Vec<u64> = self.adam.iter().map(Adam::steps).collect();
        Ok((w, json!({ "settings": self.settings, "adam_steps": steps })))
    }

    fn load_state(&mut self, tensors: &Weights, json: &Value) -> Result<()> {
        let settings: CycleGanSettings = serde_json::from_value(json["settings"].clone())
            .map_err(|e| Error::Param(format!("checkpoint settings: {e}")))?;
        settings.check()?;
        let steps: Vec<u64> = serde_json::from_value(json["adam_steps"].clone())
            .map_err(|e| Error::Param(format!("checkpoint adam_steps: {e}")))?;
        if steps.len() != 4 {
            return Err(Error::Param("checkpoint adam_steps must list 4 counts".into()));
        }
        let side = self.data_a.crop() as usize;
        let pool_a = ImagePool::load(settings.pool_size, "pool_A", side, tensors)?;
        let pool_b = ImagePool::load(settings.pool_size, "pool_B", side, tensors)?;
        let mut adam: [Adam; 4] = std::array::from_fn(|_| Adam::new(settings.adam, &self.device));
        for ((a, name), n) in adam.iter_mut().zip(NETS).zip(&steps) {
            a.load_state(tensors, &format!("adam_{name}."), *n)?;
        }
        let w = NETS.map(|n| tensors.with_prefix(&format!("{n}.")));
        let (g_a, g_b, d_a, d_b) =
            networks([&w[0], &w[1], &w[2], &w[3]], &self.device, settings.exact_norm)?;
        (self.g_a, self.g_b, self.d_a, self.d_b) = (g_a, g_b, d_a, d_b);
        self.refresh_names();
        self.settings = settings;
        self.adam = adam;
        self.pool_a = pool_a;
        self.pool_b = pool_b;
        Ok(())
    }

    /// Rows: real A, G_A(A), G_B(G_A(A)), then real B, G_B(B), G_A(G_B(B)).
    fn sample_grid(&self) -> Result<Picture> {
        let side = self.data_a.crop() as usize;
        let n = SAMPLES.min(self.data_a.len()).min(self.data_b.len()).max(1);
        let mut pics = Vec::new();
        for a_to_b in [true, false] {
            let data = if a_to_b { &self.data_a } else { &self.data_b };
            let real: Vec<f32> = (0..n).flat_map(|i| data.centre(i)).collect();
            let fake = self.translate(&real, side, a_to_b)?;
            let rec = self.translate(&fake, side, !a_to_b)?;
            for row in [&real, &fake, &rec] {
                pics.extend(pictures_from_unit(row, n, side as u32, side as u32));
            }
        }
        grid(&pics, n, 2)
    }
}
