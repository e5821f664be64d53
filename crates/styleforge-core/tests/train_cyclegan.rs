//! The CycleGAN trainer learns: on two synthetic domains (textures dominated by red, and by blue)
//! G_A moves A's colours toward B's and the cycle error falls; a stopped run resumes exactly.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use styleforge_core::image_io::Picture;
use styleforge_core::train::adam::AdamSettings;
use styleforge_core::train::cyclegan::{CycleGanSettings, CycleGanTrainer};
use styleforge_core::train::data::CropDataset;
use styleforge_core::train::rng::Rng;
use styleforge_core::train::{self, RunOptions, Trainer};

const SIDE: u32 = 40;
const CROP: u32 = 32;

/// Textured images (random stripes, blobs and noise) whose colour leans to `tint` (RGB, 0..255).
fn domain(n: usize, tint: [f32; 3], seed: u64) -> Vec<Picture> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let p = (SIDE * SIDE) as usize;
            let period = 4.0 + 8.0 * rng.uniform() as f32;
            let angle = std::f32::consts::PI * rng.uniform() as f32;
            let (cx, cy) = (SIDE as f32 * rng.uniform() as f32, SIDE as f32 * rng.uniform() as f32);
            let mut rgb = vec![0f32; 3 * p];
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let (xf, yf) = (x as f32, y as f32);
                    let stripe = ((xf * angle.cos() + yf * angle.sin()) / period * 6.283).sin();
                    let blob = (-((xf - cx).powi(2) + (yf - cy).powi(2)) / 60.0).exp();
                    let texture = 0.35 * stripe + 0.3 * blob + 0.1 * rng.normal();
                    for c in 0..3 {
                        let v = tint[c] * (0.75 + texture) + 25.0 * texture;
                        rgb[c * p + (y * SIDE + x) as usize] = v.clamp(0.0, 255.0);
                    }
                }
            }
            Picture::from_planes(SIDE, SIDE, rgb)
        })
        .collect()
}

const RED: [f32; 3] = [200.0, 60.0, 50.0];
const BLUE: [f32; 3] = [50.0, 70.0, 200.0];

fn datasets() -> (CropDataset, CropDataset) {
    (
        CropDataset::from_pictures(&domain(24, RED, 1), SIDE, CROP).unwrap(),
        CropDataset::from_pictures(&domain(24, BLUE, 2), SIDE, CROP).unwrap(),
    )
}

fn settings(total: u64) -> CycleGanSettings {
    CycleGanSettings {
        ngf: 8,
        n_blocks: 2,
        ndf: 8,
        batch: 2,
        pool_size: 8,
        decay_steps: 0,
        // A higher rate than the reference's 2e-4 so that a CPU test of a few hundred steps
        // shows the translation clearly.
        adam: AdamSettings { lr: 1e-3, ..AdamSettings::gan() },
        ..CycleGanSettings::reference(total)
    }
}

/// Mean colour (in [-1, 1]) of planar images.
fn mean_rgb(data: &[f32]) -> [f64; 3] {
    let p = (CROP * CROP) as usize;
    let n = data.len() / (3 * p);
    let mut m = [0f64; 3];
    for i in 0..n {
        for (c, mc) in m.iter_mut().enumerate() {
            let s = &data[(3 * i + c) * p..(3 * i + c + 1) * p];
            *mc += s.iter().map(|v| *v as f64).sum::<f64>() / (p * n) as f64;
        }
    }
    m
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}

fn opts(dir: &std::path::Path, steps: u64, resume: bool) -> RunOptions {
    RunOptions {
        dir: dir.to_path_buf(),
        steps,
        checkpoint_every: 100,
        sample_every: 100,
        resume,
        seed: 11,
    }
}

