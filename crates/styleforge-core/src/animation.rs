//! Animated images: GIF, animated PNG (APNG) and animated WebP, read frame by frame and written
//! back in the same format with the same frame timing and loop count.
//!
//! Frames are whole canvases, composited as a viewer shows them (each format's disposal and
//! blending applied by the `image` crate's decoders), as [`Picture`]s with alpha. They stream:
//! [`Frames`] decodes one at a time and [`Writer`] encodes each as it comes, so memory holds a
//! frame or two, not the animation (the WebP writer keeps each frame's compressed bitstream).
//!
//! Written files: GIF through `image`'s encoder (a palette of up to 256 colours per frame,
//! NeuQuant; transparency kept as the palette's transparent index); APNG through the `png`
//! crate (8-bit RGBA, frames replacing the canvas, an sRGB chunk); WebP as the extended format
//! (`VP8X`, `ICCP` with the sRGB profile, `ANIM`, one `ANMF` per frame holding a lossless `VP8L`
//! bitstream from `image-webp`), per the WebP container specification
//! (<https://developers.google.com/speed/webp/docs/riff_container>).

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, Delay, DynamicImage, ImageDecoder, RgbaImage};

use crate::error::{Error, Result};
use crate::image_io::Picture;

/// The animated formats styleforge reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnimationFormat {
    /// GIF (animated or not: every GIF is read as a sequence of frames).
    Gif,
    /// Animated PNG (APNG).
    Png,
    /// Animated WebP.
    WebP,
}

impl AnimationFormat {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gif => "gif",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }

    /// The format of a file name's extension (`gif`, `png`/`apng`, `webp`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "gif" => Some(Self::Gif),
            "png" | "apng" => Some(Self::Png),
            "webp" => Some(Self::WebP),
            _ => None,
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Gif => "image/gif",
            Self::Png => "image/apng",
            Self::WebP => "image/webp",
        }
    }
}

/// What the container says before any frame is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnimationInfo {
    /// The format.
    pub format: AnimationFormat,
    /// Canvas width in pixels.
    pub width: u32,
    /// Canvas height in pixels.
    pub height: u32,
    /// The frame count: declared by the header (APNG, WebP) or counted (GIF, without decoding
    /// the frames).
    pub frames: Option<u32>,
    /// How many times the animation plays; 0 means forever.
    pub loop_count: u32,
}

/// One frame: the whole canvas and how long it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The composited canvas (alpha kept when the animation has any transparency).
    pub picture: Picture,
    /// Display time in milliseconds as a ratio (`numerator / denominator`), kept exact so a
    /// round trip gives the same timing.
    pub delay: (u32, u32),
}

impl Frame {
    /// The display time in whole milliseconds (rounded).
    pub fn delay_ms(&self) -> u32 {
        let (n, d) = self.delay;
        if d == 0 { 0 } else { ((n as u64 + d as u64 / 2) / d as u64) as u32 }
    }
}

