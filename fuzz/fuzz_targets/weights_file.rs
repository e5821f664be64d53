//! Weight files as `styleforge models import` reads them: `Weights::load` on a file chosen by
//! content (PyTorch zip and legacy pickle serialisations, safetensors), then model-kind
//! detection and building the network on the CPU (`library::kind::validate`), where wrong
//! shapes must be errors.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use styleforge_core::library::kind;
use styleforge_core::weights::Weights;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::Builder::new().suffix(".pth").tempfile_in(scratch()).expect("a scratch file");
    file.write_all(data).expect("writing the scratch file");
    file.flush().expect("flushing the scratch file");
    if let Ok(w) = Weights::load(file.path()) {
        for t in w.tensors.values() {
            assert_eq!(t.shape.iter().product::<usize>(), t.data.len());
        }
        let _ = kind::validate(&w);
    }
});

/// Memory-backed scratch space when there is one.
fn scratch() -> &'static std::path::Path {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() { shm } else { Box::leak(std::env::temp_dir().into_boxed_path()) }
}
