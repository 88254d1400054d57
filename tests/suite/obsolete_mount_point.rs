//! A filesystem mounted where the dist no longer ships a directory, or
//! where the new dist puts a file or a symlink: the obsolete mount point is
//! kept and reported (its rmdir could only fail, on every run, and left the
//! apply pending for good), and a mount point the new dist would replace
//! refuses the apply before anything is staged (the commit could not move
//! it aside). Each apply runs in a mount namespace of its own (`unshare
//! --mount`) with a tmpfs mounted in the test's root: nothing leaks to the
//! host's mounts.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

/// `sysup ARGS` in a new mount namespace with a tmpfs on `mount_at`; `None`
/// when this machine cannot (not root, no `unshare`): SKIPPED, a failure
/// under CI.
fn mounted(mount_at: &Path, args: &[&std::ffi::OsStr]) -> Option<Output> {
    let skip = |why: String| {
        assert!(std::env::var_os("CI").is_none(), "CI: {why}");
        eprintln!("SKIPPED: {why}");
        None
    };
    if !is_root() {
        return skip("mounting a tmpfs needs root".into());
    }
    let o = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs sysup-test "$1" || exit 99; shift; exec "$@""#)
        .arg("sh")
        .arg(mount_at)
        .arg(env!("CARGO_BIN_EXE_sysup"))
        .args(args)
        .output();
    match o {
        Ok(o) if o.status.code() == Some(99) => skip(format!(
            "no tmpfs mount here: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Ok(o) => Some(o),
        Err(e) => skip(format!("no unshare here: {e}")),
    }
}

fn world(t: &Path, id: &str, data: Option<Crafted>) -> std::path::PathBuf {
    let mut w = vec![
        Crafted::dir("mnt"),
        Crafted::dir("usr"),
        Crafted::file("usr/x", id.as_bytes()),
    ];
    w.extend(data);
    w.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    craft_dist(t, id, "x86_64", &w)
}

#[test]
fn an_obsolete_directory_that_is_a_mount_point_is_kept_and_reported() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let w1 = world(t.path(), "world-1-20260101", Some(Crafted::dir("mnt/data")));
    apply_ok(&root, &[&w1]);
    let w2 = world(t.path(), "world-2-20260102", None);
    let at = root.join("mnt/data");
    let args = |dry: bool| {
        let mut v: Vec<&std::ffi::OsStr> = vec!["apply".as_ref()];
        if dry {
            v.push("--dry-run".as_ref());
        }
        v.extend(["--root".as_ref(), root.as_os_str(), w2.as_os_str()]);
        v
    };
    // the preview says so, then the apply does
    let Some(dry) = mounted(&at, &args(true)) else {
        return;
    };
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{dry:?}");
    assert!(
        dry_out.contains("not removed  mnt/data (a mount point)"),
        "{dry_out}"
    );
    let o = mounted(&at, &args(false)).unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(
        out.contains("not removed  mnt/data (a mount point)"),
        "{out}"
    );
    // done: nothing pending, and the directory is still there
    let status = ok(sysup().arg("status").arg("--root").arg(&root));
    assert!(!status.contains("pending"), "{status}");
    assert!(status.contains("installed  world-2-20260102"), "{status}");
    assert!(at.is_dir());
}

#[test]
fn a_mount_point_the_new_dist_replaces_is_refused_before_staging() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let w1 = world(t.path(), "world-1-20260101", Some(Crafted::dir("mnt/data")));
    apply_ok(&root, &[&w1]);
    let w2 = world(
        t.path(),
        "world-2-20260102",
        Some(Crafted::symlink("mnt/data", "../usr")),
    );
    let before = guarded_snapshot(&root);
    let at = root.join("mnt/data");
    let Some(o) = mounted(
        &at,
        &[
            "apply".as_ref(),
            "--root".as_ref(),
            root.as_os_str(),
            w2.as_os_str(),
        ],
    ) else {
        return;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        err.contains("mnt/data' is a mount point, and the new dist makes it a symbolic link"),
        "{err}"
    );
    assert_unchanged(&root, &before);
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}
