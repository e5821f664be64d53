//! The page and widget assets over HTTP, and publishable keys: origins, allowed operations,
//! CORS, rate limits, listing and revocation. (The browser tests are in `e2e.rs`.)


use crate::common::*;
use serde_json::json;
use styleforge_server::KeyLimits;
use styleforge_server::auth::normalise_origin;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A GET with extra headers.
fn get_with(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    resp(req.call())
}

/// A POST with extra headers.
fn post_with(url: &str, ctype: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().post(url).header("content-type", ctype);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    resp(req.send(body))
}

fn resp(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("request sent");
    let headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Resp {
        status: r.status().as_u16(),
        content_type,
        headers,
        body: r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap(),
    }
}

#[test]
fn the_page_and_the_widget_are_served_with_types_and_cache_headers() {
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(config(models_home(), data.path()));
    let page = get(&s.url("/"), None);
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = String::from_utf8(page.body.clone()).unwrap();
    for asset in ["/app/app.css", "/app/app.js", "/app/compare.js", "/app/icon.svg"] {
        assert!(html.contains(asset), "the page links {asset}");
    }
    assert!(
        !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    assert_eq!(get(&s.url("/index.html"), None).body, page.body);

    for (path, ctype) in [
        ("/app/app.js", "text/javascript; charset=utf-8"),
        ("/app/api.js", "text/javascript; charset=utf-8"),
        ("/app/compare.js", "text/javascript; charset=utf-8"),
        ("/app/app.css", "text/css; charset=utf-8"),
        ("/app/icon.svg", "image/svg+xml"),
        ("/widget.js", "text/javascript; charset=utf-8"),
    ] {
        let r = get(&s.url(path), None);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.content_type, ctype, "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            r.body,
            styleforge_server::web::asset(path).unwrap(),
            "{path} is the embedded file"
        );
        // Revalidation: the ETag answers 304 with no body.
        let etag = r.header("etag").unwrap().to_string();
        let again = get_with(&s.url(path), &[("if-none-match", &etag)]);
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
    }
    let widget = get(&s.url("/widget.js"), None);
    assert_eq!(widget.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(
        widget.header("cross-origin-resource-policy"),
        Some("cross-origin")
    );
    let js = String::from_utf8(widget.body).unwrap();
    assert!(js.contains("attachShadow") && js.contains("styleforge:result"));

    // The API is untouched: unknown paths are still JSON errors.
    get(&s.url("/nope"), None).assert_error(404, "not_found");
    s.shutdown();

    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.web = false;
    let s = TestServer::start(cfg);
    get(&s.url("/"), None).assert_error(404, "not_found");
    get(&s.url("/widget.js"), None).assert_error(404, "not_found");
    s.shutdown();
}

#[test]
fn origins_are_normalised() {
    assert_eq!(
        normalise_origin("https://Example.COM/").unwrap(),
        "https://example.com"
    );
    assert_eq!(
        normalise_origin("https://example.com:443").unwrap(),
        "https://example.com"
    );
    assert_eq!(
        normalise_origin("http://localhost:3000").unwrap(),
        "http://localhost:3000"
    );
    assert_eq!(
        normalise_origin("http://[::1]:8080").unwrap(),
        "http://[::1]:8080"
    );
    for bad in [
        "example.com",
        "ftp://example.com",
        "https://example.com/path",
        "https://*.example.com",
        "https://",
        "https://example.com:99999",
    ] {
        assert!(normalise_origin(bad).is_err(), "{bad} is refused");
    }
}

#[test]
fn publishable_keys_work_only_from_their_origins_and_only_for_stylising() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(models_home(), data.path());
    cfg.anonymous = false;
    cfg.cors_origins = vec!["https://admin.example".into()];
    cfg.publishable_rate_limit_per_minute = 40;
    let s = TestServer::start(cfg.clone());
    let site = "https://site.example";
    let pk = s
        .block_on(styleforge_server::create_publishable_key(
            &cfg,
            "site",
            KeyLimits::default(),
            &["https://SITE.example/".to_string()],
        ))
        .unwrap();
    assert!(pk.key.starts_with("pk_") && pk.key.len() > 40);
    assert_eq!(pk.kind, "publishable");
    assert_eq!(pk.origins, vec![site.to_string()]);
    assert!(
        s.block_on(styleforge_server::create_publishable_key(
            &cfg,
            "none",
            KeyLimits::default(),
            &[]
        ))
        .is_err(),
        "a publishable key needs an origin"
    );
    assert!(
        s.block_on(styleforge_server::create_publishable_key(
            &cfg,
            "bad",
            KeyLimits::default(),
            &["example.com".into()]
        ))
        .is_err()
    );
    let sk = s
        .block_on(styleforge_server::create_key(
            &cfg,
            "admin",
            KeyLimits::default(),
        ))
        .unwrap();
    assert_eq!(sk.kind, "secret");
    let auth = format!("Bearer {}", pk.key);
    let from_site = [("authorization", auth.as_str()), ("origin", site)];

    // From the allowed origin: the gallery, an upload, a stylisation, its result and job.
    let styles = get_with(&s.url("/v1/styles"), &from_site);
    assert_eq!(styles.status, 200);
    assert_eq!(
        styles.header("access-control-allow-origin"),
        Some(site),
        "CORS reflects the key's origin"
    );
    let thumb = get_with(&s.url("/v1/styles/candy/thumbnail?size=64"), &from_site);
    assert_eq!(thumb.status, 200);
    let img = post_with(
        &s.url("/v1/images"),
        "image/jpeg",
        &content_jpeg(),
        &from_site,
    )
    .ok_json(201);
    let img = img["id"].as_str().unwrap();
    let res = post_with(
        &s.url("/v1/stylize"),
        "application/json",
        json!({"image": img, "style": "candy", "max_size": 64})
            .to_string()
            .as_bytes(),
        &from_site,
    )
    .ok_json(200);
    let rid = res["result"].as_str().unwrap();
    assert_eq!(
        get_with(&s.url(&format!("/v1/results/{rid}")), &from_site).status,
        200
    );
    let job = res["job"].as_str().unwrap();
    assert_eq!(
        get_with(&s.url(&format!("/v1/jobs/{job}")), &from_site).status,
        200
    );
    // A same-origin GET carries no Origin; its Referer names the page.
    let referer = [
        ("authorization", auth.as_str()),
        ("referer", "https://site.example/profile?tab=1"),
    ];
    assert_eq!(get_with(&s.url("/v1/styles"), &referer).status, 200);

    // Anything else needs a secret key.
    for (method, path) in [
        ("GET", "/v1/history".to_string()),
        ("GET", "/v1/images".to_string()),
        ("GET", "/v1/ratings".to_string()),
        ("POST", "/v1/styles".to_string()),
    ] {
        let r = if method == "GET" {
            get_with(&s.url(&path), &from_site)
        } else {
            post_with(&s.url(&path), "image/jpeg", &content_jpeg(), &from_site)
        };
        r.assert_error(403, "key_not_permitted");
    }
    let mut del = agent().delete(&s.url(&format!("/v1/images/{img}")));
    for (k, v) in from_site {
        del = del.header(k, v);
    }
    resp(del.call()).assert_error(403, "key_not_permitted");

    // From another origin, or with no origin at all: refused, and CORS grants nothing.
    let elsewhere = [
        ("authorization", auth.as_str()),
        ("origin", "https://evil.example"),
    ];
    let r = get_with(&s.url("/v1/styles"), &elsewhere);
    r.assert_error(403, "origin_not_allowed");
    assert!(r.header("access-control-allow-origin").is_none());
    get_with(&s.url("/v1/styles"), &[("authorization", auth.as_str())])
        .assert_error(403, "origin_required");
    post_with(
        &s.url("/v1/images"),
        "image/jpeg",
        &content_jpeg(),
        &elsewhere,
    )
    .assert_error(403, "origin_not_allowed");

    // Preflights: the key's origin and the configured origins are granted, others are not.
    for (origin, granted) in [
        (site, true),
        ("https://admin.example", true),
        ("https://evil.example", false),
    ] {
        let pre = options(
            &s.url("/v1/stylize"),
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
        );
        assert_eq!(
            pre.header("access-control-allow-origin"),
            granted.then_some(origin),
            "preflight from {origin}"
        );
    }

    // Secret keys work as before, from anywhere (the configured CORS origins only matter to
    // browsers).
    let sauth = format!("Bearer {}", sk.key);
    let r = get_with(
        &s.url("/v1/history"),
        &[
            ("authorization", &sauth),
            ("origin", "https://evil.example"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(
        get_with(&s.url("/v1/images"), &[("authorization", &sauth)]).status,
        200
    );

    // The publishable rate limit: per key and client, separate from secret keys.
    let mut limited = None;
    for i in 0..60 {
        let r = get_with(&s.url("/v1/styles"), &from_site);
        if r.status == 429 {
            limited = Some(i);
            r.assert_error(429, "rate_limited");
            assert!(r.header("retry-after").is_some());
            break;
        }
    }
    assert!(
        limited.is_some(),
        "the publishable limit of 40 per minute applies"
    );
    assert_eq!(
        get_with(&s.url("/v1/history"), &[("authorization", &sauth)]).status,
        200,
        "secret keys keep their own budget"
    );

    // Listing shows kinds and origins; revoking ends the CORS grant.
    let keys = s.block_on(styleforge_server::list_keys(&cfg)).unwrap();
    let listed = keys.iter().find(|k| k.id == pk.id).unwrap();
    assert_eq!(listed.kind, "publishable");
    assert_eq!(listed.origins, vec![site.to_string()]);
    assert_eq!(keys.iter().find(|k| k.id == sk.id).unwrap().kind, "secret");
    s.block_on(styleforge_server::revoke_key(&cfg, "site"))
        .unwrap();
    let pre = options(
        &s.url("/v1/styles"),
        &[("origin", site), ("access-control-request-method", "GET")],
    );
    assert!(pre.header("access-control-allow-origin").is_none());
    get_with(&s.url("/v1/styles"), &from_site).assert_error(401, "key_revoked");
    s.shutdown();
}

/// The page's files (`web/`).
fn web_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// `widget.js` with its generated client block replaced by `block`.
fn splice_widget(widget: &str, block: &str) -> String {
    let start = widget.find("  // BEGIN GENERATED CLIENT").expect("widget.js has a BEGIN GENERATED CLIENT line");
    let end_marker = "  // END GENERATED CLIENT\n";
    let end = widget[start..].find(end_marker).expect("widget.js has an END GENERATED CLIENT line") + start + end_marker.len();
    format!("{}{block}{}", &widget[..start], &widget[end..])
}

#[test]
fn the_page_and_the_widget_call_the_api_through_the_client_generated_from_the_document() {
    use styleforge_server::openapi;
    let dir = web_dir();
    let module = openapi::client_module();
    let widget = std::fs::read_to_string(dir.join("widget.js")).unwrap();
    let spliced = splice_widget(&widget, &openapi::widget_client());
    if std::env::var_os("STYLEFORGE_BLESS").is_some() {
        std::fs::write(dir.join("client.js"), &module).unwrap();
        std::fs::write(dir.join("widget.js"), &spliced).unwrap();
    }
    let regenerate = "regenerate with STYLEFORGE_BLESS=1 cargo test --release --workspace --test service web::";
    assert!(
        std::fs::read_to_string(dir.join("client.js")).unwrap() == module,
        "web/client.js is not what the OpenAPI document generates: {regenerate}"
    );
    assert!(
        std::fs::read_to_string(dir.join("widget.js")).unwrap() == spliced,
        "the client in web/widget.js is not what the OpenAPI document generates: {regenerate}"
    );
    // The page names no API path of its own: every call goes through the generated client, and
    // every operation it names is in the document.
    let ops: Vec<String> = openapi::operations().into_iter().map(|o| o.0).collect();
    let mut named = 0;
    for file in ["api.js", "app.js", "compare.js", "dom.js", "live.js", "widget.js"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let code = if file == "widget.js" { splice_widget(&text, "") } else { text };
        for (i, line) in code.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("//") || t.starts_with('*') || t.starts_with("/*") {
                continue;
            }
            assert!(!line.contains("/v1/"), "{file}:{}: an API path written by hand: {line}", i + 1);
            for call in ["apiUrl(\"", "route(\""] {
                let mut rest = line;
                while let Some(at) = rest.find(call) {
                    let after = &rest[at + call.len()..];
                    let name = &after[..after.find('"').unwrap()];
                    assert!(ops.iter().any(|o| o == name), "{file}:{}: no operation `{name}` in the document", i + 1);
                    if file == "widget.js" {
                        assert!(
                            openapi::WIDGET_OPERATIONS.contains(&name),
                            "widget.js:{}: `{name}` is not in openapi::WIDGET_OPERATIONS, the widget's client",
                            i + 1
                        );
                    }
                    named += 1;
                    rest = after;
                }
            }
        }
    }
    assert!(named >= 30, "the page calls the API through the client ({named} calls)");
    // The widget's client holds the operations it calls, each one in the document.
    for id in openapi::WIDGET_OPERATIONS {
        assert!(ops.iter().any(|o| o == id), "WIDGET_OPERATIONS names `{id}`, which the document lacks");
        assert!(spliced.contains(&format!("    {id}: [\"")), "widget.js's client lacks `{id}`");
    }
    assert!(!spliced.contains("    get_batch: ["), "the widget's client holds only the widget's operations");
    // The client builds URLs from the document's parameters.
    assert!(module.contains("  get_result: [\"GET\", \"/v1/results/{id}\", [\"id\"], []],"), "{module}");
    assert!(module.contains("  list_history: [\"GET\", \"/v1/history\", [], [\"limit\", \"cursor\"]],"), "{module}");
}
