//! The training framework with the DCGAN trainer: it learns a synthetic distribution, writes its
//! log, samples and checkpoints, and a resumed run continues exactly where it stopped.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use styleforge_core::networks::dcgan::BnMode;
use styleforge_core::train::adam::AdamSettings;
use styleforge_core::train::dcgan::{Dataset, DcganSettings, DcganTrainer, IMAGE_SIZE};
use styleforge_core::train::rng::Rng;
use styleforge_core::train::{self, RunOptions, Trainer};
use styleforge_core::weights::Weights;

const PIX: usize = (IMAGE_SIZE * IMAGE_SIZE) as usize;

/// Images with a reddish base colour, a horizontal ramp, per-image brightness and a little
/// noise: easy to recognise, far from what an untrained generator draws (grey around 0).
fn synthetic(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let base = [0.55f32, -0.45, -0.25];
    let s = IMAGE_SIZE as usize;
    let mut data = Vec::with_capacity(n * 3 * PIX);
    for _ in 0..n {
        let bright = (rng.uniform() as f32 - 0.5) * 0.3;
        for b in base {
            for _y in 0..s {
                for x in 0..s {
                    let ramp = 0.4 * (x as f32 / (s - 1) as f32 - 0.5);
                    let v = b + ramp + bright + 0.05 * rng.normal();
                    data.push(v.clamp(-1.0, 1.0));
                }
            }
        }
    }
    data
}

/// Per-pixel mean image of `n` planar images.
fn mean_image(data: &[f32], n: usize) -> Vec<f64> {
    let mut m = vec![0f64; 3 * PIX];
    for i in 0..n {
        for (a, v) in m.iter_mut().zip(&data[i * 3 * PIX..(i + 1) * 3 * PIX]) {
            *a += *v as f64 / n as f64;
        }
    }
    m
}

