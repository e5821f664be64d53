//! `styleforge evaluate`: runs methods on every content × style pair (or reads the outputs of an
//! earlier run), measures each output ([`styleforge_core::metrics`]: SSIM to the content; with a
//! VGG-19 in the library, the content loss at relu4_1 and the Gram and mean/std style losses over
//! relu1_1..relu5_1; with an AlexNet (or VGG-16) in the library, LPIPS to the content; with
//! ArtFID's Inception-v3 as well, FID to the style images and ArtFID per method; seconds per image
//! and the peak memory of each method), prints the averages
//! and writes a report folder: `index.html` (self-contained: the image grids, the tables, a plot
//! of content loss against style loss per method), `contact_sheet.png`, `metrics.json`, and the
//! outputs under `images/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use burn::tensor::Device;
use serde::Serialize;
use styleforge_core::image_io::{self, Format, Picture};
use styleforge_core::library::{Library, Loaded, MetricNet, builtin, kind};
use styleforge_core::methods::{self, Control, Input, Method, Params, StyleSource, adain};
use styleforge_core::metrics::lpips::{Backbone, Lpips};
use styleforge_core::metrics::{self, VggReference, fid};
use styleforge_core::networks::inception::{self, Inception3};
use styleforge_core::weights::formula;
use styleforge_core::networks::vgg::Vgg;

use crate::bench::{peak_rss_mib, reset_peak_rss};

/// Options of `styleforge evaluate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Content photos: files or folders (their JPEG, PNG and WebP files).
    #[arg(long, required = true, num_args = 1..)]
    content: Vec<PathBuf>,
    /// Style images for the methods whose style is an image: files, folders or built-in painting
    /// names (`starry-night`, ...).
    #[arg(long, num_args = 1..)]
    style: Vec<String>,
    /// A method to compare (repeat for more): `NAME` for a method whose style is an image
    /// (microast, adain, gatys: one column per --style), or `NAME:MODEL` for a model that is the
    /// style (fast:candy, cartoon:cartoon-paprika, cyclegan:my-monet: one column), or an image
    /// method with another model (adain:my-adain).
    #[arg(long = "method", required = true, value_name = "METHOD[:MODEL]")]
    methods: Vec<String>,
    /// The report folder (created; files of an earlier report in it are replaced).
    #[arg(short, long)]
    output: PathBuf,
    /// Scale contents and styles so the longer side is at most N pixels.
    #[arg(long, default_value_t = 512)]
    max_size: u32,
    /// The VGG-19 of the content and style losses (and of the gatys method, unless it names
    /// another): a library name or a file.
    #[arg(long, default_value = "vgg19")]
    vgg: String,
    /// The LPIPS backbone: a library name or a file holding torchvision's AlexNet (LPIPS's
    /// default, and the one ArtFID uses) or VGG-16. By default `alexnet`, else `vgg16`.
    #[arg(long)]
    lpips: Option<String>,
    /// ArtFID's Inception-v3 (its FID features): a library name or a file.
    #[arg(long, default_value = "art-inception")]
    inception: String,
    /// Gatys iterations per image (default: the method's own, 300).
    #[arg(long)]
    iterations: Option<u64>,
    /// Use the outputs an earlier run left in the report folder (`images/<method>/<content>__<style>.png`)
    /// instead of running the methods again (their times are then not measured).
    #[arg(long)]
    reuse: bool,
}

/// One method and model compared, with its columns.
struct Arm {
    label: String,
    method: &'static dyn Method,
    model: Loaded,
    /// `(column name, style picture)`: the styles for image methods, one model column otherwise.
    columns: Vec<(String, Option<Picture>)>,
    params: Params,
}

/// The measurements of one output.
#[derive(Debug, Clone, Serialize)]
struct Record {
    method: String,
    content: String,
    style: String,
    /// Seconds to stylise (None when reused).
    seconds: Option<f64>,
    ssim: f64,
    /// LPIPS to the content.
    lpips: Option<f64>,
    content_loss: Option<f64>,
    style_loss_gram: Option<f64>,
    style_loss_mean_std: Option<f64>,
    image: String,
}