/// Whether `bytes` hold an animation styleforge reads frame by frame: any GIF, a PNG with an
/// animation control chunk, a WebP with the animation flag. Stills of other formats and
/// undecodable bytes give `Ok(None)`; a corrupt header of an animated format is an error.
pub fn probe(bytes: &[u8]) -> Result<Option<AnimationInfo>> {
    let corrupt = |kind: &str, e: &dyn std::fmt::Display| Error::Image(format!("corrupt {kind} animation: {e}"));
    if bytes.starts_with(b"GIF8") {
        // Frames are counted (their LZW data skipped, not decoded) so limits apply before any
        // work; the loop extension is known once the frames have been walked.
        let mut opts = gif::DecodeOptions::new();
        opts.skip_frame_decoding(true);
        let mut d = opts.read_info(Cursor::new(bytes)).map_err(|e| corrupt("GIF", &e))?;
        let (width, height) = (d.width() as u32, d.height() as u32);
        let mut frames = 0u32;
        while d.read_next_frame().map_err(|e| corrupt("GIF", &e))?.is_some() {
            frames += 1;
        }
        // No NETSCAPE extension: the GIF plays once; a loop value of n repeats it n times more.
        let loop_count = match d.repeat() {
            gif::Repeat::Infinite => 0,
            gif::Repeat::Finite(n) => n as u32 + 1,
        };
        return Ok(Some(AnimationInfo { format: AnimationFormat::Gif, width, height, frames: Some(frames), loop_count }));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let mut r = png::Decoder::new(Cursor::new(bytes));
        r.set_ignore_text_chunk(true);
        let Ok(reader) = r.read_info() else { return Ok(None) };
        let info = reader.info();
        return Ok(info.animation_control().map(|actl| AnimationInfo {
            format: AnimationFormat::Png,
            width: info.width,
            height: info.height,
            frames: Some(actl.num_frames),
            loop_count: actl.num_plays,
        }));
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        let Ok(d) = image_webp::WebPDecoder::new(Cursor::new(bytes)) else { return Ok(None) };
        if !d.is_animated() {
            return Ok(None);
        }
        let (width, height) = d.dimensions();
        let loop_count = match d.loop_count() {
            image_webp::LoopCount::Forever => 0,
            image_webp::LoopCount::Times(n) => n.get() as u32,
        };
        return Ok(Some(AnimationInfo { format: AnimationFormat::WebP, width, height, frames: Some(d.num_frames()), loop_count }));
    }
    Ok(None)
}

/// Limits checked before and while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest canvas in pixels (width × height).
    pub max_pixels: u64,
    /// Most frames.
    pub max_frames: u32,
}

impl Default for Limits {
    /// 40 megapixels a frame, 2000 frames.
    fn default() -> Self {
        Self { max_pixels: 40_000_000, max_frames: 2000 }
    }
}

/// The frames of an animation, decoded one at a time.
pub struct Frames<'a> {
    info: AnimationInfo,
    inner: image::Frames<'a>,
    seen: u32,
    limits: Limits,
    alpha: bool,
}

impl std::fmt::Debug for Frames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames").field("info", &self.info).field("seen", &self.seen).finish()
    }
}

impl<'a> Frames<'a> {
    /// Opens an animation checked by [`probe`]: the canvas against `limits.max_pixels` and the
    /// declared frame count against `limits.max_frames` before any frame is decoded (a GIF's
    /// frames are counted as they come).
    ///
    /// # Errors
    /// Not an animation ([`probe`] gives `None`), limits exceeded, a corrupt container.
    pub fn open(bytes: &'a [u8], limits: Limits) -> Result<Self> {
        let info = probe(bytes)?.ok_or_else(|| Error::Image("not an animated GIF, PNG or WebP".into()))?;
        let pixels = info.width as u64 * info.height as u64;
        if pixels > limits.max_pixels {
            return Err(Error::TooLarge { width: info.width, height: info.height, pixels, limit: limits.max_pixels });
        }
        if pixels == 0 {
            return Err(Error::Image("the animation has no pixels".into()));
        }
        if let Some(n) = info.frames
            && n > limits.max_frames
        {
            return Err(Error::Image(format!("the animation has {n} frames, over the limit of {}", limits.max_frames)));
        }
        let corrupt = |e: image::ImageError| Error::Image(format!("corrupt {:?} animation: {e}", info.format));
        let mut lim = image::Limits::default();
        lim.max_image_width = Some(info.width);
        lim.max_image_height = Some(info.height);
        lim.max_alloc = Some(pixels * 16 + (64 << 20));
        let (inner, alpha) = match info.format {
            AnimationFormat::Gif => {
                let mut d = GifDecoder::new(Cursor::new(bytes)).map_err(corrupt)?;
                d.set_limits(lim).map_err(corrupt)?;
                (d.into_frames(), true)
            }
            AnimationFormat::Png => {
                let mut d = PngDecoder::new(Cursor::new(bytes)).map_err(corrupt)?;
                d.set_limits(lim).map_err(corrupt)?;
                let alpha = d.color_type().has_alpha();
                (d.apng().map_err(corrupt)?.into_frames(), alpha)
            }
            AnimationFormat::WebP => {
                let mut d = WebPDecoder::new(Cursor::new(bytes)).map_err(corrupt)?;
                d.set_limits(lim).map_err(corrupt)?;
                let alpha = d.color_type().has_alpha();
                (d.into_frames(), alpha)
            }
        };
        Ok(Self { info, inner, seen: 0, limits, alpha })
    }

