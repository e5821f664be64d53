//! Models: loaded once from the library and shared (an `Arc` cache keyed by model name, reloaded
//! when the file changes, loaded as the kind its metadata names), library files and the models
//! built into the binary alike (a file overrides the built-in model of its name); the built-in
//! paintings; and the style gallery with keyword search.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use styleforge_core::image_io::Picture;
use styleforge_core::library::builtin::{self, Painting};
use styleforge_core::library::{Library, Loaded, ModelInfo, ModelKind};
use styleforge_core::methods::{self, StyleSource};
use styleforge_core::networks::face_detector::FaceDetector;
use tokio::sync::OnceCell;
use utoipa::ToSchema;

use crate::jobs::{JobError, JobResult};

/// What a cached model was loaded from: a file's modification time and length, or `None` for a
/// built-in model.
type Stamp = Option<(SystemTime, u64)>;

struct Entry {
    stamp: Stamp,
    cell: Arc<OnceCell<Arc<Loaded>>>,
}

/// The shared model cache.
pub struct Models {
    library: Library,
    device: Device,
    cache: Mutex<HashMap<String, Entry>>,
    load_seconds: prometheus::HistogramVec,
    face_detector: OnceCell<Arc<FaceDetector>>,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("library", &self.library.models_dir())
            .finish()
    }
}

impl Models {
    /// A cache over the library at `home`.
    pub fn new(library: Library, device: Device, load_seconds: prometheus::HistogramVec) -> Self {
        Self {
            library,
            device,
            cache: Mutex::new(HashMap::new()),
            load_seconds,
            face_detector: OnceCell::new(),
        }
    }

    /// The library.
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// Every model: the library's files and the built-in models they do not override (headers
    /// only).
    pub async fn list(&self) -> JobResult<Vec<ModelInfo>> {
        let lib = self.library.clone();
        Ok(tokio::task::spawn_blocking(move || lib.list()).await.map_err(JobError::internal)??)
    }

    /// The metadata of one model (a library file, else a built-in model), or 404.
    pub async fn info(&self, name: &str) -> JobResult<ModelInfo> {
        if styleforge_core::library::validate_name(name).is_err()
            || !(self.library.model_path(name).is_file() || builtin::model_info(name).is_some())
        {
            return Err(JobError::not_found("style", name));
        }
        let lib = self.library.clone();
        let n = name.to_string();
        Ok(tokio::task::spawn_blocking(move || lib.info(&n)).await.map_err(JobError::internal)??)
    }

    /// The first model of one of `kinds`, preferring `preferred` by name.
    pub async fn find(&self, kinds: &[ModelKind], preferred: &str) -> JobResult<Option<ModelInfo>> {
        let all = self.list().await?;
        let fits = |m: &ModelInfo| ModelKind::of(m).is_some_and(|k| kinds.contains(&k));
        if let Some(m) = all.iter().find(|m| m.name == preferred && fits(m)) {
            return Ok(Some(m.clone()));
        }
        Ok(all.into_iter().find(|m| fits(m)))
    }

    /// The built-in face detector (RFB-320), loaded on first use.
    pub async fn face_detector(&self) -> JobResult<Arc<FaceDetector>> {
        let device = self.device.clone();
        let hist = self.load_seconds.clone();
        self.face_detector
            .get_or_try_init(|| async move {
                let loaded = tokio::task::spawn_blocking(move || {
                    let t = Instant::now();
                    let r = builtin::face_detector(&device);
                    hist.with_label_values(&["face-detector"]).observe(t.elapsed().as_secs_f64());
                    r
                })
                .await
                .map_err(JobError::internal)?;
                loaded
                    .map(Arc::new)
                    .map_err(|e| JobError::internal(format!("loading the face detector: {e}")))
            })
            .await
            .cloned()
    }

