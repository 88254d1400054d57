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
//! - a locally modified config file is kept; its new version is staged to
//!   go live as `<name>.sysupnew`;
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

use crate::util::digest::Sha256;

use crate::error::{Error, Result};
use crate::format::archive::member::MemberMeta;
use crate::format::manifest::{Entry, Kind, Manifest};
use crate::format::spec::KernelDirs;
use crate::host::checkpoint::{checkpoint, fault, fault_write};
use crate::host::journal::{Journal, Record};
use crate::host::plan::{join, split, Attrs, Counts, KernelSwap, Rename};
use crate::host::root::{fd, Dir, Node, Resolver, Root, Stat};
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
    /// Entries written where nothing stood (root-relative, in tar order).
    pub added: Vec<Vec<u8>>,
    /// Entries written, or given new attributes, over something that stood
    /// there. With `added` and `config_kept`, every entry `counts.changed`
    /// counts, each once; the same in a dry run as in the real staging.
    pub changed: Vec<Vec<u8>>,
    pub counts: Counts,
}

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
    euid: u32,
    egid: u32,
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

/// Refuse, before anything is staged, a dist that names sysup's own state:
/// an entry in `var/db/sysup` or the directory itself, an entry on its way
/// (`var`, `var/db`) that is not a directory — a link there would move the
/// state directory once committed — an `OBSOLETE` entry on or under that
/// chain, or a kernel directory there. (sysup's own state is not the dist's
/// to ship, remove or redirect.)
pub fn refuse_state_paths(
    label: &str,
    manifest: &Manifest,
    obsolete: &[String],
    kernel: Option<&KernelDirs>,
) -> Result<()> {
    use crate::host::state::touches_state;
    for e in manifest.entries() {
        if !touches_state(&e.path) {
            continue;
        }
        if e.path == STATE_DIR.as_bytes() || e.path.starts_with(format!("{STATE_DIR}/").as_bytes())
        {
            return Err(bad_member(
                label,
                &e.path,
                "sysup's own state directory cannot be shipped",
            ));
        }
        if e.kind != Kind::Dir {
            return Err(bad_member(
                label,
                &e.path,
                format!(
                    "must be a directory: sysup's state directory {STATE_DIR} is under it, \
                     and its path must stay a chain of real directories"
                ),
            ));
        }
    }
    let refused = |what: &str, p: &str| Error::Tar {
        path: label.into(),
        reason: format!(
            "{what} '{p}' names sysup's own state directory {STATE_DIR} or a directory on \
             its way, which no dist may remove or replace"
        ),
    };
    if let Some(p) = obsolete.iter().find(|p| touches_state(p.as_bytes())) {
        return Err(refused("OBSOLETE entry", p));
    }
    if let Some(k) = kernel {
        for d in [&k.install_dir, &k.keep_old] {
            if touches_state(d.trim_matches('/').as_bytes()) {
                return Err(refused("kernel directory", d));
            }
        }
    }
    Ok(())
}

fn ioerr(root: &Root, action: &'static str, rel: &[u8], e: std::io::Error) -> Error {
    Error::io(action, root.display(rel), e)
}

/// Compare a member with its MANIFEST entry; `None` when they agree.
fn disagreement(meta: &MemberMeta, e: &Entry, holder_member: Option<&[u8]>) -> Option<String> {
    if meta.kind != e.kind {
        return Some(format!(
            "type {} vs {} in MANIFEST",
            meta.kind.as_str(),
            e.kind.as_str()
        ));
    }
    let checks = [
        (meta.kind != Kind::Symlink && meta.mode != e.mode, "mode"),
        (meta.uid != e.uid || meta.gid != e.gid, "owner"),
        (meta.mtime != e.mtime, "mtime"),
        (meta.kind == Kind::File && meta.size != e.size, "size"),
        (meta.kind != Kind::File && meta.size != 0, "size"),
        (meta.dev != e.dev, "device numbers"),
        (meta.xattrs != e.xattrs, "extended attributes"),
        (
            meta.kind == Kind::Symlink && meta.link != e.link,
            "link target",
        ),
        (
            meta.kind == Kind::Hardlink && meta.link.as_deref() != holder_member,
            "hard link target",
        ),
    ];
    checks
        .iter()
        .find(|(bad, _)| *bad)
        .map(|(_, what)| format!("its {what} disagrees with the MANIFEST"))
}