fn rms_diff(a: &[f64], b: &[f64]) -> f64 {
    (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
}

fn channel_means(m: &[f64]) -> [f64; 3] {
    let c = |k: usize| m[k * PIX..(k + 1) * PIX].iter().sum::<f64>() / PIX as f64;
    [c(0), c(1), c(2)]
}

/// Distance of the generator's mean image (64 fixed latents) from the data's.
fn distance(t: &DcganTrainer, target: &[f64]) -> (f64, [f64; 3]) {
    let nz = t.settings().nz;
    let z = Rng::new(99).normals(64 * nz);
    let imgs = t.generate(&z, BnMode::BatchStats).unwrap();
    let m = mean_image(&imgs, 64);
    (rms_diff(&m, target), channel_means(&m))
}

fn opts(dir: &std::path::Path, steps: u64, resume: bool) -> RunOptions {
    RunOptions {
        dir: dir.to_path_buf(),
        steps,
        checkpoint_every: 50,
        sample_every: 50,
        resume,
        seed: 3,
    }
}

#[test]
fn learns_a_synthetic_distribution() {
    let dev = Device::flex();
    let n = 128;
    let data = synthetic(n, 1);
    let target = mean_image(&data, n);
    let settings = DcganSettings {
        nz: 32,
        ngf: 16,
        ndf: 16,
        batch: 16,
        // The GAN betas with a 5x learning rate, so that a CPU test of 150 steps sees the
        // generator cross the colour gap (at 2e-4 it needs several hundred steps).
        adam: AdamSettings {
            lr: 1e-3,
            ..AdamSettings::gan()
        },
    };
    let mut t =
        DcganTrainer::new(settings, Dataset::from_unit_images(data).unwrap(), &dev, 5).unwrap();
    let (before, ch_before) = distance(&t, &target);
    let dir = tempfile::tempdir().unwrap();
    let steps = 150;
    let mut seen = 0;
    let summary = train::run(&mut t, &opts(dir.path(), steps, false), None, &mut |p| {
        seen += 1;
        assert_eq!(p.total, steps);
        assert!(p.losses.iter().all(|(_, v)| v.is_finite()));
    })
    .unwrap();
    let (after, ch_after) = distance(&t, &target);
    let want = channel_means(&target);
    eprintln!(
        "mean-image RMS distance {before:.3} -> {after:.3}; channel means {ch_before:.2?} -> \
         {ch_after:.2?} (data {want:.2?}); {:.3} s/step",
        summary.seconds_per_step
    );
    assert_eq!(seen, steps);
    assert_eq!(summary.end_step, steps);
    assert!(after < 0.4 * before, "{before:.3} -> {after:.3}");
    for c in 0..3 {
        assert!(
            (ch_after[c] - want[c]).abs() < 0.15,
            "channel {c}: {:.3} vs {:.3}",
            ch_after[c],
            want[c]
        );
    }
    // Files: a log line per step, samples every 50 steps, the final checkpoint.
    let log = train::read_log(&train::log_path(dir.path())).unwrap();
    assert_eq!(log.len(), steps as usize);
    assert_eq!(log[0]["step"], 1);
    assert!(
        log.iter()
            .all(|l| l.contains_key("loss_d") && l.contains_key("loss_g"))
    );
    for s in [50, 100, 150] {
        let p = train::sample_path(dir.path(), s);
        let pic = styleforge_core::image_io::read(&p, 1 << 24).unwrap();
        assert_eq!((pic.width, pic.height), (4 * 66 + 2, 4 * 66 + 2));
    }
    let ck = train::load_checkpoint(dir.path()).unwrap();
    assert_eq!((ck.kind.as_str(), ck.step), ("dcgan", steps));
    // The exported generator is a pytorch/examples state dict.
    let g = t.export_generator().unwrap();
    assert!(g.has("main.0.weight") && g.has("main.1.num_batches_tracked"));
}

fn small_trainer(seed: u64) -> DcganTrainer {
    let settings = DcganSettings {
        nz: 8,
        ngf: 8,
        ndf: 8,
        batch: 4,
        adam: AdamSettings::gan(),
    };
    DcganTrainer::new(
        settings,
        Dataset::from_unit_images(synthetic(12, 2)).unwrap(),
        &Device::flex(),
        seed,
    )
    .unwrap()
}

fn state(t: &DcganTrainer) -> Weights {
    t.save_state().unwrap().0
}

#[test]
fn resume_continues_exactly() {
    let steps = 6;
    // Uninterrupted.
    let a_dir = tempfile::tempdir().unwrap();
    let mut a = small_trainer(1);
    train::run(&mut a, &opts(a_dir.path(), steps, false), None, &mut |_| {}).unwrap();

    // Stopped after step 2 (as Ctrl-C does), resumed by a trainer built from another seed.
    let b_dir = tempfile::tempdir().unwrap();
    let mut b = small_trainer(1);
    let stop = AtomicBool::new(false);
    let s = train::run(
        &mut b,
        &opts(b_dir.path(), steps, false),
        Some(&stop),
        &mut |p| {
            if p.step == 2 {
                stop.store(true, Ordering::SeqCst);
            }
        },
    )
    .unwrap();
    assert!(s.stopped && s.end_step == 2);
    assert_eq!(train::load_checkpoint(b_dir.path()).unwrap().step, 2);
    // A fresh run into a directory holding a run is refused.
    assert!(train::run(&mut b, &opts(b_dir.path(), steps, false), None, &mut |_| {}).is_err());
    let mut b2 = small_trainer(77);
    let s = train::run(&mut b2, &opts(b_dir.path(), steps, true), None, &mut |_| {}).unwrap();
    assert_eq!((s.start_step, s.end_step, s.stopped), (2, steps, false));

    let (wa, wb) = (state(&a), state(&b2));
    assert_eq!(
        wa.tensors.keys().collect::<Vec<_>>(),
        wb.tensors.keys().collect::<Vec<_>>()
    );
    for (k, ta) in &wa.tensors {
        let tb = &wb.tensors[k];
        assert_eq!(ta.shape, tb.shape, "{k}");
        let max = ta
            .data
            .iter()
            .zip(&tb.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max == 0.0, "{k} differs by {max:e} after resuming");
    }
    // The logs agree line by line (apart from timings).
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
}
