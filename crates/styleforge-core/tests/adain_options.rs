//! AdaIN options on the parity weights: strength, style mixing, spatial masks, colour
//! preservation, cached statistics, tiling, and parameter checking.


use std::sync::OnceLock;

use burn::tensor::Tensor;
use crate::common::{device, rel_l2};
use styleforge_core::methods::adain::{
    AdainModel, AdainOptions, Mask, PreserveColor, Style, StyleStats, adain, coral,
};
use styleforge_core::color::rgb_to_ycbcr;
use styleforge_core::image_io::Picture;
use styleforge_core::shared;
use styleforge_core::tiling::{planes_to_tensor, tensor_to_planes};

fn model() -> &'static AdainModel {
    static M: OnceLock<AdainModel> = OnceLock::new();
    M.get_or_init(|| {
        AdainModel::load(
            &shared::path("parity/adain_vgg_normalised_relu4_1.pth"),
            &shared::path("parity/adain_decoder.pth"),
            &device(),
        )
        .unwrap()
    })
}

/// A deterministic test image: smooth colour waves plus hashed noise, 0..255.
fn image(w: u32, h: u32, seed: u32) -> Picture {
    let n = (w * h) as usize;
    let mut rgb = vec![0f32; 3 * n];
    let f = seed as f32 * 0.37 + 1.0;
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) as usize;
                let wave = ((x as f32 * 0.11 * f + c as f32 * 1.7).sin()
                    + (y as f32 * 0.07 * (c as f32 + f)).cos())
                    * 0.25
                    + 0.5;
                let mut k = (i as u32 * 3 + c as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(97));
                k ^= k >> 15;
                let noise = (k % 1000) as f32 / 1000.0 - 0.5;
                rgb[c * n + i] = ((wave + 0.3 * noise) * 255.0).clamp(0.0, 255.0);
            }
        }
    }
    Picture::from_planes(w, h, rgb)
}

fn stylize(content: &Picture, styles: &[(Style, f32)], opts: &AdainOptions) -> Picture {
    model().stylize(content, styles, opts, &device()).unwrap()
}

fn opts(alpha: f32) -> AdainOptions {
    AdainOptions {
        alpha,
        ..AdainOptions::default()
    }
}

fn pic_style(p: &Picture) -> Style {
    Style::Picture(p.clone())
}

/// decoder(features) as clamped 0..255 planes cropped to the content size.
fn decode_planes(features: Tensor<4>, w: u32, h: u32) -> Vec<f32> {
    let y = model().decoder.forward(features);
    let y = y.slice([0..1, 0..3, 0..h as usize, 0..w as usize]);
    tensor_to_planes(y)
        .unwrap()
        .into_iter()
        .map(|v| (v * 255.0).clamp(0.0, 255.0))
        .collect()
}

fn encode(p: &Picture) -> Tensor<4> {
    model()
        .encoder
        .forward(planes_to_tensor(&p.rgb, p.width, p.height, &device()).div_scalar(255.0))
}

/// The single-style result built from the network parts.
fn single_style(content: &Picture, style: &Picture) -> Vec<f32> {
    let s = StyleStats::from_features(encode(style)).unwrap();
    let t = adain(encode(content), &s).unwrap();
    decode_planes(t, content.width, content.height)
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let err = rel_l2(got, want);
    eprintln!("{what}: relative L2 error {err:.3e}");
    assert!(err < tol, "{what}: relative L2 error {err:.3e} >= {tol:e}");
}

fn far(what: &str, a: &[f32], b: &[f32], min: f64) {
    let d = rel_l2(a, b);
    eprintln!("{what}: relative L2 difference {d:.3e}");
    assert!(
        d > min,
        "{what}: results should differ, relative L2 {d:.3e} <= {min:e}"
    );
}

/// Comparisons on an output that is all clipped would prove nothing.
fn informative(what: &str, rgb: &[f32]) {
    let inside = rgb.iter().filter(|v| **v > 0.5 && **v < 254.5).count();
    let frac = inside as f64 / rgb.len() as f64;
    assert!(
        frac > 0.1,
        "{what}: only {:.1}% of samples are unclipped",
        frac * 100.0
    );
}

