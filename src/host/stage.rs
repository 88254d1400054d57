//! Phase 2 of an apply: stream the new tar's members and stage every entry
//! that differs from what is installed, next to where it will live.
//!
//! Per entry (in tar order, parents before children):
//! - unchanged entries are skipped (their data is read past, never written);
//! - a changed file, symlink, hard link or node is created under a staged
//!   name in its destination directory — `.sysup-<txid>-<n>`, or
//!   `<name>.new` for a critical file — with owner, mode, xattrs and mtime
//!   set, and its content checked against the MANIFEST hash as it is written;
//! - a directory the dist describes that is not a real directory on the host
//!   yet is staged whole (`.sysup-<txid>-<n>` holding its children under
//!   their final names) and goes live with one rename;
//! - a kernel's install directory is staged whole and swapped in by the
//!   commit (the running one kept as `keep_old`) — unless its parent is new
//!   too, when there is no running kernel to keep;
//! - an installed config file is shipped, left alone, merged three ways or
//!   kept with its new version staged to go live as `<name>.sysupnew`
//!   (merge.rs, docs/config-merge.md);
//! - a live directory the new dist makes a symlink, file or node is
//!   replaced only if it holds nothing no dist shipped (nothing outside the
//!   old MANIFEST, no config file changed since): otherwise the apply is
//!   refused, naming the directory and what is in it, before anything live
//!   changes.
//!
//! Invariants: nothing under a live name is created or changed here — only
//! staged names, and missing directories *above* the dist's entries or a
//! kernel's `keep_old` (each journaled, so an abort removes it); every member must be described by the
//! MANIFEST exactly (type, mode, owner, mtime, size, link, device, xattrs)
//! and appear once; staged names are deterministic per transaction, so a
//! re-run after a crash finds and replaces its own leftovers; nothing a
//! dist names (entry, `OBSOLETE` entry, kernel directory) may be sysup's
//! state directory or inside it, and `var`, `var/db` only directories
//! ([`refuse_state_paths`], checked before anything is staged).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::format::archive::member::MemberMeta;
use crate::format::manifest::{Kind, Manifest};
use crate::format::spec::KernelDirs;
use crate::host::checkpoint::fault;
use crate::host::journal::{Journal, Record};
use crate::host::plan::{join, split, Attrs, Counts, KernelSwap, Rename};
use crate::host::root::{fd, Dir, Resolver, Root};
use crate::host::statcache::StatCache;
use crate::host::state::STATE_DIR;

/// How staging decides what is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing recorded as installed: compare contents with the MANIFEST.
    Fresh,
    /// Moving from another installed dist: trust entries the old and new
    /// MANIFESTs agree on when the installed file's metadata still matches.
    Upgrade,
    /// Re-applying the installed dist: hash everything, repair what differs.
    Repair,
}

/// What staging decided, for the plan.
#[derive(Debug, Default)]
pub struct Staged {
    pub dir_renames: Vec<Rename>,
    pub renames: Vec<Rename>,
    pub critical: Vec<Rename>,
    pub dir_attrs: Vec<Attrs>,
    pub attrs: Vec<Attrs>,
    pub kernel: Option<KernelSwap>,
    pub config_kept: Vec<Vec<u8>>,
    /// Config files merged three ways without conflict (root-relative).
    pub config_merged: Vec<Vec<u8>>,
    /// Kept config files with a conflicted merge staged as `<path>.sysupmerge`.
    pub config_conflicted: Vec<Vec<u8>>,
    /// Entries written where nothing stood (root-relative, in tar order).
    pub added: Vec<Vec<u8>>,
    /// Entries written, or given new attributes, over something that stood
    /// there. With `added`, `config_kept` and `config_merged`, every entry `counts.changed`
    /// counts, each once; the same in a dry run as in the real staging.
    pub changed: Vec<Vec<u8>>,
    pub counts: Counts,
}

mod checks;
mod merge;
mod write;

pub use merge::MergeSource;

use checks::disagreement;
pub use checks::refuse_state_paths;

