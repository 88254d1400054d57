//! cargo-fuzz target `index_verify`: see `sysup_fuzz::index` for the input layout
//! and the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysup_fuzz::index::run(data));