/// Columns `x0..x1` of planar RGB.
fn columns(p: &[f32], w: u32, h: u32, x0: u32, x1: u32) -> Vec<f32> {
    let n = (w * h) as usize;
    let mut out = Vec::new();
    for c in 0..3 {
        for y in 0..h {
            let row = c * n + (y * w) as usize;
            out.extend_from_slice(&p[row + x0 as usize..row + x1 as usize]);
        }
    }
    out
}

#[test]
fn alpha_zero_reproduces_decoder_of_encoder() {
    let content = image(128, 64, 1);
    let style = image(96, 80, 2);
    let out = stylize(&content, &[(pic_style(&style), 1.0)], &opts(0.0));
    let want = decode_planes(encode(&content), 128, 64);
    informative("alpha 0", &want);
    close(
        "alpha 0 vs decoder(encoder(content))",
        &out.rgb,
        &want,
        1e-5,
    );
    let full = stylize(&content, &[(pic_style(&style), 1.0)], &opts(1.0));
    far("alpha 0 vs alpha 1", &out.rgb, &full.rgb, 0.05);
}

#[test]
fn odd_sizes_keep_the_content_size() {
    let content = image(77, 45, 11);
    let style = image(50, 61, 12);
    let out = stylize(&content, &[(pic_style(&style), 1.0)], &opts(1.0));
    assert_eq!((out.width, out.height), (77, 45));
    assert_eq!(out.rgb.len(), 3 * 77 * 45);
    close(
        "odd size vs network parts",
        &out.rgb,
        &single_style(&content, &style),
        1e-5,
    );
}

#[test]
fn style_weights_are_normalised_and_stats_equal_pictures() {
    let content = image(96, 64, 3);
    let style = image(80, 80, 4);
    let single = single_style(&content, &style);
    informative("single style", &single);

    let one = stylize(&content, &[(pic_style(&style), 1.0)], &opts(1.0));
    close("weights [1.0]", &one.rgb, &single, 1e-5);

    let twice = stylize(
        &content,
        &[(pic_style(&style), 0.3), (pic_style(&style), 0.3)],
        &opts(1.0),
    );
    close(
        "weights [w, w] of the same style",
        &twice.rgb,
        &single,
        1e-5,
    );

    let stats = model().style_stats(&style, None, &device()).unwrap();
    let cached = stylize(&content, &[(Style::Stats(stats), 5.0)], &opts(1.0));
    close("cached statistics", &cached.rgb, &single, 1e-5);

    let other = image(64, 96, 5);
    let zero = stylize(
        &content,
        &[(pic_style(&style), 2.0), (pic_style(&other), 0.0)],
        &opts(1.0),
    );
    close(
        "a zero-weight style has no effect",
        &zero.rgb,
        &single,
        1e-5,
    );
    far(
        "two different styles",
        &single,
        &single_style(&content, &other),
        0.05,
    );
}

#[test]
fn style_stats_round_trip_through_files() {
    let style = image(80, 72, 6);
    let stats = model().style_stats(&style, None, &device()).unwrap();
    assert_eq!(stats.channels(), 512);
    assert!(stats.std.iter().all(|s| *s > 0.0));

    let st = StyleStats::from_safetensors_bytes(&stats.to_safetensors_bytes().unwrap()).unwrap();
    assert_eq!(st, stats);
    let js = StyleStats::from_json(&stats.to_json().unwrap()).unwrap();
    assert_eq!(js, stats);

    let dir = tempfile::tempdir().unwrap();
    for name in ["preset.safetensors", "preset.json"] {
        let p = dir.path().join(name);
        stats.save(&p).unwrap();
        assert_eq!(StyleStats::load(&p).unwrap(), stats, "{name}");
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"mean": [1.0], "std": [1.0]}"#).unwrap();
    assert!(StyleStats::load(&bad).is_err());

    // The style size limit applies before the statistics are measured.
    let big = image(200, 160, 6);
    let limited = model().style_stats(&big, Some(100), &device()).unwrap();
    let direct = model()
        .style_stats(&big.fit_within(100), None, &device())
        .unwrap();
    assert_eq!(limited, direct);
}