/// Stages one dist's members under a root.
pub struct Stager<'a> {
    root: &'a Root,
    resolver: Resolver<'a>,
    journal: Option<&'a mut Journal>,
    txid: String,
    mode: Mode,
    new: &'a Manifest,
    old: Option<&'a Manifest>,
    /// What the last apply saw of the old MANIFEST's files.
    stats: Option<&'a StatCache>,
    kernel: Option<KernelDirs>,
    index: HashMap<Vec<u8>, usize>,
    seen: HashSet<Vec<u8>>,
    /// Where each entry's object is now (parent, name) for hard links.
    located: HashMap<Vec<u8>, (Vec<u8>, Vec<u8>)>,
    /// Dist directories that are new (staged, or inside a staged one).
    new_dirs: Vec<Vec<u8>>,
    new_dir_set: HashSet<Vec<u8>>,
    logged: HashSet<Vec<u8>>,
    filesystems: BTreeMap<u64, Rc<Dir>>,
    out: Staged,
    /// Config merging: on or off, and the kept base its ancestors come from.
    merge: MergeSource<'a>,
    /// The ancestors, read from the kept base on first need.
    ancestors: Option<crate::host::conffile::ancestors::Ancestors>,
    /// Files of the new MANIFEST that hard links name (never merged).
    link_holders: HashSet<Vec<u8>>,
    euid: u32,
    egid: u32,
    /// Directories sysup itself created for its state in this command
    /// (`State::made`): reported as added, as the dry run foretells them.
    made_by_sysup: &'a [Vec<u8>],
    /// Owners an in-place change gives and this host was shown to take.
    owners_probed: HashSet<(u64, u64)>,
}

fn bad_member(label: &str, path: &[u8], reason: impl Into<String>) -> Error {
    Error::Tar {
        path: label.into(),
        reason: format!(
            "member '{}': {}",
            String::from_utf8_lossy(path),
            reason.into()
        ),
    }
}

fn ioerr(root: &Root, action: &'static str, rel: &[u8], e: std::io::Error) -> Error {
    Error::io(action, root.display(rel), e)
}