#[test]
fn learns_to_translate_red_to_blue() {
    let dev = Device::flex();
    let (a, b) = datasets();
    let real_a: Vec<f32> = (0..24).flat_map(|i| a.centre(i)).collect();
    let real_b: Vec<f32> = (0..24).flat_map(|i| b.centre(i)).collect();
    let (mean_a, mean_b) = (mean_rgb(&real_a), mean_rgb(&real_b));
    let steps = 300;
    let mut t = CycleGanTrainer::new(settings(steps), a, b, &dev, 4).unwrap();
    let before = mean_rgb(&t.translate(&real_a, CROP as usize, true).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let summary = train::run(&mut t, &opts(dir.path(), steps, false), None, &mut |p| {
        assert!(p.losses.iter().all(|(_, v)| v.is_finite()), "{:?}", p.losses);
    })
    .unwrap();
    let fake_b = t.translate(&real_a, CROP as usize, true).unwrap();
    let after = mean_rgb(&fake_b);
    let rec_a = t.translate(&fake_b, CROP as usize, false).unwrap();
    let rec_err = rec_a.iter().zip(&real_a).map(|(x, y)| (x - y).abs() as f64).sum::<f64>()
        / real_a.len() as f64;

    let log = train::read_log(&train::log_path(dir.path())).unwrap();
    let mean_of = |k: &str, r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        log[r].iter().map(|l| l[k].as_f64().unwrap()).sum::<f64>() / n
    };
    let cycle_first = mean_of("cycle_A", 0..20) + mean_of("cycle_B", 0..20);
    let cycle_last = mean_of("cycle_A", 280..300) + mean_of("cycle_B", 280..300);
    eprintln!(
        "A {mean_a:.2?}, B {mean_b:.2?}; G_A(A) {before:.2?} -> {after:.2?}; distance to B \
         {:.3} -> {:.3}; cycle loss {cycle_first:.3} -> {cycle_last:.3}; |G_B(G_A(A)) - A| \
         {rec_err:.3}; {:.3} s/step",
        dist(before, mean_b),
        dist(after, mean_b),
        summary.seconds_per_step
    );
    // G_A's output moves from wherever it started to B's colours: much closer to B than to A.
    assert!(dist(after, mean_b) < 0.35 * dist(before, mean_b), "{before:?} -> {after:?}");
    assert!(dist(after, mean_b) < 0.35 * dist(mean_a, mean_b));
    assert!(after[2] > after[0], "blue should dominate red in G_A(A): {after:?}");
    // The cycle error falls and the round trip comes back near the input.
    assert!(cycle_last < 0.5 * cycle_first, "{cycle_first:.3} -> {cycle_last:.3}");
    assert!(rec_err < 0.25, "round trip error {rec_err:.3}");
    // Log, samples (two domains x three rows), checkpoint.
    assert_eq!(log.len(), steps as usize);
    for k in ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B", "lr"] {
        assert!(log[0].contains_key(k), "{k} missing from the log");
    }
    let grid = styleforge_core::image_io::read(&train::sample_path(dir.path(), 300), 1 << 24).unwrap();
    assert_eq!((grid.width, grid.height), (4 * (CROP + 2) + 2, 6 * (CROP + 2) + 2));
    assert_eq!(train::load_checkpoint(dir.path()).unwrap().step, steps);
}

#[test]
fn learning_rate_schedule() {
    let s = CycleGanSettings { decay_steps: 100, ..CycleGanSettings::reference(300) };
    assert_eq!(s.lr_at(1), 2e-4);
    assert_eq!(s.lr_at(200), 2e-4);
    assert!((s.lr_at(201) - 2e-4 * (1.0 - 1.0 / 101.0)).abs() < 1e-12);
    assert!((s.lr_at(300) - 2e-4 / 101.0).abs() < 1e-12);
    assert!(s.lr_at(300) > 0.0);
}

fn small(seed: u64) -> CycleGanTrainer {
    let (a, b) = datasets();
    let s = CycleGanSettings { pool_size: 2, decay_steps: 3, ..settings(6) };
    CycleGanTrainer::new(s, a, b, &Device::flex(), seed).unwrap()
}

#[test]
fn resume_continues_exactly() {
    let steps = 6;
    let a_dir = tempfile::tempdir().unwrap();
    let mut a = small(1);
    train::run(&mut a, &opts(a_dir.path(), steps, false), None, &mut |_| {}).unwrap();

    let b_dir = tempfile::tempdir().unwrap();
    let mut b = small(1);
    let stop = AtomicBool::new(false);
    let s = train::run(&mut b, &opts(b_dir.path(), steps, false), Some(&stop), &mut |p| {
        if p.step == 3 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(s.stopped && s.end_step == 3);
    let mut b2 = small(99);
    train::run(&mut b2, &opts(b_dir.path(), steps, true), None, &mut |_| {}).unwrap();

    let (wa, wb) = (a.save_state().unwrap().0, b2.save_state().unwrap().0);
    assert_eq!(wa.tensors.keys().collect::<Vec<_>>(), wb.tensors.keys().collect::<Vec<_>>());
    assert!(wa.has("pool_A") && wa.has("adam_D_B.m.model.0.weight"));
    for (k, ta) in &wa.tensors {
        assert_eq!(ta.data, wb.tensors[k].data, "{k} differs after resuming");
    }
    let strip = |dir: &std::path::Path| {
        train::read_log(&train::log_path(dir))
            .unwrap()
            .into_iter()
            .map(|mut l| {
                l.remove("seconds");
                l
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(a_dir.path()), strip(b_dir.path()));
    // The exported generator is a reference state dict and stylises through the cyclegan method.
    let g = a.export_generator(true).unwrap();
    assert!(styleforge_core::methods::cyclegan::CycleGan::detect(&g));
}

#[test]
fn bad_settings_are_errors() {
    let (a, b) = datasets();
    let bad = CycleGanSettings { decay_steps: 10, ..CycleGanSettings::reference(5) };
    assert!(CycleGanTrainer::new(bad, a.clone(), b.clone(), &Device::flex(), 1).is_err());
    let bad = CycleGanSettings { batch: 0, ..CycleGanSettings::reference(5) };
    assert!(CycleGanTrainer::new(bad, a, b, &Device::flex(), 1).is_err());
}
