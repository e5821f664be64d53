//! safetensors bytes (`Weights::from_safetensors_bytes`: float32, float16, bfloat16), then
//! model-kind detection and building the network on the CPU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use styleforge_core::library::kind;
use styleforge_core::weights::Weights;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = Weights::from_safetensors_bytes(data) {
        for t in w.tensors.values() {
            assert_eq!(t.shape.iter().product::<usize>(), t.data.len());
        }
        let _ = kind::validate(&w);
    }
});
