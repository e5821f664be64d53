//! CycleGAN's ResNet generator and PatchGAN discriminator reproduce the PyTorch reference:
//! forward outputs, and the parameter gradients of the loss defined in `MANIFEST.json`
//! (`mean(G(x) * w) + mean((D(G(x)) - 1)^2)`, `w = linspace(-1, 1)` over G(x)'s elements).


use burn::tensor::{Device, Tensor, TensorData};
use crate::common::{assert_close, device, reference, rel_l2};
use styleforge_core::methods::cyclegan::{CycleGan, CycleGanOptions, STATS_SIZE};
use styleforge_core::image_io::Picture;
use styleforge_core::networks::layers::NormContext;
use styleforge_core::networks::cyclegan::{
    DiscriminatorConfig, GeneratorConfig, PatchDiscriminator, ResnetGenerator,
};
use styleforge_core::shared;
use styleforge_core::tiling::planes_to_tensor;
use styleforge_core::weights::HostTensor;
use styleforge_core::weights::Weights;

const TOL: f64 = 1e-4;

/// Gradient bound: 1e-5, ten times tighter than the outputs' bound (the measured errors are
/// 3-4e-6, the float32 rounding of 23 layers forward and back). It holds because on an autodiff
/// device the instance norms run in float64 (see `kernels::instance_norm`): with
/// float32 normalisation arithmetic and the AVX2 matrix kernels, the kernel gradients upstream of the first transposed
/// convolution are off by ~9e-3, as the per-channel gradient sums of the norms' backward pass
/// leave a residual mean that the next kernel gradient multiplies by its input's mean.
const GRAD_TOL: f64 = 1e-5;

fn load_g(dev: &Device) -> ResnetGenerator {
    let w = Weights::load(&shared::path("parity/cyclegan_G_ngf32_6blocks.pth")).unwrap();
    ResnetGenerator::load(&w, dev).unwrap()
}

fn load_d(dev: &Device) -> PatchDiscriminator {
    let w = Weights::load(&shared::path("parity/cyclegan_D_ndf32_3layers.pth")).unwrap();
    PatchDiscriminator::load(&w, dev).unwrap()
}

#[test]
fn shapes_are_read_from_the_weights() {
    let g = Weights::load(&shared::path("parity/cyclegan_G_ngf32_6blocks.pth")).unwrap();
    assert_eq!(
        GeneratorConfig::from_weights(&g).unwrap(),
        GeneratorConfig::new(32, 6)
    );
    let d = Weights::load(&shared::path("parity/cyclegan_D_ndf32_3layers.pth")).unwrap();
    assert_eq!(
        DiscriminatorConfig::from_weights(&d).unwrap(),
        DiscriminatorConfig::new(32, 3)
    );
    // The zoo's layout (ngf=64, 9 blocks) from freshly initialised weights: the names and shapes
    // the loader expects are the ones the config writes.
    let mut n = 0u32;
    let mut normal = || {
        n += 1;
        ((n % 7) as f32 - 3.0) / 3.0
    };
    let zoo = GeneratorConfig::new(64, 9).init_weights(&mut normal);
    assert!(zoo.has("model.18.conv_block.5.weight"));
    assert!(zoo.has("model.26.weight"));
    let net = ResnetGenerator::load(&zoo, &device()).unwrap();
    assert_eq!(net.config(), GeneratorConfig::new(64, 9));
    // Export round-trips exactly.
    let back = net.to_weights().unwrap();
    assert_eq!(back.tensors, zoo.tensors);
}

#[test]
fn wrong_files_are_rejected() {
    let dev = device();
    let d = Weights::load(&shared::path("parity/cyclegan_D_ndf32_3layers.pth")).unwrap();
    assert!(ResnetGenerator::load(&d, &dev).is_err());
    let mut g = Weights::load(&shared::path("parity/cyclegan_G_ngf32_6blocks.pth")).unwrap();
    assert!(PatchDiscriminator::load(&g, &dev).is_err());
    g.tensors.remove("model.16.bias");
    let err = ResnetGenerator::load(&g, &dev).unwrap_err().to_string();
    assert!(err.contains("model.16.bias"), "{err}");
}

