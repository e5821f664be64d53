//! The service on PostgreSQL: the API contract's main paths (uploads, synchronous and queued
//! stylisation, cancellation, a lease lost by a dead worker, API keys) against a fresh database
//! on the local PostgreSQL server per test, and job claiming by concurrent workers with
//! `FOR UPDATE SKIP LOCKED` and capabilities. The tests fail, with a message saying so, when
//! PostgreSQL cannot be reached.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;
use serde_json::json;
use styleforge_server::db::{self, Capabilities, JobRow};
use styleforge_server::{Config, KeyLimits};

/// The test configuration on a fresh PostgreSQL database.
fn pg_config(pg: &PgDatabase, data: &std::path::Path) -> Config {
    let mut c = config(models_home(), data);
    c.database_url = Some(pg.url.clone());
    c
}

#[test]
fn images_stylize_ratings_and_history_on_postgres() {
    let pg = PgDatabase::create();
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(pg_config(&pg, data.path()));
    assert!(
        !data.path().join("styleforge.db").exists(),
        "no SQLite file when a PostgreSQL URL is given"
    );
    let jpeg = content_jpeg();
    let id = upload(&s, &jpeg, None);
    let id2 = upload(&s, &jpeg, None);
    assert_eq!(get(&s.url(&format!("/v1/images/{id}")), None).body, jpeg);
    let info = get(&s.url(&format!("/v1/images/{id}/info")), None).ok_json(200);
    assert_eq!(info["width"], 256);
    let p1 = get(&s.url("/v1/images?limit=1"), None).ok_json(200);
    assert_eq!(p1["items"][0]["id"], id2.as_str());
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = get(&s.url(&format!("/v1/images?limit=1&cursor={cursor}")), None).ok_json(200);
    assert_eq!(p2["items"][0]["id"], id.as_str());
    assert!(p2["next_cursor"].is_null());

    // Synchronous stylisation, its result, a rating and the history.
    let v = post_json(
        &s.url("/v1/stylize"),
        &json!({"image": id, "style": "candy", "method": "fast", "max_size": 96}),
        None,
    )
    .ok_json(200);
    let rid = v["result"].as_str().unwrap().to_string();
    let r = get(&s.url(&format!("/v1/results/{rid}")), None);
    assert_eq!((r.status, r.content_type.as_str()), (200, "image/png"));
    let info = get(&s.url(&format!("/v1/results/{rid}/info")), None).ok_json(200);
    assert!(info["timings"]["inference_ms"].as_f64().unwrap() > 0.0);
    put_json(
        &s.url(&format!("/v1/results/{rid}/rating")),
        &json!({"score": 4}),
        None,
    )
    .ok_json(200);
    put_json(
        &s.url(&format!("/v1/results/{rid}/rating")),
        &json!({"score": 5}),
        None,
    )
    .ok_json(200);
    let agg = get(&s.url("/v1/ratings?style=candy"), None).ok_json(200);
    assert_eq!(agg["ratings"][0]["count"], 1);
    assert_eq!(agg["ratings"][0]["mean"], 5.0);
    assert_eq!(agg["ratings"][0]["histogram"], json!([0, 0, 0, 0, 1]));
    let h = get(&s.url("/v1/history"), None).ok_json(200);
    assert_eq!(h["items"][0]["result"], rid.as_str());

    // Deleting images releases the shared blob only with its last reference.
    assert_eq!(
        delete(&s.url(&format!("/v1/images/{id}")), None).status,
        204
    );
    assert_eq!(get(&s.url(&format!("/v1/images/{id2}")), None).body, jpeg);
    delete(&s.url(&format!("/v1/images/{id}")), None).assert_error(404, "image_not_found");
    let ready = get(&s.url("/readyz"), None).ok_json(200);
    assert_eq!(ready["status"], "ready");
    let metrics = get(&s.url("/metrics"), None);
    assert_eq!(metrics.status, 200);
    s.shutdown();

    // Opening the same database again runs no migration twice.
    let s = TestServer::start(pg_config(&pg, data.path()));
    assert_eq!(get(&s.url(&format!("/v1/images/{id2}")), None).body, jpeg);
    s.shutdown();
}

