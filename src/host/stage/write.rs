//! Staging one entry: a directory (kept with new attributes, or staged
//! whole, or a kernel's install directory staged for its swap) or any
//! other entry (unchanged, attributes only, written anew under its staged
//! name — its content checked against the MANIFEST hash as it is written —
//! or, for an installed config file, as its fate says: merge.rs). An
//! in-place change's new owner and extended attributes are first set on a
//! probe beside the live object ([`Stager::in_place`]), so that what the
//! host refuses refuses the apply before the commit point.
//!
//! Invariants: only staged names are created, each after the journal
//! records its directory (and a critical file's `.new`); owner, mode and
//! xattrs of a created file are set through its descriptor, never its
//! name; an owner or extended attribute the host does not take is an
//! error naming the dist; a dry run reads past the data and writes
//! nothing (an unnamed file, which leaves no trace, is its one probe).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::format::manifest::{Entry, Kind};
use crate::host::checkpoint::{checkpoint, fault_write};
use crate::host::conffile::{Fate, NEW_SUFFIX};
use crate::host::journal::Record;
use crate::host::plan::{join, split, Attrs, KernelSwap, Rename};
use crate::host::root::{fd, Dir, Node, Stat};
use crate::util::digest::Sha256;

use super::checks::{owner_mode_match, Compare};
use super::{bad_member, ioerr, Mode, Stager};

