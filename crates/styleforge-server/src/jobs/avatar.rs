//! Face-aware avatars in the service: finding the faces in an uploaded photo and the square crop
//! the engine would take (`POST /v1/faces`), and the `avatar` option of a stylisation request
//! (checked here into an [`AvatarSpec`], run by [`crate::jobs::run::execute`] with the engine's
//! [`styleforge_core::avatar`]). The face box used, whether a face was found and a note for people
//! travel with the result ([`AvatarFraming`]).

use serde::{Deserialize, Serialize};
use styleforge_core::avatar::{self, Crop, FaceBox, FaceSource, Framing};
use styleforge_core::image_io;
use styleforge_core::methods::MethodInfo;
use utoipa::ToSchema;

use crate::db;
use crate::jobs::{JobError, JobResult};
use crate::state::AppState;

/// The smallest avatar side a request may ask for, in pixels.
pub const MIN_SIZE: u32 = 16;

/// The `avatar` option of a stylisation request: crop the photo to a square around its largest
/// face (or the given box) before stylising, and answer with an N×N image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvatarRequest {
    /// The avatar's side N in pixels, 16-4096 (default 512; at least the method's smallest side).
    #[serde(default, deserialize_with = "crate::jobs::lenient::opt_u32")]
    #[schema(minimum = 16, maximum = 4096)]
    pub size: Option<u32>,
    /// A face box `[x, y, w, h]` in the photo's pixels to frame instead of detecting one
    /// (w and h positive; the box must overlap the photo).
    #[serde(default, rename = "box")]
    #[schema(min_items = 4, max_items = 4)]
    pub face_box: Option<Vec<f64>>,
}

/// A checked `avatar` option, as a job carries it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AvatarSpec {
    /// The avatar's side N, pixels.
    pub size: u32,
    /// The face box given (`x, y, w, h`, pixels), or `None` to detect one.
    pub face: Option<[f32; 4]>,
}

impl AvatarSpec {
    /// The engine's options for this avatar.
    pub fn options(&self) -> avatar::Options {
        avatar::Options {
            size: self.size,
            face: self.face.map(|[x, y, w, h]| FaceBox { x, y, w, h }),
            ..avatar::Options::default()
        }
    }
}

/// Checks a request's `avatar` option against the photo (`width`×`height`) and the method.
/// Errors (`invalid_parameter`): a size out of range, a box
/// that is not four finite numbers with a positive width and height, or one outside the photo.
pub fn check(req: &AvatarRequest, width: u32, height: u32, method: &MethodInfo) -> JobResult<AvatarSpec> {
    let size = req.size.unwrap_or(avatar::DEFAULT_SIZE);
    // Smaller outputs than a method's smallest side are padded for it (`SizePlan`), not refused.
    let min = MIN_SIZE;
    if !(min..=avatar::MAX_SIZE).contains(&size) {
        return Err(invalid(format!("avatar.size must be within {min}..{} for method {}, got {size}", avatar::MAX_SIZE, method.name)));
    }
    let face = match &req.face_box {
        None => None,
        Some(v) => {
            let bad = || invalid(format!("avatar.box is [x, y, w, h] in the photo's pixels with w, h > 0, got {v:?}"));
            let &[x, y, w, h] = v.as_slice() else { return Err(bad()) };
            let b = [x, y, w, h].map(|c| c as f32);
            if !b.iter().all(|c| c.is_finite()) || b[2] <= 0.0 || b[3] <= 0.0 {
                return Err(bad());
            }
            if b[0] + b[2] <= 0.0 || b[1] + b[3] <= 0.0 || b[0] >= width as f32 || b[1] >= height as f32 {
                return Err(invalid(format!("avatar.box {v:?} lies outside the {width}x{height} photo")));
            }
            Some(b)
        }
    };
    Ok(AvatarSpec { size, face })
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::invalid("invalid_parameter", message)
}

/// A face box in the photo's pixels: corners, and the detector's face probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FaceRect {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
    /// Face probability, 0-1 (absent for a box the request gave).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// A square region of the photo in whole pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CropRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Side.
    pub side: u32,
}

impl From<Crop> for CropRect {
    fn from(c: Crop) -> Self {
        Self { x: c.x, y: c.y, side: c.side }
    }
}

/// How an avatar was framed: the face box used, the square crop, and whether a face was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AvatarFraming {
    /// The face box used (absent when none was found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face: Option<FaceRect>,
    /// The square cut from the photo (resized to the avatar's size).
    pub crop: CropRect,
    /// Whether a face framed the crop (detected or given); `false`: the centre square was used.
    pub found: bool,
    /// `detected`, `given` or `none`.
    pub source: String,
    /// One line for people: the face and crop, or that no face was found and the centre was used.
    pub note: String,
}

impl From<&Framing> for AvatarFraming {
    fn from(f: &Framing) -> Self {
        let (score, source) = match f.source {
            FaceSource::Detected(s) => (Some(s), "detected"),
            FaceSource::Given => (None, "given"),
            FaceSource::NotFound => (None, "none"),
        };
        Self {
            face: f.face.map(|b| FaceRect { x1: b.x, y1: b.y, x2: b.x + b.w, y2: b.y + b.h, score }),
            crop: f.crop.into(),
            found: f.found(),
            source: source.into(),
            note: f.describe(),
        }
    }
}

/// A face detection request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FacesRequest {
    /// The photo's image id (from `POST /v1/images`).
    pub image: String,
}

/// The faces in a photo and the avatar crop the service would take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FacesResult {
    /// The photo's width, pixels.
    pub width: u32,
    /// The photo's height, pixels.
    pub height: u32,
    /// Every face found (face probability above 0.6), largest first.
    pub faces: Vec<FaceRect>,
    /// The square an avatar would be cut from: around the largest face enlarged 1.8×, or the
    /// centre square when no face was found.
    pub crop: CropRect,
    /// Whether a face was found.
    pub found: bool,
    /// One line for people: the face and crop, or that no face was found and the centre is used.
    pub note: String,
}

/// Finds the faces in one of the caller's images, and the crop an avatar of it would take.
/// Errors: an unknown image (404), an image that no longer decodes, storage failures.
pub async fn detect(state: &AppState, owner: &str, req: &FacesRequest) -> JobResult<FacesResult> {
    let row = db::get_image(&state.db, &req.image, owner).await?.ok_or_else(|| JobError::not_found("image", &req.image))?;
    let bytes = state.blobs.get(&row.sha256).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => JobError::invalid("input_missing", format!("image `{}` was deleted", row.id)),
        e => JobError::from(e),
    })?;
    let detector = state.models.face_detector().await?;
    let device = state.device.clone();
    let max = state.config.max_pixels;
    let (found, _) = state
        .run_inference(move || -> styleforge_core::Result<_> {
            let picture = image_io::decode(&bytes, max)?;
            let faces = detector.detect_faces(&picture, &device)?;
            Ok((picture.width, picture.height, faces))
        })
        .await?;
    let (width, height, mut faces) = found?;
    faces.sort_by(|a, b| b.area().total_cmp(&a.area()));
    let framing = Framing::of_faces(&faces, width, height, avatar::MARGIN);
    Ok(FacesResult {
        width,
        height,
        faces: faces.iter().map(|f| FaceRect { x1: f.x1, y1: f.y1, x2: f.x2, y2: f.y2, score: Some(f.score) }).collect(),
        crop: framing.crop.into(),
        found: framing.found(),
        note: framing.describe(),
    })
}