#[test]
fn hard_mask_selects_a_style_on_each_side() {
    let (w, h) = (160, 64);
    let content = image(w, h, 7);
    let a = image(80, 80, 8);
    let b = image(72, 96, 9);
    let values: Vec<f32> = (0..w * h)
        .map(|i| if i % w < w / 2 { 1.0 } else { 0.0 })
        .collect();
    let mask = Mask {
        width: w,
        height: h,
        values: values.clone(),
        background: vec![(pic_style(&b), 1.0)],
    };
    let out = stylize(
        &content,
        &[(pic_style(&a), 1.0)],
        &AdainOptions {
            mask: Some(mask),
            ..opts(1.0)
        },
    );
    let only_a = single_style(&content, &a);
    let only_b = single_style(&content, &b);
    // The decoder's reach is about 30 pixels; compare 40 pixels away from the boundary at 80.
    let (left, right) = ((0, 40), (120, w));
    let part = |p: &[f32], r: (u32, u32)| columns(p, w, h, r.0, r.1);
    informative("left of style a", &part(&only_a, left));
    close(
        "masked left vs style a",
        &part(&out.rgb, left),
        &part(&only_a, left),
        1e-5,
    );
    close(
        "masked right vs style b",
        &part(&out.rgb, right),
        &part(&only_b, right),
        1e-5,
    );
    far(
        "masked left vs style b",
        &part(&out.rgb, left),
        &part(&only_b, left),
        0.05,
    );
    far(
        "masked right vs style a",
        &part(&out.rgb, right),
        &part(&only_a, right),
        0.05,
    );

    // No background styles: the background keeps the content features (as alpha = 0 does).
    let mask = Mask {
        width: w,
        height: h,
        values,
        background: Vec::new(),
    };
    let out = stylize(
        &content,
        &[(pic_style(&a), 1.0)],
        &AdainOptions {
            mask: Some(mask),
            ..opts(1.0)
        },
    );
    let plain = stylize(&content, &[(pic_style(&a), 1.0)], &opts(0.0));
    close(
        "unstyled background vs alpha 0",
        &part(&out.rgb, right),
        &part(&plain.rgb, right),
        1e-5,
    );
    close(
        "styled foreground vs style a",
        &part(&out.rgb, left),
        &part(&only_a, left),
        1e-5,
    );
}

#[test]
fn uniform_soft_mask_blends_features_like_alpha() {
    let content = image(96, 64, 10);
    let style = image(64, 64, 11);
    let mask = Mask {
        width: 96,
        height: 64,
        values: vec![0.4; 96 * 64],
        background: Vec::new(),
    };
    let masked = stylize(
        &content,
        &[(pic_style(&style), 1.0)],
        &AdainOptions {
            mask: Some(mask),
            ..opts(1.0)
        },
    );
    let alpha = stylize(&content, &[(pic_style(&style), 1.0)], &opts(0.4));
    informative("alpha 0.4", &alpha.rgb);
    close("mask 0.4 vs alpha 0.4", &masked.rgb, &alpha.rgb, 1e-5);
}

/// A grey-ish picture with a gentle, varying colour cast (chroma within about ±10 of neutral).
fn pastel(w: u32, h: u32, seed: u32) -> Picture {
    let base = image(w, h, seed);
    let n = base.pixels();
    let mut rgb = vec![0f32; 3 * n];
    for i in 0..n {
        let g = (base.rgb[i] + base.rgb[n + i] + base.rgb[2 * n + i]) / 3.0;
        let x = (i as u32 % w) as f32 / w as f32;
        let cast = [
            12.0 * x - 6.0,
            4.0 - 8.0 * x,
            9.0 * (1.0 - 2.0 * x).abs() - 4.0,
        ];
        for c in 0..3 {
            rgb[c * n + i] = 0.5 * g + 60.0 + cast[c];
        }
    }
    Picture::from_planes(w, h, rgb)
}

