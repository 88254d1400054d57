//! cargo-fuzz target `dist_stage`: see `sysup_fuzz::dist` for the input
//! layout, the sandbox and the oracle. One sandbox per process.
#![no_main]

use std::sync::OnceLock;

static SANDBOX: OnceLock<sysup_fuzz::dist::Sandbox> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let sandbox = SANDBOX.get_or_init(sysup_fuzz::dist::Sandbox::new);
    sysup_fuzz::dist::run(sandbox, data)
});
