//! The pytorch/examples DCGAN reproduces the PyTorch reference: eval-mode and train-mode outputs,
//! the BCE loss and parameter gradients (`MANIFEST.json`, set `dcgan`), and batch norm's running
//! statistics follow PyTorch's update rule.


use burn::tensor::activation::{leaky_relu, relu, sigmoid};
use burn::tensor::{Tensor, TensorData};
use crate::common::{assert_close, device, reference, rel_l2};
use styleforge_core::networks::layers::{Conv, ConvTranspose, Padding};
use styleforge_core::networks::dcgan::{
    BatchNorm2d, BnMode, DcganDiscriminator, DcganGenerator, DcganNetwork, DiscriminatorConfig, GeneratorConfig,
    bce,
};
use styleforge_core::shared;
use styleforge_core::weights::{HostTensor, Weights};

const TOL: f64 = 1e-4;

/// Bound for the network's raw parameter gradients against the reference (measured 3.8e-4 and
/// 4.9e-4). The loss is not differentiable at the reference point to float32 precision: one
/// discriminator LeakyReLU input (second layer, flat index 47627) is 3.9e-8 of its layer's RMS,
/// below float32's rounding, and PyTorch evaluated it as negative (slope 0.2) where styleforge,
/// in float32 and float64 alike, finds it positive (slope 1). That single unit accounts for the
/// whole difference: [`KINK_TOL`] is met once it takes PyTorch's side.
const GRAD_TOL: f64 = 1e-3;

/// Bound with the kink unit on PyTorch's side (measured ~1e-6).
const KINK_TOL: f64 = 1e-5;

/// The discriminator's pre-activation that sits on a kink of the loss (layer, flat index).
const KINK: (usize, usize) = (1, 47627);

fn weights_g() -> Weights {
    Weights::load(&shared::path("parity/dcgan_netG_ngf32.pth")).unwrap()
}

fn weights_d() -> Weights {
    Weights::load(&shared::path("parity/dcgan_netD_ndf32.pth")).unwrap()
}

#[test]
fn shapes_are_read_from_the_weights() {
    let (g, d) = (weights_g(), weights_d());
    assert_eq!(
        GeneratorConfig::from_weights(&g).unwrap(),
        GeneratorConfig {
            nz: 100,
            ngf: 32,
            nc: 3
        }
    );
    assert_eq!(
        DiscriminatorConfig::from_weights(&d).unwrap(),
        DiscriminatorConfig { ndf: 32, nc: 3 }
    );
    // Loading and exporting gives back the file, running statistics included.
    let dev = device();
    let back = DcganGenerator::load(&g, &dev)
        .unwrap()
        .to_weights()
        .unwrap();
    assert_eq!(back.tensors, g.tensors);
    let back = DcganDiscriminator::load(&d, &dev)
        .unwrap()
        .to_weights()
        .unwrap();
    assert_eq!(back.tensors, d.tensors);
    // The wrong file, or a missing tensor, is an error naming the problem.
    assert!(DcganGenerator::load(&d, &dev).is_err());
    assert!(DcganDiscriminator::load(&g, &dev).is_err());
    let mut broken = g.clone();
    broken.tensors.remove("main.4.running_var");
    let err = DcganGenerator::load(&broken, &dev).unwrap_err().to_string();
    assert!(err.contains("main.4.running_var"), "{err}");
}

#[test]
fn eval_mode_outputs() {
    let dev = device();
    let g = DcganGenerator::load(&weights_g(), &dev).unwrap();
    let d = DcganDiscriminator::load(&weights_d(), &dev).unwrap();
    let r = reference("parity/dcgan.safetensors");
    let z = r.get("z").unwrap().to_tensor::<4>(&dev).unwrap();
    let before = g.running_stats();
    let gz = g.forward(z, BnMode::Eval);
    assert_close("G_eval", gz.clone(), r.get("G_eval").unwrap(), TOL);
    let g_ref = r.get("G_eval").unwrap().to_tensor::<4>(&dev).unwrap();
    assert_close(
        "D_eval on the reference G_eval",
        d.forward(g_ref, BnMode::Eval),
        r.get("D_eval").unwrap(),
        TOL,
    );
    assert_close(
        "D_eval chained",
        d.forward(gz, BnMode::Eval),
        r.get("D_eval").unwrap(),
        TOL,
    );
    assert_eq!(g.running_stats(), before, "eval mode leaves the statistics");
}

