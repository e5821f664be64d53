//! Tiled inference matches whole-image inference where both fit, and keeps the size.


use crate::common::device;
use styleforge_core::color::mean_abs_diff;
use styleforge_core::methods::fast::{FastStyleNet, StylizeOptions};
use styleforge_core::image_io;
use styleforge_core::networks::layers::NormContext;
use styleforge_core::shared;
use styleforge_core::tiling::{planes_to_tensor, run_tiled, tensor_to_planes, TileConfig};

#[test]
fn tiled_equals_untiled_on_a_1024_image() {
    let dev = device();
    let net = FastStyleNet::load(&shared::path("models/fast_style_pytorch/candy_nc16.safetensors"), &dev).unwrap();
    let pic = image_io::read(&shared::path("data/content/parrots_kodim23.jpg"), u64::MAX).unwrap().resize(1024, 1024);
    let whole = net.stylize(&pic, &StylizeOptions::default(), &dev).unwrap();
    let tiled = net
        .stylize(&pic, &StylizeOptions { tile: Some(512), ..Default::default() }, &dev)
        .unwrap();
    assert_eq!((tiled.width, tiled.height), (1024, 1024));
    let mad = mean_abs_diff(&whole.rgb, &tiled.rgb);
    eprintln!("tiled (512, full-resolution statistics) vs untiled: mean abs diff {mad:.3} / 255");
    assert!(mad < 1.0, "tiled result differs by {mad}");
    // Very large images take their statistics from a downscaled pass. That changes the look a
    // little (statistics depend on scale), but tiling itself adds nothing: the tiled result equals
    // the whole-image result computed with the same statistics.
    let stats = net.norm_stats(&pic, 512, &dev);
    let x = planes_to_tensor(&pic.rgb, 1024, 1024, &dev);
    let mut ctx = NormContext::Replay { stats, cursor: 0 };
    let whole_small_stats = tensor_to_planes(net.forward_any_size(x, &mut ctx)).unwrap();
    let tiled_small_stats = net
        .stylize(&pic, &StylizeOptions { tile: Some(512), stats_size: 512, ..Default::default() }, &dev)
        .unwrap();
    let mad2 = mean_abs_diff(&whole_small_stats, &tiled_small_stats.rgb);
    let shift = mean_abs_diff(&whole.rgb, &tiled_small_stats.rgb);
    eprintln!("tiled vs untiled with statistics from a 512 pass: {mad2:.3} / 255 (vs full-resolution statistics: {shift:.3})");
    assert!(mad2 < 1.0, "tiling with shared statistics adds {mad2}");
    // Tiles that normalise themselves (no shared statistics) are far off: the reason for the design.
    let cfg = TileConfig::new(512).unwrap();
    let naive = run_tiled(&pic.rgb, 1024, 1024, cfg, &dev, &mut |t| Ok(net.forward_any_size(t, &mut NormContext::Local))).unwrap();
    let mad3 = mean_abs_diff(&whole.rgb, &naive);
    eprintln!("tiles with their own statistics vs untiled: {mad3:.3} / 255");
    assert!(mad3 > 3.0 * mad, "shared statistics matter: {mad3} vs {mad}");
}

#[test]
fn resize_keeps_brightness() {
    let pic = image_io::read(&shared::path("data/content/small/cat_chelsea_256.jpg"), u64::MAX).unwrap();
    let small = pic.fit_within(100);
    assert_eq!(small.width.max(small.height), 100);
    let mean = |v: &[f32]| v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    let (a, b) = (mean(&pic.rgb), mean(&small.rgb));
    assert!((a - b).abs() < 2.0, "mean {a} vs {b}");
}
