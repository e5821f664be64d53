//! The method registry: every stylisation method styleforge runs, one module each, and what the
//! CLI, the service, its OpenAPI document and the web page know about them.
//!
//! A method is a [`Method`]: its [`MethodInfo`] (name, description, the model kinds it accepts,
//! where its style comes from, its options, whether the service answers it at once or as a job,
//! whether it tiles) and a [`Method::run`] that stylises one [`Input`] with a loaded model and
//! [`Params`]. The options are defined once, in [`OPTIONS`]; a method lists those it reads, and
//! [`validate`] refuses the rest with a message naming the methods that do read them.
//!
//! To add a method: write `methods/<name>.rs` with a type implementing [`Method`], and add it to
//! [`REGISTRY`].
//!
//! [`generate`] samples new images from a DCGAN generator; it takes no content image, so it is
//! not a stylisation method and not in the registry.

pub mod adain;
pub mod cartoon;
pub mod cyclegan;
pub mod fast;
pub mod gatys;
pub mod microast;
pub mod generate;

use crate::networks::layers::FrameNorm;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::library::{Loaded, ModelKind};
use crate::methods::adain::Style;

/// Every method, in the order the CLI and the page list them. The first is the default.
pub static REGISTRY: [&dyn Method; 6] =
    [&fast::FAST, &microast::MicroAstMethod, &cartoon::CARTOON, &adain::Adain, &gatys::Gatys, &cyclegan::CYCLEGAN];

/// A stylisation method.
pub trait Method: Sync {
    /// What the method is and accepts.
    fn info(&self) -> &MethodInfo;

    /// Stylises `input` with `model` (one of [`MethodInfo::model_kinds`]). `params` have passed
    /// [`validate`]. Returns the picture at exactly the content's size after `max_size`, or the
    /// state reached when `control` cancelled it.
    ///
    /// Outputs with a side below [`MethodInfo::min_side`] are planned by [`SizePlan`] before any
    /// compute: the content (and mask) are scaled to the output size, padded up to the minimum
    /// with their edge pixels, run through [`Method::compute`] and cropped back.
    ///
    /// Errors: [`Error::Param`] for options or inputs the method cannot use, [`Error::Weights`]
    /// when `model` is not a kind the method accepts, backend errors.
    fn run(&self, model: &Loaded, input: &Input, params: &Params, device: &Device, control: &mut Control<'_>) -> Result<Outcome> {
        inject_panic(self.info().name);
        let c = &input.content;
        let plan = SizePlan::new(self.info(), c.width, c.height, params.max_size());
        if !plan.pads() {
            return self.compute(model, input, params, device, control);
        }
        let (ow, oh) = plan.output;
        let padded = Input {
            content: plan.pad(&c.resize(ow, oh)),
            styles: input.styles.clone(),
            mask: input.mask.as_ref().map(|m| plan.pad(&m.resize(ow, oh))),
            mask_styles: input.mask_styles.clone(),
        };
        let params = params.without("max_size");
        let report = &mut *control.progress;
        let mut crop_previews = |p: &Progress<'_>| match &p.preview {
            Some((img, label)) => {
                let img = plan.crop(img);
                report(&Progress {
                    fraction: p.fraction,
                    stage: p.stage.clone(),
                    step: p.step,
                    eta: p.eta,
                    detail: p.detail.clone(),
                    preview: Some((&img, label.clone())),
                });
            }
            None => report(p),
        };
        let mut inner = Control::new(control.cancel.clone(), &mut crop_previews);
        let mut out = self.compute(model, &padded, &params, device, &mut inner)?;
        out.picture = plan.crop(&out.picture);
        Ok(out)
    }

    /// The method's own computation behind [`Method::run`], which calls it with outputs of at
    /// least [`MethodInfo::min_side`] on each side; same contract otherwise.
    fn compute(&self, model: &Loaded, input: &Input, params: &Params, device: &Device, control: &mut Control<'_>) -> Result<Outcome>;
}

