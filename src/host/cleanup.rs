//! Phase 6 of an apply, last: remove what the new dist no longer ships, run
//! the dist's own `upgrade` step, prune old bases.
//!
//! Invariants:
//! - obsolete paths are reached without following any symlink: if an old
//!   directory became a symlink (merged /usr), following it could delete a
//!   file the new dist just installed, so such a path is left alone;
//! - nothing of sysup's state directory, nor a directory on its way
//!   (`var`, `var/db`), is ever removed here;
//! - a path the new MANIFEST ships is never removed; an obsolete config
//!   file the admin modified, a directory that still holds files, and one
//!   that is a mount point, are kept and reported;
//! - nothing no dist shipped is removed: an aside (a directory the commit
//!   moved out of the way of a symlink or file) loses only what the plan's
//!   obsolete list ships, each reported by its old path; anything else in
//!   it stays, under the aside name, and is reported as kept (staging
//!   refused to start if there was any; this catches what came after);
//! - every directory something was removed from is fsynced before the
//!   journal is dropped;
//! - the upgrade step is the only external program an apply runs, and it
//!   runs here, after every file is in place; it must be idempotent, as a
//!   re-run after a crash runs it again — and a repair (same id) runs it
//!   too; `SYSUP_FROM` is the id being left (empty on a first install),
//!   `SYSUP_TO` the id installed, so a rollback runs the older dist's step
//!   with FROM the newer id;
//! - on the root `/` it runs with `/bin/sh`, cwd `/` and sysup's
//!   environment; under any other root it runs confined to it, as dpkg's
//!   `--root` runs maintainer scripts: chrooted into the root (the
//!   descriptor sysup opened, not its path again), the root's own
//!   `/bin/sh`, cwd `/`, an environment of `PATH` (fixed), `SYSUP_ROOT=/`,
//!   `SYSUP_FROM` and `SYSUP_TO` only — never a program of the host — and
//!   without the capabilities that leave a chroot or reach the host past
//!   the root's files (`upgrade::ESCAPE_CAPABILITIES`, dropped from the bounding
//!   set too, with `no_new_privs`): a root process can climb out of a bare
//!   chroot, not out of this one;
//! - a root with no `/bin/sh` it can run, or a sysup that may not chroot
//!   (not root), does not fail the cleanup (everything is installed, and a
//!   re-run could never succeed): the step is not run, and the apply
//!   reports why (human output, `--json`, history);
//! - pruning never removes the installed base, nor one younger than the
//!   minimum age;
//! - [`foretell`] walks the same code acting on nothing, before staging,
//!   with the tree as the commit will leave it: a dry run's `removed` and
//!   `kept` are the real cleanup's, from the one set of rules.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{Kind, Manifest};
use crate::format::name::{DistId, DistName};
use crate::host::checkpoint::{checkpoint, fault};
use crate::host::commit::aside_name;
use crate::host::plan::{join, split, Plan};
use crate::host::root::{Dir, Root};
use crate::host::state::{KeptBase, State};

mod upgrade;

use upgrade::run_upgrade;

/// What cleanup did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub removed: Vec<String>,
    /// Obsolete paths kept, with why.
    pub kept: Vec<String>,
    pub upgrade_ran: bool,
    /// Why the dist's upgrade step was not run (the root has no shell to
    /// run it with, or sysup may not chroot into it).
    pub upgrade_skipped: Option<String>,
    pub pruned: Vec<String>,
}

/// Open `rel`'s parent without following any symlink; `None` if some
/// component is missing or is not a real directory.
fn parent_nofollow(root: &Root, rel: &[u8]) -> Result<Option<(Dir, Vec<u8>)>> {
    let (parent, name) = split(rel);
    let mut d = root.dir().try_clone().ctx("open", root.path())?;
    if !parent.is_empty() {
        for comp in parent.split(|&c| c == b'/') {
            match d.stat(comp) {
                Ok(Some(st)) if st.is_dir() => {}
                Ok(_) => return Ok(None),
                Err(e) => return Err(Error::io("stat", root.display(parent), e)),
            }
            d = match d.open_subdir(comp) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::ENOENT)
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(Error::io("open directory", root.display(parent), e)),
            };
        }
    }
    Ok(Some((d, name.to_vec())))
}

/// The directories the commit renamed into, each reached once by
/// [`parent_nofollow`] and kept (renames come in tar order, a directory's
/// together): what is removed from them are only the commit's asides, so a
/// kept descriptor still names what the walk found. At most [`DIRS_MAX`].
#[derive(Default)]
struct DirCache {
    dirs: HashMap<Vec<u8>, Option<Dir>>,
}

/// Most descriptors a [`DirCache`] holds: far below the usual limit of 1024.
const DIRS_MAX: usize = 128;

