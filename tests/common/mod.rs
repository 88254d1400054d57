//! Shared setup for the integration tests: running the real `sysup` binary,
//! making fixture trees and dists, and snapshotting a tree (every entry's
//! type, mode, owner, mtime, link target, content hash, xattrs, device
//! numbers and hardlink group) so two trees can be compared exactly.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sysup::fixtures;

/// The `sysup` binary under test.
pub fn sysup() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sysup"))
}

/// Run a command, returning its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn command")
}

/// Assert success and return stdout as a string.
pub fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "command failed: {cmd:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Write the fixture world spec into `dir` and return its path.
pub fn world_spec(dir: &Path) -> PathBuf {
    let p = dir.join("world.toml");
    fs::write(&p, fixtures::WORLD_SPEC).unwrap();
    p
}

/// Make fixture world revision `rev` at `dir/tree-<rev>` and build it into
/// `dir/out`; return (tree, dist path).
pub fn world_dist(dir: &Path, rev: u32) -> (PathBuf, PathBuf) {
    let tree = dir.join(format!("tree-{rev}"));
    if !tree.exists() {
        fixtures::make_world(&tree, rev, fixtures::privileged()).unwrap();
    }
    let spec = world_spec(dir);
    let out = dir.join("out");
    let date = format!("202601{:02}", rev);
    ok(sysup()
        .args(["build"])
        .arg(&spec)
        .arg("--tree")
        .arg(&tree)
        .args(["--rev", &rev.to_string(), "--date", &date, "--out"])
        .arg(&out));
    let dist = out.join(format!("world-{rev}-{date}.tar.gz"));
    assert!(dist.exists());
    (tree, dist)
}

/// One entry of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub link: Option<Vec<u8>>,
    pub content: Option<[u8; 32]>,
    pub rdev: Option<(u32, u32)>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// The first path (in walk order) sharing this inode, for multi-link files.
    pub hardlink_group: Option<Vec<u8>>,
}

/// Snapshot every entry below `root` (not `root` itself), keyed by relative path bytes.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, Node>,
    inodes: &mut HashMap<(u64, u64), Vec<u8>>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let md = fs::symlink_metadata(&p).unwrap();
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let ft = md.file_type();
        let kind = if ft.is_file() {
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
        };
        let content = ft.is_file().then(|| {
            use sha2::Digest;
            sha2::Sha256::digest(fs::read(&p).unwrap()).into()
        });
        let hardlink_group = (ft.is_file() && md.nlink() > 1).then(|| {
            inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        let node = Node {
            kind,
            mode: if ft.is_symlink() {
                0o777
            } else {
                md.mode() & 0o7777
            },
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            size: if ft.is_file() { md.len() } else { 0 },
            link: ft
                .is_symlink()
                .then(|| fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()),
            content,
            rdev: (ft.is_char_device() || ft.is_block_device())
                .then(|| (libc::major(md.rdev()), libc::minor(md.rdev()))),
            xattrs: if ft.is_symlink() {
                BTreeMap::new()
            } else {
                sysup::fsutil::read_xattrs(&p).unwrap()
            },
            hardlink_group,
        };
        out.insert(rel, node);
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}

/// Describe the differences between two snapshots (empty when equal).
pub fn diff_snapshots(a: &BTreeMap<Vec<u8>, Node>, b: &BTreeMap<Vec<u8>, Node>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("only in first: {}", String::from_utf8_lossy(k))),
            Some(w) if w != v => d.push(format!(
                "differs: {}\n  first:  {v:?}\n  second: {w:?}",
                String::from_utf8_lossy(k)
            )),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        d.push(format!("only in second: {}", String::from_utf8_lossy(k)));
    }
    d
}

/// Whether this test process is root (device nodes, chown, capabilities).
pub fn is_root() -> bool {
    fixtures::privileged()
}
