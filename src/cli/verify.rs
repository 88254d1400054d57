//! `sysup verify [--root DIR] [--json] [--extras] [--repair]`: installed
//! files against MANIFEST; exit 0 when clean, 1 on drift (shipped content
//! modified or missing — the extended attributes the dist shipped and a
//! capability it did not grant included) or
//! when nothing is installed. Config edits are listed apart; files no dist
//! ships are listed with `--extras` (always in `--json`) and are never
//! drift. `--repair` re-applies the installed base (the same code path as
//! `sysup apply` of the installed dist).

use std::path::Path;

use sysup::error::Error;
use sysup::host::pending::pending;
use sysup::host::state::State;
use sysup::host::verify::{verify_root, Damage, Findings};

use super::args::HostArgs;
use super::progress::Ui;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub common: HostArgs,
    /// Also list files no dist ships (in directories a dist ships content
    /// in); they are never drift.
    #[arg(long, conflicts_with = "repair")]
    pub extras: bool,
    /// Restore what differs from the installed base.
    #[arg(long)]
    pub repair: bool,
}

/// The refusal when nothing is installed in `root`.
fn nothing(root: &Path) -> Error {
    Error::Refused(format!(
        "nothing is installed in {}: there is nothing to verify (is this the right --root?)",
        root.display()
    ))
}

pub fn run(a: Args, ui: &Ui) -> sysup::Result<()> {
    let root = &a.common.host.root;
    // Reading never writes: no state directory is made where none is.
    let state = State::open_existing(root)?.ok_or_else(|| nothing(root))?;
    if a.repair {
        return repair(&state, root, a.common.format.json, ui);
    }
    // A pending apply is named first. Past its commit point (or running)
    // the tree is between two ids: comparing it with the old one would list
    // every file the apply already changed, so verify waits for it.
    if let Some(p) = pending(&state, root)? {
        if p.committed || p.running.is_some() {
            return Err(Error::Refused(format!(
                "{}; verify compares with what is installed once it is done{}",
                p.describe(),
                if p.running.is_none() {
                    " (or run `sysup verify --repair`, which finishes it first)"
                } else {
                    ""
                }
            )));
        }
        // Staging only: the live tree is still the installed one.
        if a.common.format.json {
            eprintln!("note: {}", p.describe());
        } else {
            outln!("note: {}", p.describe());
        }
    }
    let findings = ui.with_progress(|progress| verify_root(&state, progress))?;
    if findings.is_empty() {
        return Err(nothing(root));
    }
    if a.common.format.json {
        super::print_json(&findings)?;
    } else {
        print_findings(&findings, a.extras, ui.quiet);
    }
    if findings.iter().any(|f| f.drifted()) {
        let n: usize = findings
            .iter()
            .map(|f| f.modified.len() + f.missing.len())
            .sum();
        return Err(Error::Refused(format!(
            "{n} entries differ from what is installed; `sysup verify --repair` restores them"
        )));
    }
    Ok(())
}

/// `--repair`: re-apply each installed base, under one lock, and print the
/// reports as `sysup apply` does.
fn repair(state: &State, root: &Path, json: bool, ui: &Ui) -> sysup::Result<()> {
    let reports =
        ui.with_progress(|progress| sysup::host::verify::repair(state, root, progress))?;
    if reports.is_empty() {
        return Err(nothing(root));
    }
    if json {
        return super::print_json(&reports);
    }
    for r in &reports {
        super::apply::print_report(r, ui.quiet)?;
    }
    Ok(())
}

/// The human report of a verify. `quiet`: only the drift itself (nothing
/// at all when the tree is clean).
fn print_findings(findings: &[Findings], extras: bool, quiet: bool) {
    for f in findings {
        let id = f.id.as_ref().map(ToString::to_string).unwrap_or_default();
        if !quiet {
            outln!(
                "verify {id}: {} entries checked, {}",
                f.checked,
                if f.drifted() { "drift found" } else { "clean" }
            );
        }
        let pad = if quiet { "" } else { "  " };
        for d in &f.modified {
            outln!("{pad}modified  {} ({})", d.path, what_differs(d));
        }
        for p in &f.missing {
            outln!("{pad}missing   {p}");
        }
        if quiet {
            continue;
        }
        for p in &f.config_modified {
            outln!("  config    {p} (modified locally; not damage)");
        }
        if extras {
            for p in &f.extra {
                outln!("  extra     {p} (shipped by no dist; not damage)");
            }
        } else if !f.extra.is_empty() {
            outln!(
                "  {} file{} shipped by no dist (not damage; --extras lists them)",
                f.extra.len(),
                if f.extra.len() == 1 { "" } else { "s" }
            );
        }
    }
}

/// What differs about one entry, for people: the kinds, the extended
/// attributes by name (`xattr security.capability added`).
fn what_differs(d: &Damage) -> String {
    d.what
        .iter()
        .map(|&w| match w {
            "xattr" => format!(
                "xattr {}",
                d.xattrs
                    .iter()
                    .map(|(k, how)| format!("{k} {how}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            w => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