    /// The built-in painting `name`, unless a library model of that name overrides it.
    pub fn painting(&self, name: &str) -> Option<&'static Painting> {
        builtin::painting(name).filter(|p| !self.library.model_path(p.name).is_file())
    }

    /// The loaded network for a model (a library file, else the built-in model of that name),
    /// loading it on first use (once, even when many requests ask at the same time).
    pub async fn get(&self, info: &ModelInfo) -> JobResult<Arc<Loaded>> {
        let path = self.library.model_path(&info.name);
        // A built-in model has no file: its stamp is constant, and a file of its name that
        // appears (or goes) later changes the stamp, so the cache reloads.
        let stamp = match std::fs::metadata(&path) {
            Ok(m) => Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
            Err(_) if builtin::model_info(&info.name).is_some() => None,
            Err(_) => return Err(JobError::not_found("style", &info.name)),
        };
        let from_file = stamp.is_some();
        let cell = {
            let mut cache = self.cache.lock().expect("model cache");
            let entry = cache.entry(info.name.clone()).or_insert_with(|| Entry {
                stamp,
                cell: Arc::new(OnceCell::new()),
            });
            if entry.stamp != stamp {
                *entry = Entry {
                    stamp,
                    cell: Arc::new(OnceCell::new()),
                };
            }
            entry.cell.clone()
        };
        let kind = ModelKind::of(info);
        let device = self.device.clone();
        let name = info.name.clone();
        let hist = self.load_seconds.clone();
        cell.get_or_try_init(|| async move {
            let n = name.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let t = Instant::now();
                let r = match kind {
                    Some(k) if from_file => k.load(&path, &device),
                    Some(k) => builtin::weights(&n).and_then(|w| k.load_weights(&w, &device)),
                    None => Err(styleforge_core::Error::Param(format!("model `{n}` is not a network this server runs"))),
                };
                hist.with_label_values(&[n.as_str()])
                    .observe(t.elapsed().as_secs_f64());
                r
            })
            .await
            .map_err(JobError::internal)?;
            match loaded {
                Ok(l) => {
                    tracing::info!(model = %name, "model loaded");
                    Ok(Arc::new(l))
                }
                Err(styleforge_core::Error::Param(m)) => {
                    Err(JobError::invalid("unsupported_model", m))
                }
                Err(e) => Err(JobError::internal(format!("loading model `{name}`: {e}"))),
            }
        })
        .await
        .cloned()
    }
}

/// Whether a library model is a style of its own: a model run by a method whose style is the
/// model (fast styles, CycleGAN generators), not a network that serves style images.
pub fn is_style_model(m: &ModelInfo) -> bool {
    ModelKind::of(m).is_some_and(|k| {
        methods::all().any(|x| x.info().style == StyleSource::Model && x.info().accepts(k))
    })
}

/// A style in the gallery: a model (from the library, or built in), a built-in painting, or a
/// custom style image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StyleInfo {
    /// The name to pass as `style`: the model's or the painting's name, or the custom style's id.
    pub name: String,
    /// Title.
    pub title: String,
    /// The method it serves: `fast` or `cyclegan` (a network that is the style), `microast`,
    /// `adain` or `vgg` (networks the methods whose style is images run), or `image` (a style
    /// image, built-in painting or custom upload, for microast, adain and gatys).
    pub method: String,
    /// `model` (a library model, or one built into styleforge), `builtin` (a public-domain
    /// painting built into styleforge) or `custom` (uploaded with `POST /v1/styles`).
    pub kind: String,
    /// Network family, for models.
    pub family: String,
    /// Keywords.
    pub tags: Vec<String>,
    /// Description.
    pub description: String,
    /// Licence or terms of the weights.
    pub license: String,
    /// Whether the weights carry research-only terms.
    pub research_only: bool,
    /// Preview image, when there is one.
    pub thumbnail_url: Option<String>,
    /// The model as an ONNX file, for models whose terms allow redistribution and whose kind
    /// exports to ONNX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_url: Option<String>,
    /// Relevance to the query (keyword search only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The style's ratings over every method and user, when it has any: count, mean and the 95%
    /// interval of the mean (see `GET /v1/stats/ratings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<crate::stats::ratings::RatingSummary>,
}