/// Zoo checkpoints saved by PyTorch before 0.4 carry instance-norm running statistics that the
/// reference deletes on load; they load here too, and give the same network.
#[test]
fn legacy_instance_norm_buffers_are_ignored() {
    let dev = device();
    let g = Weights::load(&shared::path("parity/cyclegan_G_ngf32_6blocks.pth")).unwrap();
    let mut legacy = g.clone();
    for k in ["model.2", "model.5", "model.10.conv_block.2"] {
        for (b, n) in [("running_mean", 32), ("running_var", 32)] {
            legacy.tensors.insert(
                format!("{k}.{b}"),
                styleforge_core::weights::HostTensor::new(vec![n], vec![0.5; n]),
            );
        }
    }
    let x = Tensor::<4>::random([1, 3, 32, 32], burn::tensor::Distribution::Uniform(-1.0, 1.0), &dev);
    let a = ResnetGenerator::load(&g, &dev).unwrap().forward(x.clone(), &mut Default::default());
    let b = ResnetGenerator::load(&legacy, &dev).unwrap().forward(x, &mut Default::default());
    assert_eq!(a.into_data().try_to_vec::<f32>().expect("f32"), b.into_data().try_to_vec::<f32>().expect("f32"));
    // Other unknown tensors are still refused.
    legacy.tensors.insert("model.99.weight".into(), styleforge_core::weights::HostTensor::new(vec![1], vec![0.0]));
    assert!(ResnetGenerator::load(&legacy, &dev).is_err());
}

#[test]
fn generator_and_discriminator_forward() {
    let dev = device();
    let (g, d) = (load_g(&dev), load_d(&dev));
    let r = reference("parity/cyclegan.safetensors");
    let x = r.get("x").unwrap().to_tensor::<4>(&dev).unwrap();
    let gx = g.forward(x, &mut NormContext::Local);
    assert_close("G(x)", gx.clone(), r.get("G_x").unwrap(), TOL);
    // The discriminator on the reference's G(x), so its own error is measured alone.
    let gx_ref = r.get("G_x").unwrap().to_tensor::<4>(&dev).unwrap();
    assert_close("D(G(x))", d.forward(gx_ref), r.get("D_G_x").unwrap(), TOL);
    assert_close(
        "D(G(x)) chained",
        d.forward(gx),
        r.get("D_G_x").unwrap(),
        TOL,
    );
}

/// The reference loss and its parameter gradients, named `grad_G.*` / `grad_D.*` for the
/// reference's tensors only.
fn loss_and_gradients(exact: bool) -> (f32, Vec<(String, f64)>) {
    let ad = device().autodiff();
    let g = load_g(&ad).with_exact_norm_gradients(exact);
    let d = load_d(&ad).with_exact_norm_gradients(exact);
    let r = reference("parity/cyclegan.safetensors");
    let x = r.get("x").unwrap().to_tensor::<4>(&ad).unwrap();
    let gx = g.forward(x, &mut NormContext::Local);
    let dims = gx.dims();
    let n: usize = dims.iter().product();
    let w: Vec<f32> = (0..n)
        .map(|i| (-1.0 + 2.0 * i as f64 / (n - 1) as f64) as f32)
        .collect();
    let w = Tensor::<4>::from_data(TensorData::new(w, dims), &device());
    let adv = (d.forward(gx.clone()) - 1.0).powi_scalar(2).mean();
    let loss = (gx * w).mean() + adv;
    let value = HostTensor::from_tensor(loss.clone()).unwrap().data[0];
    let grads = loss.backward();
    let gg = g.gradients(&grads).unwrap();
    let dg = d.gradients(&grads).unwrap();
    assert_eq!(gg.tensors.len(), g.to_weights().unwrap().tensors.len());
    assert_eq!(dg.tensors.len(), 10);
    let mut errs = Vec::new();
    for (name, got) in gg
        .tensors
        .iter()
        .map(|(k, v)| (format!("grad_G.{k}"), v))
        .chain(dg.tensors.iter().map(|(k, v)| (format!("grad_D.{k}"), v)))
    {
        if let Ok(want) = r.get(&name) {
            assert_eq!(got.shape, want.shape, "{name}: shape");
            errs.push((name, rel_l2(&got.data, &want.data)));
        }
    }
    assert_eq!(errs.len(), 4, "every reference gradient was compared");
    (value, errs)
}

#[test]
fn loss_and_parameter_gradients() {
    let r = reference("parity/cyclegan.safetensors");
    let (loss, errs) = loss_and_gradients(true);
    let want = r.get("loss").unwrap().data[0];
    let loss_err = ((loss - want) / want).abs() as f64;
    eprintln!("loss: relative error {loss_err:.3e}");
    assert!(loss_err < TOL);
    for (name, err) in &errs {
        eprintln!("{name}: relative L2 error {err:.3e}");
    }
    for (name, err) in errs {
        assert!(err < GRAD_TOL, "{name}: relative L2 error {err:.3e}");
    }
}

