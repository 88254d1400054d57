//! Threat: a patch fed the wrong base — another revision installed, nothing
//! installed, a chain out of order, or the recorded base damaged on disk.
//! Each is refused with a message naming the patch and the cause, and the
//! root is left exactly as it was.

use crate::common;

use std::fs;

use common::*;

#[test]
fn patch_for_another_revision_is_refused() {
    // world-3 is installed; the 1->2 patch neither starts there nor makes
    // the installed id (that would be a repair: tests/suite/apply_chain.rs)
    let c = chain();
    let (t, before) = installed_root(3);
    let e = apply_fails(t.path(), &[&c.patches[0]]);
    assert!(
        e.contains("does not apply to this host")
            && e.contains("world-1-20260101_2-20260102.patch"),
        "{e}"
    );
    assert!(e.contains("world-3-20260103 is installed"), "{e}");
    // What to do on a host, not how to feed the `sysup patch` filter.
    assert!(e.contains("hint: run `sysup update`"), "{e}");
    assert!(!e.contains("uncompressed tar"), "{e}");
    assert_unchanged(t.path(), &before);
}

#[test]
fn patch_with_nothing_installed_is_refused() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let e = apply_fails(t.path(), &[&c.patches[0]]);
    assert!(e.contains("nothing is installed"), "{e}");
    // only sysup's own state (var/db/sysup, holding this failure's history
    // record) was created
    let left: Vec<_> = root_snapshot(t.path()).into_keys().collect();
    assert_eq!(left, vec![b"var".to_vec()]);
}

#[test]
fn chain_out_of_order_is_refused() {
    let c = chain();
    let (t, before) = installed_root(1);
    let e = apply_fails(t.path(), &[&c.patches[1], &c.patches[0]]);
    assert!(e.contains("broken chain"), "{e}");
    assert_unchanged(t.path(), &before);
}

#[test]
fn damaged_base_on_disk_is_detected() {
    let c = chain();
    let (t, _) = installed_root(1);
    let base = t.path().join("var/db/sysup/bases/world-1-20260101.tar.gz");
    let mut b = fs::read(&base).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    fs::write(&base, &b).unwrap();
    let before = guarded_snapshot(t.path());
    let e = apply_fails(t.path(), &[&c.patches[0]]);
    assert!(e.contains("bases/world-1-20260101.tar.gz"), "{e}");
    assert_unchanged(t.path(), &before);
    // the way out: a full dist re-installs and replaces the damaged base
    apply_ok(t.path(), &[&c.dists[1]]);
    assert_root_is(t.path(), &c.trees[1]);
}

/// The base decompressed, one byte of `usr/bin/cat` (the same in revisions
/// 1 and 2, so the patch copies it) flipped, and stored again as gzip.
fn base_with_cat_changed(base: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    use std::io::{Read, Write};
    let gz = fs::read(base).unwrap();
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    let mut a = tar::Archive::new(&tar[..]);
    let at = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path_bytes().as_ref() == b"usr/bin/cat")
        .map(|e| e.raw_file_position() as usize)
        .expect("usr/bin/cat in the base");
    tar[at + 100] ^= 0x01;
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    w.write_all(&tar).unwrap();
    (gz, w.finish().unwrap())
}

#[test]
fn base_changed_under_an_intact_looking_gzip_is_caught_by_its_crc() {
    // The applier does not MD5 the base it reads: gzip's CRC-32 guards it.
    // Same bytes but one, same length, the original CRC kept in the trailer.
    let c = chain();
    let (t, _) = installed_root(1);
    let base = t.path().join("var/db/sysup/bases/world-1-20260101.tar.gz");
    let (orig, mut changed) = base_with_cat_changed(&base);
    let n = changed.len();
    changed[n - 8..n - 4].copy_from_slice(&orig[orig.len() - 8..orig.len() - 4]);
    fs::write(&base, &changed).unwrap();
    let before = guarded_snapshot(t.path());
    let e = apply_fails(t.path(), &[&c.patches[0]]);
    assert!(e.contains("gunzip") && e.contains("checksum"), "{e}");
    assert!(e.contains("bases/world-1-20260101.tar.gz"), "{e}");
    assert_unchanged(t.path(), &before);
}

#[test]
fn base_replaced_by_another_tar_cannot_make_the_target() {
    // A valid gzip of a tar that is not the recorded base (its CRC right for
    // what it holds): the output check refuses what it makes.
    let c = chain();
    let (t, _) = installed_root(1);
    let base = t.path().join("var/db/sysup/bases/world-1-20260101.tar.gz");
    let (_, changed) = base_with_cat_changed(&base);
    fs::write(&base, &changed).unwrap();
    let before = guarded_snapshot(t.path());
    let e = apply_fails(t.path(), &[&c.patches[0]]);
    assert!(
        e.contains("applying to the recorded base")
            && e.contains("bases/world-1-20260101.tar.gz")
            && e.contains("did not make world-2-20260102"),
        "{e}"
    );
    assert!(e.contains("world-1-20260101_2-20260102.patch"), "{e}");
    assert!(!e.contains("checksum"), "{e}");
    assert_unchanged(t.path(), &before);
}

#[test]
fn arch_mismatch_is_refused() {
    let (t, before) = installed_root(1);
    let d = tempfile::tempdir().unwrap();
    let dist = craft_dist(
        d.path(),
        "world-9-20260109",
        "aarch64",
        &[Crafted::dir("etc")],
    );
    let e = apply_fails(t.path(), &[&dist]);
    assert!(e.contains("aarch64") && e.contains("x86_64"), "{e}");
    assert_unchanged(t.path(), &before);
}

#[test]
fn base_replaced_by_a_tar_of_other_members_is_blamed_on_the_base() {
    // Another dist's valid gzip in place of the recorded base: its members
    // differ, so the patch's controls cannot be followed over it long before
    // any digest is compared. The base, not the patch, must be named.
    let c = chain();
    let (t, _) = installed_root(1);
    let base = t.path().join("var/db/sysup/bases/world-1-20260101.tar.gz");
    fs::copy(&c.dists[2], &base).unwrap();
    let before = guarded_snapshot(t.path());
    let e = apply_fails(t.path(), &[&c.patches[0]]);
    assert!(
        e.contains("applying to the recorded base") && e.contains("bases/world-1-20260101.tar.gz"),
        "{e}"
    );
    // the base leads; the patch's complaint is only the cause below it
    assert!(
        e.lines()
            .next()
            .unwrap()
            .contains("applying to the recorded base"),
        "{e}"
    );
    assert_unchanged(t.path(), &before);
}
