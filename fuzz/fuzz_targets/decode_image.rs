//! Image decoding and validation: `image_io::probe` and `image_io::decode` (JPEG, PNG, WebP,
//! EXIF orientation, animation refusal, ICC profiles to sRGB). When the first byte is `b'I'`
//! the rest is used as an ICC profile applied to a small image instead (the profiles a real
//! file can carry are hard to reach through the PNG and JPEG checksums).
#![no_main]

use libfuzzer_sys::fuzz_target;
use styleforge_core::image_io;

fuzz_target!(|data: &[u8]| {
    if let Some(icc) = data.strip_prefix(b"I") {
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 50, y as u8 * 80, 128])));
        let out = image_io::to_srgb(img, icc);
        assert_eq!((out.width(), out.height()), (5, 3));
        return;
    }
    let probed = image_io::probe(data);
    match image_io::decode(data, 4_000_000) {
        Ok(p) => {
            let (_, w, h) = probed.expect("a decoded image was probed");
            // EXIF orientation may swap the sides.
            assert!((p.width, p.height) == (w, h) || (p.width, p.height) == (h, w));
            assert_eq!(p.rgb.len(), p.pixels() * 3);
            assert!(p.rgb.iter().all(|v| (0.0..=255.0).contains(v)));
            if let Some(a) = &p.alpha {
                assert_eq!(a.len(), p.pixels());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
