//! `sysup update [--root DIR] --mirror URL [--to ID] [--pubkey FILE]...
//! [--download-only | --dry-run | --check] [--allow-downgrade]
//! [--allow-expired] [--json] [-v]`: fetch the cheapest verified chain from
//! a mirror and apply it (`--dry-run`: say what would be fetched and
//! installed; `--check`: the same, one line per name, exit
//! [`EXIT_UPDATE_AVAILABLE`] when there is something to install, as
//! `dnf check-update` does). The work is [`sysup::mirror::update`]; this file
//! maps flags and prints the report. Download and apply progress is drawn
//! by [`super::progress`] (on a terminal only).

use std::path::PathBuf;

use sysup::format::name::DistId;
use sysup::mirror::update::{self, UpdateOptions, UpdateReport};

use super::args::JsonArg;

/// Exit code of `--check` when an update is available (`dnf check-update`'s).
pub const EXIT_UPDATE_AVAILABLE: i32 = 100;

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
    /// minisign public key the INDEX may be signed with; repeat it to trust
    /// several (default: pubkey and pubkeys from sysup.conf, else
    /// <root>/etc/sysup/minisign.pub). Keys the mirror's signed KEYS file
    /// announced are trusted too.
    #[arg(long, value_name = "FILE")]
    pub pubkey: Vec<PathBuf>,
    /// Download and verify, but do not apply.
    #[arg(long)]
    pub download_only: bool,
    /// Say what would be downloaded (files, bytes) and installed; fetch,
    /// record and change nothing. (`--download-only`, then `sysup apply
    /// --dry-run` of the downloaded files, lists the paths that would change.)
    #[arg(long, conflicts_with = "download_only")]
    pub dry_run: bool,
    /// Say what is available, one line per name, and exit 100 when there is
    /// an update, 0 when up to date, 1 on error (for monitoring); fetches
    /// and records nothing, as --dry-run (whose document --json prints).
    #[arg(long, conflicts_with = "download_only")]
    pub check: bool,
    /// Also list every path the apply added, changed and removed.
    #[arg(short, long)]
    pub verbose: bool,
    /// Accept an INDEX older (lower serial) than the last one this host accepted.
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Use an INDEX past the expiry its publisher wrote (an air-gapped site
    /// updating from an old copy); the output says it was used.
    #[arg(long)]
    pub allow_expired: bool,
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
        pubkeys: a.pubkey,
        download_only: a.download_only,
        dry_run: a.dry_run || a.check,
        allow_downgrade: a.allow_downgrade,
        allow_expired: a.allow_expired,
        retries: a.retries,
        timeout: a.timeout,
        backoff: None,
    };
    let r = ui.with_progress(|progress| update::update(&opts, progress))?;
    if a.format.json {
        super::print_json(&r)?;
    } else if a.check {
        print_check(&r)?;
    } else {
        print_report(&r, a.verbose, ui.quiet)?;
    }
    if a.check && r.result == "would-apply" {
        // Printed and flushed by now; nothing else is left to undo.
        std::process::exit(EXIT_UPDATE_AVAILABLE);
    }
    Ok(())
}

/// Trust facts the admin must see: keys accepted from the mirror's KEYS
/// file, an expired INDEX used under --allow-expired.
fn print_trust(r: &UpdateReport) {
    for k in &r.keys_accepted {
        let kept = k
            .path
            .as_ref()
            .map_or("not kept: dry run".to_string(), |p| {
                format!("kept in {}", p.display())
            });
        outln!(
            "accepted key {} from the mirror's KEYS, signed by trusted key {} ({kept})",
            k.key_id,
            k.signed_by
        );
    }
    if let (true, Some(e)) = (r.expired, r.index_expires) {
        outln!(
            "warning: the INDEX expired at {} UTC; used because of --allow-expired",
            update::utc(e)
        );
    }
}

/// A name's line when it needs nothing (`Err`), else what it is installed
/// at and how it would be updated, for the caller's own line.
fn plan_line(p: &update::Plan) -> Result<(String, &'static str), String> {
    let from = p
        .installed
        .as_ref()
        .map_or("nothing".to_string(), |i| i.to_string());
    match p.how {
        "up-to-date" => Err(format!("{}: {from} is up to date", p.name)),
        "not-on-mirror" => Err(format!("{}: the mirror has nothing for it", p.name)),
        how => Ok((from, how)),
    }
}

/// `--check`'s lines: per name, what is available and what it costs.
fn print_check(r: &UpdateReport) -> sysup::Result<()> {
    print_trust(r);
    for p in &r.plans {
        let (from, how) = match plan_line(p) {
            Ok(line) => line,
            Err(idle) => {
                outln!("{idle}");
                continue;
            }
        };
        let fetch: u64 = r
            .downloads
            .iter()
            .filter(|d| p.steps.iter().any(|s| s.file == d.file))
            .map(|d| d.fetched)
            .sum();
        outln!(
            "{}: {from} \u{2192} {} ({fetch} bytes to fetch, via {how})",
            p.name,
            p.target
        );
    }
    Ok(())
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
        let expires = r.index_expires.map_or(String::new(), |e| {
            format!(", expires {} UTC", update::utc(e))
        });
        outln!("mirror {} (INDEX serial {}{expires})", r.mirror, r.serial);
    }
    print_trust(r);
    for p in &r.plans {
        match plan_line(p) {
            Err(idle) => outln!("{idle}"),
            Ok((from, how)) => outln!(
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
