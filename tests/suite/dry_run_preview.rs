//! A dry run foretells the apply (issue 21, item 4): `apply --dry-run
//! --json` names every path the real apply then adds, changes, removes and
//! keeps, and every config file kept, with the same counts — for a full
//! install, a patch chain, and an upgrade that removes obsolete files but
//! keeps a modified obsolete config file, a directory that still holds the
//! admin's file, and a directory the new dist makes a symlink. The dry run
//! changes nothing. `update --dry-run` says what it would fetch and install,
//! fetching, recording and applying nothing.

use crate::mirror_support;

use std::fs;
use std::path::Path;

use mirror_support::common::*;
use serde_json::Value;

/// The report fields a dry run must foretell exactly.
const FORETOLD: &[&str] = &[
    "action",
    "from",
    "to",
    "counts",
    "added",
    "changed",
    "config_kept",
    "removed",
    "kept",
    "upgrade_ran",
    "tar",
];

/// A snapshot without the one thing a dry run may write: the pid in the
/// lock file of a root sysup already keeps state in. (On a root without
/// state a dry run creates nothing at all.)
fn strip(
    s: std::collections::BTreeMap<Vec<u8>, Node>,
) -> std::collections::BTreeMap<Vec<u8>, Node> {
    s.into_iter()
        .filter(|(k, _)| k.as_slice() != b"var/db/sysup/lock")
        .collect()
}

fn apply_json(root: &Path, files: &[&Path], dry: bool) -> Value {
    let mut c = sysup();
    c.args(["apply", "--json", "--root"]).arg(root);
    if dry {
        c.arg("--dry-run");
    }
    c.args(files);
    serde_json::from_str(&ok(&mut c)).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// Dry-run `files` on `root` (checking it changes nothing), then apply them
/// for real; the two reports must agree on everything foretold. Returns the
/// real report.
fn foretold_then_applied(root: &Path, files: &[&Path]) -> Value {
    let before = strip(snapshot(root));
    let dry = apply_json(root, files, true);
    let d = diff_snapshots(&before, &strip(snapshot(root)));
    assert!(
        d.is_empty(),
        "the dry run changed the root:\n{}",
        d.join("\n")
    );
    let real = apply_json(root, files, false);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(real["dry_run"], false);
    for f in FORETOLD {
        assert_eq!(
            dry[f], real[f],
            "the dry run foretold {f} wrong\ndry run: {}\nreal:    {}",
            dry[f], real[f]
        );
    }
    // every entry counted as written is named once
    let named = ["added", "changed", "config_kept"]
        .iter()
        .map(|f| strings(&real[f]).len() as u64)
        .sum::<u64>();
    assert_eq!(real["counts"]["changed"].as_u64(), Some(named), "{real}");
    assert_eq!(
        real["counts"]["removed"].as_u64(),
        Some(strings(&real["removed"]).len() as u64)
    );
    real
}

#[test]
fn dry_run_of_a_full_install_lists_what_the_install_adds() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    // Foretelling a first install creates nothing at all, not even sysup's
    // state directory or its lock.
    apply_json(t.path(), &[&c.dists[0]], true);
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert!(left.is_empty(), "the dry run wrote into the root: {left:?}");
    let real = foretold_then_applied(t.path(), &[&c.dists[0]]);
    let added = strings(&real["added"]);
    assert!(added.contains(&"usr/bin/oldtool".to_string()), "{added:?}");
    assert!(added.contains(&"etc/motd".to_string()), "{added:?}");
    assert_root_is(t.path(), &c.trees[0]);
}

#[test]
fn dry_run_of_a_patch_chain_lists_what_the_chain_changes_and_removes() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    // the admin's own settings: kept, the new version beside them
    fs::write(root.join("etc/sysup-demo.conf"), "# mine\nlevel = 9\n").unwrap();
    let real = foretold_then_applied(root, &[&c.patches[0], &c.patches[1]]);
    let has = |f: &str, p: &str| strings(&real[f]).contains(&p.to_string());
    assert!(has("removed", "usr/bin/oldtool"), "{real}");
    assert!(has("added", "usr/bin/newtool"), "{real}");
    assert!(has("changed", "usr/bin/dash"), "{real}");
    assert!(has("config_kept", "etc/sysup-demo.conf"), "{real}");
    assert!(!root.join("usr/bin/oldtool").exists());
}

fn config(path: &str, data: &[u8]) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.config = true;
    c
}