    /// What the container declared.
    pub fn info(&self) -> AnimationInfo {
        self.info
    }
}

impl Iterator for Frames<'_> {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        let frame = match self.inner.next()? {
            Ok(f) => f,
            Err(e) => return Some(Err(Error::Image(format!("corrupt or truncated {:?} animation (frame {}): {e}", self.info.format, self.seen + 1)))),
        };
        self.seen += 1;
        if self.seen > self.limits.max_frames {
            return Some(Err(Error::Image(format!("the animation has over {} frames, the limit", self.limits.max_frames))));
        }
        let delay = frame.delay().numer_denom_ms();
        let canvas = frame.into_buffer();
        let opaque = canvas.pixels().all(|p| p[3] == 255);
        let img = DynamicImage::ImageRgba8(canvas);
        let mut picture = Picture::from_dynamic(&img);
        if opaque && !self.alpha {
            picture.alpha = None;
        }
        Some(Ok(Frame { picture, delay }))
    }
}

/// A growable byte buffer shared between an encoder that owns its writer and the [`Writer`]
/// that takes the bytes out when the encoder is done.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned buffer"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Vec<u8> {
        self.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}

/// Writes an animation frame by frame in one format; [`Writer::finish`] gives the file's bytes.
pub struct Writer {
    format: AnimationFormat,
    width: u32,
    height: u32,
    loop_count: u32,
    frames: u32,
    out: Shared,
    state: State,
}

enum State {
    Gif(Box<GifEncoder<Shared>>),
    /// APNG with the frame count known up front: streamed.
    Png { writer: Box<png::Writer<Shared>>, expected: u32 },
    /// APNG of an unknown frame count (its header needs it): frames kept until `finish`.
    PngBuffered(Vec<(RgbaImage, (u32, u32))>),
    /// Each frame's `ANMF` payload.
    WebP(Vec<Vec<u8>>),
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("format", &self.format).field("frames", &self.frames).finish()
    }
}

fn apng_error(e: png::EncodingError) -> Error {
    Error::Image(format!("writing APNG: {e}"))
}