impl DirCache {
    /// The real directory at `rel`; `None` if some component is missing or
    /// is not a real directory.
    fn get(&mut self, root: &Root, rel: &[u8]) -> Result<Option<&Dir>> {
        if !self.dirs.contains_key(rel) {
            if self.dirs.len() >= DIRS_MAX {
                self.dirs.clear();
            }
            let d = parent_nofollow(root, &join(rel, b"x"))?.map(|(d, _)| d);
            self.dirs.insert(rel.to_vec(), d);
        }
        Ok(self.dirs[rel].as_ref())
    }
}

/// The tree as the commit will leave it, for [`foretell`]: what the new
/// MANIFEST ships is in place, nothing is removed yet.
struct Foretold<'a> {
    new: &'a Manifest,
    /// Directories the new MANIFEST ships something in: never empty after
    /// the commit.
    parents: HashSet<&'a [u8]>,
    /// Paths foretold removed so far (deepest first: children before their
    /// directory).
    gone: HashSet<Vec<u8>>,
}

impl Foretold<'_> {
    /// Whether the commit makes a directory above `path` a non-directory:
    /// the old directory then goes aside whole, and what of it is removed
    /// is removed there (and reported by its old path), not found at `path`.
    fn under_replaced(&self, path: &[u8]) -> bool {
        let mut p = path;
        while let Some(i) = p.iter().rposition(|&c| c == b'/') {
            p = &p[..i];
            if self.new.get(p).is_some_and(|e| e.kind != Kind::Dir) {
                return true;
            }
        }
        false
    }

    /// Whether the directory `d` at `path` is empty once cleanup has
    /// removed what it was foretold to remove.
    fn emptied(&self, root: &Root, d: &Dir, name: &[u8], path: &[u8]) -> Result<bool> {
        if self.parents.contains(path) {
            return Ok(false);
        }
        let sub = d
            .open_subdir(name)
            .map_err(|e| Error::io("open directory", root.display(path), e))?;
        let names = sub
            .list()
            .map_err(|e| Error::io("list", root.display(path), e))?;
        Ok(names.iter().all(|n| self.gone.contains(&join(path, n))))
    }
}

/// What [`cleanup`] would remove and keep of `plan`'s obsolete paths, told
/// before anything is staged: the same walk, acting on nothing, with the
/// tree as the commit will leave it — `new` (the new MANIFEST) in place,
/// and each of `changed` (paths staging will write over what stands there)
/// that is a directory now and not in `new` moved aside whole.
/// Writes: nothing.
pub fn foretell(root: &Root, plan: &Plan, new: &Manifest, changed: &[Vec<u8>]) -> Result<Report> {
    let mut report = Report::default();
    let mut f = Foretold {
        new,
        parents: new.entries().iter().map(|e| split(&e.path).0).collect(),
        gone: HashSet::new(),
    };
    let shipped = shipped(plan);
    for p in changed {
        if new.get(p).is_none_or(|e| e.kind == Kind::Dir) {
            continue;
        }
        let Some((d, name)) = parent_nofollow(root, p)? else {
            continue;
        };
        let is_dir = d
            .stat(&name)
            .map_err(|e| Error::io("stat", root.display(p), e))?
            .is_some_and(|st| st.is_dir());
        if is_dir {
            let sub = d
                .open_subdir(&name)
                .map_err(|e| Error::io("open directory", root.display(p), e))?;
            remove_shipped(root, &sub, p, p, &shipped, &mut report, false)?;
        }
    }
    remove_listed(
        root,
        plan,
        &mut report,
        &mut Default::default(),
        Some(&mut f),
    )?;
    report.upgrade_ran = plan.upgrade.is_some();
    Ok(report)
}

/// The plan's obsolete paths, with their shipped hash (config files).
fn shipped(plan: &Plan) -> HashMap<&[u8], Option<[u8; 32]>> {
    plan.obsolete
        .iter()
        .map(|o| (o.path.as_slice(), o.config_sha256))
        .collect()
}

/// Remove the plan's obsolete paths and the commit's asides, then fsync
/// every directory something was removed from: the journal is dropped after
/// this, and a removal that a power loss undid would then be a leftover no
/// later run knows of.
fn remove_obsolete(root: &Root, plan: &Plan, report: &mut Report) -> Result<()> {
    let mut touched = std::collections::BTreeSet::new();
    remove_each(root, plan, report, &mut touched)?;
    for dir in &touched {
        if let Some((d, _)) = parent_nofollow(root, &join(dir, b"x"))? {
            fault("cleanup-fsync-dir")
                .and_then(|()| d.sync())
                .map_err(|e| Error::io("fsync directory", root.display(dir), e))?;
        }
    }
    Ok(())
}

