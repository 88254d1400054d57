//! A world with more directories than a shell's default descriptor limit
//! (`ulimit -n` 1024 on Debian) installs and upgrades under that limit: the
//! apply must not keep a descriptor per directory, nor one per replaced file.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures;
use common::*;

/// More directories than 1024 descriptors, each with a file that every
/// revision changes (so an upgrade replaces them all).
const DIRS: usize = 1300;

fn tree(dir: &Path, rev: u32) -> PathBuf {
    let t = dir.join(format!("tree-{rev}"));
    fixtures::make_world(&t, rev, fixtures::privileged()).unwrap();
    for i in 0..DIRS {
        let d = t.join(format!("usr/share/many/{:02}/d{i:04}", i % 40));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), format!("rev {rev} file {i}\n")).unwrap();
        fs::set_permissions(d.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
    }
    t
}

fn build(dir: &Path, tree: &Path, rev: u32) -> PathBuf {
    let date = format!("202602{rev:02}");
    ok(sysup()
        .arg("build")
        .arg(world_spec(dir))
        .arg("--tree")
        .arg(tree)
        .args(["--rev", &rev.to_string(), "--date", &date, "--out"])
        .arg(dir.join("out")));
    dir.join("out").join(format!("world-{rev}-{date}.tar.gz"))
}

/// `sysup apply --root ROOT FILE` in a shell whose descriptor limit is 1024.
fn apply_limited(root: &Path, file: &Path) {
    let o = run(Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 1024 && exec "$0" apply --root "$1" "$2""#)
        .arg(env!("CARGO_BIN_EXE_sysup"))
        .arg(root)
        .arg(file));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_world_with_more_directories_than_descriptors_installs_and_upgrades() {
    let t = tempfile::tempdir().unwrap();
    let (t1, t2) = (tree(t.path(), 1), tree(t.path(), 2));
    let (d1, d2) = (build(t.path(), &t1, 1), build(t.path(), &t2, 2));
    ok(sysup()
        .arg("diff")
        .arg(&d1)
        .arg(&d2)
        .arg("--out")
        .arg(t.path().join("out")));
    let patch = t.path().join("out/world-1-20260201_2-20260202.patch");
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    apply_limited(&root, &d1);
    assert_root_is(&root, &t1);
    apply_limited(&root, &patch);
    assert_root_is(&root, &t2);
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}