/// A PNG encoder for `frames` RGBA frames that play `loop_count` times, header written.
fn apng_writer<W: std::io::Write>(w: W, width: u32, height: u32, frames: u32, loop_count: u32) -> Result<png::Writer<W>> {
    let mut enc = png::Encoder::new(w, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    enc.set_animated(frames, loop_count).map_err(apng_error)?;
    enc.set_dispose_op(png::DisposeOp::None).map_err(apng_error)?;
    enc.set_blend_op(png::BlendOp::Source).map_err(apng_error)?;
    enc.write_header().map_err(apng_error)
}

fn apng_frame<W: std::io::Write>(w: &mut png::Writer<W>, rgba: &RgbaImage, (n, d): (u32, u32)) -> Result<()> {
    let (n, d) = fit_u16(n, d.saturating_mul(1000));
    w.set_frame_delay(n, d).map_err(apng_error)?;
    w.write_image_data(rgba.as_raw()).map_err(apng_error)
}

impl Writer {
    /// A writer of `width`×`height` frames that plays `loop_count` times (0: forever).
    /// `frames`, when known (the source's declared count), lets APNG stream instead of keeping
    /// the frames until [`Writer::finish`]; pushing a different number is then an error.
    pub fn new(format: AnimationFormat, width: u32, height: u32, loop_count: u32, frames: Option<u32>) -> Result<Self> {
        if width == 0 || height == 0 || width > 16_384 || height > 16_384 {
            return Err(Error::Image(format!("cannot write a {width}×{height} animation")));
        }
        let out = Shared::default();
        let state = match (format, frames) {
            (AnimationFormat::Gif, _) => {
                let mut enc = GifEncoder::new_with_speed(out.clone(), 10);
                // Plays forever: loop value 0; once: no loop extension; n times: n - 1 repeats.
                let repeat = match loop_count {
                    0 => Some(Repeat::Infinite),
                    1 => None,
                    n => Some(Repeat::Finite((n - 1).min(u16::MAX as u32) as u16)),
                };
                if let Some(r) = repeat {
                    enc.set_repeat(r).map_err(|e| Error::Image(format!("writing GIF: {e}")))?;
                }
                State::Gif(Box::new(enc))
            }
            (AnimationFormat::Png, Some(n)) if n > 0 => {
                State::Png { writer: Box::new(apng_writer(out.clone(), width, height, n, loop_count)?), expected: n }
            }
            (AnimationFormat::Png, _) => State::PngBuffered(Vec::new()),
            (AnimationFormat::WebP, _) => State::WebP(Vec::new()),
        };
        Ok(Self { format, width, height, loop_count, frames: 0, out, state })
    }

    /// Adds a frame of the writer's size shown for `delay` (milliseconds as a ratio).
    pub fn push(&mut self, picture: &Picture, delay: (u32, u32)) -> Result<()> {
        if (picture.width, picture.height) != (self.width, self.height) {
            return Err(Error::Image(format!(
                "frame of {}×{} in a {}×{} animation",
                picture.width, picture.height, self.width, self.height
            )));
        }
        let rgba = picture.to_dynamic().to_rgba8();
        let (n, d) = if delay.1 == 0 { (0, 1) } else { delay };
        match &mut self.state {
            State::Gif(enc) => {
                let delay = Delay::from_numer_denom_ms(n, d);
                enc.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay)).map_err(|e| Error::Image(format!("writing GIF: {e}")))?
            }
            State::Png { writer, expected } => {
                if self.frames >= *expected {
                    return Err(Error::Image(format!("the APNG was declared with {expected} frames")));
                }
                apng_frame(writer, &rgba, (n, d))?
            }
            State::PngBuffered(frames) => frames.push((rgba, (n, d))),
            State::WebP(frames) => {
                let mut still = Vec::new();
                image_webp::WebPEncoder::new(&mut still)
                    .encode(rgba.as_raw(), self.width, self.height, image_webp::ColorType::Rgba8)
                    .map_err(|e| Error::Image(format!("writing WebP: {e}")))?;
                // A simple-format still: RIFF, size, WEBP, then the VP8L chunk.
                let chunk = still.get(12..).filter(|c| c.starts_with(b"VP8L")).ok_or_else(|| Error::Image("writing WebP: unexpected encoder output".into()))?;
                let ms = ((n as u64 + d as u64 / 2) / d as u64).min(0xFF_FFFF) as u32;
                let mut anmf = Vec::with_capacity(16 + chunk.len());
                anmf.extend_from_slice(&[0; 6]); // frame X and Y offsets (/2), 24 bits each
                anmf.extend_from_slice(&(self.width - 1).to_le_bytes()[..3]);
                anmf.extend_from_slice(&(self.height - 1).to_le_bytes()[..3]);
                anmf.extend_from_slice(&ms.to_le_bytes()[..3]);
                anmf.push(0b10); // no blending (the frame replaces the canvas), no disposal
                anmf.extend_from_slice(chunk);
                frames.push(anmf);
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// The frame size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Frames written so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// The file's bytes.
    ///
    /// # Errors
    /// No frame was pushed, or fewer than an APNG declared; an encoder error.
    pub fn finish(self) -> Result<Vec<u8>> {
        if self.frames == 0 {
            return Err(Error::Image("an animation needs at least one frame".into()));
        }
        match self.state {
            State::Gif(enc) => {
                // The encoder writes the GIF trailer when dropped.
                drop(enc);
                Ok(self.out.take())
            }
            State::Png { writer, expected } => {
                if self.frames != expected {
                    return Err(Error::Image(format!("the APNG was declared with {expected} frames; {} were written", self.frames)));
                }
                writer.finish().map_err(apng_error)?;
                Ok(self.out.take())
            }
            State::PngBuffered(frames) => {
                let mut out = Vec::new();
                let mut w = apng_writer(&mut out, self.width, self.height, frames.len() as u32, self.loop_count)?;
                for (rgba, delay) in &frames {
                    apng_frame(&mut w, rgba, *delay)?;
                }
                w.finish().map_err(apng_error)?;
                Ok(out)
            }
            State::WebP(frames) => Ok(write_webp(self.width, self.height, self.loop_count, &frames)),
        }
    }
}

/// `n/d` as a ratio of two `u16`s (APNG's delay in seconds), reduced, then scaled down when
/// still too large.
fn fit_u16(n: u32, d: u32) -> (u16, u16) {
    let g = gcd(n, d).max(1);
    let (mut n, mut d) = (n / g, d / g);
    while n > u16::MAX as u32 || d > u16::MAX as u32 {
        n = n.div_ceil(2);
        d = d.div_ceil(2).max(1);
    }
    (n as u16, d as u16)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn write_webp(width: u32, height: u32, loop_count: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, name: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(name);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
    }
    let mut body = Vec::new();
    body.extend_from_slice(b"WEBP");
    let mut vp8x = vec![0b0011_0010u8, 0, 0, 0]; // ICC profile, alpha, animation
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    chunk(&mut body, b"VP8X", &vp8x);
    chunk(&mut body, b"ICCP", crate::image_io::srgb_icc());
    let mut anim = vec![0u8; 4]; // background colour (BGRA), unused by viewers that composite
    anim.extend_from_slice(&(loop_count.min(u16::MAX as u32) as u16).to_le_bytes());
    chunk(&mut body, b"ANIM", &anim);
    for f in frames {
        chunk(&mut body, b"ANMF", f);
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three solid-colour frames with a moving square, 20×12.
    fn frames() -> Vec<(Picture, (u32, u32))> {
        [([200u8, 30, 40], 40), ([20, 180, 60], 70), ([30, 40, 220], 100)]
            .into_iter()
            .enumerate()
            .map(|(i, (c, ms))| {
                let img = image::RgbImage::from_fn(20, 12, |x, y| if (x as usize / 4) == i && y < 4 { image::Rgb([255, 255, 255]) } else { image::Rgb(c) });
                (Picture::from_dynamic(&DynamicImage::ImageRgb8(img)), (ms, 1))
            })
            .collect()
    }

    fn write(format: AnimationFormat, loops: u32, declared: Option<u32>) -> Vec<u8> {
        let mut w = Writer::new(format, 20, 12, loops, declared).unwrap();
        for (p, d) in frames() {
            w.push(&p, d).unwrap();
        }
        assert_eq!(w.frames(), 3);
        w.finish().unwrap()
    }

    #[test]
    fn every_format_round_trips_frames_timing_and_loops() {
        for (format, declared) in [
            (AnimationFormat::Gif, None),
            (AnimationFormat::Png, Some(3)),
            (AnimationFormat::Png, None),
            (AnimationFormat::WebP, None),
        ] {
            for loops in [0, 1, 3] {
                let bytes = write(format, loops, declared);
                let info = probe(&bytes).unwrap().unwrap_or_else(|| panic!("{format:?} is animated"));
                assert_eq!((info.format, info.width, info.height, info.loop_count), (format, 20, 12, loops), "{format:?}");
                assert_eq!(info.frames, Some(3), "{format:?}");
                let got: Vec<Frame> = Frames::open(&bytes, Limits::default()).unwrap().collect::<Result<_>>().unwrap();
                assert_eq!(got.len(), 3, "{format:?}");
                for (g, (p, (ms, _))) in got.iter().zip(frames()) {
                    assert_eq!(g.delay_ms(), ms, "{format:?} delay");
                    assert_eq!((g.picture.width, g.picture.height), (20, 12));
                    // Two colours a frame: exact in every format, GIF's palette included.
                    assert_eq!(g.picture.rgb, p.rgb, "{format:?} pixels");
                }
            }
        }
    }

    #[test]
    fn alpha_is_kept() {
        let mut p = frames()[0].0.clone();
        p.alpha = Some((0..240).map(|i| if i % 3 == 0 { 0 } else { 255 }).collect());
        for format in [AnimationFormat::Png, AnimationFormat::WebP, AnimationFormat::Gif] {
            let mut w = Writer::new(format, 20, 12, 0, None).unwrap();
            w.push(&p, (50, 1)).unwrap();
            w.push(&p, (50, 1)).unwrap();
            let bytes = w.finish().unwrap();
            let got = Frames::open(&bytes, Limits::default()).unwrap().next().unwrap().unwrap();
            assert_eq!(got.picture.alpha, p.alpha, "{format:?}");
        }
    }

    #[test]
    fn limits_and_bad_input_are_errors() {
        let bytes = write(AnimationFormat::WebP, 0, None);
        let few = Limits { max_frames: 2, ..Limits::default() };
        assert!(Frames::open(&bytes, few).unwrap_err().to_string().contains("3 frames, over the limit of 2"));
        let gif = write(AnimationFormat::Gif, 0, None);
        assert!(Frames::open(&gif, few).unwrap_err().to_string().contains("3 frames, over the limit of 2"));
        let small = Limits { max_pixels: 100, ..Limits::default() };
        assert!(matches!(Frames::open(&bytes, small), Err(Error::TooLarge { width: 20, height: 12, .. })));
        for cut in [bytes.len() / 2, bytes.len() - 7] {
            let r = Frames::open(&bytes[..cut], Limits::default()).and_then(|f| f.collect::<Result<Vec<_>>>());
            assert!(r.is_err(), "truncated at {cut}");
        }
        let mut w = Writer::new(AnimationFormat::Png, 20, 12, 0, Some(2)).unwrap();
        w.push(&frames()[0].0, (10, 1)).unwrap();
        assert!(w.finish().unwrap_err().to_string().contains("declared with 2 frames"));
        let mut w = Writer::new(AnimationFormat::WebP, 20, 12, 0, None).unwrap();
        assert!(w.push(&frames()[0].0.crop(0, 0, 10, 10), (10, 1)).is_err());
        assert!(Writer::new(AnimationFormat::Gif, 0, 5, 0, None).is_err());
        assert!(Writer::new(AnimationFormat::Gif, 5, 5, 0, None).unwrap().finish().is_err());
    }

    #[test]
    fn stills_are_not_animations() {
        let p = &frames()[0].0;
        for format in [crate::image_io::Format::Png, crate::image_io::Format::WebP, crate::image_io::Format::Jpeg] {
            assert_eq!(probe(&p.encode(format).unwrap()).unwrap(), None, "{format:?}");
        }
        assert_eq!(probe(b"not an image").unwrap(), None);
        assert!(probe(b"GIF89a\x01").is_err(), "a corrupt GIF header");
    }

    #[test]
    fn odd_delays_fit_apng() {
        assert_eq!(fit_u16(70, 1000), (7, 100));
        assert_eq!(fit_u16(1, 3000), (1, 3000));
        let (n, d) = fit_u16(200_000, 3 * 1000);
        assert!((n as f64 / d as f64 - 200.0 / 3.0).abs() < 0.01, "{n}/{d}");
    }
}
