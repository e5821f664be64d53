//! Stylising a sequence of frames with one method: every frame of an animated GIF, PNG or WebP
//! through [`Method::run`], made consistent with the frames before it ([`crate::temporal`]) and
//! written back in the animation's format with its timing and loop count. Frames stream from the
//! decoder through the method into the encoder (see [`crate::animation`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;

use crate::animation::{AnimationFormat, AnimationInfo, Frames, Limits, Writer};
use crate::error::{Error, Result};
use crate::library::Loaded;
use crate::methods::{Control, Input, Method, Params, Progress};
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

/// Stylises every frame of the animation in `bytes` with `method` and writes the result as
/// `format` with the same frame delays and loop count. `template` gives the styles and mask
/// (its content is ignored; each frame is the content in turn). `progress` is told
/// `(frames done, frames declared)` after each frame. With `consistency`, each stylised frame
/// follows the previous output where the input only moved ([`Consistency`]); `None` stylises
/// every frame on its own. A set `cancel` flag stops between frames and gives `Ok(None)`:
/// nothing is returned half-made.
///
/// # Errors
/// Not an animation, limits, corrupt frames, the method's own errors.
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
    let frames = Frames::open(bytes, limits)?;
    let info = frames.info();
    let mut writer: Option<Writer> = None;
    let mut temporal = consistency.map(Consistency::new);
    let mut done = 0u32;
    for frame in frames {
        if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        let frame = frame?;
        let input = Input { content: frame.picture, ..template.clone() };
        let mut quiet = |_: &Progress<'_>| {};
        let out = method.run(model, &input, params, device, &mut Control::new(None, &mut quiet))?;
        let pic = match &mut temporal {
            // The flow is measured on the input at the output's size (`max_size` may shrink it).
            Some(t) if (out.picture.width, out.picture.height) == (input.content.width, input.content.height) => t.next(&input.content, out.picture),
            Some(t) => t.next(&input.content.resize(out.picture.width, out.picture.height), out.picture),
            None => out.picture,
        };
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