impl<'a> Stager<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        root: &'a Root,
        journal: Option<&'a mut Journal>,
        txid: String,
        mode: Mode,
        new: &'a Manifest,
        old: Option<&'a Manifest>,
        kernel: Option<KernelDirs>,
    ) -> Stager<'a> {
        let dist_dirs = new
            .entries()
            .iter()
            .filter(|e| e.kind == Kind::Dir)
            .map(|e| e.path.clone());
        let index = new
            .entries()
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.clone(), i))
            .collect();
        Stager {
            root,
            resolver: Resolver::new(root, dist_dirs),
            journal,
            txid,
            mode,
            new,
            old,
            stats: None,
            kernel,
            index,
            seen: HashSet::new(),
            located: HashMap::new(),
            new_dirs: Vec::new(),
            new_dir_set: HashSet::new(),
            logged: HashSet::new(),
            filesystems: BTreeMap::new(),
            out: Staged::default(),
            merge: MergeSource {
                on: true,
                base: None,
            },
            ancestors: None,
            link_holders: new
                .entries()
                .iter()
                .filter(|e| e.kind == Kind::Hardlink)
                .filter_map(|e| e.link.clone())
                .collect(),
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
            made_by_sysup: &[],
            owners_probed: HashSet::new(),
        }
    }

    /// Trust, in an upgrade, files the last apply left untouched as `stats`
    /// says (without it, every file is read).
    /// The directories opening the state directory created in this
    /// command ([`crate::host::state::State::made`]).
    pub fn with_made_by_sysup(mut self, made: &'a [Vec<u8>]) -> Self {
        self.made_by_sysup = made;
        self
    }

    pub fn with_stats(mut self, stats: &'a StatCache) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Merge config files as `merge` says (without it: merging on, but no
    /// ancestor, so both-changed files are kept).
    pub fn with_merge(mut self, merge: MergeSource<'a>) -> Self {
        self.merge = merge;
        self
    }

    fn dry(&self) -> bool {
        self.journal.is_none()
    }

    fn staged_name(&self, path: &[u8]) -> Vec<u8> {
        format!(".sysup-{}-{}", self.txid, self.index[path]).into_bytes()
    }

    /// The directory at `rel` (an owned duplicate of the cached descriptor).
    fn dir_of(&mut self, rel: &[u8]) -> Result<Rc<Dir>> {
        let root = self.root;
        self.resolver
            .shared(rel)
            .map_err(|e| Error::io("open directory", root.display(rel), e))
    }

    /// Journal that `dir` is about to hold staged names (once per
    /// directory), with its mtime so an undo can put it back.
    fn log_dir(&mut self, dir: &[u8]) -> Result<()> {
        if !self.logged.contains(dir) && self.journal.is_some() {
            let mtime = self
                .dir_of(dir)?
                .own_mtime()
                .map_err(|e| ioerr(self.root, "stat", dir, e))?;
            let j = self.journal.as_deref_mut().expect("checked above");
            // durable before the first staged name there: after a power
            // loss, the undo finds every directory that may hold one
            j.append(
                &Record::Dir {
                    path: dir.to_vec(),
                    mtime,
                },
                true,
            )?;
            self.logged.insert(dir.to_vec());
        }
        Ok(())
    }

    /// Make sure a directory above the dist's entries exists (creating and
    /// journaling missing components), and return nothing: the resolver
    /// opens it on demand.
    fn ensure_outer_dir(&mut self, rel: &[u8]) -> Result<()> {
        if rel.is_empty() || self.resolver.is_dist_dir(rel) {
            return Ok(());
        }
        match self.resolver.dir(rel) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                return Err(ioerr(self.root, "open directory", rel, e))
            }
            Err(_) => {}
        }
        let (parent, name) = split(rel);
        let (parent, name) = (parent.to_vec(), name.to_vec());
        self.ensure_outer_dir(&parent)?;
        if self.dry() {
            return Ok(());
        }
        // Inside a directory staged whole, it goes with it: no record, or
        // an undo would act on the path as the live tree resolves it (a
        // link the new directory replaces, into another directory).
        let inside_new = self.new_dir_set.contains(&parent);
        if !inside_new {
            self.log_dir(&parent)?;
            if let Some(j) = self.journal.as_deref_mut() {
                j.append(&Record::Mkdir { path: rel.to_vec() }, true)?;
            }
        }
        let pd = self
            .resolver
            .dir(&parent)
            .map_err(|e| ioerr(self.root, "open directory", &parent, e))?;
        match pd.mkdir(&name, 0o755) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(ioerr(self.root, "create directory", rel, e)),
        }
        if inside_new {
            self.new_dir_set.insert(rel.to_vec());
        }
        Ok(())
    }

    /// Stage one member; `data` yields its content (files only).
    pub fn member(&mut self, label: &str, meta: &MemberMeta, data: &mut impl Read) -> Result<()> {
        // Which MANIFEST entry is this member?
        let (path, entry) = match meta
            .path
            .strip_suffix(b".new")
            .and_then(|p| self.new.get(p))
        {
            Some(e) if e.critical => (e.path.clone(), e),
            _ => match self.new.get(&meta.path) {
                Some(e) if !e.critical => (e.path.clone(), e),
                _ => return Err(bad_member(label, &meta.path, "not listed in the MANIFEST")),
            },
        };
        if !self.seen.insert(path.clone()) {
            return Err(bad_member(label, &meta.path, "appears twice"));
        }
        if path == STATE_DIR.as_bytes() || path.starts_with(format!("{STATE_DIR}/").as_bytes()) {
            return Err(bad_member(
                label,
                &path,
                "sysup's own state directory cannot be shipped",
            ));
        }
        let holder_member = match entry.kind {
            Kind::Hardlink => {
                let target = entry.link.as_deref().unwrap_or_default();
                match self.new.get(target) {
                    Some(h) if h.kind == Kind::File && self.seen.contains(target) => {
                        Some(h.member_name())
                    }
                    _ => {
                        return Err(bad_member(
                            label,
                            &path,
                            "hard link to something that is not an earlier file of this dist",
                        ))
                    }
                }
            }
            _ => None,
        };
        if let Some(why) = disagreement(meta, entry, holder_member.as_deref()) {
            return Err(bad_member(label, &meta.path, why));
        }
        let (pdir, base) = split(&path);
        let (pdir, base) = (pdir.to_vec(), base.to_vec());
        if !pdir.is_empty() {
            match self.new.get(&pdir) {
                Some(p) if p.kind != Kind::Dir => {
                    return Err(bad_member(
                        label,
                        &path,
                        "its parent is not a directory in this dist",
                    ))
                }
                Some(_) if !self.seen.contains(&pdir) => {
                    return Err(bad_member(
                        label,
                        &path,
                        "comes before its parent directory",
                    ))
                }
                _ => {}
            }
        }
        self.ensure_outer_dir(&pdir)?;
        let entry = entry.clone();
        if entry.kind == Kind::Dir {
            self.stage_dir(label, &entry, &pdir, &base)
        } else {
            self.stage_other(label, &entry, &pdir, &base, data)
        }
    }

    fn parent_missing(&mut self, pdir: &[u8]) -> bool {
        self.resolver.dir(pdir).is_err()
    }

    /// After the last member: every MANIFEST entry must have been seen; new
    /// directories get their final owner, mode and xattrs (deepest first, so
    /// a read-only directory is closed only after its children exist); all
    /// staged data is made durable (one syncfs per filesystem).
    pub fn finish(mut self, label: &str) -> Result<Staged> {
        if let Some(missing) = self
            .new
            .entries()
            .iter()
            .find(|e| !self.seen.contains(&e.path))
        {
            return Err(bad_member(
                label,
                &missing.path,
                "listed in the MANIFEST but missing from the dist",
            ));
        }
        if !self.dry() {
            let mut dirs = std::mem::take(&mut self.new_dirs);
            dirs.sort_by(|a, b| b.cmp(a));
            for path in &dirs {
                let e = self
                    .new
                    .get(path)
                    .expect("new dirs come from the MANIFEST")
                    .clone();
                let (pdir, base) = split(path);
                let name = if self.new_dir_set.contains(pdir) {
                    base.to_vec()
                } else if let Some(k) = self
                    .out
                    .kernel
                    .as_ref()
                    .filter(|k| k.dirs.install_dir.as_bytes() == path.as_slice())
                {
                    k.staged.clone()
                } else {
                    self.staged_name(path)
                };
                let d = self.dir_of(pdir)?;
                let rel = join(pdir, &name);
                // the staged directory's own descriptor (held since its
                // creation), not its name in a directory others may write
                let own = self.dir_of(path)?;
                let own = own.fd_ref();
                self.chown_fd(own, &e)
                    .map_err(|err| ioerr(self.root, "chown", &rel, err))?;
                fd::chmod(own, e.mode).map_err(|err| ioerr(self.root, "chmod", &rel, err))?;
                for (k, v) in &e.xattrs {
                    fd::set_xattr(own, k, v)
                        .map_err(|err| write::xattr_refused(label, &e, k, err))?;
                }
                if let Ok(st) = nix::sys::stat::fstat(d.as_fd_raw()) {
                    self.filesystems.entry(st.st_dev).or_insert(d);
                }
            }
            for d in self.filesystems.values() {
                fault("stage-syncfs")
                    .map_err(|e| Error::io("sync filesystem of", self.root.path(), e))?;
                // SAFETY: valid descriptor.
                if unsafe { libc::syncfs(d.as_fd_raw()) } != 0 {
                    return Err(Error::io(
                        "sync filesystem of",
                        self.root.path(),
                        std::io::Error::last_os_error(),
                    ));
                }
            }
        }
        self.out.counts.entries = self.new.entries().len() as u64;
        Ok(self.out)
    }
}

impl Dir {
    /// The raw descriptor, for fstat/syncfs.
    pub(crate) fn as_fd_raw(&self) -> std::os::fd::RawFd {
        self.fd_ref().as_raw_fd()
    }
}