/// How a live object compares with its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compare {
    /// Nothing to do.
    Same,
    /// Content (or target, or device) right; owner, mode, xattrs or mtime not.
    Attrs,
    /// Must be written anew.
    Differ,
}

fn attrs_of(e: &Entry, mtime: Option<i64>) -> Attrs {
    Attrs {
        path: e.path.clone(),
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        xattrs: e
            .xattrs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        mtime,
        is_symlink: e.kind == Kind::Symlink,
    }
}

/// Whether the old and new MANIFEST describe the same object.
fn same_object(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind
        && a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.size == b.size
        && a.sha256 == b.sha256
        && a.link == b.link
        && a.dev == b.dev
        && a.xattrs == b.xattrs
}

/// Whether a live object's lstat matches an entry (content not read).
fn stat_matches(e: &Entry, st: &Stat) -> bool {
    st.file_type() == e.kind.file_type()
        && (e.kind == Kind::Symlink || st.perm() == e.mode)
        && u64::from(st.uid) == e.uid
        && u64::from(st.gid) == e.gid
        && (e.kind == Kind::Dir || st.mtime == e.mtime)
        && (!matches!(e.kind, Kind::File | Kind::Hardlink) || st.size == e.size)
        && e.dev.is_none_or(|(a, b)| st.rdev == libc::makedev(a, b))
}

