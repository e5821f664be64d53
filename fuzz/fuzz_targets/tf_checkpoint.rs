//! TensorFlow checkpoints (`tf_checkpoint::from_bytes`: the `.index` table, its blocks, CRCs and
//! bundle entries, and the data shard they point into). The input is split at its first
//! `0xFF 0x00 0xFF 0x00` marker: index before, data after (all index when there is none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use styleforge_core::library::kind;
use styleforge_core::weights::tf_checkpoint;

const MARK: &[u8] = &[0xFF, 0x00, 0xFF, 0x00];

fuzz_target!(|data: &[u8]| {
    let (index, shard) = match data.windows(MARK.len()).position(|w| w == MARK) {
        Some(i) => (&data[..i], &data[i + MARK.len()..]),
        None => (data, &[][..]),
    };
    if let Ok(w) = tf_checkpoint::from_bytes(index, shard) {
        for t in w.tensors.values() {
            assert_eq!(t.shape.iter().product::<usize>(), t.data.len());
        }
        let _ = kind::validate(&w);
    }
});