/// The averages of one method.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    method: String,
    outputs: usize,
    seconds_per_image: Option<f64>,
    peak_rss_mib: Option<f64>,
    ssim: f64,
    lpips: Option<f64>,
    /// FID between the outputs and their style images (ArtFID's Inception-v3 features).
    fid: Option<f64>,
    /// `(1 + LPIPS-AlexNet) · (1 + FID)`.
    art_fid: Option<f64>,
    content_loss: Option<f64>,
    style_loss_gram: Option<f64>,
    style_loss_mean_std: Option<f64>,
}

/// Runs the command.
pub fn run(a: Args) -> Result<()> {
    let device = Device::flex();
    let lib = Library::open_default();
    let contents = pictures(&a.content, a.max_size).context("reading --content")?;
    if contents.is_empty() {
        bail!("no content photos found in {:?}", a.content);
    }
    let styles = style_pictures(&a.style, a.max_size).context("reading --style")?;
    let arms = a.methods.iter().map(|m| arm(m, &styles, &lib, &device, a.iterations, &a.vgg)).collect::<Result<Vec<_>>>()?;
    let mut notes = Vec::new();
    let vgg = match load_vgg(&lib, &a.vgg, &device) {
        Ok(v) => Some(v),
        Err(e) => {
            notes.push(format!(
                "Content and style losses skipped: no VGG-19 ({e:#}). Install one with `styleforge models download vgg19` or pass --vgg FILE."
            ));
            None
        }
    };
    let install_alexnet = if a.lpips.is_some() { "" } else { " Install its backbone with `styleforge models download alexnet`." };
    let smallest = |pics: &[(String, Picture)]| pics.iter().min_by_key(|(_, p)| p.width.min(p.height)).map(|(n, p)| (n.clone(), p.width, p.height));
    let mut lpips_model = None;
    let lpips = match load_lpips(&lib, a.lpips.as_deref(), &device) {
        Ok((l, model)) => match smallest(&contents) {
            Some((name, w, h)) if (w.min(h) as usize) < l.min_side() => {
                notes.push(format!(
                    "LPIPS skipped: LPIPS on {} needs pictures of at least {1}×{1} pixels; {name} is {w}×{h} at --max-size {2}.",
                    l.backbone().name(),
                    l.min_side(),
                    a.max_size
                ));
                None
            }
            _ => {
                notes.push(format!("LPIPS on {} features (`{model}`).", if l.backbone().name() == "alex" { "AlexNet" } else { "VGG-16" }));
                lpips_model = Some(model);
                Some(l)
            }
        },
        Err(e) => {
            notes.push(format!("LPIPS skipped: {e:#}.{install_alexnet}"));
            None
        }
    };
    let install_inception = if a.inception != "art-inception" {
        ""
    } else {
        " Install ArtFID's with `styleforge models download art-inception --trust` (its weights have no stated terms: research-only)."
    };
    let inception = match load_inception(&lib, &a.inception, &device) {
        Ok(net) => match smallest(&[contents.as_slice(), styles.as_slice()].concat()) {
            Some((name, w, h)) if (w.min(h) as usize) < inception::MIN_SIZE => {
                notes.push(format!(
                    "FID and ArtFID skipped: the Inception-v3 needs pictures of at least {0}×{0} pixels; {name} is {w}×{h} at --max-size {1}.",
                    inception::MIN_SIZE,
                    a.max_size
                ));
                None
            }
            _ => Some(net),
        },
        Err(e) => {
            notes.push(format!("FID and ArtFID skipped: no Inception-v3 for the FID ({e:#}).{install_inception}"));
            None
        }
    };
    if inception.is_some() {
        notes.push(format!("FID on the Inception-v3 `{}`.", a.inception));
        notes.push("FID compares each method's outputs with their style images (one per output, as ArtFID pairs them) on ArtFID's Inception-v3 pooled features, images at their evaluated size. With few images FID is biased upwards: compare methods within one report, not with published numbers (ArtFID's authors extrapolate FID∞ from 5000+ pairs).".into());
        match &lpips {
            Some(l) if l.backbone().name() == "alex" => {}
            Some(_) => notes.push("ArtFID not computed: it is defined with LPIPS on AlexNet, and LPIPS ran on VGG-16 (`styleforge models download alexnet`).".into()),
            None => notes.push("ArtFID not computed: it needs LPIPS on AlexNet, which was skipped.".into()),
        }
    } else if lpips.as_ref().is_some_and(|l| l.backbone().name() == "vgg") {
        notes.push("LPIPS on VGG-16 (no AlexNet in the library: `styleforge models download alexnet`).".into());
    }
    let alex = lpips.as_ref().filter(|l| l.backbone().name() == "alex");
    let mut style_features: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    if let Some(net) = &inception {
        for (name, p) in &styles {
            style_features.insert(name.clone(), inception_features(net, p, &device)?);
        }
    }
    let networks = serde_json::json!({
        "lpips": lpips.as_ref().map(|l| l.backbone().name()),
        "lpips_model": lpips_model,
        "inception_model": inception.as_ref().map(|_| a.inception.clone()),
    });
    let images = a.output.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;

    // References, computed once per picture.
    let unit = |p: &Picture| metrics::unit_tensor(p, &device);
    let content_refs = match &vgg {
        Some(v) => contents.iter().map(|(_, p)| VggReference::content(v, unit(p)).map(Some)).collect::<styleforge_core::Result<Vec<_>>>()?,
        None => vec![None; contents.len()],
    };
    let mut style_refs: BTreeMap<String, VggReference> = BTreeMap::new();
    if let Some(v) = &vgg {
        for (name, p) in &styles {
            style_refs.insert(name.clone(), VggReference::style(v, unit(p))?);
        }
    }

    let mut records = Vec::new();
    let mut summaries = Vec::new();
    for arm in &arms {
        let dir = images.join(slug(&arm.label));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        reset_peak_rss();
        let mut ran = false;
        let (mut output_features, mut paired_style_features) = (Vec::new(), Vec::new());
        for ((cname, content), cref) in contents.iter().zip(&content_refs) {
            for (sname, style) in &arm.columns {
                let file = dir.join(format!("{}__{}.png", slug(cname), slug(sname)));
                let (picture, seconds) = if a.reuse && file.is_file() {
                    (image_io::read(&file, image_io::DEFAULT_MAX_PIXELS)?, None)
                } else {
                    let input = Input {
                        content: content.clone(),
                        styles: style.iter().map(|p| (adain::Style::Picture(p.clone()), 1.0)).collect(),
                        mask: None,
                        mask_styles: Vec::new(),
                    };
                    let mut quiet = |_: &methods::Progress<'_>| {};
                    let t = Instant::now();
                    let out = arm.method.run(&arm.model, &input, &arm.params, &device, &mut Control::new(None, &mut quiet))?;
                    let s = t.elapsed().as_secs_f64();
                    out.picture.save(&file)?;
                    ran = true;
                    // Measured as saved (8 bits a channel), as a later --reuse reads it.
                    (image_io::read(&file, image_io::DEFAULT_MAX_PIXELS)?, Some(s))
                };
                if (picture.width, picture.height) != (content.width, content.height) {
                    bail!("{}: the output is {}×{}, the content {}×{}", file.display(), picture.width, picture.height, content.width, content.height);
                }
                let ssim = metrics::ssim(&picture, content)?;
                let lpips_value = match &lpips {
                    Some(l) => Some(l.distance(unit(&picture), unit(content))?[0]),
                    None => None,
                };
                if let (Some(net), Some(sf)) = (
                    &inception,
                    style_features.get(sname).filter(|_| style.is_some()),
                ) {
                    output_features.push(inception_features(net, &picture, &device)?);
                    paired_style_features.push(sf.clone());
                }
                let losses = match (&vgg, cref) {
                    (Some(v), Some(c)) => Some(metrics::vgg_losses(v, unit(&picture), c, style.as_ref().and(style_refs.get(sname)))?),
                    _ => None,
                };
                eprintln!(
                    "{:<24} {:<28} {:<24} {} SSIM {ssim:.3}{}",
                    arm.label,
                    cname,
                    sname,
                    seconds.map_or("reused".into(), |s| format!("{s:.2} s")),
                    lpips_value.map_or(String::new(), |v| format!(" LPIPS {v:.3}")),
                );
                records.push(Record {
                    method: arm.label.clone(),
                    content: cname.clone(),
                    style: sname.clone(),
                    seconds,
                    ssim,
                    lpips: lpips_value,
                    content_loss: losses.map(|l| l.content),
                    style_loss_gram: losses.and_then(|l| l.style_gram),
                    style_loss_mean_std: losses.and_then(|l| l.style_mean_std),
                    image: file.strip_prefix(&a.output).unwrap_or(&file).to_string_lossy().into_owned(),
                });
            }
        }
        let mine: Vec<&Record> = records.iter().filter(|r| r.method == arm.label).collect();
        let mean_lpips = mean(mine.iter().filter_map(|r| r.lpips));
        let fid = if output_features.len() >= 2 {
            // Rounding can leave the distance of identical sets a hair below 0.
            Some(fid::frechet_distance(&output_features, &paired_style_features)?.max(0.0))
        } else {
            if inception.is_some() {
                notes.push(format!(
                    "No FID or ArtFID for {}: {}.",
                    arm.label,
                    if arm.columns.iter().all(|(_, s)| s.is_none()) {
                        "its style is a model, with no style images to compare with"
                    } else {
                        "FID needs at least two outputs"
                    }
                ));
            }
            None
        };
        let art_fid = match (alex, mean_lpips, fid) {
            (Some(_), Some(l), Some(f)) => Some((1.0 + l) * (1.0 + f)),
            _ => None,
        };
        summaries.push(Summary {
            method: arm.label.clone(),
            outputs: mine.len(),
            seconds_per_image: mean(mine.iter().filter_map(|r| r.seconds)),
            peak_rss_mib: if ran { peak_rss_mib() } else { None },
            ssim: mean(mine.iter().map(|r| r.ssim)).unwrap_or(f64::NAN),
            lpips: mean_lpips,
            fid,
            art_fid,
            content_loss: mean(mine.iter().filter_map(|r| r.content_loss)),
            style_loss_gram: mean(mine.iter().filter_map(|r| r.style_loss_gram)),
            style_loss_mean_std: mean(mine.iter().filter_map(|r| r.style_loss_mean_std)),
        });
    }

    let table = summary_table(&summaries);
    println!("{table}");
    for n in &notes {
        println!("note: {n}");
    }
    let json = serde_json::json!({ "summaries": summaries, "records": records, "notes": notes, "max_size": a.max_size, "networks": networks });
    image_io::write_atomic(&a.output.join("metrics.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    let sheet = contact_sheet(&arms, &contents, &records, &a.output)?;
    sheet.save(&a.output.join("contact_sheet.png"))?;
    let html = report_html(&arms, &contents, &styles, &summaries, &records, &notes, &table, &a.output)?;
    image_io::write_atomic(&a.output.join("index.html"), html.as_bytes())?;
    println!("report: {}", a.output.join("index.html").display());
    Ok(())
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// A name safe in file names: lower-case letters, digits and `-`.
fn slug(s: &str) -> String {
    let out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    out.trim_matches('-').to_string()
}

/// The pictures of files and folders, by file stem, scaled to `max_size`.
fn pictures(paths: &[PathBuf], max_size: u32) -> Result<Vec<(String, Picture)>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().and_then(|e| e.to_str()).is_some_and(|e| ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str())))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    files.dedup();
    let mut seen = std::collections::BTreeSet::new();
    files
        .iter()
        .map(|f| {
            // Two files with one stem (holiday.jpg, holiday.png) get distinct names, so their
            // outputs do not overwrite each other.
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("image").to_string();
            let name = (1..).map(|i| if i == 1 { stem.clone() } else { format!("{stem}-{i}") }).find(|n| seen.insert(slug(n))).expect("a free name");
            Ok((name, image_io::read(f, image_io::DEFAULT_MAX_PIXELS)?.fit_within(max_size)))
        })
        .collect()
}

