//! Property-based API testing with schemathesis against `/v1/openapi.json`: every operation is
//! called with generated valid and invalid data, and every check (status codes documented,
//! response schemas, content types, no server errors, invalid data rejected, valid data
//! accepted) must pass. schemathesis is installed by `scripts/install-test-tools.sh`.


use std::path::PathBuf;
use std::process::Command;

use crate::common::{TestServer, config, models_home};

fn schemathesis() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let st = root.join(".tools/py/bin/st");
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run scripts/install-test-tools.sh (.ci/run does)",
        st.display()
    );
    st
}

#[test]
fn openapi_contract_holds_under_generated_requests() {
    let st = schemathesis();
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(models_home(), data.path()));
    let spec = server.url("/v1/openapi.json");
    let config_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    // schemathesis keeps a cache folder in its working directory.
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(&st)
        .current_dir(work.path())
        .arg("--config-file")
        .arg(&config_file)
        // Every built-in check is on by default (`--checks all` would override the per-operation
        // settings in schemathesis.toml).
        .args(["run", &spec, "--max-examples", "100", "--seed", "1"])
        .args(["--request-timeout", "60", "--no-color"])
        .output()
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = {
        let lines: Vec<&str> = stdout.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    eprintln!("{tail}");
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // A run that tested nothing would also exit 0: make sure operations were exercised.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis did not report any tested operation:\n{stdout}"
    );
    server.shutdown();
}
