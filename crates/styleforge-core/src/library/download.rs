//! Downloading well-known public models into the library, verified by sha256.
//!
//! The built-in manifest (`manifest.json`, replaceable with `STYLEFORGE_MANIFEST`) lists each
//! model's source URL(s), its digest and its licence. A download streams to a `.partial` file in
//! `$STYLEFORGE_HOME/downloads`, resumes with an HTTP range request when that file exists,
//! verifies the digest before anything reaches the library, converts the weights, and writes the
//! model atomically: a failure at any point leaves no half-written model behind.
//!
//! Digests: `sha256` is the whole file's; `sha256_prefix` is the leading hex digits that
//! torch.hub checks for files named like `vgg19-dcbb9e9d.pth`; `tensors_sha256` hashes the
//! converted tensors ([`Weights::content_sha256`]) for sources spread over many files. An entry
//! with no digest at all is refused unless the caller trusts it explicitly, and then the
//! computed digest is reported so that it can be pinned.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::library::{Library, ModelInfo, sha256_file, validate_name};
use crate::weights::{HostTensor, Weights};

const BUILTIN: &str = include_str!("manifest.json");

/// The list of downloadable models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Entries by name.
    pub models: Vec<Entry>,
}

/// One downloadable model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Library name the model gets.
    pub name: String,
    /// Human-readable title.
    pub title: String,
    /// Method it serves (`fast`, `adain`, `cyclegan`, `vgg`).
    pub method: String,
    /// Keywords.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Gallery text.
    #[serde(default)]
    pub description: String,
    /// Licence or terms of the weights.
    pub license: String,
    /// Research-only terms: may be downloaded by a user, never bundled.
    #[serde(default)]
    pub research_only: bool,
    /// Where the weights come from.
    pub source: Source,
    /// sha256 of the converted tensors, for sources without a single file digest.
    #[serde(default)]
    pub tensors_sha256: Option<String>,
}

/// How the weights are published.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub enum Source {
    /// One or more `.pth`/`.safetensors` files; each part's tensors get the part's name prefix.
    Files {
        /// The files.
        parts: Vec<Part>,
    },
    /// A member of a zip archive.
    Zip {
        /// The archive.
        archive: Part,
        /// Path of the weight file inside it.
        member: String,
    },
    /// Engstrom's network as the ml5.js zoo publishes it: `manifest.json` plus raw float32
    /// files `Variable`, `Variable_1` … `Variable_47` in TensorFlow layouts.
    Ml5Engstrom {
        /// Directory URL ending in `/`.
        base_url: String,
    },
}

/// One downloadable file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// Source URL.
    pub url: String,
    /// Full sha256 (hex).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Leading hex digits of the sha256 (torch.hub convention).
    #[serde(default)]
    pub sha256_prefix: Option<String>,
    /// Prefix added to this part's tensor names (`encoder.`).
    #[serde(default)]
    pub prefix: String,
}

impl Part {
    fn pinned(&self) -> bool {
        self.sha256.is_some() || self.sha256_prefix.is_some()
    }
}

impl Entry {
    /// Whether the entry carries any digest to verify against.
    pub fn pinned(&self) -> bool {
        self.tensors_sha256.is_some()
            || match &self.source {
                Source::Files { parts } => !parts.is_empty() && parts.iter().all(Part::pinned),
                Source::Zip { archive, .. } => archive.pinned(),
                Source::Ml5Engstrom { .. } => false,
            }
    }

    /// The primary source URL.
    pub fn url(&self) -> String {
        match &self.source {
            Source::Files { parts } => parts.first().map(|p| p.url.clone()).unwrap_or_default(),
            Source::Zip { archive, member } => format!("{}#{member}", archive.url),
            Source::Ml5Engstrom { base_url } => base_url.clone(),
        }
    }
}

impl Manifest {
    /// The built-in manifest, or the file named by `STYLEFORGE_MANIFEST`.
    pub fn load_default() -> Result<Self> {
        match std::env::var_os("STYLEFORGE_MANIFEST") {
            Some(p) => Self::load(Path::new(&p)),
            None => Self::parse(BUILTIN),
        }
    }

    /// Reads a manifest file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text).map_err(|e| Error::Param(format!("{}: {e}", path.display())))
    }

    /// Parses manifest JSON and checks names.
    pub fn parse(text: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| Error::Param(format!("bad manifest: {e}")))?;
        for e in &m.models {
            validate_name(&e.name)?;
        }
        Ok(m)
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Result<&Entry> {
        self.models.iter().find(|e| e.name == name).ok_or_else(|| {
            Error::ModelNotFound(format!("`{name}` is not in the download manifest (see `styleforge models list --available`)"))
        })
    }
}