/// [`remove_obsolete`] but the fsyncs; the parent of everything removed
/// goes into `touched`.
fn remove_each(
    root: &Root,
    plan: &Plan,
    report: &mut Report,
    touched: &mut std::collections::BTreeSet<Vec<u8>>,
) -> Result<()> {
    // asides left by commit (the replaced directories and files)
    let all = plan
        .dir_renames
        .iter()
        .chain(&plan.renames)
        .chain(&plan.critical);
    let shipped = shipped(plan);
    let mut dirs = DirCache::default();
    for (n, r) in all.enumerate() {
        if let Some(d) = dirs.get(root, &r.dir)? {
            let aside = aside_name(&plan.txid, n);
            let Some(st) = d
                .stat(&aside)
                .map_err(|e| Error::io("stat", root.display(&join(&r.dir, &aside)), e))?
            else {
                continue;
            };
            touched.insert(r.dir.clone());
            let now = join(&r.dir, &aside);
            if st.is_dir() {
                let sub = d
                    .open_subdir(&aside)
                    .map_err(|e| Error::io("open directory", root.display(&now), e))?;
                let emptied = remove_shipped(root, &sub, &r.path(), &now, &shipped, report, true)?;
                if !emptied {
                    continue; // what is left was never shipped: kept, reported
                }
                d.rmdir(&aside)
            } else {
                d.disarm(&aside).and_then(|()| d.unlink(&aside))
            }
            .map_err(|e| Error::io("remove", root.display(&now), e))?;
        }
    }
    if let Some(k) = &plan.kernel {
        let (kp, _) = split(k.dirs.keep_old.as_bytes());
        if let Some((d, _)) = parent_nofollow(root, &join(kp, b"x"))? {
            let aside = format!(".sysup-{}-aside-kernel", plan.txid).into_bytes();
            if d.stat(&aside)
                .map_err(|e| Error::io("stat", root.display(&aside), e))?
                .is_some()
            {
                d.remove_all(&aside)
                    .map_err(|e| Error::io("remove", root.display(&aside), e))?;
                touched.insert(kp.to_vec());
            }
        }
    }
    remove_listed(root, plan, report, touched, None)
}

/// Remove the plan's obsolete paths (deepest first); with `dry`, only tell
/// which would go, as the commit will have left the tree.
fn remove_listed(
    root: &Root,
    plan: &Plan,
    report: &mut Report,
    touched: &mut std::collections::BTreeSet<Vec<u8>>,
    mut dry: Option<&mut Foretold>,
) -> Result<()> {
    for o in &plan.obsolete {
        let shown = String::from_utf8_lossy(&o.path).into_owned();
        if crate::host::state::touches_state(&o.path) {
            // never planned (apply.rs), but a plan is read back from a file
            report.kept.push(format!("{shown} (sysup's own state)"));
            continue;
        }
        if dry.as_ref().is_some_and(|f| f.under_replaced(&o.path)) {
            continue;
        }
        let Some((d, name)) = parent_nofollow(root, &o.path)? else {
            continue;
        };
        let Some(st) = d
            .stat(&name)
            .map_err(|e| Error::io("stat", root.display(&o.path), e))?
        else {
            continue;
        };
        if st.is_dir() {
            // A filesystem mounted there is not the dist's to take away
            // (and rmdir could only fail, on every run after this one).
            let mounted = d
                .is_mount_point(&name)
                .map_err(|e| Error::io("stat", root.display(&o.path), e))?;
            if mounted {
                report.kept.push(format!("{shown} (a mount point)"));
                continue;
            }
            let removed = match &dry {
                Some(f) => {
                    if f.emptied(root, &d, &name, &o.path)? {
                        Ok(())
                    } else {
                        Err(std::io::Error::from_raw_os_error(libc::ENOTEMPTY))
                    }
                }
                None => d.rmdir(&name),
            };
            match removed {
                Ok(()) => {
                    report.removed.push(shown);
                    touched.insert(split(&o.path).0.to_vec());
                }
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
                {
                    report.kept.push(format!("{shown} (directory not empty)"))
                }
                // mounted since the check, or some other hold on it
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    report.kept.push(format!("{shown} (in use)"))
                }
                Err(e) => return Err(Error::io("remove directory", root.display(&o.path), e)),
            }
        } else {
            if let Some(h) = o.config_sha256 {
                if st.is_file() && d.sha256(&name).ok() != Some(h) {
                    report
                        .kept
                        .push(format!("{shown} (config file modified locally)"));
                    continue;
                }
            }
            if dry.is_none() {
                fault("cleanup-remove")
                    .and_then(|()| d.disarm(&name))
                    .and_then(|()| d.unlink(&name))
                    .map_err(|e| Error::io("remove", root.display(&o.path), e))?;
            }
            report.removed.push(shown);
            touched.insert(split(&o.path).0.to_vec());
        }
        if let Some(f) = dry.as_deref_mut() {
            f.gone.insert(o.path.clone());
        } else {
            checkpoint("cleanup-obsolete");
        }
    }
    Ok(())
}