/// The environment variable that makes [`Method::run`] panic, for the tests that prove a bug in
/// a method reaches users as one clear error (the CLI's one line and exit code 70, the
/// service's 500 `internal` answer or failed job, the server still serving) rather than a crash.
pub const INJECT_PANIC_VAR: &str = "STYLEFORGE_INJECT_PANIC";

/// Panics when [`INJECT_PANIC_VAR`] names `method` (or is `*`); read at each run, unset in
/// normal use.
fn inject_panic(method: &str) {
    if let Some(v) = std::env::var_os(INJECT_PANIC_VAR)
        && (v == method || v == "*")
    {
        panic!("injected panic in method {method} ({INJECT_PANIC_VAR})");
    }
}

/// How a run meets its method's size limit ([`MethodInfo::min_side`]), decided from the sizes
/// alone before any compute: the output size (the content's, after `max_size`), the size the
/// networks see (each side raised to the minimum), and where the output sits inside it (centred).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizePlan {
    /// The output's size: the content's after `max_size`.
    pub output: (u32, u32),
    /// The size the method computes at: `output` with each side at least the method's minimum.
    pub padded: (u32, u32),
    /// The output's top-left corner inside `padded`.
    pub offset: (u32, u32),
}

impl SizePlan {
    /// The plan for `method` on a `width`×`height` content with `max_size`.
    pub fn new(method: &MethodInfo, width: u32, height: u32, max_size: Option<u32>) -> Self {
        let output = output_size(width, height, max_size);
        let need = method.min_side.max(1);
        let padded = (output.0.max(need), output.1.max(need));
        let offset = ((padded.0 - output.0) / 2, (padded.1 - output.1) / 2);
        SizePlan { output, padded, offset }
    }

    /// Whether the output is smaller than the method's minimum, so it is computed padded.
    pub fn pads(&self) -> bool {
        self.padded != self.output
    }

    /// `pic` (at the output size) padded to [`SizePlan::padded`] by repeating its edge pixels.
    pub fn pad(&self, pic: &Picture) -> Picture {
        pic.pad_edges(self.padded.0, self.padded.1, self.offset.0, self.offset.1)
    }

    /// The output's region of a picture computed at the padded size.
    pub fn crop(&self, pic: &Picture) -> Picture {
        if (pic.width, pic.height) != self.padded {
            return pic.clone();
        }
        pic.crop(self.offset.0, self.offset.1, self.output.0, self.output.1)
    }
}

/// Where a method's style comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StyleSource {
    /// The model is the style (a trained network per style): the request names the model.
    Model,
    /// Style images (any picture, blended by weight, at most `max`), run by a fixed network
    /// (`default_model` unless another is named).
    Images {
        /// Most style images in one blend.
        max: usize,
    },
}

/// How the service runs a request for the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Answered in the request when the output is within the service's pixel budget, else a job.
    Sync,
    /// Always a job (progress, cancellation).
    Job,
}

/// A method's description.
#[derive(Debug)]
pub struct MethodInfo {
    /// The name used by `--method` and the API's `method`.
    pub name: &'static str,
    /// A short title for people (the page's method list).
    pub title: &'static str,
    /// One line: what it does and how long it takes.
    pub summary: &'static str,
    /// The paper or reference implementation.
    pub source: &'static str,
    /// The model kinds it runs.
    pub model_kinds: &'static [ModelKind],
    /// The library model used when the request names none (`None`: the request must name one).
    pub default_model: Option<&'static str>,
    /// Where the style comes from.
    pub style: StyleSource,
    /// Whether it takes a spatial mask.
    pub mask: bool,
    /// How the service runs it.
    pub execution: Execution,
    /// Whether it runs tiled: by default, outputs over [`AUTO_TILE_PIXELS`] in tiles of [`AUTO_TILE`].
    pub tiles: bool,
    /// The smallest side, in pixels, its networks run on. Every method returns exactly the
    /// content's size (after `max_size`): [`Method::run`] pads smaller outputs up to this with
    /// their edge pixels and crops the result back ([`SizePlan`]), so no size is refused.
    pub min_side: u32,
    /// The names of the [`OPTIONS`] it reads.
    pub options: &'static [&'static str],
}

