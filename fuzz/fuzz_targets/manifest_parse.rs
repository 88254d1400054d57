//! cargo-fuzz target `manifest_parse`: see `sysup_fuzz::manifest` for the input layout
//! and the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysup_fuzz::manifest::run(data));
