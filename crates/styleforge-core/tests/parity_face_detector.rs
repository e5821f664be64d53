//! The RFB-320 face detector (Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB) reproduces the
//! reference PyTorch code on the published `version-RFB-320.pth`: raw logits and offsets, the
//! test-mode scores and boxes, the priors, and the post-processed detections of
//! `models/face_detector/reference/face_ref.safetensors`.


use crate::common::{assert_close, device, reference, rel_l2};
use styleforge_core::image_io;
use styleforge_core::library::builtin;
use styleforge_core::networks::face_detector::{self, FaceDetector};
use styleforge_core::shared;
use styleforge_core::weights::{HostTensor, Weights};

const TOL: f64 = 1e-4;
const CASES: [(&str, &str); 4] = [
    ("portrait_woman_kodim04", "data/content/portrait_woman_kodim04.jpg"),
    ("portrait_child_kodim15", "data/content/portrait_child_kodim15.jpg"),
    ("astronaut_skimage", "data/content/astronaut_skimage.jpg"),
    ("chicago_no_face", "data/content/chicago.jpg"),
];

fn detector() -> FaceDetector {
    let w = Weights::load(&shared::path("models/face_detector/version-RFB-320.pth")).unwrap();
    assert!(FaceDetector::detect(&w));
    FaceDetector::from_weights(&w, &device()).unwrap()
}

#[test]
fn priors_match() {
    let r = reference("models/face_detector/reference/face_ref.safetensors");
    let got: Vec<f32> = face_detector::priors().into_iter().flatten().collect();
    let want = r.get("priors").unwrap();
    assert_eq!(want.shape, [face_detector::ANCHORS, 4]);
    let max = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("priors: max abs difference {max:.3e}");
    assert!(max < 1e-6);
}

#[test]
fn raw_outputs_scores_boxes_and_detections() {
    let r = reference("models/face_detector/reference/face_ref.safetensors");
    let net = detector();
    for (case, photo) in CASES {
        let input = r.get(&format!("{case}.input")).unwrap();
        let raw = net.forward(input.to_tensor::<4>(&device()).unwrap());
        assert_close(&format!("{case} logits"), raw.logits.clone(), r.get(&format!("{case}.logits")).unwrap(), TOL);
        assert_close(&format!("{case} locations"), raw.locations.clone(), r.get(&format!("{case}.locations")).unwrap(), TOL);
        let logits = HostTensor::from_tensor(raw.logits).unwrap().data;
        let locations = HostTensor::from_tensor(raw.locations).unwrap().data;
        let (scores, boxes) = face_detector::decode(&logits, &locations);
        for (name, got) in [("scores", &scores), ("boxes", &boxes)] {
            let err = rel_l2(got, &r.get(&format!("{case}.{name}")).unwrap().data);
            eprintln!("{case} {name}: relative L2 error {err:.3e}");
            assert!(err < TOL, "{case} {name}: {err:.3e}");
        }
        // Post-processing in the photo's pixels, from the network's own outputs.
        let pic = image_io::read(&shared::path(photo), u64::MAX).unwrap();
        let (w, h) = (pic.width as f32, pic.height as f32);
        let faces = face_detector::post_process(&scores, &boxes, w, h, face_detector::SCORE_THRESHOLD, face_detector::IOU_THRESHOLD, face_detector::CANDIDATES);
        let want = r.get(&format!("{case}.detections")).unwrap();
        let n = if want.shape[0] == 0 { 0 } else { want.data.len() / 5 };
        assert_eq!(faces.len(), n, "{case}: {faces:?}");
        for (f, d) in faces.iter().zip(want.data.chunks(5)) {
            let dx = [f.x1 - d[0], f.y1 - d[1], f.x2 - d[2], f.y2 - d[3]].map(f32::abs);
            let worst = dx.iter().copied().fold(0f32, f32::max);
            eprintln!("{case}: {f:?}, largest corner difference {worst:.4} px");
            assert!(worst < 1.0 && (f.score - d[4]).abs() < 1e-4, "{case}: {f:?} vs {d:?}");
        }
    }
}

/// The resize reproduces OpenCV's `INTER_LINEAR` on 8-bit images bit for bit: down, up, exactly
/// half and one side only, on an image of smooth ramps and noise (fixtures made by
/// `scripts/opencv-resize-fixture.py` with OpenCV 5.0).
#[test]
fn the_resize_is_opencvs_bit_for_bit() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opencv_resize");
    let input = image_io::read(&dir.join("input_194x122.png"), u64::MAX).unwrap();
    for (w, h) in [(211, 131), (41, 29), (97, 61), (194, 61), (7, 5)] {
        let want = image_io::read(&dir.join(format!("cv2_{w}x{h}.png")), u64::MAX).unwrap();
        let ours = face_detector::resize_like_opencv(&input, w, h);
        let differ = ours.iter().zip(&want.rgb).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{w}×{h}: {differ} of {} values differ from OpenCV", ours.len());
    }
}

/// The whole pipeline from the JPEG. The resize is OpenCV's (above), but the JPEG decoders
/// differ: ours (zune-jpeg, through `image`) and libjpeg-turbo (OpenCV's and Pillow's) disagree
/// by up to 4 levels on about an eighth of the values of these photos, so the 320×240 inputs
/// differ by that much and the boxes by up to about 1.3 px.
#[test]
fn from_the_photos() {
    let r = reference("models/face_detector/reference/face_ref.safetensors");
    let net = detector();
    for (case, photo) in CASES {
        let pic = image_io::read(&shared::path(photo), u64::MAX).unwrap();
        // The stored 320×240 input is what our resize should give, up to rounding.
        let png = image_io::read(&shared::path(&format!("models/face_detector/reference/input_{case}_320x240.png")), u64::MAX).unwrap();
        let ours = face_detector::preprocess(&pic, &device());
        let theirs = face_detector::input_tensor(&png.rgb, &device());
        let d = HostTensor::from_tensor((ours - theirs).abs().max()).unwrap().data[0] * 128.0;
        eprintln!("{case}: largest input difference {d} grey levels");
        assert!(d <= 5.0, "{case}: {d}");
        let faces = net.detect_faces(&pic, &device()).unwrap();
        let want = r.get(&format!("{case}.detections")).unwrap();
        let n = if want.shape[0] == 0 { 0 } else { want.data.len() / 5 };
        assert_eq!(faces.len(), n, "{case}: {faces:?}");
        for (f, d) in faces.iter().zip(want.data.chunks(5)) {
            let worst = [f.x1 - d[0], f.y1 - d[1], f.x2 - d[2], f.y2 - d[3]].map(f32::abs).into_iter().fold(0f32, f32::max);
            eprintln!("{case} from the photo: largest corner difference {worst:.2} px");
            assert!(worst < 2.0, "{case}: {f:?} vs {d:?}");
        }
    }
}

/// The weights compiled into the binary are the published file, byte for byte, and build the
/// same detector.
#[test]
fn the_shipped_weights_are_the_published_file() {
    let published = std::fs::read(shared::path("models/face_detector/version-RFB-320.pth")).unwrap();
    assert!(builtin::FACE_DETECTOR_FILE.bytes == published.as_slice());
    let r = reference("models/face_detector/reference/face_ref.safetensors");
    let input = r.get("astronaut_skimage.input").unwrap().to_tensor::<4>(&device()).unwrap();
    let raw = builtin::face_detector(&device()).unwrap().forward(input);
    assert_close("built-in logits", raw.logits, r.get("astronaut_skimage.logits").unwrap(), TOL);
}