impl MethodInfo {
    /// A feed-forward method whose style is its model (one network per style), answered at
    /// once, tiled for large outputs, with the options every such method reads.
    pub const fn feed_forward(
        name: &'static str,
        title: &'static str,
        summary: &'static str,
        source: &'static str,
        model_kinds: &'static [ModelKind],
    ) -> Self {
        MethodInfo {
            name,
            title,
            summary,
            source,
            model_kinds,
            default_model: None,
            style: StyleSource::Model,
            mask: false,
            execution: Execution::Sync,
            tiles: true,
            min_side: FEED_FORWARD_MIN_SIDE,
            options: &["strength", "preserve_color", "max_size", "tile"],
        }
    }

    /// Whether the method reads option `name`.
    pub fn takes(&self, name: &str) -> bool {
        self.options.contains(&name)
    }

    /// Whether it runs models of `kind`.
    pub fn accepts(&self, kind: ModelKind) -> bool {
        self.model_kinds.contains(&kind)
    }

    /// The options it reads, in the order of [`OPTIONS`].
    pub fn option_infos(&self) -> impl Iterator<Item = &'static OptionInfo> + '_ {
        OPTIONS.iter().filter(|o| self.takes(o.name))
    }
}

/// The smallest side the feed-forward networks run on: two stride-2 stages under reflection
/// padding of up to 4 pixels (TransformerNet's 9×9 input convolution needs more than 4×4, the
/// residual blocks at a quarter of the size need 2×2), with a margin for the GAN generators.
pub const FEED_FORWARD_MIN_SIDE: u32 = 16;

/// Outputs with more pixels than this run in tiles by default (methods with [`MethodInfo::tiles`]).
pub const AUTO_TILE_PIXELS: u64 = 4_000_000;
/// The default tile side, in pixels.
pub const AUTO_TILE: u32 = 1024;

/// Every method, as listed in [`REGISTRY`].
pub fn all() -> impl Iterator<Item = &'static dyn Method> {
    REGISTRY.iter().copied()
}

/// The method's names.
pub fn names() -> Vec<&'static str> {
    all().map(|m| m.info().name).collect()
}

/// The method called `name`. Errors: [`Error::Param`] naming the known methods.
pub fn get(name: &str) -> Result<&'static dyn Method> {
    all()
        .find(|m| m.info().name == name)
        .ok_or_else(|| Error::Param(format!("unknown method `{name}` (use one of: {})", names().join(", "))))
}

/// The default method (`fast`).
pub fn default_method() -> &'static dyn Method {
    REGISTRY[0]
}

/// The method for a style image when none is named: `microast`, built in (no download).
pub fn default_style_method() -> &'static dyn Method {
    &microast::MicroAstMethod
}

/// The methods whose style is an image set, as "a, b or c" for messages.
pub fn image_style_methods() -> String {
    or_list(all().filter(|m| matches!(m.info().style, StyleSource::Images { .. })).map(|m| m.info().name).collect())
}

/// The methods that run models of `kind`.
pub fn methods_for_kind(kind: ModelKind) -> Vec<&'static str> {
    all().filter(|m| m.info().accepts(kind)).map(|m| m.info().name).collect()
}

fn or_list(names: Vec<&str>) -> String {
    match names.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The type and range of an option's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionKind {
    /// A number within `min..=max`.
    Number {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
        /// The value when not given.
        default: f64,
    },
    /// A whole number within `min..=max`; no default means "not set" (the method decides).
    Integer {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
        /// The value when not given.
        default: Option<u64>,
    },
    /// On or off (off when not given).
    Flag,
    /// One of a fixed set of words.
    Choice {
        /// The words.
        values: &'static [&'static str],
        /// The word when not given.
        default: &'static str,
    },
}

/// One option of the methods: `--name` on the command line (with `-` for `_`), `name` in the API.
#[derive(Debug)]
pub struct OptionInfo {
    /// The option's name, `snake_case`.
    pub name: &'static str,
    /// What it does, for help texts and the API listing.
    pub description: &'static str,
    /// Its type, range and default.
    pub kind: OptionKind,
}

