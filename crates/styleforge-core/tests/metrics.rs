//! The evaluation metrics: SSIM against scikit-image (the reference implementation), the VGG
//! content and Gram style losses against the PyTorch reference vectors of the Gatys parity file,
//! and the mean/std style loss on cases with known answers.


use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{device, python, reference};
use styleforge_core::image_io::{self, Picture};
use styleforge_core::methods::gatys::{LossConfig, Targets};
use styleforge_core::metrics::{self, VggReference};
use styleforge_core::networks::vgg::Vgg;
use styleforge_core::shared;


/// Writes a picture as a float32 H × W × 3 `.npy` file.
fn write_npy(path: &Path, p: &Picture) {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}, 3), }}", p.height, p.width);
    let mut header = header.into_bytes();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    let n = (p.width * p.height) as usize;
    for i in 0..n {
        for c in 0..3 {
            out.extend_from_slice(&p.rgb[c * n + i].to_le_bytes());
        }
    }
    std::fs::write(path, out).unwrap();
}

fn photo(name: &str) -> Picture {
    image_io::read(&shared::path(&format!("data/content/small/{name}")), image_io::DEFAULT_MAX_PIXELS).unwrap()
}

#[test]
fn ssim_matches_scikit_image() {
    let a = photo("town_houses_kodim08_256.jpg");
    let (w, h) = (a.width, a.height);
    let mut noisy = a.clone();
    let mut s = 7u32;
    for v in noisy.rgb.iter_mut() {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        *v = (*v + ((s >> 24) as f32 - 128.0) * 0.3).clamp(0.0, 255.0);
    }
    let other = photo("parrots_kodim23_256.jpg").resize(w, h);
    let blurred = a.resize(w / 4, h / 4).resize(w, h);
    let odd = (photo("cat_chelsea_256.jpg").resize(67, 45), photo("parrots_kodim23_256.jpg").resize(67, 45));
    let pairs = [(a.clone(), noisy), (a.clone(), other), (a.clone(), blurred), odd];
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (i, (x, y)) in pairs.iter().enumerate() {
        for (tag, p) in [("a", x), ("b", y)] {
            let f = dir.path().join(format!("{i}{tag}.npy"));
            write_npy(&f, p);
            args.push(f);
        }
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssim_reference.py");
    let out = Command::new(python()).arg(script).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(3), "{stderr}scikit-image is not installed: run scripts/install-test-tools.sh");
    assert!(out.status.success(), "{stderr}");
    let want: Vec<f64> = String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(want.len(), pairs.len());
    for ((x, y), want) in pairs.iter().zip(want) {
        let got = metrics::ssim(x, y).unwrap();
        eprintln!("{}×{}: styleforge {got:.8} scikit-image {want:.8}", x.width, x.height);
        assert!((got - want).abs() < 1e-4, "SSIM {got} vs scikit-image {want}");
    }
}

fn load_vgg() -> Vgg {
    Vgg::load(&shared::path("parity/vgg19_features_f16.pth"), &device()).unwrap()
}

#[test]
fn vgg_losses_match_the_gatys_reference() {
    let dev = device();
    let vgg = load_vgg();
    let r = reference("parity/vgg19_gatys.safetensors");
    let [content, style, x] = ["content", "style", "x"].map(|k| r.get(k).unwrap().to_tensor::<4>(&dev).unwrap());
    let scalar = |k: &str| r.get(k).unwrap().data[0] as f64;
    // The reference's content loss is at relu4_2 (Gatys); its style loss is the Gram loss.
    let content_42 = metrics::content_loss(&vgg, x.clone(), content.clone(), "relu4_2").unwrap();
    let c_ref = VggReference::content(&vgg, content.clone()).unwrap();
    let s_ref = VggReference::style(&vgg, style.clone()).unwrap();
    let losses = metrics::vgg_losses(&vgg, x.clone(), &c_ref, Some(&s_ref)).unwrap();
    for (what, got, want) in [("content (relu4_2)", content_42, scalar("content_loss")), ("style (Gram)", losses.style_gram.unwrap(), scalar("style_loss"))] {
        let err = ((got - want) / want).abs();
        eprintln!("{what}: {got:.6e} vs reference {want:.6e}, relative error {err:.2e}");
        assert!(err < 1e-4, "{what}: {got} vs {want}");
    }
    // The relu4_1 content loss is what the Gatys targets compute with that layer.
    let cfg = LossConfig { content_layers: vec![("relu4_1".into(), 1.0)], style_layers: vec![], ..LossConfig::default() };
    let t = Targets::new(&vgg, &cfg, content.clone(), &[]).unwrap();
    let want = t.evaluate(&vgg, x.clone()).content.into_data().iter::<f32>().next().unwrap() as f64;
    assert!(((losses.content - want) / want).abs() < 1e-5, "{} vs {want}", losses.content);
    // An output identical to the content and the style has no loss at all.
    let same = metrics::vgg_losses(&vgg, style.clone(), &VggReference::content(&vgg, style.clone()).unwrap(), Some(&s_ref)).unwrap();
    assert!(same.content.abs() < 1e-12 && same.style_gram.unwrap().abs() < 1e-12 && same.style_mean_std.unwrap().abs() < 1e-12, "{same:?}");
    // Without a style, no style losses.
    assert_eq!(metrics::vgg_losses(&vgg, x, &c_ref, None).unwrap().style_gram, None);
}

#[test]
fn mean_std_style_loss_ignores_layout_and_sees_statistics() {
    let dev = device();
    let vgg = load_vgg();
    let p = photo("parrots_kodim23_256.jpg").resize(96, 64);
    // The same picture flipped left to right has the same channel statistics at every layer
    // (up to the borders' effect on convolutions): a loss far below that of another picture.
    let mut flipped = p.clone();
    let (w, h) = (p.width as usize, p.height as usize);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                flipped.rgb[c * w * h + y * w + x] = p.rgb[c * w * h + y * w + (w - 1 - x)];
            }
        }
    }
    let other = photo("town_houses_kodim08_256.jpg").resize(96, 64);
    let style = VggReference::style(&vgg, metrics::unit_tensor(&p, &dev)).unwrap();
    let content = VggReference::content(&vgg, metrics::unit_tensor(&other, &dev)).unwrap();
    let near = metrics::vgg_losses(&vgg, metrics::unit_tensor(&flipped, &dev), &content, Some(&style)).unwrap();
    let far = metrics::vgg_losses(&vgg, metrics::unit_tensor(&other, &dev), &content, Some(&style)).unwrap();
    eprintln!("mean/std loss: flipped {:.3e}, another photo {:.3e}", near.style_mean_std.unwrap(), far.style_mean_std.unwrap());
    assert!(near.style_mean_std.unwrap() * 10.0 < far.style_mean_std.unwrap());
    assert!(near.style_gram.unwrap() * 10.0 < far.style_gram.unwrap());
    assert!(far.content.abs() < 1e-12, "the other photo is the content");
}
