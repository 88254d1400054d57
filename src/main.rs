//! The `sysup` binary: parses the command line and hands over to the library.
//! All logic lives in `sysup::cli` and below.

fn main() {
    // First, before any thread exists: Ctrl-C and friends are taken on a
    // thread of their own, which says where the work stopped.
    sysup::interrupt::install();
    // Test builds only: the fault tests configure failpoints by environment.
    sysup::host::checkpoint::failpoints_from_env();
    std::process::exit(sysup::cli::main());
}
