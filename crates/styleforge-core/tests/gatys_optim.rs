//! Gatys optimisation end to end on small images with the parity VGG19 weights: L-BFGS and Adam
//! lower the loss, cancellation, determinism, coarse-to-fine, style blending, and the VGG16
//! configuration.


use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Tensor, TensorData};
use crate::common::{device, rel_l2};
use styleforge_core::methods::gatys::{
    self, GatysOptions, Init, LossConfig, Losses, Optimizer, Progress, Targets, gram,
};
use styleforge_core::image_io::{self, DEFAULT_MAX_PIXELS, Picture};
use styleforge_core::networks::vgg::{Vgg, VggVariant};
use styleforge_core::shared;
use styleforge_core::weights::{HostTensor, Weights};

fn vgg19() -> Vgg {
    Vgg::load(&shared::path("parity/vgg19_features_f16.pth"), &device()).unwrap()
}

fn picture(rel: &str, size: u32) -> Picture {
    image_io::read(&shared::path(rel), DEFAULT_MAX_PIXELS)
        .unwrap()
        .fit_within(size)
}

fn content() -> Picture {
    picture("data/content/small/cat_chelsea_256.jpg", 80)
}

fn style() -> Picture {
    picture("data/styles/starry_night_van_gogh.jpg", 96)
}

fn opts(iterations: usize) -> GatysOptions {
    GatysOptions {
        iterations,
        ..Default::default()
    }
}

/// Runs and records the losses reported at every iteration.
fn run_recording(opts: &GatysOptions, vgg: &Vgg) -> (gatys::Outcome, Vec<Losses>) {
    let mut seen = Vec::new();
    let out = gatys::run(
        &content(),
        &[(style(), 1.0)],
        opts,
        vgg,
        &device(),
        &mut |p: &Progress| {
            seen.push(p.losses);
            true
        },
    )
    .unwrap();
    (out, seen)
}

#[test]
fn lbfgs_lowers_the_loss_monotonically_and_the_style_distance_a_hundredfold() {
    let vgg = vgg19();
    let (out, seen) = run_recording(&opts(40), &vgg);
    let (first, last) = (seen[0], *seen.last().unwrap());
    eprintln!(
        "L-BFGS: {} iterations, {} evaluations, {:.2?}; total {:.4e} -> {:.4e} ({:.0}x), style {:.4e} -> {:.4e}, content {:.4e} -> {:.4e}",
        out.iterations,
        out.evaluations,
        out.elapsed,
        first.total,
        last.total,
        first.total / last.total,
        first.style,
        last.style,
        first.content,
        last.content
    );
    assert_eq!(out.iterations, 40);
    assert!(!out.cancelled);
    assert_eq!(out.losses, last);
    assert!(
        first.total / last.total > 20.0,
        "total loss fell only {:.1}x",
        first.total / last.total
    );
    // The line search guarantees sufficient decrease of the total at every iteration. The style
    // distance, which dominates the total when starting from the content, is not bound to fall at
    // every step (the content term may trade against it), but falls by two orders overall.
    for (i, w) in seen.windows(2).enumerate() {
        assert!(
            w[1].total <= w[0].total,
            "total rose at iteration {}",
            i + 1
        );
    }
    assert!(
        first.style / last.style > 100.0,
        "style distance fell only {:.1}x",
        first.style / last.style
    );
    let c = content();
    assert_eq!((out.picture.width, out.picture.height), (c.width, c.height));
    assert!(out.picture.rgb.iter().all(|v| (0.0..=255.0).contains(v)));
    // The result differs from the content (it was stylised).
    assert!(styleforge_core::color::mean_abs_diff(&out.picture.rgb, &c.rgb) > 5.0);
}

#[test]
fn adam_lowers_the_loss() {
    let vgg = vgg19();
    let o = GatysOptions {
        optimizer: Optimizer::Adam {
            learning_rate: 0.02,
        },
        ..opts(40)
    };
    let (out, seen) = run_recording(&o, &vgg);
    let (first, last) = (seen[0], *seen.last().unwrap());
    eprintln!(
        "Adam: {} iterations, {} evaluations, {:.2?}; total {:.4e} -> {:.4e} ({:.1}x)",
        out.iterations,
        out.evaluations,
        out.elapsed,
        first.total,
        last.total,
        first.total / last.total
    );
    assert_eq!(out.evaluations, 41);
    assert!(
        first.total / last.total > 10.0,
        "total loss fell only {:.2}x",
        first.total / last.total
    );
}

