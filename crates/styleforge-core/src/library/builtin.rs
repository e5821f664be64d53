//! The built-in library, compiled into the binary so that styleforge restyles photos on a machine
//! with nothing downloaded: the MicroAST weights (MIT) and eleven public-domain paintings.
//!
//! - **MicroAST** (`microast`): the four published files of EndyWon/MicroAST
//!   (`*_iter_160000.pth.tar`, commit 5a6c9050d8c4, MIT licence, copyright (c) 2022 Zhizhong
//!   Wang; `assets/microast/LICENSE`), byte for byte; their sha256 are checked on load.
//! - **Paintings**: faithful reproductions of public-domain paintings, scaled so the long side is
//!   at most 768 px and stored as JPEG (`assets/paintings/README.md` gives the sources).
//!
//! A model of the same name in the user's library overrides a built-in one; built-ins cannot be
//! removed.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::image_io::Picture;
use crate::library::{ModelInfo, kind};
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

/// A published MicroAST file from `assets/microast/`, with its published sha256.
macro_rules! published {
    ($name:literal, $sha256:literal) => {
        BuiltinFile { name: $name, bytes: include_bytes!(concat!("../../assets/microast/", $name)), sha256: $sha256 }
    };
}

/// MicroAST's four published files.
pub static MICROAST_FILES: [BuiltinFile; 4] = [
    published!("content_encoder_iter_160000.pth.tar", "c8d895c0eec52507c157e102fab217c37f0c399ef3e168ef8b0b2677714660a4"),
    published!("style_encoder_iter_160000.pth.tar", "94f6b3fa386828692c20809a0af8bd0eba9c04e90a7d8842086976e4d223c5af"),
    published!("modulator_iter_160000.pth.tar", "8588055baf7d5ad8398d595d5518c6f030e3ff8dbb6007a7c1779776e11da28b"),
    published!("decoder_iter_160000.pth.tar", "32e04a46b953fd9f94ec9e20f351511305a5260e000c18f9aef6570d5f1e23d9"),
];

/// The MIT licence text of the MicroAST weights.
pub const MICROAST_LICENSE: &str = include_str!("../../assets/microast/LICENSE");

/// The name of the built-in MicroAST model.
pub const MICROAST: &str = "microast";

/// The built-in models' metadata.
pub fn models() -> Vec<ModelInfo> {
    vec![ModelInfo {
        name: MICROAST.into(),
        title: "MicroAST (built in)".into(),
        family: "microast".into(),
        method: "microast".into(),
        tags: vec!["arbitrary".into(), "any-style".into(), "fast".into(), "built-in".into()],
        description: "Arbitrary style transfer without VGG (Wang et al., AAAI 2023): any picture is a style, in one fast pass."
            .into(),
        license: "MIT, Copyright (c) 2022 Zhizhong Wang (EndyWon/MicroAST)".into(),
        source_url: "https://github.com/EndyWon/MicroAST/tree/5a6c9050d8c408191cb9db12c697f3e4c7ebe137/models".into(),
        sha256: MICROAST_FILES.iter().map(|f| f.sha256).collect::<Vec<_>>().join(","),
        research_only: false,
        builtin: true,
        training: Default::default(),
    }]
}

/// The metadata of a built-in model.
pub fn model_info(name: &str) -> Option<ModelInfo> {
    models().into_iter().find(|m| m.name == name)
}

/// The weights of a built-in model (read once per process, after checking the files' sha256).
pub fn weights(name: &str) -> Result<Weights> {
    static MICRO: OnceLock<std::result::Result<Weights, String>> = OnceLock::new();
    if name != MICROAST {
        return Err(Error::ModelNotFound(format!("`{name}` is not a built-in model")));
    }
    MICRO
        .get_or_init(|| microast_weights().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Weights)
}

/// Reads the four embedded MicroAST files (through temporary files: the PyTorch reader reads
/// tensor data from files) and combines them.
fn microast_weights() -> Result<Weights> {
    let mut parts = Vec::with_capacity(4);
    for f in &MICROAST_FILES {
        let got = hex::encode(Sha256::digest(f.bytes));
        if got != f.sha256 {
            return Err(Error::Weights(format!("built-in {}: sha256 {got}, expected {}", f.name, f.sha256)));
        }
        let mut tmp = tempfile::Builder::new()
            .prefix("styleforge-microast-")
            .suffix(".pth")
            .tempfile()
            .map_err(|e| Error::Backend(format!("a temporary file for the built-in weights: {e}")))?;
        std::io::Write::write_all(&mut tmp, f.bytes).map_err(|e| Error::io(tmp.path(), e))?;
        parts.push((f.name.to_string(), Weights::load(tmp.path())?));
    }
    kind::combine_microast(parts)
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
        for f in &MICROAST_FILES {
            assert_eq!(hex::encode(Sha256::digest(f.bytes)), f.sha256, "{}", f.name);
        }
        assert!(MICROAST_LICENSE.contains("MIT License") && MICROAST_LICENSE.contains("Zhizhong Wang"));
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
