//! Image decoding and encoding: JPEG, PNG and WebP; EXIF orientation applied; alpha kept aside.
//!
//! A [`Picture`] holds 8-bit sRGB as planar float RGB in 0..255 (the layout the networks take)
//! plus an optional alpha plane that is re-attached on output. The pixel limit is checked from
//! the header, before any pixel is decoded, so a decompression bomb costs nothing.
//!
//! Colour: an embedded ICC profile (JPEG `APP2`, PNG `iCCP`, WebP `ICCP`) is converted to sRGB
//! on decode with `moxcms` (relative colorimetric, out-of-gamut colours clipped), and every
//! output carries an sRGB profile, so wide-gamut photos keep their look instead of having their
//! numbers read as sRGB. Animated images (APNG, animated WebP) are refused: styleforge stylises
//! still images, and silently keeping one frame would lose the rest.

use std::io::Cursor;
use std::path::Path;

use std::sync::OnceLock;

use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits};
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

use crate::error::{Error, Result};

/// Default pixel limit for decoding: 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// An RGB image as planar floats (C×H×W, 0..255) with optional 8-bit alpha (H×W).
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Planar RGB: all R, then all G, then all B; each 0..255.
    pub rgb: Vec<f32>,
    /// Alpha plane, if the source had one.
    pub alpha: Option<Vec<u8>>,
}

/// The encodings styleforge reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG (lossy; alpha is dropped on output).
    Jpeg,
    /// PNG.
    Png,
    /// WebP (lossless on output).
    WebP,
}

impl Format {
    /// The format named by a file extension (`jpg`, `jpeg`, `png`, `webp`).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Self::from_name(&ext).ok_or_else(|| {
            Error::Param(format!(
                "{}: unsupported output extension `{ext}` (use .png, .jpg or .webp)",
                path.display()
            ))
        })
    }

    /// The format for a name such as `png`, `jpeg`, `jpg` or `webp`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "webp" => Some(Format::WebP),
            _ => None,
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::WebP => "image/webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::WebP => ImageFormat::WebP,
        }
    }
}

/// Reads the format and dimensions from the header only.
pub fn probe(bytes: &[u8]) -> Result<(Format, u32, u32)> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string()))?;
    let format = match reader.format() {
        Some(ImageFormat::Jpeg) => Format::Jpeg,
        Some(ImageFormat::Png) => Format::Png,
        Some(ImageFormat::WebP) => Format::WebP,
        Some(other) => {
            return Err(Error::Image(format!(
                "{other:?} images are not supported (use JPEG, PNG or WebP)"
            )));
        }
        None if bytes.is_empty() => return Err(Error::Image("the file is empty".into())),
        None => {
            return Err(Error::Image(
                "not an image (unknown format; use JPEG, PNG or WebP)".into(),
            ));
        }
    };
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| Error::Image(format!("corrupt {format:?} header: {e}")))?;
    Ok((format, w, h))
}

/// Decodes JPEG/PNG/WebP bytes, refusing images over `max_pixels` before decoding them.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Picture> {
    let (format, w, h) = probe(bytes)?;
    let pixels = w as u64 * h as u64;
    if pixels > max_pixels {
        return Err(Error::TooLarge {
            width: w,
            height: h,
            pixels,
            limit: max_pixels,
        });
    }
    if pixels == 0 {
        return Err(Error::Image("the image has no pixels".into()));
    }
    if format == Format::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::Image("corrupt or truncated Jpeg image: no end-of-image marker after the last scan".into()));
    }
    refuse_animation(bytes, format)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(pixels * 16 + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| Error::Image(format!("corrupt {format:?} image: {e}")))?;
    let orientation = decoder.orientation().ok();
    let icc = decoder.icc_profile().ok().flatten();
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| Error::Image(format!("corrupt or truncated {format:?} image: {e}")))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    if let Some(icc) = icc {
        img = to_srgb(img, &icc);
    }
    Ok(Picture::from_dynamic(&img))
}

