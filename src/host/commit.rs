//! Phase 4 of an apply: make the staged tree live, from the plan alone (so
//! a re-run after a crash does exactly the same).
//!
//! Order, and why:
//! 1. attributes of existing directories;
//! 2. staged new directories renamed into place (their whole subtree with
//!    them), and a kernel's install directory swapped in after the current
//!    one is kept as the old-kernel directory — so the previous kernel is
//!    bootable at every instant;
//! 3. files, symlinks, hard links and nodes renamed over their old names
//!    (a rename replaces a running executable safely: no ETXTBSY; a
//!    replaced setuid file still hard-linked elsewhere is stripped of its
//!    setuid/setgid bits first);
//!    then metadata-only changes set in place on files whose content stays
//!    (independent of each other: two threads share them);
//! 4. critical files (`<path>.new` → `<path>`), second-to-last: libc and the
//!    loader change only once everything that may need the new ones is in
//!    place, and each changes in one atomic rename;
//! 5. every touched directory fsynced: a rename is not durable until its
//!    directory is;
//! 6. directory mtimes set as the MANIFEST says (renames moved them), each
//!    on the directory opened once from its parent, never through a link.
//!
//! Idempotence: an operation whose staged name no longer exists is already
//! done. Where the final name holds something rename cannot replace (a
//! directory for a file, or the reverse), it is first renamed aside to
//! `.sysup-<txid>-aside-<n>`, which cleanup removes.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::host::checkpoint::{checkpoint, fault};
use crate::host::plan::{join, split, Attrs, Plan, Rename};
use crate::host::reaper::Reaper;
use crate::host::root::{Dir, Resolver, Root};
use crate::util::halves::in_halves;

/// The aside name of the `n`-th rename of a plan.
pub fn aside_name(txid: &str, n: usize) -> Vec<u8> {
    format!(".sysup-{txid}-aside-{n}").into_bytes()
}

fn io_err(root: &Root, action: &'static str, rel: &[u8], e: std::io::Error) -> Error {
    Error::io(action, root.display(rel), e)
}

fn dir_of(res: &mut Resolver<'_>, root: &Root, rel: &[u8]) -> Result<Rc<Dir>> {
    res.shared(rel)
        .map_err(|e| io_err(root, "open directory", rel, e))
}

/// Rename one staged object into place (see the module doc); a regular
/// file it replaces is handed to `reaper` to be freed off this thread.
fn rename_one(root: &Root, d: &Dir, r: &Rename, aside: &[u8], reaper: &mut Reaper) -> Result<()> {
    let staged = d
        .stat(&r.staged)
        .map_err(|e| io_err(root, "stat", &join(&r.dir, &r.staged), e))?;
    if staged.is_none() {
        return Ok(()); // done by an earlier attempt
    }
    if let Some(live) = d
        .stat(&r.name)
        .map_err(|e| io_err(root, "stat", &r.path(), e))?
    {
        if live.is_dir() || r.is_dir {
            // rename(2) cannot put a file over a directory, nor a directory
            // over a file or a non-empty directory: move the old one aside.
            d.remove_all(aside)
                .map_err(|e| io_err(root, "remove", &join(&r.dir, aside), e))?;
            d.rename(&r.name, d, aside)
                .map_err(|e| io_err(root, "move aside", &r.path(), e))?;
        } else if live.is_file() {
            // a hard link made elsewhere must not keep a setuid copy of
            // the old program
            d.disarm(&r.name)
                .map_err(|e| io_err(root, "strip setuid/setgid bits of", &r.path(), e))?;
            // only an optimisation: without the hold, the rename frees it
            if let Ok(fd) = d.hold(&r.name) {
                reaper.keep(fd);
            }
        }
    }
    fault("commit-rename")
        .and_then(|()| d.rename(&r.staged, d, &r.name))
        .map_err(|e| io_err(root, "rename into place", &r.path(), e))
}

/// The renames of a commit so far: how many (each gets its own aside
/// name) and the directories they changed (fsynced at the end).
struct Renamed<'p> {
    txid: &'p str,
    n: usize,
    touched: BTreeSet<Vec<u8>>,
}

