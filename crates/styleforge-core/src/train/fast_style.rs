//! Training a fast-style network (Johnson et al.'s TransformerNet) for one style image with the
//! perceptual loss, as pytorch/examples `fast_neural_style` does, with an optional adversarial
//! term.
//!
//! Each step takes a batch of random content crops `x` (RGB 0..255), runs `y = T(x)` and feeds
//! `x/255` and `y/255` to a frozen VGG (ImageNet-normalised inside [`Vgg::forward`]):
//!
//! - content: `MSE(φ_c(y), φ_c(x))` at the content layers (VGG16 `relu2_2`, or VGG19 `relu4_2`);
//! - style: `Σ MSE(G(φ_s(y)), G(φ_s(style)))` over the style layers, Gram matrices normalised by
//!   `C·H·W` (VGG16 `relu1_2, relu2_2, relu3_3, relu4_3`, or VGG19 `relu1_1 … relu5_1`);
//! - total variation of `y/255` (off by default, as in pytorch/examples);
//! - optionally an LSGAN term: a PatchGAN discriminator learns to tell crops of the style image
//!   from outputs, and the network is also rewarded for `MSE(D(y), 1)`.
//!
//! Adam(1e-3) on the network; the VGG never changes.

use std::collections::HashMap;

use burn::module::{Module, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Value, json};

use super::adam::{Adam, AdamSettings, param_names};
use super::data::CropDataset;
use super::rng::Rng;
use super::{Trainer, grid};
use crate::error::{Error, Result};
use crate::methods::gatys::{gram, tv_loss};
use crate::image_io::Picture;
use crate::networks::layers::NormContext;
use crate::networks::cyclegan::{DiscriminatorConfig, PatchDiscriminator};
use crate::networks::transformer_net::TransformerNet;
use crate::networks::vgg::{Vgg, VggVariant};
use crate::weights::{HostTensor, Weights};

