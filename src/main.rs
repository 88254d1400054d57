//! The `sysup` binary: parses the command line and hands over to the library.
//! All logic lives in `sysup::cli` and below.

fn main() {
    std::process::exit(sysup::cli::main());
}