/// Train mode on the autodiff device: outputs with batch statistics, the BCE loss against
/// "real", and the generator's kernel gradients. Train-mode batch norm runs in float64 on an
/// autodiff device (per-channel gradient sums over N×H×W), so float32 adds ~1e-6 here.
#[test]
fn train_mode_loss_and_gradients() {
    let ad = device().autodiff();
    let g = DcganGenerator::load(&weights_g(), &ad).unwrap();
    let d = DcganDiscriminator::load(&weights_d(), &ad).unwrap();
    let r = reference("parity/dcgan.safetensors");
    let z = r.get("z").unwrap().to_tensor::<4>(&ad).unwrap();
    let gz = g.forward(z, BnMode::Train);
    assert_close("G_train", gz.clone(), r.get("G_train").unwrap(), TOL);
    let p = d.forward(gz, BnMode::Train);
    assert_close("D_train", p.clone(), r.get("D_train").unwrap(), TOL);
    let loss = bce(p, 1.0);
    assert_close("bce_loss", loss.clone(), r.get("bce_loss").unwrap(), TOL);
    let grads = loss.backward();
    let gg = g.gradients(&grads).unwrap();
    assert_eq!(
        gg.tensors.len(),
        5 + 4 * 2,
        "every generator parameter has a gradient"
    );
    assert_eq!(d.gradients(&grads).unwrap().tensors.len(), 5 + 3 * 2);

    // The same computation layer by layer from the public building blocks, once as is and once
    // with the kink unit given PyTorch's slope.
    let (plain, kink) = (layerwise(false), layerwise(true));
    let mut errs = Vec::new();
    for name in ["main.0.weight", "main.12.weight"] {
        let want = &r.get(&format!("grad_G.{name}")).unwrap().data;
        let got = gg.get(name).unwrap();
        assert_eq!(got.shape, r.get(&format!("grad_G.{name}")).unwrap().shape);
        let raw = rel_l2(&got.data, want);
        let same = rel_l2(&got.data, &plain.get(name).unwrap().data);
        let resolved = rel_l2(&kink.get(name).unwrap().data, want);
        eprintln!(
            "grad_G.{name}: relative L2 error {raw:.3e}; with the kink unit on PyTorch's side \
             {resolved:.3e} (network vs layer-by-layer {same:.1e})"
        );
        errs.push((name, raw, same, resolved));
    }
    for (name, raw, same, resolved) in errs {
        assert!(raw < GRAD_TOL, "grad_G.{name}: relative L2 error {raw:.3e}");
        assert!(
            same < 1e-6,
            "grad_G.{name}: network vs layer by layer {same:.3e}"
        );
        assert!(
            resolved < KINK_TOL,
            "grad_G.{name}: error with the kink resolved {resolved:.3e}"
        );
    }
}

/// The generator's kernel gradients of `BCE(D(G(z)), 1)` computed layer by layer; with `flip`,
/// the discriminator's LeakyReLU at [`KINK`] uses slope 0.2 whatever its input's sign (after
/// checking that the input is within float32 rounding of zero).
fn layerwise(flip: bool) -> Weights {
    let ad = device().autodiff();
    let (gw, dw) = (weights_g(), weights_d());
    let r = reference("parity/dcgan.safetensors");
    let mut h = r.get("z").unwrap().to_tensor::<4>(&ad).unwrap();
    let gc = [100, 256, 128, 64, 32, 3];
    let mut kernels = Vec::new();
    for i in 0..5 {
        let (s, p) = if i == 0 { (1, 0) } else { (2, 1) };
        let conv = ConvTranspose::load(
            &gw,
            &format!("main.{}.", 3 * i),
            [gc[i], gc[i + 1], 4, 4],
            false,
            (s, p, 0),
            &ad,
        )
        .unwrap();
        h = conv.forward(h);
        kernels.push((format!("main.{}.weight", 3 * i), conv));
        if i < 4 {
            let bn =
                BatchNorm2d::load(&gw, &format!("main.{}.", 3 * i + 1), gc[i + 1], &ad).unwrap();
            h = relu(bn.forward(h, BnMode::Train));
        }
    }
    h = h.tanh();
    let dc = [3, 32, 64, 128, 256, 1];
    for i in 0..5 {
        let idx = if i == 0 { 0 } else { 3 * i - 1 };
        let (s, p) = if i == 4 { (1, 0) } else { (2, 1) };
        let conv = Conv::load(
            &dw,
            &format!("main.{idx}."),
            [dc[i + 1], dc[i], 4, 4],
            false,
            s,
            Padding::Explicit(p),
            &ad,
        )
        .unwrap();
        h = conv.forward(h);
        if i == 4 {
            break;
        }
        if i > 0 {
            let bn = BatchNorm2d::load(&dw, &format!("main.{}.", idx + 1), dc[i + 1], &ad).unwrap();
            h = bn.forward(h, BnMode::Train);
        }
        let mut y = leaky_relu(h.clone(), 0.2);
        if flip && i == KINK.0 {
            let v = HostTensor::from_tensor(h.clone().without_autodiff()).unwrap();
            let rms = (v.data.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()
                / v.data.len() as f64)
                .sqrt();
            let at = v.data[KINK.1] as f64;
            assert!(
                at > 0.0 && at.abs() < 1e-6 * rms,
                "the kink unit is at {:.2e} of its layer's RMS",
                at / rms
            );
            let mut mask = vec![0f32; v.data.len()];
            mask[KINK.1] = -0.8;
            let mask = Tensor::<4>::from_data(TensorData::new(mask, h.dims()), &device());
            y = y + h.clone() * mask;
        }
        h = y;
    }
    let loss = bce(sigmoid(h), 1.0);
    let grads = loss.backward();
    let mut out = Weights::default();
    for (name, conv) in kernels {
        let g = conv.weight.val().grad(&grads).unwrap();
        out.tensors
            .insert(name, HostTensor::from_tensor(g).unwrap());
    }
    out
}