/// Download progress: bytes so far and the total when the server says it.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, Option<u64>);

/// Options for [`download`].
#[derive(Debug, Clone, Default)]
pub struct DownloadOptions {
    /// Accept an entry with no digest (its computed digest is returned for pinning).
    pub trust_unpinned: bool,
    /// Replace a model of the same name.
    pub overwrite: bool,
}

/// Downloads `entry`, verifies it, converts it and adds it to `library`.
pub fn download(library: &Library, entry: &Entry, opts: &DownloadOptions, progress: Progress<'_>) -> Result<ModelInfo> {
    if !entry.pinned() && !opts.trust_unpinned {
        return Err(Error::Download(format!(
            "`{}` has no pinned sha256 in the manifest; pass --trust to download it anyway and pin the digest it reports",
            entry.name
        )));
    }
    if library.model_path(&entry.name).exists() && !opts.overwrite {
        return Err(Error::Param(format!("a model named `{}` already exists (remove it first)", entry.name)));
    }
    let cache = library.home().join("downloads").join(&entry.name);
    std::fs::create_dir_all(&cache).map_err(|e| Error::io(&cache, e))?;
    let (mut weights, file_sha) = match &entry.source {
        Source::Files { parts } => {
            let mut all = Weights::default();
            let mut shas = Vec::new();
            for part in parts {
                let path = fetch(part, &cache, progress)?;
                shas.push(sha256_file(&path)?);
                let w = Weights::load(&path)?;
                for (k, t) in w.tensors {
                    all.tensors.insert(format!("{}{k}", part.prefix), t);
                }
                all.metadata.extend(w.metadata);
            }
            (all, shas.join(","))
        }
        Source::Zip { archive, member } => {
            let path = fetch(archive, &cache, progress)?;
            let out = cache.join(member.rsplit('/').next().unwrap_or("weights"));
            extract_member(&path, member, &out)?;
            (Weights::load(&out)?, sha256_file(&path)?)
        }
        Source::Ml5Engstrom { base_url } => (fetch_ml5(base_url, &cache, progress)?, String::new()),
    };
    crate::library::drop_unused(&mut weights);
    let content = weights.content_sha256();
    if let Some(want) = &entry.tensors_sha256 {
        if !want.eq_ignore_ascii_case(&content) {
            return Err(Error::Download(format!(
                "`{}`: converted tensors hash to {content}, the manifest expects {want}",
                entry.name
            )));
        }
    }
    let mut info = ModelInfo {
        name: entry.name.clone(),
        title: entry.title.clone(),
        family: String::new(),
        method: entry.method.clone(),
        tags: entry.tags.clone(),
        description: entry.description.clone(),
        license: entry.license.clone(),
        source_url: entry.url(),
        sha256: if file_sha.is_empty() { content } else { file_sha },
        research_only: entry.research_only,
        training: Default::default(),
        builtin: false,
    };
    library.add_weights(&mut weights, &mut info, opts.overwrite)?;
    let _ = std::fs::remove_dir_all(&cache);
    Ok(info)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// Fetches one part into `dir`, resuming a `.partial` file, and verifies its digest.
/// Returns the path of the complete file.
pub fn fetch(part: &Part, dir: &Path, progress: Progress<'_>) -> Result<PathBuf> {
    let name = file_name(&part.url);
    let done = dir.join(&name);
    if done.exists() && verify(part, &done).is_ok() {
        return Ok(done);
    }
    let partial = dir.join(format!("{name}.partial"));
    let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let mut req = agent().get(&part.url);
    if have > 0 {
        req = req.header("Range", &format!("bytes={have}-"));
    }
    let mut resp = req
        .call()
        .map_err(|e| Error::Download(format!("{}: {e}", part.url)))?;
    let status = resp.status().as_u16();
    let (mut file, mut got) = match status {
        206 => (open_append(&partial)?, have),
        200 => (std::fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?, 0),
        416 if have > 0 => (open_append(&partial)?, have),
        _ => return Err(Error::Download(format!("{}: HTTP {status}", part.url))),
    };
    if status != 416 {
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|n| n + got);
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| {
                Error::Download(format!(
                    "{}: interrupted after {got} bytes ({e}); run the download again to resume",
                    part.url
                ))
            })?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| Error::io(&partial, e))?;
            got += n as u64;
            progress(&name, got, total);
        }
        file.sync_all().map_err(|e| Error::io(&partial, e))?;
        if let Some(t) = total {
            if got < t {
                return Err(Error::Download(format!(
                    "{}: connection closed after {got} of {t} bytes; run the download again to resume",
                    part.url
                )));
            }
        }
    }
    if let Err(e) = verify(part, &partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &done).map_err(|e| Error::io(&done, e))?;
    Ok(done)
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))
}

