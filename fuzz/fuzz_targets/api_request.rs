//! The HTTP API's request parsing, in process: method, path, query, headers and body (JSON,
//! multipart, anything) go through the whole router (`styleforge_server::app`: authentication,
//! limits, extractors, validation, handlers) of an anonymous service with an empty model
//! library (the built-in models and paintings only) and no job workers. Any 5xx is a failure:
//! bad requests must get 4xx JSON errors, and a panic aborts the target.
//!
//! `@IMG`, `@JOB` and `@RES` in the path, query or body are replaced with the id of an image,
//! a queued job and a result made at start, so the fuzzer reaches the handlers behind them.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Head,
}

#[derive(Arbitrary, Debug)]
enum Route {
    Images,
    Image,
    ImageInfo,
    ImageThumbnail,
    Styles,
    Style,
    StyleThumbnail,
    Samples,
    Methods,
    Stylize,
    Faces,
    Trainings,
    Job,
    JobCancel,
    JobResult,
    History,
    Result,
    ResultInfo,
    Rating,
    Ratings,
    OpenApi,
    Page,
    Widget,
    Health,
    Ready,
    Metrics,
    /// The path as given.
    Raw,
}

#[derive(Arbitrary, Debug)]
enum ContentType<'a> {
    None,
    Json,
    Multipart,
    Png,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: Method,
    route: Route,
    /// The `{id}` or `{name}` segment, or the whole path for [`Route::Raw`].
    segment: &'a str,
    query: &'a str,
    content_type: ContentType<'a>,
    key: Option<&'a str>,
    origin: Option<&'a str>,
    body: &'a [u8],
}

struct Service {
    runtime: tokio::runtime::Runtime,
    router: Router,
    ids: [(&'static str, String); 3],
    _home: tempfile::TempDir,
}

const BOUNDARY: &str = "styleforgefuzz";

fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
        let home = tempfile::tempdir().expect("a home");
        let config = styleforge_server::Config {
            home: home.path().to_path_buf(),
            anonymous: true,
            workers: 0,
            inference_slots: 1,
            request_timeout_secs: 60,
            ..Default::default()
        };
        let router = runtime.block_on(styleforge_server::app(config)).expect("the service starts");
        let call = |method: &str, path: &str, ct: &str, body: Vec<u8>| -> serde_json::Value {
            let req = Request::builder().method(method).uri(path).header("content-type", ct).body(Body::from(body)).unwrap();
            runtime.block_on(async {
                let res = router.clone().oneshot(req).await.unwrap();
                let status = res.status();
                let bytes = res.into_body().collect().await.unwrap().to_bytes();
                assert!(status.is_success(), "{method} {path}: {status} {}", String::from_utf8_lossy(&bytes));
                serde_json::from_slice(&bytes).unwrap()
            })
        };
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(24, 20, |x, y| image::Rgb([(x * 10) as u8, (y * 12) as u8, 90])))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let image = call("POST", "/v1/images", "image/png", png)["id"].as_str().unwrap().to_string();
        let result = call("POST", "/v1/stylize", "application/json", serde_json::json!({"image": image, "style": "starry-night"}).to_string().into_bytes());
        let result_id = result["result"].as_str().expect("a result id").to_string();
        let job = call("POST", "/v1/stylize", "application/json", serde_json::json!({"image": image, "style": "starry-night", "async": true}).to_string().into_bytes());
        let job_id = job["job"].as_str().expect("a job id").to_string();
        Service { runtime, router, ids: [("@IMG", image), ("@JOB", job_id), ("@RES", result_id)], _home: home }
    })
}

fn substitute(s: &str, ids: &[(&str, String)]) -> String {
    ids.iter().fold(s.to_string(), |s, (k, v)| s.replace(k, v))
}

fuzz_target!(|input: Input| {
    let svc = service();
    let seg = substitute(input.segment, &svc.ids);
    let path = match input.route {
        Route::Images => "/v1/images".to_string(),
        Route::Image => format!("/v1/images/{seg}"),
        Route::ImageInfo => format!("/v1/images/{seg}/info"),
        Route::ImageThumbnail => format!("/v1/images/{seg}/thumbnail"),
        Route::Styles => "/v1/styles".to_string(),
        Route::Style => format!("/v1/styles/{seg}"),
        Route::StyleThumbnail => format!("/v1/styles/{seg}/thumbnail"),
        Route::Samples => format!("/v1/generators/{seg}/samples"),
        Route::Methods => "/v1/methods".to_string(),
        Route::Stylize => "/v1/stylize".to_string(),
        Route::Faces => "/v1/faces".to_string(),
        Route::Trainings => "/v1/trainings".to_string(),
        Route::Job => format!("/v1/jobs/{seg}"),
        Route::JobCancel => format!("/v1/jobs/{seg}/cancel"),
        Route::JobResult => format!("/v1/jobs/{seg}/result"),
        Route::History => "/v1/history".to_string(),
        Route::Result => format!("/v1/results/{seg}"),
        Route::ResultInfo => format!("/v1/results/{seg}/info"),
        Route::Rating => format!("/v1/results/{seg}/rating"),
        Route::Ratings => "/v1/ratings".to_string(),
        Route::OpenApi => "/v1/openapi.json".to_string(),
        Route::Page => "/".to_string(),
        Route::Widget => "/widget.js".to_string(),
        Route::Health => "/healthz".to_string(),
        Route::Ready => "/readyz".to_string(),
        Route::Metrics => "/metrics".to_string(),
        Route::Raw => seg,
    };
    let query = substitute(input.query, &svc.ids);
    let uri = if query.is_empty() { path } else { format!("{path}?{query}") };
    let method = match input.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Options => "OPTIONS",
        Method::Head => "HEAD",
    };
    let mut req = Request::builder().method(method).uri(uri.as_str());
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    let content_type = match input.content_type {
        ContentType::None => None,
        ContentType::Json => Some("application/json"),
        ContentType::Multipart => Some(multipart.as_str()),
        ContentType::Png => Some("image/png"),
        ContentType::Other(t) => Some(t),
    };
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    if let Some(k) = input.key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if let Some(o) = input.origin {
        req = req.header("origin", o);
    }
    let body = match std::str::from_utf8(input.body) {
        Ok(text) => substitute(text, &svc.ids).into_bytes(),
        Err(_) => input.body.to_vec(),
    };
    // Requests the HTTP layer would refuse before the service sees them.
    let Ok(req) = req.body(Body::from(body)) else { return };
    svc.runtime.block_on(async {
        let res = svc.router.clone().oneshot(req).await.expect("the router is infallible");
        let status = res.status();
        if status.is_server_error() {
            let bytes = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            panic!("{method} {uri}: {status} {}", String::from_utf8_lossy(&bytes));
        }
    });
});
