//! `styleforge keys`: secret and publishable keys from the command line.

use std::process::{Command, Output};

fn keys(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_styleforge"))
        .arg("keys")
        .args(args)
        .arg("--home")
        .arg(home)
        .env_remove("STYLEFORGE_CONFIG")
        .env_remove("STYLEFORGE_DATA_DIR")
        .env_remove("STYLEFORGE_DATABASE_URL")
        .output()
        .expect("runs")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn publishable_keys_are_created_with_their_origins_and_listed() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let pk = json(&keys(
        h,
        &[
            "create",
            "--name",
            "example site",
            "--publishable",
            "--origin",
            "https://Example.com/,http://localhost:3000",
            "--json",
        ],
    ));
    assert!(pk["key"].as_str().unwrap().starts_with("pk_"), "{pk}");
    assert_eq!(pk["kind"], "publishable");
    assert_eq!(
        pk["origins"],
        serde_json::json!(["https://example.com", "http://localhost:3000"])
    );

    let sk = json(&keys(h, &["create", "alice", "--json"]));
    assert!(sk["key"].as_str().unwrap().starts_with("sf_"));
    assert_eq!(sk["kind"], "secret");

    // An origin without --publishable, --publishable without an origin, a bad origin: refused.
    for args in [
        &["create", "x", "--origin", "https://example.com"][..],
        &["create", "x", "--publishable"][..],
        &["create", "x", "--publishable", "--origin", "example.com"][..],
    ] {
        let out = keys(h, args);
        assert!(!out.status.success(), "{args:?} is refused");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }

    let list = json(&keys(h, &["list", "--json"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let site = list.iter().find(|k| k["name"] == "example site").unwrap();
    assert_eq!(site["kind"], "publishable");
    assert_eq!(site["origins"].as_array().unwrap().len(), 2);

    let table = keys(h, &["list"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("publishable") && table.contains("https://example.com"),
        "{table}"
    );
}
