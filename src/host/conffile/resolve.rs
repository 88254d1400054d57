//! `sysup config resolve PATH --theirs|--ours|--merged FILE`: settle a
//! config file that an apply kept beside its new version — install the new
//! version (`<path>.sysupnew`), keep the installed file, or install an
//! edited merge — then remove `<path>.sysupnew` and `<path>.sysupmerge`
//! and record it in history.
//!
//! Invariants: under the root's lock, and refused while an interrupted
//! apply is pending; PATH must be a config file of an installed dist's
//! MANIFEST, reached through the root's containment (no symlink followed);
//! theirs is installed only if it still holds what the installed MANIFEST
//! ships; a merge still holding conflict markers is refused; what goes
//! live is renamed into place (a merge is written under a temporary name,
//! with the dist's owner, mode and xattrs, and fsynced first) and the
//! directory fsynced before the leftovers are removed, so a crash leaves
//! either the old or the new file, and the `.sysupnew` until the end (run
//! again to finish).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{is_safe_rel, Entry, Kind};
use crate::format::name::DistId;
use crate::host::history::{self, Event, Resolution};
use crate::host::journal::Journal;
use crate::host::plan::{join, split};
use crate::host::root::{fd, Dir, Root};
use crate::host::state::State;
use crate::util::digest::Sha256;

use super::{has_conflict_markers, MERGE_SUFFIX, NEW_SUFFIX};

/// The temporary name an edited merge is written under, beside the file.
const TEMP_SUFFIX: &[u8] = b".sysupresolve";
/// The largest edited merge taken.
const MAX_MERGED: u64 = 64 << 20;

/// What to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The new dist's version, `<path>.sysupnew`.
    Theirs,
    /// The installed file, as it is.
    Ours,
    /// An edited merge from this file (outside or inside the root).
    Merged(PathBuf),
}

impl Choice {
    fn word(&self) -> &'static str {
        match self {
            Choice::Theirs => "theirs",
            Choice::Ours => "ours",
            Choice::Merged(_) => "merged",
        }
    }
}

/// What a resolve did.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    pub root: PathBuf,
    /// Root-relative path of the config file.
    pub path: String,
    /// The dist that ships it.
    pub dist: DistId,
    /// `theirs`, `ours` or `merged`.
    pub took: &'static str,
    /// Root-relative paths removed (`.sysupnew`, `.sysupmerge`).
    pub removed: Vec<String>,
}

/// Resolve the kept config file `path` (root-relative, or absolute under
/// `root`) as `choice`.
/// Writes: the config file (theirs or merged), removes its `.sysupnew`
/// and `.sysupmerge`, appends to history.
pub fn resolve(root_path: &Path, path: &str, choice: &Choice) -> Result<Resolved> {
    let refused = |why: String| Error::Refused(why);
    let Some(state) = State::open_existing(root_path)? else {
        return Err(refused(format!(
            "nothing is installed in {}",
            root_path.display()
        )));
    };
    let _lock = state.lock()?;
    if Journal::load(&state)?.is_some() {
        return Err(refused(format!(
            "an interrupted apply is pending in {}: run `sysup status` and finish it first",
            root_path.display()
        )));
    }
    let rel = relative(root_path, path).ok_or_else(|| {
        refused(format!(
            "'{path}' is not a path inside {}",
            root_path.display()
        ))
    })?;
    let (dist, e) = config_entry(&state, &rel)?.ok_or_else(|| {
        refused(format!(
            "'{path}' is not a config file of an installed dist"
        ))
    })?;
    let root = Root::open(root_path).ctx("open root", root_path)?;
    let (parent, name) = split(&rel);
    let d = root
        .resolve_dir(parent)
        .map_err(|err| Error::io("open directory", root.display(parent), err))?;
    let new = [name, NEW_SUFFIX].concat();
    let new_rel = join(parent, &new);
    if !d.stat(&new).ok().flatten().is_some_and(|s| s.is_file()) {
        return Err(refused(format!(
            "nothing awaits for '{}': {} does not exist",
            e.display(),
            root.display(&new_rel).display()
        )));
    }
    match choice {
        Choice::Theirs => install_theirs(&root, &d, &e, &new, &new_rel)?,
        Choice::Ours => {}
        Choice::Merged(file) => install_merged(&root, &d, &e, file)?,
    }
    let mut removed = Vec::new();
    for suffix in [NEW_SUFFIX, MERGE_SUFFIX] {
        let n = [name, suffix].concat();
        if d.stat(&n).ok().flatten().is_some_and(|s| !s.is_dir()) {
            d.unlink(&n)
                .map_err(|err| Error::io("remove", root.display(&join(parent, &n)), err))?;
            removed.push(String::from_utf8_lossy(&join(parent, &n)).into_owned());
        }
    }
    d.sync()
        .map_err(|err| Error::io("fsync", root.display(parent), err))?;
    history::append(
        &state,
        &Event {
            to: Some(dist.to_string()),
            resolved: Some(Resolution {
                path: e.display(),
                took: choice.word().into(),
            }),
            ..Event::new("config-resolve", dist.name.to_string())
        },
    )?;
    Ok(Resolved {
        root: state.root().to_path_buf(),
        path: e.display(),
        dist,
        took: choice.word(),
        removed,
    })
}

