//! Threat: an upgrade that trusts size and mtime. A file the dist keeps
//! unchanged is skipped unread when nothing touched it since the last
//! apply; an attacker (or a careless admin) who replaces it with other
//! bytes of the same size and puts the old mtime back (`touch -r`) must not
//! pass for untouched. The upgrade also compares the inode number and ctime
//! recorded when sysup last wrote or checked the file (ctime cannot be set
//! back), as git's index does, and reads and restores such a file.

use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

const TOOL: &[u8] = b"#!/bin/sh\necho tool\n";
const EVIL: &[u8] = b"#!/bin/sh\necho EVIL\n";

fn world(hostname: &[u8]) -> Vec<Crafted> {
    vec![
        Crafted::dir("etc"),
        Crafted::file("etc/hostname", hostname),
        Crafted::dir("usr"),
        Crafted::dir("usr/bin"),
        Crafted::file("usr/bin/tool", TOOL),
    ]
}

/// Install world 1, let `tamper` change `usr/bin/tool` behind sysup's
/// back (same size, old mtime put back), upgrade to world 2 (which keeps
/// the tool as it was) and return what the tool holds then.
fn upgrade_after(tamper: fn(&Path)) -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let d1 = craft_dist(t.path(), "world-1-20260101", "x86_64", &world(b"one\n"));
    let d2 = craft_dist(t.path(), "world-2-20260102", "x86_64", &world(b"two\n"));
    apply_ok(&root, &[&d1]);
    let tool = root.join("usr/bin/tool");
    let before = fs::symlink_metadata(&tool).unwrap();
    tamper(&tool);
    let after = fs::symlink_metadata(&tool).unwrap();
    assert_eq!((after.len(), after.mtime()), (before.len(), before.mtime()));
    assert_eq!(fs::read(&tool).unwrap(), EVIL);
    apply_ok(&root, &[&d2]);
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"two\n");
    fs::read(&tool).unwrap()
}

/// `touch -r`: put `m`'s mtime back on `p`.
fn put_back_mtime(p: &Path, m: &fs::Metadata) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(m.modified().unwrap()).unwrap();
}

#[test]
fn a_file_rewritten_in_place_with_the_old_size_and_mtime_is_restored() {
    // same inode: only the ctime tells
    let got = upgrade_after(|tool| {
        let m = fs::symlink_metadata(tool).unwrap();
        let mut f = fs::File::options().write(true).open(tool).unwrap();
        f.write_all(EVIL).unwrap();
        drop(f);
        put_back_mtime(tool, &m);
    });
    assert_eq!(got, TOOL, "the tampered tool survived the upgrade");
}

#[test]
fn a_file_renamed_over_with_the_old_size_and_mtime_is_restored() {
    // a new inode, made to look like the old one
    let got = upgrade_after(|tool| {
        let m = fs::symlink_metadata(tool).unwrap();
        let tmp = tool.with_file_name("tool.tmp");
        fs::write(&tmp, EVIL).unwrap();
        fs::set_permissions(&tmp, m.permissions()).unwrap();
        put_back_mtime(&tmp, &m);
        fs::rename(&tmp, tool).unwrap();
    });
    assert_eq!(got, TOOL, "the tampered tool survived the upgrade");
}
