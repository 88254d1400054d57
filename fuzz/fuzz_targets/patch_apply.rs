//! cargo-fuzz target `patch_apply`: see `sysup_fuzz::patch` for the input layout
//! and the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysup_fuzz::patch::run(data));
