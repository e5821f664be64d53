//! The model library: a directory of models stored as safetensors with their metadata.
//!
//! `$STYLEFORGE_HOME/models/<name>.safetensors` (default home: the user's data directory +
//! `styleforge`). The metadata (name, title, family, method, tags, description, licence, source
//! URL, sha256 of the source) lives in the file's own `__metadata__`, so a model is one file
//! that can be copied between machines; listing reads headers only.

pub mod builtin;
pub mod download;
pub mod kind;

pub use kind::{Loaded, MetricNet, ModelKind};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::methods::fast::Family;
use crate::image_io::write_atomic;
use crate::onnx;
use crate::weights::Weights;

/// What the library knows about a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Unique name: lower-case letters, digits, `-` and `_`.
    pub name: String,
    /// Human-readable title.
    pub title: String,
    /// Network family (`transformer_net`, `engstrom`, ...).
    pub family: String,
    /// Stylisation method the model serves (`fast`, `adain`, `cyclegan`, `vgg`).
    pub method: String,
    /// Search keywords.
    pub tags: Vec<String>,
    /// One or two sentences for the gallery.
    pub description: String,
    /// Licence or terms of use of the weights.
    pub license: String,
    /// Where the weights came from.
    pub source_url: String,
    /// sha256 of the source file (hex), when known.
    pub sha256: String,
    /// Whether the weights carry research-only terms (never bundled or redistributed).
    pub research_only: bool,
    /// How a model trained by styleforge was made (steps, settings, data), stored as
    /// `training.<key>` metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub training: BTreeMap<String, String>,
    /// Whether the model is compiled into the binary ([`builtin`]) rather than a library file.
    #[serde(default)]
    pub builtin: bool,
}

impl ModelInfo {
    /// The metadata as stored: the fields under their own names, `tags` comma-separated,
    /// `training.<key>` for the training record.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("name".into(), self.name.clone());
        m.insert("title".into(), self.title.clone());
        m.insert("family".into(), self.family.clone());
        m.insert("method".into(), self.method.clone());
        m.insert("tags".into(), self.tags.join(","));
        m.insert("description".into(), self.description.clone());
        m.insert("license".into(), self.license.clone());
        m.insert("source_url".into(), self.source_url.clone());
        m.insert("sha256".into(), self.sha256.clone());
        m.insert("research_only".into(), self.research_only.to_string());
        for (k, v) in &self.training {
            m.insert(format!("training.{k}"), v.clone());
        }
        m
    }

    /// Reads [`ModelInfo::to_metadata`]'s map back (missing fields empty).
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        Self {
            name: get("name"),
            title: get("title"),
            family: get("family"),
            method: get("method"),
            tags: get("tags").split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
            description: get("description"),
            license: get("license"),
            source_url: get("source_url"),
            sha256: get("sha256"),
            research_only: get("research_only") == "true",
            training: m
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("training.").map(|k| (k.to_string(), v.clone())))
                .collect(),
            builtin: false,
        }
    }
}

/// A model library rooted at a directory.
#[derive(Debug, Clone)]
pub struct Library {
    root: PathBuf,
}

/// The default home: `$STYLEFORGE_HOME`, else `<data dir>/styleforge`.
pub fn default_home() -> PathBuf {
    if let Some(p) = std::env::var_os("STYLEFORGE_HOME") {
        return PathBuf::from(p);
    }
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("styleforge")
}

/// Checks a model name: 1–64 characters of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::Param(format!(
            "invalid model name `{name}`: use 1-64 lower-case letters, digits, '-' or '_'"
        )))
    }
}

