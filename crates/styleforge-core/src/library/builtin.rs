//! The built-in library, compiled into the binary so that styleforge restyles photos on a machine
//! with nothing downloaded: MicroAST (MIT), the CartoonGAN-light filters (Apache-2.0) and eleven
//! public-domain paintings.
//!
//! - **MicroAST** (`microast`): the four published files of EndyWon/MicroAST
//!   (`*_iter_160000.pth.tar`, commit 5a6c9050d8c4, MIT licence, copyright (c) 2022 Zhizhong
//!   Wang; `assets/microast/LICENSE`), byte for byte; their sha256 are checked on load.
//! - **Cartoon filters** (`cartoon-paprika`, `cartoon-shinkai`): the published TensorFlow
//!   checkpoints of mnicnc404/CartoonGan-tensorflow (`light_{paprika,shinkai}_ckpt`, commit
//!   2f26a525f8b6, Apache-2.0, copyright 2019 Meng Lee and Ching Ning Chen;
//!   `assets/cartoongan/LICENSE`), byte for byte, sha256 checked on load.
//! - **Face detector** (not a stylisation model; used by [`crate::avatar`]): the published
//!   `version-RFB-320.pth` of Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB (commit
//!   dffdddda9794, MIT licence, copyright (c) 2019 linzai; `assets/face_detector/LICENSE`), byte
//!   for byte, sha256 checked on load ([`face_detector`]).
//! - **LPIPS linear layers** (not a stylisation model; used by [`crate::metrics::lpips`]): the
//!   published `lpips/weights/v0.1/{alex,vgg}.pth` of richzhang/PerceptualSimilarity (as released
//!   in the `lpips` 0.1.4 package; BSD-2-Clause, copyright (c) 2018 Richard Zhang, Phillip Isola,
//!   Alexei A. Efros, Eli Shechtman, Oliver Wang; `assets/lpips/LICENSE`), byte for byte, sha256
//!   checked on load ([`lpips_linear_weights`]). The backbones they sit on come from the library.
//! - **Paintings**: faithful reproductions of public-domain paintings, scaled so the long side is
//!   at most 768 px and stored as JPEG (`assets/paintings/README.md` gives the sources).
//!
//! A model of the same name in the user's library overrides a built-in one; built-ins cannot be
//! removed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use burn::tensor::Device;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::library::{ModelInfo, kind};
use crate::networks::face_detector::FaceDetector;
use crate::weights::Weights;

/// One published weight file shipped in the binary.
#[derive(Debug)]
pub struct BuiltinFile {
    /// The published file name.
    pub name: &'static str,
    /// The bytes, as published.
    pub bytes: &'static [u8],
    /// Their sha256 (hex), as published.
    pub sha256: &'static str,
}

/// A published file from `assets/<dir>/`, with its published sha256.
macro_rules! published {
    ($dir:literal, $name:literal, $sha256:literal) => {
        BuiltinFile { name: $name, bytes: include_bytes!(concat!("../../assets/", $dir, "/", $name)), sha256: $sha256 }
    };
}

/// MicroAST's four published files.
pub static MICROAST_FILES: [BuiltinFile; 4] = [
    published!("microast", "content_encoder_iter_160000.pth.tar", "c8d895c0eec52507c157e102fab217c37f0c399ef3e168ef8b0b2677714660a4"),
    published!("microast", "style_encoder_iter_160000.pth.tar", "94f6b3fa386828692c20809a0af8bd0eba9c04e90a7d8842086976e4d223c5af"),
    published!("microast", "modulator_iter_160000.pth.tar", "8588055baf7d5ad8398d595d5518c6f030e3ff8dbb6007a7c1779776e11da28b"),
    published!("microast", "decoder_iter_160000.pth.tar", "32e04a46b953fd9f94ec9e20f351511305a5260e000c18f9aef6570d5f1e23d9"),
];

/// The CartoonGAN-light checkpoints: paprika's index and data, then shinkai's.
pub static CARTOON_FILES: [BuiltinFile; 4] = [
    published!("cartoongan/paprika", "generator.index", "954d2b57795f9c6cd9b31497b36e494c90e236584e08dbd084f28bb4d39013c1"),
    published!("cartoongan/paprika", "generator.data-00000-of-00001", "044774f6ba811cd738a2b73ea65d71cdbc3756df68117b4a1c98cc18dceedceb"),
    published!("cartoongan/shinkai", "generator.index", "11e76dda7659b0155edbc923cf22101d35b54ca762ead7e98cb98acfba291e04"),
    published!("cartoongan/shinkai", "generator.data-00000-of-00001", "ea917f4e868555e4d74d3cae56403bc8ce95acb71497727717ab7569099934ed"),
];

