//! The `sysup` command line: clap definitions, dispatch, and the uniform way
//! errors are shown (`error: …`, `Caused by: …` lines, `hint: …`).
//!
//! Invariants: exit 0 on success, 1 on an operational failure, 2 on a usage
//! error (clap's own exit code); `--json` prints exactly one JSON document on
//! stdout and nothing else there (progress bars go to stderr, see
//! [`progress`]); `--quiet` is global and leaves only the essential human
//! output (docs/decisions.md, "`--quiet` keeps what needs the admin"). Each subcommand lives in its
//! own file.

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use sysup::error::Error;

/// `println!` for command output. A reader that went away (a closed pipe, as
/// in `sysup history | head -1`) is a normal end of the output: the rest is
/// dropped without a word and the command ends with the exit code its result
/// gives. Any other failed write (a full disk behind `>`) is an error, exit 1.
/// By then the command's work is done: output is printed last.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out_line(format_args!($($arg)*))
    };
}

/// [`outln!`] that returns the failed write as an error instead of exiting:
/// for output printed while something must still be undone on the way out
/// (`sysup demo`'s temporary directory), and for helpers such callers share.
macro_rules! try_outln {
    ($($arg:tt)*) => {
        $crate::cli::try_out_line(format_args!($($arg)*))
    };
}

/// Write one line of command output, or report a failed write and exit 1.
pub fn out_line(args: std::fmt::Arguments<'_>) {
    if let Err(e) = try_out_line(args) {
        report(&e);
        std::process::exit(EXIT_FAILURE);
    }
}

/// Set once stdout's reader has gone: later output is dropped.
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run `write` on stdout unless its reader has gone. A broken pipe marks
/// stdout gone and is not an error; any other failure is an error naming
/// stdout.
fn write_stdout(
    write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> sysup::Result<()> {
    use std::sync::atomic::Ordering;
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    match write(&mut o).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_GONE.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r.map_err(|e| Error::io("write", std::path::Path::new("<stdout>"), e)),
    }
}

/// Write one line of command output; a failed write (other than a reader
/// that went away) is an error naming stdout.
pub fn try_out_line(args: std::fmt::Arguments<'_>) -> sysup::Result<()> {
    write_stdout(|o| o.write_fmt(args).and_then(|()| o.write_all(b"\n")))
}

mod apply;
mod args;
mod build;
mod clean;
mod completions;
mod config;
mod demo;
mod diff;
pub mod fixtures;
mod history;
mod info;
mod man;
mod patch;
pub mod progress;
mod publish;
mod rollback;
mod status;
mod update;
mod verify;

/// Exit code for an operational failure (a usage error is clap's own, 2).
pub const EXIT_FAILURE: i32 = 1;

/// sysup: atomic binary-diff system updates.
#[derive(Parser, Debug)]
#[command(name = "sysup", version, about, propagate_version = true)]
pub struct Cli {
    /// No progress bars; print only the one-line result, what needs the
    /// admin's attention, warnings and errors.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of docs/design.md §7.
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
    /// Settle config files kept beside their new version (host).
    Config(config::Args),
    /// Run the end-to-end demo in a temporary directory.
    Demo(demo::Args),
    /// Write the man pages (sysup.1, sysup-<command>.1).
    Man(man::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
}

/// The clap definition of the whole command line, as `--help` shows it:
/// each command with its examples ([`man::examples`]).
pub fn command() -> clap::Command {
    let mut cmd = Cli::command().after_long_help(man::help_examples(""));
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        let examples = man::help_examples(&name);
        cmd = cmd.mut_subcommand(name, |s| s.after_long_help(examples));
    }
    cmd
}

/// The clap definition without the examples: the man pages render those
/// in sections of their own.
pub(crate) fn bare_command() -> clap::Command {
    Cli::command()
}

/// Parse the command line, run it, and return the process exit code.
pub fn main() -> i32 {
    use clap::FromArgMatches;
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let ui = &progress::Ui::new(cli.quiet);
    let result = match cli.command {
        Command::Build(a) => build::run(a, ui),
        Command::Diff(a) => diff::run(a, ui),
        Command::Patch(a) => patch::run(a, ui),
        Command::Info(a) => info::run(a),
        Command::Publish(a) => publish::run(a, ui),
        Command::Update(a) => update::run(a, ui),
        Command::Apply(a) => apply::run(a, ui),
        Command::Status(a) => status::run(a),
        Command::Verify(a) => verify::run(a, ui),
        Command::History(a) => history::run(a),
        Command::Rollback(a) => rollback::run(a, ui),
        Command::Clean(a) => clean::run(a, ui),
        Command::Config(a) => config::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Man(a) => man::run(a, ui),
        Command::Completions(a) => completions::run(a),
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

/// Print bytes made whole beforehand (a man page, a completion script) on
/// stdout, with [`outln!`]'s rules for a failed write.
pub(crate) fn print_bytes(bytes: &[u8]) -> sysup::Result<()> {
    write_stdout(|o| o.write_all(bytes))
}

/// Print one JSON document on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> sysup::Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::io("write JSON to", PathBuf::from("<stdout>"), e.into()))?;
    write_stdout(|o| {
        o.write_all(text.as_bytes())
            .and_then(|()| o.write_all(b"\n"))
    })
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS` (UTC), for human output.
pub(crate) fn utc_time(secs: i64) -> String {
    sysup::util::time::utc(secs)
}

/// Lay out rows as aligned columns, two spaces apart: each column as wide as
/// its widest cell, right-aligned where `right` says so; the last column is
/// not padded. Returns the lines.
pub(crate) fn table(rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = width[c].saturating_sub(cell.chars().count());
                if c + 1 == r.len() && !right.get(c).copied().unwrap_or(false) {
                    line.push_str(cell);
                } else if right.get(c).copied().unwrap_or(false) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_time_is_iso_like() {
        assert_eq!(super::utc_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::utc_time(0), "1970-01-01 00:00:00");
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec!["a".to_string(), "1".into(), "x".into()],
            vec!["bbb".to_string(), "100".into(), "yy".into()],
        ];
        assert_eq!(
            super::table(&rows, &[false, true, false]),
            ["a      1  x", "bbb  100  yy"]
        );
    }
}
