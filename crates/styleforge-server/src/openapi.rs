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
        api::links::create,
        api::links::public_content,
        api::webhooks::secret,
        api::webhooks::rotate,
        api::webhooks::deliveries,
        api::batches::create,
        api::batches::get_one,
        api::batches::cancel,
        api::batches::results_zip,
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
        crate::jobs::webhooks::WebhookPayload,
    )),
    modifiers(&Security, &MethodNames, &Webhooks),
    tags(
        (name = "images", description = "Uploads"),
        (name = "styles", description = "The style gallery and custom style images"),
        (name = "stylize", description = "Stylisation, of photos and of live camera streams"),
        (name = "jobs", description = "Jobs, progress and history"),
        (name = "results", description = "Results, ratings and pairwise preferences, and their statistics"),
        (name = "webhooks", description = "Job events sent to your server: the signing secret and the deliveries"),
        (name = "batches", description = "Many images × styles at once"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

/// The `api_key` scheme, and the key on every `/v1/` operation that does not say otherwise
/// (`security(())` marks a public one): such an operation takes a key, or none in anonymous
/// mode, and answers 401 to a missing or invalid one.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let unauthorized = ResponseBuilder::new()
            .description("Missing or invalid API key")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build();
        for (_, item) in openapi.paths.paths.iter_mut().filter(|(path, _)| path.starts_with("/v1/")) {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
            for op in ops.into_iter().flatten() {
                if op.security.is_some() {
                    continue;
                }
                op.security = Some(vec![SecurityRequirement::new("api_key", Vec::<String>::new()), SecurityRequirement::default()]);
                op.responses.responses.entry("401".into()).or_insert_with(|| RefOr::T(unauthorized.clone()));
            }
        }
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

/// Webhooks: the job event a receiver gets, as a callback of the operations that take a
/// `webhook` and as the document's `webhooks` entry; and the `Idempotency-Key` header on the
/// operations that create something.
struct Webhooks;

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::schema::{Object, Type};
        use utoipa::openapi::{ContentBuilder, Paths, Ref, RefOr, Required, ResponseBuilder};
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(Object::with_type(Type::String)))
                .build()
        };
        let event = OperationBuilder::new()
            .operation_id(Some("job_event"))
            .summary(Some("A job event sent to the request's `webhook`"))
            .description(Some(
                "POSTed to `webhook` for each event in `webhook_events` (`start`, `progress` at most every 500 ms, \
                 `completed`), in order per job, retried with exponential backoff until a 2xx. Verify \
                 `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the \
                 secret of `GET /v1/webhook-secret`, as the Standard Webhooks libraries do) and drop repeated `webhook-id`s.",
            ))
            .parameter(header("webhook-id", "The delivery id (the same on every retry)"))
            .parameter(header("webhook-timestamp", "Unix seconds when this attempt was signed"))
            .parameter(header("webhook-signature", "`v1,` and the base64 HMAC-SHA256 signature"))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("WebhookPayload"))).build())
                    .required(Some(Required::True))
                    .build(),
            ))
            .response("200", ResponseBuilder::new().description("Received (any 2xx); anything else is retried").build())
            .build();
        let item = PathItem::new(HttpMethod::Post, event);
        let mut hooks = Paths::new();
        hooks.paths.insert("job-event".into(), item.clone());
        openapi.webhooks = Some(hooks);
        let mut callback = utoipa::openapi::path::Callback::new();
        callback.insert("{$request.body#/webhook}".into(), RefOr::T(item));
        let idempotency = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Any unique string (a UUID): a retry with the same key and request gets the first answer \
                 (with `Idempotent-Replayed: true`) and creates nothing; the same key with another request is a 409. \
                 Kept 24 hours.",
            ))
            .schema(Some(Object::with_type(Type::String)))
            .build();
        let error = |d: &str| {
            ResponseBuilder::new()
                .description(d)
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let Some(op) = item.post.as_mut() else { continue };
            if matches!(path.as_str(), "/v1/stylize" | "/v1/batches") {
                op.callbacks.insert("jobEvent".into(), RefOr::T(callback.clone()));
            }
            let params = op.parameters.get_or_insert_with(Vec::new);
            let has = params.iter().any(|p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case("Idempotency-Key")));
            if !has {
                params.push(RefOr::T(idempotency.clone()));
            }
            let responses = &mut op.responses.responses;
            responses
                .entry("400".into())
                .or_insert_with(|| RefOr::T(error("Malformed request")));
            responses.entry("409".into()).or_insert_with(|| {
                RefOr::T(error("The Idempotency-Key was used with another request, or its first request is still running"))
            });
        }
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

