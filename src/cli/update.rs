//! `sysup update [--root DIR] --mirror URL [--to ID] [--pubkey FILE]
//! [--download-only | --dry-run] [--allow-downgrade] [--json] [-v]`: fetch
//! the cheapest verified chain from a mirror and apply it (`--dry-run`: say
//! what would be fetched and installed). The work is
//! [`sysup::mirror::update`]; this file maps flags and prints the report. Download
//! and apply progress is drawn by [`super::progress`] (on a terminal only).

use std::path::PathBuf;

use sysup::format::name::DistId;
use sysup::mirror::update::{self, UpdateOptions, UpdateReport};

use super::args::JsonArg;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root to update.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Base URL of the mirror (default: `url` in the [mirror] table of <root>/etc/sysup.conf).
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Update to this id (default: every installed name to its newest).
    #[arg(long, value_name = "ID")]
    pub to: Option<String>,
    /// minisign public key the INDEX must be signed with (default: from
    /// sysup.conf, else <root>/etc/sysup/minisign.pub).
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
    /// Download and verify, but do not apply.
    #[arg(long)]
    pub download_only: bool,
    /// Say what would be downloaded (files, bytes) and installed; fetch,
    /// record and change nothing. (`--download-only`, then `sysup apply
    /// --dry-run` of the downloaded files, lists the paths that would change.)
    #[arg(long, conflicts_with = "download_only")]
    pub dry_run: bool,
    /// Also list every path the apply added, changed and removed.
    #[arg(short, long)]
    pub verbose: bool,
    /// Accept an INDEX older (lower serial) than the last one this host accepted.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Retries per file after the first attempt (default 3).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Seconds a connection or a read may stall (default 10 to connect, 30 per read).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub format: JsonArg,
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let to = a.to.as_deref().map(str::parse::<DistId>).transpose()?;
    let opts = UpdateOptions {
        root: a.root,
        mirror: a.mirror,
        to,
        pubkey: a.pubkey,
        download_only: a.download_only,
        dry_run: a.dry_run,
        allow_downgrade: a.allow_downgrade,
        retries: a.retries,
        timeout: a.timeout,
        backoff: None,
    };
    let r = ui.with_progress(|progress| update::update(&opts, progress))?;
    if a.format.json {
        return super::print_json(&r);
    }
    print_report(&r, a.verbose, ui.quiet)
}

/// The human report of an update: per name what was planned, the bytes
/// fetched, and each apply as `sysup apply` reports it (`verbose`: with
/// every path).
fn print_report(r: &UpdateReport, verbose: bool, quiet: bool) -> sysup::Result<()> {
    if let Some(f) = &r.finished_interrupted {
        outln!("finished an interrupted apply to {f}");
    }
    // --quiet: the per-name lines and the result, not the mirror and byte counts.
    if !quiet {
        outln!("mirror {} (INDEX serial {})", r.mirror, r.serial);
    }
    for p in &r.plans {
        let from = p
            .installed
            .as_ref()
            .map_or("nothing".to_string(), |i| i.to_string());
        match p.how {
            "up-to-date" => outln!("{}: {from} is up to date", p.name),
            "not-on-mirror" => outln!("{}: the mirror has nothing for it", p.name),
            how => outln!(
                "{}: {from} -> {} by {} ({} file{}, {} bytes{})",
                p.name,
                p.target,
                how,
                p.steps.len(),
                if p.steps.len() == 1 { "" } else { "s" },
                p.bytes,
                p.dist_size
                    .filter(|_| how == "patches")
                    .map_or(String::new(), |d| format!("; full dist {d} bytes")),
            ),
        }
    }
    if r.dry_run {
        if !r.downloads.is_empty() {
            let here = r.downloads.iter().filter(|d| d.reused).count();
            outln!(
                "would fetch {} bytes ({} file{} already here)",
                r.fetched_bytes,
                here,
                if here == 1 { " is" } else { "s are" }
            );
        }
        if r.result == "would-apply" {
            outln!(
                "dry run: nothing fetched or applied (--download-only, then `sysup apply \
                 --dry-run` of the files, lists the paths that would change)"
            );
        }
        return Ok(());
    }
    if !r.downloads.is_empty() && !quiet {
        let reused = r.downloads.iter().filter(|d| d.reused).count();
        outln!(
            "fetched {} bytes ({} file{} already here)",
            r.fetched_bytes,
            reused,
            if reused == 1 { " was" } else { "s were" }
        );
    }
    if r.result == "downloaded" {
        outln!("downloaded and verified; not applied (--download-only)");
    }
    // Each apply as `sysup apply` reports it: its result line, and under
    // --quiet too what needs the admin (config files kept beside a
    // `.sysupnew`, obsolete files not removed).
    for applied in &r.applied {
        super::apply::print_report(applied, quiet)?;
        if verbose {
            super::apply::print_paths(applied)?;
        }
    }
    for a in &r.applied {
        if let Some(why) = &a.upgrade_skipped {
            outln!("{}: warning: {why}", a.to);
        }
    }
    Ok(())
}
