//! CartoonGAN-light (mnicnc404/CartoonGan-tensorflow) reproduces the outputs of the authors'
//! TensorFlow code on the published paprika and shinkai weights: every case of
//! `models/cartoongan_light/reference/cartoongan_light_ref.safetensors`, sizes that are not
//! multiples of 4 included, and every block's output on the tiny cases.

mod common;

use burn::tensor::Tensor;
use common::{assert_close, device, reference};
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
