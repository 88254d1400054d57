//! How a host keeps its bases (`[apply] base-compression` in
//! `etc/sysup.conf`): stored by default, deflated on request (zlib-rs level
//! 1, or ISA-L with the `isal` feature), either a gzip that gunzip reads as
//! exactly the dist's tar, and a host may switch between applies; a bad
//! setting is refused before anything is written.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// Size and SHA-256 of what `gunzip -c` makes of `gz` (which `gzip -t` passes).
fn gunzipped(gz: &Path) -> (u64, String) {
    ok(Command::new("gzip").arg("-t").arg(gz));
    let out = ok(Command::new("sh")
        .arg("-c")
        .arg(format!("gunzip -c '{}' | sha256sum", gz.display())));
    let size = ok(Command::new("sh")
        .arg("-c")
        .arg(format!("gunzip -c '{}' | wc -c", gz.display())));
    (size.trim().parse().unwrap(), out)
}

fn set_conf(root: &Path, text: &str) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/sysup.conf"), text).unwrap();
}

fn base(root: &Path, id: &str) -> std::path::PathBuf {
    root.join("var/db/sysup/bases").join(format!("{id}.tar.gz"))
}

/// [`assert_root_is`], but for the host's own `etc/sysup.conf` (removed
/// now) and the mtime of `etc`, which its writing and removal changed.
fn assert_root_is_with_conf(root: &Path, tree: &Path) {
    let _ = fs::remove_file(root.join("etc/sysup.conf"));
    let want = expected_snapshot(tree);
    let mut got = root_snapshot(root);
    if let (Some(w), Some(g)) = (want.get(b"etc".as_slice()), got.get_mut(b"etc".as_slice())) {
        g.mtime = w.mtime;
    }
    let d = diff_snapshots(&want, &got);
    assert!(
        d.is_empty(),
        "root differs from {}:\n{}",
        tree.display(),
        d.join("\n")
    );
}

#[test]
fn bases_are_stored_by_default_and_deflated_on_request() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let deflated = |id: &str, dist: &Path| {
        let (tar, sum) = gunzipped(&base(root, id));
        assert_eq!(sum, gunzipped(dist).1, "base {id} is not its dist's tar");
        let size = fs::metadata(base(root, id)).unwrap().len();
        // the fixture trees are mostly noise: deflate gains ~10% on them
        assert!(
            size * 100 < tar * 95,
            "fast base {id}: {size} bytes, tar {tar}"
        );
    };
    set_conf(root, "[apply]\nbase-compression = \"fast\"\n");
    apply_ok(root, &[&c.dists[0]]);
    deflated("world-1-20260101", &c.dists[0]);
    // the default, reading a deflated base
    fs::remove_file(root.join("etc/sysup.conf")).unwrap();
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is_with_conf(root, &c.trees[1]);
    let (tar, sum) = gunzipped(&base(root, "world-2-20260102"));
    assert_eq!(sum, gunzipped(&c.dists[1]).1, "base 2 is not dist 2's tar");
    let stored = fs::metadata(base(root, "world-2-20260102")).unwrap().len();
    assert!(
        stored > tar && stored < tar + tar / 100 + 64,
        "default base: {stored} bytes for a {tar}-byte tar"
    );
    // deflated again, reading a stored base
    set_conf(root, "[apply]\nbase-compression = \"fast\"\n");
    apply_ok(root, &[&c.patches[1]]);
    assert_root_is_with_conf(root, &c.trees[2]);
    deflated("world-3-20260103", &c.dists[2]);
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
}

#[test]
fn a_bad_setting_is_refused_before_anything_is_written() {
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    set_conf(
        root,
        "[apply]\ndevices = [\"dev/**\"]\nbase-compression = \"xz\"\n",
    );
    let before = guarded_snapshot(root);
    let err = apply_fails(root, &[&c.patches[0]]);
    assert!(
        err.contains("etc/sysup.conf") && err.contains("xz"),
        "{err}"
    );
    assert_unchanged(root, &before);
    assert_eq!(installed_world(root).as_deref(), Some("world-1-20260101"));
}
