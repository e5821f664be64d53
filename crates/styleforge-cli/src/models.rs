//! `styleforge models`: the model library and the download manifest.

use std::path::PathBuf;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use styleforge_core::library::download::{self, DownloadOptions, Manifest};
use styleforge_core::library::{Library, ModelInfo, builtin};
use styleforge_core::onnx::runtime::{Channels, Overrides};
use styleforge_core::onnx::{self, ValueRange};
use styleforge_core::weights::Weights;

/// Subcommands of `styleforge models`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List installed models (or, with --available, the downloadable ones).
    List {
        /// Show the download manifest instead of the library.
        #[arg(long)]
        available: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a .pth, .safetensors or .onnx file into the library (AdaIN: the encoder and
    /// decoder files; MicroAST: its four files; CartoonGAN-light: the checkpoint folder).
    Import {
        /// The weight file(s).
        #[arg(required = true, num_args = 1..=4)]
        files: Vec<PathBuf>,
        /// Library name (lower-case letters, digits, '-', '_').
        #[arg(long)]
        name: String,
        /// Title shown in galleries.
        #[arg(long, default_value = "")]
        title: String,
        /// Comma-separated keywords.
        #[arg(long, default_value = "")]
        tags: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Licence or terms of the weights.
        #[arg(long, default_value = "")]
        license: String,
        /// Where the weights came from.
        #[arg(long, default_value = "")]
        source_url: String,
        /// Mark the weights as research-only.
        #[arg(long)]
        research_only: bool,
        /// Replace an existing model of that name.
        #[arg(long)]
        force: bool,
        /// ONNX: the input's value range, `0..255`, `0..1` or `-1..1` (default: the model's
        /// `styleforge.input_range` metadata, else 0..255, assumed).
        #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
        input_range: Option<String>,
        /// ONNX: the output's value range (default: the model's metadata, else the input's).
        #[arg(long, value_name = "RANGE", allow_hyphen_values = true)]
        output_range: Option<String>,
        /// ONNX: channel order, `RGB` or `BGR` (default: RGB).
        #[arg(long)]
        channels: Option<String>,
        /// ONNX: pad height and width to a multiple of N before running (default: the model's
        /// metadata, else 1; outputs a few pixels larger than the input are cropped anyway).
        #[arg(long, value_name = "N")]
        size_multiple: Option<u32>,
    },
    /// Write a library model as an ONNX model (opset and metadata as `styleforge.*` properties).
    Export {
        /// Library name (or a weight file).
        name: String,
        /// The .onnx file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Download a model from the manifest, verify it and add it to the library.
    Download {
        /// Manifest name (see `models list --available`).
        name: String,
        /// Accept an entry without a pinned sha256 (prints the digest to pin).
        #[arg(long)]
        trust: bool,
        /// Replace an existing model of that name.
        #[arg(long)]
        force: bool,
    },
    /// Remove a model from the library.
    Remove {
        /// Library name.
        name: String,
    },
    /// Print a weight file's sha256 and the sha256 of its tensors (for pinning manifests).
    Hash {
        /// The weight file.
        file: PathBuf,
    },
}

/// Runs the command.
pub fn run(c: Command) -> Result<()> {
    let library = Library::open_default();
    match c {
        Command::List { available: false, json } => {
            let models = library.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else {
                println!("Models ({}; built-in ones are compiled in):", library.models_dir().display());
                println!("  {:<22} {:<9} {:<16} {:<10} title / licence", "name", "method", "family", "terms");
                for m in models {
                    let terms = if m.builtin { "built-in" } else { terms(m.research_only) };
                    println!("  {:<22} {:<9} {:<16} {:<10} {}", m.name, m.method, m.family, terms, m.title);
                    if m.builtin {
                        println!("  {:<22} {:<9} {:<16} {:<10} licence: {}", "", "", "", "", m.license);
                    }
                }
                println!("\nBuilt-in paintings (public domain; `--style NAME`, with --method microast, adain or gatys):");
                for p in &builtin::PAINTINGS {
                    println!("  {:<22} {}, {} ({})", p.name, p.title, p.artist, p.year);
                }
            }
        }
        Command::List { available: true, json } => {
            let manifest = Manifest::load_default()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&manifest.models)?);
            } else {
                println!("{:<24} {:<8} {:<10} {:<8} licence", "name", "method", "terms", "pinned");
                for e in &manifest.models {
                    let pinned = if e.pinned() { "sha256" } else { "no" };
                    println!("{:<24} {:<8} {:<10} {:<8} {}", e.name, e.method, terms(e.research_only), pinned, e.license);
                }
            }
        }
        Command::Import {
            files,
            name,
            title,
            tags,
            description,
            license,
            source_url,
            research_only,
            force,
            input_range,
            output_range,
            channels,
            size_multiple,
        } => {
            let info = ModelInfo {
                name,
                title,
                tags: tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect(),
                description,
                license,
                source_url,
                research_only,
                ..Default::default()
            };
            let onnx_flags = input_range.is_some() || output_range.is_some() || channels.is_some() || size_multiple.is_some();
            if files.len() > 1 && files.iter().any(|f| is_onnx(f)) {
                anyhow::bail!("import one ONNX file at a time");
            }
            if let [file] = files.as_slice()
                && is_onnx(file)
            {
                let overrides = Overrides {
                    input_range: input_range.as_deref().map(ValueRange::parse).transpose()?,
                    output_range: output_range.as_deref().map(ValueRange::parse).transpose()?,
                    channels: channels.as_deref().map(Channels::parse).transpose()?,
                    size_multiple,
                };
                let (info, conventions) = library.import_onnx(file, info, &overrides, force)?;
                println!("imported {} (an ONNX model; stylise with it by name, method fast) into {}", info.name, library.models_dir().display());
                println!("  {}", conventions.describe());
                let weights = library.weights(&info.name)?;
                if let Ok(styleforge_core::library::Loaded::Onnx(net)) =
                    styleforge_core::library::ModelKind::Onnx.load_weights(&weights, &burn::tensor::Device::flex())
                    && let Some(kind) = net.native_kind()
                {
                    println!("  its weights are the state dict of {} giving the same pictures: it runs as styleforge's own network", kind.a_title());
                }
                return Ok(());
            }
            if onnx_flags {
                anyhow::bail!("--input-range, --output-range, --channels and --size-multiple apply to ONNX files only");
            }
            let info = library.import(&files, info, force)?;
            println!("imported {} ({} {}) into {}", info.name, info.method, info.family, library.models_dir().display());
        }
        Command::Export { name, output } => {
            let weights = library.weights(&name)?;
            let detected = styleforge_core::library::kind::detect(&weights)?;
            // A library model's metadata; a file's own, with what detection tells.
            let mut info = match library.info(&name) {
                Ok(i) => i,
                Err(_) => {
                    let mut i = ModelInfo::from_metadata(&weights.metadata);
                    if i.name.is_empty() {
                        i.name = std::path::Path::new(&name).file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
                    }
                    i
                }
            };
            if info.family.is_empty() {
                info.family = detected.family.to_string();
            }
            if info.method.is_empty() {
                info.method = detected.kind.name().to_string();
            }
            let loaded = detected.kind.load_weights(&weights, &burn::tensor::Device::flex())?;
            let bytes = onnx::model_bytes(&loaded, &info)?;
            styleforge_core::image_io::write_atomic(&output, &bytes)?;
            if info.research_only {
                eprintln!("{}: these weights carry research-only terms; do not redistribute the ONNX file", info.name);
            }
            let how = match detected.kind {
                styleforge_core::library::ModelKind::Onnx => "the imported graph with its metadata".to_string(),
                k => format!("{} as ONNX opset {}", k.title(), onnx::export::OPSET),
            };
            println!("wrote {} ({} bytes, {how})", output.display(), bytes.len());
        }
        Command::Download { name, trust, force } => {
            let manifest = Manifest::load_default()?;
            let entry = manifest.get(&name)?;
            eprintln!("{}: licence: {}", entry.name, entry.license);
            if entry.research_only {
                eprintln!("{}: these weights carry research-only terms; do not redistribute them", entry.name);
            }
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg:20} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").expect("template"),
            );
            let opts = DownloadOptions { trust_unpinned: trust, overwrite: force };
            let info = download::download(&library, entry, &opts, &mut |file, got, total| {
                bar.set_message(file.to_string());
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(got);
            });
            bar.finish_and_clear();
            let info = info?;
            if !entry.pinned() {
                eprintln!("{}: unpinned source; its sha256 is {} (pin it in the manifest)", info.name, info.sha256);
            }
            println!("downloaded {} into {}", info.name, library.models_dir().display());
        }
        Command::Remove { name } => {
            library.remove(&name)?;
            println!("removed {name}");
        }
        Command::Hash { file } => {
            let weights = Weights::load(&file)?;
            println!("file_sha256    {}", styleforge_core::library::sha256_file(&file)?);
            println!("tensors_sha256 {}", weights.content_sha256());
        }
    }
    Ok(())
}

/// Whether `file` is an ONNX model: its extension, else its content.
fn is_onnx(file: &std::path::Path) -> bool {
    if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        return true;
    }
    file.is_file() && Weights::load(file).is_ok_and(|w| w.graph.is_some())
}

fn terms(research_only: bool) -> &'static str {
    if research_only { "research" } else { "open" }
}
