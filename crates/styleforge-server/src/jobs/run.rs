//! Running one stylisation (blocking; called under an inference slot): decode the inputs, run
//! the spec's method from the engine's registry, encode, with timings, progress and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::Device;
use styleforge_core::image_io::{self, Format, Picture};
use styleforge_core::avatar;
use styleforge_core::library::Loaded;
use styleforge_core::methods::adain::Style;
use styleforge_core::methods::{self, Control, Input, Method, Params, Progress};

use crate::jobs::{AvatarFraming, Inputs, JobError, JobResult, JobSpec, Output, RunEnd, Timings};

/// Limits and defaults from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Pixel limit for decoding.
    pub max_pixels: u64,
    /// Iterations when a request for an iterating method gives none.
    pub gatys_iterations: u32,
    /// Output size of an iterating method when the request gives none.
    pub gatys_max_size: u32,
    /// Limits of videos and animations.
    pub video: styleforge_core::video::VideoLimits,
}

impl Limits {
    /// The limits of a configuration.
    pub fn of(config: &crate::Config) -> Self {
        Limits {
            max_pixels: config.max_pixels,
            gatys_iterations: config.gatys_iterations,
            gatys_max_size: config.gatys_max_size,
            video: crate::jobs::sequence::video_limits(config),
        }
    }
}

/// The output format named by a request (`png`, `jpeg`/`jpg`, `webp`).
pub fn output_format(name: &str) -> JobResult<Format> {
    Format::from_name(name).ok_or_else(|| {
        JobError::invalid("invalid_parameter", format!("unknown output format `{name}` (use png, jpeg or webp)"))
    })
}

/// The registry's parameters for a spec: its options, with the server's defaults for methods
/// that iterate (`iterations`, and an output size, when the request gives none).
pub fn params(spec: &JobSpec, limits: Limits) -> JobResult<Params> {
    let method = methods::get(&spec.method)?;
    let takes = |o: &str| method.info().takes(o);
    let mut p = Params::new();
    p.set_number("strength", Some(spec.strength as f64))?;
    p.set_flag("preserve_color", spec.preserve_color)?;
    let iterates = takes("iterations");
    let max_size = match spec.max_size {
        None if iterates => Some(limits.gatys_max_size),
        m => m,
    };
    p.set_integer("max_size", max_size.map(u64::from))?;
    if iterates {
        p.set_integer("iterations", Some(spec.iterations.unwrap_or(limits.gatys_iterations) as u64))?;
    } else {
        p.set_integer("iterations", spec.iterations.map(u64::from))?;
    }
    methods::validate(method, &p, &|o| format!("`{}`", o.name))?;
    Ok(p)
}

/// A job to run: its resolved spec and fetched inputs, the loaded model (a kind the spec's
/// method accepts), the device and limits it runs under, and the flag that cancels it.
pub struct Run<'a> {
    pub spec: &'a JobSpec,
    pub inputs: &'a Inputs,
    pub model: &'a Loaded,
    pub device: &'a Device,
    pub limits: Limits,
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Run<'_> {
    /// The spec's method and its validated parameters.
    pub fn method(&self) -> JobResult<(&'static dyn Method, Params)> {
        Ok((methods::get(&self.spec.method)?, params(self.spec, self.limits)?))
    }

    /// The style images, decoded, with their weights. Errors: a corrupt or too large image.
    pub fn styles(&self) -> JobResult<Vec<(Style, f32)>> {
        let decode = |(b, w): &(bytes::Bytes, f32)| image_io::decode(b, self.limits.max_pixels).map(|p| (p.into(), *w));
        Ok(self.inputs.styles.iter().map(decode).collect::<styleforge_core::Result<_>>()?)
    }
}

/// Runs a stylisation job. `progress` receives the method's progress.
pub fn execute(run: Run<'_>, progress: &mut dyn FnMut(&Progress<'_>)) -> JobResult<RunEnd> {
    let Run { spec, inputs, model, device, limits, ref cancel } = run;
    if let Some(seq) = &spec.sequence {
        return crate::jobs::sequence::execute(&run, seq, progress);
    }
    let format = output_format(&spec.format)?;
    let (method, params) = run.method()?;
    let cancelled = |c: &Option<Arc<AtomicBool>>| c.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
    if cancelled(cancel) {
        return Ok(RunEnd::Cancelled);
    }
    let mut timings = Timings::default();
    progress(&Progress::stage(0.02, "decoding"));
    let t = Instant::now();
    let decode = |b: &[u8]| image_io::decode(b, limits.max_pixels);
    let styles = run.styles()?;
    let input = Input {
        content: decode(&inputs.content)?,
        styles,
        mask: inputs.mask.as_deref().map(decode).transpose()?,
        mask_styles: Vec::new(),
    };
    timings.decode_ms = ms(t);
    let t = Instant::now();
    let mut control = Control::new(cancel.clone(), &mut *progress);
    let (outcome, framing) = match &spec.avatar {
        None => (method.run(model, &input, &params, device, &mut control)?, None),
        Some(a) => {
            let detector = inputs.detector.as_ref().ok_or_else(|| JobError::internal("an avatar run without the face detector"))?;
            let (outcome, framing) =
                avatar::make_with_method(&input, &a.options(), detector, method, model, &params, device, &mut control)?;
            (outcome, Some(framing))
        }
    };
    timings.inference_ms = ms(t);
    if outcome.cancelled || cancelled(cancel) {
        return Ok(RunEnd::Cancelled);
    }
    progress(&Progress::stage(0.97, "encoding"));
    let t = Instant::now();
    let picture: Picture = outcome.picture;
    let bytes = picture.encode(format)?;
    timings.encode_ms = ms(t);
    let (content_loss, style_loss) = outcome.losses.unzip();
    Ok(RunEnd::Done(Box::new(Output {
        bytes,
        width: picture.width,
        height: picture.height,
        timings,
        content_loss,
        style_loss,
        avatar: framing.as_ref().map(AvatarFraming::from),
    })))
}


fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