#[test]
fn cancellation_stops_early() {
    let vgg = vgg19();
    // From the callback's return value.
    let mut calls = 0;
    let out = gatys::run(
        &content(),
        &[(style(), 1.0)],
        &opts(50),
        &vgg,
        &device(),
        &mut |p: &Progress| {
            calls += 1;
            p.iteration < 3
        },
    )
    .unwrap();
    assert!(out.cancelled);
    assert_eq!(out.iterations, 3);
    assert_eq!(calls, 4);
    let c = content();
    assert_eq!((out.picture.width, out.picture.height), (c.width, c.height));

    // From the flag, set elsewhere (here: by the callback, which keeps returning true).
    let flag = Arc::new(AtomicBool::new(false));
    let o = GatysOptions {
        cancel: Some(flag.clone()),
        scales: 2,
        ..opts(50)
    };
    let out = gatys::run(
        &content(),
        &[(style(), 1.0)],
        &o,
        &vgg,
        &device(),
        &mut |p: &Progress| {
            if p.scale == 0 && p.iteration == 2 {
                flag.store(true, Ordering::Relaxed);
            }
            true
        },
    )
    .unwrap();
    assert!(out.cancelled);
    assert_eq!(out.iterations, 2);
    // Stopped at the coarse size, the result is still at the output size.
    assert_eq!((out.picture.width, out.picture.height), (c.width, c.height));

    // A flag set before the start stops before the first evaluation.
    let o = GatysOptions {
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..opts(50)
    };
    let out = gatys::run(
        &content(),
        &[(style(), 1.0)],
        &o,
        &vgg,
        &device(),
        &mut |_| true,
    )
    .unwrap();
    assert!(out.cancelled);
    assert_eq!(out.evaluations, 0);
}

