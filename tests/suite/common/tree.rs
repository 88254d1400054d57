//! A snapshot of a tree on disk — every entry's type, mode, owner, mtime,
//! size, link target, content hash, device numbers, the extended
//! attributes a dist carries and its hard-link group — so that two trees
//! compare exactly. One walker for the integration tests (tests/suite/common) and
//! the crash soak (bench/crash_soak), which both include this file by path.
//!
//! Invariants: the top directory itself is left out; entries are keyed by
//! their path bytes relative to the top; a symlink's mode reads as 0777
//! whatever the file system says, and its attributes are not read.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// One entry of a tree, as a host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds (dists carry whole seconds).
    pub mtime: i64,
    pub size: u64,
    pub link: Option<Vec<u8>>,
    /// SHA-256 of a regular file's bytes.
    pub content: Option<[u8; 32]>,
    pub rdev: Option<(u32, u32)>,
    /// `user.`, `security.` and `trusted.` attributes (what a dist carries).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// The first path (in walk order) sharing this inode, for multi-link files.
    pub hardlink_group: Option<Vec<u8>>,
}

/// A tree: relative path bytes → entry.
pub type Tree = BTreeMap<Vec<u8>, Node>;

/// Snapshot every entry below `top`; `skip(rel)` leaves an entry and
/// everything below it out.
pub fn snapshot_where(top: &Path, skip: &dyn Fn(&[u8]) -> bool) -> io::Result<Tree> {
    let mut out = Tree::new();
    let mut inodes = HashMap::new();
    walk(top, top, skip, &mut out, &mut inodes)?;
    Ok(out)
}

/// The differences between trees `a` and `b` (empty when equal), each
/// side named as the caller calls it (`("first", "second")`, `("want", "got")`).
pub fn differences(a: &Tree, b: &Tree, names: (&str, &str)) -> Vec<String> {
    let (an, bn) = names;
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("only in {an}: {}", String::from_utf8_lossy(k))),
            Some(w) if w != v => d.push(format!(
                "differs: {}\n  {an}: {v:?}\n  {bn}: {w:?}",
                String::from_utf8_lossy(k)
            )),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        d.push(format!("only in {bn}: {}", String::from_utf8_lossy(k)));
    }
    d
}

fn kind_of(ft: fs::FileType) -> &'static str {
    if ft.is_file() {
        "file"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "other"
    }
}

fn sha256_file(p: &Path) -> io::Result<[u8; 32]> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn walk(
    top: &Path,
    dir: &Path,
    skip: &dyn Fn(&[u8]) -> bool,
    out: &mut Tree,
    inodes: &mut HashMap<(u64, u64), Vec<u8>>,
) -> io::Result<()> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    for p in names {
        let rel = p
            .strip_prefix(top)
            .expect("below top")
            .as_os_str()
            .as_bytes()
            .to_vec();
        if skip(&rel) {
            continue;
        }
        let md = fs::symlink_metadata(&p)?;
        let ft = md.file_type();
        let node = Node {
            kind: kind_of(ft),
            mode: if ft.is_symlink() {
                0o777
            } else {
                md.mode() & 0o7777
            },
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            size: if ft.is_file() { md.len() } else { 0 },
            link: match ft.is_symlink() {
                true => Some(fs::read_link(&p)?.as_os_str().as_bytes().to_vec()),
                false => None,
            },
            content: match ft.is_file() {
                true => Some(sha256_file(&p)?),
                false => None,
            },
            rdev: (ft.is_char_device() || ft.is_block_device())
                .then(|| (libc::major(md.rdev()), libc::minor(md.rdev()))),
            xattrs: match ft.is_symlink() {
                true => BTreeMap::new(),
                false => sysup::util::fsutil::read_xattrs(&p)?,
            },
            hardlink_group: (ft.is_file() && md.nlink() > 1).then(|| {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone()
            }),
        };
        out.insert(rel, node);
        if ft.is_dir() {
            walk(top, &p, skip, out, inodes)?;
        }
    }
    Ok(())
}