/// Style pictures: built-in paintings by name (a file of that name wins), files, folders.
fn style_pictures(args: &[String], max_size: u32) -> Result<Vec<(String, Picture)>> {
    let mut out = Vec::new();
    for s in args {
        let path = Path::new(s);
        match builtin::painting(s).filter(|_| !path.exists()) {
            Some(p) => out.push((p.name.to_string(), p.picture()?.fit_within(max_size))),
            None => out.extend(pictures(&[path.to_path_buf()], max_size)?),
        }
    }
    Ok(out)
}

/// `METHOD[:MODEL]` as an arm.
fn arm(spec: &str, styles: &[(String, Picture)], lib: &Library, device: &Device, iterations: Option<u64>, vgg: &str) -> Result<Arm> {
    let (name, model) = match spec.split_once(':') {
        Some((m, model)) => (m, Some(model)),
        None => (spec, None),
    };
    let method = methods::get(name)?;
    let info = method.info();
    // A method that runs a VGG (gatys) uses the losses' VGG unless told otherwise.
    let default = if info.accepts(styleforge_core::library::ModelKind::Vgg) { Some(vgg) } else { info.default_model };
    let model_name = match (model, default) {
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) => bail!("--method {name} needs a model: --method {name}:MODEL"),
    };
    let weights = lib.weights(model_name).with_context(|| format!("loading {model_name}"))?;
    let detected = kind::detect(&weights)?;
    if !info.accepts(detected.kind) {
        bail!("`{model_name}` is {}; method {name} runs {}", detected.kind.a_title(), info.model_kinds.iter().map(|k| k.title()).collect::<Vec<_>>().join(" or "));
    }
    let named = model.is_some();
    let model = detected.kind.load_weights(&weights, device)?;
    let columns = match info.style {
        StyleSource::Images { .. } => {
            if styles.is_empty() {
                bail!("--method {name} compares style images: give them with --style");
            }
            styles.iter().map(|(n, p)| (n.clone(), Some(p.clone()))).collect()
        }
        StyleSource::Model => vec![(model_name.to_string(), None)],
    };
    let mut params = Params::new();
    if info.takes("iterations") {
        params.set_integer("iterations", iterations)?;
    }
    let label = if named { spec.to_string() } else { name.to_string() };
    Ok(Arm { label, method, model, columns, params })
}

