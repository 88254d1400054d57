//! Scanning a staged tree: walk it without following symlinks and describe
//! every wanted object as a MANIFEST [`Entry`], with content hashes computed
//! in parallel and hardlink groups detected by (device, inode).
//!
//! Invariants:
//! - symlinks are recorded, never followed; sockets and unreadable files are
//!   errors naming the path, never silently skipped (of several unreadable
//!   files, the first in walk order, whatever the hashing threads' timing);
//!   so are names holding a newline and device nodes outside the spec's
//!   `devices` globs;
//! - an excluded directory prunes its whole subtree; a directory that merely
//!   fails `include` is still descended (so `boot/kernel/**` works);
//! - the result does not depend on readdir order: entries are sorted by their
//!   tar member name, and the first member of a hardlink group holds the data;
//! - only the extended attributes a dist may carry are recorded (`user.*`,
//!   `trusted.*`, `security.capability`:
//!   [`xattr_owned`](crate::util::fsutil::xattr_owned)): a build host's
//!   SELinux or other LSM labels are its own and never shipped.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::util::digest::Sha256;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::manifest::{Entry, Kind};
use crate::format::spec::Spec;
use crate::util::fsutil::read_xattrs;

/// An entry and where its content comes from.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub entry: Entry,
    /// Absolute source path in the tree.
    pub source: PathBuf,
    /// (dev, ino) for regular files with more than one link.
    pub(crate) inode: Option<(u64, u64)>,
}

