//! The `microast` method on the built-in weights: it is the reference network at full strength,
//! gives the content back at strength 0, returns the input's size for any size, tiles without
//! changing the look, blends styles, and honours masks and colour preservation.


use crate::common::device;
use styleforge_core::image_io::Picture;
use styleforge_core::library::builtin;
use styleforge_core::methods::adain::{Style, StyleStats};
use styleforge_core::methods::microast::{MicroAstOptions, StyleSignals, stylize};
use styleforge_core::networks::microast::MicroAst;
use styleforge_core::shared;
use styleforge_core::tiling::planes_to_tensor;
use styleforge_core::weights::HostTensor;

fn model() -> MicroAst {
    MicroAst::from_weights(&builtin::weights(builtin::MICROAST).unwrap(), &device()).unwrap()
}

fn photo(rel: &str, max: u32) -> Picture {
    styleforge_core::image_io::read(&shared::path(rel), u64::MAX).unwrap().fit_within(max)
}

fn painting(name: &str, max: u32) -> Picture {
    builtin::painting(name).unwrap().picture().unwrap().fit_within(max)
}

fn mean_abs(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len() as f64
}

fn opts(strength: f32) -> MicroAstOptions {
    MicroAstOptions { strength, ..MicroAstOptions::default() }
}

#[test]
fn the_built_in_weights_are_the_published_files() {
    for f in &builtin::MICROAST_FILES {
        let published = std::fs::read(shared::path(&format!("models/microast/{}", f.name))).unwrap();
        assert!(published == f.bytes, "{} differs from the published file", f.name);
    }
}

#[test]
fn full_strength_is_the_reference_network_cropped_to_the_input() {
    let m = model();
    let content = photo("data/content/parrots_kodim23.jpg", 250); // 250x167: not a multiple of 4
    let style = painting("great-wave", 300);
    let got = stylize(&m, &content, &[(Style::Picture(style.clone()), 1.0)], None, &opts(1.0), &device()).unwrap();
    assert_eq!((got.width, got.height), (content.width, content.height));
    let unit = |p: &Picture| planes_to_tensor(&p.rgb, p.width, p.height, &device()).div_scalar(255.0);
    let y = m.forward_traced(unit(&content), unit(&style), 1.0).output;
    assert_eq!(y.dims(), [1, 3, 168, 252]);
    let y = y.slice([0..1, 0..3, 0..content.height as usize, 0..content.width as usize]).mul_scalar(255.0).clamp(0.0, 255.0);
    let want = HostTensor::from_tensor(y).unwrap().data;
    let err = mean_abs(&got.rgb, &want);
    assert!(err < 1e-3, "mean abs difference to the reference pass {err}");
}

#[test]
fn strength_moves_from_the_content_to_the_style() {
    let m = model();
    let content = photo("data/content/tubingen.jpg", 256);
    let style = [(Style::Picture(painting("starry-night", 256)), 1.0)];
    let run = |s: f32| stylize(&m, &content, &style, None, &opts(s), &device()).unwrap();
    assert_eq!(run(0.0).rgb, content.rgb, "strength 0 is the content");
    let d: Vec<f64> = [0.25, 0.5, 0.75, 1.0].iter().map(|&s| mean_abs(&run(s).rgb, &content.rgb)).collect();
    assert!(d.windows(2).all(|w| w[0] < w[1]), "distance to the content grows with strength: {d:?}");
    for s in [0.25, 0.5, 0.75] {
        let out = run(s);
        assert!(out.rgb.iter().all(|v| (0.0..=255.0).contains(v)));
        // Within range and not washed out (the published alpha 0.5 turns most pixels white).
        let white = out.rgb.iter().filter(|v| **v >= 254.5).count() as f64 / out.rgb.len() as f64;
        assert!(white < 0.05, "strength {s}: {:.1}% saturated values", white * 100.0);
    }
    assert!(stylize(&m, &content, &style, None, &opts(1.5), &device()).is_err());
}

#[test]
fn any_size_comes_back_at_its_size() {
    let m = model();
    let style = [(Style::Picture(painting("udnie", 128)), 1.0)];
    for (w, h) in [(1, 1), (3, 7), (5, 5), (9, 2), (33, 17)] {
        let pic = Picture::from_planes(w, h, (0..3 * w * h).map(|i| (i * 37 % 255) as f32).collect());
        let out = stylize(&m, &pic, &style, None, &opts(1.0), &device()).unwrap();
        assert_eq!((out.width, out.height), (w, h));
        assert!(out.rgb.iter().all(|v| v.is_finite()));
    }
    // A tiny style image works too.
    let tiny = Picture::from_planes(2, 3, vec![100.0; 18]);
    let content = photo("data/content/small/cat_chelsea_256.jpg", 64);
    assert!(stylize(&m, &content, &[(Style::Picture(tiny), 1.0)], None, &opts(1.0), &device()).is_ok());
}