#[test]
fn same_seed_gives_identical_results() {
    let vgg = vgg19();
    let noise = |seed| GatysOptions {
        init: Init::Noise { seed },
        ..opts(4)
    };
    let optimise = |o: GatysOptions| {
        gatys::run(&content(), &[(style(), 1.0)], &o, &vgg, &device(), &mut |_| true)
            .unwrap()
            .picture
    };
    let a = optimise(noise(7));
    let b = optimise(noise(7));
    let c = optimise(noise(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn coarse_to_fine_with_previews_and_colour_options() {
    let vgg = vgg19();
    let o = GatysOptions {
        max_size: Some(96),
        scales: 2,
        preview_every: Some(2),
        match_style_colors: true,
        preserve_color: true,
        strength: 0.8,
        ..opts(4)
    };
    let content = picture("data/content/small/parrots_kodim23_256.jpg", 256);
    let mut sizes = Vec::new();
    let mut previews = Vec::new();
    let mut etas = 0;
    let out = gatys::run(
        &content,
        &[(style(), 1.0)],
        &o,
        &vgg,
        &device(),
        &mut |p: &Progress| {
            assert_eq!(p.scales, 2);
            assert_eq!(p.iterations, 4);
            sizes.push((p.scale, p.width, p.height));
            etas += p.eta.is_some() as usize;
            if let Some(img) = p.image {
                assert_eq!((img.width, img.height), (p.width, p.height));
                previews.push((p.scale, p.iteration));
            }
            true
        },
    )
    .unwrap();
    assert_eq!((out.picture.width, out.picture.height), (96, 64));
    assert!(
        sizes.contains(&(0, 48, 32)) && sizes.contains(&(1, 96, 64)),
        "{sizes:?}"
    );
    assert_eq!(previews, vec![(0, 2), (0, 4), (1, 2), (1, 4)]);
    assert_eq!(out.iterations, 8);
    assert!(etas >= 8);
}

#[test]
fn blended_styles_blend_the_gram_matrices() {
    let dev = device();
    let vgg = vgg19();
    let up = |p: &Picture| {
        Tensor::<4>::from_data(
            TensorData::new(
                p.rgb.iter().map(|v| v / 255.0).collect::<Vec<_>>(),
                [1, 3, p.height as usize, p.width as usize],
            ),
            &dev,
        )
    };
    let c = up(&content());
    let s1 = up(&style());
    let s2 = up(&picture("data/styles/the_scream_munch.jpg", 64));
    let cfg = LossConfig::default();
    let t = Targets::new(&vgg, &cfg, c, &[(s1.clone(), 1.0), (s2.clone(), 3.0)]).unwrap();
    let f1 = vgg.forward(s1, &["relu3_1"]).unwrap().remove(0);
    let f2 = vgg.forward(s2, &["relu3_1"]).unwrap().remove(0);
    let want = HostTensor::from_tensor(gram(f1) * 0.25 + gram(f2) * 0.75).unwrap();
    let got = HostTensor::from_tensor(t.style_gram(2).unwrap()).unwrap();
    assert!(rel_l2(&got.data, &want.data) < 1e-6);
}

#[test]
fn bad_options_are_rejected() {
    let vgg = vgg19();
    let run = |o: &GatysOptions, styles: &[(Picture, f32)]| {
        gatys::run(&content(), styles, o, &vgg, &device(), &mut |_| true)
    };
    let s = [(style(), 1.0)];
    assert!(run(&opts(0), &s).is_err());
    assert!(run(&opts(5), &[]).is_err());
    assert!(run(&opts(5), &[(style(), 0.0)]).is_err());
    let mut o = opts(5);
    o.loss.style_layers.push(("relu5_4".into(), 1.0));
    let err = run(&o, &s).unwrap_err().to_string();
    assert!(err.contains("relu5_4"), "{err}");
    let o = GatysOptions {
        strength: 2.0,
        ..opts(5)
    };
    assert!(run(&o, &s).is_err());
}

/// A VGG16 state dict with deterministic pseudo-random weights for the first `convs` convolutions
/// (He-scaled so activations keep their magnitude), plus a classifier tensor to ignore.
fn vgg16_weights(convs: usize) -> Weights {
    let mut w = Weights::default();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let plan = [
        (0, 64, 3),
        (2, 64, 64),
        (5, 128, 64),
        (7, 128, 128),
        (10, 256, 128),
        (12, 256, 256),
        (14, 256, 256),
        (17, 512, 256),
        (19, 512, 512),
        (21, 512, 512),
        (24, 512, 512),
        (26, 512, 512),
        (28, 512, 512),
    ];
    for &(index, out, inp) in plan.iter().take(convs) {
        let scale = (6.0 / (inp as f32 * 9.0)).sqrt() * 2.0;
        let n = out * inp * 9;
        w.tensors.insert(
            format!("features.{index}.weight"),
            HostTensor::new(
                vec![out, inp, 3, 3],
                (0..n).map(|_| rand() * scale).collect(),
            ),
        );
        w.tensors.insert(
            format!("features.{index}.bias"),
            HostTensor::new(vec![out], (0..out).map(|_| rand() * 0.1).collect()),
        );
    }
    w.tensors.insert(
        "classifier.6.bias".into(),
        HostTensor::new(vec![4], vec![0.0; 4]),
    );
    w
}

#[test]
fn vgg16_configuration() {
    let dev = device();
    let w = vgg16_weights(10);
    let vgg = Vgg::from_weights(&w, None, &dev).unwrap();
    assert_eq!(vgg.variant(), VggVariant::Vgg16);
    assert_eq!(vgg.conv_count(), 10);
    assert_eq!(vgg.deepest_layer(), "relu4_3");
    assert_eq!(vgg.layer_index("relu3_3").unwrap(), 15);
    assert_eq!(vgg.layer_index("relu4_3").unwrap(), 22);
    assert_eq!(vgg.layer_index("pool4").unwrap(), 23);
    assert!(vgg.layer_index("relu5_1").is_err());
    assert!(vgg.layer_index("relu3_4").is_err(), "VGG16 has no conv3_4");
    // The VGG19 layout does not fit these tensors.
    assert!(Vgg::from_weights(&w, Some(VggVariant::Vgg19), &dev).is_err());
    // A wrong shape is reported with the tensor's name.
    let mut bad = w.clone();
    bad.tensors.get_mut("features.5.weight").unwrap().shape = vec![128, 32, 6, 3];
    let err = Vgg::from_weights(&bad, None, &dev).unwrap_err().to_string();
    assert!(err.contains("features.5.weight"), "{err}");

    let (h, wd) = (40usize, 56usize);
    let input: Vec<f32> = (0..3 * h * wd)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [1, 3, h, wd]), &dev);
    let names = [
        "relu1_1", "relu1_2", "relu2_2", "relu3_3", "relu4_3", "pool4",
    ];
    let feats = vgg.forward(x, &names).unwrap();
    let shapes: Vec<[usize; 4]> = feats.iter().map(|f| f.dims()).collect();
    assert_eq!(
        shapes,
        vec![
            [1, 64, 40, 56],
            [1, 64, 40, 56],
            [1, 128, 20, 28],
            [1, 256, 10, 14],
            [1, 512, 5, 7],
            [1, 512, 2, 3],
        ]
    );
    // relu1_1 by hand at an inner and a corner pixel: zero padding of the *normalised* input.
    let relu1_1 = HostTensor::from_tensor(feats[0].clone()).unwrap();
    let k = w.get("features.0.weight").unwrap();
    let b = w.get("features.0.bias").unwrap();
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    for (o, y, xx) in [(5usize, 7usize, 9usize), (63, 0, 0), (17, 39, 55)] {
        let mut acc = b.data[o];
        for c in 0..3 {
            for dy in 0..3 {
                for dx in 0..3 {
                    let (iy, ix) = (y as isize + dy as isize - 1, xx as isize + dx as isize - 1);
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                        continue;
                    }
                    let v = (input[c * h * wd + iy as usize * wd + ix as usize] - mean[c]) / std[c];
                    acc += k.data[((o * 3 + c) * 3 + dy) * 3 + dx] * v;
                }
            }
        }
        let got = relu1_1.data[o * h * wd + y * wd + xx];
        assert!(
            (got - acc.max(0.0)).abs() < 1e-4,
            "({o},{y},{xx}): {got} vs {}",
            acc.max(0.0)
        );
    }

    // Gatys with a VGG16 layer set runs and lowers the loss.
    let o = GatysOptions {
        loss: LossConfig {
            content_layers: vec![("relu3_3".into(), 1.0)],
            style_layers: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
                .iter()
                .map(|n| (n.to_string(), 1.0))
                .collect(),
            ..Default::default()
        },
        max_size: Some(48),
        ..opts(5)
    };
    let mut totals = Vec::new();
    let out = gatys::run(
        &content(),
        &[(style(), 1.0)],
        &o,
        &vgg,
        &dev,
        &mut |p: &Progress| {
            totals.push(p.losses.total);
            true
        },
    )
    .unwrap();
    assert_eq!(out.iterations, 5);
    assert!(totals.last().unwrap() < &(totals[0] * 0.5), "{totals:?}");
}

#[test]
fn style_initialisation_and_step_timing() {
    let vgg = vgg19();
    let o = GatysOptions {
        init: Init::Style,
        max_size: Some(48),
        ..opts(2)
    };
    let scream = picture("data/styles/the_scream_munch.jpg", 64);
    let mut first = None;
    let out = gatys::run(
        &content(),
        &[(scream, 0.0), (style(), 1.0)],
        &o,
        &vgg,
        &device(),
        &mut |p: &Progress| {
            first.get_or_insert(p.losses);
            true
        },
    )
    .unwrap();
    assert_eq!(out.iterations, 2);
    // Starting from the (only weighted) style image, the content term dominates at first.
    let first = first.unwrap();
    assert!(first.content > 1e3 * first.style, "{first:?}");

    let t = gatys::time_step(&vgg, &device(), 32, 32, 1).unwrap();
    assert!(t.mean > std::time::Duration::ZERO && t.min <= t.mean);
}