/// The face detector's published weights (`models/pretrained/version-RFB-320.pth`).
pub static FACE_DETECTOR_FILE: BuiltinFile =
    published!("face_detector", "version-RFB-320.pth", "c722b4427cc71642768baef6e15c659931b56f07425e5d2b0ec033ad41b145b3");

/// The LPIPS v0.1 linear layers on AlexNet (`alex.pth`) and on VGG-16 (`vgg.pth`).
pub static LPIPS_FILES: [BuiltinFile; 2] = [
    published!(
        "lpips/v0.1",
        "alex.pth",
        "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
    ),
    published!(
        "lpips/v0.1",
        "vgg.pth",
        "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"
    ),
];

/// The BSD-2-Clause licence text (with its copyright line) of the LPIPS linear layers.
pub const LPIPS_LICENSE: &str = include_str!("../../assets/lpips/LICENSE");

/// The MIT licence text (with its copyright line) of the face detector's weights.
pub const FACE_DETECTOR_LICENSE: &str = include_str!("../../assets/face_detector/LICENSE");

/// The MIT licence text of the MicroAST weights.
pub const MICROAST_LICENSE: &str = include_str!("../../assets/microast/LICENSE");

/// The licence text (Apache-2.0, with its copyright line) of the CartoonGAN-light weights.
pub const CARTOON_LICENSE: &str = include_str!("../../assets/cartoongan/LICENSE");

/// The name of the built-in MicroAST model.
pub const MICROAST: &str = "microast";

/// A model compiled into the binary.
#[derive(Debug)]
pub struct BuiltinModel {
    /// Library name.
    pub name: &'static str,
    /// Title.
    pub title: &'static str,
    /// Network family.
    pub family: &'static str,
    /// The model kind's name.
    pub method: &'static str,
    /// Keywords.
    pub tags: &'static [&'static str],
    /// One or two sentences.
    pub description: &'static str,
    /// Licence and copyright.
    pub license: &'static str,
    /// Where the files were published.
    pub source_url: &'static str,
    /// The published files it is read from.
    pub files: &'static [BuiltinFile],
}

const CARTOON_SOURCE: &str = "https://github.com/mnicnc404/CartoonGan-tensorflow/tree/2f26a525f8b604b8e98fb84ebad0af5aef727944";
const CARTOON_LICENSE_LINE: &str = "Apache-2.0, Copyright 2019 Meng Lee and Ching Ning Chen (mnicnc404/CartoonGan-tensorflow)";

/// The built-in models.
pub static MODELS: [BuiltinModel; 3] = [
    BuiltinModel {
        name: MICROAST,
        title: "MicroAST (built in)",
        family: "microast",
        method: "microast",
        tags: &["arbitrary", "any-style", "fast", "built-in"],
        description: "Arbitrary style transfer without VGG (Wang et al., AAAI 2023): any picture is a style, in one fast pass.",
        license: "MIT, Copyright (c) 2022 Zhizhong Wang (EndyWon/MicroAST)",
        source_url: "https://github.com/EndyWon/MicroAST/tree/5a6c9050d8c408191cb9db12c697f3e4c7ebe137/models",
        files: &MICROAST_FILES,
    },
    BuiltinModel {
        name: "cartoon-paprika",
        title: "Cartoon: Paprika",
        family: "cartoongan_light",
        method: "cartoon",
        tags: &["cartoon", "anime", "paprika", "filter", "built-in"],
        description: "CartoonGAN-light trained on Satoshi Kon's Paprika: warm, painterly anime colours.",
        license: CARTOON_LICENSE_LINE,
        source_url: CARTOON_SOURCE,
        files: CARTOON_FILES.split_at(2).0,
    },
    BuiltinModel {
        name: "cartoon-shinkai",
        title: "Cartoon: Shinkai",
        family: "cartoongan_light",
        method: "cartoon",
        tags: &["cartoon", "anime", "shinkai", "filter", "built-in"],
        description: "CartoonGAN-light trained on Makoto Shinkai's films: clean lines, bright skies.",
        license: CARTOON_LICENSE_LINE,
        source_url: CARTOON_SOURCE,
        files: CARTOON_FILES.split_at(2).1,
    },
];

impl BuiltinModel {
    /// The library's metadata for it.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.into(),
            title: self.title.into(),
            family: self.family.into(),
            method: self.method.into(),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
            description: self.description.into(),
            license: self.license.into(),
            source_url: self.source_url.into(),
            sha256: self.files.iter().map(|f| f.sha256).collect::<Vec<_>>().join(","),
            research_only: false,
            builtin: true,
            training: Default::default(),
        }
    }
}