/// Refuses animated PNG (APNG) and animated WebP, naming the kind; GIF is not read at all.
fn refuse_animation(bytes: &[u8], format: Format) -> Result<()> {
    let animated = match format {
        Format::Png => image::codecs::png::PngDecoder::new(Cursor::new(bytes))
            .and_then(|d| d.is_apng())
            .map_err(|e| Error::Image(format!("corrupt Png image: {e}")))?,
        Format::WebP => image::codecs::webp::WebPDecoder::new(Cursor::new(bytes))
            .map_err(|e| Error::Image(format!("corrupt WebP image: {e}")))?
            .has_animation(),
        Format::Jpeg => false,
    };
    if animated {
        let kind = if format == Format::Png { "an animated PNG (APNG)" } else { "an animated WebP" };
        return Err(Error::Image(format!(
            "{kind}: animations are not supported; styleforge stylises still images (export one frame as a still image)"
        )));
    }
    Ok(())
}

/// The sRGB profile embedded in every output, encoded once. `moxcms` stamps the current time
/// into the header's creation date (bytes 24..36, six big-endian `u16`s); a fixed date keeps
/// outputs the same bytes from run to run.
pub(crate) fn srgb_icc() -> &'static [u8] {
    static ICC: OnceLock<Vec<u8>> = OnceLock::new();
    ICC.get_or_init(|| {
        let mut icc = ColorProfile::new_srgb().encode().unwrap_or_default();
        if icc.len() >= 36 {
            for (i, v) in [2025u16, 1, 1, 0, 0, 0].into_iter().enumerate() {
                icc[24 + 2 * i..26 + 2 * i].copy_from_slice(&v.to_be_bytes());
            }
        }
        icc
    })
}

/// Converts `img` from the colour space of its ICC profile to sRGB (8 bits per channel, alpha
/// kept). RGB and grey profiles are converted; a profile that does not parse, or of another
/// colour space (CMYK, which the JPEG decoder has already turned into RGB), leaves the pixels as
/// they are, with a warning; styleforge's own sRGB profile is skipped.
pub fn to_srgb(img: DynamicImage, icc: &[u8]) -> DynamicImage {
    if icc == srgb_icc() {
        return img;
    }
    let profile = match ColorProfile::new_from_slice(icc) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("the image's ICC profile does not parse ({e}); its colours are read as sRGB");
            return img;
        }
    };
    let srgb = ColorProfile::new_srgb();
    let opts = TransformOptions::default();
    let converted = match profile.color_space {
        DataColorSpace::Rgb => {
            let has_alpha = img.color().has_alpha();
            let mut rgba = img.to_rgba8();
            let result = profile.create_transform_8bit(Layout::Rgba, &srgb, Layout::Rgba, opts).and_then(|t| {
                let src = rgba.as_raw().clone();
                t.transform(&src, &mut rgba)
            });
            result.map(|()| if has_alpha { DynamicImage::ImageRgba8(rgba) } else { DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).to_rgb8()) })
        }
        DataColorSpace::Gray if !img.color().has_color() => {
            let has_alpha = img.color().has_alpha();
            let gray = img.to_luma_alpha8();
            let mut rgba = image::RgbaImage::new(gray.width(), gray.height());
            let result = profile.create_transform_8bit(Layout::GrayAlpha, &srgb, Layout::Rgba, opts).and_then(|t| t.transform(gray.as_raw(), &mut rgba));
            result.map(|()| if has_alpha { DynamicImage::ImageRgba8(rgba) } else { DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).to_rgb8()) })
        }
        other => {
            tracing::debug!("ICC profile of colour space {other:?} left as decoded");
            return img;
        }
    };
    match converted {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("the image's ICC profile cannot be applied ({e}); its colours are read as sRGB");
            img
        }
    }
}

/// Whether a JPEG stream ends its last scan with an end-of-image marker. Entropy-coded data
/// never contains `FF D9` (0xFF bytes are stuffed), so a file cut short has none after its last
/// start-of-scan; the decoder alone would fill the missing rows with grey.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |m: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == m);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

/// Reads and decodes an image file.
pub fn read(path: &Path, max_pixels: u64) -> Result<Picture> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, max_pixels).map_err(|e| in_file(path, e))
}

/// An image error about the file at `path`, naming it (other errors as they are).
pub fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Image(m) => Error::Image(format!("{}: {m}", path.display())),
        Error::Video(m) => Error::Video(format!("{}: {m}", path.display())),
        other => other,
    }
}

