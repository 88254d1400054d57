//! Filesystems mounted inside the root. A mount point is data no dist
//! shipped: one where the dist no longer ships a directory is kept and
//! reported (its rmdir could only fail, on every run, and left the apply
//! pending for good); a directory or file mounted where the new dist puts
//! something else refuses the apply before anything is staged (the
//! commit's rename could only fail, EBUSY, on every run); a bind-mounted
//! config file the dist leaves alone does not stop an apply. Each apply runs in
//! a mount namespace of its own (`unshare --mount`), the mount made in the
//! test's root: nothing leaks to the host's mounts.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

/// What to mount in the root before sysup runs.
enum Mount<'a> {
    /// A tmpfs on this directory.
    Tmpfs(&'a Path),
    /// The first path bound onto the second.
    Bind(&'a Path, &'a Path),
}

/// `sysup ARGS` in a new mount namespace after `mount`; `None` when this
/// machine cannot (not root, no `unshare`, no such mount): SKIPPED, a
/// failure under CI.
fn mounted(mount: Mount<'_>, args: &[&std::ffi::OsStr]) -> Option<Output> {
    let skipped = |why: &str| {
        skip(why);
        None
    };
    if !is_root() {
        return skipped("mounting needs root");
    }
    let mut c = Command::new("unshare");
    c.args(["--mount", "sh", "-c"]);
    match mount {
        Mount::Tmpfs(at) => c
            .arg(r#"mount -t tmpfs sysup-test "$1" || exit 99; shift; exec "$@""#)
            .arg("sh")
            .arg(at),
        Mount::Bind(from, at) => c
            .arg(r#"mount --bind "$1" "$2" || exit 99; shift 2; exec "$@""#)
            .arg("sh")
            .arg(from)
            .arg(at),
    };
    match c.arg(env!("CARGO_BIN_EXE_sysup")).args(args).output() {
        Ok(o) if o.status.code() == Some(99) => skipped(&format!(
            "cannot mount here: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Ok(o) => Some(o),
        Err(e) => skipped(&format!("no unshare here: {e}")),
    }
}

/// A root in `t` with world-1 installed, `mnt/data` among its directories.
fn with_mnt_data(t: &Path) -> std::path::PathBuf {
    let root = t.join("root");
    std::fs::create_dir(&root).unwrap();
    let w1 = world(t, "world-1-20260101", Some(Crafted::dir("mnt/data")));
    apply_ok(&root, &[&w1]);
    root
}

/// `apply [--dry-run] --root ROOT DIST`.
fn apply_args<'a>(root: &'a Path, dist: &'a Path, dry: bool) -> Vec<&'a std::ffi::OsStr> {
    let mut v: Vec<&std::ffi::OsStr> = vec!["apply".as_ref()];
    if dry {
        v.push("--dry-run".as_ref());
    }
    v.extend(["--root".as_ref(), root.as_os_str(), dist.as_os_str()]);
    v
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
    let root = with_mnt_data(t.path());
    let w2 = world(t.path(), "world-2-20260102", None);
    let at = root.join("mnt/data");
    let args = |dry: bool| apply_args(&root, &w2, dry);
    // the preview says so, then the apply does
    let Some(dry) = mounted(Mount::Tmpfs(&at), &args(true)) else {
        return;
    };
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{dry:?}");
    assert!(
        dry_out.contains("not removed  mnt/data (a mount point)"),
        "{dry_out}"
    );
    let o = mounted(Mount::Tmpfs(&at), &args(false)).unwrap();
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
    let root = with_mnt_data(t.path());
    let w2 = world(
        t.path(),
        "world-2-20260102",
        Some(Crafted::symlink("mnt/data", "../usr")),
    );
    let before = guarded_snapshot(&root);
    let at = root.join("mnt/data");
    let Some(o) = mounted(Mount::Tmpfs(&at), &apply_args(&root, &w2, false)) else {
        return;
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        err.contains(
            "mnt/data' is a mount point, and the new dist replaces it with a symbolic link"
        ),
        "{err}"
    );
    assert_unchanged(&root, &before);
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}

#[test]
fn a_bind_mounted_file_is_never_replaced_and_a_config_file_left_alone_stays_mounted() {
    // as a container's runtime bind-mounts etc/hosts or etc/resolv.conf
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let config = |data: &[u8]| {
        let mut c = Crafted::file("mnt/c", data);
        c.entry.config = true;
        c
    };
    let with = |id: &str, f: &[u8]| {
        let mut w = vec![
            Crafted::dir("mnt"),
            config(b"hosts\n"),
            Crafted::file("mnt/f", f),
            Crafted::dir("usr"),
            Crafted::file("usr/x", id.as_bytes()),
        ];
        w.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
        craft_dist(t.path(), id, "x86_64", &w)
    };
    apply_ok(&root, &[&with("world-1-20260101", b"one")]);
    let from = t.path().join("the-runtimes-file");
    std::fs::write(&from, b"written by the runtime\n").unwrap();
    // a file the new dist changes, bind-mounted: refused before staging
    // (the preview too), the root and the mounted file as they were
    let w2 = with("world-2-20260102", b"two");
    let at = root.join("mnt/f");
    let before = guarded_snapshot(&root);
    for dry in [true, false] {
        let Some(o) = mounted(Mount::Bind(&from, &at), &apply_args(&root, &w2, dry)) else {
            return;
        };
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert!(
            err.contains("mnt/f' is a mount point, and the new dist replaces it with a file"),
            "{err}"
        );
        assert_unchanged(&root, &before);
    }
    assert_eq!(std::fs::read(&from).unwrap(), b"written by the runtime\n");
    // a config file the runtime mounted and the dist did not change: the
    // apply goes on, and leaves it mounted and as the runtime wrote it
    let at = root.join("mnt/c");
    let o = mounted(Mount::Bind(&from, &at), &apply_args(&root, &w2, false)).unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(std::fs::read(&from).unwrap(), b"written by the runtime\n");
    assert_eq!(std::fs::read(root.join("mnt/f")).unwrap(), b"two");
    let status = ok(sysup().arg("status").arg("--root").arg(&root));
    assert!(status.contains("installed  world-2-20260102"), "{status}");
}
