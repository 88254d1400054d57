//! `sysup config resolve [--root DIR] PATH --theirs|--ours|--merged FILE
//! [--json]`: settle a config file an apply kept beside its new version
//! (docs/config-merge.md). The work is [`sysup::host::conffile::resolve`];
//! this file maps flags and prints what it did.

use std::path::PathBuf;

use sysup::host::conffile::resolve::{resolve, Choice, Resolved};

use super::args::{JsonArg, RootArg};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Settle a kept config file: install the new version, keep yours, or
    /// install an edited merge; removes PATH.sysupnew and PATH.sysupmerge.
    Resolve(ResolveArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("take").required(true).args(["theirs", "ours", "merged"])))]
pub struct ResolveArgs {
    #[command(flatten)]
    pub host: RootArg,
    /// The config file, relative to the root (or absolute under it).
    pub path: String,
    /// Install the new dist's version (PATH.sysupnew).
    #[arg(long)]
    pub theirs: bool,
    /// Keep the installed file as it is.
    #[arg(long)]
    pub ours: bool,
    /// Install this edited merge (e.g. PATH.sysupmerge without its conflict markers).
    #[arg(long, value_name = "FILE")]
    pub merged: Option<PathBuf>,
    #[command(flatten)]
    pub format: JsonArg,
}

pub fn run(a: Args) -> sysup::Result<()> {
    match a.command {
        ConfigCommand::Resolve(r) => run_resolve(r),
    }
}

fn run_resolve(a: ResolveArgs) -> sysup::Result<()> {
    let choice = match (a.theirs, a.ours, a.merged) {
        (true, _, _) => Choice::Theirs,
        (_, true, _) => Choice::Ours,
        (_, _, Some(f)) => Choice::Merged(f),
        _ => unreachable!("clap requires one of them"),
    };
    let r = resolve(&a.host.root, &a.path, &choice)?;
    if a.format.json {
        return super::print_json(&r);
    }
    print(&r)
}

fn print(r: &Resolved) -> sysup::Result<()> {
    let what = match r.took {
        "theirs" => "installed the new version of",
        "merged" => "installed the edited merge as",
        _ => "kept the installed",
    };
    try_outln!("{what} {} ({}) in {}", r.path, r.dist, r.root.display())?;
    for p in &r.removed {
        try_outln!("  removed    {p}")?;
    }
    Ok(())
}