#[test]
fn tiles_match_the_whole_image() {
    let m = model();
    let content = photo("data/content/lighthouse_kodim21.jpg", 700);
    let style = [(Style::Picture(painting("the-scream", 256)), 1.0)];
    let whole = stylize(&m, &content, &style, None, &opts(1.0), &device()).unwrap();
    let tiled = stylize(&m, &content, &style, None, &MicroAstOptions { tile: Some(256), ..opts(1.0) }, &device()).unwrap();
    assert_eq!((tiled.width, tiled.height), (whole.width, whole.height));
    let d = mean_abs(&tiled.rgb, &whole.rgb);
    assert!(d < 6.0, "tiled vs whole: mean abs difference {d}");
}

#[test]
fn blends_masks_and_colour() {
    let m = model();
    let dev = device();
    let content = photo("data/content/chicago.jpg", 200);
    let (a, b) = (painting("great-wave", 256), painting("composition-vii", 256));
    let one = stylize(&m, &content, &[(Style::Picture(a.clone()), 1.0)], None, &opts(1.0), &dev).unwrap();
    let with_zero = stylize(&m, &content, &[(Style::Picture(a.clone()), 1.0), (Style::Picture(b.clone()), 0.0)], None, &opts(1.0), &dev).unwrap();
    assert!(mean_abs(&one.rgb, &with_zero.rgb) < 1e-3, "a zero weight adds nothing");
    let half = stylize(&m, &content, &[(Style::Picture(a.clone()), 1.0), (Style::Picture(b.clone()), 1.0)], None, &opts(1.0), &dev).unwrap();
    let other = stylize(&m, &content, &[(Style::Picture(b.clone()), 1.0)], None, &opts(1.0), &dev).unwrap();
    let (da, db) = (mean_abs(&half.rgb, &one.rgb), mean_abs(&half.rgb, &other.rgb));
    assert!(da > 1.0 && db > 1.0 && mean_abs(&one.rgb, &other.rgb) > da.max(db), "blend between: {da} {db}");
    // Signals mix linearly.
    let (sa, sb) = (StyleSignals::of(&m, &a, &dev).unwrap(), StyleSignals::of(&m, &b, &dev).unwrap());
    let mix = StyleSignals::mix(&[(sa.clone(), 3.0), (sb.clone(), 1.0)]).unwrap();
    assert!((mix.levels[1].weight[5] - (0.75 * sa.levels[1].weight[5] + 0.25 * sb.levels[1].weight[5])).abs() < 1e-5);

    // Mask: left half white. No background style: the right half keeps the content's pixels.
    let (w, h) = (content.width as usize, content.height as usize);
    let mask: Vec<f32> = (0..w * h).map(|i| if i % w < w / 2 { 1.0 } else { 0.0 }).collect();
    let masked = stylize(&m, &content, &[(Style::Picture(a.clone()), 1.0)], Some((&mask, &[])), &opts(1.0), &dev).unwrap();
    let half_of = |p: &[f32], left: bool| -> Vec<f32> {
        (0..3 * w * h).filter(|i| ((i % (w * h)) % w < w / 2) == left).map(|i| p[i]).collect()
    };
    assert_eq!(half_of(&masked.rgb, false), half_of(&content.rgb, false));
    let (to_styled, to_content) =
        (mean_abs(&half_of(&masked.rgb, true), &half_of(&one.rgb, true)), mean_abs(&half_of(&masked.rgb, true), &half_of(&content.rgb, true)));
    assert!(to_styled < 0.5 && to_content > 20.0, "the white half is the styled image: {to_styled} / {to_content}");
    // With a background style, the right half takes it.
    let bg = [(Style::Picture(b.clone()), 1.0)];
    let two = stylize(&m, &content, &[(Style::Picture(a.clone()), 1.0)], Some((&mask, &bg)), &opts(1.0), &dev).unwrap();
    assert!(mean_abs(&half_of(&two.rgb, false), &half_of(&other.rgb, false)) < mean_abs(&half_of(&two.rgb, false), &half_of(&content.rgb, false)));

    // Colour preservation keeps the content's chroma.
    let kept = stylize(&m, &content, &[(Style::Picture(a.clone()), 1.0)], None, &MicroAstOptions { preserve_color: true, ..opts(1.0) }, &dev).unwrap();
    let chroma = |p: &Picture| -> Vec<f32> {
        let n = p.pixels();
        (0..n).map(|i| p.rgb[2 * n + i] - p.rgb[i]).collect()
    };
    assert!(mean_abs(&chroma(&kept), &chroma(&content)) < mean_abs(&chroma(&one), &chroma(&content)) / 2.0);
    // AdaIN statistics are not MicroAST styles.
    let stats = StyleStats { mean: vec![0.0; 512], std: vec![1.0; 512] };
    let e = stylize(&m, &content, &[(Style::Stats(stats), 1.0)], None, &opts(1.0), &dev).unwrap_err().to_string();
    assert!(e.contains("adain"), "{e}");
}