/// The built-in models' metadata.
pub fn models() -> Vec<ModelInfo> {
    MODELS.iter().map(BuiltinModel::info).collect()
}

/// The metadata of a built-in model.
pub fn model_info(name: &str) -> Option<ModelInfo> {
    MODELS.iter().find(|m| m.name == name).map(BuiltinModel::info)
}

/// The weights of a built-in model (read once per process, after checking the files' sha256).
pub fn weights(name: &str) -> Result<Weights> {
    static CACHE: Mutex<BTreeMap<&'static str, Weights>> = Mutex::new(BTreeMap::new());
    let model = MODELS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Error::ModelNotFound(format!("`{name}` is not a built-in model")))?;
    if let Some(w) = CACHE.lock().ok().and_then(|c| c.get(model.name).cloned()) {
        return Ok(w);
    }
    for f in model.files {
        let got = hex::encode(Sha256::digest(f.bytes));
        if got != f.sha256 {
            return Err(Error::Weights(format!("built-in {}: sha256 {got}, expected {}", f.name, f.sha256)));
        }
    }
    let w = match model.files {
        [index, data] => crate::weights::tf_checkpoint::from_bytes(index.bytes, data.bytes)?,
        files => microast_weights(files)?,
    };
    if let Ok(mut c) = CACHE.lock() {
        c.insert(model.name, w.clone());
    }
    Ok(w)
}

/// Reads the four embedded MicroAST files and combines them.
fn microast_weights(files: &[BuiltinFile]) -> Result<Weights> {
    let parts = files.iter().map(|f| Ok((f.name.to_string(), pth_weights(f)?))).collect::<Result<Vec<_>>>()?;
    kind::combine_microast(parts)
}

/// Reads an embedded PyTorch file (through a temporary file: the PyTorch reader reads tensor
/// data from files).
fn pth_weights(f: &BuiltinFile) -> Result<Weights> {
    let mut tmp = tempfile::Builder::new()
        .prefix("styleforge-builtin-")
        .suffix(".pth")
        .tempfile()
        .map_err(|e| Error::Backend(format!("a temporary file for the built-in weights: {e}")))?;
    std::io::Write::write_all(&mut tmp, f.bytes).map_err(|e| Error::io(tmp.path(), e))?;
    Weights::load(tmp.path())
}

/// The face detector's weights: the embedded `version-RFB-320.pth` after checking its sha256,
/// read once per process. Errors: [`Error::Weights`] when the bytes do not match.
pub fn face_detector_weights() -> Result<Weights> {
    static CACHE: Mutex<Option<Weights>> = Mutex::new(None);
    if let Some(w) = CACHE.lock().ok().and_then(|c| c.clone()) {
        return Ok(w);
    }
    let f = &FACE_DETECTOR_FILE;
    let got = hex::encode(Sha256::digest(f.bytes));
    if got != f.sha256 {
        return Err(Error::Weights(format!("built-in {}: sha256 {got}, expected {}", f.name, f.sha256)));
    }
    let w = pth_weights(f)?;
    if let Ok(mut c) = CACHE.lock() {
        *c = Some(w.clone());
    }
    Ok(w)
}

/// The published LPIPS v0.1 linear layers `file` (`alex.pth` or `vgg.pth`): `lin0.model.1.weight`
/// .. `lin4.model.1.weight`, each `[1, C, 1, 1]`, after checking the sha256.
/// Errors: [`Error::Param`] for another name, [`Error::Weights`] when the bytes do not match.
pub fn lpips_linear_weights(file: &str) -> Result<Weights> {
    let f = LPIPS_FILES.iter().find(|f| f.name == file).ok_or_else(|| {
        Error::Param(format!(
            "no built-in LPIPS layers `{file}` (there are alex.pth and vgg.pth)"
        ))
    })?;
    let got = hex::encode(Sha256::digest(f.bytes));
    if got != f.sha256 {
        return Err(Error::Weights(format!(
            "built-in LPIPS {}: sha256 {got}, expected {}",
            f.name, f.sha256
        )));
    }
    pth_weights(f)
}

/// The built-in face detector (RFB-320, [`crate::networks::face_detector`]) on `device`.
/// Errors: as [`face_detector_weights`], and backend errors.
pub fn face_detector(device: &Device) -> Result<FaceDetector> {
    FaceDetector::from_weights(&face_detector_weights()?, device)
}