fn live_xattrs(dir: &Dir, name: &[u8]) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let p = dir
        .real_path()?
        .join(crate::format::manifest::bytes_path(name));
    crate::util::fsutil::read_xattrs(&p)
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
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
        }
    }

    /// Trust, in an upgrade, files the last apply left untouched as `stats`
    /// says (without it, every file is read).
    pub fn with_stats(mut self, stats: &'a StatCache) -> Self {
        self.stats = Some(stats);
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
        self.log_dir(&parent)?;
        if let Some(j) = self.journal.as_deref_mut() {
            j.append(&Record::Mkdir { path: rel.to_vec() }, true)?;
        }
        let pd = self
            .resolver
            .dir(&parent)
            .map_err(|e| ioerr(self.root, "open directory", &parent, e))?;
        match pd.mkdir(&name, 0o755) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(ioerr(self.root, "create directory", rel, e)),
        }
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
            self.stage_dir(&entry, &pdir, &base)
        } else {
            self.stage_other(label, &entry, &pdir, &base, data)
        }
    }

    fn stage_dir(&mut self, e: &Entry, pdir: &[u8], base: &[u8]) -> Result<()> {
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
                // an existing real directory: only its attributes may change
                let d = self.dir_of(pdir)?;
                let x = live_xattrs(&d, base).unwrap_or_default();
                let attrs_ok = st.perm() == e.mode
                    && u64::from(st.uid) == e.uid
                    && u64::from(st.gid) == e.gid
                    && x == e.xattrs;
                if attrs_ok {
                    self.out.counts.unchanged += 1;
                } else {
                    self.out.counts.changed += 1;
                    self.out.changed.push(path);
                    self.out.dir_attrs.push(attrs_of(e, None));
                }
                return Ok(());
            }
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
            if live.is_some() {
                // the running kernel moves to keep_old: its parent must be
                // there before the commit (created now, journaled)
                let kp = split(
                    self.kernel
                        .as_ref()
                        .expect("checked above")
                        .keep_old
                        .as_bytes(),
                )
                .0
                .to_vec();
                self.ensure_outer_dir(&kp)?;
            }
            self.out.kernel = Some(KernelSwap {
                dirs: self.kernel.clone().expect("checked above"),
                staged: name,
            });
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

    /// A live directory is about to be replaced by a non-directory (and
    /// removed with everything in it): refuse if it holds anything no dist
    /// shipped — not in the old MANIFEST, or a config file changed since.
    fn refuse_unshipped(&mut self, path: &[u8], pdir: &[u8], base: &[u8], e: &Entry) -> Result<()> {
        let sub = self
            .dir_of(pdir)?
            .open_subdir(base)
            .map_err(|err| ioerr(self.root, "open directory", path, err))?;
        let mut found = Vec::new();
        self.unshipped_below(&sub, path, &mut found)
            .map_err(|err| ioerr(self.root, "list", path, err))?;
        if found.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 5;
        let mut list: Vec<String> = found
            .iter()
            .take(SHOWN)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        if found.len() > SHOWN {
            list.push(format!("and {} more", found.len() - SHOWN));
        }
        Err(Error::Refused(format!(
            "'{}' is a directory holding what no dist shipped ({}), and the new dist makes it a {}; sysup never deletes what it did not ship: move those elsewhere and run the same command again",
            self.root.display(path).display(),
            list.join(", "),
            match e.kind {
                Kind::Symlink => "symbolic link",
                Kind::Char | Kind::Block => "device node",
                Kind::Fifo => "fifo",
                _ => "file",
            },
        )))
    }

    /// Collect, below directory `dir` (root-relative `rel`), what no dist
    /// shipped; an unshipped directory is listed once, not descended into.
    /// Never follows a symlink.
    fn unshipped_below(
        &self,
        dir: &Dir,
        rel: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> std::io::Result<()> {
        for name in dir.list()? {
            let p = join(rel, &name);
            let Some(st) = dir.stat(&name)? else { continue };
            let Some(old) = self.old.and_then(|o| o.get(&p)) else {
                out.push(p);
                continue;
            };
            if st.is_dir() {
                if old.kind == Kind::Dir {
                    self.unshipped_below(&dir.open_subdir(&name)?, &p, out)?;
                } else {
                    out.push(p);
                }
            } else if old.config
                && old.kind == Kind::File
                && st.is_file()
                && dir.sha256(&name).ok() != old.sha256
            {
                out.push(p); // a config file the admin changed
            }
        }
        Ok(())
    }

    fn parent_missing(&mut self, pdir: &[u8]) -> bool {
        self.resolver.dir(pdir).is_err()
    }

    /// Compare a live non-directory with its entry.
    fn compare(
        &mut self,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        live: Option<Stat>,
    ) -> Result<Compare> {
        let Some(st) = live else {
            return Ok(Compare::Differ);
        };
        if st.file_type() != e.kind.file_type() {
            return Ok(Compare::Differ);
        }
        let d = self.dir_of(pdir)?;
        let old = self.old.and_then(|o| o.get(&e.path)).cloned();
        // The same inode the last apply left, untouched since (its ctime)?
        // Size and mtime alone are not proof: `touch -r` sets an mtime back.
        let untouched = self.mode == Mode::Upgrade
            && self
                .old
                .and_then(|o| o.position(&e.path))
                .is_some_and(|i| self.stats.is_some_and(|s| s.unchanged(i, &st)));
        // Is the content (target, device, inode) right?
        match e.kind {
            Kind::Symlink => {
                let t = d
                    .read_link(base)
                    .map_err(|err| ioerr(self.root, "read link", &e.path, err))?;
                if Some(t) != e.link {
                    return Ok(Compare::Differ);
                }
            }
            Kind::Char | Kind::Block => {
                if e.dev.is_none_or(|(a, b)| st.rdev != libc::makedev(a, b)) {
                    return Ok(Compare::Differ);
                }
            }
            Kind::Fifo | Kind::Dir => {}
            Kind::Hardlink => {
                // the same inode as the holder, which is staying?
                let holder = e.link.clone().unwrap_or_default();
                let Some((hd, hn)) = self.located.get(&holder).cloned() else {
                    return Ok(Compare::Differ);
                };
                if self.new_dir_set.contains(&hd)
                    || hn.starts_with(b".sysup-")
                    || hn.ends_with(b".new")
                {
                    return Ok(Compare::Differ); // the holder is a new inode
                }
                let hdir = self.dir_of(&hd)?;
                let hst = hdir
                    .stat(&hn)
                    .map_err(|err| ioerr(self.root, "stat", &holder, err))?;
                let same = hst.is_some_and(|h| h.ino == st.ino && h.dev == st.dev);
                // attributes live on the shared inode: the holder's entry handles them
                return Ok(if same { Compare::Same } else { Compare::Differ });
            }
            Kind::File => {
                if st.size != e.size {
                    return Ok(Compare::Differ);
                }
                // In an upgrade, a file that nobody touched since it was
                // installed (the inode and ctime recorded then, size and
                // mtime as the old MANIFEST says) holds the old content,
                // unread: right if the old and new hashes agree, wrong if
                // they differ.
                let untouched_old = untouched
                    && old.as_ref().is_some_and(|o| {
                        o.kind == Kind::File && o.mtime == st.mtime && o.size == st.size
                    });
                if untouched_old {
                    if old.as_ref().and_then(|o| o.sha256) != e.sha256 {
                        return Ok(Compare::Differ);
                    }
                } else {
                    let h = d
                        .sha256(base)
                        .map_err(|err| ioerr(self.root, "read", &e.path, err))?;
                    if Some(h) != e.sha256 {
                        return Ok(Compare::Differ);
                    }
                }
            }
        }
        // Content is right; what about the attributes?
        let xattrs_known_same = untouched
            && old
                .as_ref()
                .is_some_and(|o| same_object(o, e) && stat_matches(o, &st));
        let xattrs_same = xattrs_known_same
            || e.kind == Kind::Symlink
            || live_xattrs(&d, base)
                .map_err(|err| ioerr(self.root, "read extended attributes of", &e.path, err))?
                == e.xattrs;
        Ok(if stat_matches(e, &st) && xattrs_same {
            Compare::Same
        } else {
            Compare::Attrs
        })
    }

    fn stage_other(
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
        // Config files the admin changed are kept; the new one goes beside.
        let mut final_name = base.to_vec();
        if e.config && e.kind == Kind::File && !inside_new && live.is_some_and(|s| s.is_file()) {
            let d = self.dir_of(pdir)?;
            let have = d
                .sha256(base)
                .map_err(|err| ioerr(self.root, "read", &path, err))?;
            let old_hash = self.old.and_then(|o| o.get(&path)).and_then(|o| o.sha256);
            let pristine = old_hash == Some(have);
            // Modified by the admin (neither the new nor the old shipped
            // version): keep it, put the new one beside it.
            if Some(have) != e.sha256 && !pristine {
                let mut n = base.to_vec();
                n.extend_from_slice(b".sysupnew");
                final_name = n;
                self.out.config_kept.push(path.clone());
            }
        }
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
                    self.out.attrs.push(attrs_of(e, Some(e.mtime)));
                    self.located.insert(path, (pdir.to_vec(), base.to_vec()));
                    return Ok(());
                }
                Compare::Differ => {}
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
    fn create(
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
                // per file was a measurable share of an apply's CPU
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
                    fd::set_xattr(&f, k, v).map_err(io("set extended attribute on"))?;
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
                        .map_err(io("set extended attribute on"))?;
                }
                d.set_mtime(name, e.mtime).map_err(io("set mtime of"))?;
            }
            Kind::Dir => unreachable!("directories are staged by stage_dir"),
        }
        Ok(written)
    }

    /// chown unless the owner is already right (so unprivileged runs work on
    /// trees they own).
    fn chown(&self, d: &Dir, name: &[u8], e: &Entry) -> std::io::Result<()> {
        let st = d
            .stat(name)?
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))?;
        if self.needs_chown((st.uid, st.gid), e)? {
            d.chown(name, e.uid, e.gid)?;
        }
        Ok(())
    }

    /// [`Stager::chown`] of the inode a descriptor holds.
    fn chown_fd(&self, f: &impl AsRawFd, e: &Entry) -> std::io::Result<()> {
        if self.needs_chown(fd::owner(f)?, e)? {
            fd::chown(f, e.uid, e.gid)?;
        }
        Ok(())
    }

    fn needs_chown(&self, (uid, gid): (u32, u32), e: &Entry) -> std::io::Result<bool> {
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
                        .map_err(|err| ioerr(self.root, "set extended attribute on", &rel, err))?;
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
