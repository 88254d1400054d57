//! Threat: an attribute change (mode, owner, mtime, xattrs) that follows a
//! symlink. A local user who can write a directory in the root swaps a
//! name sysup is about to chmod for a link to a file elsewhere — here, with
//! the apply killed after its commit point and the link planted before the
//! re-run, the deterministic form of that race. The file outside must keep
//! its mode, owner, mtime and xattrs; the re-run refuses, naming the path.

use crate::common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::*;

fn file(path: &str, data: &[u8], mode: u32, mtime: i64) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.mode = mode;
    c.entry.mtime = mtime;
    c
}

fn dir(path: &str) -> Crafted {
    let mut c = Crafted::dir(path);
    c.entry.mtime = 100;
    c
}

/// Kill `sysup apply` at checkpoint `at`.
fn crash_at(root: &Path, dist: &Path, at: &str) {
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", at)
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(dist));
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "expected to die at {at}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_resumed_apply_never_changes_attributes_through_a_planted_symlink() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret");
    fs::write(&secret, b"not sysup's\n").unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&secret, Some(1000), Some(1000)).unwrap();
    }

    let a = craft_dist(
        t.path(),
        "world-1-20260101",
        "x86_64",
        &[
            dir("bin"),
            file("bin/other", b"a\n", 0o644, 100),
            file("bin/tool", b"tool\n", 0o644, 100),
        ],
    );
    // the same content: `bin/tool` only changes mode, mtime and xattrs in
    // place; `bin/other` changes, so the commit has a rename to die after
    let mut tool = file("bin/tool", b"tool\n", 0o4755, 200);
    tool.entry
        .xattrs
        .insert("user.sysup-test".into(), b"planted".to_vec());
    let b = craft_dist(
        t.path(),
        "world-2-20260102",
        "x86_64",
        &[dir("bin"), file("bin/other", b"b\n", 0o644, 200), tool],
    );
    apply_ok(&root, &[&a]);
    crash_at(&root, &b, "commit-rename");

    // the local user's move: the name sysup will chmod is now a link out
    fs::remove_file(root.join("bin/tool")).unwrap();
    symlink(&secret, root.join("bin/tool")).unwrap();
    let before_out = snapshot(&outside);
    let secret_md = fs::metadata(&secret).unwrap();

    let err = apply_fails(&root, &[&b]);
    let d = diff_snapshots(&before_out, &snapshot(&outside));
    assert!(
        d.is_empty(),
        "the file outside the root changed:\n{}",
        d.join("\n")
    );
    assert_eq!(fs::metadata(&secret).unwrap().mode(), secret_md.mode());
    assert!(
        err.contains("bin/tool"),
        "the error must name the path: {err}"
    );
    assert!(err.contains("symbolic link"), "and say why: {err}");
    assert!(fs::symlink_metadata(root.join("bin/tool"))
        .unwrap()
        .file_type()
        .is_symlink());

    // once the admin removed the link, the pending apply finishes; a repair
    // puts the file back
    fs::remove_file(root.join("bin/tool")).unwrap();
    apply_ok(&root, &[&b]);
    apply_ok(&root, &[&b]);
    let md = fs::symlink_metadata(root.join("bin/tool")).unwrap();
    assert!(md.is_file());
    assert_eq!(md.mode() & 0o7777, 0o4755);
    assert_eq!(fs::read(root.join("bin/other")).unwrap(), b"b\n");
    let d = diff_snapshots(&before_out, &snapshot(&outside));
    assert!(
        d.is_empty(),
        "the file outside the root changed:\n{}",
        d.join("\n")
    );
}