fn load_vgg(lib: &Library, name: &str, device: &Device) -> Result<Vgg> {
    let w = lib.weights(name)?;
    Ok(Vgg::from_weights(&w, None, device)?)
}

/// LPIPS on the named backbone, or on `alexnet`, else `vgg16`, from the library, with the name
/// used; refused when two different pictures come out at a distance that is 0 or not finite
/// (weights that hold NaN, which the ReLUs turn into zeros).
fn load_lpips(lib: &Library, name: Option<&str>, device: &Device) -> Result<(Lpips, String)> {
    let names: Vec<&str> = match name {
        Some(n) => vec![n],
        None => vec!["alexnet", "vgg16"],
    };
    let mut errors = Vec::new();
    for n in &names {
        let backbone =
            lib.weights(n).map_err(anyhow::Error::from).and_then(
                |w| match MetricNet::from_weights(&w, device) {
                    Ok(MetricNet::Alex(net)) => Ok(Backbone::Alex(net)),
                    _ => Ok(Backbone::Vgg(
                        Vgg::from_weights(&w, None, device)
                            .with_context(|| format!("`{n}` is neither an AlexNet nor a VGG-16"))?,
                    )),
                },
            );
        match backbone {
            Ok(b) => {
                let l = Lpips::new(b, device)?;
                let probe = |name: &str| formula::picture(name, &[1, 3, 64, 64]).to_tensor::<4>(device);
                let d = l.distance(probe("probe.a")?, probe("probe.b")?).map(|d| d[0]);
                return match d {
                    Ok(d) if d > 0.0 && d.is_finite() => Ok((l, n.to_string())),
                    Ok(d) => bail!("`{n}` gives LPIPS {d} for two different pictures: its weights look broken"),
                    Err(e) => Err(anyhow::Error::from(e).context(format!("`{n}` cannot compute LPIPS"))),
                };
            }
            Err(e) => errors.push(format!("`{n}`: {e:#}")),
        }
    }
    bail!("no backbone ({})", errors.join("; "))
}

