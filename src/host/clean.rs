//! `sysup clean`: prune kept bases (never the installed one, never one
//! younger than the minimum age, at least `keep` per dist name) and stale
//! downloads, and record it in the history. Defaults come from the `[clean]`
//! table of the host's configuration (`host::conf`): `keep`, else
//! [`DEFAULT_KEEP`]; `min_age_days`, else 0.
//!
//! Invariants: runs under the host lock; the download directory is reached
//! through its descriptor, so a link in its place leads nowhere; a dry run
//! removes and records nothing, and reports what a real run would remove.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::host::apply::DEFAULT_KEEP;
use crate::host::cleanup::prune_bases;
use crate::host::conf::HostConf;
use crate::host::history::{self, Event};
use crate::host::state::State;

/// What to clean (command-line values; `None` falls back to the config).
#[derive(Clone, Debug, Default)]
pub struct CleanOptions {
    pub root: PathBuf,
    /// Kept bases per dist name, the installed one included.
    pub keep: Option<usize>,
    /// Never prune a base (or a download) younger than this many days.
    pub min_age_days: Option<u64>,
    /// Say what would be removed; remove nothing.
    pub dry_run: bool,
}

/// What [`clean`] removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Serialize)]
pub struct CleanReport {
    pub dry_run: bool,
    /// The `keep` in force (at least 1).
    pub keep: usize,
    /// The minimum age in force, in days.
    pub min_age_days: u64,
    /// The removed files, by path: bases first, then downloads.
    pub removed: Vec<String>,
}

/// Prune the root's kept bases and stale downloads. See the module doc.
/// Writes: removes files in `bases/` and the download directory, appends a
/// history record (not in a dry run).
pub fn clean(opts: &CleanOptions) -> Result<CleanReport> {
    let state = State::open(&opts.root)?;
    let c = HostConf::load(state.root())?.clean;
    let keep = opts.keep.or(c.keep).unwrap_or(DEFAULT_KEEP).max(1);
    let min_age = opts.min_age_days.or(c.min_age_days).unwrap_or(0);
    let _lock = state.lock()?;
    let mut removed = Vec::new();
    let mut names: Vec<_> = state
        .installed_all()?
        .into_iter()
        .map(|i| (i.id.name.clone(), Some(i.id)))
        .collect();
    if names.is_empty() {
        names.push(("world".parse()?, None));
    }
    for (name, installed) in &names {
        for b in prune_bases(
            &state,
            name,
            installed.as_ref(),
            keep,
            min_age,
            opts.dry_run,
        )? {
            removed.push(b.path.display().to_string());
        }
    }
    let now = crate::util::time::unix_now();
    prune_downloads(&state, now, min_age, opts.dry_run, &mut removed)?;
    if !opts.dry_run {
        let event = Event {
            time: now,
            removed: removed.len() as u64,
            ..Event::new("clean", "")
        };
        history::append(&state, &event)?;
    }
    Ok(CleanReport {
        dry_run: opts.dry_run,
        keep,
        min_age_days: min_age,
        removed,
    })
}

/// Stale downloads: any file older than `min_age` days (a fresh partial may
/// still be resumed), reached through the download directory's descriptor;
/// each is added to `removed` by its path.
/// Writes: removes files in the download directory (unless `dry_run`).
fn prune_downloads(
    state: &State,
    now: i64,
    min_age: u64,
    dry_run: bool,
    removed: &mut Vec<String>,
) -> Result<()> {
    let (dl, shown) = (state.download_fd(), state.download_dir());
    for name in dl.list().ctx("list", &shown)? {
        let p = shown.join(std::ffi::OsStr::from_bytes(&name));
        let Some(st) = dl.stat(&name).ctx("stat", &p)? else {
            continue;
        };
        if now - st.mtime >= (min_age as i64) * 86_400 && st.is_file() {
            if !dry_run {
                dl.unlink(&name).ctx("remove", &p)?;
            }
            removed.push(p.display().to_string());
        }
    }
    Ok(())
}