fn tree_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Tree {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Walk `tree` and return the wanted entries, sorted by member name, hashed,
/// with hardlinks resolved.
pub fn scan(spec: &Spec, tree: &Path) -> Result<Vec<Scanned>> {
    let top = fs::symlink_metadata(tree)
        .map_err(|e| tree_err(tree, format!("cannot read the tree: {e}")))?;
    if !top.is_dir() {
        return Err(tree_err(tree, "the tree is not a directory"));
    }
    let mut out = Vec::new();
    walk(spec, tree, &mut Vec::new(), &mut out)?;
    hash_files(&mut out)?;
    resolve_hardlinks(&mut out)?;
    Ok(out)
}

fn walk(spec: &Spec, dir: &Path, rel: &mut Vec<u8>, out: &mut Vec<Scanned>) -> Result<()> {
    let rd = fs::read_dir(dir).map_err(|e| tree_err(dir, format!("cannot list directory: {e}")))?;
    let mut names = Vec::new();
    for de in rd {
        let de = de.map_err(|e| tree_err(dir, format!("cannot list directory: {e}")))?;
        names.push(de.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let base = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        let source = dir.join(&name);
        if rel.as_slice() == b".sysup" {
            return Err(tree_err(
                &source,
                "'.sysup' at the top of a tree is reserved for dist metadata",
            ));
        }
        let md = fs::symlink_metadata(&source)
            .map_err(|e| tree_err(&source, format!("cannot stat: {e}")))?;
        let excluded = spec.exclude.matches(rel);
        if !excluded {
            if let Some(what) = crate::format::manifest::bad_byte(rel) {
                return Err(tree_err(
                    &source,
                    format!(
                        "its name contains {what}; sysup refuses such names (docs/decisions.md)"
                    ),
                ));
            }
            if spec.include.matches(rel) {
                out.push(describe(spec, rel, &source, &md)?);
            }
            if md.is_dir() {
                walk(spec, &source, rel, out)?;
            }
        }
        rel.truncate(base);
    }
    Ok(())
}

fn describe(spec: &Spec, rel: &[u8], source: &Path, md: &fs::Metadata) -> Result<Scanned> {
    let ft = md.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_char_device() {
        Kind::Char
    } else if ft.is_block_device() {
        Kind::Block
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        return Err(tree_err(
            source,
            "is a socket; sockets are made at run time and cannot be shipped",
        ));
    } else {
        return Err(tree_err(source, "is of an unknown file type"));
    };
    let mut e = Entry::new(rel.to_vec(), kind);
    e.mode = md.mode() & 0o7777;
    e.uid = u64::from(md.uid());
    e.gid = u64::from(md.gid());
    e.mtime = md.mtime();
    match kind {
        Kind::File => e.size = md.len(),
        Kind::Symlink => {
            let t = fs::read_link(source)
                .map_err(|err| tree_err(source, format!("cannot read link: {err}")))?;
            e.link = Some(t.as_os_str().as_bytes().to_vec());
            e.mode = 0o777;
        }
        Kind::Char | Kind::Block if !spec.devices.matches(rel) => {
            return Err(tree_err(
                source,
                format!(
                    "is a {} device outside the spec's `devices` globs ({}): add its path \
                     there if the dist must ship it",
                    kind.as_str(),
                    spec.devices.patterns().join(", ")
                ),
            ));
        }
        Kind::Char | Kind::Block => {
            let rdev = md.rdev();
            e.dev = Some((libc::major(rdev), libc::minor(rdev)));
        }
        _ => {}
    }
    if kind != Kind::Symlink {
        e.xattrs = read_xattrs(source)
            .map_err(|err| tree_err(source, format!("cannot read extended attributes: {err}")))?;
    }
    e.critical = kind == Kind::File && spec.critical.matches(rel);
    e.config = kind == Kind::File && spec.config.matches(rel);
    let inode = (kind == Kind::File && md.nlink() > 1).then(|| (md.dev(), md.ino()));
    Ok(Scanned {
        entry: e,
        source: source.to_path_buf(),
        inode,
    })
}

/// Hash every regular file's content in parallel (one read per file; the
/// second read when writing the tar comes from the page cache). Of several
/// files that cannot be read, the error names the first in walk order, the
/// one a sequential build would name: files after a failed one are skipped,
/// files before it are still read.
fn hash_files(entries: &mut [Scanned]) -> Result<()> {
    let first_bad = AtomicUsize::new(usize::MAX);
    let errors: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
    entries
        .par_iter_mut()
        .enumerate()
        .filter(|(_, s)| s.entry.kind == Kind::File)
        .for_each(|(i, s)| {
            if i > first_bad.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = hash_file(s) {
                first_bad.fetch_min(i, Ordering::Relaxed);
                errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((i, e));
            }
        });
    let errors = errors.into_inner().unwrap_or_else(PoisonError::into_inner);
    match errors.into_iter().min_by_key(|(i, _)| *i) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Hash one regular file's content into its entry.
fn hash_file(s: &mut Scanned) -> Result<()> {
    let mut f =
        fs::File::open(&s.source).map_err(|e| tree_err(&s.source, format!("cannot read: {e}")))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let r = f
            .read(&mut buf)
            .map_err(|e| tree_err(&s.source, format!("cannot read: {e}")))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    if n != s.entry.size {
        return Err(tree_err(&s.source, "changed size while being read"));
    }
    s.entry.sha256 = Some(h.finalize());
    Ok(())
}

/// Sort by member name and turn every later member of a hardlink group into
/// a hardlink to the first.
fn resolve_hardlinks(entries: &mut [Scanned]) -> Result<()> {
    entries.sort_by_cached_key(|s| s.entry.member_name());
    for w in entries.windows(2) {
        if w[0].entry.member_name() == w[1].entry.member_name() {
            return Err(tree_err(
                &w[1].source,
                "its tar name collides with a critical file's '.new' name",
            ));
        }
    }
    let mut first: HashMap<(u64, u64), usize> = HashMap::new();
    for i in 0..entries.len() {
        let Some(ino) = entries[i].inode else {
            continue;
        };
        match first.get(&ino) {
            None => {
                first.insert(ino, i);
            }
            Some(&j) => {
                let target = entries[j].entry.path.clone();
                let e = &mut entries[i].entry;
                e.kind = Kind::Hardlink;
                // The MANIFEST names the official path; the tar names the
                // member (see `write_dist`). A critical link stays critical:
                // it is staged as `.new` and renamed last like its target.
                e.link = Some(target);
            }
        }
    }
    Ok(())
}
