//! Previews of a model style (a filter, a fast style, a CycleGAN generator): the model run on a
//! small picture, either the synthetic sample scene (the style's thumbnail in the gallery) or one
//! of the caller's photos (the filter row's previews on the user's own photo), encoded as JPEG
//! and cached in the blob store, so that nothing is recorded in the history.

use bytes::Bytes;
use styleforge_core::image_io::Format;
use styleforge_core::library::ModelInfo;
use styleforge_core::methods::{self, Control, Input, Params, StyleSource};

use crate::db::ImageRow;
use crate::jobs::{JobError, JobResult};
use crate::models::sample_scene;
use crate::state::AppState;

/// A preview of the model style `info` at `size` pixels on its longer side: on `photo` (one of
/// the caller's images) when given, else on the sample scene (`size` × ¾`size`). Errors: a
/// model that is no style of its own, an image that no longer decodes or was deleted, loading
/// and backend failures.
pub async fn model_preview(state: &AppState, info: &ModelInfo, photo: Option<&ImageRow>, size: u32) -> JobResult<Bytes> {
    let name = &info.name;
    let stamp = std::fs::metadata(state.models.library().model_path(name))
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let key = match photo {
        None => format!("style-thumbs/{name}-{stamp}-{size}"),
        Some(p) => format!("style-previews/{name}-{stamp}-{}-{size}", p.sha256),
    };
    if let Some(b) = state.blobs.cached(&key).await {
        return Ok(b);
    }
    let source = match photo {
        None => None,
        Some(p) => Some(state.blobs.get(&p.sha256).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => JobError::invalid("input_missing", format!("image `{}` was deleted", p.id)),
            e => JobError::from(e),
        })?),
    };
    let model = state.models.get(info).await?;
    let device = state.device.clone();
    let max_pixels = state.config.max_pixels;
    let (out, _) = state
        .run_inference(move || {
            let picture = match source {
                Some(b) => crate::jobs::sequence::first_frame(&b, max_pixels)?.fit_within(size),
                None => sample_scene(size, (size * 3 / 4).max(16)),
            };
            let kind = model.kind();
            let method = methods::all()
                .find(|m| m.info().style == StyleSource::Model && m.info().accepts(kind))
                .ok_or_else(|| styleforge_core::Error::Param(format!("no method runs {kind} models on their own")))?;
            let outcome = method.run(&model, &Input::content(picture), &Params::new(), &device, &mut Control::new(None, &mut |_| {}))?;
            outcome.picture.encode(Format::Jpeg)
        })
        .await?;
    let b = Bytes::from(out?);
    if let Err(e) = state.blobs.put_cached(&key, b.clone()).await {
        tracing::warn!(error = %e, "could not cache a style preview");
    }
    Ok(b)
}
