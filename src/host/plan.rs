//! The commit plan: everything the commit, record and cleanup phases need,
//! built by staging and written into the journal's `staged` record, so a
//! re-run after a crash can finish the apply from the journal alone.
//!
//! Invariant: every operation here is idempotent given the filesystem state
//! it may meet after a crash at any point of an earlier attempt (see
//! commit.rs for how each one recognises "already done").

use serde::{Deserialize, Serialize};

use crate::format::name::DistId;
use crate::format::spec::KernelDirs;
use crate::util::digest::Digests;

/// Rename a staged name into place: `dir/staged` → `dir/name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// Parent directory, root-relative.
    pub dir: Vec<u8>,
    /// Staged name in `dir`.
    pub staged: Vec<u8>,
    /// Final name in `dir`.
    pub name: Vec<u8>,
    /// Whether the staged object is a directory.
    pub is_dir: bool,
}

impl Rename {
    /// Root-relative final path.
    pub fn path(&self) -> Vec<u8> {
        join(&self.dir, &self.name)
    }
}

/// New metadata for an existing object whose content is already right (a
/// real directory, or a file, link or node that only changed owner, mode,
/// xattrs or mtime): set in place, no new inode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    pub path: Vec<u8>,
    /// Mode bits (ignored for symlinks).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Extended attributes to remove if the object has them: those the
    /// dist shipped before and no longer does, or in a repair a file
    /// capability the dist never granted (`Stager::dropped_xattrs`).
    #[serde(default)]
    pub drop_xattrs: Vec<String>,
    /// mtime to set (directories get theirs at the end of the commit).
    pub mtime: Option<i64>,
    pub is_symlink: bool,
}

/// Counts for the report and history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Entries in the new MANIFEST.
    pub entries: u64,
    /// Entries written (new or changed).
    pub changed: u64,
    /// Entries that already matched and were skipped.
    pub unchanged: u64,
    /// Existing entries that differed from what was installed (repairs).
    pub repaired: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
    /// Paths removed in cleanup (filled in by cleanup).
    pub removed: u64,
}

/// A kernel install directory going live, the previous one kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelSwap {
    pub dirs: KernelDirs,
    /// The staged new install directory, in the install directory's parent.
    pub staged: Vec<u8>,
}

/// A path the new dist no longer ships.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Obsolete {
    pub path: Vec<u8>,
    /// For a config file of the old dist: its shipped hash. A file that no
    /// longer has it was modified by the admin and is kept.
    pub config_sha256: Option<[u8; 32]>,
}

/// What the rest of the apply does, decided while staging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub txid: String,
    pub target: DistId,
    pub from: Option<DistId>,
    pub arch: String,
    /// The new uncompressed tar.
    pub tar: Digests,
    /// The new gzipped base, complete and fsynced, under this temporary
    /// name in `bases/` (a name, not a path: the root may be mounted
    /// elsewhere when the plan is finished).
    pub base_temp: String,
    /// Directories of the new MANIFEST (opened without following symlinks).
    pub dist_dirs: Vec<Vec<u8>>,
    /// New directories (whole staged subtrees) renamed into place first.
    pub dir_renames: Vec<Rename>,
    /// Everything else but critical files, renamed after the directories.
    pub renames: Vec<Rename>,
    /// `.new` → official renames of critical files: the second-to-last step.
    pub critical: Vec<Rename>,
    /// Metadata changes on existing directories (before the renames).
    pub dir_attrs: Vec<Attrs>,
    /// Metadata-only changes on existing files, links and nodes (after them).
    pub attrs: Vec<Attrs>,
    /// Final mtimes of the dist's directories, deepest first (renames into
    /// a directory change its mtime, so these are set after them).
    pub dir_mtimes: Vec<(Vec<u8>, i64)>,
    pub kernel: Option<KernelSwap>,
    /// Paths to remove in cleanup (old MANIFEST minus new, plus OBSOLETE),
    /// deepest first.
    pub obsolete: Vec<Obsolete>,
    /// Config files kept as locally modified: the new version is `<path>.sysupnew`.
    pub config_kept: Vec<Vec<u8>>,
    /// Config files merged three ways and installed (docs/config-merge.md).
    #[serde(default)]
    pub config_merged: Vec<Vec<u8>>,
    /// Of `config_kept`: those with a conflicted merge in `<path>.sysupmerge`.
    #[serde(default)]
    pub config_conflicted: Vec<Vec<u8>>,
    /// The dist's own cleanup step.
    pub upgrade: Option<Vec<u8>>,
    pub counts: Counts,
    /// What the history records this apply as when it was asked for as
    /// something else than its ids say (`rollback`, `repair`); `None`: from
    /// the ids (install, upgrade, repair). Kept in the plan so whichever
    /// command finishes an interrupted apply records what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// `dir/name`, or `name` at the top.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// (parent, base name) of a root-relative path.
pub fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}