#[test]
fn dry_run_of_an_upgrade_foretells_what_cleanup_removes_and_keeps() {
    let t = tempfile::tempdir().unwrap();
    let arch = std::env::consts::ARCH;
    let v1 = craft_dist(
        t.path(),
        "world-1-20260101",
        arch,
        &[
            Crafted::dir("bin"),
            Crafted::file("bin/tool", b"tool 1\n"),
            Crafted::dir("etc"),
            config("etc/keep.conf", b"keep = 1\n"),
            config("etc/old.conf", b"old = 1\n"),
            Crafted::dir("opt"),
            Crafted::dir("opt/gone"),
            Crafted::dir("opt/gone/sub"),
            Crafted::file("opt/gone/sub/b", b"b\n"),
            Crafted::dir("opt/old"),
            Crafted::file("opt/old/a", b"a\n"),
            Crafted::dir("srv"),
            Crafted::dir("srv/d"),
            Crafted::file("srv/d/x", b"x\n"),
        ],
    );
    let v2 = craft_dist(
        t.path(),
        "world-2-20260102",
        arch,
        &[
            Crafted::dir("bin"),
            Crafted::file("bin/new", b"new 2\n"),
            Crafted::file("bin/tool", b"tool 2\n"),
            Crafted::dir("etc"),
            config("etc/keep.conf", b"keep = 2\n"),
            Crafted::dir("opt"),
            Crafted::dir("srv"),
            Crafted::symlink("srv/d", "/var/srv-d"),
        ],
    );
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    apply_ok(&root, &[&v1]);
    // The admin changed two config files (one the new dist still ships, one
    // it drops) and put a file of their own in a directory it drops.
    fs::write(root.join("etc/keep.conf"), "keep = mine\n").unwrap();
    fs::write(root.join("etc/old.conf"), "old = mine\n").unwrap();
    fs::write(root.join("opt/old/mine"), "mine\n").unwrap();
    let real = foretold_then_applied(&root, &[&v2]);
    assert_eq!(strings(&real["added"]), ["bin/new"], "{real}");
    assert_eq!(strings(&real["changed"]), ["bin/tool", "srv/d"], "{real}");
    assert_eq!(strings(&real["config_kept"]), ["etc/keep.conf"], "{real}");
    let mut removed = strings(&real["removed"]);
    removed.sort();
    assert_eq!(
        removed,
        [
            "opt/gone",
            "opt/gone/sub",
            "opt/gone/sub/b",
            "opt/old/a",
            "srv/d/x"
        ],
        "{real}"
    );
    let mut kept = strings(&real["kept"]);
    kept.sort();
    assert_eq!(
        kept,
        [
            "etc/old.conf (config file modified locally)",
            "opt/old (directory not empty)"
        ],
        "{real}"
    );
    assert_eq!(
        fs::read(root.join("etc/old.conf")).unwrap(),
        b"old = mine\n"
    );
    assert!(root.join("opt/old/mine").exists());
    assert!(!root.join("opt/gone").exists());
}

#[test]
fn verbose_human_output_lists_the_paths() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let dry = ok(sysup()
        .args(["apply", "--dry-run", "-v", "--root"])
        .arg(root)
        .arg(&c.patches[0]));
    let real = ok(sysup()
        .args(["apply", "-v", "--root"])
        .arg(root)
        .arg(&c.patches[0]));
    let paths = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| {
                ["  added ", "  changed ", "  removed "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(str::to_string)
            .collect()
    };
    assert!(dry.contains("  removed      usr/bin/oldtool"), "{dry}");
    assert!(dry.contains("  added        usr/bin/newtool"), "{dry}");
    assert_eq!(paths(&dry), paths(&real));
    // without -v, counts only
    let quiet = ok(sysup()
        .args(["apply", "--dry-run", "--root"])
        .arg(root)
        .arg(&c.dists[1]));
    assert!(!quiet.contains("  added "), "{quiet}");
}

#[test]
fn update_dry_run_tells_what_it_would_fetch_and_changes_nothing() {
    use mirror_support::{id, install, json_ok, patch_name, serial, update, Nginx, World};
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    install(&root, 1);
    let before = snapshot(&root);
    let serial_before = serial(&root);
    let j = json_ok(&update(
        &root,
        &nginx.url(),
        &w.keys.public,
        &["--dry-run", "--json"],
    ));
    assert_eq!(j["dry_run"], true, "{j}");
    assert_eq!(j["result"], "would-apply", "{j}");
    assert_eq!(j["plans"][0]["target"], id(2), "{j}");
    assert_eq!(j["applied"], serde_json::json!([]), "{j}");
    let size = fs::metadata(w.file(&patch_name(1, 2))).unwrap().len();
    assert_eq!(j["downloads"][0]["file"], patch_name(1, 2), "{j}");
    assert_eq!(j["fetched_bytes"].as_u64(), Some(size), "{j}");
    assert!(
        nginx.hits_of(&patch_name(1, 2)).is_empty(),
        "nothing is downloaded"
    );
    assert_eq!(serial(&root), serial_before, "no serial is recorded");
    let d = diff_snapshots(&strip(before), &strip(snapshot(&root)));
    assert!(
        d.is_empty(),
        "the dry run changed the root:\n{}",
        d.join("\n")
    );

    // A file already downloaded is not counted again.
    json_ok(&update(
        &root,
        &nginx.url(),
        &w.keys.public,
        &["--download-only", "--json"],
    ));
    let j = json_ok(&update(
        &root,
        &nginx.url(),
        &w.keys.public,
        &["--dry-run", "--json"],
    ));
    assert_eq!(j["fetched_bytes"], 0, "{j}");
    assert_eq!(j["downloads"][0]["reused"], true, "{j}");
    // and the human form says the same
    let o = update(&root, &nginx.url(), &w.keys.public, &["--dry-run"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("would fetch 0 bytes (1 file is already here)"),
        "{out}"
    );
    assert_eq!(
        mirror_support::installed(&root).as_deref(),
        Some(id(1).as_str())
    );
}