/// Mean absolute chroma (Cb, Cr) difference, over the pixels the output did not clip when
/// `unclipped` is set, else over all.
fn chroma_gap(content: &Picture, out: &Picture, unclipped: bool) -> (f64, usize) {
    let n = content.pixels();
    let (mut sum, mut count) = (0f64, 0usize);
    for i in 0..n {
        let o = [out.rgb[i], out.rgb[n + i], out.rgb[2 * n + i]];
        if unclipped && o.iter().any(|v| *v < 1.0 || *v > 254.0) {
            continue;
        }
        let c = [content.rgb[i], content.rgb[n + i], content.rgb[2 * n + i]];
        let (_, ocb, ocr) = rgb_to_ycbcr(o[0], o[1], o[2]);
        let (_, ccb, ccr) = rgb_to_ycbcr(c[0], c[1], c[2]);
        sum += ((ocb - ccb).abs() + (ocr - ccr).abs()) as f64 / 2.0;
        count += 1;
    }
    (sum / count.max(1) as f64, count)
}

#[test]
fn luminance_preservation_keeps_content_chroma() {
    // Low-saturation content: its chroma fits under the dark luminance the random weights give.
    let content = pastel(96, 64, 12);
    let style = image(80, 64, 13);
    let styles = [(pic_style(&style), 1.0)];
    let kept = stylize(
        &content,
        &styles,
        &AdainOptions {
            preserve_color: PreserveColor::Luminance,
            ..opts(1.0)
        },
    );
    let plain = stylize(&content, &styles, &opts(1.0));
    let (gap_kept, n_kept) = chroma_gap(&content, &kept, true);
    let (gap_plain, n_plain) = chroma_gap(&content, &plain, false);
    eprintln!(
        "chroma gap: preserved {gap_kept:.3} over {n_kept} px, plain {gap_plain:.3} over {n_plain} px"
    );
    assert!(n_kept > content.pixels() / 10, "too few unclipped pixels");
    assert!(gap_kept < 0.6, "chroma moved by {gap_kept}");
    assert!(gap_plain > 5.0 * gap_kept.max(0.1), "plain gap {gap_plain}");
    // The luminance is the stylised one.
    let n = content.pixels();
    let mut worst = 0f32;
    for i in 0..n {
        let k = [kept.rgb[i], kept.rgb[n + i], kept.rgb[2 * n + i]];
        let p = [plain.rgb[i], plain.rgb[n + i], plain.rgb[2 * n + i]];
        if k.iter().any(|v| *v < 1.0 || *v > 254.0) {
            continue;
        }
        let (yk, _, _) = rgb_to_ycbcr(k[0], k[1], k[2]);
        let (yp, _, _) = rgb_to_ycbcr(p[0], p[1], p[2]);
        worst = worst.max((yk - yp).abs());
    }
    assert!(worst < 0.5, "luminance moved by {worst}");
}

/// Channel means and the covariance matrix of planar RGB.
fn color_moments(p: &Picture) -> ([f64; 3], [[f64; 3]; 3]) {
    let n = p.pixels();
    let mean: [f64; 3] = std::array::from_fn(|c| {
        p.rgb[c * n..(c + 1) * n]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / n as f64
    });
    let mut cov = [[0f64; 3]; 3];
    for i in 0..n {
        for a in 0..3 {
            for b in 0..3 {
                cov[a][b] +=
                    (p.rgb[a * n + i] as f64 - mean[a]) * (p.rgb[b * n + i] as f64 - mean[b]);
            }
        }
    }
    for row in cov.iter_mut() {
        for v in row.iter_mut() {
            *v /= (n - 1) as f64;
        }
    }
    (mean, cov)
}

/// A picture with correlated channels kept well inside 0..255 (so clamping plays no part).
fn tinted(w: u32, h: u32, seed: u32, tint: [f32; 3], mix: f32) -> Picture {
    let base = image(w, h, seed);
    let n = base.pixels();
    let mut rgb = vec![0f32; 3 * n];
    for i in 0..n {
        let g = (base.rgb[i] + base.rgb[n + i] + base.rgb[2 * n + i]) / 3.0;
        for c in 0..3 {
            let v = mix * g + (1.0 - mix) * base.rgb[c * n + i];
            rgb[c * n + i] = 60.0 + 0.5 * v * tint[c];
        }
    }
    Picture::from_planes(w, h, rgb)
}

