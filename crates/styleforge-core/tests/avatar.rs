//! Face-aware avatars with the built-in detector: portraits are cropped around their face, a
//! photo without one falls back to the centre square, a given box skips detection, and a
//! registry method stylises the crop.


use crate::common::device;
use styleforge_core::avatar::{self, Crop, FaceBox, FaceSource, Options};
use styleforge_core::image_io::{self, Picture};
use styleforge_core::library::{ModelKind, builtin};
use styleforge_core::methods::{self, Control, Input, Params};
use styleforge_core::shared;

fn photo(name: &str) -> Picture {
    image_io::read(&shared::path(&format!("data/content/{name}")), u64::MAX).unwrap()
}

#[test]
fn portraits_are_cropped_around_the_face() {
    let det = builtin::face_detector(&device()).unwrap();
    for (name, expect) in [
        // The reference detections (models/face_detector/README.md).
        ("portrait_woman_kodim04.jpg", FaceBox { x: 110.8, y: 141.5, w: 312.9, h: 400.6 }),
        ("portrait_child_kodim15.jpg", FaceBox { x: 367.2, y: 6.8, w: 345.1, h: 422.8 }),
    ] {
        let pic = photo(name);
        let a = avatar::make(&pic, &Options { size: 256, ..Options::default() }, &det, &device(), Ok).unwrap();
        let f = a.framing;
        eprintln!("{name}: {}", f.describe());
        assert!(a.found() && matches!(f.source, FaceSource::Detected(s) if s > 0.9), "{f:?}");
        let face = f.face.unwrap();
        // The largest face (the child's painted eye is a smaller detection), within a few pixels.
        for (got, want) in [(face.x, expect.x), (face.y, expect.y), (face.w, expect.w), (face.h, expect.h)] {
            assert!((got - want).abs() < 4.0, "{name}: {face:?} vs {expect:?}");
        }
        // The square holds the face (clipped to the image: the child's box starts near the top).
        let clipped = FaceBox { x: face.x.max(0.0), y: face.y.max(0.0), w: face.w, h: face.h };
        assert!(clipped.within(&f.crop, 0.5), "{name}: {face:?} outside {:?}", f.crop);
        assert!(f.crop.side < pic.width.min(pic.height) || f.crop.side == pic.width.min(pic.height));
        assert!(f.crop.x + f.crop.side <= pic.width && f.crop.y + f.crop.side <= pic.height);
        assert_eq!((a.picture.width, a.picture.height), (256, 256));
    }
}

#[test]
fn no_face_falls_back_to_the_centre() {
    let det = builtin::face_detector(&device()).unwrap();
    for name in ["mountain_river_kodim13.jpg", "chicago.jpg"] {
        let pic = photo(name);
        assert!(det.detect_faces(&pic, &device()).unwrap().is_empty(), "{name} has a face");
        let a = avatar::make(&pic, &Options { size: 128, ..Options::default() }, &det, &device(), Ok).unwrap();
        assert!(!a.found() && a.framing.source == FaceSource::NotFound && a.framing.face.is_none());
        assert_eq!(a.framing.crop, Crop::centre(pic.width, pic.height));
        assert!(a.framing.describe().contains("no face found"));
        assert_eq!((a.picture.width, a.picture.height), (128, 128));
    }
}

#[test]
fn a_given_box_skips_detection() {
    let det = builtin::face_detector(&device()).unwrap();
    let pic = photo("mountain_river_kodim13.jpg");
    let b = FaceBox::parse("300,200,100,100").unwrap();
    let opts = Options { size: 64, face: Some(b), ..Options::default() };
    let a = avatar::make(&pic, &opts, &det, &device(), Ok).unwrap();
    assert_eq!(a.framing.source, FaceSource::Given);
    assert_eq!(a.framing.crop, Crop { x: 260, y: 160, side: 180 });
    let outside = Options { face: Some(FaceBox::parse("5000,10,10,10").unwrap()), ..opts };
    assert!(avatar::make(&pic, &outside, &det, &device(), Ok).is_err());
    assert!(avatar::make(&pic, &Options { size: 0, ..opts }, &det, &device(), Ok).is_err());
}

#[test]
fn a_registry_method_stylises_the_crop() {
    let det = builtin::face_detector(&device()).unwrap();
    let pic = photo("portrait_woman_kodim04.jpg");
    let method = methods::get("cartoon").unwrap();
    let model = ModelKind::Cartoon.load_weights(&builtin::weights("cartoon-paprika").unwrap(), &device()).unwrap();
    let input = Input::content(pic.clone());
    let mut progress = |_: &methods::Progress<'_>| {};
    let options = Options { size: 128, ..Options::default() };
    let mut control = Control::new(None, &mut progress);
    let (a, framing) =
        avatar::make_with_method(&input, &options, &det, method, &model, &Params::new(), &device(), &mut control).unwrap();
    assert!(framing.found());
    assert!(!a.cancelled);
    assert_eq!((a.picture.width, a.picture.height), (128, 128));
    // Styled, not the plain crop.
    let plain = framing.crop.cut(&pic).resize(128, 128);
    let diff: f32 = a.picture.rgb.iter().zip(&plain.rgb).map(|(x, y)| (x - y).abs()).sum::<f32>() / plain.rgb.len() as f32;
    assert!(diff > 5.0, "mean difference {diff}");
}