/// The perceptual loss's layers for each loss network.
pub fn default_layers(variant: VggVariant) -> (Vec<String>, Vec<String>) {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    match variant {
        VggVariant::Vgg16 => (v(&["relu2_2"]), v(&["relu1_2", "relu2_2", "relu3_3", "relu4_3"])),
        VggVariant::Vgg19 => (
            v(&["relu4_2"]),
            v(&["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]),
        ),
    }
}

/// Network width, loss weights and optimiser of a fast-style run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FastStyleSettings {
    /// TransformerNet width (32 stock, 16 or 8 for speed).
    pub width: usize,
    /// Content crops per batch.
    pub batch: usize,
    /// Content layers.
    pub content_layers: Vec<String>,
    /// Style layers.
    pub style_layers: Vec<String>,
    /// Content weight (pytorch/examples: 1e5).
    pub content_weight: f64,
    /// Style weight (pytorch/examples: 1e10).
    pub style_weight: f64,
    /// Total-variation weight (0: off).
    pub tv_weight: f64,
    /// Adversarial weight (0: no discriminator).
    pub adv_weight: f64,
    /// Adam for the network (pytorch/examples: lr 1e-3, β 0.9/0.999).
    pub adam: AdamSettings,
    /// sha256 of the style image's file (recorded; a resume checks it).
    pub style_sha256: String,
}

impl FastStyleSettings {
    /// pytorch/examples' settings for `variant`: width 32, batch 4, content 1e5, style 1e10.
    pub fn reference(variant: VggVariant) -> Self {
        let (content_layers, style_layers) = default_layers(variant);
        Self {
            width: 32,
            batch: 4,
            content_layers,
            style_layers,
            content_weight: 1e5,
            style_weight: 1e10,
            tv_weight: 0.0,
            adv_weight: 0.0,
            adam: AdamSettings { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            style_sha256: String::new(),
        }
    }

    fn check(&self) -> Result<()> {
        if self.width == 0 || self.batch == 0 {
            return Err(Error::Param("width and batch must be positive".into()));
        }
        if self.style_layers.is_empty() {
            return Err(Error::Param("at least one style layer is needed".into()));
        }
        let w = [self.content_weight, self.style_weight, self.tv_weight, self.adv_weight];
        if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || !(self.adam.lr > 0.0) {
            return Err(Error::Param("weights must be finite and non-negative, lr positive".into()));
        }
        Ok(())
    }
}

/// A fast-style network being trained against a frozen VGG.
pub struct FastStyleTrainer {
    settings: FastStyleSettings,
    net: TransformerNet,
    names: HashMap<ParamId, String>,
    adam: Adam,
    vgg: Vgg,
    content_idx: Vec<usize>,
    style_idx: Vec<usize>,
    style_grams: Vec<Tensor<3>>,
    disc: Option<(PatchDiscriminator, HashMap<ParamId, String>, Adam)>,
    style_crops: CropDataset,
    data: CropDataset,
    preview: Picture,
    device: Device,
}

fn mse(a: Tensor<4>, target: f32) -> Tensor<1> {
    a.sub_scalar(target).powi_scalar(2).mean()
}

fn scalar(t: &Tensor<1>) -> f64 {
    t.clone().without_autodiff().into_scalar::<f32>() as f64
}

fn to_255(unit: Vec<f32>) -> Vec<f32> {
    unit.into_iter().map(|v| (v + 1.0) * 127.5).collect()
}

impl FastStyleTrainer {
    /// A fresh network from `seed`, the style's Gram targets from `style` (its longer side scaled
    /// to at most `style_size`), content crops from `data`, previews of `preview` (0..255 RGB).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: FastStyleSettings,
        vgg_weights: &Weights,
        style: &Picture,
        style_size: u32,
        data: CropDataset,
        preview: &Picture,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        settings.check()?;
        let device = device.clone().without_autodiff();
        let ad = device.clone().autodiff();
        let vgg = Vgg::from_weights(vgg_weights, None, &ad)?.no_grad();
        let names = |l: &[String]| -> Result<Vec<usize>> {
            l.iter().map(|n| vgg.layer_index(n)).collect()
        };
        let content_idx = names(&settings.content_layers)?;
        let style_idx = names(&settings.style_layers)?;
        let style = style.fit_within(style_size);
        let plain_vgg = vgg.valid();
        let st = Tensor::<4>::from_data(
            TensorData::new(
                style.rgb.iter().map(|v| v / 255.0).collect::<Vec<_>>(),
                [1, 3, style.height as usize, style.width as usize],
            ),
            &device,
        );
        // Constant targets on the training device (no gradient flows into them).
        let style_grams = plain_vgg
            .forward_indices(st, &style_idx)
            .into_iter()
            .map(|f| Tensor::<3>::from_data(gram(f).into_data(), &ad))
            .collect();
        let crop = data.crop();
        let style_crops = CropDataset::from_pictures(std::slice::from_ref(&style), crop.max(style.width.min(style.height)), crop)?;
        let mut rng = Rng::new(seed ^ 0xfa57_5717);
        let mut uniform = || rng.uniform() as f32;
        let w = TransformerNet::init_weights(settings.width, &mut uniform);
        let net = TransformerNet::load(&w, &ad)?;
        let disc = if settings.adv_weight > 0.0 {
            let mut normal = || rng.normal();
            let dw = DiscriminatorConfig::new(64, 3).init_weights(&mut normal);
            let d = PatchDiscriminator::load(&dw, &ad)?.with_exact_norm_gradients(false);
            let n = param_names(|f| d.walk(f));
            Some((d, n, Adam::new(AdamSettings::gan(), &device)))
        } else {
            None
        };
        let mut t = Self {
            names: HashMap::new(),
            adam: Adam::new(settings.adam, &device),
            settings,
            net,
            vgg,
            content_idx,
            style_idx,
            style_grams,
            disc,
            style_crops,
            data,
            preview: preview.fit_within(256),
            device,
        };
        t.names = param_names(|f| t.net.walk(f));
        Ok(t)
    }

    /// The settings.
    pub fn settings(&self) -> &FastStyleSettings {
        &self.settings
    }

    /// The network's state dict (pytorch/examples names), with the run recorded in its metadata.
    pub fn export(&self) -> Result<Weights> {
        self.net.to_weights()
    }

    /// Stylises a picture with the current network (whole image, padded to a multiple of 4).
    pub fn stylize(&self, pic: &Picture) -> Result<Picture> {
        let net = self.net.valid();
        let x = Tensor::<4>::from_data(
            TensorData::new(pic.rgb.clone(), [1, 3, pic.height as usize, pic.width as usize]),
            &self.device,
        );
        let mut ctx = NormContext::Local;
        let y = crate::tiling::run_padded(x, 4, &mut |t| net.forward(t, &mut ctx));
        let y = HostTensor::from_tensor(y)?;
        Ok(Picture::from_planes(
            pic.width,
            pic.height,
            y.data.into_iter().map(|v| v.clamp(0.0, 255.0)).collect(),
        ))
    }

    fn batch(&self, data: &CropDataset, rng: &mut Rng, device: &Device) -> Tensor<4> {
        let s = data.crop() as usize;
        let b = self.settings.batch;
        let x: Vec<f32> = (0..b).flat_map(|_| to_255(data.sample(rng))).collect();
        Tensor::from_data(TensorData::new(x, [b, 3, s, s]), device)
    }
}

impl Trainer for FastStyleTrainer {
    fn kind(&self) -> &'static str {
        "fast-style"
    }

    fn step(&mut self, _step: u64, rng: &mut Rng) -> Result<Vec<(String, f64)>> {
        let s = self.settings.clone();
        let ad = self.device.clone().autodiff();
        let x = self.batch(&self.data, rng, &ad);
        let y = self.net.forward(x.clone(), &mut NormContext::Local);
        let b = s.batch;

        let mut idx = self.content_idx.clone();
        idx.extend(&self.style_idx);
        let fy = self.vgg.forward_indices(y.clone() / 255.0, &idx);
        let fx = self.vgg.forward_indices(x.detach() / 255.0, &self.content_idx);
        let zero = || Tensor::<1>::zeros([1], &ad);
        let mut content = zero();
        for (f, t) in fy.iter().zip(fx) {
            let t = t.detach();
            content = content + (f.clone() - t).powi_scalar(2).mean();
        }
        let mut style = zero();
        for (f, g) in fy[self.content_idx.len()..].iter().zip(&self.style_grams) {
            let target = g.clone().repeat_dim(0, b);
            style = style + (gram(f.clone()) - target).powi_scalar(2).mean();
        }
        let tv = if s.tv_weight > 0.0 { tv_loss(y.clone() / 255.0) } else { zero() };
        let mut total = content.clone() * s.content_weight + style.clone() * s.style_weight + tv.clone() * s.tv_weight;
        let mut out = Vec::new();
        if let Some((d, _, _)) = &self.disc {
            let fake = y.clone() / 127.5 - 1.0;
            let adv = mse(d.clone().no_grad().forward(fake), 1.0);
            out.push(("adv".to_string(), scalar(&adv)));
            total = total + adv * s.adv_weight;
        }
        let grads = total.backward();
        self.net = self.adam.step(self.net.clone(), &self.names, &grads);

        if self.disc.is_some() {
            let real = self.batch(&self.style_crops, rng, &ad) / 127.5 - 1.0;
            let fake = y.clone().detach() / 127.5 - 1.0;
            let (d, names, adam) = self.disc.as_mut().expect("checked");
            let loss_d = (mse(d.forward(real), 1.0) + mse(d.forward(fake), 0.0)) * 0.5;
            let grads = loss_d.backward();
            *d = adam.step(d.clone(), names, &grads);
            out.push(("D".to_string(), scalar(&loss_d)));
        }
        let mut losses = vec![
            ("total".to_string(), scalar(&total)),
            ("content".to_string(), scalar(&content) * s.content_weight),
            ("style".to_string(), scalar(&style) * s.style_weight),
        ];
        if s.tv_weight > 0.0 {
            losses.push(("tv".to_string(), scalar(&tv) * s.tv_weight));
        }
        losses.extend(out);
        Ok(losses)
    }

    fn save_state(&self) -> Result<(Weights, Value)> {
        let mut w = Weights::default();
        for (k, v) in self.net.to_weights()?.tensors {
            w.tensors.insert(format!("T.{k}"), v);
        }
        self.adam.state_tensors("adam_T.", &mut w)?;
        let mut d_steps = 0;
        if let Some((d, _, adam)) = &self.disc {
            for (k, v) in d.to_weights()?.tensors {
                w.tensors.insert(format!("D.{k}"), v);
            }
            adam.state_tensors("adam_D.", &mut w)?;
            d_steps = adam.steps();
        }
        Ok((w, json!({
            "settings": self.settings,
            "adam_t_steps": self.adam.steps(),
            "adam_d_steps": d_steps,
        })))
    }

    fn load_state(&mut self, tensors: &Weights, json: &Value) -> Result<()> {
        let settings: FastStyleSettings = serde_json::from_value(json["settings"].clone())
            .map_err(|e| Error::Param(format!("checkpoint settings: {e}")))?;
        if settings != self.settings {
            return Err(Error::Param(format!(
                "the checkpoint was trained with other settings or another style image:\n  checkpoint {:?}\n  now        {:?}",
                settings, self.settings
            )));
        }
        let steps = |k: &str| json[k].as_u64().ok_or_else(|| Error::Param(format!("checkpoint field `{k}` missing")));
        let ad = self.device.clone().autodiff();
        let net = TransformerNet::load(&tensors.with_prefix("T."), &ad)?;
        let mut adam = Adam::new(settings.adam, &self.device);
        adam.load_state(tensors, "adam_T.", steps("adam_t_steps")?)?;
        if let Some((d, names, dadam)) = &mut self.disc {
            *d = PatchDiscriminator::load(&tensors.with_prefix("D."), &ad)?.with_exact_norm_gradients(false);
            *names = param_names(|f| d.walk(f));
            let mut a = Adam::new(AdamSettings::gan(), &self.device);
            a.load_state(tensors, "adam_D.", steps("adam_d_steps")?)?;
            *dadam = a;
        }
        self.net = net;
        self.adam = adam;
        self.names = param_names(|f| self.net.walk(f));
        Ok(())
    }

    /// The preview photo and its stylisation, side by side.
    fn sample_grid(&self) -> Result<Picture> {
        let out = self.stylize(&self.preview)?;
        grid(&[self.preview.clone(), out], 2, 2)
    }
}