impl OptionInfo {
    /// The methods that read this option.
    pub fn methods(&self) -> Vec<&'static str> {
        all().filter(|m| m.info().takes(self.name)).map(|m| m.info().name).collect()
    }

    /// The command-line flag, `--max-size` for `max_size`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

const fn number(name: &'static str, min: f64, max: f64, default: f64, description: &'static str) -> OptionInfo {
    OptionInfo { name, description, kind: OptionKind::Number { min, max, default } }
}

const fn integer(name: &'static str, min: u64, max: u64, default: Option<u64>, description: &'static str) -> OptionInfo {
    OptionInfo { name, description, kind: OptionKind::Integer { min, max, default } }
}

const fn flag(name: &'static str, description: &'static str) -> OptionInfo {
    OptionInfo { name, description, kind: OptionKind::Flag }
}

const fn choice(name: &'static str, values: &'static [&'static str], default: &'static str, description: &'static str) -> OptionInfo {
    OptionInfo { name, description, kind: OptionKind::Choice { values, default } }
}

/// Every option any method reads, defined once.
pub static OPTIONS: [OptionInfo; 15] = [
    number("strength", 0.0, 1.0, 1.0, "Style strength, 0 (content) to 1 (full style): a pixel blend with the content."),
    flag("preserve_color", "Keep the content's colours; transfer luminance only."),
    integer("max_size", 1, 100_000, None, "Scale the input down so the output's longer side is at most N pixels."),
    integer(
        "tile",
        0,
        100_000,
        None,
        "Tile size for large images (memory bounded by the tile); 0 never tiles. Default: tiles of 1024 for outputs over 4 megapixels.",
    ),
    number("alpha", 0.0, 1.0, 1.0, "Feature-space strength 0..1 (1: full style); multiplies `strength`."),
    flag("color_match", "Match the style images' colours to the content before transfer."),
    integer("iterations", 1, 100_000, Some(300), "Optimiser iterations at each size."),
    integer("scales", 1, 16, Some(1), "Number of sizes, coarse to fine (each twice the previous)."),
    choice("optimizer", &["lbfgs", "adam"], "lbfgs", "Optimiser: L-BFGS (quality) or Adam."),
    number("content_weight", 0.0, 1e12, 1.0, "Weight of the content loss."),
    number("style_weight", 0.0, 1e12, 1e5, "Weight of the style loss."),
    number("tv_weight", 0.0, 1e12, 1e-2, "Weight of the total-variation loss."),
    choice("init", &["content", "style", "noise"], "content", "Starting image."),
    integer("seed", 0, u64::MAX, Some(0), "Seed of the noise starting image."),
    integer("preview_every", 1, 1_000_000, None, "Report the current image every N iterations (the CLI saves it next to the output)."),
];

/// The option called `name`.
pub fn option(name: &str) -> Option<&'static OptionInfo> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// An option's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// For [`OptionKind::Number`].
    Number(f64),
    /// For [`OptionKind::Integer`].
    Integer(u64),
    /// For [`OptionKind::Flag`].
    Flag(bool),
    /// For [`OptionKind::Choice`].
    Choice(String),
}

/// The options of one run, checked against [`OPTIONS`] as they are set; what is not set has
/// the option's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<&'static str, Value>,
}

impl Params {
    /// No options set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets option `name`. Errors: [`Error::Param`] for an unknown option, a value of the wrong
    /// type, or one out of range (the message names the option and its range).
    pub fn set(&mut self, name: &str, value: Value) -> Result<&mut Self> {
        let o = option(name).ok_or_else(|| Error::Param(format!("unknown option `{name}`")))?;
        let ok = match (&o.kind, &value) {
            (OptionKind::Number { min, max, .. }, Value::Number(v)) => v.is_finite() && (*min..=*max).contains(v),
            (OptionKind::Integer { min, max, .. }, Value::Integer(v)) => (*min..=*max).contains(v),
            (OptionKind::Flag, Value::Flag(_)) => true,
            (OptionKind::Choice { values, .. }, Value::Choice(v)) => values.contains(&v.as_str()),
            _ => return Err(Error::Param(format!("`{name}` takes {}", describe(&o.kind)))),
        };
        if !ok {
            return Err(Error::Param(format!("`{name}` must be {}, got {}", describe(&o.kind), show(&value))));
        }
        if value != Value::Flag(false) {
            self.values.insert(o.name, value);
        }
        Ok(self)
    }