/// Checks a file against the part's digest (if any).
fn verify(part: &Part, path: &Path) -> Result<()> {
    let sha = sha256_file(path)?;
    let expect = part.sha256.as_deref().or(part.sha256_prefix.as_deref());
    match expect {
        Some(want) if !sha.starts_with(&want.to_ascii_lowercase()) => Err(Error::Download(format!(
            "{}: sha256 mismatch (expected {want}, got {sha}); the partial file was deleted",
            part.url
        ))),
        _ => Ok(()),
    }
}

fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("download");
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
    if clean.is_empty() { "download".into() } else { clean }
}

fn extract_member(archive: &Path, member: &str, out: &Path) -> Result<()> {
    let f = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| Error::Download(format!("{}: not a zip archive ({e})", archive.display())))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| Error::Download(format!("{}: no member `{member}` ({e})", archive.display())))?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).map_err(|e| Error::io(archive, e))?;
    crate::image_io::write_atomic(out, &bytes)
}

/// Layer names of Engstrom's network in the order its variables were created.
pub const ENGSTROM_LAYERS: [&str; 16] = [
    "conv1", "conv2", "conv3", "res1.conv1", "res1.conv2", "res2.conv1", "res2.conv2", "res3.conv1", "res3.conv2",
    "res4.conv1", "res4.conv2", "res5.conv1", "res5.conv2", "deconv1", "deconv2", "conv_out",
];

/// Downloads an ml5.js Engstrom model and converts it: variable `3i` is layer i's kernel
/// (TensorFlow HWIO, or HWOI for the transposed convs), `3i+1` its shift, `3i+2` its scale.
fn fetch_ml5(base_url: &str, dir: &Path, progress: Progress<'_>) -> Result<Weights> {
    let base = if base_url.ends_with('/') { base_url.to_string() } else { format!("{base_url}/") };
    let manifest_path = fetch(&Part { url: format!("{base}manifest.json"), sha256: None, sha256_prefix: None, prefix: String::new() }, dir, progress)?;
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let manifest: std::collections::BTreeMap<String, Ml5Var> =
        serde_json::from_str(&text).map_err(|e| Error::Download(format!("{base}manifest.json: {e}")))?;
    let mut w = Weights::default();
    for (i, layer) in ENGSTROM_LAYERS.iter().enumerate() {
        for (j, what) in ["weight", "shift", "scale"].iter().enumerate() {
            let var = match 3 * i + j {
                0 => "Variable".to_string(),
                n => format!("Variable_{n}"),
            };
            let meta = manifest
                .get(&var)
                .ok_or_else(|| Error::Download(format!("{base}manifest.json has no `{var}`")))?;
            let url = format!("{base}{}", meta.filename);
            let path = fetch(&Part { url, sha256: None, sha256_prefix: None, prefix: String::new() }, dir, progress)?;
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let n: usize = meta.shape.iter().product();
            if bytes.len() != 4 * n {
                return Err(Error::Download(format!("{var}: {} bytes for shape {:?}", bytes.len(), meta.shape)));
            }
            let data: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            let t = HostTensor::new(meta.shape.clone(), data);
            let t = if *what == "weight" { tf_kernel_to_torch(&t)? } else { t };
            w.tensors.insert(format!("{layer}.{what}"), t);
        }
    }
    Ok(w)
}

#[derive(Debug, Deserialize)]
struct Ml5Var {
    filename: String,
    shape: Vec<usize>,
}

/// TensorFlow kernel `[kh, kw, a, b]` → PyTorch `[b, a, kh, kw]` (HWIO → OIHW for convolutions,
/// HWOI → IOHW for transposed convolutions: the same permutation).
pub fn tf_kernel_to_torch(t: &HostTensor) -> Result<HostTensor> {
    let [kh, kw, a, b] = <[usize; 4]>::try_from(t.shape.as_slice())
        .map_err(|_| Error::Download(format!("kernel of shape {:?} is not 4-D", t.shape)))?;
    let mut out = vec![0f32; t.data.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..a {
                for o in 0..b {
                    out[((o * a + i) * kh + y) * kw + x] = t.data[((y * kw + x) * a + i) * b + o];
                }
            }
        }
    }
    Ok(HostTensor::new(vec![b, a, kh, kw], out))
}