impl StyleInfo {
    /// A library model.
    pub fn from_model(m: &ModelInfo) -> Self {
        let thumb =
            is_style_model(m).then(|| format!("/v1/styles/{}/thumbnail", m.name));
        Self {
            name: m.name.clone(),
            title: if m.title.is_empty() {
                m.name.clone()
            } else {
                m.title.clone()
            },
            method: m.method.clone(),
            kind: "model".into(),
            family: m.family.clone(),
            tags: m.tags.clone(),
            description: m.description.clone(),
            license: m.license.clone(),
            research_only: m.research_only,
            thumbnail_url: thumb,
            onnx_url: (styleforge_core::onnx::redistributable(m) && ModelKind::of(m).is_some_and(styleforge_core::onnx::available))
                .then(|| format!("/v1/styles/{}/onnx", m.name)),
            score: None,
            rating: None,
        }
    }

    /// A built-in painting.
    pub fn from_painting(p: &Painting) -> Self {
        Self {
            name: p.name.into(),
            title: p.title.into(),
            method: "image".into(),
            kind: "builtin".into(),
            family: String::new(),
            tags: p.tags.iter().map(|t| t.to_string()).collect(),
            description: format!("{}, {}: a public-domain painting built into styleforge", p.artist, p.year),
            license: builtin::PAINTING_LICENSE.into(),
            research_only: false,
            thumbnail_url: Some(format!("/v1/styles/{}/thumbnail", p.name)),
            onnx_url: None,
            score: None,
            rating: None,
        }
    }

    /// A custom style image.
    pub fn from_image(r: &crate::db::ImageRow) -> Self {
        Self {
            name: r.id.clone(),
            title: if r.title.is_empty() {
                r.id.clone()
            } else {
                r.title.clone()
            },
            method: "image".into(),
            kind: "custom".into(),
            family: String::new(),
            tags: split_tags(&r.tags),
            description: r.description.clone(),
            license: String::new(),
            research_only: false,
            thumbnail_url: Some(format!("/v1/styles/{}/thumbnail", r.id)),
            onnx_url: None,
            score: None,
            rating: None,
        }
    }
}

/// The sha256 (hex) of a built-in painting's JPEG (computed once per process).
pub fn painting_sha256(p: &Painting) -> &'static str {
    static SHAS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let shas = SHAS.get_or_init(|| builtin::PAINTINGS.iter().map(|p| crate::store::sha256_hex(p.jpeg)).collect());
    builtin::PAINTINGS
        .iter()
        .position(|x| x.name == p.name)
        .map_or("", |i| shas[i].as_str())
}

/// Splits a comma-separated tag list.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// A crude English stem: enough that `stormy` finds `storm` and `waves` finds `wave`.
fn stem(w: &str) -> String {
    let w = w.to_lowercase();
    let n = w.len();
    let cut = |k: usize| w[..n - k].to_string();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", cut(3));
    }
    if n > 4
        && (w.ends_with("sses")
            || w.ends_with("xes")
            || w.ends_with("ches")
            || w.ends_with("shes")
            || w.ends_with("zes"))
    {
        return cut(2);
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") {
        return cut(1);
    }
    if n > 5 && w.ends_with("ing") {
        return cut(3);
    }
    if n > 4 && w.ends_with("ed") {
        return cut(2);
    }
    if n > 4 && w.ends_with('y') {
        return cut(1);
    }
    w
}

fn term_matches(term: &str, word: &str) -> bool {
    if term == word {
        return true;
    }
    let (a, b) = (stem(term), stem(word));
    a == b || (a.len() >= 4 && b.starts_with(&a)) || (b.len() >= 4 && a.starts_with(&b))
}

const STOP: [&str; 12] = [
    "a", "an", "the", "of", "and", "or", "in", "on", "with", "to", "for", "by",
];