    /// Sets a number option when `value` is given.
    pub fn set_number(&mut self, name: &str, value: Option<f64>) -> Result<&mut Self> {
        match value {
            Some(v) => self.set(name, Value::Number(v)),
            None => Ok(self),
        }
    }

    /// Sets a whole-number option when `value` is given.
    pub fn set_integer(&mut self, name: &str, value: Option<u64>) -> Result<&mut Self> {
        match value {
            Some(v) => self.set(name, Value::Integer(v)),
            None => Ok(self),
        }
    }

    /// Sets a flag (off leaves it unset).
    pub fn set_flag(&mut self, name: &str, on: bool) -> Result<&mut Self> {
        self.set(name, Value::Flag(on))
    }

    /// Parses `text` as option `name`'s type and sets it (command-line values).
    pub fn set_text(&mut self, name: &str, text: &str) -> Result<&mut Self> {
        let o = option(name).ok_or_else(|| Error::Param(format!("unknown option `{name}`")))?;
        let bad = || Error::Param(format!("`{name}` must be {}, got `{text}`", describe(&o.kind)));
        let value = match o.kind {
            OptionKind::Number { .. } => Value::Number(text.trim().parse().map_err(|_| bad())?),
            OptionKind::Integer { .. } => Value::Integer(text.trim().parse().map_err(|_| bad())?),
            OptionKind::Flag => Value::Flag(text.trim().parse().map_err(|_| bad())?),
            OptionKind::Choice { .. } => Value::Choice(text.trim().to_string()),
        };
        self.set(name, value)
    }

    /// These parameters without option `name` (as if it were never set).
    pub fn without(&self, name: &str) -> Params {
        let mut p = self.clone();
        p.values.remove(name);
        p
    }

    /// The names of the options set.
    pub fn set_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.keys().copied()
    }

    /// A number option (its default when not set).
    pub fn number(&self, name: &str) -> f64 {
        match (self.values.get(name), option(name).map(|o| o.kind)) {
            (Some(Value::Number(v)), _) => *v,
            (_, Some(OptionKind::Number { default, .. })) => default,
            _ => 0.0,
        }
    }

    /// A whole-number option (its default, which may be none, when not set).
    pub fn integer(&self, name: &str) -> Option<u64> {
        match (self.values.get(name), option(name).map(|o| o.kind)) {
            (Some(Value::Integer(v)), _) => Some(*v),
            (_, Some(OptionKind::Integer { default, .. })) => default,
            _ => None,
        }
    }

    /// A flag.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Flag(true)))
    }

    /// A choice option (its default when not set).
    pub fn choice(&self, name: &str) -> &str {
        match (self.values.get(name), option(name).map(|o| o.kind)) {
            (Some(Value::Choice(v)), _) => v,
            (_, Some(OptionKind::Choice { default, .. })) => default,
            _ => "",
        }
    }

    /// `strength` as `f32`.
    pub fn strength(&self) -> f32 {
        self.number("strength") as f32
    }

    /// `max_size` as pixels.
    pub fn max_size(&self) -> Option<u32> {
        self.integer("max_size").map(|v| v as u32)
    }
}

fn describe(kind: &OptionKind) -> String {
    match kind {
        OptionKind::Number { min, max, .. } => format!("a number within {min}..{max}"),
        OptionKind::Integer { min, max, .. } => format!("a whole number within {min}..{max}"),
        OptionKind::Flag => "true or false".into(),
        OptionKind::Choice { values, .. } => format!("one of {}", values.join(", ")),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Number(x) => x.to_string(),
        Value::Integer(x) => x.to_string(),
        Value::Flag(x) => x.to_string(),
        Value::Choice(x) => format!("`{x}`"),
    }
}

