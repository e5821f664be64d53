//! The engine's error type: every failure a user can cause ends here, with a message that says what to fix.

use std::path::PathBuf;

/// Errors returned by the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {}", .path.display(), plain(.error))]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error (in the message, not a separate cause, so that a chain
        /// of causes says it once).
        error: std::io::Error,
    },
    /// An image could not be decoded or encoded.
    #[error("image: {0}")]
    Image(String),
    /// An image is larger than the configured limit.
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit} pixels")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Width times height.
        pixels: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A weight file is malformed, or does not hold the network that was asked for.
    #[error("weights: {0}")]
    Weights(String),
    /// A parameter is out of range or inconsistent.
    #[error("invalid parameter: {0}")]
    Param(String),
    /// A model is not in the library or the manifest.
    #[error("model not found: {0}")]
    ModelNotFound(String),
    /// A download failed or did not verify.
    #[error("download: {0}")]
    Download(String),
    /// A video file cannot be read, breaks a limit, or could not be encoded.
    #[error("video: {0}")]
    Video(String),
    /// An external program styleforge drives (FFmpeg) is missing or failed to start.
    #[error("{0}")]
    Tool(String),
    /// The tensor backend failed.
    #[error("backend: {0}")]
    Backend(String),
}

/// Result with the engine's error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// An I/O error's message without the `(os error N)` suffix.
fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}
