//! Fast-style training: the perceptual loss falls by a large factor on a small fixed batch (parity
//! VGG19 weights), a stopped run resumes exactly, the adversarial term trains a discriminator, the
//! VGG16 configuration runs, and the exported network loads as a fast style.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use styleforge_core::methods::fast::FastStyleNet;
use styleforge_core::image_io::{self, Picture};
use styleforge_core::networks::vgg::{LayerKind, VggVariant};
use styleforge_core::shared;
use styleforge_core::train::adam::AdamSettings;
use styleforge_core::train::data::CropDataset;
use styleforge_core::train::fast_style::{FastStyleSettings, FastStyleTrainer};
use styleforge_core::train::rng::Rng;
use styleforge_core::train::{self, RunOptions, Trainer};
use styleforge_core::weights::{HostTensor, Weights};

const CROP: u32 = 64;

fn photo(name: &str) -> Picture {
    image_io::read(&shared::path(&format!("data/content/small/{name}")), 1 << 24).unwrap()
}

fn style() -> Picture {
    image_io::read(&shared::path("data/styles/starry_night_van_gogh.jpg"), 1 << 24)
        .unwrap()
        .fit_within(128)
}

fn square(p: &Picture, side: u32) -> Picture {
    let s = p.width.min(p.height);
    let (x0, y0) = ((p.width - s) / 2, (p.height - s) / 2);
    let n = (p.width * p.height) as usize;
    let mut rgb = Vec::with_capacity(3 * (s * s) as usize);
    for c in 0..3 {
        for y in y0..y0 + s {
            let row = c * n + (y * p.width + x0) as usize;
            rgb.extend_from_slice(&p.rgb[row..row + s as usize]);
        }
    }
    Picture::from_planes(s, s, rgb).resize(side, side)
}

/// Two photos cut to exactly the crop size: every batch holds the same images (up to flips).
fn fixed_data() -> CropDataset {
    let pics: Vec<Picture> = ["town_houses_kodim08_256.jpg", "parrots_kodim23_256.jpg"]
        .iter()
        .map(|n| square(&photo(n), CROP))
        .collect();
    CropDataset::from_pictures(&pics, CROP, CROP).unwrap()
}

fn vgg19() -> Weights {
    Weights::load(&shared::path("parity/vgg19_features_f16.pth")).unwrap()
}

fn settings(variant: VggVariant) -> FastStyleSettings {
    FastStyleSettings {
        width: 8,
        batch: 2,
        adam: AdamSettings { lr: 1e-2, ..FastStyleSettings::reference(variant).adam },
        ..FastStyleSettings::reference(variant)
    }
}

fn trainer(s: FastStyleSettings, vgg: &Weights, seed: u64) -> FastStyleTrainer {
    let preview = square(&photo("town_houses_kodim08_256.jpg"), CROP);
    FastStyleTrainer::new(s, vgg, &style(), 128, fixed_data(), &preview, &Device::flex(), seed)
        .unwrap()
}

fn opts(dir: &std::path::Path, steps: u64, resume: bool) -> RunOptions {
    RunOptions {
        dir: dir.to_path_buf(),
        steps,
        checkpoint_every: 20,
        sample_every: 20,
        resume,
        seed: 5,
    }
}

#[test]
fn perceptual_loss_falls_on_a_fixed_batch() {
    let vgg = vgg19();
    let mut t = trainer(settings(VggVariant::Vgg19), &vgg, 1);
    let dir = tempfile::tempdir().unwrap();
    let steps = 60;
    let summary = train::run(&mut t, &opts(dir.path(), steps, false), None, &mut |_| {}).unwrap();
    let log = train::read_log(&train::log_path(dir.path())).unwrap();
    let total = |i: usize| log[i]["total"].as_f64().unwrap();
    let style = |i: usize| log[i]["style"].as_f64().unwrap();
    let last = (55..60).map(total).sum::<f64>() / 5.0;
    eprintln!(
        "total {:.4e} -> {:.4e} ({:.1}x), style {:.4e} -> {:.4e}, content {:.4e} -> {:.4e}; {:.3} s/step",
        total(0),
        last,
        total(0) / last,
        style(0),
        style(59),
        log[0]["content"].as_f64().unwrap(),
        log[59]["content"].as_f64().unwrap(),
        summary.seconds_per_step
    );
    assert!(log.iter().all(|l| l["total"].as_f64().unwrap().is_finite()));
    assert!(total(0) / last > 10.0, "the loss fell only {:.2}x", total(0) / last);
    // The preview grid (photo and its stylisation) is written.
    let grid = image_io::read(&train::sample_path(dir.path(), 60), 1 << 24).unwrap();
    assert_eq!((grid.width, grid.height), (2 * (CROP + 2) + 2, CROP + 4));

    // The exported network is a pytorch/examples state dict that stylises as a fast style.
    let w = t.export().unwrap();
    let net = FastStyleNet::from_weights(&w, &Device::flex()).unwrap();
    let out = net.stylize(&photo("cat_chelsea_256.jpg"), &Default::default(), &Device::flex()).unwrap();
    let direct = t.stylize(&photo("cat_chelsea_256.jpg")).unwrap();
    let diff = out
        .rgb
        .iter()
        .zip(&direct.rgb)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 0.01, "export differs from the trained network by {diff}");
}