/// PyTorch's update: `running = 0.9 running + 0.1 batch`, with the batch's unbiased variance,
/// and `num_batches_tracked` counts the batches.
#[test]
fn running_statistics_follow_pytorch() {
    let dev = device();
    let mut w = Weights::default();
    let c = 2;
    for (k, v) in [
        ("weight", vec![1.5, 0.5]),
        ("bias", vec![0.25, -1.0]),
        ("running_mean", vec![0.5, -0.5]),
        ("running_var", vec![2.0, 0.5]),
    ] {
        w.tensors
            .insert(format!("bn.{k}"), HostTensor::new(vec![c], v));
    }
    w.tensors.insert(
        "bn.num_batches_tracked".into(),
        HostTensor::new(vec![], vec![7.0]),
    );
    let bn = BatchNorm2d::load(&w, "bn.", c, &dev).unwrap();
    // N=2, C=2, 1x3.
    let x: Vec<f32> = vec![1.0, 2.0, 6.0, -1.0, 0.0, 4.0, 3.0, 5.0, 7.0, 2.0, 2.0, -3.0];
    let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [2, c, 1, 3]), &dev);
    let y = HostTensor::from_tensor(bn.forward(t.clone(), BnMode::Train)).unwrap();
    let chan = |ch: usize| -> Vec<f64> {
        (0..2)
            .flat_map(|n| (0..3).map(move |i| (n, i)))
            .map(|(n, i)| x[n * 6 + ch * 3 + i] as f64)
            .collect()
    };
    let s = bn.running();
    assert_eq!(s.batches, 8);
    for ch in 0..c {
        let v = chan(ch);
        let m = v.iter().sum::<f64>() / 6.0;
        let var_b = v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 6.0;
        let var_u = var_b * 6.0 / 5.0;
        let (rm0, rv0) = ([0.5, -0.5][ch], [2.0, 0.5][ch]);
        assert!((s.mean[ch] as f64 - (0.9 * rm0 + 0.1 * m)).abs() < 1e-6);
        assert!((s.var[ch] as f64 - (0.9 * rv0 + 0.1 * var_u)).abs() < 1e-6);
        // Normalised with the biased variance.
        let (gm, bt) = ([1.5, 0.5][ch], [0.25, -1.0][ch]);
        for n in 0..2 {
            for i in 0..3 {
                let want = (x[n * 6 + ch * 3 + i] as f64 - m) / (var_b + 1e-5).sqrt() * gm + bt;
                let got = y.data[n * 6 + ch * 3 + i] as f64;
                assert!((got - want).abs() < 1e-5, "train output {got} vs {want}");
            }
        }
    }
    // Eval mode uses (and keeps) the updated statistics.
    let y = HostTensor::from_tensor(bn.forward(t, BnMode::Eval)).unwrap();
    assert_eq!(bn.running(), s);
    let want = (x[0] as f64 - s.mean[0] as f64) / (s.var[0] as f64 + 1e-5).sqrt() * 1.5 + 0.25;
    assert!((y.data[0] as f64 - want).abs() < 1e-5);
    // Clones share the statistics (an optimiser step rebuilds the module and keeps them).
    let copy = bn.clone();
    let t = Tensor::<4>::from_data(TensorData::new(x, [2, c, 1, 3]), &dev);
    let _ = copy.forward(t, BnMode::Train);
    assert_eq!(bn.running().batches, 9);
}