/// Checks that `method` reads every option set in `params`. Errors: [`Error::Param`] naming
/// the option and the methods that read it (`flag` formats the option's name, e.g. as a
/// command-line flag).
pub fn validate(method: &dyn Method, params: &Params, flag: &dyn Fn(&OptionInfo) -> String) -> Result<()> {
    let info = method.info();
    for name in params.set_names() {
        if !info.takes(name) {
            let o = option(name).expect("set options are known");
            let readers = o.methods();
            return Err(Error::Param(format!(
                "{} applies to method{} {}, not {}",
                flag(o),
                if readers.len() == 1 { "" } else { "s" },
                or_list(readers),
                info.name
            )));
        }
    }
    Ok(())
}

/// What a method stylises: the content, and the style images or statistics, mask and the
/// mask's background styles for the methods that take them.
#[derive(Debug, Clone)]
pub struct Input {
    /// The content, RGB 0..255 (alpha carried through).
    pub content: Picture,
    /// Style images (or AdaIN statistics) with blend weights (normalised by the method).
    pub styles: Vec<(Style, f32)>,
    /// A mask the size of the content (resized when it is not): white takes the styles.
    pub mask: Option<Picture>,
    /// Styles for the mask's black region (empty: the content stays there).
    pub mask_styles: Vec<(Style, f32)>,
}

impl Input {
    /// Just a content picture.
    pub fn content(content: Picture) -> Self {
        Self { content, styles: Vec::new(), mask: None, mask_styles: Vec::new() }
    }

    /// The mask as a [`adain::Mask`] over the content (resized to the content's size when it is
    /// not) with the background styles; `None` without a mask. Errors: background styles without
    /// a mask.
    pub fn content_mask(&self) -> Result<Option<adain::Mask>> {
        let Some(p) = &self.mask else {
            if !self.mask_styles.is_empty() {
                return Err(Error::Param("styles for the mask's background need a mask".into()));
            }
            return Ok(None);
        };
        let (w, h) = (self.content.width, self.content.height);
        let p = if (p.width, p.height) != (w, h) { p.resize(w, h) } else { p.clone() };
        Ok(Some(adain::Mask::from_picture(&p, self.mask_styles.clone())))
    }

    /// The style pictures, refusing statistics files (only AdaIN reads those).
    pub fn style_pictures(&self, method: &str) -> Result<Vec<(Picture, f32)>> {
        self.styles
            .iter()
            .map(|(s, w)| match s {
                Style::Picture(p) => Ok((p.clone(), *w)),
                Style::Stats(_) => Err(Error::Param(format!("style statistics files apply to method adain, not {method}"))),
            })
            .collect()
    }
}

/// Progress of a run, as the CLI's bar and the service's job rows show it.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Done so far, 0..1.
    pub fraction: f64,
    /// What is happening (`stylizing`, `optimising 512x384`).
    pub stage: String,
    /// Steps done and planned, for methods that iterate.
    pub step: Option<(u64, u64)>,
    /// Estimated time left.
    pub eta: Option<Duration>,
    /// A line of detail (losses).
    pub detail: Option<String>,
    /// An intermediate image and a label for its file name (`scale0.iter50`).
    pub preview: Option<(&'a Picture, String)>,
}

impl Progress<'_> {
    /// A stage with no steps.
    pub fn stage(fraction: f64, stage: &str) -> Self {
        Progress { fraction, stage: stage.into(), step: None, eta: None, detail: None, preview: None }
    }
}

/// Cancellation and progress reporting for a run.
pub struct Control<'a> {
    /// Stops the run (checked between steps) when set.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Receives progress.
    pub progress: &'a mut dyn FnMut(&Progress<'_>),
    /// A frame of a sequence: networks with instance normalisation share their statistics with
    /// the frames before ([`FrameNorm`]); `None` for a picture on its own.
    pub frame_norm: Option<&'a mut FrameNorm>,
}

