//! The `sysup` binary: the command line ([`cli`]: clap definitions, progress
//! bars, man pages, completions, the demo and its fixture trees) over the
//! `sysup` library, where every operation lives.

mod cli;

fn main() {
    // First, before any thread exists: Ctrl-C and friends are taken on a
    // thread of their own, which says where the work stopped.
    sysup::util::interrupt::install();
    // Test builds only: the fault tests configure failpoints by environment.
    sysup::host::checkpoint::failpoints_from_env();
    std::process::exit(cli::main());
}
