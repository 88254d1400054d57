//! An upgrade whose files keep their content but change mode, owner or
//! mtime changes them in place (same inode) at its commit: each only as
//! far as it changes — an mtime-only change keeps a setuid bit, an owner
//! change keeps the setgid bit the new mode asks for (chown clears it, the
//! chmod after puts it back).

use crate::common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::*;

fn file(path: &str, data: &[u8], mode: u32, owner: u64, mtime: i64) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.mode = mode;
    c.entry.mtime = mtime;
    (c.entry.uid, c.entry.gid) = (owner, owner);
    c
}

fn dir(path: &str) -> Crafted {
    let mut c = Crafted::dir(path);
    c.entry.mtime = 100;
    c
}

#[test]
fn attribute_only_changes_are_made_in_place_and_only_as_far_as_they_go() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    // an owner change needs root; without it, only modes and times change
    let other = if is_root() { 1000 } else { 0 };
    let me = if is_root() {
        0
    } else {
        u64::from(unsafe { libc::getuid() })
    };
    let a = craft_dist(
        t.path(),
        "world-1-20260101",
        "x86_64",
        &[
            dir("bin"),
            file("bin/mode", b"m\n", 0o644, me, 100),
            file("bin/suid", b"s\n", 0o4755, me, 100),
            file("bin/owner", b"o\n", 0o644, me, 100),
        ],
    );
    let b = craft_dist(
        t.path(),
        "world-2-20260102",
        "x86_64",
        &[
            dir("bin"),
            file("bin/mode", b"m\n", 0o4750, me, 200),
            file("bin/suid", b"s\n", 0o4755, me, 300),
            file(
                "bin/owner",
                b"o\n",
                0o2755,
                if is_root() { other } else { me },
                400,
            ),
        ],
    );
    apply_ok(&root, &[&a]);
    let ino = |n: &str| fs::metadata(root.join(n)).unwrap().ino();
    let before: Vec<u64> = ["bin/mode", "bin/suid", "bin/owner"].map(ino).to_vec();
    apply_ok(&root, &[&b]);
    let after: Vec<u64> = ["bin/mode", "bin/suid", "bin/owner"].map(ino).to_vec();
    assert_eq!(before, after, "changed in place, not written again");
    let md = |n: &str| fs::metadata(root.join(n)).unwrap();
    assert_eq!(md("bin/mode").mode() & 0o7777, 0o4750);
    assert_eq!(md("bin/mode").mtime(), 200);
    assert_eq!(md("bin/suid").mode() & 0o7777, 0o4755);
    assert_eq!(md("bin/suid").mtime(), 300);
    assert_eq!(md("bin/owner").mode() & 0o7777, 0o2755);
    assert_eq!(md("bin/owner").mtime(), 400);
    if is_root() {
        assert_eq!((md("bin/owner").uid(), md("bin/owner").gid()), (1000, 1000));
    }
    // and the host agrees with the dist
    let o = run(sysup().arg("verify").arg("--root").arg(&root));
    assert!(
        o.status.success(),
        "verify after the upgrade: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}