#[test]
fn jobs_complete_cancel_and_survive_a_dead_worker_on_postgres() {
    let pg = PgDatabase::create();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = pg_config(&pg, data.path());
    cfg.workers = 0;
    let s = TestServer::start(cfg.clone());
    let id = upload(
        &s,
        &small_png("data/content/small/cat_chelsea_256.jpg", 64),
        None,
    );
    let submit = |s: &TestServer| {
        post_json(
            &s.url("/v1/stylize"),
            &json!({"image": id, "style": "seascape", "async": true}),
            None,
        )
        .ok_json(202)["job"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // An API-only server queues; cancelling a queued job settles it at once.
    let cancelled = submit(&s);
    let abandoned = submit(&s);
    let v = post_json(
        &s.url(&format!("/v1/jobs/{cancelled}/cancel")),
        &json!({}),
        None,
    );
    assert_eq!(v.json()["state"], "cancelled", "{:?}", v.json());
    s.shutdown();

    // A worker claims a job with a short lease and dies without a heartbeat.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let claimed = rt
        .block_on(styleforge_server::jobs::worker::claim_and_abandon(
            &cfg,
            "dead-worker",
            Duration::from_millis(1500),
        ))
        .unwrap();
    assert_eq!(claimed.as_deref(), Some(abandoned.as_str()));

    cfg.workers = 1;
    let s = TestServer::start(cfg);
    let fresh = submit(&s);
    let v = wait_job(&s, &abandoned, None, Duration::from_secs(60), |j| {
        j["state"] == "succeeded"
    });
    assert_eq!(
        v["attempts"], 2,
        "reclaimed after its lease and run again: {v}"
    );
    let res = get(&s.url(v["result_url"].as_str().unwrap()), None);
    assert_eq!(res.status, 200);
    let events = follow_events(&s.url(&format!("/v1/jobs/{fresh}/events")), None);
    let last = events.last().unwrap();
    assert_eq!(last.event, "done");
    assert_eq!(last.data["state"], "succeeded", "{:?}", last.data);
    assert_eq!(
        get(&s.url(&format!("/v1/jobs/{cancelled}")), None).ok_json(200)["state"],
        "cancelled"
    );
    let r = get(&s.url(&format!("/v1/jobs/{fresh}/result")), None);
    assert_eq!(r.status, 200);
    s.shutdown();
}

#[test]
fn keys_on_postgres() {
    let pg = PgDatabase::create();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = pg_config(&pg, data.path());
    cfg.anonymous = false;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let alice = rt
        .block_on(styleforge_server::create_key(
            &cfg,
            "alice",
            KeyLimits::default(),
        ))
        .unwrap();
    let widget = rt
        .block_on(styleforge_server::create_publishable_key(
            &cfg,
            "widget",
            KeyLimits::default(),
            &["https://site.example".to_string()],
        ))
        .unwrap();
    let keys = rt.block_on(styleforge_server::list_keys(&cfg)).unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .any(|k| k.kind == "publishable" && k.origins == ["https://site.example"])
    );
    let s = TestServer::start(cfg.clone());
    get(&s.url("/v1/images"), None).assert_error(401, "missing_key");
    get(&s.url("/v1/images"), Some(&alice.key)).ok_json(200);
    let _ = widget;
    rt.block_on(styleforge_server::revoke_key(&cfg, "alice"))
        .unwrap();
    get(&s.url("/v1/images"), Some(&alice.key)).assert_error(401, "key_revoked");
    s.shutdown();
}

/// Inserts `n` queued jobs of `method` needing `device`; returns their ids.
async fn queue(db: &db::Db, n: usize, method: &str, device: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut j = JobRow::queued(
            format!(
                "job_{method}_{device}_{i:04}_{}",
                uuid::Uuid::new_v4().simple()
            ),
            "anonymous",
            method,
            "candy",
            "img_x",
            "{}".into(),
            3,
        );
        j.device = device.into();
        db::insert_job(db, &j).await.unwrap();
        ids.push(j.id);
    }
    ids
}

