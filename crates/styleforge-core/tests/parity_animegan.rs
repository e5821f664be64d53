//! AnimeGANv2 (the bryandlee/animegan2-pytorch layout) reproduces the port's outputs on random
//! weights: `block_c`'s output, the generator with `align_corners = True` at an even and an odd
//! size, and the ×2 `align_corners = False` variant.


use crate::common::{assert_close, device, reference};
use styleforge_core::networks::animegan::{AnimeGan, Upsampling};
use styleforge_core::networks::layers::NormContext;
use styleforge_core::shared;
use styleforge_core::weights::Weights;

const TOL: f64 = 1e-4;

#[test]
fn generator_outputs() {
    let g = AnimeGan::from_weights(&Weights::load(&shared::path("parity/animegan2_generator.pth")).unwrap(), &device()).unwrap();
    let r = reference("parity/animegan2.safetensors");
    let t = |n: &str| r.get(n).unwrap().to_tensor::<4>(&device()).unwrap();
    let (y, c) = g.forward_traced(t("x"), Upsampling::AlignCorners, &mut NormContext::Local);
    assert_close("block_c_out", c, r.get("block_c_out").unwrap(), TOL);
    assert_close("y_align_corners", y, r.get("y_align_corners").unwrap(), TOL);
    let (y, _) = g.forward_traced(t("x_odd"), Upsampling::AlignCorners, &mut NormContext::Local);
    assert_close("y_odd_align_corners", y, r.get("y_odd_align_corners").unwrap(), TOL);
    let (y, _) = g.forward_traced(t("x"), Upsampling::Scale2, &mut NormContext::Local);
    assert_close("y_scale2", y, r.get("y_scale2").unwrap(), TOL);
}

/// An AnimeGANv2 state dict imports into the library as an `anime` model, and the `cartoon`
/// method runs it at any size; the published checkpoints are in the download manifest.
#[test]
fn imports_and_runs_as_a_filter() {
    use styleforge_core::image_io::Picture;
    use styleforge_core::library::download::Manifest;
    use styleforge_core::library::{Library, ModelInfo, ModelKind};
    use styleforge_core::methods::{self, Control, Input, Params};
    let home = tempfile::tempdir().unwrap();
    let lib = Library::new(home.path());
    let info = ModelInfo { name: "anime-test".into(), ..Default::default() };
    let info = lib.import(&[shared::path("parity/animegan2_generator.pth")], info, false).unwrap();
    assert_eq!((info.method.as_str(), info.family.as_str()), ("anime", "animegan2"));
    let model = ModelKind::Anime.load_weights(&lib.weights("anime-test").unwrap(), &device()).unwrap();
    let method = methods::get("cartoon").unwrap();
    for (w, h) in [(1, 1), (3, 5), (37, 21)] {
        let pic = Picture::from_planes(w, h, (0..3 * w * h).map(|i| (i % 200) as f32).collect());
        let out = method.run(&model, &Input::content(pic), &Params::new(), &device(), &mut Control::new(None, &mut |_| {})).unwrap();
        assert_eq!((out.picture.width, out.picture.height), (w, h));
        assert!(out.picture.rgb.iter().all(|v| (0.0..=255.0).contains(v)));
    }
    let manifest = Manifest::load_default().unwrap();
    for name in ["animegan2-face-paint-v2", "animegan2-face-paint-v1", "animegan2-celeba-distill", "animegan2-paprika"] {
        let e = manifest.get(name).unwrap();
        assert_eq!(e.method, "anime");
        assert!(e.url().starts_with("https://github.com/bryandlee/animegan2-pytorch/raw/"), "{}", e.url());
    }
}