/// A fast-style training run as the command line and the service set it up: the loss network,
/// the style image, the content photos of a folder in square crops, and a preview photo.
#[derive(Debug)]
pub struct Recipe<'a> {
    /// The VGG loss network's weights (the variant is read from them).
    pub loss_network: &'a Weights,
    /// The style image, RGB 0..255.
    pub style: &'a Picture,
    /// The style image's longer side is scaled to at most this.
    pub style_size: u32,
    /// The folder of content photos.
    pub content_dir: &'a std::path::Path,
    /// Side of the square content crops, in pixels.
    pub crop: u32,
    /// The preview photo; `None` takes the folder's first photo.
    pub preview: Option<&'a std::path::Path>,
    /// Pixel limit when reading the preview.
    pub max_pixels: u64,
}

impl FastStyleTrainer {
    /// Builds the trainer of a [`Recipe`]: the reference settings for the loss network's
    /// variant ([`FastStyleSettings::reference`]), changed by `configure`, and returns it with
    /// the preview photo. Errors: an unreadable loss network, style or preview, an empty folder,
    /// settings that [`FastStyleSettings::check`] refuses.
    pub fn from_recipe(
        recipe: &Recipe<'_>,
        configure: impl FnOnce(&mut FastStyleSettings),
        device: &Device,
        seed: u64,
    ) -> Result<(Self, Picture)> {
        let variant = Vgg::from_weights(recipe.loss_network, None, &Device::flex())?.variant();
        let data = CropDataset::from_folder(recipe.content_dir, recipe.crop, recipe.crop)?;
        let preview_path = match recipe.preview {
            Some(p) => p.to_path_buf(),
            None => super::data::image_files(recipe.content_dir)?.remove(0),
        };
        let preview = crate::image_io::read(&preview_path, recipe.max_pixels)?;
        let mut settings = FastStyleSettings::reference(variant);
        configure(&mut settings);
        let trainer = Self::new(settings, recipe.loss_network, recipe.style, recipe.style_size, data, &preview, device, seed)?;
        Ok((trainer, preview))
    }
}
