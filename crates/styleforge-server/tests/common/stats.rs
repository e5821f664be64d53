//! Scenarios of the rating statistics, the gallery's best-rated order and the pairwise
//! preferences, run on SQLite (`tests/api.rs`) and PostgreSQL (`tests/postgres.rs`) alike.
//! Expected numbers were computed outside the service (Python, the formulas in
//! `src/stats/`).

use serde_json::{Value, json};

use super::*;

#[track_caller]
fn close(got: &Value, want: f64) {
    let g = got.as_f64().unwrap_or_else(|| panic!("a number: {got}"));
    assert!((g - want).abs() < 1e-6, "got {g}, want {want}");
}

/// Stylises `image` (64 px) with `style` and optionally `method`; returns the result id.
pub fn stylise(s: &TestServer, image: &str, style: &str, method: Option<&str>, key: Option<&str>) -> String {
    let mut body = json!({"image": image, "style": style, "max_size": 64});
    if let Some(m) = method {
        body["method"] = json!(m);
    }
    let v = post_json(&s.url("/v1/stylize"), &body, key).ok_json(200);
    v["result"].as_str().unwrap().to_string()
}

fn rate(s: &TestServer, result: &str, score: i64) {
    put_json(&s.url(&format!("/v1/results/{result}/rating")), &json!({"score": score}), None).ok_json(200);
}

fn find<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[field] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
}

/// Ratings on an anonymous server: candy (fast) 5, 4, 4; seascape (fast) one 5; great-wave
/// (microast) 4, 4, 4, 4. Checks the numbers of `GET /v1/stats/ratings`, `GET /v1/ratings`,
/// the gallery's `rating` and its `sort=rating` order.
pub fn ratings_summaries_and_best_rated_order(s: &TestServer) {
    let img = upload(s, &content_jpeg(), None);
    for (style, method, scores) in [
        ("candy", "fast", vec![5, 4, 4]),
        ("seascape", "fast", vec![5]),
        ("great-wave", "microast", vec![4, 4, 4, 4]),
    ] {
        for score in scores {
            let r = stylise(s, &img, style, Some(method), None);
            // Rating again replaces: the 1 does not count.
            rate(s, &r, 1);
            rate(s, &r, score);
        }
    }

    // Wilson intervals of the rescaled scores (see src/stats/ratings.rs), worked out in Python.
    let stats = get(&s.url("/v1/stats/ratings"), None).ok_json(200);
    let styles = &stats["styles"];
    let names: Vec<&str> = styles.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["candy", "great-wave", "seascape"], "best rated first: {stats}");
    for (name, count, mean, lo, hi, hist) in [
        ("candy", 3, 13.0 / 3.0, 2.239_952_425_8, 4.929_388_822_9, [0, 0, 0, 2, 1]),
        ("seascape", 1, 5.0, 1.826_197_257_5, 5.0, [0, 0, 0, 0, 1]),
        ("great-wave", 4, 4.0, 2.202_567_370_3, 4.817_650_956_8, [0, 0, 0, 4, 0]),
    ] {
        let x = find(styles, "name", name);
        assert_eq!(x["count"], count, "{x}");
        close(&x["mean"], mean);
        close(&x["ci_low"], lo);
        close(&x["ci_high"], hi);
        assert_eq!(x["histogram"], json!(hist));
    }
    let methods = &stats["methods"];
    assert_eq!(methods.as_array().unwrap().len(), 2, "{methods}");
    let fast = find(methods, "name", "fast");
    assert_eq!(fast["count"], 4);
    close(&fast["mean"], 4.5);
    close(&fast["ci_low"], 2.583_092_137_9);
    close(&fast["ci_high"], 4.947_235_352_7);
    let micro = find(methods, "name", "microast");
    assert_eq!(micro["count"], 4);
    close(&micro["ci_low"], 2.202_567_370_3);
    assert_eq!(methods[0]["name"], "fast");
    let one = get(&s.url("/v1/stats/ratings?style=seascape&method=microast"), None).ok_json(200);
    assert_eq!(one["styles"].as_array().unwrap().len(), 1);
    assert_eq!(one["methods"][0]["name"], "microast");
    assert_eq!(one["methods"].as_array().unwrap().len(), 1);

    // Per style and method, with the interval.
    let agg = get(&s.url("/v1/ratings?style=candy"), None).ok_json(200);
    close(&agg["ratings"][0]["ci_low"], 2.239_952_425_8);
    close(&agg["ratings"][0]["ci_high"], 4.929_388_822_9);

    // The gallery: each rated style carries its summary; unrated ones none.
    let gallery = get(&s.url("/v1/styles"), None).ok_json(200)["styles"].clone();
    let candy = find(&gallery, "name", "candy");
    assert_eq!(candy["rating"]["count"], 3);
    close(&candy["rating"]["mean"], 13.0 / 3.0);
    close(&candy["rating"]["ci_low"], 2.239_952_425_8);
    close(&candy["rating"]["ci_high"], 4.929_388_822_9);
    assert!(find(&gallery, "name", "starry-night").get("rating").is_none());
    let one = get(&s.url("/v1/styles/great-wave"), None).ok_json(200);
    assert_eq!(one["rating"]["count"], 4);
    assert!(get(&s.url("/v1/styles/starry-night"), None).ok_json(200).get("rating").is_none());

    // Best rated: by the interval's lower end, so four 4s rank above one 5; the unrated styles
    // follow in the gallery's order.
    let sorted = get(&s.url("/v1/styles?sort=rating"), None).ok_json(200)["styles"].clone();
    let order: Vec<&str> = sorted.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(order[..3], ["candy", "great-wave", "seascape"], "{order:?}");
    let default_order: Vec<&str> = gallery
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .filter(|n| !["candy", "great-wave", "seascape"].contains(n))
        .collect();
    assert_eq!(order[3..], default_order[..]);
    assert_eq!(order.len(), gallery.as_array().unwrap().len());
    let default = get(&s.url("/v1/styles?sort=default"), None).ok_json(200)["styles"].clone();
    assert_eq!(default, gallery);
    // With a search, only the matches, best rated first: `sea` finds seascape and the wave.
    let sea = get(&s.url("/v1/styles?q=sea&sort=rating"), None).ok_json(200)["styles"].clone();
    let sea: Vec<&str> = sea.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(sea[..2], ["great-wave", "seascape"], "{sea:?}");
    get(&s.url("/v1/styles?sort=stars"), None).assert_error(400, "invalid_query");
}

