//! The arguments many commands share, each one clap struct that a command
//! takes with `#[command(flatten)]` where the flag stands in its `--help`:
//! [`RootArg`] (`--root DIR`), [`JsonArg`] (`--json`), and the two together,
//! [`HostArgs`].
//!
//! Invariant: a flattened struct renders exactly as the field it replaces
//! (name, value name, default, help), so `--help`, the man pages and the
//! completion scripts do not change with it.

use std::path::PathBuf;

/// `--root DIR`: the root a host command acts on, `/` unless given.
/// A command whose help says it otherwise sets the help with
/// `#[command(mut_arg("root", ...))]`.
#[derive(clap::Args, Debug)]
pub struct RootArg {
    /// The root to act on (default: this system).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
}

/// `--json`: one JSON document on stdout instead of the human output.
#[derive(clap::Args, Debug)]
pub struct JsonArg {
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// `--root DIR --json`, in that order: all that `status` and `history` take,
/// and the head of `verify`'s arguments.
#[derive(clap::Args, Debug)]
pub struct HostArgs {
    #[command(flatten)]
    pub host: RootArg,
    #[command(flatten)]
    pub format: JsonArg,
}
