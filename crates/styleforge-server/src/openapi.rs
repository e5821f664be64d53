//! The OpenAPI 3 document, generated from the handlers' annotations.

use std::sync::OnceLock;

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "styleforge",
        description = "Image style transfer as a service: upload a photo, pick a style, get the restyled image \
at once (fast methods within the pixel budget) or as a job with live progress. Every error is a JSON `{code, message}`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        api::images::upload,
        api::images::list,
        api::images::content,
        api::images::info,
        api::images::delete,
        api::images::thumbnail,
        api::styles::list,
        api::styles::get_one,
        api::styles::upload,
        api::styles::delete,
        api::styles::thumbnail,
        api::styles::onnx,
        api::models::upload,
        api::generate::samples,
        api::trainings::create,
        api::methods::list,
        api::stylize::stylize,
        api::live::live,
        api::faces::detect,
        api::jobs::status,
        api::jobs::cancel,
        api::jobs::events,
        api::jobs::result,
        api::jobs::history,
        api::results::content,
        api::results::info,
        api::results::rate,
        api::results::ratings,
        api::results::stats,
        api::preferences::create,
        api::preferences::stats,
        api::ops::healthz,
        api::ops::readyz,
        api::ops::metrics,
        api::ops::openapi,
    ),
    components(schemas(
        crate::jobs::live::ServerMessage,
        crate::jobs::live::ClientMessage,
        crate::jobs::live::LiveStats,
    )),
    modifiers(&Security, &MethodNames),
    tags(
        (name = "images", description = "Uploads"),
        (name = "styles", description = "The style gallery and custom style images"),
        (name = "stylize", description = "Stylisation, of photos and of live camera streams"),
        (name = "jobs", description = "Jobs, progress and history"),
        (name = "results", description = "Results, ratings and pairwise preferences, and their statistics"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from `styleforge keys create` (not needed in anonymous mode)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The `method` of a stylisation request: one of the registry's names, optional.
struct MethodNames;

impl Modify for MethodNames {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{Object, Schema, Type};
        use utoipa::openapi::RefOr;
        let Some(RefOr::T(Schema::Object(req))) =
            openapi.components.as_mut().and_then(|c| c.schemas.get_mut("StylizeRequest"))
        else {
            return;
        };
        let names: Vec<&str> = styleforge_core::methods::names();
        let mut method = Object::with_type(Type::String);
        method.enum_values = Some(names.iter().map(|n| (*n).into()).collect());
        method.description = Some(format!(
            "The method (see `GET /v1/methods`): {}. Default: chosen from the style: the method that runs \
             a library model's kind (`fast`, `cyclegan`); for a built-in painting or a style image, the method that runs \
             `model` when given, else `{}`.",
            names.join(", "),
            styleforge_core::methods::default_style_method().info().name
        ));
        req.properties.insert("method".into(), RefOr::T(Schema::Object(method)));
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON (built once).
pub fn document_json() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| document().to_pretty_json().unwrap_or_else(|_| "{}".into()))
        .clone()
}