/// Preferences on a server with keys: validation, replacement of a repeated comparison, and the
/// numbers of `GET /v1/stats/preferences`. `alice` and `bob` are two secret keys.
pub fn preferences_validated_replaced_and_scored(s: &TestServer, alice: &str, bob: &str) {
    let (a, b) = (Some(alice), Some(bob));
    let photo = upload(s, &content_jpeg(), a);
    let other_photo = upload(s, &small_png("data/content/small/parrots_kodim23_256.jpg", 80), a);
    let candy = stylise(s, &photo, "candy", Some("fast"), a);
    let candy_again = stylise(s, &photo, "candy", Some("fast"), a);
    let sea = stylise(s, &photo, "seascape", Some("fast"), a);
    let wave_micro = stylise(s, &photo, "great-wave", Some("microast"), a);
    let wave_adain = stylise(s, &photo, "great-wave", Some("adain"), a);
    let candy_other = stylise(s, &other_photo, "candy", Some("fast"), a);
    let bob_photo = upload(s, &content_jpeg(), b);
    let bob_candy = stylise(s, &bob_photo, "candy", Some("fast"), b);
    let bob_sea = stylise(s, &bob_photo, "seascape", Some("fast"), b);

    let prefer = |x: &str, y: &str, winner: &str, key: Option<&str>| {
        post_json(&s.url("/v1/preferences"), &json!({"a": x, "b": y, "winner": winner}), key)
    };
    // Someone else's result is not found, either side.
    prefer(&candy, &bob_candy, "a", a).assert_error(404, "result_not_found");
    prefer(&bob_candy, &candy, "b", a).assert_error(404, "result_not_found");
    prefer(&candy, "res_nope", "a", a).assert_error(404, "result_not_found");
    // Results of two photos, the same result twice, the same arm twice.
    prefer(&candy, &candy_other, "a", a).assert_error(422, "different_images");
    prefer(&candy, &candy, "a", a).assert_error(422, "same_result");
    prefer(&candy, &candy_again, "a", a).assert_error(422, "same_arm");
    // The winner is `a` or `b`; the body is exactly these fields, as JSON.
    for winner in [json!("c"), json!("A"), json!(1), json!(null)] {
        post_json(&s.url("/v1/preferences"), &json!({"a": candy, "b": sea, "winner": winner}), a)
            .assert_error(422, "invalid_body");
    }
    post_json(&s.url("/v1/preferences"), &json!({"a": candy, "b": sea}), a).assert_error(422, "invalid_body");
    post_json(&s.url("/v1/preferences"), &json!({"a": candy, "b": sea, "winner": "a", "x": 1}), a)
        .assert_error(422, "invalid_body");
    post_bytes(&s.url("/v1/preferences"), "text/plain", b"a", a).assert_error(415, "unsupported_media_type");
    post_bytes(&s.url("/v1/preferences"), "application/json", b"{", a).assert_error(400, "invalid_json");
    get(&s.url("/v1/stats/preferences"), None).assert_error(401, "missing_key");
    let empty = get(&s.url("/v1/stats/preferences"), a).ok_json(200);
    assert_eq!(empty["comparisons"], 0, "nothing refused was stored: {empty}");

    // Alice prefers candy to seascape; then, with the results the other way round and another
    // candy result, seascape: the same comparison, so the second choice replaces the first.
    let p = prefer(&candy, &sea, "a", a).ok_json(200);
    assert_eq!(p["image"], photo.as_str());
    assert_eq!((p["a"]["result"].as_str(), p["a"]["style"].as_str(), p["a"]["method"].as_str()), (Some(candy.as_str()), Some("candy"), Some("fast")));
    assert_eq!((p["b"]["result"].as_str(), p["b"]["style"].as_str()), (Some(sea.as_str()), Some("seascape")));
    assert_eq!((p["winner"].as_str(), p["replaced"].as_bool()), (Some("a"), Some(false)));
    let once = get(&s.url("/v1/stats/preferences"), a).ok_json(200);
    assert_eq!(once["comparisons"], 1);
    assert_eq!(find(&once["styles"], "name", "candy")["wins"], 1);
    let p = prefer(&sea, &candy_again, "a", a).ok_json(200);
    assert_eq!((p["winner"].as_str(), p["replaced"].as_bool()), (Some("a"), Some(true)));
    let replaced = get(&s.url("/v1/stats/preferences"), a).ok_json(200);
    assert_eq!(replaced["comparisons"], 1, "{replaced}");
    let st = |v: &Value, table: &str, name: &str| {
        let x = find(&v[table], "name", name);
        (x["wins"].as_i64().unwrap(), x["losses"].as_i64().unwrap(), x["comparisons"].as_i64().unwrap())
    };
    assert_eq!(st(&replaced, "styles", "seascape"), (1, 0, 1));
    assert_eq!(st(&replaced, "styles", "candy"), (0, 1, 1));
    assert!(replaced["methods"].as_array().unwrap().is_empty(), "two styles with one method say nothing about methods");

    // Two methods on one painting; a style and method against another; Bob's own choice.
    prefer(&wave_adain, &wave_micro, "b", a).ok_json(200);
    prefer(&candy, &wave_micro, "b", a).ok_json(200);
    prefer(&bob_candy, &bob_sea, "a", b).ok_json(200);

    let v = get(&s.url("/v1/stats/preferences"), a).ok_json(200);
    assert_eq!(v["comparisons"], 4, "{v}");
    close(&v["prior"], 0.5);
    // Methods: microast beat adain and fast once each (the two fast styles do not count).
    assert_eq!(st(&v, "methods", "microast"), (2, 0, 2));
    assert_eq!(st(&v, "methods", "adain"), (0, 1, 1));
    assert_eq!(st(&v, "methods", "fast"), (0, 1, 1));
    assert_eq!(v["methods"][0]["name"], "microast");
    // Bradley–Terry by MM with half a win and half a loss against a reference of 1, scaled to
    // a geometric mean of 1 (computed in Python).
    close(&find(&v["methods"], "name", "microast")["score"], 3.373_939_597_67);
    close(&find(&v["methods"], "name", "adain")["score"], 0.544_416_586_69);
    close(&find(&v["methods"], "name", "fast")["score"], 0.544_416_586_69);
    // Styles: seascape and candy split (Alice, Bob), the wave beat candy (two methods on one
    // painting do not count).
    assert_eq!(st(&v, "styles", "candy"), (1, 2, 3));
    assert_eq!(st(&v, "styles", "seascape"), (1, 1, 2));
    assert_eq!(st(&v, "styles", "great-wave"), (1, 0, 1));
    close(&find(&v["styles"], "name", "great-wave")["score"], 2.347_385_689_84);
    close(&find(&v["styles"], "name", "seascape")["score"], 0.708_742_130_93);
    close(&find(&v["styles"], "name", "candy")["score"], 0.601_073_106_90);
    let order: Vec<&str> = v["styles"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(order, ["great-wave", "seascape", "candy"]);
    // Arms: every comparison.
    let arms = v["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 4, "{v}");
    let wm = arms.iter().find(|x| x["style"] == "great-wave" && x["method"] == "microast").unwrap();
    assert_eq!((wm["wins"].as_i64(), wm["losses"].as_i64()), (Some(2), Some(0)));
    assert_eq!(arms[0], *wm);
    let geo: f64 = arms.iter().map(|x| x["score"].as_f64().unwrap().ln()).sum::<f64>();
    assert!(geo.abs() < 1e-9, "geometric mean 1");

    // Filtered: the methods compared on the wave alone (one comparison: 2.13 to 0.47).
    let wave = get(&s.url("/v1/stats/preferences?style=great-wave"), a).ok_json(200);
    assert_eq!(wave["comparisons"], 1);
    close(&find(&wave["methods"], "name", "microast")["score"], 2.130_395_434_77);
    close(&find(&wave["methods"], "name", "adain")["score"], 0.469_396_424_57);
    assert!(wave["styles"].as_array().unwrap().is_empty());
    let fast = get(&s.url("/v1/stats/preferences?method=fast"), b).ok_json(200);
    assert_eq!(fast["comparisons"], 2);
    assert_eq!(st(&fast, "styles", "candy"), (1, 1, 2));
}
