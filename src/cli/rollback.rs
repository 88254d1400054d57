//! `sysup rollback [--root DIR] [NAME] [--to ID]`: back to a kept previous
//! base — a full apply of it, whose MANIFEST becomes the truth (files added
//! since are removed, config files handled as in apply). Run again after a
//! crash, it finishes that rollback rather than going back one more step.
//! The work is [`sysup::host::rollback`]; this file maps flags and prints
//! the report.

use sysup::format::name::{DistId, DistName};
use sysup::host::rollback::{rollback, RollbackOptions};

use super::args::{JsonArg, RootArg};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub host: RootArg,
    /// Dist name (default: world).
    pub name: Option<String>,
    /// The kept id to go back to (default: the newest kept one older than the installed).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub format: JsonArg,
    /// Kept bases per dist name after the rollback.
    #[arg(long)]
    pub keep: Option<usize>,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let opts = RollbackOptions {
        root: a.host.root,
        name: a.name.as_deref().map(str::parse::<DistName>).transpose()?,
        to: a.to.as_deref().map(str::parse::<DistId>).transpose()?,
        keep: a.keep,
    };
    let r = ui.with_progress(|progress| rollback(&opts, progress))?;
    if a.format.json {
        return super::print_json(&r);
    }
    super::apply::print_report(&r, ui.quiet)
}