/// ArtFID's Inception-v3 from the library (or a file).
/// Refused when a probe picture's features are not finite or all zero (broken weights).
fn load_inception(lib: &Library, name: &str, device: &Device) -> Result<Inception3> {
    let w = lib.weights(name)?;
    let net = Inception3::from_weights(&w, device)?;
    let probe = formula::picture("probe.a", &[1, 3, 80, 80]).to_tensor::<4>(device)?;
    let f = fid::feature_rows(net.features(probe)?)?;
    if f.iter().flatten().any(|v| !v.is_finite()) || f.iter().flatten().all(|&v| v == 0.0) {
        bail!("`{name}` gives features that are not finite or all zero: its weights look broken");
    }
    Ok(net)
}

/// The 2048 pooled Inception-v3 features of a picture (RGB 0..1 at its own size, as ArtFID
/// feeds `ToTensor()` images).
fn inception_features(net: &Inception3, p: &Picture, device: &Device) -> Result<Vec<f32>> {
    let mut rows = fid::feature_rows(net.features(metrics::unit_tensor(p, device))?)?;
    Ok(rows.pop().unwrap_or_default())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) => format!("{x:.2e}"),
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

/// The averages as a Markdown table.
fn summary_table(s: &[Summary]) -> String {
    let mut t = String::from("| method | outputs | s / image | peak RSS MiB | SSIM ↑ | LPIPS ↓ | FID ↓ | ArtFID ↓ | content loss ↓ | style loss (Gram) ↓ | style loss (mean/std) ↓ |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in s {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.3} | {} | {} | {} | {} | {} | {} |",
            r.method,
            r.outputs,
            opt(r.seconds_per_image, 3),
            opt(r.peak_rss_mib, 0),
            r.ssim,
            opt(r.lpips, 3),
            opt(r.fid, 3),
            opt(r.art_fid, 1),
            opt(r.content_loss, 4),
            opt(r.style_loss_gram, 4),
            opt(r.style_loss_mean_std, 4)
        );
    }
    t
}