/// Concurrent claimers on one database: every job goes to exactly one of them, and only to a
/// worker with the capabilities it needs.
async fn claims(url: &str, claimers: usize) {
    let db = db::connect(url).await.unwrap();
    let cpu_jobs = queue(&db, 60, "fast", "any").await;
    let gpu_jobs = queue(&db, 5, "gatys", "gpu").await;
    let adain_jobs = queue(&db, 5, "adain", "any").await;

    let cpu_fast = Capabilities {
        device: "cpu".into(),
        methods: vec!["fast".into(), "gatys".into()],
    };
    let tasks: Vec<_> = (0..claimers)
        .map(|i| {
            let db = db.clone();
            let caps = cpu_fast.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(j) = db::claim_job(&db, &format!("w{i}"), 60_000, &caps)
                    .await
                    .unwrap()
                {
                    assert_eq!(j.lease_owner.as_deref(), Some(format!("w{i}").as_str()));
                    got.push(j.id);
                    tokio::task::yield_now().await;
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no job claimed twice");
    assert_eq!(
        unique,
        cpu_jobs.iter().collect::<HashSet<_>>(),
        "CPU workers for fast and gatys take every fast job and nothing else"
    );
    // A GPU worker takes the GPU jobs; one for every method takes what is left.
    let gpu = Capabilities::all("gpu");
    let mut rest = HashSet::new();
    while let Some(j) = db::claim_job(&db, "gpu", 60_000, &gpu).await.unwrap() {
        rest.insert(j.id);
    }
    let want: HashSet<String> = gpu_jobs.into_iter().chain(adain_jobs).collect();
    assert_eq!(rest, want);
    db.close().await;
}

#[test]
fn concurrent_claims_take_each_job_once_and_respect_capabilities() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let pg = PgDatabase::create();
    rt.block_on(claims(&pg.url, 8));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("claims.db").display());
    rt.block_on(claims(&sqlite, 4));
}

#[test]
fn workers_collect_blobs_whose_writer_died_before_recording_them() {
    let pg = PgDatabase::create();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = pg_config(&pg, data.path());
    cfg.orphan_grace_secs = 1;
    let s = TestServer::start(cfg.clone());
    let kept = upload(&s, &content_jpeg(), None);
    let kept_sha = get(&s.url(&format!("/v1/images/{kept}/info")), None).ok_json(200)["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // A writer announced two blobs and stored them, then died: one is referenced by a row
    // (its image), the other by nothing.
    let orphan = bytes::Bytes::from_static(b"bytes a dead worker stored");
    let blobs = styleforge_server::store::Blobs::local(&cfg.blob_dir()).unwrap();
    let orphan_sha = s.block_on(async {
        let db = db::connect(&pg.url).await.unwrap();
        let sha = styleforge_server::store::sha256_hex(&orphan);
        db::add_blob_intent(&db, &sha, "job_dead").await.unwrap();
        db::add_blob_intent(&db, &kept_sha, "job_dead").await.unwrap();
        blobs.put(orphan.clone()).await.unwrap();
        db.close().await;
        sha
    });
    let path = |sha: &str| data.path().join("blobs/sha256").join(&sha[..2]).join(sha);
    assert!(path(&orphan_sha).is_file());
    let t = std::time::Instant::now();
    while path(&orphan_sha).exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "orphan never collected");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(path(&kept_sha).is_file(), "a referenced blob is kept");
    assert_eq!(
        get(&s.url(&format!("/v1/images/{kept}")), None).body,
        content_jpeg()
    );
    s.shutdown();
}

#[test]
fn rating_statistics_and_the_best_rated_gallery_on_postgres() {
    let pg = PgDatabase::create();
    let data = tempfile::tempdir().unwrap();
    let s = TestServer::start(pg_config(&pg, data.path()));
    common::stats::ratings_summaries_and_best_rated_order(&s);
    s.shutdown();
}

#[test]
fn pairwise_preferences_on_postgres() {
    let pg = PgDatabase::create();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = pg_config(&pg, data.path());
    cfg.anonymous = false;
    let s = TestServer::start(cfg.clone());
    let key = |name: &str| s.block_on(styleforge_server::create_key(&cfg, name, KeyLimits::default())).unwrap().key;
    let (alice, bob) = (key("alice"), key("bob"));
    common::stats::preferences_validated_replaced_and_scored(&s, &alice, &bob);
    s.shutdown();
}
