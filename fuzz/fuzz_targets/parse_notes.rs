//! cargo-fuzz target `parse_notes`: see `fuzz/checks.rs` for the property it checks.
#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::parse_notes(data));