/// Side of a contact-sheet cell, pixels.
const CELL: u32 = 160;
/// Gap between cells.
const GAP: u32 = 6;

/// The contact sheet: one block per method, a row per content (the content first, then its
/// outputs in column order), the style pictures above the columns of image methods.
fn contact_sheet(arms: &[Arm], contents: &[(String, Picture)], records: &[Record], root: &Path) -> Result<Picture> {
    let cols = 1 + arms.iter().map(|a| a.columns.len()).max().unwrap_or(1) as u32;
    let header = |a: &Arm| a.columns.iter().any(|(_, s)| s.is_some());
    let rows: u32 = arms.iter().map(|a| header(a) as u32 + contents.len() as u32).sum();
    let (w, h) = (cols * (CELL + GAP) + GAP, rows * (CELL + GAP) + GAP);
    let n = (w * h) as usize;
    let mut sheet = Picture { width: w, height: h, rgb: vec![245.0; 3 * n], alpha: None };
    let mut paste = |pic: &Picture, col: u32, row: u32| {
        let fit = pic.fit_within(CELL);
        let (x0, y0) = (GAP + col * (CELL + GAP) + (CELL - fit.width) / 2, GAP + row * (CELL + GAP) + (CELL - fit.height) / 2);
        let m = (fit.width * fit.height) as usize;
        for y in 0..fit.height {
            for x in 0..fit.width {
                let d = ((y0 + y) * w + x0 + x) as usize;
                for c in 0..3 {
                    sheet.rgb[c * n + d] = fit.rgb[c * m + (y * fit.width + x) as usize];
                }
            }
        }
    };
    let mut row = 0;
    for arm in arms {
        if header(arm) {
            for (k, (_, style)) in arm.columns.iter().enumerate() {
                if let Some(p) = style {
                    paste(p, 1 + k as u32, row);
                }
            }
            row += 1;
        }
        for (cname, content) in contents {
            paste(content, 0, row);
            for (k, (sname, _)) in arm.columns.iter().enumerate() {
                if let Some(r) = records.iter().find(|r| r.method == arm.label && &r.content == cname && &r.style == sname) {
                    paste(&image_io::read(&root.join(&r.image), image_io::DEFAULT_MAX_PIXELS)?, 1 + k as u32, row);
                }
            }
            row += 1;
        }
    }
    Ok(sheet)
}

