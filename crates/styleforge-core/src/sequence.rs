//! Stylising a sequence of frames with one method ([`FrameStylizer`]): every frame through
//! [`Method::run`], made consistent with the frames before it ([`crate::temporal`]). Animated
//! GIF, PNG and WebP are written back in their format with their timing and loop count
//! ([`stylize_animation`]); video files go through FFmpeg ([`crate::video`]). Frames stream from
//! the decoder through the method into the encoder.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;

use crate::animation::{AnimationFormat, AnimationInfo, Frames, Limits, Writer};
use crate::error::{Error, Result};
use crate::library::Loaded;
use crate::image_io::Picture;
use crate::methods::{Control, Execution, Input, Method, Params, Progress};
use crate::networks::layers::FrameNorm;
use crate::temporal::{Consistency, ConsistencySettings};

/// What [`stylize_animation`] made.
#[derive(Debug, Clone)]
pub struct AnimationOutcome {
    /// The written file.
    pub bytes: Vec<u8>,
    /// The source's container information.
    pub info: AnimationInfo,
    /// Frames stylised (all of the source's).
    pub frames: u32,
    /// Output frame size (the source's canvas after `max_size`).
    pub size: (u32, u32),
}

/// Stylises a sequence of frames one after another with one method, model and settings, each
/// frame made consistent with the output before it when a [`ConsistencySettings`] is given.
/// Animations, video files ([`crate::video`]) and live camera streams all go through it.
pub struct FrameStylizer<'a> {
    method: &'a dyn Method,
    model: &'a Loaded,
    template: Input,
    params: &'a Params,
    device: &'a Device,
    temporal: Option<Consistency>,
    /// Shared normalisation statistics and the previous input (for cuts), in consistent mode.
    norm: Option<(FrameNorm, Option<Picture>)>,
}

impl std::fmt::Debug for FrameStylizer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStylizer").field("method", &self.method.info().name).field("consistent", &self.temporal.is_some()).finish()
    }
}

impl<'a> FrameStylizer<'a> {
    /// A new sequence. `template` gives the styles and mask (its content is ignored; each frame
    /// is the content in turn). `consistency: None` stylises every frame on its own.
    ///
    /// # Errors
    /// [`Error::Param`] for a method that optimises one image at a time (Gatys): sequences use
    /// the feed-forward methods.
    pub fn new(
        method: &'a dyn Method,
        model: &'a Loaded,
        template: &Input,
        params: &'a Params,
        device: &'a Device,
        consistency: Option<ConsistencySettings>,
    ) -> Result<Self> {
        let info = method.info();
        if info.execution == Execution::Job {
            let feed_forward: Vec<&str> = crate::methods::all().filter(|m| m.info().execution != Execution::Job).map(|m| m.info().name).collect();
            return Err(Error::Param(format!(
                "method {} optimises one image at a time; animations, videos and live streams use {}",
                info.name,
                feed_forward.join(", ")
            )));
        }
        let norm = consistency.filter(|c| c.shared_statistics > 0.0).map(|c| (FrameNorm::new(c.shared_statistics), None));
        Ok(Self { method, model, template: template.clone(), params, device, temporal: consistency.map(Consistency::new), norm })
    }

    /// The method in use.
    pub fn method(&self) -> &'a dyn Method {
        self.method
    }

    /// Stylises the next frame (RGB 0..255, any size): the method's output, blended with the
    /// previous output along the optical flow in consistent mode. The output has the method's
    /// output size (the frame's size unless a `max_size` option shrinks it).
    ///
    /// # Errors
    /// The method's errors.
    pub fn next(&mut self, frame: Picture) -> Result<Picture> {
        if let (Some((norm, previous)), Some(t)) = (&mut self.norm, &self.temporal) {
            if previous.as_ref().is_some_and(|p| mean_abs_difference(p, &frame).is_none_or(|d| d > t.settings().cut)) {
                norm.reset();
            }
            *previous = Some(frame.clone());
        }
        let input = Input { content: frame, ..self.template.clone() };
        let mut quiet = |_: &Progress<'_>| {};
        let frame_norm = self.norm.as_mut().map(|(n, _)| n);
        let mut control = Control::new(None, &mut quiet).with_frame_norm(frame_norm);
        let out = self.method.run(self.model, &input, self.params, self.device, &mut control)?;
        Ok(match &mut self.temporal {
            // The flow is measured on the input at the output's size (`max_size` may shrink it).
            Some(t) if (out.picture.width, out.picture.height) == (input.content.width, input.content.height) => t.next(&input.content, out.picture),
            Some(t) => t.next(&input.content.resize(out.picture.width, out.picture.height), out.picture),
            None => out.picture,
        })
    }

    /// Forgets the previous frame (a cut, or a stream restarted): the next frame stands alone.
    pub fn reset(&mut self) {
        if let Some(t) = &mut self.temporal {
            *t = Consistency::new(t.settings());
        }
        if let Some((norm, previous)) = &mut self.norm {
            norm.reset();
            *previous = None;
        }
    }
}

/// Mean absolute RGB difference (0..255) of two pictures of one size; `None` for other sizes.
fn mean_abs_difference(a: &Picture, b: &Picture) -> Option<f32> {
    if (a.width, a.height) != (b.width, b.height) {
        return None;
    }
    let sum: f64 = a.rgb.iter().zip(&b.rgb).map(|(x, y)| (x - y).abs() as f64).sum();
    Some((sum / a.rgb.len().max(1) as f64) as f32)
}

/// Stylises every frame of the animation in `bytes` with `method` and writes the result as
/// `format` with the same frame delays and loop count. `template` gives the styles and mask
/// (its content is ignored; each frame is the content in turn). `progress` is told
/// `(frames done, frames declared)` after each frame. With `consistency`, each stylised frame
/// follows the previous output where the input only moved ([`Consistency`]); `None` stylises
/// every frame on its own. A set `cancel` flag stops between frames and gives `Ok(None)`:
/// nothing is returned half-made.
///
/// # Errors
/// Not an animation, limits, corrupt frames, the method's own errors, a method that optimises
/// one image at a time.
#[allow(clippy::too_many_arguments)]
pub fn stylize_animation(
    method: &dyn Method,
    model: &Loaded,
    template: &Input,
    params: &Params,
    device: &Device,
    bytes: &[u8],
    limits: Limits,
    format: AnimationFormat,
    consistency: Option<ConsistencySettings>,
    cancel: Option<Arc<AtomicBool>>,
    progress: &mut dyn FnMut(u32, Option<u32>),
) -> Result<Option<AnimationOutcome>> {
    let mut stylizer = FrameStylizer::new(method, model, template, params, device, consistency)?;
    let frames = Frames::open(bytes, limits)?;
    let info = frames.info();
    let mut writer: Option<Writer> = None;
    let mut done = 0u32;
    for frame in frames {
        if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        let frame = frame?;
        let pic = stylizer.next(frame.picture)?;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(Writer::new(format, pic.width, pic.height, info.loop_count, info.frames.filter(|_| format == info.format))?),
        };
        w.push(&pic, frame.delay)?;
        done += 1;
        progress(done, info.frames);
    }
    let writer = writer.ok_or_else(|| Error::Image("the animation has no frames".into()))?;
    let size = writer.size();
    Ok(Some(AnimationOutcome { bytes: writer.finish()?, info, frames: done, size }))
}