impl Picture {
    /// Converts a decoded image (any colour type) to 8-bit sRGB planes, keeping alpha if present.
    pub fn from_dynamic(img: &DynamicImage) -> Self {
        let has_alpha = img.color().has_alpha();
        let rgba = img.to_rgba8();
        let (width, height) = rgba.dimensions();
        let n = (width * height) as usize;
        let mut rgb = vec![0f32; 3 * n];
        let mut alpha = has_alpha.then(|| vec![0u8; n]);
        for (i, p) in rgba.pixels().enumerate() {
            rgb[i] = p[0] as f32;
            rgb[n + i] = p[1] as f32;
            rgb[2 * n + i] = p[2] as f32;
            if let Some(a) = alpha.as_mut() {
                a[i] = p[3];
            }
        }
        Self {
            width,
            height,
            rgb,
            alpha,
        }
    }

    /// A picture from planar RGB floats.
    pub fn from_planes(width: u32, height: u32, rgb: Vec<f32>) -> Self {
        debug_assert_eq!(rgb.len(), 3 * (width * height) as usize);
        Self {
            width,
            height,
            rgb,
            alpha: None,
        }
    }

    /// Number of pixels.
    pub fn pixels(&self) -> usize {
        (self.width * self.height) as usize
    }

    /// Converts back to 8-bit (rounding, clamped), with alpha when present.
    pub fn to_dynamic(&self) -> DynamicImage {
        let n = self.pixels();
        let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        match &self.alpha {
            Some(a) => {
                let mut buf = Vec::with_capacity(4 * n);
                for i in 0..n {
                    buf.extend_from_slice(&[
                        q(self.rgb[i]),
                        q(self.rgb[n + i]),
                        q(self.rgb[2 * n + i]),
                        a[i],
                    ]);
                }
                DynamicImage::ImageRgba8(
                    image::RgbaImage::from_raw(self.width, self.height, buf).expect("sized"),
                )
            }
            None => {
                let mut buf = Vec::with_capacity(3 * n);
                for i in 0..n {
                    buf.extend_from_slice(&[
                        q(self.rgb[i]),
                        q(self.rgb[n + i]),
                        q(self.rgb[2 * n + i]),
                    ]);
                }
                DynamicImage::ImageRgb8(
                    image::RgbImage::from_raw(self.width, self.height, buf).expect("sized"),
                )
            }
        }
    }

    /// Resamples to `width`×`height` (Lanczos3), alpha included.
    pub fn resize(&self, width: u32, height: u32) -> Self {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let n = self.pixels();
        let mut planes = Vec::with_capacity(3 * (width * height) as usize);
        for c in 0..3 {
            let plane = image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(
                self.width,
                self.height,
                // The image crate resamples float pixels as 0..1 values.
                self.rgb[c * n..(c + 1) * n].iter().map(|v| v / 255.0).collect(),
            )
            .expect("sized");
            let r = image::imageops::resize(
                &plane,
                width,
                height,
                image::imageops::FilterType::Lanczos3,
            );
            planes.extend(r.into_raw().into_iter().map(|v| (v * 255.0).clamp(0.0, 255.0)));
        }
        let alpha = self.alpha.as_ref().map(|a| {
            let img =
                image::GrayImage::from_raw(self.width, self.height, a.clone()).expect("sized");
            image::imageops::resize(&img, width, height, image::imageops::FilterType::Triangle)
                .into_raw()
        });
        Self {
            width,
            height,
            rgb: planes,
            alpha,
        }
    }

    /// This picture placed at (`x`, `y`) in a `width`×`height` canvas whose other pixels repeat
    /// the nearest edge pixel (alpha included). The canvas must hold the picture.
    pub fn pad_edges(&self, width: u32, height: u32, x: u32, y: u32) -> Self {
        assert!(x + self.width <= width && y + self.height <= height, "the canvas holds the picture");
        let (sw, sh) = (self.width as usize, self.height as usize);
        let (w, h) = (width as usize, height as usize);
        let src = |cx: usize, cy: usize| {
            let sx = cx.saturating_sub(x as usize).min(sw - 1);
            let sy = cy.saturating_sub(y as usize).min(sh - 1);
            sy * sw + sx
        };
        let (n, sn) = (w * h, sw * sh);
        let mut rgb = vec![0f32; 3 * n];
        for c in 0..3 {
            for cy in 0..h {
                for cx in 0..w {
                    rgb[c * n + cy * w + cx] = self.rgb[c * sn + src(cx, cy)];
                }
            }
        }
        let alpha = self
            .alpha
            .as_ref()
            .map(|a| (0..h).flat_map(|cy| (0..w).map(move |cx| (cx, cy))).map(|(cx, cy)| a[src(cx, cy)]).collect());
        Self { width, height, rgb, alpha }
    }

