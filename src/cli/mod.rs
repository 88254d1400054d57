//! The `sysup` command line: clap definitions, dispatch, and the uniform way
//! errors are shown (`error: …`, `Caused by: …` lines, `hint: …`).
//!
//! Invariants: exit 0 on success, 1 on an operational failure, 2 on a usage
//! error (clap's own exit code); `--json` prints exactly one JSON document on
//! stdout and nothing else there. Each subcommand lives in its own file.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Error;

mod apply;
mod build;
mod clean;
mod demo;
mod diff;
mod history;
mod info;
mod patch;
mod publish;
mod rollback;
mod status;
mod update;
mod verify;

/// Exit code for an operational failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for a usage error.
pub const EXIT_USAGE: i32 = 2;

/// sysup: atomic binary-diff system updates.
#[derive(Parser, Debug)]
#[command(name = "sysup", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of DESIGN §7.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a revision-named gzipped dist from a staged tree (build host).
    Build(build::Args),
    /// Make a binary patch between two dists of the same name (build host).
    Diff(diff::Args),
    /// Filter: old uncompressed tar on stdin, new tar on stdout.
    Patch(patch::Args),
    /// Print the header of a dist or patch without reading its body.
    Info(info::Args),
    /// Sign an INDEX of the dists and patches in a directory (build host).
    Publish(publish::Args),
    /// Fetch the cheapest verified chain from a mirror and apply it (host).
    Update(update::Args),
    /// Install a dist or a chain of patches onto a root (host).
    Apply(apply::Args),
    /// What is installed, kept, and pending (host).
    Status(status::Args),
    /// Check installed files against MANIFEST; exit 1 on drift (host).
    Verify(verify::Args),
    /// The audit log of applies, repairs, rollbacks and cleans (host).
    History(history::Args),
    /// Go back to a kept previous base (host).
    Rollback(rollback::Args),
    /// Prune kept bases and stale downloads (host).
    Clean(clean::Args),
    /// Run the end-to-end demo in a temporary directory.
    Demo(demo::Args),
}

/// Parse the command line, run it, and return the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(a) => build::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Patch(a) => patch::run(a),
        Command::Info(a) => info::run(a),
        Command::Publish(a) => publish::run(a),
        Command::Update(a) => update::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Status(a) => status::run(a),
        Command::Verify(a) => verify::run(a),
        Command::History(a) => history::run(a),
        Command::Rollback(a) => rollback::run(a),
        Command::Clean(a) => clean::run(a),
        Command::Demo(a) => demo::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            EXIT_FAILURE
        }
    }
}

/// Print an error with its cause chain and hint on stderr.
pub fn report(e: &Error) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = writeln!(err, "  Caused by: {s}");
        source = s.source();
    }
    if let Some(h) = e.hint() {
        let _ = writeln!(err, "hint: {h}");
    }
}

/// Print one JSON document on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> crate::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| Error::io("write JSON to", PathBuf::from("<stdout>"), e.into()))?;
    let _ = writeln!(out);
    Ok(())
}