/// Empty `dir` — a directory moved aside by the commit, which stood at
/// `orig` and is now at `now` — of what a dist shipped (the plan's obsolete
/// paths; a config file only while it is as shipped), reporting each path
/// removed by its original name. Anything else was put there by someone
/// else (after staging checked there was none): it is kept where it is and
/// reported. Returns whether `dir` is empty now. Without `act`, removes
/// nothing and reports what it would (the directory not yet moved aside).
fn remove_shipped(
    root: &Root,
    dir: &Dir,
    orig: &[u8],
    now: &[u8],
    shipped: &HashMap<&[u8], Option<[u8; 32]>>,
    report: &mut Report,
    act: bool,
) -> Result<bool> {
    let mut empty = true;
    let names = dir
        .list()
        .map_err(|e| Error::io("list", root.display(now), e))?;
    for name in names {
        let (o, n) = (join(orig, &name), join(now, &name));
        let shown = String::from_utf8_lossy(&o).into_owned();
        let Some(st) = dir
            .stat(&name)
            .map_err(|e| Error::io("stat", root.display(&n), e))?
        else {
            continue;
        };
        let keep = |report: &mut Report, why: &str| {
            report.kept.push(format!(
                "{shown} ({why}; kept as {})",
                root.display(&n).display()
            ))
        };
        let Some(config) = shipped.get(o.as_slice()) else {
            keep(report, "not shipped by any dist");
            empty = false;
            continue;
        };
        let removed = if st.is_dir() {
            let sub = dir
                .open_subdir(&name)
                .map_err(|e| Error::io("open directory", root.display(&n), e))?;
            if !remove_shipped(root, &sub, &o, &n, shipped, report, act)? {
                empty = false;
                continue;
            }
            if act {
                dir.rmdir(&name)
            } else {
                Ok(())
            }
        } else {
            if let Some(h) = config {
                if st.is_file() && dir.sha256(&name).ok() != Some(*h) {
                    keep(report, "config file modified locally");
                    empty = false;
                    continue;
                }
            }
            if act {
                dir.disarm(&name).and_then(|()| dir.unlink(&name))
            } else {
                Ok(())
            }
        };
        removed.map_err(|e| Error::io("remove", root.display(&n), e))?;
        report.removed.push(shown);
    }
    Ok(empty)
}

/// Remove kept bases of `name` beyond the `keep` newest, never `installed`,
/// never one younger than `min_age_days`; also stale temporary files.
/// Writes: removes files in `bases/` (unless `dry_run`).
pub fn prune_bases(
    state: &State,
    name: &DistName,
    installed: Option<&DistId>,
    keep: usize,
    min_age_days: u64,
    dry_run: bool,
) -> Result<Vec<KeptBase>> {
    let now = crate::host::history::now();
    let bases = state.bases(name)?;
    let n = bases.len();
    let mut removed = Vec::new();
    for (i, b) in bases.into_iter().enumerate() {
        let newest_rank = n - i; // 1 = newest
        let young = now - b.mtime < (min_age_days as i64) * 86_400;
        if Some(&b.id) == installed || newest_rank <= keep || young {
            continue;
        }
        if !dry_run {
            state.remove_base(&b.id)?;
        }
        removed.push(b);
    }
    if !removed.is_empty() && !dry_run {
        state
            .bases_fd()
            .sync()
            .ctx("fsync directory", state.bases_dir())?;
    }
    Ok(removed)
}

/// Run cleanup for a committed and recorded plan.
pub fn cleanup(
    root: &Root,
    state: &State,
    plan: &Plan,
    keep: usize,
    min_age_days: u64,
) -> Result<Report> {
    let mut report = Report::default();
    remove_obsolete(root, plan, &mut report)?;
    // Removals moved their directories' mtimes, maybe in an earlier attempt
    // that crashed: set them all again (idempotent, and cheap).
    crate::host::commit::set_dir_mtimes(root, plan, |_| true)?;
    checkpoint("cleanup-before-upgrade");
    if let Some(script) = &plan.upgrade {
        report.upgrade_skipped = run_upgrade(root, state, plan, script)?;
        report.upgrade_ran = report.upgrade_skipped.is_none();
    }
    checkpoint("cleanup-after-upgrade");
    let pruned = prune_bases(
        state,
        &plan.target.name,
        Some(&plan.target),
        keep,
        min_age_days,
        false,
    )?;
    report.pruned = pruned.iter().map(|b| b.id.to_string()).collect();
    Ok(report)
}
