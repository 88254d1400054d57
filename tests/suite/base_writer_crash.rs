//! Crash safety of the base writer (`gz::members`): an apply killed while
//! it copies an old base's unchanged gzip members into the new base, or
//! while it deflates the changed ones, is undone by the next run, which
//! then converges: the tree is the target, the kept base gunzips to the
//! target's tar, and nothing temporary is left. The worlds are crafted so
//! that most of the new tar repeats the old one (files of 128 KiB or more
//! are gzip members of their own), which is when members are copied.

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// 160 KiB of text for file `i` of revision `rev` (only file 7 changes).
fn text(i: usize, rev: u32) -> Vec<u8> {
    let rev = if i == 7 { rev } else { 0 };
    let mut v = Vec::new();
    let mut j = 0;
    while v.len() < 160 << 10 {
        v.extend_from_slice(
            format!("file {i} line {j} rev {rev}: the quick brown fox\n").as_bytes(),
        );
        j += 1;
    }
    v
}

fn world(dir: &Path, rev: u32) -> PathBuf {
    let mut members = vec![Crafted::dir("usr"), Crafted::dir("usr/share")];
    for i in 0..16 {
        members.push(Crafted::file(&format!("usr/share/f{i:02}"), &text(i, rev)));
    }
    let arch = std::env::consts::ARCH;
    craft_dist(dir, &format!("world-{rev}-2026010{rev}"), arch, &members)
}

/// Dists 1 and 2 and the patch between them.
fn pair(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (a, b) = (world(dir, 1), world(dir, 2));
    ok(sysup().arg("diff").arg(&a).arg(&b).arg("--out").arg(dir));
    let p = dir.join("world-1-20260101_2-20260102.patch");
    assert!(p.exists());
    (a, b, p)
}

fn sha_of_gunzip(gz: &Path) -> String {
    ok(Command::new("sh")
        .arg("-c")
        .arg(format!("gunzip -c '{}' | sha256sum", gz.display())))
}

fn crash_then_converge(at: &str) {
    let d = tempfile::tempdir().unwrap();
    let (a, b, p) = pair(d.path());
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&a]);
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", at)
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(&p));
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "expected to die at {at}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(installed_world(root).as_deref(), Some("world-1-20260101"));
    apply_ok(root, &[&p]);
    assert_eq!(installed_world(root).as_deref(), Some("world-2-20260102"));
    let base = root.join("var/db/sysup/bases/world-2-20260102.tar.gz");
    assert_eq!(sha_of_gunzip(&base), sha_of_gunzip(&b), "after {at}");
    for i in 0..16 {
        let f = root.join(format!("usr/share/f{i:02}"));
        assert_eq!(std::fs::read(f).unwrap(), text(i, 2), "file {i} after {at}");
    }
    assert_eq!(leftovers(root), Vec::<String>::new(), "after {at}");
}

#[test]
fn a_kill_while_old_members_are_copied_converges() {
    crash_then_converge("base-copy:3");
}

#[test]
fn a_kill_while_new_members_are_deflated_converges() {
    crash_then_converge("base-deflate:1");
}
