//! The formula weights and pictures of parity fixtures ([`styleforge_core::weights::formula`];
//! `tests/fixtures/formula_weights.py` is the Python side).

#[allow(unused_imports)]
pub use styleforge_core::weights::formula::{picture, tensor, weights};