/// A picture as a `data:` URI of a JPEG at most 256 pixels on its longer side.
fn data_uri(p: &Picture) -> Result<String> {
    let bytes = p.fit_within(256).encode(Format::Jpeg)?;
    Ok(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The plot: each method's outputs (small points) and average (large) by content loss and Gram
/// style loss; by SSIM and seconds per image when there are no VGG losses. An SVG string.
fn plot_svg(summaries: &[Summary], records: &[Record]) -> Result<String> {
    use plotters::prelude::*;
    let vgg = records.iter().any(|r| r.content_loss.is_some() && r.style_loss_gram.is_some());
    let point = |r: &Record| -> Option<(f64, f64)> {
        if vgg { Some((r.content_loss?, r.style_loss_gram?)) } else { Some((r.ssim, r.seconds?)) }
    };
    let pts: Vec<(f64, f64)> = records.iter().filter_map(point).collect();
    let (xlabel, ylabel, title) = if vgg {
        ("content loss (relu4_1 MSE)", "style loss (Gram, relu1_1..relu5_1)", "Content against style loss (lower left is better)")
    } else {
        ("SSIM to the content", "seconds per image", "SSIM against time (no VGG-19 for the losses)")
    };
    let span = |v: &mut dyn Iterator<Item = f64>| -> (f64, f64) {
        let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.05).max(1e-9);
        (lo - pad, hi + pad)
    };
    let (x0, x1) = span(&mut pts.iter().map(|p| p.0));
    let (y0, y1) = span(&mut pts.iter().map(|p| p.1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        chart
            .configure_mesh()
            .x_desc(xlabel)
            .y_desc(ylabel)
            .x_label_formatter(&|v| format!("{v:.3}"))
            .y_label_formatter(&|v| if v.abs() < 1e-2 && *v != 0.0 { format!("{v:.1e}") } else { format!("{v:.3}") })
            .draw()
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        for (i, s) in summaries.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let mine: Vec<(f64, f64)> = records.iter().filter(|r| r.method == s.method).filter_map(point).collect();
            chart
                .draw_series(mine.iter().map(|p| Circle::new(*p, 3, colour.mix(0.5).filled())))
                .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
            let avg = if vgg { s.content_loss.zip(s.style_loss_gram) } else { Some(s.ssim).zip(s.seconds_per_image) };
            if let Some(a) = avg {
                chart
                    .draw_series(std::iter::once(Circle::new(a, 7, colour.filled())))
                    .map_err(|e| anyhow::anyhow!("plot: {e}"))?
                    .label(s.method.clone())
                    .legend(move |(x, y)| Circle::new((x, y), 5, colour.filled()));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    Ok(svg)
}

/// The self-contained HTML report.
#[allow(clippy::too_many_arguments)]
fn report_html(
    arms: &[Arm],
    contents: &[(String, Picture)],
    styles: &[(String, Picture)],
    summaries: &[Summary],
    records: &[Record],
    notes: &[String],
    table: &str,
    root: &Path,
) -> Result<String> {
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>styleforge evaluation</title><style>");
    h.push_str("body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.grid td{padding:3px;text-align:center;vertical-align:top}.grid img{max-width:200px;max-height:200px;display:block;margin:auto}.cap{font-size:12px;color:#555}.note{color:#8a5a00}");
    h.push_str("</style></head><body><h1>styleforge evaluation</h1>");
    let _ = write!(h, "<p>{} content photos, {} style images, {} methods.</p>", contents.len(), styles.len(), arms.len());
    for n in notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    h.push_str("<h2>Averages</h2><table><tr>");
    let header = table.lines().next().unwrap_or("");
    for cell in header.trim_matches('|').split('|') {
        let _ = write!(h, "<th>{}</th>", esc(cell.trim()));
    }
    h.push_str("</tr>");
    for line in table.lines().skip(2) {
        h.push_str("<tr>");
        for cell in line.trim_matches('|').split('|') {
            let _ = write!(h, "<td>{}</td>", esc(cell.trim()));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    let _ = write!(h, "<h2>Plot</h2>{}", plot_svg(summaries, records)?);
    h.push_str("<p class=\"cap\">SSIM: Wang et al. 2004 (11×11 Gaussian window, σ 1.5), mean over RGB. Content loss: mean squared difference of VGG-19 relu4_1 features. Style losses over relu1_1..relu5_1: Gram matrices F Fᵀ/(C·H·W) (Gatys et al.) and channel means and standard deviations (AdaIN), mean squared differences summed over layers. VGG inputs RGB 0..1. LPIPS: Zhang et al. 2018, v0.1 linear layers on AlexNet (or VGG-16) features, 0 for identical pictures. FID: Fréchet distance between Inception-v3 pooled features of the outputs and of their style images. ArtFID: Wright and Ommer 2022, (1 + LPIPS) · (1 + FID).</p>");
    for arm in arms {
        let _ = write!(h, "<h2>{}</h2><table class=\"grid\"><tr><th>content \\ style</th>", esc(&arm.label));
        for (sname, style) in &arm.columns {
            match style {
                Some(p) => {
                    let _ = write!(h, "<th><img alt=\"{0}\" src=\"{1}\"><div class=\"cap\">{0}</div></th>", esc(sname), data_uri(p)?);
                }
                None => {
                    let _ = write!(h, "<th>{}</th>", esc(sname));
                }
            }
        }
        h.push_str("</tr>");
        for (cname, content) in contents {
            let _ = write!(h, "<tr><td><img alt=\"{0}\" src=\"{1}\"><div class=\"cap\">{0}</div></td>", esc(cname), data_uri(content)?);
            for (sname, _) in &arm.columns {
                match records.iter().find(|r| r.method == arm.label && &r.content == cname && &r.style == sname) {
                    Some(r) => {
                        let pic = image_io::read(&root.join(&r.image), image_io::DEFAULT_MAX_PIXELS)?;
                        let mut cap = format!("SSIM {:.3}", r.ssim);
                        if let Some(l) = r.lpips {
                            let _ = write!(cap, " · LPIPS {l:.3}");
                        }
                        if let Some(c) = r.content_loss {
                            let _ = write!(cap, " · content {}", opt(Some(c), 4));
                        }
                        if let Some(g) = r.style_loss_gram {
                            let _ = write!(cap, " · style {}", opt(Some(g), 4));
                        }
                        let _ = write!(cap, " · {}", r.seconds.map_or("reused".into(), |s| format!("{s:.2} s")));
                        let _ = write!(h, "<td><img alt=\"{} on {}\" src=\"{}\"><div class=\"cap\">{cap}</div></td>", esc(sname), esc(cname), data_uri(&pic)?);
                    }
                    None => h.push_str("<td>-</td>"),
                }
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Every output</h2><table><tr><th>method</th><th>content</th><th>style</th><th>s</th><th>SSIM</th><th>LPIPS</th><th>content loss</th><th>style (Gram)</th><th>style (mean/std)</th></tr>");
    for r in records {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.method),
            esc(&r.content),
            esc(&r.style),
            opt(r.seconds, 2),
            r.ssim,
            opt(r.lpips, 4),
            opt(r.content_loss, 5),
            opt(r.style_loss_gram, 5),
            opt(r.style_loss_mean_std, 5)
        );
    }
    h.push_str("</table></body></html>\n");
    Ok(h)
}
