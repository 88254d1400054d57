//! Shared setup for the `patch_*` tests: small generated trees, packed by GNU
//! tar (`--sort=name --format=posix`, as docs/design.md §2 dists are) and gzipped
//! under dist names, plus helpers to diff and apply through the library or
//! the `sysup` binary.
//!
//! Invariant: everything is generated from seeds, so a failing case is
//! reproducible; nothing here touches paths outside its temporary directory.

#![allow(dead_code)]

pub mod craft;
pub mod elf;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sysup::diff::{self, DiffOptions, DiffReport};
use sysup::patch;

/// One entry of a generated tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    File {
        data: Vec<u8>,
        mode: u32,
    },
    Dir,
    Symlink(String),
    /// A hard link to another file of the tree.
    Hardlink(String),
}

/// A tree: relative path → entry (parents are created as needed).
pub type Tree = BTreeMap<String, Entry>;

/// Deterministic bytes that look like a binary: runs of structure, some
/// repetition, some noise.
pub fn binary(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 => out.extend(std::iter::repeat_n((x >> 8) as u8, (x >> 16) as usize % 24)),
            1 => {
                let back = (x >> 20) as usize % 4096;
                let n = (x >> 40) as usize % 64;
                if out.len() > back + n {
                    let start = out.len() - back - 1;
                    for k in 0..n {
                        let b = out[start + k];
                        out.push(b);
                    }
                }
            }
            _ => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
    out.truncate(len);
    out
}

/// `data` with relocation-like edits (every `every`th u32 incremented) and
/// a few inserted and deleted blocks.
pub fn edit(data: &[u8], seed: u64, every: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    let mut k = (seed as usize) % every.max(1);
    while k + 4 <= v.len() {
        let w = u32::from_le_bytes(v[k..k + 4].try_into().unwrap()).wrapping_add(0x40);
        v[k..k + 4].copy_from_slice(&w.to_le_bytes());
        k += every.max(4);
    }
    if v.len() > 1000 {
        let at = v.len() / 3;
        v.splice(at..at, binary(seed + 1, 300));
        let at = v.len() * 2 / 3;
        v.drain(at..at + 200);
    }
    v
}

pub fn file(data: Vec<u8>) -> Entry {
    Entry::File { data, mode: 0o644 }
}

pub fn exe(data: Vec<u8>) -> Entry {
    Entry::File { data, mode: 0o755 }
}

/// Write `tree` under `root`, with a fixed mtime everywhere.
pub fn write_tree(root: &Path, tree: &Tree) {
    fs::create_dir_all(root).unwrap();
    // Hard links last: their targets must exist.
    let (links, rest): (Vec<_>, Vec<_>) = tree
        .iter()
        .partition(|(_, e)| matches!(e, Entry::Hardlink(_)));
    for (path, e) in rest.into_iter().chain(links) {
        let p = root.join(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        match e {
            Entry::File { data, mode } => {
                fs::write(&p, data).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Entry::Dir => fs::create_dir_all(&p).unwrap(),
            Entry::Symlink(t) => std::os::unix::fs::symlink(t, &p).unwrap(),
            Entry::Hardlink(t) => fs::hard_link(root.join(t), &p).unwrap(),
        }
    }
    ok(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "@1767225600",
        "{}",
        "+",
    ]));
}

/// Run a command that must succeed.
pub fn ok(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Pack `tree` as dist `<id>.tar.gz` in `dir` with GNU tar; return the gz
/// path and the uncompressed tar bytes.
pub fn make_dist(dir: &Path, id: &str, tree: &Tree) -> (PathBuf, Vec<u8>) {
    let root = dir.join(format!("tree-{id}"));
    write_tree(&root, tree);
    let tar = ok(Command::new("tar")
        .args([
            "--sort=name",
            "--format=posix",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
        ])
        .args(["--pax-option=delete=atime,delete=ctime", "-cf", "-", "-C"])
        .arg(&root)
        .arg("."))
    .stdout;
    let gz = dir.join(format!("{id}.tar.gz"));
    write_gz(&gz, &tar);
    (gz, tar)
}

/// gzip `tar` into `path`.
pub fn write_gz(path: &Path, tar: &[u8]) {
    let mut e =
        flate2::write::GzEncoder::new(fs::File::create(path).unwrap(), flate2::Compression::fast());
    e.write_all(tar).unwrap();
    e.finish().unwrap();
}

/// Diff options for tests: small windows so big-member windowing runs on
/// small data.
pub fn opts() -> DiffOptions {
    DiffOptions {
        threads: 2,
        budget: 64 << 20,
        window: 64 * 1024,
        ..DiffOptions::default()
    }
}

/// Make the patch between two dists in `dir`.
pub fn diff(dir: &Path, old: &Path, new: &Path) -> DiffReport {
    diff::diff_dists(old, new, dir, &opts()).expect("diff")
}

/// Apply through the library; the new tar or the error.
pub fn apply(patch: &Path, old: &[u8]) -> sysup::Result<Vec<u8>> {
    let mut out = Vec::new();
    patch::apply(patch, old, &mut out, Path::new("<memory>"))?;
    Ok(out)
}

/// The `sysup` binary.
pub fn sysup() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sysup"))
}

