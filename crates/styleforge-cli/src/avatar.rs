//! `styleforge avatar`: a square, stylised portrait framed on the photo's face
//! (`styleforge_core::avatar`, the built-in face detector).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use styleforge_core::avatar::{self, FaceBox, Options};
use styleforge_core::image_io::{self, Format, Picture};
use styleforge_core::library::{Library, Loaded, builtin, kind};
use styleforge_core::methods::{self, Control, Input, Method, Params, adain};

/// Options of `styleforge avatar`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The photo (JPEG, PNG, WebP).
    input: PathBuf,
    /// The avatar file (.png, .jpg, .webp).
    #[arg(short, long)]
    output: PathBuf,
    /// The style: a built-in filter or any library model (cartoon-paprika, cartoon-shinkai,
    /// a name from `styleforge models list`, or a .safetensors/.pth file; run by its kind's
    /// method), or a built-in painting or an image file (run by microast).
    #[arg(long)]
    style: String,
    /// The avatar's side in pixels.
    #[arg(long, default_value_t = avatar::DEFAULT_SIZE, value_parser = clap::value_parser!(u32).range(1..=avatar::MAX_SIZE as i64))]
    size: u32,
    /// The face box `x,y,w,h` in the photo's pixels, instead of detecting the face.
    #[arg(long = "box", value_name = "X,Y,W,H")]
    face_box: Option<String>,
    /// Style strength, 0 (the photo) to 1 (full style).
    #[arg(long)]
    strength: Option<f64>,
    /// Compute device: cpu, or cuda / cuda:N in CUDA builds.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Refuse images with more pixels than this (checked before decoding).
    #[arg(long, default_value_t = image_io::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
}

/// Runs the command: prints the face box used (or that none was found) and writes the avatar.
pub fn run(a: Args) -> Result<()> {
    Format::from_path(&a.output)?;
    let device = styleforge_core::device::parse(&a.device)?;
    let face = a.face_box.as_deref().map(FaceBox::parse).transpose()?;
    let photo = image_io::read(&a.input, a.max_pixels)?;
    let (method, model, input) = style(&a.style, a.max_pixels, &device)?;
    let mut params = Params::new();
    params.set_number("strength", a.strength)?;
    methods::validate(method, &params, &|o| o.flag())?;
    let detector = builtin::face_detector(&device).context("loading the face detector")?;
    let mut progress = |_: &methods::Progress<'_>| {};
    let options = Options { size: a.size, face, ..Options::default() };
    let input = Input { content: photo, ..input };
    let (outcome, framing) =
        avatar::make_with_method(&input, &options, &detector, method, &model, &params, &device, &mut Control::new(None, &mut progress))?;
    println!("{}", framing.describe());
    outcome.picture.save(&a.output)?;
    println!("wrote {} ({}x{}, {} with {})", a.output.display(), a.size, a.size, a.style, method.info().name);
    Ok(())
}

/// The method, its loaded model and the styles for `--style`: an image file or a built-in
/// painting runs microast with it; anything else is a model, run by its kind's first method.
fn style(arg: &str, max_pixels: u64, device: &Device) -> Result<(&'static dyn Method, Loaded, Input)> {
    let lib = Library::open_default();
    let path = Path::new(arg);
    let blank = Input::content(Picture::from_planes(1, 1, vec![0.0; 3]));
    let picture = if path.is_file() && Format::from_path(path).is_ok() {
        Some(image_io::read(path, max_pixels)?)
    } else if let Some(p) = builtin::painting(arg).filter(|_| !path.exists()) {
        Some(p.picture()?)
    } else {
        None
    };
    if let Some(p) = picture {
        let method = methods::default_style_method();
        let name = method.info().default_model.unwrap_or(builtin::MICROAST);
        let model = crate::stylize::load_model(method.info(), &lib.weights(name)?, device).with_context(|| format!("loading {name}"))?;
        return Ok((method, model, Input { styles: vec![(adain::Style::Picture(p), 1.0)], ..blank }));
    }
    let w = lib.weights(arg).with_context(|| {
        format!(
            "--style `{arg}` is not an image file, a built-in painting ({}, ...) or a model (see `styleforge models list`)",
            builtin::PAINTINGS.iter().map(|p| p.name).take(3).collect::<Vec<_>>().join(", ")
        )
    })?;
    let detected = kind::detect(&w).with_context(|| format!("`{arg}` is not a model styleforge recognises"))?;
    let Some(name) = methods::methods_for_kind(detected.kind).first().copied() else {
        bail!("`{arg}` is {}, which no stylisation method runs", detected.kind.a_title());
    };
    let method = methods::get(name)?;
    if !matches!(method.info().style, methods::StyleSource::Model) {
        bail!("`{arg}` is {}: give a style image or painting as --style instead", detected.kind.a_title());
    }
    let model = crate::stylize::load_model(method.info(), &w, device).with_context(|| format!("loading {arg}"))?;
    Ok((method, model, blank))
}
