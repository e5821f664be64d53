//! Locating the shared test data and reference weights (`../shared` beside the checkout), used by
//! tests and benchmarks. `STYLEFORGE_SHARED` overrides the path; nothing there is ever shipped.

use std::path::PathBuf;

/// The shared data directory: `$STYLEFORGE_SHARED`, else `shared/` beside the workspace root.
pub fn dir() -> PathBuf {
    if let Some(p) = std::env::var_os("STYLEFORGE_SHARED") {
        return PathBuf::from(p);
    }
    // crates/styleforge-core -> workspace root -> its parent
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// A path inside the shared directory; panics with a clear message when it is missing
/// (tests and benchmarks need the reference data and must not pass without it).
pub fn path(rel: &str) -> PathBuf {
    let p = dir().join(rel);
    assert!(
        p.exists(),
        "shared data {} not found: put the shared directory beside the checkout or set STYLEFORGE_SHARED",
        p.display()
    );
    p
}