#[test]
fn coral_matches_colour_mean_and_covariance() {
    let source = tinted(90, 70, 14, [1.0, 0.6, 0.3], 0.7);
    let target = tinted(64, 48, 15, [0.4, 0.8, 1.0], 0.2);
    let out = coral(&source, &target).unwrap();
    assert_eq!((out.width, out.height), (90, 70));
    let (m_out, c_out) = color_moments(&out);
    let (m_t, c_t) = color_moments(&target);
    for a in 0..3 {
        assert!(
            (m_out[a] - m_t[a]).abs() < 0.05,
            "mean {m_out:?} vs {m_t:?}"
        );
        for b in 0..3 {
            assert!(
                (c_out[a][b] - c_t[a][b]).abs() < 0.01 * c_t[a][a].max(c_t[b][b]),
                "covariance {c_out:?} vs {c_t:?}"
            );
        }
    }
}

#[test]
fn coral_preservation_recolours_the_style_before_encoding() {
    let content = tinted(96, 64, 16, [0.3, 0.9, 0.5], 0.3);
    let style = tinted(80, 72, 17, [1.0, 0.4, 0.2], 0.5);
    let out = stylize(
        &content,
        &[(pic_style(&style), 1.0)],
        &AdainOptions {
            preserve_color: PreserveColor::Coral,
            ..opts(1.0)
        },
    );
    let recoloured = coral(&style, &content).unwrap();
    let want = single_style(&content, &recoloured);
    close("coral preservation", &out.rgb, &want, 1e-5);
    far(
        "coral vs plain",
        &out.rgb,
        &single_style(&content, &style),
        0.01,
    );
    // Precomputed statistics cannot be recoloured.
    let stats = model().style_stats(&style, None, &device()).unwrap();
    let err = model().stylize(
        &content,
        &[(Style::Stats(stats), 1.0)],
        &AdainOptions {
            preserve_color: PreserveColor::Coral,
            ..opts(1.0)
        },
        &device(),
    );
    assert!(err.is_err());
}

#[test]
fn tiled_inference_matches_whole_image() {
    let (w, h) = (256, 160);
    let content = image(w, h, 18);
    let style = image(80, 80, 19);
    let styles = [(pic_style(&style), 1.0)];
    let whole = stylize(&content, &styles, &opts(1.0));
    let tiled_opts = AdainOptions {
        tile: Some(128),
        ..opts(1.0)
    };
    let tiled = stylize(&content, &styles, &tiled_opts);
    assert_eq!((tiled.width, tiled.height), (w, h));
    // Tiles see less context than the whole image (relu4_1 reaches about 90 pixels), so the
    // results differ near tile borders, but by far less than another style would.
    let err = rel_l2(&tiled.rgb, &whole.rgb);
    let other = stylize(&content, &[(pic_style(&image(72, 96, 9)), 1.0)], &opts(1.0));
    let between_styles = rel_l2(&other.rgb, &whole.rgb);
    eprintln!("tiled vs whole: relative L2 {err:.3e} (another style: {between_styles:.3e})");
    assert!(err < 0.06, "tiled vs whole: {err:.3e}");
    assert!(err < 0.2 * between_styles, "tiled vs whole: {err:.3e}");

    // A mask follows each tile: with no background, the unmasked side is the tiled alpha = 0 result
    // and the masked side the tiled full-style result.
    let values: Vec<f32> = (0..w * h)
        .map(|i| if i % w < w / 2 { 1.0 } else { 0.0 })
        .collect();
    let masked = stylize(
        &content,
        &styles,
        &AdainOptions {
            mask: Some(Mask {
                width: w,
                height: h,
                values,
                background: Vec::new(),
            }),
            ..tiled_opts.clone()
        },
    );
    let plain = stylize(
        &content,
        &styles,
        &AdainOptions {
            alpha: 0.0,
            ..tiled_opts.clone()
        },
    );
    let part = |p: &[f32], x0: u32, x1: u32| columns(p, w, h, x0, x1);
    close(
        "tiled mask, left",
        &part(&masked.rgb, 0, 88),
        &part(&tiled.rgb, 0, 88),
        1e-5,
    );
    close(
        "tiled mask, right",
        &part(&masked.rgb, 168, w),
        &part(&plain.rgb, 168, w),
        1e-5,
    );
}