/// `path` relative to the root: absolute ones must be under it.
fn relative(root: &Path, path: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(path);
    let rel = match p.strip_prefix(root) {
        Ok(r) => r,
        Err(_) => p.strip_prefix("/").unwrap_or(p),
    };
    let rel = rel.as_os_str().as_bytes().to_vec();
    is_safe_rel(&rel).then_some(rel)
}

/// The installed dist shipping `rel` as a config file, and its entry.
fn config_entry(state: &State, rel: &[u8]) -> Result<Option<(DistId, Entry)>> {
    for inst in state.installed_all()? {
        let meta = state.base_metadata(&inst.id)?;
        if let Some(e) = meta.manifest.get(rel) {
            if e.config && e.kind == Kind::File {
                return Ok(Some((inst.id, e.clone())));
            }
        }
    }
    Ok(None)
}

/// `.sysupnew` → the file, if it still holds what the MANIFEST ships.
fn install_theirs(root: &Root, d: &Dir, e: &Entry, new: &[u8], new_rel: &[u8]) -> Result<()> {
    let got = d
        .sha256(new)
        .map_err(|err| Error::io("read", root.display(new_rel), err))?;
    if Some(got) != e.sha256 {
        return Err(Error::Refused(format!(
            "{} is not the version the installed dist ships (changed since the apply wrote it); \
             use --merged FILE to install it",
            root.display(new_rel).display()
        )));
    }
    let (_, name) = split(&e.path);
    d.rename(new, d, name)
        .map_err(|err| Error::io("rename", root.display(new_rel), err))?;
    d.sync()
        .map_err(|err| Error::io("fsync", root.display(split(&e.path).0), err))
}

/// The edited merge `file` → the file, with the dist's owner, mode and
/// xattrs, through a temporary name.
fn install_merged(root: &Root, d: &Dir, e: &Entry, file: &Path) -> Result<()> {
    let mut text = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_MERGED + 1).read_to_end(&mut text))
        .ctx("read", file)?;
    if text.len() as u64 > MAX_MERGED {
        return Err(Error::Refused(format!(
            "'{}' is larger than {MAX_MERGED} bytes",
            file.display()
        )));
    }
    if has_conflict_markers(&text) {
        return Err(Error::Refused(format!(
            "'{}' still holds conflict markers (<<<<<<<, =======, >>>>>>>): edit them out first",
            file.display()
        )));
    }
    let (parent, name) = split(&e.path);
    let temp = [name, TEMP_SUFFIX].concat();
    let temp_rel = join(parent, &temp);
    let io = |action: &'static str| {
        let shown = root.display(&temp_rel);
        move |err: std::io::Error| Error::io(action, &shown, err)
    };
    d.remove_all(&temp).map_err(io("remove leftover"))?;
    let mut f = d.create_file(&temp).map_err(io("create"))?;
    f.write_all(&text).map_err(io("write"))?;
    if fd::owner(&f).map_err(io("stat"))? != (e.uid as u32, e.gid as u32) {
        fd::chown(&f, e.uid, e.gid).map_err(io("chown"))?;
    }
    fd::chmod(&f, e.mode).map_err(io("chmod"))?;
    for (k, v) in &e.xattrs {
        fd::set_xattr(&f, k, v).map_err(io("set extended attribute on"))?;
    }
    f.sync_all().map_err(io("fsync"))?;
    drop(f);
    if d.sha256(&temp).map_err(io("read back"))? != Sha256::digest(&text) {
        return Err(Error::Refused(format!(
            "{} does not hold what was written",
            root.display(&temp_rel).display()
        )));
    }
    d.rename(&temp, d, name).map_err(io("rename"))?;
    d.sync()
        .map_err(|err| Error::io("fsync", root.display(parent), err))
}
