//! Size limits: every method of the registry, with every kind of model it runs, returns an output
//! of exactly the content's size for tiny and thin images (padded up to the method's
//! `min_side` and cropped back), whole, tiled and after `max_size`; none panics.


use crate::common::device;
use styleforge_core::image_io::Picture;
use styleforge_core::library::{ModelKind, builtin, kind};
use styleforge_core::methods::{self, Control, Input, Params, SizePlan};
use styleforge_core::shared;
use styleforge_core::weights::Weights;

/// The sizes of the cases: 1×1, 2×2, 4×4, 5×5, 1×4000, 4000×1, 3×500, 101×75.
const SIZES: [(u32, u32); 8] = [(1, 1), (2, 2), (4, 4), (5, 5), (1, 4000), (4000, 1), (3, 500), (101, 75)];

/// A content picture with a gradient and an alpha plane.
fn content(w: u32, h: u32) -> Picture {
    let n = (w * h) as usize;
    let mut rgb = vec![0f32; 3 * n];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) as usize;
            rgb[i] = (x * 255 / w.max(2)) as f32;
            rgb[n + i] = (y * 255 / h.max(2)) as f32;
            rgb[2 * n + i] = 128.0;
        }
    }
    Picture { alpha: Some((0..n).map(|i| (i % 256) as u8).collect()), ..Picture::from_planes(w, h, rgb) }
}

fn load(kind: ModelKind, files: &[&str]) -> styleforge_core::library::Loaded {
    let w: Vec<Weights> = files.iter().map(|f| Weights::load(&shared::path(f)).unwrap()).collect();
    let w = match kind {
        ModelKind::Adain => kind::combine_adain(w[0].clone(), w[1].clone()).unwrap(),
        _ => w[0].clone(),
    };
    kind.load_weights(&w, &device()).unwrap()
}

/// Models for every method: small weights from the shared parity files, or built in.
fn models(method: &str) -> Vec<(&'static str, styleforge_core::library::Loaded)> {
    let builtin = |name: &str, kind: ModelKind| kind.load_weights(&builtin::weights(name).unwrap(), &device()).unwrap();
    match method {
        "fast" => vec![
            ("transformer_net", load(ModelKind::Fast, &["models/fast_style_pytorch/candy_nc8.safetensors"])),
            ("engstrom", load(ModelKind::Fast, &["models/fast_style_engstrom/udnie.safetensors"])),
        ],
        "cartoon" => vec![
            ("cartoongan", builtin("cartoon-paprika", ModelKind::Cartoon)),
            ("animegan", load(ModelKind::Anime, &["parity/animegan2_generator.pth"])),
        ],
        "microast" => vec![("microast", builtin(builtin::MICROAST, ModelKind::MicroAst))],
        "adain" => vec![(
            "adain",
            load(ModelKind::Adain, &["parity/adain_vgg_normalised_relu4_1.pth", "parity/adain_decoder.pth"]),
        )],
        "gatys" => vec![("vgg19", load(ModelKind::Vgg, &["parity/vgg19_features_f16.pth"]))],
        "cyclegan" => vec![("cyclegan", load(ModelKind::CycleGan, &["parity/cyclegan_G_ngf32_6blocks.pth"]))],
        other => panic!("method {other} has no models in this test: add them"),
    }
}

#[test]
fn every_method_returns_the_input_size() {
    let style = builtin::painting("starry-night").unwrap().picture().unwrap().fit_within(64);
    for method in methods::all() {
        let info = method.info();
        let mut params = Params::new();
        if info.takes("iterations") {
            params.set_integer("iterations", Some(1)).unwrap();
        }
        for (label, model) in models(info.name) {
            for &(w, h) in &SIZES {
                let mut input = Input::content(content(w, h));
                if info.style != methods::StyleSource::Model {
                    input.styles = vec![(style.clone().into(), 1.0)];
                }
                if info.mask {
                    input.mask = Some(content(w, h));
                }
                let mut runs = vec![("whole", params.clone(), (w, h))];
                if info.tiles && w.max(h) > 64 {
                    let mut p = params.clone();
                    p.set_integer("tile", Some(64)).unwrap();
                    runs.push(("tiles of 64", p, (w, h)));
                }
                if w.max(h) > 3 {
                    let mut p = params.clone();
                    p.set_integer("max_size", Some(3)).unwrap();
                    let out = methods::output_size(w, h, Some(3));
                    runs.push(("max_size 3", p, out));
                }
                for (how, p, want) in runs {
                    let t = std::time::Instant::now();
                    let out = method
                        .run(&model, &input, &p, &device(), &mut Control::new(None, &mut |_| {}))
                        .unwrap_or_else(|e| panic!("{} ({label}) on {w}x{h}, {how}: {e}", info.name));
                    let got = (out.picture.width, out.picture.height);
                    eprintln!("{} ({label}) {w}x{h} {how}: {}x{} in {:.2} s", info.name, got.0, got.1, t.elapsed().as_secs_f64());
                    assert_eq!(got, want, "{} ({label}) on {w}x{h}, {how}", info.name);
                    assert_eq!(out.picture.rgb.len(), 3 * (want.0 * want.1) as usize);
                    assert!(out.picture.rgb.iter().all(|v| v.is_finite()), "{} ({label}) {w}x{h} {how}: finite", info.name);
                    let alpha = out.picture.alpha.as_ref().expect("alpha carried through");
                    if want == (w, h) {
                        assert_eq!(alpha, input.content.alpha.as_ref().unwrap(), "{} ({label}) {w}x{h}: alpha kept", info.name);
                    }
                }
            }
        }
    }
}

#[test]
fn size_plans_pad_only_below_the_minimum() {
    let fast = methods::get("fast").unwrap().info();
    let plan = SizePlan::new(fast, 1, 4000, None);
    assert_eq!(plan.output, (1, 4000));
    assert_eq!(plan.padded, (fast.min_side, 4000));
    assert!(plan.pads());
    assert!(!SizePlan::new(fast, 101, 75, None).pads());
    let plan = SizePlan::new(fast, 1000, 500, Some(10));
    assert_eq!(plan.output, (10, 5));
    assert_eq!(plan.padded, (16, 16));
    assert_eq!(plan.offset, (3, 5));
    let pic = content(3, 2);
    let padded = plan_for(3, 2).pad(&pic);
    assert_eq!((padded.width, padded.height), (16, 16));
    assert_eq!(plan_for(3, 2).crop(&padded), pic);
}

fn plan_for(w: u32, h: u32) -> SizePlan {
    SizePlan::new(methods::get("fast").unwrap().info(), w, h, None)
}
