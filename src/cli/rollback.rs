//! `sysup rollback [--root DIR] [NAME] [--to ID]`: back to a kept previous
//! base — a full apply of it, whose MANIFEST becomes the truth (files added
//! since are removed, config files handled as in apply). Run again after a
//! crash, it finishes that rollback rather than going back one more step.
//! The work is [`sysup::host::rollback`]; this file maps flags and prints
//! the report.

use std::path::PathBuf;

use sysup::format::name::{DistId, DistName};
use sysup::host::rollback::{rollback, RollbackOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root to act on (default: this system).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Dist name (default: world).
    pub name: Option<String>,
    /// The kept id to go back to (default: the newest kept one older than the installed).
    #[arg(long)]
    pub to: Option<String>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Kept bases per dist name after the rollback.
    #[arg(long)]
    pub keep: Option<usize>,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let opts = RollbackOptions {
        root: a.root,
        name: a.name.as_deref().map(str::parse::<DistName>).transpose()?,
        to: a.to.as_deref().map(str::parse::<DistId>).transpose()?,
        keep: a.keep,
    };
    let r = ui.with_progress(|progress| rollback(&opts, progress))?;
    if a.json {
        return super::print_json(&r);
    }
    super::apply::print_report(&r, ui.quiet)
}