#[test]
fn content_size_limit_scales_down() {
    let content = image(200, 100, 20);
    let style = image(64, 64, 21);
    let out = stylize(
        &content,
        &[(pic_style(&style), 1.0)],
        &AdainOptions {
            max_size: Some(100),
            ..opts(1.0)
        },
    );
    assert_eq!((out.width, out.height), (100, 50));
    close(
        "max size",
        &out.rgb,
        &single_style(&content.fit_within(100), &style),
        1e-5,
    );
}

#[test]
fn bad_parameters_are_errors() {
    let m = model();
    let dev = device();
    let content = image(64, 64, 22);
    let style = image(64, 64, 23);
    let ok = [(pic_style(&style), 1.0)];
    let run = |styles: &[(Style, f32)], o: AdainOptions| m.stylize(&content, styles, &o, &dev);

    assert!(run(&ok, opts(1.0)).is_ok());
    for alpha in [-0.1, 1.01, f32::NAN] {
        assert!(run(&ok, opts(alpha)).is_err(), "alpha {alpha}");
    }
    assert!(run(&[], opts(1.0)).is_err(), "no styles");
    assert!(
        run(&[(pic_style(&style), -1.0)], opts(1.0)).is_err(),
        "negative weight"
    );
    assert!(
        run(
            &[(pic_style(&style), 1.0), (pic_style(&style), -0.5)],
            opts(1.0)
        )
        .is_err(),
        "one negative weight"
    );
    assert!(
        run(&[(pic_style(&style), 0.0)], opts(1.0)).is_err(),
        "zero weights"
    );
    assert!(
        run(&[(pic_style(&style), f32::INFINITY)], opts(1.0)).is_err(),
        "infinite weight"
    );
    let mask = |w: u32, h: u32, v: f32| Mask {
        width: w,
        height: h,
        values: vec![v; (w * h) as usize],
        background: Vec::new(),
    };
    let with_mask = |mk: Mask| AdainOptions {
        mask: Some(mk),
        ..opts(1.0)
    };
    assert!(run(&ok, with_mask(mask(64, 64, 0.5))).is_ok());
    assert!(run(&ok, with_mask(mask(32, 64, 0.5))).is_err(), "mask size");
    assert!(
        run(&ok, with_mask(mask(64, 64, 1.5))).is_err(),
        "mask range"
    );
    let mut short = mask(64, 64, 0.5);
    short.values.pop();
    assert!(run(&ok, with_mask(short)).is_err(), "mask length");
    let mut bad_bg = mask(64, 64, 0.5);
    bad_bg.background = vec![(pic_style(&style), -1.0)];
    assert!(run(&ok, with_mask(bad_bg)).is_err(), "background weight");

    let bad_stats = StyleStats {
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
    };
    assert!(run(&[(Style::Stats(bad_stats), 1.0)], opts(1.0)).is_err());
    let mut zero_std = m.style_stats(&style, None, &dev).unwrap();
    zero_std.std[0] = 0.0;
    assert!(run(&[(Style::Stats(zero_std), 1.0)], opts(1.0)).is_err());

    for o in [
        AdainOptions {
            max_size: Some(0),
            ..opts(1.0)
        },
        AdainOptions {
            style_size: Some(0),
            ..opts(1.0)
        },
        AdainOptions {
            tile: Some(10),
            ..opts(1.0)
        },
        AdainOptions {
            stats_size: 8,
            ..opts(1.0)
        },
    ] {
        assert!(run(&ok, o.clone()).is_err(), "{o:?}");
    }
    let tiny = image(6, 40, 24);
    assert!(
        m.stylize(&tiny, &ok, &opts(1.0), &dev).is_err(),
        "tiny content"
    );
    assert!(
        run(&[(pic_style(&image(40, 5, 25)), 1.0)], opts(1.0)).is_err(),
        "tiny style"
    );
}