impl Renamed<'_> {
    /// Rename each of `renames` into place, in order, passing checkpoint
    /// `point` after each.
    fn rename_all(
        &mut self,
        root: &Root,
        res: &mut Resolver<'_>,
        renames: &[Rename],
        reaper: &mut Reaper,
        point: &str,
    ) -> Result<()> {
        for r in renames {
            let d = dir_of(res, root, &r.dir)?;
            rename_one(root, &d, r, &aside_name(self.txid, self.n), reaper)?;
            self.touched.insert(r.dir.clone());
            self.n += 1;
            checkpoint(point);
        }
        Ok(())
    }
}

/// Run the commit phase of `plan`. The files it replaces are freed by
/// `reaper`, perhaps after this returns.
pub fn commit(root: &Root, plan: &Plan, reaper: &mut Reaper) -> Result<()> {
    let mut res = Resolver::new(root, plan.dist_dirs.iter().cloned());
    let mut done = Renamed {
        txid: &plan.txid,
        n: 0,
        touched: BTreeSet::new(),
    };
    // 1. existing directories' attributes
    for a in &plan.dir_attrs {
        set_attrs(root, &mut res, a, true)?;
    }
    // 2. new directories, then the kernel swap
    done.rename_all(root, &mut res, &plan.dir_renames, reaper, "commit-rename")?;
    if let Some(k) = &plan.kernel {
        swap_kernel(root, &mut res, plan, k)?;
        let (p, _) = split(k.dirs.install_dir.as_bytes());
        let (q, _) = split(k.dirs.keep_old.as_bytes());
        done.touched.insert(p.to_vec());
        done.touched.insert(q.to_vec());
    }
    res.clear();
    // 3. everything else
    done.rename_all(root, &mut res, &plan.renames, reaper, "commit-rename")?;
    set_file_attrs(root, plan)?;
    checkpoint("commit-before-critical");
    // 4. critical files, second-to-last
    done.rename_all(root, &mut res, &plan.critical, reaper, "commit-critical")?;
    // 5. make the renames durable
    res.clear();
    for dir in &done.touched {
        let d = dir_of(&mut res, root, dir)?;
        fault("commit-fsync-dir")
            .and_then(|()| d.sync())
            .map_err(|e| io_err(root, "fsync directory", dir, e))?;
    }
    // 6. directory mtimes, deepest first
    set_dir_mtimes(root, plan, |_| true)
}

/// Fewest metadata-only changes worth a second thread.
const SPLIT_MIN: usize = 256;

/// Set the metadata-only changes of objects whose content stays (most
/// upgraded files: a new mtime), in halves on two threads — each change is
/// independent of the others, and the rest of the apply has left the
/// machine's other core idle by now. Either half's error fails the step
/// (a re-run sets them all again).
fn set_file_attrs(root: &Root, plan: &Plan) -> Result<()> {
    let run = |attrs: &[Attrs]| -> Result<()> {
        let mut res = Resolver::new(root, plan.dist_dirs.iter().cloned());
        attrs
            .iter()
            .try_for_each(|a| set_attrs(root, &mut res, a, false))
    };
    let (mine, theirs) = in_halves(&plan.attrs, SPLIT_MIN, "sysup-attrs", run);
    mine.and(theirs.unwrap_or(Ok(())))
}

