//! `sysup apply [--root DIR] [--dry-run] [--json] [-v] FILE...`: install a
//! dist or a chain of patches onto a root; safe to run again after any
//! interruption. `--dry-run` reports what the apply would do, path by path
//! (`-v` prints the paths), and changes nothing. After an apply, what
//! still runs old code: processes to restart, and whether to reboot.

use std::path::PathBuf;

use super::args::JsonArg;
use super::progress::Ui;
use sysup::host::apply::{apply, ApplyOptions, ApplyReport};
use sysup::host::restart::Restart;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root to update (default: this system).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Check and stream everything, change nothing; report what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Also list every path added, changed and removed.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub format: JsonArg,
    /// Kept bases per dist name after the apply.
    #[arg(long)]
    pub keep: Option<usize>,
    /// A dist (full install), or one or more patches applied as a chain, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// The human report of an apply (also of rollback and repair): a headline,
/// then aligned details. `quiet` keeps the headline and what needs the
/// admin's attention (config files kept beside their new version, obsolete
/// files left in place).
pub(crate) fn print_report(r: &ApplyReport, quiet: bool) -> sysup::Result<()> {
    if let Some(f) = &r.finished_interrupted {
        try_outln!("finished an interrupted apply to {f}")?;
    }
    for n in &r.notes {
        try_outln!("note: {n}")?;
    }
    if r.action == "resume" {
        try_outln!("{} is installed in {}", r.to, r.root.display())?;
        if !r.removed.is_empty() {
            let n = r.removed.len();
            let s = if n == 1 { "" } else { "s" };
            try_outln!("  removed      {n} path{s} no longer shipped")?;
        }
        print_config(r)?;
        for k in &r.kept {
            try_outln!("  not removed  {k}")?;
        }
        return print_restart(r.restart.as_ref(), "  ", quiet);
    }
    let what = if r.dry_run { "would " } else { "" };
    match &r.from {
        Some(f) if f != &r.to => {
            try_outln!("{what}{} {f} → {} in {}", r.action, r.to, r.root.display())?
        }
        _ => try_outln!("{what}{} {} in {}", r.action, r.to, r.root.display())?,
    }
    print_config(r)?;
    if let Some(why) = &r.upgrade_skipped {
        try_outln!("  warning: {why}")?;
    }
    for k in &r.kept {
        try_outln!("  not removed  {k}")?;
    }
    if quiet {
        return print_restart(r.restart.as_ref(), "  ", true);
    }
    let c = &r.counts;
    try_outln!(
        "  files        {} changed ({} repaired), {} unchanged, {} removed",
        c.changed,
        c.repaired,
        c.unchanged,
        c.removed,
    )?;
    try_outln!(
        "  written      {}",
        sysup::util::fsutil::human_size(c.bytes_written)
    )?;
    if r.upgrade_ran {
        try_outln!("  upgrade      ran the dist's upgrade step")?;
    }
    if !r.pruned.is_empty() {
        try_outln!("  pruned       {}", r.pruned.join(", "))?;
    }
    print_restart(r.restart.as_ref(), "  ", false)
}

/// What needs a reboot or a restart (also with `--quiet`: it needs the
/// admin), then, unless `quiet`, what could not be checked; each line led
/// by `indent`; nothing when nothing does. Shared by the apply's report
/// and `sysup status`.
pub(crate) fn print_restart(r: Option<&Restart>, indent: &str, quiet: bool) -> sysup::Result<()> {
    let Some(r) = r else { return Ok(()) };
    for why in &r.reboot_reasons {
        try_outln!("{indent}reboot       needed: {why}")?;
    }
    for p in &r.processes {
        let unit = p
            .unit
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default();
        try_outln!(
            "{indent}restart      pid {} {}{unit}: {}",
            p.pid,
            p.comm,
            p.files.join(", ")
        )?;
    }
    for n in r.notes.iter().filter(|_| !quiet) {
        try_outln!("{indent}restart scan: {n}")?;
    }
    Ok(())
}

/// The config files merged, and those kept beside their new version (and
/// a conflicted merge): what needs, or may interest, the admin.
fn print_config(r: &ApplyReport) -> sysup::Result<()> {
    for p in &r.config_merged {
        try_outln!("  config merged: {p} (modified locally and by the dist; both kept)")?;
    }
    for p in &r.config_kept {
        if r.config_conflicted.contains(p) {
            try_outln!(
                "  config kept: {p} (modified locally; new version in {p}.sysupnew, merge with conflicts in {p}.sysupmerge)"
            )?;
        } else {
            try_outln!("  config kept: {p} (modified locally; new version in {p}.sysupnew)")?;
        }
    }
    Ok(())
}

/// `-v`: every path the apply added, changed or removed (or would), one a
/// line. Kept paths and config files are in [`print_report`] already.
pub(crate) fn print_paths(r: &ApplyReport) -> sysup::Result<()> {
    let lists = [
        ("added", &r.added),
        ("changed", &r.changed),
        ("removed", &r.removed),
    ];
    for (what, paths) in lists {
        for p in paths {
            try_outln!("  {what:<12} {p}")?;
        }
    }
    Ok(())
}

pub fn run(a: Args, ui: &Ui) -> sysup::Result<()> {
    let r = ui.with_progress(|progress| {
        apply(&ApplyOptions {
            root: a.root,
            files: a.files,
            dry_run: a.dry_run,
            keep: a.keep,
            progress: progress.clone(),
            ..Default::default()
        })
    })?;
    if a.format.json {
        return super::print_json(&r);
    }
    print_report(&r, ui.quiet)?;
    if a.verbose {
        print_paths(&r)?;
    }
    Ok(())
}
