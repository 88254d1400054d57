//! How a host keeps its bases (`[apply] base-compression` in
//! `etc/sysup.conf`): deflated by default (libdeflate level 1) in
//! independent gzip members, stored on request;
//! either a gzip that gunzip, GNU tar and bsdtar read as exactly the dist's
//! tar; a host may switch between applies, and a base as sysup kept it
//! before (one stored member) is still read; a bad setting is refused
//! before anything is written.

use crate::common;

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

/// The lines of `tool -tzf base` (GNU tar or bsdtar reading the gzip
/// itself); `None` when `tool` is missing outside CI (SKIPPED said).
fn listed_by(tool: &str, gz: &Path) -> Option<String> {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => Some(ok(Command::new(tool).arg("-tzf").arg(gz))),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {tool} missing, not checked reading a base");
            None
        }
        Err(e) => panic!("{tool} is needed in CI: {e}"),
    }
}

/// The base of `id` gunzips to `dist`'s tar, in several gzip members that
/// GNU tar and bsdtar read; its size.
fn check_base(root: &Path, id: &str, dist: &Path) -> (u64, u64) {
    let (tar, sum) = gunzipped(&base(root, id));
    assert_eq!(sum, gunzipped(dist).1, "base {id} is not its dist's tar");
    let want = ok(Command::new("sh")
        .arg("-c")
        .arg(format!("gunzip -c '{}' | tar -tf -", dist.display())));
    for tool in ["tar", "bsdtar"] {
        if let Some(list) = listed_by(tool, &base(root, id)) {
            assert_eq!(list, want, "{tool} lists base {id} differently");
        }
    }
    (tar, fs::metadata(base(root, id)).unwrap().len())
}

#[test]
fn bases_are_deflated_by_default_and_stored_on_request() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let deflated = |id: &str, dist: &Path| {
        let (tar, size) = check_base(root, id, dist);
        // the fixture trees are mostly noise: deflate gains ~10% on them
        assert!(size * 100 < tar * 95, "base {id}: {size} bytes, tar {tar}");
    };
    apply_ok(root, &[&c.dists[0]]);
    deflated("world-1-20260101", &c.dists[0]);
    // stored on request, reading a deflated base
    set_conf(root, "[apply]\nbase-compression = \"none\"\n");
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is_with_conf(root, &c.trees[1]);
    let (tar, stored) = check_base(root, "world-2-20260102", &c.dists[1]);
    assert!(
        stored > tar && stored < tar + tar / 100 + 4096,
        "stored base: {stored} bytes for a {tar}-byte tar"
    );
    // the default again (the file was removed above), reading a stored base
    apply_ok(root, &[&c.patches[1]]);
    assert_root_is_with_conf(root, &c.trees[2]);
    deflated("world-3-20260103", &c.dists[2]);
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
}

#[test]
fn an_old_single_member_stored_base_is_read_and_a_deflated_one_written() {
    // What sysup kept before bases were deflated by default: the tar as one
    // gzip member of stored blocks.
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    let b = base(root, "world-1-20260101");
    let tar = Command::new("gunzip")
        .arg("-c")
        .arg(&c.dists[0])
        .output()
        .unwrap()
        .stdout;
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut w, &tar).unwrap();
    fs::write(&b, w.finish().unwrap()).unwrap();
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
    let (tar2, size) = check_base(root, "world-2-20260102", &c.dists[1]);
    assert!(size * 100 < tar2 * 95, "base: {size} bytes, tar {tar2}");
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
