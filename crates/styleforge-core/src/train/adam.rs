//! Adam with PyTorch's semantics (`torch.optim.Adam`: bias-corrected moments, `eps` added to the
//! square root of the corrected second moment) and its state kept by parameter *name*, so that a
//! checkpoint stores it as named tensors and a resumed run, whose parameters get fresh ids,
//! continues exactly.
//!
//! burn's own `AdamConfig` keys its state by `ParamId`, which is new for every load, and adds
//! `eps` differently (default 1e-5); hence this small implementation over burn's `ModuleMapper`.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Device, Gradients, Tensor};

use crate::error::{Error, Result};
use crate::networks::layers::ParamRef;
use crate::weights::{HostTensor, Weights};

/// Hyper-parameters of Adam.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamSettings {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the square root of the second moment.
    pub eps: f64,
}

impl AdamSettings {
    /// The GAN setting used by DCGAN and CycleGAN: lr 2e-4, β1 0.5, β2 0.999, eps 1e-8.
    pub fn gan() -> Self {
        Self {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam's state for one set of parameters.
#[derive(Debug)]
pub struct Adam {
    /// Hyper-parameters (the learning rate may be changed between steps).
    pub settings: AdamSettings,
    t: u64,
    moments: BTreeMap<String, (Tensor<1>, Tensor<1>)>,
    device: Device,
}

/// Parameter ids to names, from a network's `walk`.
pub fn param_names(
    walk: impl FnOnce(&mut dyn FnMut(String, ParamRef<'_>)),
) -> HashMap<ParamId, String> {
    let mut names = HashMap::new();
    walk(&mut |name, p| {
        let id = match p {
            ParamRef::R4(p) => p.id,
            ParamRef::R1(p) => p.id,
        };
        names.insert(id, name);
    });
    names
}

impl Adam {
    /// Fresh state; moments live on `device` (the plain twin of the training device).
    pub fn new(settings: AdamSettings, device: &Device) -> Self {
        Self {
            settings,
            t: 0,
            moments: BTreeMap::new(),
            device: device.clone().without_autodiff(),
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update of every parameter of `module` that `names` lists and `grads` has a gradient for.
    pub fn step<M: Module>(
        &mut self,
        module: M,
        names: &HashMap<ParamId, String>,
        grads: &Gradients,
    ) -> M {
        self.t += 1;
        let s = self.settings;
        let mut mapper = StepMapper {
            names,
            grads,
            moments: &mut self.moments,
            device: &self.device,
            lr: s.lr,
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            bias1: 1.0 - s.beta1.powf(self.t as f64),
            bias2: 1.0 - s.beta2.powf(self.t as f64),
        };
        module.map(&mut mapper)
    }

    /// The moments as named tensors `{prefix}m.{name}` and `{prefix}v.{name}` (flattened).
    pub fn state_tensors(&self, prefix: &str, out: &mut Weights) -> Result<()> {
        for (name, (m, v)) in &self.moments {
            out.tensors.insert(
                format!("{prefix}m.{name}"),
                HostTensor::from_tensor(m.clone())?,
            );
            out.tensors.insert(
                format!("{prefix}v.{name}"),
                HostTensor::from_tensor(v.clone())?,
            );
        }
        Ok(())
    }

    /// Restores the moments written by [`Adam::state_tensors`] and the step count.
    pub fn load_state(&mut self, w: &Weights, prefix: &str, steps: u64) -> Result<()> {
        let mut moments = BTreeMap::new();
        let mprefix = format!("{prefix}m.");
        for (key, m) in &w.tensors {
            let Some(name) = key.strip_prefix(&mprefix) else {
                continue;
            };
            let v = w.get(&format!("{prefix}v.{name}"))?;
            if v.shape != m.shape || m.shape.len() != 1 {
                return Err(Error::Weights(format!(
                    "optimizer moments of `{name}` have shapes {:?} and {:?}",
                    m.shape, v.shape
                )));
            }
            moments.insert(
                name.to_string(),
                (
                    m.to_tensor::<1>(&self.device)?,
                    v.to_tensor::<1>(&self.device)?,
                ),
            );
        }
        self.moments = moments;
        self.t = steps;
        Ok(())
    }
}

struct StepMapper<'a> {
    names: &'a HashMap<ParamId, String>,
    grads: &'a Gradients,
    moments: &'a mut BTreeMap<String, (Tensor<1>, Tensor<1>)>,
    device: &'a Device,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    bias1: f64,
    bias2: f64,
}

impl ModuleMapper for StepMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(name) = self.names.get(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = tensor.grad(self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let g = grad.to_device(self.device).reshape([n]);
        let (m, v) = match self.moments.remove(name) {
            Some((m, v)) => (
                m * self.beta1 + g.clone() * (1.0 - self.beta1),
                v * self.beta2 + g.powi_scalar(2) * (1.0 - self.beta2),
            ),
            None => (
                g.clone() * (1.0 - self.beta1),
                g.powi_scalar(2) * (1.0 - self.beta2),
            ),
        };
        let denom = (v.clone() / self.bias2).sqrt() + self.eps;
        let delta = (m.clone() / self.bias1).div(denom) * self.lr;
        self.moments.insert(name.clone(), (m, v));
        let was_autodiff = tensor.is_autodiff();
        let plain = tensor.without_autodiff();
        let updated = plain.clone() - delta.reshape(dims).to_device(&plain.device());
        let updated = if was_autodiff {
            updated.autodiff().require_grad()
        } else {
            updated
        };
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networks::cyclegan::{DiscriminatorConfig, PatchDiscriminator};
    use burn::tensor::TensorData;

    #[test]
    fn matches_pytorch_adam_on_a_network() {
        let dev = Device::flex();
        let ad = dev.clone().autodiff();
        let mut k = 0u32;
        let mut normal = || {
            k += 1;
            ((k * 7919 % 101) as f32 - 50.0) / 50.0
        };
        let w = DiscriminatorConfig::new(4, 1).init_weights(&mut normal);
        let mut d = PatchDiscriminator::load(&w, &ad).unwrap();
        let names = param_names(|f| d.walk(f));
        let s = AdamSettings {
            lr: 0.01,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut adam = Adam::new(s, &dev);
        let x = Tensor::<4>::from_data(
            TensorData::new(
                (0..3 * 16 * 16).map(|i| (i % 13) as f32 / 13.0).collect(),
                [1, 3, 16, 16],
            ),
            &ad,
        );
        // Reference Adam on the host, fed with the same gradients.
        let mut host = w.clone();
        let mut mom: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for t in 1..=3 {
            let loss = d.forward(x.clone()).powi_scalar(2).mean();
            let grads = loss.backward();
            let g = d.gradients(&grads).unwrap();
            d = adam.step(d, &names, &grads);
            for (name, gt) in &g.tensors {
                let (m, v) = mom
                    .entry(name.clone())
                    .or_insert_with(|| (vec![0.0; gt.data.len()], vec![0.0; gt.data.len()]));
                let p = host.tensors.get_mut(name).unwrap();
                for i in 0..gt.data.len() {
                    let gi = gt.data[i] as f64;
                    m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * gi;
                    v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * gi * gi;
                    let mh = m[i] / (1.0 - s.beta1.powi(t));
                    let vh = v[i] / (1.0 - s.beta2.powi(t));
                    p.data[i] = (p.data[i] as f64 - s.lr * mh / (vh.sqrt() + s.eps)) as f32;
                }
            }
        }
        let got = d.to_weights().unwrap();
        for (name, want) in &host.tensors {
            let have = &got.tensors[name];
            let moved = want
                .data
                .iter()
                .zip(&w.tensors[name].data)
                .any(|(a, b)| a != b);
            assert!(moved, "{name} did not move");
            for (a, b) in have.data.iter().zip(&want.data) {
                assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
            }
        }
        assert_eq!(adam.steps(), 3);
    }
}