/// Run `sysup patch PATCH` with `stdin` as input.
pub fn sysup_patch(patch: &Path, stdin: &[u8]) -> Output {
    let mut child = sysup()
        .arg("patch")
        .arg(patch)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // The child may stop reading early (it refused the patch): ignore EPIPE.
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// A standard pair of worlds exercising every kind of change: edited
/// binaries, version renames, hash renames, a move to an earlier-sorting
/// directory, additions, removals, metadata-only changes, links, empty files
/// and directories, a long (PAX) path and a member big enough to be windowed.
pub fn world_pair() -> (Tree, Tree) {
    let mut a = Tree::new();
    let tool = binary(1, 150_000);
    let libfoo = binary(2, 90_000);
    let libx = binary(3, 40_000);
    let big = binary(4, 600_000);
    let doc = b"The quick brown fox\n".repeat(200);
    a.insert("usr/bin/tool".into(), exe(tool.clone()));
    a.insert("usr/bin/same".into(), exe(binary(5, 30_000)));
    a.insert("usr/lib/libfoo.so.1.2".into(), file(libfoo.clone()));
    a.insert("usr/lib/libx-6bb31eeb.so".into(), file(libx.clone()));
    a.insert(
        "usr/lib/libfoo.so.1".into(),
        Entry::Symlink("libfoo.so.1.2".into()),
    );
    a.insert("usr/lib/big.a".into(), file(big.clone()));
    a.insert("usr/share/doc/readme".into(), file(doc.clone()));
    a.insert(
        "usr/share/doc/gone".into(),
        file(b"removed in B\n".to_vec()),
    );
    a.insert("usr/share/empty".into(), file(Vec::new()));
    a.insert("usr/share/emptydir".into(), Entry::Dir);
    a.insert("zz/moves-to-front".into(), file(binary(6, 20_000)));
    a.insert("etc/conf".into(), file(b"key = 1\n".to_vec()));
    a.insert(
        "usr/bin/link".into(),
        Entry::Hardlink("usr/bin/same".into()),
    );
    a.insert(
        format!("usr/share/{}/long-name", "x".repeat(120)),
        file(doc.clone()),
    );
    a.insert(
        "usr/bin/setuid".into(),
        Entry::File {
            data: binary(7, 5000),
            mode: 0o4755,
        },
    );
    let rebuilt = binary(9, 200_000);
    a.insert("usr/lib/rebuilt.so".into(), file(rebuilt.clone()));

    let mut b = Tree::new();
    b.insert("usr/bin/tool".into(), exe(edit(&tool, 11, 400)));
    b.insert("usr/bin/same".into(), exe(binary(5, 30_000)));
    b.insert("usr/lib/libfoo.so.1.3".into(), file(edit(&libfoo, 12, 900)));
    b.insert(
        "usr/lib/libx-56d6093b.so".into(),
        file(edit(&libx, 13, 2000)),
    );
    b.insert(
        "usr/lib/libfoo.so.1".into(),
        Entry::Symlink("libfoo.so.1.3".into()),
    );
    b.insert("usr/lib/big.a".into(), file(edit(&big, 14, 5000)));
    b.insert("usr/share/doc/readme".into(), file(doc.clone()));
    b.insert("usr/share/doc/new".into(), file(b"new in B\n".to_vec()));
    b.insert(
        "usr/share/empty".into(),
        file(b"no longer empty\n".to_vec()),
    );
    b.insert("usr/share/emptydir".into(), Entry::Dir);
    b.insert("aa/moved-here".into(), file(binary(6, 20_000)));
    b.insert("etc/conf".into(), file(b"key = 2\n".to_vec()));
    b.insert(
        "usr/bin/link".into(),
        Entry::Hardlink("usr/bin/same".into()),
    );
    b.insert(
        format!("usr/share/{}/long-name", "x".repeat(120)),
        file(doc),
    );
    b.insert(
        "usr/bin/setuid".into(),
        Entry::File {
            data: binary(7, 5000),
            mode: 0o4750,
        },
    );
    b.insert("usr/bin/added".into(), exe(binary(8, 12_000)));
    // Same size, a 20-byte build id changed: one control, no suffix array.
    let mut rebuilt2 = rebuilt;
    rebuilt2[1000..1020].copy_from_slice(&[0xAB; 20]);
    b.insert("usr/lib/rebuilt.so".into(), file(rebuilt2));
    (a, b)
}