impl Library {
    /// The library under `home` (its `models/` directory is created on first write).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self { root: home.into() }
    }

    /// The library at [`default_home`].
    pub fn open_default() -> Self {
        Self::new(default_home())
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.root
    }

    /// Directory holding the model files.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Path of the model file for `name` (whether or not it exists).
    pub fn model_path(&self, name: &str) -> PathBuf {
        self.models_dir().join(format!("{name}.safetensors"))
    }

    /// Every model: the library's files and the built-in models they do not override, sorted by
    /// name (files that fail to parse are skipped with a warning).
    pub fn list(&self) -> Result<Vec<ModelInfo>> {
        let mut out = self.installed()?;
        for m in builtin::models() {
            if !out.iter().any(|o| o.name == m.name) {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The models stored as files in the library directory (no built-in ones), sorted by name.
    pub fn installed(&self) -> Result<Vec<ModelInfo>> {
        let dir = self.models_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
                continue;
            }
            match read_info(&path) {
                Ok(info) => out.push(info),
                Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The metadata of one model: the library's file, else the built-in model of that name.
    pub fn info(&self, name: &str) -> Result<ModelInfo> {
        validate_name(name)?;
        let path = self.model_path(name);
        if !path.exists() {
            return builtin::model_info(name).ok_or_else(|| {
                Error::ModelNotFound(format!("`{name}` is not in the library at {}", self.models_dir().display()))
            });
        }
        read_info(&path)
    }

    /// The weights of a model argument: an existing file (`.safetensors`, `.pth`), a library
    /// model, or a built-in model (which a library file of the same name overrides).
    pub fn weights(&self, name_or_path: &str) -> Result<Weights> {
        match self.resolve(name_or_path) {
            Ok(path) => Weights::load(&path),
            Err(e) => match builtin::model_info(name_or_path) {
                Some(m) => builtin::weights(&m.name),
                None => Err(e),
            },
        }
    }

    /// Resolves a model argument: an existing file path, or a library name.
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf> {
        let p = Path::new(name_or_path);
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        if validate_name(name_or_path).is_ok() {
            let path = self.model_path(name_or_path);
            if path.is_file() {
                return Ok(path);
            }
        }
        if builtin::model_info(name_or_path).is_some() {
            return Err(Error::ModelNotFound(format!(
                "`{name_or_path}` is a built-in model: it has no file (load it with `Library::weights`)"
            )));
        }
        Err(Error::ModelNotFound(format!(
            "`{name_or_path}` is neither a file nor a model in {} (see `styleforge models list`)",
            self.models_dir().display()
        )))
    }

    /// Imports weights (`.pth` or `.safetensors`) under `info.name`, after checking that they
    /// load as the network they claim to be; fills `family` and `method`. Two files are the
    /// AdaIN release's encoder and decoder, stored together; four are MicroAST's.
    pub fn import(&self, files: &[PathBuf], mut info: ModelInfo, overwrite: bool) -> Result<ModelInfo> {
        let mut weights = match files {
            [one] => Weights::load(one)?,
            [a, b] => kind::combine_adain(Weights::load(a)?, Weights::load(b)?)?,
            [_, _, _, _] => kind::combine_microast(
                files
                    .iter()
                    .map(|f| Ok((f.file_name().unwrap_or_default().to_string_lossy().into_owned(), Weights::load(f)?)))
                    .collect::<Result<Vec<_>>>()?,
            )?,
            _ => {
                return Err(Error::Param(
                    "import takes one weight file (or the two AdaIN files, or the four MicroAST files)".into(),
                ));
            }
        };
        if info.sha256.is_empty() {
            let mut sources = Vec::new();
            for f in files {
                match f.is_file() {
                    true => sources.push(f.clone()),
                    false => sources.extend(crate::weights::tf_checkpoint::files(f)?),
                }
            }
            info.sha256 = sources.iter().map(|f| sha256_file(f)).collect::<Result<Vec<_>>>()?.join(",");
        }
        self.add_weights(&mut weights, &mut info, overwrite)?;
        Ok(info)
    }

    /// Imports an ONNX image-to-image model (`file`) under `info.name`: its conventions are read
    /// from the graph and its metadata, with `overrides` first ([`onnx::runtime::Conventions`]),
    /// checked by compiling and running the graph, and stored with the model. Returns the
    /// metadata and the conventions. Errors: as [`Library::import_onnx_bytes`].
    pub fn import_onnx(
        &self,
        file: &Path,
        info: ModelInfo,
        overrides: &onnx::runtime::Overrides,
        overwrite: bool,
    ) -> Result<(ModelInfo, onnx::runtime::Conventions)> {
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        self.import_onnx_bytes(bytes, info, overrides, overwrite).map_err(|e| match e {
            Error::Weights(m) => Error::Weights(format!("{}: {m}", file.display())),
            e => e,
        })
    }

    /// [`Library::import_onnx`] from the model's bytes (an upload). Title, licence, source and
    /// description left empty in `info` are taken from the model's own metadata properties.
    /// Errors: as [`Library::add_weights`], and [`Error::Weights`] for bytes that are not an
    /// ONNX image model tract can run; [`Error::Param`] for bad overrides.
    pub fn import_onnx_bytes(
        &self,
        bytes: Vec<u8>,
        mut info: ModelInfo,
        overrides: &onnx::runtime::Overrides,
        overwrite: bool,
    ) -> Result<(ModelInfo, onnx::runtime::Conventions)> {
        validate_name(&info.name)?;
        if info.sha256.is_empty() {
            use sha2::{Digest, Sha256};
            info.sha256 = hex::encode(Sha256::digest(&bytes));
        }
        let mut weights = Weights::from_onnx_bytes(bytes)?;
        let model = onnx::runtime::decode(weights.graph.as_deref().unwrap_or_default())?;
        let conventions = onnx::runtime::Conventions::read(&model, &weights.metadata, overrides)?;
        weights.metadata.retain(|k, _| !k.starts_with("styleforge."));
        weights.metadata.extend(conventions.to_metadata());
        // What the model says of itself fills what the importer left empty; research-only terms
        // stay, whoever states them.
        let from_model = ModelInfo::from_metadata(&weights.metadata);
        for (field, theirs) in [
            (&mut info.title, from_model.title),
            (&mut info.license, from_model.license),
            (&mut info.source_url, from_model.source_url),
            (&mut info.description, from_model.description),
        ] {
            if field.is_empty() {
                *field = theirs;
            }
        }
        if info.tags.is_empty() {
            info.tags = from_model.tags;
        }
        info.research_only |= from_model.research_only;
        self.add_weights(&mut weights, &mut info, overwrite)?;
        Ok((info, conventions))
    }

    /// Stores an in-memory weight map as a model, validating it first.
    pub fn add_weights(&self, weights: &mut Weights, info: &mut ModelInfo, overwrite: bool) -> Result<()> {
        validate_name(&info.name)?;
        let path = self.model_path(&info.name);
        if path.exists() && !overwrite {
            return Err(Error::Param(format!("a model named `{}` already exists (remove it first)", info.name)));
        }
        check_loads(weights, info)?;
        if builtin::painting(&info.name).is_some() {
            return Err(Error::Param(format!("`{}` is a built-in painting's name: choose another name for the model", info.name)));
        }
        // A library model replaces the built-in model of its name: only one of the same kind may.
        if let Some(b) = builtin::model_info(&info.name)
            && b.method != info.method
        {
            let kind = |m: &str| ModelKind::from_name(m).map_or(m.to_string(), ModelKind::a_title);
            return Err(Error::Param(format!(
                "`{}` is the name of a built-in {}, which a model of that name replaces; this one is {}: choose another name",
                info.name,
                ModelKind::from_name(&b.method).map_or_else(|| b.method.clone(), |k| k.title().to_string()),
                kind(&info.method)
            )));
        }
        let kept = std::mem::take(&mut weights.metadata);
        if info.license.is_empty() {
            info.license = kept.get("license").cloned().unwrap_or_default();
        }
        if info.title.is_empty() {
            info.title = info.name.clone();
        }
        drop_unused(weights);
        // An ONNX model keeps the conventions its import read or was told (`styleforge.*`).
        let conventions = kept.into_iter().filter(|(k, _)| weights.graph.is_some() && k.starts_with("styleforge."));
        weights.metadata = info.to_metadata();
        weights.metadata.extend(conventions);
        let dir = self.models_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_atomic(&path, &weights.to_safetensors_bytes()?)
    }

    /// Deletes a model.
    pub fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        let path = self.model_path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match builtin::model_info(name) {
                Some(_) => Err(Error::Param(format!("`{name}` is built into styleforge and cannot be removed"))),
                None => Err(Error::ModelNotFound(format!("`{name}` is not in the library"))),
            },
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// Removes tensors no network reads: the legacy instance-norm buffers of old TransformerNet
/// and CycleGAN files, the classifier of a full torchvision VGG or AlexNet (only `features` is
/// used), and the classifier heads of an Inception-v3 (only its pooled features are used).
pub fn drop_unused(weights: &mut Weights) {
    match kind::detect(weights) {
        Ok(d) if d.fast_family == Some(Family::TransformerNet) || d.kind == ModelKind::CycleGan => {
            weights.tensors.retain(|k, _| !crate::networks::cyclegan::is_legacy_norm_buffer(k));
        }
        Ok(d) if (d.kind == ModelKind::Vgg || d.family == "alexnet") && weights.has("features.0.weight") => {
            weights.tensors.retain(|k, _| k.starts_with("features."));
        }
        Ok(d) if d.family == "inception_v3" => {
            weights.tensors.retain(|k, _| !k.starts_with("AuxLogits") && !k.starts_with("fc1.") && !k.starts_with("fc2.") && !k.starts_with("fc."));
        }
        _ => {}
    }
}

/// Builds the network the weights claim to be, on the CPU, and fills family/method.
fn check_loads(weights: &Weights, info: &mut ModelInfo) -> Result<()> {
    let detected = kind::validate(weights)?;
    info.family = detected.family.to_string();
    if info.method.is_empty() || info.method != detected.kind.name() {
        info.method = detected.kind.name().into();
    }
    Ok(())
}

/// Reads a model's metadata from its safetensors header only.
pub fn read_info(path: &Path) -> Result<ModelInfo> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(Error::Weights(format!("{}: header too large", path.display())));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| Error::Weights(format!("{}: bad safetensors header ({e})", path.display())))?;
    let meta: BTreeMap<String, String> = v
        .get("__metadata__")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let mut info = ModelInfo::from_metadata(&meta);
    if info.name.is_empty() {
        info.name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
    }
    Ok(info)
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}