impl<'a> Control<'a> {
    /// A control with a cancel flag and a progress callback.
    pub fn new(cancel: Option<Arc<AtomicBool>>, progress: &'a mut dyn FnMut(&Progress<'_>)) -> Self {
        Self { cancel, progress, frame_norm: None }
    }

    /// The same, for a frame of a sequence sharing normalisation statistics through `frame`.
    pub fn with_frame_norm(mut self, frame: Option<&'a mut FrameNorm>) -> Self {
        self.frame_norm = frame;
        self
    }

    /// Reports a stage.
    pub fn stage(&mut self, fraction: f64, stage: &str) {
        (self.progress)(&Progress::stage(fraction, stage));
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The stylised picture (the state reached when cancelled).
    pub picture: Picture,
    /// Whether the run stopped early.
    pub cancelled: bool,
    /// Final content and style losses (optimisation methods).
    pub losses: Option<(f64, f64)>,
    /// A line summarising the run (iterations, time), for the CLI.
    pub summary: Option<String>,
}

impl Outcome {
    /// A finished picture.
    pub fn done(picture: Picture) -> Self {
        Self { picture, cancelled: false, losses: None, summary: None }
    }
}

/// The output size for an input size and a `max_size` (as [`Picture::fit_within`] computes it).
pub fn output_size(width: u32, height: u32, max_size: Option<u32>) -> (u32, u32) {
    match max_size {
        Some(m) if width.max(height) > m => {
            let s = m as f64 / width.max(height) as f64;
            (((width as f64 * s).round() as u32).max(1), ((height as f64 * s).round() as u32).max(1))
        }
        _ => (width, height),
    }
}

/// The tile size a run uses: `tile` when given (0: none), else [`AUTO_TILE`] for outputs over
/// [`AUTO_TILE_PIXELS`], for methods that tile.
pub fn tile_for(info: &MethodInfo, params: &Params, width: u32, height: u32) -> Option<u32> {
    if !info.tiles {
        return None;
    }
    match params.integer("tile") {
        Some(0) => None,
        Some(t) => Some(t as u32),
        None => {
            let (w, h) = output_size(width, height, params.max_size());
            (w as u64 * h as u64 > AUTO_TILE_PIXELS).then_some(AUTO_TILE)
        }
    }
}

/// The error for a model of a kind the method does not run.
pub(crate) fn wrong_model(info: &MethodInfo, model: &Loaded) -> Error {
    Error::Weights(format!(
        "method {} runs {} models, not a {} model",
        info.name,
        or_list(info.model_kinds.iter().map(|k| k.name()).collect()),
        model.kind().name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_options_known() {
        let names = names();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for m in all() {
            for o in m.info().options {
                assert!(option(o).is_some(), "{} lists unknown option {o}", m.info().name);
            }
            assert!(!m.info().model_kinds.is_empty());
        }
        assert_eq!(default_method().info().name, "fast");
        assert!(get("nope").is_err());
    }

    #[test]
    fn params_check_types_ranges_and_methods() {
        let mut p = Params::new();
        assert!(p.set("strength", Value::Number(1.5)).is_err());
        assert!(p.set("strength", Value::Integer(1)).is_err());
        assert!(p.set_text("optimizer", "sgd").is_err());
        p.set_text("alpha", "0.5").unwrap();
        assert_eq!(p.number("alpha"), 0.5);
        assert_eq!(p.number("strength"), 1.0);
        assert_eq!(p.integer("iterations"), Some(300));
        let fast = get("fast").unwrap();
        let e = validate(fast, &p, &|o| o.flag()).unwrap_err().to_string();
        assert!(e.contains("--alpha applies to method adain"), "{e}");
        assert!(validate(get("adain").unwrap(), &p, &|o| o.flag()).is_ok());
    }

    #[test]
    fn tiling_follows_the_output_size() {
        let fast = get("fast").unwrap().info();
        let gatys = get("gatys").unwrap().info();
        let mut p = Params::new();
        assert_eq!(tile_for(fast, &p, 3000, 2000), Some(AUTO_TILE));
        assert_eq!(tile_for(gatys, &p, 3000, 2000), None);
        p.set_integer("max_size", Some(1000)).unwrap();
        assert_eq!(tile_for(fast, &p, 3000, 2000), None);
        p.set_integer("tile", Some(0)).unwrap();
        assert_eq!(tile_for(fast, &p, 8000, 8000), None);
    }
}
