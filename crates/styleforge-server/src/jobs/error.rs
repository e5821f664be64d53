//! The domain errors of the jobs layer and the model cache: what went wrong in terms of the
//! request (invalid, not found, unsupported, too large), or of the system (unavailable,
//! internal), with a stable code and whether running the job again may succeed. The HTTP layer
//! maps the kind to a status ([`crate::error::ApiError`]); workers retry what is retryable.

use styleforge_core::Error as CoreError;

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or its inputs are wrong (parameters, methods, images that do not decode).
    Invalid,
    /// The request body is empty.
    Empty,
    /// An image format styleforge does not read.
    UnsupportedFormat,
    /// An image over the pixel limit.
    TooLarge,
    /// Something named does not exist (or is not the caller's).
    NotFound,
    /// Too many requests of a kind for the caller (a limit the caller can wait out).
    Limited,
    /// The service cannot take it now (shutting down).
    Unavailable,
    /// A fault of the system: storage, database, a panic.
    Internal,
}

/// An error of the jobs layer.
#[derive(Debug, Clone)]
pub struct JobError {
    /// The kind.
    pub kind: ErrorKind,
    /// Stable machine-readable code (`invalid_parameter`, `style_not_found`, ...).
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

/// Result of the jobs layer.
pub type JobResult<T> = Result<T, JobError>;

impl JobError {
    /// An error of a kind with a code and message.
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind, code: code.into(), message: message.into() }
    }

    /// The request is wrong (`code`: `invalid_parameter`, `wrong_method`, `missing_style`, ...).
    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// `what` (`image`, `style`, ...) does not exist, or belongs to someone else.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what}_not_found"), format!("no {what} `{id}`"))
    }

    /// The service cannot take the request now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "unavailable", message)
    }

    /// A fault of the system; logged in full.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(ErrorKind::Internal, "internal", format!("internal error: {err}"))
    }

    /// Whether running the job again may succeed (system faults; not wrong requests).
    pub fn retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Internal | ErrorKind::Unavailable)
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for JobError {}

impl From<CoreError> for JobError {
    /// The engine's errors as the caller should see them: bad images and parameters are the
    /// request's fault, the rest (weights, backend, files) the system's.
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::TooLarge { .. } => Self::new(ErrorKind::TooLarge, "too_many_pixels", err.to_string()),
            CoreError::Image(m) if m.contains("is empty") => {
                Self::new(ErrorKind::Empty, "empty_body", "the request body is empty: send an image")
            }
            CoreError::Image(m) if m.contains("not supported") || m.contains("unknown format") => {
                Self::new(ErrorKind::UnsupportedFormat, "unsupported_format", m)
            }
            CoreError::Image(m) => Self::invalid("invalid_image", m),
            CoreError::Param(m) => Self::invalid("invalid_parameter", m),
            CoreError::Video(m) if m.contains("over the limit") => Self::new(ErrorKind::TooLarge, "video_too_long", m),
            CoreError::Video(m) => Self::invalid("invalid_video", m),
            CoreError::ModelNotFound(m) => Self::new(ErrorKind::NotFound, "style_not_found", m),
            other => Self::internal(other),
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(format!("database: {e}"))
    }
}

impl From<object_store::Error> for JobError {
    fn from(e: object_store::Error) -> Self {
        Self::internal(format!("blob store: {e}"))
    }
}