/// The faster float32 normalisation for training: gradients within 2e-2. How close depends on the
/// matrix kernels' accumulation: with the AVX2 kernels ~9e-3 upstream of the first transposed
/// convolution and ~4e-6 below it; with the AVX-512 kernels (16 partial sums per register)
/// ~3e-6 everywhere.
#[test]
fn float32_norm_gradients() {
    let (_, errs) = loss_and_gradients(false);
    for (name, err) in &errs {
        eprintln!("{name} (float32 norms): relative L2 error {err:.3e}");
        assert!(*err < 2e-2, "{name}: relative L2 error {err:.3e}");
    }
}

/// A deterministic test picture: smooth gradients plus a texture, values in 0..255.
fn test_picture(w: u32, h: u32) -> Picture {
    let n = (w * h) as usize;
    let mut rgb = vec![0f32; 3 * n];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) as usize;
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let tex = ((x as f32 * 0.7).sin() * (y as f32 * 0.45).cos()) * 30.0;
            rgb[i] = (40.0 + 170.0 * fx + tex).clamp(0.0, 255.0);
            rgb[n + i] = (200.0 - 150.0 * fy + tex).clamp(0.0, 255.0);
            rgb[2 * n + i] = (90.0 + 80.0 * (fx * fy) - tex).clamp(0.0, 255.0);
        }
    }
    Picture::from_planes(w, h, rgb)
}

fn stylizer() -> CycleGan {
    CycleGan::load(
        &shared::path("parity/cyclegan_G_ngf32_6blocks.pth"),
        &device(),
    )
    .unwrap()
}

#[test]
fn stylize_keeps_odd_sizes_and_alpha() {
    let dev = device();
    let net = stylizer();
    for (w, h) in [(77u32, 45u32), (5, 3), (1, 1), (64, 80)] {
        let mut pic = test_picture(w, h);
        pic.alpha = Some((0..w * h).map(|i| (i % 256) as u8).collect());
        let out = net
            .stylize(&pic, &CycleGanOptions::default(), &dev)
            .unwrap();
        assert_eq!((out.width, out.height), (w, h));
        assert_eq!(out.rgb.len(), 3 * (w * h) as usize);
        assert_eq!(out.alpha, pic.alpha, "alpha is carried through");
        assert!(out.rgb.iter().all(|v| (0.0..=255.0).contains(v)));
    }
    // A multiple of 4 goes through unpadded: the output is exactly the generator's, rescaled.
    let r = reference("parity/cyclegan.safetensors");
    let x = r.get("x").unwrap();
    let pic = Picture::from_planes(80, 64, x.data.iter().map(|v| (v + 1.0) * 127.5).collect());
    let out = net
        .stylize(&pic, &CycleGanOptions::default(), &dev)
        .unwrap();
    let want: Vec<f32> = r
        .get("G_x")
        .unwrap()
        .data
        .iter()
        .map(|v| ((v + 1.0) * 127.5).clamp(0.0, 255.0))
        .collect();
    let err = rel_l2(&out.rgb, &want);
    eprintln!("stylize vs reference G(x): relative L2 error {err:.3e}");
    assert!(err < TOL);
}

#[test]
fn stylize_options() {
    let dev = device();
    let net = stylizer();
    let pic = test_picture(90, 70);
    let full = net
        .stylize(&pic, &CycleGanOptions::default(), &dev)
        .unwrap();
    // Strength 0 gives the content back; 0.5 is the pixel blend.
    let none = net
        .stylize(
            &pic,
            &CycleGanOptions {
                strength: 0.0,
                ..Default::default()
            },
            &dev,
        )
        .unwrap();
    assert!(rel_l2(&none.rgb, &pic.rgb) < 1e-6);
    let half = net
        .stylize(
            &pic,
            &CycleGanOptions {
                strength: 0.5,
                ..Default::default()
            },
            &dev,
        )
        .unwrap();
    let blend: Vec<f32> = pic
        .rgb
        .iter()
        .zip(&full.rgb)
        .map(|(a, b)| 0.5 * (a + b))
        .collect();
    assert!(rel_l2(&half.rgb, &blend) < 1e-5);
    // A size limit scales down.
    let small = net
        .stylize(
            &pic,
            &CycleGanOptions {
                max_size: Some(45),
                ..Default::default()
            },
            &dev,
        )
        .unwrap();
    assert_eq!((small.width, small.height), (45, 35));
    // Colour preservation keeps the content's chroma (changes the output).
    let keep = net
        .stylize(
            &pic,
            &CycleGanOptions {
                preserve_color: true,
                ..Default::default()
            },
            &dev,
        )
        .unwrap();
    assert!(rel_l2(&keep.rgb, &full.rgb) > 1e-3);
    // Bad options are errors, not panics.
    for bad in [
        CycleGanOptions {
            strength: 1.5,
            ..Default::default()
        },
        CycleGanOptions {
            tile: Some(16),
            ..Default::default()
        },
        CycleGanOptions {
            max_size: Some(0),
            ..Default::default()
        },
    ] {
        assert!(net.stylize(&pic, &bad, &dev).is_err(), "{bad:?}");
    }
}