#[test]
fn resume_continues_exactly_with_the_adversarial_term() {
    let vgg = vgg19();
    let s = FastStyleSettings { adv_weight: 1e4, ..settings(VggVariant::Vgg19) };
    let steps = 4;
    let a_dir = tempfile::tempdir().unwrap();
    let mut a = trainer(s.clone(), &vgg, 1);
    train::run(&mut a, &opts(a_dir.path(), steps, false), None, &mut |_| {}).unwrap();

    let b_dir = tempfile::tempdir().unwrap();
    let mut b = trainer(s.clone(), &vgg, 1);
    let stop = AtomicBool::new(false);
    train::run(&mut b, &opts(b_dir.path(), steps, false), Some(&stop), &mut |p| {
        if p.step == 2 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    let mut b2 = trainer(s.clone(), &vgg, 42);
    train::run(&mut b2, &opts(b_dir.path(), steps, true), None, &mut |_| {}).unwrap();
    let (wa, wb) = (a.save_state().unwrap().0, b2.save_state().unwrap().0);
    assert!(wa.has("D.model.0.weight") && wa.has("adam_D.m.model.0.weight"));
    assert_eq!(wa.tensors.keys().collect::<Vec<_>>(), wb.tensors.keys().collect::<Vec<_>>());
    for (k, t) in &wa.tensors {
        assert_eq!(t.data, wb.tensors[k].data, "{k} differs after resuming");
    }
    let log = train::read_log(&train::log_path(a_dir.path())).unwrap();
    assert!(log.iter().all(|l| l["adv"].as_f64().unwrap().is_finite() && l["D"].as_f64().unwrap() >= 0.0));

    // Another style image (different settings) cannot continue this run.
    let other = FastStyleSettings { style_sha256: "other".into(), ..s };
    let mut c = trainer(other, &vgg, 1);
    let err = train::run(&mut c, &opts(b_dir.path(), 6, true), None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("other settings"), "{err}");
}

#[test]
fn vgg16_configuration_trains() {
    // VGG16 weights initialised here (the torchvision weights cannot be downloaded in tests).
    let mut rng = Rng::new(3);
    let mut w = Weights::default();
    for l in VggVariant::Vgg16.layers() {
        if let LayerKind::Conv { shape, .. } = l.kind {
            let fan_in = (shape[1] * 9) as f32;
            let n: usize = shape.iter().product();
            let data = (0..n).map(|_| rng.normal() * (2.0 / fan_in).sqrt()).collect();
            w.tensors.insert(format!("features.{}.weight", l.index), HostTensor::new(shape.to_vec(), data));
            w.tensors.insert(format!("features.{}.bias", l.index), HostTensor::new(vec![shape[0]], vec![0.0; shape[0]]));
        }
    }
    let s = FastStyleSettings { style_weight: 1e6, ..settings(VggVariant::Vgg16) };
    assert_eq!(s.content_layers, ["relu2_2"]);
    assert_eq!(s.style_layers, ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]);
    let mut t = trainer(s, &w, 2);
    let dir = tempfile::tempdir().unwrap();
    train::run(&mut t, &opts(dir.path(), 30, false), None, &mut |_| {}).unwrap();
    let log = train::read_log(&train::log_path(dir.path())).unwrap();
    let total = |i: usize| log[i]["total"].as_f64().unwrap();
    eprintln!("VGG16 (random weights): total {:.4e} -> {:.4e}", total(0), total(29));
    assert!(total(29) < 0.75 * total(0), "{:.4e} -> {:.4e}", total(0), total(29));
}