/// Every operation of the document: `(operation id, method, path template, path parameters,
/// query parameters)`, sorted by operation id.
pub fn operations() -> Vec<(String, &'static str, String, Vec<String>, Vec<String>)> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::path::{Operation, ParameterIn};
    let doc = document();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops: [(&'static str, &Option<Operation>); 4] =
            [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put), ("DELETE", &item.delete)];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let Some(id) = op.operation_id.clone() else { continue };
            let (mut in_path, mut in_query) = (Vec::new(), Vec::new());
            for p in op.parameters.iter().flatten() {
                let RefOr::T(p) = p else { continue };
                match p.parameter_in {
                    ParameterIn::Path => in_path.push(p.name.clone()),
                    ParameterIn::Query => in_query.push(p.name.clone()),
                    _ => {}
                }
            }
            out.push((id, method, path.clone(), in_path, in_query));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn js_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The operations the embeddable widget (`web/widget.js`) calls: its generated client holds
/// these only, so the script other sites load stays small. A call to any other operation fails
/// in the widget's `route`, and `tests/web.rs` checks the widget names no other.
pub const WIDGET_OPERATIONS: [&str; 8] =
    ["detect_faces", "get_job", "get_result", "list_methods", "list_styles", "live", "stylize", "upload_image"];

/// The `OPERATIONS` table's lines, for the operations `keep` accepts.
fn js_operations(indent: &str, keep: impl Fn(&str) -> bool) -> String {
    operations()
        .iter()
        .filter(|op| keep(&op.0))
        .map(|(id, method, path, p, q)| {
            format!("{indent}  {id}: [\"{method}\", \"{path}\", {}, {}],\n", js_list(p), js_list(q))
        })
        .collect()
}

/// The page's API client, `web/client.js`: an ES module generated from this document (every
/// operation's method, path and parameters, and `route(operationId, params)` that builds a
/// request's URL from them, refusing operations and parameters the document does not have).
/// The page calls the API only through it; `tests/web.rs` checks the file is what this
/// generates, so the page cannot drift from the document.
pub fn client_module() -> String {
    format!(
        "// Generated from styleforge's OpenAPI document (GET /v1/openapi.json) by\n\
         // `styleforge_server::openapi::client_module`. Do not edit: regenerate with\n\
         // STYLEFORGE_BLESS=1 cargo test --release --workspace --test service web::\n\
         \n\
         // operationId: [method, path, path parameters, query parameters]\n\
         export const OPERATIONS = Object.freeze({{\n{}}});\n\
         \n\
         // The method and URL of an operation: `params` fill the path's `{{name}}`s and the rest go\n\
         // to the query string (empty values left out). An operation or parameter the document does\n\
         // not have is an error.\n\
         export function route(operationId, params = {{}}) {{\n\
         \x20 const op = OPERATIONS[operationId];\n\
         \x20 if (!op) throw new Error(`no operation ${{operationId}} in the API`);\n\
         \x20 const [method, template, inPath, inQuery] = op;\n\
         \x20 let path = template;\n\
         \x20 for (const name of inPath) {{\n\
         \x20   if (params[name] === undefined || params[name] === null) throw new Error(`${{operationId}} needs ${{name}}`);\n\
         \x20   path = path.replace(`{{${{name}}}}`, encodeURIComponent(String(params[name])));\n\
         \x20 }}\n\
         \x20 const query = new URLSearchParams();\n\
         \x20 for (const [name, value] of Object.entries(params)) {{\n\
         \x20   if (inPath.includes(name)) continue;\n\
         \x20   if (!inQuery.includes(name)) throw new Error(`${{operationId}} has no parameter ${{name}}`);\n\
         \x20   if (value !== undefined && value !== null && value !== \"\") query.append(name, String(value));\n\
         \x20 }}\n\
         \x20 const q = query.toString();\n\
         \x20 return {{ method, url: q ? `${{path}}?${{q}}` : path }};\n\
         }}\n\
         \n\
         // The URL of an operation (see `route`).\n\
         export function url(operationId, params = {{}}) {{\n\
         \x20 return route(operationId, params).url;\n\
         }}\n",
        js_operations("", |_| true)
    )
}

/// The widget's copy of the client (`web/widget.js` is one classic script that other sites
/// embed, so it cannot import a module): the table of [`WIDGET_OPERATIONS`] and `route`, in ES5,
/// between the `BEGIN GENERATED CLIENT` and `END GENERATED CLIENT` lines; `tests/web.rs` checks it too.
pub fn widget_client() -> String {
    format!(
        "  // BEGIN GENERATED CLIENT: from the OpenAPI document by\n\
         \x20 // `styleforge_server::openapi::widget_client`. Do not edit: regenerate with\n\
         \x20 // STYLEFORGE_BLESS=1 cargo test --release --workspace --test service web::\n\
         \x20 var OPERATIONS = {{\n{}  }};\n\
         \x20 function route(operationId, params) {{\n\
         \x20   var op = OPERATIONS[operationId];\n\
         \x20   if (!op) throw new Error(\"no operation \" + operationId + \" in the API\");\n\
         \x20   params = params || {{}};\n\
         \x20   var path = op[1];\n\
         \x20   op[2].forEach(function (name) {{\n\
         \x20     if (params[name] === undefined || params[name] === null) throw new Error(operationId + \" needs \" + name);\n\
         \x20     path = path.replace(\"{{\" + name + \"}}\", encodeURIComponent(String(params[name])));\n\
         \x20   }});\n\
         \x20   var query = [];\n\
         \x20   Object.keys(params).forEach(function (name) {{\n\
         \x20     if (op[2].indexOf(name) >= 0) return;\n\
         \x20     if (op[3].indexOf(name) < 0) throw new Error(operationId + \" has no parameter \" + name);\n\
         \x20     var v = params[name];\n\
         \x20     if (v !== undefined && v !== null && v !== \"\") query.push(encodeURIComponent(name) + \"=\" + encodeURIComponent(String(v)));\n\
         \x20   }});\n\
         \x20   return {{ method: op[0], url: query.length ? path + \"?\" + query.join(\"&\") : path }};\n\
         \x20 }}\n\
         \x20 // END GENERATED CLIENT\n",
        js_operations("  ", |id| WIDGET_OPERATIONS.contains(&id))
    )
}
