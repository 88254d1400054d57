//! Threat: silent data loss. A directory the old dist shipped becomes a
//! symlink (or a file) in the new dist; files in it that no dist shipped —
//! an admin's, a user's home — must not go with it. sysup refuses before it
//! changes anything, naming the directory and what no dist shipped; once
//! the admin moved those away, the apply goes through and its report lists
//! every shipped path it removed.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn file(path: &str, data: &[u8]) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.mtime = 100;
    c
}

fn dir(path: &str) -> Crafted {
    let mut c = Crafted::dir(path);
    c.entry.mtime = 100;
    c
}

/// A root with `opt/app/{bin,share/doc}` installed, beside `outside/`.
fn installed(t: &Path) -> PathBuf {
    let root = t.join("root");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(t.join("outside")).unwrap();
    fs::write(t.join("outside/keep"), b"outside\n").unwrap();
    let a = craft_dist(
        t,
        "world-1-20260101",
        "x86_64",
        &[
            dir("opt"),
            dir("opt/app"),
            file("opt/app/bin", b"app 1\n"),
            dir("opt/app/share"),
            file("opt/app/share/doc", b"doc\n"),
        ],
    );
    apply_ok(&root, &[&a]);
    root
}

/// The new dist: `opt/app` is a symlink (or a file) to the app's new home.
fn new_dist(t: &Path, app: Crafted) -> PathBuf {
    craft_dist(
        t,
        "world-2-20260102",
        "x86_64",
        &[
            dir("opt"),
            app,
            dir("srv"),
            dir("srv/app"),
            file("srv/app/bin", b"app 2\n"),
        ],
    )
}

fn refused_then_applied(app: Crafted) {
    let t = tempfile::tempdir().unwrap();
    let root = installed(t.path());
    // what no dist shipped
    fs::write(root.join("opt/app/local.conf"), b"admin's\n").unwrap();
    fs::create_dir_all(root.join("opt/app/share/home/user")).unwrap();
    fs::write(root.join("opt/app/share/home/user/notes"), b"user's\n").unwrap();
    let before = guarded_snapshot(&root);
    let before_out = snapshot(&t.path().join("outside"));
    let b = new_dist(t.path(), app);

    let err = apply_fails(&root, &[&b]);
    for needle in ["opt/app", "local.conf", "share/home"] {
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
    }
    assert_unchanged(&root, &before);
    assert!(diff_snapshots(&before_out, &snapshot(&t.path().join("outside"))).is_empty());
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));

    // the admin moves them; the apply then removes exactly what was shipped
    fs::rename(root.join("opt/app/local.conf"), root.join("local.conf")).unwrap();
    fs::rename(root.join("opt/app/share/home"), root.join("home")).unwrap();
    let out = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(&root)
        .arg(&b));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut removed: Vec<String> = v["removed"]
        .as_array()
        .unwrap_or_else(|| panic!("no removed list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        ["opt/app/bin", "opt/app/share", "opt/app/share/doc"],
        "the report must list what went: {v}"
    );
    assert_eq!(fs::read(root.join("local.conf")).unwrap(), b"admin's\n");
    assert_eq!(fs::read(root.join("home/user/notes")).unwrap(), b"user's\n");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    let hist = fs::read_to_string(root.join("var/db/sysup/history")).unwrap();
    let last: serde_json::Value = serde_json::from_str(hist.lines().last().unwrap()).unwrap();
    assert_eq!(last["removed"], 3, "{last}");
}

#[test]
fn a_directory_becoming_a_symlink_keeps_what_no_dist_shipped() {
    refused_then_applied(Crafted::symlink("opt/app", "../srv/app"));
}

#[test]
fn a_directory_becoming_a_file_keeps_what_no_dist_shipped() {
    refused_then_applied(file("opt/app", b"#!/bin/sh\nexec /srv/app/bin\n"));
}

/// Something written into the directory after staging checked it (the
/// window before the commit moves it aside; here, a crash after the commit
/// point gives the time): cleanup removes only what was shipped, keeps the
/// rest where it is and says so.
#[test]
fn what_appears_after_staging_is_kept_and_reported() {
    use std::os::unix::process::ExitStatusExt;
    let t = tempfile::tempdir().unwrap();
    let root = installed(t.path());
    let b = new_dist(t.path(), Crafted::symlink("opt/app", "../srv/app"));
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", "committed")
        .args(["apply", "--root"])
        .arg(&root)
        .arg(&b));
    assert_eq!(o.status.signal(), Some(libc::SIGKILL));
    let aside = fs::read_dir(root.join("opt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("-aside-"))
        .expect("the old directory, moved aside");
    fs::write(aside.join("late"), b"user's\n").unwrap();
    let out = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(&root)
        .arg(&b));
    assert_eq!(fs::read(aside.join("late")).unwrap(), b"user's\n");
    let left: Vec<_> = fs::read_dir(&aside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["late"], "only what no dist shipped stays");
    let hist = fs::read_to_string(root.join("var/db/sysup/history")).unwrap();
    let last: serde_json::Value = serde_json::from_str(hist.lines().last().unwrap()).unwrap();
    assert_eq!(last["removed"], 3, "{last}");
    assert!(
        out.contains("opt/app/late"),
        "the report must name what was kept: {out}"
    );
}
