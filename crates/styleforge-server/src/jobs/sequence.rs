//! Videos and animations in the service. Uploads are checked from the container before any
//! frame is decoded ([`check_upload`]: frame count, duration, frame size against the
//! configuration), and a stylisation of one always runs as a job ([`execute`]): every frame
//! through the engine's [`FrameStylizer`] in the consistent mode, with per-frame progress, into
//! the same kind of animation (GIF, APNG, animated WebP) or a video (MP4 or WebM through FFmpeg,
//! audio kept).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use styleforge_core::animation::{self, AnimationFormat};
use styleforge_core::image_io::{self, Picture};
use styleforge_core::methods::{Input, Progress};
use styleforge_core::sequence::{FrameStylizer, stylize_animation};
use styleforge_core::temporal::ConsistencySettings;
use styleforge_core::video::{self, Tools, VideoFormat, VideoLimits};

use crate::jobs::run::Run;
use crate::jobs::{JobError, JobResult, Output, RunEnd, Timings};

/// What an upload holds: `image`, `animation` or `video` (the `media` of an image row).
pub mod media {
    /// A still image.
    pub const IMAGE: &str = "image";
    /// An animated GIF, APNG or animated WebP.
    pub const ANIMATION: &str = "animation";
    /// A video file (MP4, MOV, WebM, Matroska, AVI).
    pub const VIDEO: &str = "video";
}

/// How a job stylises a video or an animation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceSpec {
    /// [`media::ANIMATION`] or [`media::VIDEO`].
    pub media: String,
    /// Weight of the previous output where the input only moved, 0..1 (0: frames on their own).
    pub temporal_weight: f32,
}

/// A checked video or animation upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// [`media::ANIMATION`] or [`media::VIDEO`].
    pub media: &'static str,
    /// Container: `gif`, `png` (APNG), `webp`; `mp4`, `mov`, `webm`, `avi`.
    pub format: &'static str,
    /// Frame width as displayed, in pixels.
    pub width: u32,
    /// Frame height as displayed.
    pub height: u32,
    /// Frames.
    pub frames: u64,
    /// Duration in milliseconds (videos).
    pub duration_ms: Option<i64>,
}

/// The limits of a configuration for sequences.
pub fn video_limits(config: &crate::Config) -> VideoLimits {
    VideoLimits { max_pixels: config.max_video_pixels, max_frames: config.max_video_frames, max_duration: config.max_video_seconds }
}

/// The container of video bytes, by their first bytes.
fn video_container(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        "webm"
    } else if bytes.starts_with(b"RIFF") {
        "avi"
    } else if bytes.get(8..12) == Some(b"qt  ") {
        "mov"
    } else {
        "mp4"
    }
}

/// Checks an upload that is a video or an animation against the configuration, from its
/// container (blocking: a video is written to a temporary file for `ffprobe`). `Ok(None)` for a
/// still image. Errors: `video_too_long` / `too_many_pixels` (413) over the limits, 422 for a
/// corrupt container, `unsupported_format` (415) for an animation whose format is not among the
/// configured `formats`, when sequences are switched off (`max_video_frames = 0`) or FFmpeg is
/// missing for a video.
pub fn check_upload(config: &crate::Config, bytes: &[u8]) -> JobResult<Option<Checked>> {
    let limits = video_limits(config);
    let off = |what: &str| {
        JobError::new(crate::jobs::ErrorKind::UnsupportedFormat, "unsupported_format", format!("{what} are not accepted by this server"))
    };
    if video::sniff(bytes) {
        if limits.max_frames == 0 {
            return Err(off("videos"));
        }
        let tools = Tools::find().map_err(|e| off(&format!("videos ({e})")))?;
        let file = tempfile::NamedTempFile::new().map_err(JobError::internal)?;
        std::fs::write(file.path(), bytes).map_err(JobError::internal)?;
        let info = video::probe(&tools, file.path())?;
        limits.check(&info)?;
        let (width, height) = info.display_size();
        return Ok(Some(Checked {
            media: media::VIDEO,
            format: video_container(bytes),
            width,
            height,
            frames: info.frames,
            duration_ms: Some((info.duration * 1000.0).round() as i64),
        }));
    }
    let Some(info) = animation::probe(bytes)? else { return Ok(None) };
    let format = info.format.extension();
    if !config.formats.iter().any(|f| f.eq_ignore_ascii_case(format)) {
        return Err(JobError::new(
            crate::jobs::ErrorKind::UnsupportedFormat,
            "unsupported_format",
            format!("{format} images are not accepted here (accepted: {})", config.formats.join(", ")),
        ));
    }
    if limits.max_frames == 0 {
        return Err(off("animations"));
    }
    let frames = info.frames.unwrap_or(0) as u64;
    let pixels = info.width as u64 * info.height as u64;
    if pixels > limits.max_pixels {
        return Err(styleforge_core::Error::TooLarge { width: info.width, height: info.height, pixels, limit: limits.max_pixels }.into());
    }
    if frames > limits.max_frames {
        return Err(styleforge_core::Error::Video(format!("the animation has {frames} frames, over the limit of {}", limits.max_frames)).into());
    }
    // The first frame decodes: a corrupt animation is refused now, not in its job.
    let mut all = animation::Frames::open(bytes, animation::Limits { max_pixels: limits.max_pixels, max_frames: limits.max_frames as u32 })?;
    all.next().ok_or_else(|| JobError::invalid("invalid_image", "the animation has no frames"))??;
    Ok(Some(Checked { media: media::ANIMATION, format: info.format.extension(), width: info.width, height: info.height, frames, duration_ms: None }))
}

