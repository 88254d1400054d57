//! Threat: a setuid (or setgid) binary the dist replaces or drops lives on
//! through a hard link a local user made to it beforehand — with the old,
//! perhaps vulnerable, code and its privileges. As dpkg does, sysup strips
//! the setuid/setgid bits from a file it replaces or removes while another
//! name still holds its inode.

use crate::common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

fn file(path: &str, data: &[u8], mode: u32) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.mode = mode;
    c.entry.mtime = 100;
    c
}

fn dir(path: &str) -> Crafted {
    let mut c = Crafted::dir(path);
    c.entry.mtime = 100;
    c
}

/// Install a dist holding setuid `bin/su` and setgid `bin/wall`, and hard
/// links to both under `home/evil`.
fn installed_with_links(t: &Path) -> std::path::PathBuf {
    let root = t.join("root");
    fs::create_dir_all(&root).unwrap();
    let a = craft_dist(
        t,
        "world-1-20260101",
        "x86_64",
        &[
            dir("bin"),
            file("bin/su", b"old su\n", 0o4755),
            file("bin/wall", b"old wall\n", 0o2755),
        ],
    );
    apply_ok(&root, &[&a]);
    fs::create_dir_all(root.join("home/evil")).unwrap();
    fs::hard_link(root.join("bin/su"), root.join("home/evil/keep-su")).unwrap();
    fs::hard_link(root.join("bin/wall"), root.join("home/evil/keep-wall")).unwrap();
    root
}

fn assert_disarmed(root: &Path) {
    for name in ["keep-su", "keep-wall"] {
        let md = fs::metadata(root.join("home/evil").join(name)).unwrap();
        assert_eq!(
            md.mode() & 0o6000,
            0,
            "the hard link {name} kept its setuid/setgid bits: {:o}",
            md.mode()
        );
    }
}

#[test]
fn a_replaced_setuid_file_leaves_no_setuid_hard_link_behind() {
    let t = tempfile::tempdir().unwrap();
    let root = installed_with_links(t.path());
    let b = craft_dist(
        t.path(),
        "world-2-20260102",
        "x86_64",
        &[
            dir("bin"),
            file("bin/su", b"new su\n", 0o4755),
            file("bin/wall", b"new wall\n", 0o2755),
        ],
    );
    apply_ok(&root, &[&b]);
    assert_disarmed(&root);
    // the new binaries keep theirs
    assert_eq!(
        fs::metadata(root.join("bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(root.join("bin/wall")).unwrap().mode() & 0o7777,
        0o2755
    );
    assert_eq!(fs::read(root.join("bin/su")).unwrap(), b"new su\n");
}

#[test]
fn a_removed_setuid_file_leaves_no_setuid_hard_link_behind() {
    let t = tempfile::tempdir().unwrap();
    let root = installed_with_links(t.path());
    let b = craft_dist(
        t.path(),
        "world-2-20260102",
        "x86_64",
        &[dir("bin"), file("bin/true", b"true\n", 0o755)],
    );
    apply_ok(&root, &[&b]);
    assert!(!root.join("bin/su").exists());
    assert_disarmed(&root);
}