/// Relevance of a style to a query: tags weigh most, then the title and name, then the
/// description. 0 when no term matches.
pub fn search_score(query: &str, s: &StyleInfo) -> f64 {
    let terms: Vec<String> = words(query)
        .into_iter()
        .filter(|t| !STOP.contains(&t.as_str()))
        .collect();
    if terms.is_empty() {
        return 0.0;
    }
    let tags: Vec<String> = s.tags.iter().flat_map(|t| words(t)).collect();
    let title = words(&format!("{} {}", s.title, s.name.replace(['_', '-'], " ")));
    let desc = words(&s.description);
    let mut score = 0.0;
    let mut matched = 0;
    for t in &terms {
        let mut best: f64 = 0.0;
        if tags.iter().any(|w| w == t) {
            best = best.max(3.0);
        } else if tags.iter().any(|w| term_matches(t, w)) {
            best = best.max(2.5);
        }
        if title.iter().any(|w| term_matches(t, w)) {
            best = best.max(2.0);
        }
        if desc.iter().any(|w| term_matches(t, w)) {
            best = best.max(1.0);
        }
        if best > 0.0 {
            matched += 1;
        }
        score += best;
    }
    // Styles matching every term rank above those matching some.
    if matched == terms.len() {
        score += terms.len() as f64;
    }
    score
}

/// A synthetic landscape (sky, sun, hills, a house, water) used to preview fast-style models.
pub fn sample_scene(width: u32, height: u32) -> Picture {
    let (w, h) = (width as usize, height as usize);
    let n = w * h;
    let mut rgb = vec![0f32; 3 * n];
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let mut c = [90.0 + 120.0 * fy, 150.0 + 70.0 * fy, 235.0 - 20.0 * fy];
            let (dx, dy) = (fx - 0.78, fy - 0.22);
            if dx * dx + dy * dy < 0.01 {
                c = [255.0, 214.0, 90.0];
            }
            let hill = 0.55 + 0.08 * (fx * 9.0).sin() + 0.05 * (fx * 3.0 + 1.0).cos();
            if fy > hill {
                c = [60.0 + 60.0 * fx, 140.0 - 40.0 * fy, 60.0];
            }
            if (0.2..0.38).contains(&fx) && (0.45..0.65).contains(&fy) {
                c = [200.0, 80.0, 60.0];
            }
            if (0.2..0.38).contains(&fx) && fy < 0.45 && fy > 0.45 - (0.09 - (fx - 0.29).abs()) {
                c = [120.0, 50.0, 40.0];
            }
            if fy > 0.82 {
                let ripple = 12.0 * ((fx * 40.0 + fy * 25.0).sin());
                c = [40.0 + ripple, 90.0 + ripple, 160.0 + ripple];
            }
            let i = y * w + x;
            rgb[i] = c[0].clamp(0.0, 255.0);
            rgb[n + i] = c[1].clamp(0.0, 255.0);
            rgb[2 * n + i] = c[2].clamp(0.0, 255.0);
        }
    }
    Picture::from_planes(width, height, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(name: &str, tags: &[&str], desc: &str) -> StyleInfo {
        StyleInfo {
            name: name.into(),
            title: name.into(),
            method: "fast".into(),
            kind: "model".into(),
            family: String::new(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            description: desc.into(),
            license: String::new(),
            research_only: false,
            thumbnail_url: None,
            onnx_url: None,
            score: None,
            rating: None,
        }
    }

    #[test]
    fn search_prefers_tags_and_stems() {
        let wave = style(
            "wave",
            &["sea", "storm", "japanese"],
            "Hokusai's great wave off Kanagawa",
        );
        let candy = style("candy", &["colourful", "abstract"], "bright candy colours");
        assert!(search_score("stormy sea", &wave) > 5.0);
        assert_eq!(search_score("stormy sea", &candy), 0.0);
        assert!(search_score("waves", &wave) > 0.0);
        assert_eq!(search_score("the", &wave), 0.0);
    }
}
