//! Threat: damaged inputs — a truncated patch, flipped bytes in a patch, a
//! truncated dist, a dist whose MANIFEST lies about a file's hash. Each is
//! refused before anything goes live; the root is left exactly as it was
//! and no staged file remains.

use crate::common;

use std::fs;
use std::path::PathBuf;

use common::*;

fn damaged_copy(
    src: &std::path::Path,
    dir: &std::path::Path,
    f: impl FnOnce(&mut Vec<u8>),
) -> PathBuf {
    let mut b = fs::read(src).unwrap();
    f(&mut b);
    let p = dir.join(src.file_name().unwrap());
    fs::write(&p, &b).unwrap();
    p
}

#[test]
fn truncated_patch() {
    let c = chain();
    let (t, before) = installed_root(1);
    let d = tempfile::tempdir().unwrap();
    let p = damaged_copy(&c.patches[0], d.path(), |b| b.truncate(b.len() * 2 / 3));
    let e = apply_fails(t.path(), &[&p]);
    assert!(e.contains("patch"), "{e}");
    assert_unchanged(t.path(), &before);
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn flipped_bytes_in_a_patch() {
    let c = chain();
    let (t, before) = installed_root(1);
    let d = tempfile::tempdir().unwrap();
    let len = fs::metadata(&c.patches[0]).unwrap().len() as usize;
    for at in [len / 3, len / 2, len - 10] {
        let p = damaged_copy(&c.patches[0], d.path(), |b| b[at] ^= 0x20);
        let e = apply_fails(t.path(), &[&p]);
        assert!(e.contains("world-1-20260101_2-20260102.patch"), "{e}");
        assert_unchanged(t.path(), &before);
        assert!(leftovers(t.path()).is_empty());
    }
}

#[test]
fn truncated_dist() {
    let c = chain();
    let (t, before) = installed_root(1);
    let d = tempfile::tempdir().unwrap();
    let p = damaged_copy(&c.dists[1], d.path(), |b| b.truncate(b.len() / 2));
    let e = apply_fails(t.path(), &[&p]);
    assert!(e.contains("world-2-20260102.tar.gz"), "{e}");
    assert_unchanged(t.path(), &before);
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
}

#[test]
fn manifest_lying_about_a_hash() {
    let (t, before) = installed_root(1);
    let d = tempfile::tempdir().unwrap();
    let mut liar = Crafted::file("usr/bin/evil", b"what the MANIFEST promised");
    liar.data = b"something else entirely!!!".to_vec(); // same length, other bytes
    let dist = craft_dist(
        d.path(),
        "world-9-20260109",
        "x86_64",
        &[
            Crafted::dir("usr"),
            Crafted::dir("usr/bin"),
            Crafted::file("usr/bin/fine", b"ok"),
            liar,
        ],
    );
    let e = apply_fails(t.path(), &[&dist]);
    assert!(
        e.contains("usr/bin/evil") && e.contains("does not match"),
        "{e}"
    );
    assert_unchanged(t.path(), &before);
    assert!(leftovers(t.path()).is_empty(), "{:?}", leftovers(t.path()));
}