/// The first frame of stored bytes, as a picture: a still image itself, an animation's first
/// frame, a video's first frame (through FFmpeg). For thumbnails. Errors: undecodable bytes,
/// images over `max_pixels`, FFmpeg missing for a video.
pub fn first_frame(bytes: &[u8], max_pixels: u64) -> styleforge_core::Result<Picture> {
    if video::sniff(bytes) {
        let file = tempfile::NamedTempFile::new().map_err(|e| styleforge_core::Error::io(std::env::temp_dir(), e))?;
        std::fs::write(file.path(), bytes).map_err(|e| styleforge_core::Error::io(file.path(), e))?;
        return video::first_frame(&Tools::find()?, file.path());
    }
    if animation::probe(bytes)?.is_some() {
        let limits = animation::Limits { max_pixels, max_frames: u32::MAX };
        return Ok(animation::Frames::open(bytes, limits)?.next().ok_or_else(|| styleforge_core::Error::Image("the animation has no frames".into()))??.picture);
    }
    image_io::decode(bytes, max_pixels)
}

/// The output format of a sequence job: the request's (`mp4`, `webm` for videos; `gif`, `png`,
/// `webp` for animations), else the source's kind (MP4 for any video, the animation's own
/// format). Errors: a format the source cannot become.
pub fn output_format(media: &str, source_format: &str, requested: Option<&str>) -> JobResult<String> {
    let invalid = |m: String| JobError::invalid("invalid_parameter", m);
    match media {
        media::VIDEO => match requested {
            None => Ok("mp4".into()),
            Some(f) if VideoFormat::from_extension(f).is_some() => Ok(VideoFormat::from_extension(f).expect("checked").extension().into()),
            Some(f) => Err(invalid(format!("a video is stylised into mp4 or webm, not {f}"))),
        },
        _ => match requested {
            None => Ok(source_format.into()),
            Some(f) if AnimationFormat::from_extension(f).is_some() => Ok(AnimationFormat::from_extension(f).expect("checked").extension().into()),
            Some(f) => Err(invalid(format!("an animation is stylised into gif, png (APNG) or webp, not {f}"))),
        },
    }
}

/// Runs a sequence job (blocking; under an inference slot): every frame of the content video or
/// animation through the spec's method, consistent over time by the spec's weight, encoded as
/// the spec's format. `progress` hears `stylizing frames` with (frames done, frames) after each
/// frame. Errors: the engine's (corrupt frames, limits, FFmpeg), as [`JobError`]s.
pub fn execute(run: &Run<'_>, seq: &SequenceSpec, progress: &mut dyn FnMut(&Progress<'_>)) -> JobResult<RunEnd> {
    let Run { spec, inputs, model, device, limits, .. } = *run;
    let (method, params) = run.method()?;
    let styles = run.styles()?;
    let template = Input { content: Picture::from_planes(1, 1, vec![0.0; 3]), styles, mask: None, mask_styles: Vec::new() };
    let consistency = (seq.temporal_weight > 0.0).then(|| ConsistencySettings { weight: seq.temporal_weight, ..Default::default() });
    progress(&Progress::stage(0.02, "reading the frames"));
    let started = Instant::now();
    let mut report = |done: u64, total: u64| {
        let total = total.max(done).max(1);
        let elapsed = started.elapsed();
        let eta = (done > 0).then(|| elapsed.mul_f64((total - done) as f64 / done as f64));
        progress(&Progress {
            fraction: 0.02 + 0.96 * done as f64 / total as f64,
            stage: format!("stylizing frame {done} of {total}"),
            step: Some((done, total)),
            eta,
            detail: None,
            preview: None,
        });
    };
    let t = Instant::now();
    let (bytes, width, height) = if seq.media == media::VIDEO {
        let format = VideoFormat::from_extension(&spec.format).ok_or_else(|| JobError::invalid("invalid_parameter", format!("`{}` is not a video format", spec.format)))?;
        let tools = Tools::find()?;
        let dir = tempfile::tempdir().map_err(JobError::internal)?;
        let (source, out) = (dir.path().join("source"), dir.path().join(format!("out.{}", format.extension())));
        std::fs::write(&source, &inputs.content).map_err(JobError::internal)?;
        let mut stylizer = FrameStylizer::new(method, model, &template, &params, device, consistency)?;
        let made = video::stylize_video(&mut stylizer, &tools, &source, &out, format, limits.video, run.cancel.as_deref(), &mut report)?;
        let Some(made) = made else { return Ok(RunEnd::Cancelled) };
        (std::fs::read(&out).map_err(JobError::internal)?, made.size.0, made.size.1)
    } else {
        let format = AnimationFormat::from_extension(&spec.format).ok_or_else(|| JobError::invalid("invalid_parameter", format!("`{}` is not an animation format", spec.format)))?;
        let alimits = animation::Limits { max_pixels: limits.video.max_pixels, max_frames: limits.video.max_frames.min(u32::MAX as u64) as u32 };
        let made = stylize_animation(method, model, &template, &params, device, &inputs.content, alimits, format, consistency, run.cancel.clone(), &mut |d, t| {
            report(d as u64, t.unwrap_or(d) as u64)
        })?;
        let Some(made) = made else { return Ok(RunEnd::Cancelled) };
        (made.bytes, made.size.0, made.size.1)
    };
    let timings = Timings { inference_ms: t.elapsed().as_secs_f64() * 1000.0, ..Default::default() };
    Ok(RunEnd::Done(Box::new(Output {
        bytes,
        width,
        height,
        timings,
        content_loss: None,
        style_loss: None,
        avatar: None,
    })))
}
