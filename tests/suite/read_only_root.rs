//! Resource fault: a read-only root — the whole root (a remounted tmpfs),
//! or part of it (`usr` bind-mounted read-only), before staging or only
//! after the commit point. Each: a clear error naming the read-only
//! filesystem, the root left as it was (or, past the commit point, finished
//! by running the same command again once it is writable). Needs root
//! (mounts); CI runs as root.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Outside CI a non-root run says SKIPPED; in CI not being root fails.
fn skip_unless_root() -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests as root"
    );
    eprintln!("SKIPPED: mounting needs root");
    true
}

/// `dir` bind-mounted read-only onto itself while the value lives.
struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    fn new(dir: &Path) -> ReadOnlyBind {
        ok(Command::new("mount").arg("--bind").arg(dir).arg(dir));
        let guard = ReadOnlyBind(dir.to_path_buf());
        ok(Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir));
        guard
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn assert_read_only_error(err: &str) {
    assert!(
        err.starts_with("error: could not ") && err.contains("Read-only file system"),
        "{err}"
    );
}

#[test]
fn a_read_only_root_is_refused_and_nothing_changes() {
    if skip_unless_root() {
        return;
    }
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    std::fs::create_dir(&root).unwrap();
    let _m = Tmpfs::mount(&root, "16m");
    apply_ok(&root, &[&c.dists[0]]);
    ok(Command::new("mount").args(["-o", "remount,ro"]).arg(&root));
    let before = snapshot(&root);
    let err = apply_fails(&root, &[&c.patches[0]]);
    assert_read_only_error(&err);
    // nothing at all could be written: not even the history
    let d = diff_snapshots(&before, &snapshot(&root));
    assert!(d.is_empty(), "{}", d.join("\n"));
    ok(Command::new("mount").args(["-o", "remount,rw"]).arg(&root));
    apply_ok(&root, &[&c.patches[0]]);
    assert_root_is(&root, &c.trees[1]);
}

#[test]
fn a_read_only_usr_fails_the_staging_and_leaves_the_root_as_it_was() {
    if skip_unless_root() {
        return;
    }
    let c = chain();
    let (t, before) = installed_root(1);
    let root = t.path();
    {
        let _ro = ReadOnlyBind::new(&root.join("usr"));
        let err = apply_fails(root, &[&c.patches[0]]);
        assert_read_only_error(&err);
        assert_unchanged(root, &before);
        assert!(!root.join("var/db/sysup/journal").exists());
        assert_eq!(leftovers(root), Vec::<String>::new());
    }
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
}

#[test]
fn a_root_that_turns_read_only_after_the_commit_point_is_finished_on_rerun() {
    if skip_unless_root() {
        return;
    }
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", "journal-staged")
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(&c.patches[0]));
    assert!(!o.status.success());
    {
        let _ro = ReadOnlyBind::new(&root.join("usr"));
        let err = apply_fails(root, &[&c.patches[0]]);
        assert_read_only_error(&err);
        assert!(root.join("var/db/sysup/journal").exists());
    }
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
    assert_eq!(leftovers(root), Vec::<String>::new());
}
