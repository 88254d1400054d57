//! `sysup clean [--root DIR] [--keep N] [--min-age DAYS] [--dry-run]`: prune
//! kept bases (never the installed one, never one younger than min-age) and
//! stale downloads. The work is [`sysup::host::clean`] (defaults from
//! `[clean]` in `<root>/etc/sysup.conf`); this file maps flags and prints
//! the report.

use sysup::host::clean::{clean, CleanOptions};

use super::args::{JsonArg, RootArg};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub host: RootArg,
    /// Kept bases per dist name, the installed one included (default: `keep` in
    /// the [clean] table of etc/sysup.conf, else 2).
    #[arg(long)]
    pub keep: Option<usize>,
    /// Never prune a base younger than this many days (default: `min-age-days`
    /// in the [clean] table of etc/sysup.conf, else 0).
    #[arg(long, value_name = "DAYS")]
    pub min_age: Option<u64>,
    /// Say what would be pruned; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub format: JsonArg,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let r = clean(&CleanOptions {
        root: a.host.root,
        keep: a.keep,
        min_age_days: a.min_age,
        dry_run: a.dry_run,
    })?;
    if a.format.json {
        return super::print_json(&r);
    }
    let (removed, keep, min_age) = (&r.removed, r.keep, r.min_age_days);
    // A headline, then (unless --quiet) the files, one per line.
    let why = format!(
        "keep {keep}, min age {min_age} day{}",
        if min_age == 1 { "" } else { "s" }
    );
    match (removed.len(), a.dry_run) {
        (0, _) => outln!("nothing to remove ({why})"),
        (n, dry) => outln!(
            "{} {n} file{} ({why})",
            if dry { "would remove" } else { "removed" },
            if n == 1 { "" } else { "s" }
        ),
    }
    if !ui.quiet {
        for path in removed {
            outln!("  {path}");
        }
    }
    Ok(())
}
