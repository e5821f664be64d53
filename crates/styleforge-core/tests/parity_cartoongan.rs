//! CartoonGAN-light (mnicnc404/CartoonGan-tensorflow) reproduces the outputs of the authors'
//! TensorFlow code on the published paprika and shinkai weights: every case of
//! `models/cartoongan_light/reference/cartoongan_light_ref.safetensors`, sizes that are not
//! multiples of 4 included, and every block's output on the tiny cases.


use burn::tensor::Tensor;
use crate::common::{assert_close, device, reference};
use styleforge_core::networks::cartoongan::CartoonGan;
use styleforge_core::networks::layers::NormContext;
use styleforge_core::weights::{HostTensor, Weights};

const TOL: f64 = 1e-4;

fn generator(style: &str) -> CartoonGan {
    let w = reference(&format!("models/cartoongan_light/weights_{style}.safetensors"));
    CartoonGan::from_weights(&w, &device()).unwrap()
}

/// An NHWC reference tensor as NCHW.
fn nchw(t: &HostTensor) -> Tensor<4> {
    t.to_tensor::<4>(&device()).unwrap().permute([0, 3, 1, 2])
}

fn cases(r: &Weights) -> Vec<String> {
    r.tensors.keys().filter_map(|k| k.strip_prefix("input.")).map(str::to_string).collect()
}

#[test]
fn both_styles_on_every_case() {
    let r = reference("models/cartoongan_light/reference/cartoongan_light_ref.safetensors");
    let cases = cases(&r);
    assert_eq!(cases.len(), 5, "{cases:?}");
    for style in ["paprika", "shinkai"] {
        let g = generator(style);
        for case in &cases {
            let x = nchw(r.get(&format!("input.{case}")).unwrap());
            let trace = g.forward_traced(x, &mut NormContext::Local, true);
            let want = r.get(&format!("{style}.{case}.output")).unwrap();
            assert_close(&format!("{style} {case} output"), trace.output.permute([0, 2, 3, 1]), want, TOL);
            for (block, got) in trace.blocks {
                if let Ok(want) = r.get(&format!("{style}.{case}.{block}")) {
                    assert_close(&format!("{style} {case} {block}"), got.permute([0, 2, 3, 1]), want, TOL);
                }
            }
        }
    }
}

#[test]
fn wrong_files_are_named() {
    let mut w = reference("models/cartoongan_light/weights_paprika.safetensors");
    let key = w.tensors.keys().find(|k| k.contains("final_conv/layer-1/bias")).unwrap().clone();
    w.tensors.remove(&key);
    let e = CartoonGan::from_weights(&w, &device()).unwrap_err().to_string();
    assert!(e.contains("final_conv/layer-1/bias"), "{e}");
    let e = CartoonGan::from_weights(&reference("parity/cyclegan.safetensors"), &device()).unwrap_err().to_string();
    assert!(e.contains("unexpected tensors") || e.contains("missing"), "{e}");
}

/// The published TensorFlow checkpoints read directly (folder, `.index` file or prefix) hold
/// exactly the tensors of the safetensors conversion, and build the same generator.
#[test]
fn the_tensorflow_checkpoints_read_as_published() {
    for style in ["paprika", "shinkai"] {
        let dir = styleforge_core::shared::path(&format!("models/cartoongan_light/{style}"));
        let converted = reference(&format!("models/cartoongan_light/weights_{style}.safetensors"));
        for path in [dir.clone(), dir.join("generator.index"), dir.join("generator")] {
            let w = Weights::load(&path).unwrap();
            assert_eq!(w.tensors.len(), 126, "{}", path.display());
            assert_eq!(w.tensors, converted.tensors, "{}", path.display());
        }
        assert!(CartoonGan::from_weights(&Weights::load(&dir).unwrap(), &device()).is_ok());
    }
    // A damaged data file is refused by its checksum.
    let tmp = tempfile::tempdir().unwrap();
    let src = styleforge_core::shared::path("models/cartoongan_light/paprika");
    for f in ["checkpoint", "generator.index", "generator.data-00000-of-00001"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let data = tmp.path().join("generator.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    std::fs::write(&data, bytes).unwrap();
    let e = Weights::load(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("CRC-32C mismatch"), "{e}");
}

/// The built-in filters are the published checkpoints, and the `cartoon` method runs them at any
/// size: the reference output cropped to the input, tiles close to the whole image.
#[test]
fn built_in_filters_at_any_size() {
    use styleforge_core::image_io::Picture;
    use styleforge_core::library::{ModelKind, builtin};
    use styleforge_core::methods::fast::{FeedForwardNet, StylizeOptions};
    for f in &builtin::CARTOON_FILES {
        let style = if f.sha256.starts_with("954d") || f.sha256.starts_with("0447") { "paprika" } else { "shinkai" };
        let published = std::fs::read(styleforge_core::shared::path(&format!("models/cartoongan_light/{style}/{}", f.name))).unwrap();
        assert!(published == f.bytes, "{style}/{} differs from the published file", f.name);
    }
    let r = reference("models/cartoongan_light/reference/cartoongan_light_ref.safetensors");
    let g = match ModelKind::Cartoon.load_weights(&builtin::weights("cartoon-paprika").unwrap(), &device()).unwrap() {
        styleforge_core::library::Loaded::Cartoon(g) => g,
        other => panic!("{:?}", other.kind()),
    };
    // The reference input (250x187) as 0..255 planes; the method's output is the reference output
    // cropped to 250x187, to 8-bit rounding of the input.
    let input = r.get("input.chicago_250x187").unwrap();
    let (h, w) = (187usize, 250usize);
    let mut planes = vec![0f32; 3 * h * w];
    for p in 0..h * w {
        for c in 0..3 {
            planes[c * h * w + p] = (input.data[p * 3 + c] + 1.0) * 127.5;
        }
    }
    let pic = Picture::from_planes(w as u32, h as u32, planes);
    let out = g.stylize_with(&pic, &StylizeOptions::default(), &device()).unwrap();
    assert_eq!((out.width, out.height), (250, 187));
    let want = r.get("paprika.chicago_250x187.output").unwrap();
    let mut err = 0f64;
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let v = ((want.data[(y * 252 + x) * 3 + c] + 1.0) * 127.5) as f64;
                err += (out.rgb[c * h * w + y * w + x] as f64 - v).abs();
            }
        }
    }
    let err = err / (3 * h * w) as f64;
    assert!(err < 0.01, "mean abs difference to the reference {err}");
    // Tiny inputs and tiles.
    for (tw, th) in [(1, 1), (5, 3), (2, 9)] {
        let tiny = Picture::from_planes(tw, th, vec![120.0; (3 * tw * th) as usize]);
        let o = g.stylize_with(&tiny, &StylizeOptions::default(), &device()).unwrap();
        assert_eq!((o.width, o.height), (tw, th));
        assert!(o.rgb.iter().all(|v| v.is_finite()));
    }
    let big = pic.resize(600, 450);
    let whole = g.stylize_with(&big, &StylizeOptions::default(), &device()).unwrap();
    let tiled = g.stylize_with(&big, &StylizeOptions { tile: Some(256), ..StylizeOptions::default() }, &device()).unwrap();
    let d = whole.rgb.iter().zip(&tiled.rgb).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / whole.rgb.len() as f64;
    assert!(d < 6.0, "tiled vs whole: mean abs difference {d}");
}
