//! AdaIN (naoto0804/pytorch-AdaIN) reproduces the PyTorch reference to float precision: encoder
//! features at relu4_1, the AdaIN transform, the decoder at alpha = 0.7 and a two-style mix.


use burn::tensor::Tensor;
use crate::common::{assert_close, device, reference, rel_l2};
use styleforge_core::methods::adain::{AdainModel, AdainOptions, Style, StyleStats, adain};
use styleforge_core::image_io::Picture;
use styleforge_core::shared;
use styleforge_core::weights::{HostTensor, Weights};

const TOL: f64 = 1e-4;

fn model() -> AdainModel {
    AdainModel::load(
        &shared::path("parity/adain_vgg_normalised_relu4_1.pth"),
        &shared::path("parity/adain_decoder.pth"),
        &device(),
    )
    .unwrap()
}

fn input(r: &Weights, name: &str) -> Tensor<4> {
    r.get(name).unwrap().to_tensor::<4>(&device()).unwrap()
}

/// A `[1, 3, h, w]` tensor in 0..1 as a picture in 0..255.
fn picture(t: &HostTensor) -> Picture {
    let (h, w) = (t.shape[2] as u32, t.shape[3] as u32);
    Picture::from_planes(w, h, t.data.iter().map(|v| v * 255.0).collect())
}

fn style_stats(m: &AdainModel, r: &Weights, name: &str) -> StyleStats {
    StyleStats::from_features(m.encoder.forward(input(r, name))).unwrap()
}

#[test]
fn encoder_features_at_relu4_1() {
    let m = model();
    let r = reference("parity/adain.safetensors");
    let f = m.encoder.forward(input(&r, "content"));
    assert_close("content_relu4_1", f, r.get("content_relu4_1").unwrap(), TOL);
}

#[test]
fn adain_transform() {
    let m = model();
    let r = reference("parity/adain.safetensors");
    let c = m.encoder.forward(input(&r, "content"));
    let t = adain(c, &style_stats(&m, &r, "style1")).unwrap();
    assert_close("adain_t_style1", t, r.get("adain_t_style1").unwrap(), TOL);
}

#[test]
fn decoder_at_alpha_0_7() {
    let m = model();
    let r = reference("parity/adain.safetensors");
    let c = m.encoder.forward(input(&r, "content"));
    let t = adain(c.clone(), &style_stats(&m, &r, "style1")).unwrap();
    let y = m.decoder.forward(t * 0.7 + c * 0.3);
    assert_close(
        "out_alpha0.7_style1",
        y,
        r.get("out_alpha0.7_style1").unwrap(),
        TOL,
    );
}

#[test]
fn two_style_mix_0_25_0_75() {
    let m = model();
    let r = reference("parity/adain.safetensors");
    let c = m.encoder.forward(input(&r, "content"));
    let s1 = style_stats(&m, &r, "style1");
    let s2 = style_stats(&m, &r, "style2");
    // As the reference does it: the AdaIN targets interpolated.
    let t = adain(c.clone(), &s1).unwrap() * 0.25 + adain(c.clone(), &s2).unwrap() * 0.75;
    let want = r.get("out_mix_0.25_0.75").unwrap();
    assert_close("out_mix (targets mixed)", m.decoder.forward(t), want, TOL);
    // As styleforge does it: one AdaIN with the mixed statistics.
    let mixed = StyleStats::mix(&[(s1, 1.0), (s2, 3.0)]).unwrap();
    let t = adain(c, &mixed).unwrap();
    assert_close(
        "out_mix (statistics mixed)",
        m.decoder.forward(t),
        want,
        TOL,
    );
}

/// The clamped 0..255 planes a picture-level call should give for a reference output.
fn as_planes(t: &HostTensor) -> Vec<f32> {
    t.data
        .iter()
        .map(|v| (v * 255.0).clamp(0.0, 255.0))
        .collect()
}

#[test]
fn stylize_end_to_end_matches_reference() {
    let m = model();
    let r = reference("parity/adain.safetensors");
    let dev = device();
    let content = picture(r.get("content").unwrap());
    let style1 = picture(r.get("style1").unwrap());
    let style2 = picture(r.get("style2").unwrap());

    let opts = AdainOptions {
        alpha: 0.7,
        ..AdainOptions::default()
    };
    let out = m
        .stylize(
            &content,
            &[(Style::Picture(style1.clone()), 1.0)],
            &opts,
            &dev,
        )
        .unwrap();
    assert_eq!((out.width, out.height), (128, 96));
    let err = rel_l2(&out.rgb, &as_planes(r.get("out_alpha0.7_style1").unwrap()));
    eprintln!("stylize alpha 0.7: relative L2 error {err:.3e}");
    assert!(err < TOL, "stylize alpha 0.7: {err:.3e}");

    let opts = AdainOptions::default();
    let styles = [(Style::Picture(style1), 0.5), (Style::Picture(style2), 1.5)];
    let out = m.stylize(&content, &styles, &opts, &dev).unwrap();
    let err = rel_l2(&out.rgb, &as_planes(r.get("out_mix_0.25_0.75").unwrap()));
    eprintln!("stylize mix 0.25/0.75: relative L2 error {err:.3e}");
    assert!(err < TOL, "stylize mix: {err:.3e}");
}

#[test]
fn loader_rejects_swapped_files() {
    let dev = device();
    let err = AdainModel::load(
        &shared::path("parity/adain_decoder.pth"),
        &shared::path("parity/adain_vgg_normalised_relu4_1.pth"),
        &dev,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("decoder"), "{err}");
}
