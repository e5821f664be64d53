//! `GET /v1/methods`: the engine's method registry as clients need it: each method's name,
//! title, where its style comes from, the model kinds it runs and whether one is there (a
//! library file or a model built into styleforge), how it is answered, and its options with their ranges and defaults. The page builds
//! its method list from it.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use styleforge_core::library::ModelKind;
use styleforge_core::methods::{self, Execution, OptionKind, StyleSource};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::jobs::request::REQUEST_OPTIONS;
use crate::state::AppState;

/// An option of a method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MethodOption {
    /// The option's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// `number`, `integer`, `boolean` or `choice`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Smallest value (numbers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Largest value (numbers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// The allowed words (choices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// The value when not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

/// A stylisation method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MethodEntry {
    /// The name to pass as `method`.
    pub name: String,
    /// A short title.
    pub title: String,
    /// One line on what it does and how long it takes.
    pub summary: String,
    /// The paper or reference implementation.
    pub source: String,
    /// `model` (the request names a library model, which is the style) or `images` (style
    /// images, blended by weight, run by a fixed network).
    pub style: String,
    /// Most style images in one request (style `images`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_styles: Option<u32>,
    /// The model kinds it runs (`fast`, `microast`, `adain`, `vgg`, `cyclegan`).
    pub model_kinds: Vec<String>,
    /// The model used when the request names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
    /// Whether a model it runs is there: in the library, or built into styleforge (`microast`).
    pub available: bool,
    /// Whether it takes a `mask`.
    pub mask: bool,
    /// `sync` (answered at once within the pixel budget) or `job` (always a job).
    pub execution: String,
    /// The options of a stylisation request it reads (`strength`, `preserve_color`,
    /// `max_size`, `iterations`; the command line has more).
    pub options: Vec<MethodOption>,
}

/// The methods and their options.
#[utoipa::path(
    get,
    path = "/v1/methods",
    operation_id = "list_methods",
    tag = "stylize",
    responses(
        (status = 200, description = "The stylisation methods", body = [MethodEntry]),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> ApiResult<Json<Vec<MethodEntry>>> {
    let kinds: Vec<ModelKind> = state.models.list().await?.iter().filter_map(ModelKind::of).collect();
    Ok(Json(methods::all().map(|m| entry(m.info(), &kinds)).collect()))
}

fn entry(i: &methods::MethodInfo, installed: &[ModelKind]) -> MethodEntry {
    let (style, max_styles) = match i.style {
        StyleSource::Model => ("model", None),
        StyleSource::Images { max } => ("images", Some(max as u32)),
    };
    MethodEntry {
        name: i.name.into(),
        title: i.title.into(),
        summary: i.summary.into(),
        source: i.source.into(),
        style: style.into(),
        max_styles,
        model_kinds: i.model_kinds.iter().map(|k| k.name().to_string()).collect(),
        default_model: i.default_model.map(str::to_string),
        available: i.model_kinds.iter().any(|k| installed.contains(k)),
        mask: i.mask,
        execution: match i.execution {
            Execution::Sync => "sync",
            Execution::Job => "job",
        }
        .into(),
        options: i.option_infos().filter(|o| REQUEST_OPTIONS.contains(&o.name)).map(option).collect(),
    }
}

fn option(o: &methods::OptionInfo) -> MethodOption {
    let mut out = MethodOption {
        name: o.name.into(),
        description: o.description.into(),
        kind: String::new(),
        minimum: None,
        maximum: None,
        values: None,
        default: None,
    };
    match o.kind {
        OptionKind::Number { min, max, default } => {
            out.kind = "number".into();
            (out.minimum, out.maximum, out.default) = (Some(min), Some(max), Some(default.into()));
        }
        OptionKind::Integer { min, max, default } => {
            out.kind = "integer".into();
            (out.minimum, out.maximum, out.default) = (Some(min as f64), Some(max as f64), default.map(Into::into));
        }
        OptionKind::Flag => {
            out.kind = "boolean".into();
            out.default = Some(false.into());
        }
        OptionKind::Choice { values, default } => {
            out.kind = "choice".into();
            out.values = Some(values.iter().map(|v| v.to_string()).collect());
            out.default = Some(default.into());
        }
    }
    out
}
