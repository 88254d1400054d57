//! Staging an installed config file (docs/config-merge.md): its fate is
//! decided from hashes ([`Fate::of`]) — shipped like any other file, left
//! alone, kept with the new version beside it, or merged three ways with
//! the old dist's copy from the kept base as the ancestor.
//!
//! Invariants: theirs is checked against the MANIFEST hash before it is
//! merged; a clean merge is written under the entry's staged name with the
//! dist's owner, mode and xattrs (through its descriptor), fsynced and read
//! back against the merged bytes' hash before the plan names it; a
//! conflicted merge goes to `<path>.sysupmerge` (staged too, mode no wider
//! than the installed file's: it holds the admin's content), theirs to
//! `<path>.sysupnew`; a dry run decides the same and writes nothing.

use std::io::{Cursor, Read};
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::format::manifest::{Entry, Kind};
use crate::format::name::DistId;
use crate::host::conffile::ancestors::{self, Ancestors};
use crate::host::conffile::{merge3, Fate, Merged, MERGE_CAP, MERGE_SUFFIX, NEW_SUFFIX};
use crate::host::plan::{join, Rename};
use crate::host::root::{fd, Dir, Stat};
use crate::host::state::State;
use crate::util::digest::Sha256;

use super::checks::owner_mode_match;
use super::write::xattr_refused;
use super::{ioerr, Stager};

/// Where a stager's merges come from: whether merging is on, and the kept
/// base of the installed dist (the ancestors).
pub struct MergeSource<'a> {
    pub on: bool,
    pub base: Option<(&'a State, DistId)>,
}

