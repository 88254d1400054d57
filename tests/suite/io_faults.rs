//! Resource faults injected with failpoints (the `fail` crate, compiled into
//! test builds only; see src/host/checkpoint.rs): EIO, ENOSPC and torn
//! (stopped half way) writes at every write, fsync and rename an apply
//! depends on — staged files, the new base, each journal record, the commit
//! renames and directory fsyncs, the base rename, the installed record, the
//! obsolete removals, the history.
//!
//! The guarantee each test checks: a fault before the commit point fails
//! with a clear error and leaves the root exactly as it was (and the same
//! command then succeeds); a fault after it leaves the journal, and the same
//! command run again finishes the apply — the target byte for byte, nothing
//! temporary left.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::*;
use sysup::host::checkpoint::{FAULTS_AFTER_COMMIT, FAULTS_BEFORE_COMMIT};

/// `sysup apply --root ROOT FILES` with failpoint `fp` set to `action`.
fn apply_with_fault(root: &Path, files: &[&Path], fp: &str, action: &str) -> Output {
    let mut c = sysup();
    c.env("FAILPOINTS", format!("{fp}={action}"))
        .arg("apply")
        .arg("--root")
        .arg(root);
    for f in files {
        c.arg(f);
    }
    run(&mut c)
}

/// The failure must be exit 1 with an `error:` naming what failed, the
/// injected cause, and no panic.
fn assert_clear_failure(o: &Output, what: &str, cause: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{what}: expected exit 1:\n{err}");
    assert!(
        err.starts_with("error: could not ") && !err.contains("panicked"),
        "{what}: unclear error:\n{err}"
    );
    assert!(err.contains(cause), "{what}: '{cause}' not in:\n{err}");
    err
}

fn journal(root: &Path) -> std::path::PathBuf {
    root.join("var/db/sysup/journal")
}

/// The actions to inject at a point: errors everywhere, and a torn write
/// where the point guards a write.
fn actions(fp: &str) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("return(EIO)", "Input/output error"),
        ("return(ENOSPC)", "No space left on device"),
    ];
    let is_write = !fp.ends_with("-fsync")
        && (fp.starts_with("journal-") || fp.ends_with("-write") || fp == "history-append");
    if is_write {
        v.push(("return(torn)", "Input/output error"));
    }
    v
}

#[test]
fn failpoints_are_compiled_into_the_binary_under_test() {
    // Without this every test below could pass without injecting anything.
    let (t, before) = installed_root(1);
    let o = apply_with_fault(
        t.path(),
        &[&chain().patches[0]],
        "journal-begin",
        "return(EIO)",
    );
    assert_clear_failure(&o, "journal-begin", "Input/output error");
    assert_unchanged(t.path(), &before);
}

#[test]
fn a_fault_before_the_commit_point_leaves_the_root_as_it_was() {
    let c = chain();
    for fp in FAULTS_BEFORE_COMMIT.iter().copied().chain([
        "journal-new",
        "journal-begin-fsync",
        "journal-dir-fsync",
        "journal-new-fsync",
        "journal-staged-fsync",
    ]) {
        for (action, cause) in actions(fp) {
            let what = format!("{fp}={action}");
            let (t, before) = installed_root(1);
            let root = t.path();
            let o = apply_with_fault(root, &[&c.patches[0]], fp, action);
            let err = assert_clear_failure(&o, &what, cause);
            if cause.contains("No space") {
                assert!(err.contains("hint: free some space"), "{what}:\n{err}");
            }
            assert_unchanged(root, &before);
            assert!(!journal(root).exists(), "{what}: journal left");
            assert_eq!(leftovers(root), Vec::<String>::new(), "{what}");
            // the fault gone, the same command succeeds
            apply_ok(root, &[&c.patches[0]]);
            assert_root_is(root, &c.trees[1]);
            assert_eq!(leftovers(root), Vec::<String>::new(), "{what}");
        }
    }
}

#[test]
fn a_fault_after_the_commit_point_is_finished_by_running_the_command_again() {
    let c = chain();
    for fp in FAULTS_AFTER_COMMIT
        .iter()
        .copied()
        .chain(["journal-committed-fsync", "journal-recorded-fsync"])
    {
        for (action, cause) in actions(fp) {
            let what = format!("{fp}={action}");
            let (t, _) = installed_root(1);
            let root = t.path();
            let o = apply_with_fault(root, &[&c.patches[0]], fp, action);
            assert_clear_failure(&o, &what, cause);
            assert!(journal(root).exists(), "{what}: the journal must stay");
            let status = ok(sysup().args(["status", "--root"]).arg(root));
            assert!(status.contains("interrupted"), "{what}: {status}");
            apply_ok(root, &[&c.patches[0]]);
            assert_root_is(root, &c.trees[1]);
            assert_eq!(installed_world(root).as_deref(), Some("world-2-20260102"));
            assert_eq!(leftovers(root), Vec::<String>::new(), "{what}");
            let hist = std::fs::read_to_string(root.join("var/db/sysup/history")).unwrap();
            let oks = hist
                .lines()
                .filter(|l| l.contains("\"result\":\"ok\""))
                .count();
            assert_eq!(oks, 2, "{what}: install + one upgrade:\n{hist}");
        }
    }
}

#[test]
fn a_fault_in_a_first_install_leaves_an_empty_root() {
    let c = chain();
    for fp in [
        "stage-write",
        "base-write",
        "journal-staged",
        "stage-syncfs",
    ] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let o = apply_with_fault(root, &[&c.dists[0]], fp, "return(EIO)");
        assert_clear_failure(&o, fp, "Input/output error");
        let left: Vec<_> = root_snapshot(root).into_keys().collect();
        assert!(
            left.iter().all(|k| k == b"var"),
            "{fp}: a failed install left {left:?}"
        );
        assert_eq!(leftovers(root), Vec::<String>::new(), "{fp}");
        apply_ok(root, &[&c.dists[0]]);
        assert_root_is(root, &c.trees[0]);
    }
}

#[test]
fn a_torn_journal_record_does_not_block_the_runs_after_it() {
    // Regression: a record torn by a failed write (ENOSPC or EIO half way)
    // stayed at the end of the journal; the re-run glued its next record to
    // it, and after one more crash no run could read the journal any more.
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    let o = apply_with_fault(root, &[&c.patches[0]], "journal-committed", "return(torn)");
    assert_clear_failure(&o, "torn committed record", "Input/output error");
    // the re-run appends its records, then is killed before it finishes
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", "recorded")
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(&c.patches[0]));
    assert!(!o.status.success());
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
    assert_eq!(leftovers(root), Vec::<String>::new());
}