    /// The `width`×`height` region whose top-left corner is (`x`, `y`), alpha included. The
    /// region must lie inside the picture.
    pub fn crop(&self, x: u32, y: u32, width: u32, height: u32) -> Self {
        assert!(x + width <= self.width && y + height <= self.height, "the region lies inside the picture");
        let (sw, n) = (self.width as usize, self.pixels());
        let (x, y, w, h) = (x as usize, y as usize, width as usize, height as usize);
        let rows = |plane: usize| (y..y + h).map(move |r| plane * n + r * sw + x);
        let mut rgb = Vec::with_capacity(3 * w * h);
        for c in 0..3 {
            for start in rows(c) {
                rgb.extend_from_slice(&self.rgb[start..start + w]);
            }
        }
        let alpha = self.alpha.as_ref().map(|a| rows(0).flat_map(|start| a[start..start + w].iter().copied()).collect());
        Self { width, height, rgb, alpha }
    }

    /// Scales down so the longer side is at most `max_side` (never up), keeping the aspect ratio.
    pub fn fit_within(&self, max_side: u32) -> Self {
        let long = self.width.max(self.height);
        if long <= max_side {
            return self.clone();
        }
        let s = max_side as f64 / long as f64;
        let w = ((self.width as f64 * s).round() as u32).max(1);
        let h = ((self.height as f64 * s).round() as u32).max(1);
        self.resize(w, h)
    }

    /// Like [`Picture::fit_within`], but never scales the short side below `min_short` (or the
    /// picture's own short side, when smaller): thin pictures keep enough pixels across for a
    /// network's statistics pass, at the price of a long side over `max_side`.
    pub fn fit_within_keeping(&self, max_side: u32, min_short: u32) -> Self {
        let (short, long) = (self.width.min(self.height).max(1), self.width.max(self.height));
        let keep = (min_short.min(short) as u64 * long as u64).div_ceil(short as u64) as u32;
        self.fit_within(max_side.max(keep))
    }

    /// Encodes in `format` (JPEG quality 92; alpha dropped for JPEG).
    pub fn encode(&self, format: Format) -> Result<Vec<u8>> {
        let mut out = Cursor::new(Vec::new());
        let img = self.to_dynamic();
        let failed = |e: image::ImageError| Error::Image(e.to_string());
        // Tagged sRGB in every format: the encoders here all take an ICC profile.
        let tag = |enc: &mut dyn ImageEncoderTag| {
            if let Err(e) = enc.tag(srgb_icc().to_vec()) {
                tracing::debug!("output left untagged: {e}");
            }
        };
        match format {
            Format::Jpeg => {
                let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
                let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92);
                tag(&mut enc);
                rgb.write_with_encoder(enc).map_err(failed)?;
            }
            Format::Png => {
                let mut enc = image::codecs::png::PngEncoder::new(&mut out);
                tag(&mut enc);
                img.write_with_encoder(enc).map_err(failed)?;
            }
            Format::WebP => {
                let mut enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
                tag(&mut enc);
                img.write_with_encoder(enc).map_err(failed)?;
            }
        }
        Ok(out.into_inner())
    }

    /// Writes to `path` in the format its extension names, atomically (temp file then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.encode(Format::from_path(path)?)?;
        write_atomic(path, &bytes)
    }
}

/// An encoder that can embed an ICC profile (object-safe view of [`ImageEncoder`]).
trait ImageEncoderTag {
    fn tag(&mut self, icc: Vec<u8>) -> std::result::Result<(), image::error::UnsupportedError>;
}

impl<E: ImageEncoder> ImageEncoderTag for E {
    fn tag(&mut self, icc: Vec<u8>) -> std::result::Result<(), image::error::UnsupportedError> {
        self.set_icc_profile(icc)
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place, creating the
/// parent folder when it is missing. Errors name `path` (never the temporary file, which is
/// removed on failure), so nothing is left half-written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.exists() && !dir.is_dir() {
        return Err(Error::io(path, std::io::Error::other(format!("{} is a file, not a folder", dir.display()))));
    }
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(path, e))?;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let done = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    done.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