/// Set owner, mode, xattrs and mtime of an existing object in place, and
/// remove the xattrs staging said to drop; one that is gone
/// or of the wrong kind by now was replaced, and is skipped — but a
/// symlink where a file or node was is refused: every change acts on the
/// object itself (see root.rs), never through a link.
fn set_attrs(root: &Root, res: &mut Resolver<'_>, a: &Attrs, want_dir: bool) -> Result<()> {
    let (parent, name) = split(&a.path);
    let d = dir_of(res, root, parent)?;
    // Opened once for all its changes (each one-shot change opens it anew).
    let Some(o) = d.pin(name).map_err(|e| io_err(root, "open", &a.path, e))? else {
        return Ok(());
    };
    let st = *o.stat();
    if st.is_dir() != want_dir {
        return Ok(());
    }
    if st.is_symlink() && !a.is_symlink {
        // Not sysup's: staging saw a real object here. Someone put a link
        // in its place since (a re-run after a crash gives them the time);
        // a mode or xattr change would land on whatever it points to.
        return Err(Error::Refused(format!(
            "'{}' is a symbolic link where the dist has a file whose attributes change; sysup never changes attributes through a link — remove it and run the same command again (a repair then reinstalls the file)",
            root.display(&a.path).display()
        )));
    }
    // Most entries here change only their mtime: an owner or mode that is
    // already right is left alone (a chown would clear setuid/setgid, and
    // the chmod after it would only put them back).
    let owner_changes = (u64::from(st.uid), u64::from(st.gid)) != (a.uid, a.gid);
    if owner_changes {
        o.chown(a.uid, a.gid)
            .map_err(|e| io_err(root, "chown", &a.path, e))?;
    }
    if !a.is_symlink {
        // after chown: chown clears setuid/setgid
        if owner_changes || st.perm() != a.mode & 0o7777 {
            o.chmod(a.mode)
                .map_err(|e| io_err(root, "chmod", &a.path, e))?;
        }
        for (k, v) in &a.xattrs {
            o.set_xattr(k, v)
                .map_err(|e| io_err(root, "set extended attribute on", &a.path, e))?;
        }
        // Only what staging named: attributes the dist shipped and took
        // back, or in a repair a capability it never granted — never a
        // local one otherwise (docs/decisions.md#which-extended-attributes-the-dist-owns).
        if !a.drop_xattrs.is_empty() {
            o.remove_xattrs_where(|n| a.drop_xattrs.iter().any(|d| d == n))
                .map_err(|e| io_err(root, "remove extended attributes of", &a.path, e))?;
        }
    }
    if let Some(t) = a.mtime {
        o.set_mtime(t)
            .map_err(|e| io_err(root, "set mtime of", &a.path, e))?;
    }
    Ok(())
}

/// Set the MANIFEST mtime of the dist's directories that `which` selects,
/// deepest first (anything created or removed in a directory moves its mtime).
pub fn set_dir_mtimes(root: &Root, plan: &Plan, which: impl Fn(&[u8]) -> bool) -> Result<()> {
    let mut res = Resolver::new(root, plan.dist_dirs.iter().cloned());
    for (path, mtime) in plan.dir_mtimes.iter().filter(|(p, _)| which(p)) {
        // The directory itself, opened from its parent without following a
        // link and kept (deepest first: it is a parent next): one open a
        // directory. Anything else there is left to the general way below.
        if res.is_dist_dir(path) {
            if let Ok(d) = res.dir(path) {
                d.set_own_mtime(*mtime)
                    .map_err(|e| io_err(root, "set mtime of", path, e))?;
                continue;
            }
        }
        let (parent, name) = split(path);
        let d = dir_of(&mut res, root, parent)?;
        match d.set_mtime(name, *mtime) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => r.map_err(|e| io_err(root, "set mtime of", path, e))?,
        }
    }
    Ok(())
}

/// Keep the current kernel directory as the old-kernel directory, then put
/// the staged one in its place. Each step checks what an earlier attempt
/// already did.
fn swap_kernel(
    root: &Root,
    res: &mut Resolver<'_>,
    plan: &Plan,
    k: &crate::host::plan::KernelSwap,
) -> Result<()> {
    let (ip, iname) = split(k.dirs.install_dir.as_bytes());
    let (kp, kname) = split(k.dirs.keep_old.as_bytes());
    let idir = dir_of(res, root, ip)?;
    if idir
        .stat(&k.staged)
        .map_err(|e| io_err(root, "stat", &join(ip, &k.staged), e))?
        .is_none()
    {
        return Ok(());
    }
    let kdir = dir_of(res, root, kp)?;
    if idir
        .stat(iname)
        .map_err(|e| io_err(root, "stat", k.dirs.install_dir.as_bytes(), e))?
        .is_some()
    {
        let aside = format!(".sysup-{}-aside-kernel", plan.txid).into_bytes();
        if kdir
            .stat(kname)
            .map_err(|e| io_err(root, "stat", k.dirs.keep_old.as_bytes(), e))?
            .is_some()
        {
            kdir.remove_all(&aside)
                .map_err(|e| io_err(root, "remove", &join(kp, &aside), e))?;
            kdir.rename(kname, &kdir, &aside)
                .map_err(|e| io_err(root, "move aside", k.dirs.keep_old.as_bytes(), e))?;
        }
        idir.rename(iname, &kdir, kname).map_err(|e| {
            io_err(
                root,
                "keep the running kernel as",
                k.dirs.keep_old.as_bytes(),
                e,
            )
        })?;
        checkpoint("commit-rename");
    }
    idir.rename(&k.staged, &idir, iname)
        .map_err(|e| io_err(root, "rename into place", k.dirs.install_dir.as_bytes(), e))
}