impl Stager<'_> {
    pub(super) fn stage_dir(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
    ) -> Result<()> {
        let path = e.path.clone();
        let inside_new = self.new_dir_set.contains(pdir);
        // Inside a new directory (a first install that brings `boot/`
        // itself) there is no running kernel to keep: it is created with
        // its parent.
        let swap_kernel = !inside_new
            && self
                .kernel
                .as_ref()
                .is_some_and(|k| k.install_dir.as_bytes() == path.as_slice());
        let live = if inside_new || self.dry() && self.parent_missing(pdir) {
            None
        } else {
            let d = self.dir_of(pdir)?;
            d.stat(base)
                .map_err(|err| ioerr(self.root, "stat", &path, err))?
        };
        if !inside_new && !swap_kernel {
            if let Some(st) = live.filter(Stat::is_dir) {
                return self.keep_dir(label, e, pdir, base, &st);
            }
        }
        // a live file, link or node becomes this directory: moved aside
        if live.is_some_and(|st| !st.is_dir()) {
            self.refuse_mount_point(pdir, base, &path, e.kind)?;
        }
        // A new directory: staged whole (or created inside a staged parent).
        self.out.counts.changed += 1;
        if live.is_some() {
            self.out.changed.push(path.clone());
        } else {
            self.out.added.push(path.clone());
        }
        if !swap_kernel {
            self.out.counts.repaired += u64::from(self.mode == Mode::Repair);
        }
        self.new_dirs.push(path.clone());
        self.new_dir_set.insert(path.clone());
        if self.dry() {
            return Ok(());
        }
        let name = if inside_new {
            base.to_vec()
        } else {
            self.staged_name(&path)
        };
        if !inside_new {
            self.log_dir(pdir)?;
        }
        let pd = self.dir_of(pdir)?;
        pd.remove_all(&name)
            .map_err(|err| ioerr(self.root, "remove leftover", &join(pdir, &name), err))?;
        pd.mkdir(&name, 0o700)
            .map_err(|err| ioerr(self.root, "create directory", &join(pdir, &name), err))?;
        if !inside_new {
            // under its staged name: the resolver could not find it by path
            let sub = pd
                .open_subdir(&name)
                .map_err(|err| ioerr(self.root, "open directory", &join(pdir, &name), err))?;
            self.resolver.insert(&path, sub);
        }
        if swap_kernel {
            self.stage_kernel_swap(name, live.is_some())?;
        } else if !inside_new {
            self.out.dir_renames.push(Rename {
                dir: pdir.to_vec(),
                staged: name,
                name: base.to_vec(),
                is_dir: true,
            });
        }
        Ok(())
    }

    /// An existing real directory: only its attributes may change.
    fn keep_dir(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        st: &Stat,
    ) -> Result<()> {
        let d = self.dir_of(pdir)?;
        let x = self.live_xattrs(&d, base, e).unwrap_or_default();
        let attrs_ok = owner_mode_match(e, st) && x == e.xattrs;
        if self.made_by_sysup.contains(&e.path) {
            // The root had no such directory before this command.
            self.out.counts.changed += 1;
            self.out.added.push(e.path.clone());
            let a = self.in_place(label, e, pdir, Some(st), None)?;
            self.out.dir_attrs.push(a);
        } else if attrs_ok {
            self.out.counts.unchanged += 1;
        } else {
            self.out.counts.changed += 1;
            self.out.changed.push(e.path.clone());
            let a = self.in_place(label, e, pdir, Some(st), None)?;
            self.out.dir_attrs.push(a);
        }
        Ok(())
    }

    /// The in-place change that gives live object `e` (in `pdir`, as
    /// `live` stats it) its attributes, once the host was shown to take
    /// them. The commit sets them on the live object past the commit point,
    /// where a refusal — an xattr value too big for the filesystem's
    /// blocks, a capability the kernel finds malformed, an LSM's veto, an
    /// owner a user namespace does not map — would stop a commit that no
    /// re-run could finish. So they are set first on a probe beside it: an
    /// unnamed file (`O_TMPFILE`: no name, nothing left behind, so a dry run
    /// probes too) for a new owner (once per owner; not probed where the
    /// filesystem makes no unnamed file) and for the xattrs of anything but
    /// a directory; for a directory's xattrs, or where the filesystem makes
    /// no unnamed file, a probe of its kind under a staged name (an undo
    /// removes it after a crash), removed at once — which a dry run,
    /// writing nothing, does not make.
    pub(super) fn in_place(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        live: Option<&Stat>,
        mtime: Option<i64>,
    ) -> Result<Attrs> {
        let owner = (e.uid, e.gid);
        let new_owner = live.is_some_and(|st| (u64::from(st.uid), u64::from(st.gid)) != owner)
            && !self.owners_probed.contains(&owner);
        let probe_xattrs = !e.xattrs.is_empty() && e.kind != Kind::Symlink;
        if !new_owner && !probe_xattrs {
            return Ok(self.attrs_of(e, mtime));
        }
        let d = self.dir_of(pdir)?;
        // one unnamed file serves both probes
        let unnamed = if new_owner || (probe_xattrs && e.kind != Kind::Dir) {
            d.unnamed_file()
                .map_err(|err| ioerr(self.root, "create an unnamed file in", pdir, err))?
        } else {
            None
        };
        if new_owner {
            if let Some(f) = &unnamed {
                fd::chown(f, e.uid, e.gid).map_err(|err| {
                    Error::Refused(format!(
                        "'{label}' gives '{}' the owner {}:{}, which this host does not take: {err}",
                        e.display(),
                        e.uid,
                        e.gid
                    ))
                })?;
            }
            self.owners_probed.insert(owner);
        }
        if !probe_xattrs {
            return Ok(self.attrs_of(e, mtime));
        }
        let set = |probe: &dyn Fn(&str, &[u8]) -> std::io::Result<()>| {
            e.xattrs
                .iter()
                .try_for_each(|(k, v)| probe(k, v).map_err(|err| xattr_refused(label, e, k, err)))
        };
        if let Some(f) = unnamed.filter(|_| e.kind != Kind::Dir) {
            set(&|k, v| fd::set_xattr(&f, k, v))?;
            return Ok(self.attrs_of(e, mtime));
        }
        if !self.dry() {
            self.log_dir(pdir)?;
            let probe = [self.staged_name(&e.path), b"-xattrs".to_vec()].concat();
            let (root, rel) = (self.root, join(pdir, &probe));
            let io = |action: &'static str| {
                let rel = &rel;
                move |err: std::io::Error| ioerr(root, action, rel, err)
            };
            d.remove_all(&probe).map_err(io("remove leftover"))?;
            match e.kind {
                Kind::Dir => d.mkdir(&probe, 0o700),
                _ => d.create_file(&probe).map(drop),
            }
            .map_err(io("create"))?;
            // a staged name exists: the crash window of any staged file
            checkpoint("stage-file");
            let done = set(&|k, v| d.set_xattr(&probe, k, v));
            d.remove_all(&probe).map_err(io("remove"))?;
            done?;
        }
        Ok(self.attrs_of(e, mtime))
    }

    /// The kernel's install directory, staged as `name`, for the commit's
    /// swap; a running one (`live`) moves to `keep_old`, whose parent must
    /// be there before the commit (created now, journaled).
    fn stage_kernel_swap(&mut self, name: Vec<u8>, live: bool) -> Result<()> {
        let dirs = self.kernel.clone().expect("checked by the caller");
        if live {
            let kp = split(dirs.keep_old.as_bytes()).0.to_vec();
            self.ensure_outer_dir(&kp)?;
        }
        self.out.kernel = Some(KernelSwap { dirs, staged: name });
        Ok(())
    }

    pub(super) fn stage_other(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        data: &mut impl Read,
    ) -> Result<()> {
        let path = e.path.clone();
        let inside_new = self.new_dir_set.contains(pdir);
        let live = if inside_new || (self.dry() && self.parent_missing(pdir)) {
            None
        } else {
            let d = self.dir_of(pdir)?;
            d.stat(base)
                .map_err(|err| ioerr(self.root, "stat", &path, err))?
        };
        if live.is_some_and(|s| s.is_dir()) {
            self.refuse_unshipped(&path, pdir, base, e)?;
        }
        let final_name = match self.config_fate(e, pdir, base, inside_new, live)? {
            Fate::Ship => base.to_vec(),
            Fate::Leave => {
                return self.leave_config(label, e, pdir, base, live.expect("a live file"))
            }
            Fate::Merge => {
                return self.stage_merge(label, e, pdir, base, live.expect("a live file"), data)
            }
            Fate::Keep => {
                self.out.config_kept.push(path.clone());
                [base, NEW_SUFFIX].concat()
            }
        };
        if final_name == base {
            match self.compare(e, pdir, base, live)? {
                Compare::Same => {
                    self.out.counts.unchanged += 1;
                    self.located.insert(path, (pdir.to_vec(), base.to_vec()));
                    return Ok(());
                }
                Compare::Attrs => {
                    self.out.counts.changed += 1;
                    self.out.changed.push(path.clone());
                    self.out.counts.repaired += u64::from(self.mode == Mode::Repair);
                    let a = self.in_place(label, e, pdir, live.as_ref(), Some(e.mtime))?;
                    self.out.attrs.push(a);
                    self.located.insert(path, (pdir.to_vec(), base.to_vec()));
                    return Ok(());
                }
                Compare::Differ => {}
            }
            // the commit renames the new object over the live one
            if live.is_some_and(|st| !st.is_dir()) {
                self.refuse_mount_point(pdir, base, &path, e.kind)?;
            }
        }
        self.out.counts.changed += 1;
        // (a kept config file's new version is listed in config_kept)
        if final_name == base {
            if live.is_some() {
                self.out.changed.push(path.clone());
            } else {
                self.out.added.push(path.clone());
            }
        }
        // re-applying the installed dist: everything written restores it
        if self.mode == Mode::Repair && final_name == base {
            self.out.counts.repaired += 1;
        }
        if self.dry() {
            self.out.counts.bytes_written += if e.kind == Kind::File { e.size } else { 0 };
            std::io::copy(data, &mut std::io::sink())
                .map_err(|err| Error::io("read", label, err))?;
            return Ok(());
        }
        self.write_entry(label, e, pdir, base, final_name, data)
    }

    /// Write the entry under its staged name (journaled first), for the
    /// commit to rename to `final_name`.
    pub(super) fn write_entry(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        final_name: Vec<u8>,
        data: &mut impl Read,
    ) -> Result<()> {
        let path = e.path.clone();
        let inside_new = self.new_dir_set.contains(pdir);
        let staged = if e.critical {
            [base, b".new"].concat()
        } else if inside_new {
            final_name.clone()
        } else {
            self.staged_name(&path)
        };
        if !inside_new {
            self.log_dir(pdir)?;
        }
        if e.critical {
            if let Some(j) = self.journal.as_deref_mut() {
                j.append(
                    &Record::New {
                        path: join(pdir, &staged),
                    },
                    true,
                )?;
            }
        }
        let holder = if e.kind == Kind::Hardlink {
            let h = e.link.clone().unwrap_or_default();
            let (hd, hn) = self
                .located
                .get(&h)
                .cloned()
                .ok_or_else(|| bad_member(label, &path, "hard link target not staged"))?;
            let hdir = self.dir_of(&hd)?;
            Some((hdir, hn, join(&hd, &h)))
        } else {
            None
        };
        let d = self.dir_of(pdir)?;
        let staged_rel = join(pdir, &staged);
        d.remove_all(&staged)
            .map_err(|err| ioerr(self.root, "remove leftover", &staged_rel, err))?;
        let written = self.create(label, e, &d, &staged, &staged_rel, holder, data)?;
        self.out.counts.bytes_written += written;
        if let Ok(st) = nix::sys::stat::fstat(d.as_fd_raw()) {
            self.filesystems
                .entry(st.st_dev)
                .or_insert_with(|| Rc::clone(&d));
        }
        self.located
            .insert(path.clone(), (pdir.to_vec(), staged.clone()));
        let rename = Rename {
            dir: pdir.to_vec(),
            staged,
            name: final_name,
            is_dir: false,
        };
        if e.critical {
            self.out.critical.push(rename);
        } else if !inside_new {
            self.out.renames.push(rename);
        }
        checkpoint("stage-file");
        Ok(())
    }

    /// Create the staged object; returns content bytes written.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create(
        &self,
        label: &str,
        e: &Entry,
        d: &Dir,
        name: &[u8],
        rel: &[u8],
        holder: Option<(Rc<Dir>, Vec<u8>, Vec<u8>)>,
        data: &mut impl Read,
    ) -> Result<u64> {
        let io = |action: &'static str| {
            move |err: std::io::Error| Error::io(action, self.root.display(rel), err)
        };
        let mut written = 0;
        match e.kind {
            Kind::File => {
                let mut f = d.create_file(name).map_err(io("create"))?;
                let mut h = Sha256::new();
                // sized to the file: most are small, and a zeroed 256 KiB
                // per file is a measurable share of an apply's CPU
                let mut buf = vec![0u8; (e.size as usize).clamp(1, 256 * 1024)];
                loop {
                    let n = data
                        .read(&mut buf)
                        .map_err(|err| Error::from_io(err, "read", std::path::Path::new(label)))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    fault_write(&mut f, &buf[..n], "stage-write").map_err(io("write"))?;
                    written += n as u64;
                }
                // the stage ends with a syncfs: start this file's share now
                crate::util::fsutil::start_writeback(&f, 0, 0);
                let got: [u8; 32] = h.finalize();
                if Some(got) != e.sha256 {
                    return Err(Error::DigestMismatch {
                        what: format!("content of '{}'", e.display()),
                        path: label.into(),
                        expected: e.sha256.map(hex::encode).unwrap_or_default(),
                        actual: hex::encode(got),
                    });
                }
                // Through the descriptor, not the name: the staged name
                // sits in a directory others may write, and could be
                // swapped for a link meanwhile.
                self.chown_fd(&f, e).map_err(io("chown"))?;
                // chmod after chown: chown clears setuid/setgid bits
                fd::chmod(&f, e.mode).map_err(io("chmod"))?;
                for (k, v) in &e.xattrs {
                    fd::set_xattr(&f, k, v).map_err(|err| xattr_refused(label, e, k, err))?;
                }
                fd::set_mtime(&f, e.mtime).map_err(io("set mtime of"))?;
                drop(f);
            }
            Kind::Hardlink => {
                let (hdir, hname, hrel) = holder.expect("hard links come with their holder");
                d.link_from(&hdir, &hname, name)
                    .map_err(|err| Error::io("hard-link", self.root.display(&hrel), err))?;
            }
            Kind::Symlink => {
                d.symlink(e.link.as_deref().unwrap_or_default(), name)
                    .map_err(io("create symlink"))?;
                self.chown(d, name, e).map_err(io("chown"))?;
                d.set_mtime(name, e.mtime).map_err(io("set mtime of"))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let (a, b) = e.dev.unwrap_or((0, 0));
                let node = match e.kind {
                    Kind::Char => Node::Char(a, b),
                    Kind::Block => Node::Block(a, b),
                    _ => Node::Fifo,
                };
                d.mknod(name, node, e.mode).map_err(io("create node"))?;
                self.chown(d, name, e).map_err(io("chown"))?;
                d.chmod(name, e.mode).map_err(io("chmod"))?;
                for (k, v) in &e.xattrs {
                    d.set_xattr(name, k, v)
                        .map_err(|err| xattr_refused(label, e, k, err))?;
                }
                d.set_mtime(name, e.mtime).map_err(io("set mtime of"))?;
            }
            Kind::Dir => unreachable!("directories are staged by stage_dir"),
        }
        Ok(written)
    }

    /// chown unless the owner is already right (so unprivileged runs work on
    /// trees they own).
    pub(super) fn chown(&self, d: &Dir, name: &[u8], e: &Entry) -> std::io::Result<()> {
        let st = d
            .stat(name)?
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))?;
        if self.needs_chown((st.uid, st.gid), e)? {
            d.chown(name, e.uid, e.gid)?;
        }
        Ok(())
    }

    /// [`Stager::chown`] of the inode a descriptor holds.
    pub(super) fn chown_fd(&self, f: &impl AsRawFd, e: &Entry) -> std::io::Result<()> {
        if self.needs_chown(fd::owner(f)?, e)? {
            fd::chown(f, e.uid, e.gid)?;
        }
        Ok(())
    }

    pub(super) fn needs_chown(&self, (uid, gid): (u32, u32), e: &Entry) -> std::io::Result<bool> {
        if u64::from(uid) == e.uid && u64::from(gid) == e.gid {
            return Ok(false);
        }
        if self.euid != 0 && (e.uid != u64::from(self.euid) || e.gid != u64::from(self.egid)) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("owner {}:{} needs root", e.uid, e.gid),
            ));
        }
        Ok(true)
    }
}

/// The error of extended attribute `key` of `e` that the host would not
/// set: the dist's, named with the cause, before the commit point.
pub(super) fn xattr_refused(label: &str, e: &Entry, key: &str, err: std::io::Error) -> Error {
    Error::Refused(format!(
        "'{label}' gives '{}' the extended attribute '{}', which this host does not take: {err}",
        e.display(),
        crate::format::manifest::escape(key.as_bytes())
    ))
}
