//! What staging checks and compares: a dist that names sysup's own state
//! is refused before anything is staged ([`refuse_state_paths`]); a member
//! must agree with its MANIFEST entry; a live object is compared with its
//! entry (unchanged, attributes only, or written anew), trusting the stat
//! cache only for files the last apply left untouched, and comparing only
//! the extended attributes the entry carries or the apply would drop; a live
//! directory the new dist replaces is refused if it holds what no dist
//! shipped.
//!
//! Invariants: nothing here writes; a symlink is never followed.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::format::archive::member::MemberMeta;
use crate::format::manifest::{Entry, Kind, Manifest};
use crate::format::spec::KernelDirs;
use crate::host::plan::{join, Attrs};
use crate::host::root::{Dir, Stat};
use crate::host::state::STATE_DIR;
use crate::util::fsutil::CAPABILITY;

use super::{bad_member, ioerr, Mode, Stager};

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

/// Compare a member with its MANIFEST entry; `None` when they agree.
pub(super) fn disagreement(
    meta: &MemberMeta,
    e: &Entry,
    holder_member: Option<&[u8]>,
) -> Option<String> {
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
pub(super) enum Compare {
    /// Nothing to do.
    Same,
    /// Content (or target, or device) right; owner, mode, xattrs or mtime not.
    Attrs,
    /// Must be written anew.
    Differ,
}

/// Whether the old and new MANIFEST describe the same object.
pub(super) fn same_object(a: &Entry, b: &Entry) -> bool {
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

/// Whether a live object has the entry's mode, owner and group (its
/// extended attributes are compared by the caller, which reads them).
pub(super) fn owner_mode_match(e: &Entry, st: &Stat) -> bool {
    st.perm() == e.mode && u64::from(st.uid) == e.uid && u64::from(st.gid) == e.gid
}

/// Whether a live object's lstat matches an entry (content not read).
pub(super) fn stat_matches(e: &Entry, st: &Stat) -> bool {
    st.file_type() == e.kind.file_type()
        && (e.kind == Kind::Symlink || st.perm() == e.mode)
        && u64::from(st.uid) == e.uid
        && u64::from(st.gid) == e.gid
        && (e.kind == Kind::Dir || st.mtime == e.mtime)
        && (!matches!(e.kind, Kind::File | Kind::Hardlink) || st.size == e.size)
        && e.dev.is_none_or(|(a, b)| st.rdev == libc::makedev(a, b))
}

impl Stager<'_> {
    /// The extended attributes to take off the live object of `e` if it
    /// has them: in an upgrade, those the old dist's entry carried and the
    /// new one lacks (the dist shipped them and takes them back); in a
    /// repair, a file capability the entry lacks (the admin asked for the
    /// dist's state, and a privilege it never granted is not part of it).
    /// Nothing else: an attribute no dist shipped is the admin's, a
    /// service's or the filesystem's — and a host's LSM label is its
    /// policy's.
    pub(super) fn dropped_xattrs(&self, e: &Entry) -> Vec<String> {
        if e.kind == Kind::Symlink {
            return Vec::new();
        }
        match self.mode {
            Mode::Upgrade => self
                .old
                .and_then(|o| o.get(&e.path))
                .map(|o| {
                    o.xattrs
                        .keys()
                        .filter(|k| !e.xattrs.contains_key(*k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            Mode::Repair if !e.xattrs.contains_key(CAPABILITY) => vec![CAPABILITY.to_string()],
            _ => Vec::new(),
        }
    }

    /// The live object's extended attributes compared with `e`: the names
    /// the entry carries and those this apply would drop
    /// ([`Stager::dropped_xattrs`]). No other name is read, so a host's
    /// label or a local attribute never makes an unchanged object differ.
    pub(super) fn live_xattrs(
        &self,
        dir: &Dir,
        name: &[u8],
        e: &Entry,
    ) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
        let dropped = self.dropped_xattrs(e);
        dir.xattrs_where(name, |n| {
            e.xattrs.contains_key(n) || dropped.iter().any(|d| d == n)
        })
    }

    /// The in-place change that gives a live object `e`'s attributes.
    pub(super) fn attrs_of(&self, e: &Entry, mtime: Option<i64>) -> Attrs {
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
            drop_xattrs: self.dropped_xattrs(e),
            mtime,
            is_symlink: e.kind == Kind::Symlink,
        }
    }

    /// A live directory is about to be replaced by a non-directory (and
    /// removed with everything in it): refuse if it holds anything no dist
    /// shipped — not in the old MANIFEST, or a config file changed since.
    pub(super) fn refuse_unshipped(
        &mut self,
        path: &[u8],
        pdir: &[u8],
        base: &[u8],
        e: &Entry,
    ) -> Result<()> {
        self.refuse_mount_point(pdir, base, path, e.kind)?;
        let kind = kind_name(e.kind);
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
            kind,
        )))
    }

    /// The live object at `path` (`base` in `pdir`), which the commit is to
    /// replace by a `kind`, must not be a mount point: a filesystem no dist
    /// shipped, which a rename could not move anyway (EBUSY, on every run).
    pub(super) fn refuse_mount_point(
        &mut self,
        pdir: &[u8],
        base: &[u8],
        path: &[u8],
        kind: Kind,
    ) -> Result<()> {
        let mounted = self
            .dir_of(pdir)?
            .is_mount_point(base)
            .map_err(|err| ioerr(self.root, "stat", path, err))?;
        if !mounted {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "'{}' is a mount point, and the new dist replaces it with a {}; sysup never replaces a mounted filesystem: unmount it (and move what it held elsewhere) and run the same command again",
            self.root.display(path).display(),
            kind_name(kind),
        )))
    }

    /// Collect, below directory `dir` (root-relative `rel`), what no dist
    /// shipped; an unshipped directory is listed once, not descended into.
    /// Never follows a symlink.
    pub(super) fn unshipped_below(
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

    /// Compare a live non-directory with its entry.
    pub(super) fn compare(
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
        if let Some(verdict) = self.content_verdict(e, &d, base, &st, old.as_ref(), untouched)? {
            return Ok(verdict);
        }
        // Content is right; what about the attributes?
        // A mode, owner or mtime that differs decides it without the live
        // extended attributes: `Attrs` sets the entry's own, whatever the
        // live ones are (most upgraded files are here: a new mtime only).
        if !stat_matches(e, &st) {
            return Ok(Compare::Attrs);
        }
        let xattrs_known_same = untouched
            && old
                .as_ref()
                .is_some_and(|o| same_object(o, e) && stat_matches(o, &st));
        let xattrs_same = xattrs_known_same
            || e.kind == Kind::Symlink
            || self
                .live_xattrs(&d, base, e)
                .map_err(|err| ioerr(self.root, "read extended attributes of", &e.path, err))?
                == e.xattrs;
        Ok(if xattrs_same {
            Compare::Same
        } else {
            Compare::Attrs
        })
    }

    /// Whether a live object's content (target, device, inode) is right:
    /// `Some` verdict when that decides it, `None` when only its attributes
    /// remain to compare. `untouched`: the stat cache vouches for the inode
    /// the last apply left, whose old entry is `old`.
    fn content_verdict(
        &mut self,
        e: &Entry,
        d: &Dir,
        base: &[u8],
        st: &Stat,
        old: Option<&Entry>,
        untouched: bool,
    ) -> Result<Option<Compare>> {
        match e.kind {
            Kind::Symlink => {
                let t = d
                    .read_link(base)
                    .map_err(|err| ioerr(self.root, "read link", &e.path, err))?;
                if Some(t) != e.link {
                    return Ok(Some(Compare::Differ));
                }
            }
            Kind::Char | Kind::Block => {
                if e.dev.is_none_or(|(a, b)| st.rdev != libc::makedev(a, b)) {
                    return Ok(Some(Compare::Differ));
                }
            }
            Kind::Fifo | Kind::Dir => {}
            Kind::Hardlink => {
                // the same inode as the holder, which is staying?
                let holder = e.link.clone().unwrap_or_default();
                let Some((hd, hn)) = self.located.get(&holder).cloned() else {
                    return Ok(Some(Compare::Differ));
                };
                if self.new_dir_set.contains(&hd)
                    || hn.starts_with(b".sysup-")
                    || hn.ends_with(b".new")
                {
                    return Ok(Some(Compare::Differ)); // the holder is a new inode
                }
                let hdir = self.dir_of(&hd)?;
                let hst = hdir
                    .stat(&hn)
                    .map_err(|err| ioerr(self.root, "stat", &holder, err))?;
                let same = hst.is_some_and(|h| h.ino == st.ino && h.dev == st.dev);
                // attributes live on the shared inode: the holder's entry handles them
                return Ok(Some(if same { Compare::Same } else { Compare::Differ }));
            }
            Kind::File => {
                if st.size != e.size {
                    return Ok(Some(Compare::Differ));
                }
                // In an upgrade, a file that nobody touched since it was
                // installed (the inode and ctime recorded then, size and
                // mtime as the old MANIFEST says) holds the old content,
                // unread: right if the old and new hashes agree, wrong if
                // they differ.
                let untouched_old = untouched
                    && old.is_some_and(|o| {
                        o.kind == Kind::File && o.mtime == st.mtime && o.size == st.size
                    });
                if untouched_old {
                    if old.and_then(|o| o.sha256) != e.sha256 {
                        return Ok(Some(Compare::Differ));
                    }
                } else {
                    let h = d
                        .sha256(base)
                        .map_err(|err| ioerr(self.root, "read", &e.path, err))?;
                    if Some(h) != e.sha256 {
                        return Ok(Some(Compare::Differ));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// How an error names a kind of entry.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Symlink => "symbolic link",
        Kind::Char | Kind::Block => "device node",
        Kind::Fifo => "fifo",
        Kind::Dir => "directory",
        _ => "file",
    }
}