/// A built-in public-domain painting.
#[derive(Debug)]
pub struct Painting {
    /// The style name (`starry-night`).
    pub name: &'static str,
    /// Title of the work.
    pub title: &'static str,
    /// Artist.
    pub artist: &'static str,
    /// Year or period.
    pub year: &'static str,
    /// Keywords.
    pub tags: &'static [&'static str],
    /// The JPEG (long side at most 768 px).
    pub jpeg: &'static [u8],
}

/// The licence line shown for every built-in painting.
pub const PAINTING_LICENSE: &str = "public domain (faithful reproduction of a public-domain painting)";

macro_rules! painting {
    ($name:literal, $title:literal, $artist:literal, $year:literal, [$($tag:literal),*]) => {
        Painting {
            name: $name,
            title: $title,
            artist: $artist,
            year: $year,
            tags: &[$($tag),*],
            jpeg: include_bytes!(concat!("../../assets/paintings/", $name, ".jpg")),
        }
    };
}

/// The built-in paintings, in gallery order.
pub static PAINTINGS: [Painting; 11] = [
    painting!("starry-night", "The Starry Night", "Vincent van Gogh", "1889", ["swirls", "night", "blue", "post-impressionism"]),
    painting!("great-wave", "The Great Wave off Kanagawa", "Katsushika Hokusai", "c. 1831", ["wave", "sea", "woodblock", "ukiyo-e", "blue"]),
    painting!("composition-vii", "Composition VII", "Wassily Kandinsky", "1913", ["abstract", "colourful", "chaotic"]),
    painting!("the-scream", "The Scream", "Edvard Munch", "1893", ["expressionism", "orange", "swirls"]),
    painting!("udnie", "Udnie", "Francis Picabia", "1913", ["abstract", "cubism", "shapes"]),
    painting!("grande-jatte", "A Sunday on La Grande Jatte", "Georges Seurat", "1884–1886", ["pointillism", "dots", "park"]),
    painting!("spring-giverny", "Effect of Spring, Giverny", "Claude Monet", "1890", ["impressionism", "spring", "green", "soft"]),
    painting!("shipwreck-minotaur", "The Shipwreck of the Minotaur", "J. M. W. Turner", "c. 1810", ["romanticism", "sea", "storm", "dark"]),
    painting!("mount-corcoran", "Mount Corcoran", "Albert Bierstadt", "c. 1876", ["landscape", "mountains", "hudson-river-school"]),
    painting!("death-of-socrates", "The Death of Socrates", "Jacques-Louis David", "1787", ["neoclassicism", "classical", "figures"]),
    painting!("mondrian", "Early cubist composition", "Piet Mondrian", "c. 1913", ["cubism", "abstract", "ochre", "lines"]),
];

/// The built-in painting of that name.
pub fn painting(name: &str) -> Option<&'static Painting> {
    PAINTINGS.iter().find(|p| p.name == name)
}

impl Painting {
    /// The painting as a picture (RGB 0..255).
    pub fn picture(&self) -> Result<Picture> {
        crate::image_io::decode(self.jpeg, u64::MAX)
    }

    /// "Title, Artist, year".
    pub fn caption(&self) -> String {
        format!("{}, {}, {}", self.title, self.artist, self.year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_weights_are_the_published_files() {
        for f in MICROAST_FILES.iter().chain(&CARTOON_FILES).chain([&FACE_DETECTOR_FILE]) {
            assert_eq!(hex::encode(Sha256::digest(f.bytes)), f.sha256, "{}", f.name);
        }
        assert!(MICROAST_LICENSE.contains("MIT License") && MICROAST_LICENSE.contains("Zhizhong Wang"));
        assert!(CARTOON_LICENSE.contains("Apache License") && CARTOON_LICENSE.contains("Meng Lee and Ching Ning Chen"));
        assert!(FACE_DETECTOR_LICENSE.starts_with("MIT License") && FACE_DETECTOR_LICENSE.contains("Copyright (c) 2019 linzai"));
    }

    #[test]
    fn the_face_detector_is_not_a_stylisation_model() {
        assert!(MODELS.iter().all(|m| !m.files.iter().any(|f| f.name == FACE_DETECTOR_FILE.name)));
        assert!(model_info("face-detector").is_none());
        let w = face_detector_weights().unwrap();
        assert!(FaceDetector::detect(&w));
        assert!(face_detector(&Device::flex()).is_ok());
    }

    #[test]
    fn every_painting_decodes_within_768_pixels() {
        for p in &PAINTINGS {
            let pic = p.picture().unwrap();
            assert!(pic.width.max(pic.height) <= 768 && pic.width.min(pic.height) >= 256, "{}: {}x{}", p.name, pic.width, pic.height);
        }
        let mut names: Vec<&str> = PAINTINGS.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PAINTINGS.len());
    }
}