/// Relative L2 difference of two planar RGB images of width `w` over the columns `cols`.
fn rel_l2_cols(a: &[f32], b: &[f32], w: usize, cols: std::ops::Range<usize>) -> f64 {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        if cols.contains(&(i % w)) {
            x.push(*p);
            y.push(*q);
        }
    }
    rel_l2(&x, &y)
}

/// Tiled inference replays the whole image's instance-norm statistics, so a tile reproduces the
/// untiled output wherever it has the network's full context (the receptive field is about ±64
/// pixels). 400×100 in tiles of 256 (overlap 64) gives tiles at x = 0 and x = 144: columns
/// below 144 come from the first tile alone, at least 112 pixels from its cut, and columns from
/// 256 on from the second alone, at least 112 pixels from its cut. Only the band between, where
/// the tiles are cross-faded, may differ. (These random weights amplify a change of context far
/// more than trained ones do, so the band's difference is large here.)
#[test]
fn tiled_matches_untiled() {
    let dev = device();
    let net = stylizer();
    let (w, h) = (400u32, 100u32);
    let pic = test_picture(w, h);
    let whole = net
        .stylize(&pic, &CycleGanOptions::default(), &dev)
        .unwrap();
    let tiled = net
        .stylize(
            &pic,
            &CycleGanOptions {
                tile: Some(256),
                ..Default::default()
            },
            &dev,
        )
        .unwrap();
    assert_eq!((tiled.width, tiled.height), (w, h));
    let w = w as usize;
    let left = rel_l2_cols(&tiled.rgb, &whole.rgb, w, 0..140);
    let right = rel_l2_cols(&tiled.rgb, &whole.rgb, w, 260..w);
    let band = rel_l2_cols(&tiled.rgb, &whole.rgb, w, 140..260);
    eprintln!("tiled vs whole: left {left:.2e}, right {right:.2e}, cross-fade band {band:.2e}");
    assert!(
        left < 1e-5 && right < 1e-5,
        "left {left:.3e} right {right:.3e}"
    );

    // The first tile on its own: with the replayed statistics it matches; normalised with its
    // own statistics it does not.
    let n = w * h as usize;
    let mut crop = Vec::new();
    for c in 0..3 {
        for y in 0..h as usize {
            crop.extend_from_slice(&pic.rgb[c * n + y * w..c * n + y * w + 256]);
        }
    }
    let crop_pic = Picture::from_planes(256, h, crop.clone());
    let crop_whole: Vec<f32> = (0..3 * 256 * h as usize)
        .map(|i| {
            let (c, y, x) = (i / (256 * h as usize), (i / 256) % h as usize, i % 256);
            whole.rgb[c * n + y * w + x]
        })
        .collect();
    let stats = net.norm_stats(&pic, STATS_SIZE, &dev);
    let run = |ctx: &mut NormContext| {
        let x = planes_to_tensor(&crop_pic.rgb, 256, h, &dev);
        HostTensor::from_tensor(net.forward_any_size(x, ctx))
            .unwrap()
            .data
    };
    let replayed = run(&mut NormContext::Replay { stats, cursor: 0 });
    let local = run(&mut NormContext::Local);
    let e_replay = rel_l2_cols(&replayed, &crop_whole, 256, 0..180);
    let e_local = rel_l2_cols(&local, &crop_whole, 256, 0..180);
    eprintln!("tile interior: replayed statistics {e_replay:.2e}, own statistics {e_local:.2e}");
    assert!(e_replay < 1e-5);
    assert!(e_local > 100.0 * e_replay.max(1e-7));
}
