//! `sysup clean [--root DIR] [--keep N] [--min-age DAYS] [--dry-run]`: prune
//! kept bases (never the installed one, never one younger than min-age) and
//! stale downloads. Defaults come from `[clean]` in `<root>/etc/sysup.conf`
//! (`keep`, `min_age_days`), else keep 2, min age 0.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use serde::Deserialize;

use sysup::error::{Error, IoContext};
use sysup::host::cleanup::prune_bases;
use sysup::host::history::{self, Event};
use sysup::host::state::State;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root to act on (default: this system).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Kept bases per dist name, the installed one included (default: `keep` in
    /// the [clean] table of etc/sysup.conf, else 2).
    #[arg(long)]
    pub keep: Option<usize>,
    /// Never prune a base younger than this many days (default: `min_age_days`
    /// in the [clean] table of etc/sysup.conf, else 0).
    #[arg(long, value_name = "DAYS")]
    pub min_age: Option<u64>,
    /// Say what would be pruned; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Deserialize, Default)]
struct CleanConf {
    keep: Option<usize>,
    min_age_days: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Conf {
    #[serde(default)]
    clean: CleanConf,
}

fn conf(root: &std::path::Path) -> sysup::Result<CleanConf> {
    let p = root.join("etc/sysup.conf");
    match std::fs::read_to_string(&p) {
        Ok(t) => {
            // Other tables ([mirror], …) belong to other commands.
            let v: toml::Table = toml::from_str(&t).map_err(|e| Error::Metadata {
                what: "config",
                path: p.clone(),
                reason: e.to_string(),
            })?;
            let c: Conf = toml::Value::Table(v)
                .try_into()
                .map_err(|e: toml::de::Error| Error::Metadata {
                    what: "config",
                    path: p,
                    reason: e.to_string(),
                })?;
            Ok(c.clean)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CleanConf::default()),
        Err(e) => Err(Error::io("read", &p, e)),
    }
}

pub fn run(a: Args, ui: &super::progress::Ui) -> sysup::Result<()> {
    let state = State::open(&a.root)?;
    let c = conf(state.root())?;
    let keep = a
        .keep
        .or(c.keep)
        .unwrap_or(sysup::host::apply::DEFAULT_KEEP)
        .max(1);
    let min_age = a.min_age.or(c.min_age_days).unwrap_or(0);
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
        for b in prune_bases(&state, name, installed.as_ref(), keep, min_age, a.dry_run)? {
            removed.push(b.path.display().to_string());
        }
    }
    // stale downloads: anything older than min-age (a fresh partial may be
    // resumed), reached through the download directory's descriptor
    let (dl, shown) = (state.download_fd(), state.download_dir());
    let now = history::now();
    for name in dl.list().ctx("list", &shown)? {
        let p = shown.join(std::ffi::OsStr::from_bytes(&name));
        let Some(st) = dl.stat(&name).ctx("stat", &p)? else {
            continue;
        };
        if now - st.mtime >= (min_age as i64) * 86_400 && st.is_file() {
            if !a.dry_run {
                dl.unlink(&name).ctx("remove", &p)?;
            }
            removed.push(p.display().to_string());
        }
    }
    if !a.dry_run {
        history::append(
            &state,
            &Event {
                time: now,
                removed: removed.len() as u64,
                ..Event::new("clean", String::new())
            },
        )?;
    }
    if a.json {
        return super::print_json(
            &serde_json::json!({ "dry_run": a.dry_run, "keep": keep, "min_age_days": min_age, "removed": removed }),
        );
    }
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
        for r in &removed {
            outln!("  {r}");
        }
    }
    Ok(())
}