impl Stager<'_> {
    /// The fate of entry `e` over what is installed (`live`): only an
    /// installed regular file of a config entry, outside a new directory,
    /// is anything but [`Fate::Ship`].
    pub(super) fn config_fate(
        &mut self,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        inside_new: bool,
        live: Option<Stat>,
    ) -> Result<Fate> {
        if !(e.config && e.kind == Kind::File && !inside_new && live.is_some_and(|s| s.is_file())) {
            return Ok(Fate::Ship);
        }
        let d = self.dir_of(pdir)?;
        let ours = d
            .sha256(base)
            .map_err(|err| ioerr(self.root, "read", &e.path, err))?;
        let old = self
            .old
            .and_then(|o| o.get(&e.path))
            .filter(|o| o.kind == Kind::File)
            .and_then(|o| o.sha256);
        let theirs = e.sha256.unwrap_or_default();
        let fate = Fate::of(ours, old, theirs, self.merge.on);
        // A critical file is staged as `<name>.new`: kept, never merged.
        // A file hard links name must hold what the dist ships (its links
        // are not config files to merge): kept beside its new version.
        let holder = self.link_holders.contains(&e.path);
        Ok(match fate {
            Fate::Merge if e.critical || holder => Fate::Keep,
            Fate::Leave if holder => Fate::Keep,
            f => f,
        })
    }

    /// [`Fate::Leave`]: the installed content stays; only the dist's owner,
    /// mode and xattrs are set if they differ (not the admin's mtime).
    pub(super) fn leave_config(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        st: Stat,
    ) -> Result<()> {
        let d = self.dir_of(pdir)?;
        let xattrs = self
            .live_xattrs(&d, base, e)
            .map_err(|err| ioerr(self.root, "read extended attributes of", &e.path, err))?;
        let same = owner_mode_match(e, &st) && xattrs == e.xattrs;
        self.located
            .insert(e.path.clone(), (pdir.to_vec(), base.to_vec()));
        if same {
            self.out.counts.unchanged += 1;
        } else {
            self.out.counts.changed += 1;
            self.out.changed.push(e.path.clone());
            let a = self.in_place(label, e, pdir, Some(&st), None)?;
            self.out.attrs.push(a);
        }
        Ok(())
    }

    /// [`Fate::Merge`]: merge, then stage the result — a clean merge under
    /// the entry's own name, or (conflict, binary, too big, no ancestor)
    /// ours kept with theirs as `<name>.sysupnew` and any conflicted merge
    /// as `<name>.sysupmerge`.
    pub(super) fn stage_merge(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        st: Stat,
        data: &mut impl Read,
    ) -> Result<()> {
        let ancestor = if e.size <= MERGE_CAP && st.size <= MERGE_CAP {
            self.ancestor(&e.path)?
        } else {
            None
        };
        let Some(ancestor) = ancestor else {
            return self.stage_kept(label, e, pdir, base, data, None);
        };
        let theirs = read_theirs(label, e, data)?;
        let ours = self.read_ours(e, pdir, base)?;
        match merge3(&ancestor, &ours, &theirs) {
            Merged::Clean(m) => {
                // the merge is renamed over the live file
                self.refuse_mount_point(pdir, base, &e.path, e.kind)?;
                self.stage_merged(label, e, pdir, base, m)
            }
            Merged::Conflict(m) => self.stage_kept(
                label,
                e,
                pdir,
                base,
                &mut Cursor::new(theirs),
                Some((m, st)),
            ),
            Merged::Unmergeable(_) => {
                self.stage_kept(label, e, pdir, base, &mut Cursor::new(theirs), None)
            }
        }
    }

    /// The old dist's copy of `path`, read (with every other config file
    /// the dist changed) from the kept base on first need.
    fn ancestor(&mut self, path: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.ancestors.is_none() {
            let found = match (&self.merge.base, self.old) {
                (Some((state, id)), Some(old)) => {
                    let wanted: Vec<&Entry> = old
                        .entries()
                        .iter()
                        .filter(|o| o.config && o.kind == Kind::File)
                        .filter(|o| self.new.get(&o.path).is_some_and(|n| n.sha256 != o.sha256))
                        .collect();
                    ancestors::read(state, id, &wanted)?
                }
                _ => Ancestors::new(),
            };
            self.ancestors = Some(found);
        }
        Ok(self.ancestors.as_ref().and_then(|a| a.get(path).cloned()))
    }

    /// The installed file's content, at most [`MERGE_CAP`] bytes (past it
    /// the caller fell back already: the file grew since its stat).
    fn read_ours(&mut self, e: &Entry, pdir: &[u8], base: &[u8]) -> Result<Vec<u8>> {
        let d = self.dir_of(pdir)?;
        let mut ours = Vec::new();
        d.open_file(base)
            .and_then(|f| f.take(MERGE_CAP + 1).read_to_end(&mut ours))
            .map_err(|err| ioerr(self.root, "read", &e.path, err))?;
        Ok(ours)
    }

    /// Ours kept: theirs staged to go live as `<name>.sysupnew`, and a
    /// conflicted merge (`merge`, with the installed file's stat) as
    /// `<name>.sysupmerge`.
    fn stage_kept(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        data: &mut impl Read,
        merge: Option<(Vec<u8>, Stat)>,
    ) -> Result<()> {
        self.out.counts.changed += 1;
        self.out.config_kept.push(e.path.clone());
        if let Some((m, st)) = merge {
            self.out.config_conflicted.push(e.path.clone());
            if self.dry() {
                self.out.counts.bytes_written += m.len() as u64;
            } else {
                let staged = [self.staged_name(&e.path), b"-merge".to_vec()].concat();
                let mode = e.mode & st.perm() & 0o777;
                let final_name = [base, MERGE_SUFFIX].concat();
                let to = Rename {
                    dir: pdir.to_vec(),
                    staged,
                    name: final_name,
                    is_dir: false,
                };
                self.write_bytes(label, e, to, &m, mode)?;
            }
        }
        let final_name = [base, NEW_SUFFIX].concat();
        if self.dry() {
            self.out.counts.bytes_written += e.size;
            std::io::copy(data, &mut std::io::sink())
                .map_err(|err| Error::io("read", label, err))?;
            return Ok(());
        }
        self.write_entry(label, e, pdir, base, final_name, data)
    }

    /// A clean merge: staged under the entry's own name.
    fn stage_merged(
        &mut self,
        label: &str,
        e: &Entry,
        pdir: &[u8],
        base: &[u8],
        m: Vec<u8>,
    ) -> Result<()> {
        self.out.counts.changed += 1;
        self.out.config_merged.push(e.path.clone());
        if self.dry() {
            self.out.counts.bytes_written += m.len() as u64;
            return Ok(());
        }
        let staged = self.staged_name(&e.path);
        let to = Rename {
            dir: pdir.to_vec(),
            staged: staged.clone(),
            name: base.to_vec(),
            is_dir: false,
        };
        self.write_bytes(label, e, to, &m, e.mode)?;
        self.located.insert(e.path.clone(), (pdir.to_vec(), staged));
        Ok(())
    }

    /// Write `bytes` as `to`'s staged name with `e`'s owner and xattrs and
    /// `mode`, fsync it, read it back against the bytes' hash, and plan the
    /// rename `to`.
    fn write_bytes(
        &mut self,
        label: &str,
        e: &Entry,
        to: Rename,
        bytes: &[u8],
        mode: u32,
    ) -> Result<()> {
        let (pdir, staged) = (&to.dir[..], &to.staged[..]);
        self.log_dir(pdir)?;
        let d = self.dir_of(pdir)?;
        let rel = join(pdir, staged);
        let io = |action: &'static str| {
            let rel = rel.clone();
            let root = self.root;
            move |err: std::io::Error| ioerr(root, action, &rel, err)
        };
        d.remove_all(staged).map_err(io("remove leftover"))?;
        let mut f = d.create_file(staged).map_err(io("create"))?;
        crate::host::checkpoint::fault_write(&mut f, bytes, "stage-write").map_err(io("write"))?;
        self.chown_fd(&f, e).map_err(io("chown"))?;
        fd::chmod(&f, mode).map_err(io("chmod"))?;
        for (k, v) in &e.xattrs {
            fd::set_xattr(&f, k, v).map_err(|err| xattr_refused(label, e, k, err))?;
        }
        f.sync_all().map_err(io("fsync"))?;
        drop(f);
        // verified like every staged file: what is on disk is what was merged
        let got = d.sha256(staged).map_err(io("read back"))?;
        if got != Sha256::digest(bytes) {
            return Err(Error::DigestMismatch {
                what: format!("merged content of '{}'", e.display()),
                path: self.root.display(&rel),
                expected: hex::encode(Sha256::digest(bytes)),
                actual: hex::encode(got),
            });
        }
        self.out.counts.bytes_written += bytes.len() as u64;
        self.keep_fs(&d);
        self.out.renames.push(to);
        crate::host::checkpoint::checkpoint("stage-file");
        Ok(())
    }

    /// Remember `d`'s filesystem for the closing syncfs.
    fn keep_fs(&mut self, d: &Rc<Dir>) {
        if let Ok(st) = nix::sys::stat::fstat(d.as_fd_raw()) {
            self.filesystems
                .entry(st.st_dev)
                .or_insert_with(|| Rc::clone(d));
        }
    }
}

/// The new dist's version, read whole (it is at most [`MERGE_CAP`] bytes)
/// and checked against the MANIFEST before anything uses it.
fn read_theirs(label: &str, e: &Entry, data: &mut impl Read) -> Result<Vec<u8>> {
    let mut theirs = Vec::with_capacity(e.size as usize);
    data.take(MERGE_CAP + 1)
        .read_to_end(&mut theirs)
        .map_err(|err| Error::from_io(err, "read", std::path::Path::new(label)))?;
    let got = Sha256::digest(&theirs);
    if Some(got) != e.sha256 {
        return Err(Error::DigestMismatch {
            what: format!("content of '{}'", e.display()),
            path: label.into(),
            expected: e.sha256.map(hex::encode).unwrap_or_default(),
            actual: hex::encode(got),
        });
    }
    Ok(theirs)
}
