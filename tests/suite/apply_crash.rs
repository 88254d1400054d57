//! Crash safety: for every named checkpoint of an apply (one per crash
//! window, see src/host/checkpoint.rs), kill sysup there with SIGKILL, run
//! the same command again, and check the root is the target tree byte for
//! byte with no temporary file left and the history holding one record.
//! (As rustup's cli_crash tests, one kill-and-rerun per checkpoint.)

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::*;

/// Run `sysup apply` with SYSUP_CRASH_AT set; it must die by SIGKILL.
fn crash_at(root: &Path, files: &[&Path], at: &str) {
    let mut c = sysup();
    c.env("SYSUP_CRASH_AT", at)
        .arg("apply")
        .arg("--root")
        .arg(root);
    for f in files {
        c.arg(f);
    }
    let o = run(&mut c);
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "expected to die at {at}; status {:?}, stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

fn history_ok_records(root: &Path) -> usize {
    let text = std::fs::read_to_string(root.join("var/db/sysup/history")).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("\"result\":\"ok\""))
        .count()
}

/// Install rev 1, crash the 1→2→3 chain at `at`, re-run, check.
fn upgrade_survives(at: &str) {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let chain_files = [c.patches[0].as_path(), c.patches[1].as_path()];
    crash_at(root, &chain_files, at);
    apply_ok(root, &chain_files);
    assert_root_is(root, &c.trees[2]);
    assert_eq!(installed_world(root).as_deref(), Some("world-3-20260103"));
    assert_eq!(
        leftovers(root),
        Vec::<String>::new(),
        "temporary files left after {at}"
    );
    assert_eq!(
        history_ok_records(root),
        2,
        "install + one upgrade recorded after {at}"
    );
    // and a third run is a no-op repair that finds nothing to fix
    let out = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(root)
        .arg(&c.dists[2]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["counts"]["changed"], 0, "after {at}: {out}");
}

macro_rules! crash_tests {
    ($($name:ident => $at:expr,)*) => {$(
        #[test]
        fn $name() { upgrade_survives($at) }
    )*
        /// Every checkpoint the code defines has a test here.
        #[test]
        fn every_checkpoint_is_tested() {
            let tested: Vec<&str> = vec![$($at.split(':').next().unwrap()),*];
            for cp in sysup::host::checkpoint::ALL {
                assert!(tested.contains(cp), "checkpoint {cp} has no crash test");
            }
        }
    };
}

crash_tests! {
    crash_after_checks => "check-done",
    crash_mid_staging => "stage-file:7",
    crash_after_staging_before_journal => "staged-before-journal",
    crash_after_journal_before_commit => "journal-staged",
    crash_mid_commit => "commit-rename:5",
    crash_before_critical_renames => "commit-before-critical",
    crash_between_critical_renames => "commit-critical:1",
    crash_after_commit => "committed",
    crash_after_base_before_installed => "record-base",
    crash_after_record => "recorded",
    crash_mid_obsolete_removal => "cleanup-obsolete:1",
    crash_before_upgrade_step => "cleanup-before-upgrade",
    crash_after_upgrade_step => "cleanup-after-upgrade",
    crash_before_journal_drop => "cleanup-before-journal-drop",
}

#[test]
fn critical_files_change_only_after_everything_else() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    crash_at(root, &[&c.patches[0]], "commit-before-critical");
    let read = |p: &Path, rel: &str| std::fs::read(p.join(rel)).unwrap();
    // every ordinary file is already the new one ...
    assert_eq!(
        read(root, "usr/bin/dash"),
        read(&c.trees[1], "usr/bin/dash")
    );
    // ... while libc and the loader are still the old ones, the new beside as .new
    let libc = "usr/lib/x86_64-linux-gnu/libc.so.6";
    assert_eq!(read(root, libc), read(&c.trees[0], libc));
    assert_eq!(read(root, &format!("{libc}.new")), read(&c.trees[1], libc));
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
}

#[test]
fn a_crashed_first_install_converges_too() {
    let c = chain();
    for at in [
        "stage-file:10",
        "journal-staged",
        "commit-rename:3",
        "recorded",
    ] {
        let t = tempfile::tempdir().unwrap();
        crash_at(t.path(), &[&c.dists[1]], at);
        apply_ok(t.path(), &[&c.dists[1]]);
        assert_root_is(t.path(), &c.trees[1]);
        assert_eq!(leftovers(t.path()), Vec::<String>::new(), "after {at}");
    }
}

#[test]
fn a_different_command_after_a_crash_finishes_the_pending_apply_first() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    crash_at(root, &[&c.patches[0]], "commit-rename:2");
    // the admin now applies the next patch: the interrupted 1→2 completes first
    let out = apply_ok(root, &[&c.patches[1]]);
    assert!(
        out.contains("finished an interrupted apply to world-2-20260102"),
        "{out}"
    );
    assert_root_is(root, &c.trees[2]);
    assert!(leftovers(root).is_empty());
}

#[test]
fn a_rollback_killed_at_any_checkpoint_finishes_when_run_again() {
    // Regression (crash soak): a rollback killed after it recorded the old
    // id could not be run again — "no base older than <old id>" — and left
    // its cleanup (the newer release's files) undone.
    let c = chain();
    for at in sysup::host::checkpoint::ALL {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        apply_ok(root, &[&c.dists[0]]);
        apply_ok(root, &[&c.patches[0]]);
        let o = run(sysup()
            .env("SYSUP_CRASH_AT", at)
            .arg("rollback")
            .arg("--root")
            .arg(root));
        assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{at}: not killed");
        ok(sysup().arg("rollback").arg("--root").arg(root));
        assert_root_is(root, &c.trees[0]);
        assert_eq!(
            installed_world(root).as_deref(),
            Some("world-1-20260101"),
            "{at}"
        );
        assert_eq!(leftovers(root), Vec::<String>::new(), "after {at}");
    }
}

#[test]
fn a_rollback_run_again_after_it_finished_says_so_and_leaves_nothing() {
    // Regression (crash soak): a rollback killed after its journal was
    // dropped is done; run again, plain `rollback` means one more step back,
    // refused with the default two kept bases — saying the last rollback
    // finished, and removing the temporary a kill may have left.
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    apply_ok(root, &[&c.patches[0]]);
    ok(sysup().arg("rollback").arg("--root").arg(root));
    let tmp = root.join("var/db/sysup/installed/.world.Zz99Yy.tmp");
    std::fs::write(&tmp, b"half").unwrap();
    let o = run(sysup().arg("rollback").arg("--root").arg(root));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("the last rollback finished"), "{e}");
    assert!(!tmp.exists());
    assert_root_is(root, &c.trees[0]);
}

#[test]
fn a_patch_applied_again_after_it_finished_is_a_repair() {
    // Regression (crash soak): a run killed after it dropped its journal,
    // just before exiting, is done; the same command run again was refused
    // as a wrong base. Now it verifies and repairs, as an installed dist does.
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    apply_ok(root, &[&c.patches[0], &c.patches[1]]);
    std::fs::remove_file(root.join("usr/bin/dash")).unwrap();
    let out = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(root)
        .arg(&c.patches[0])
        .arg(&c.patches[1]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["action"], "repair", "{out}");
    assert_root_is(root, &c.trees[2]);
    assert_eq!(leftovers(root), Vec::<String>::new());
}

#[test]
fn temporaries_of_a_killed_state_write_are_removed_by_the_next_run() {
    // Regression (crash soak): a kill inside the atomic write of
    // `installed/<name>` (or of the mirror serial) left its `.tmp` file
    // there for good.
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let state = root.join("var/db/sysup");
    std::fs::create_dir_all(state.join("mirror")).unwrap();
    for p in [
        "installed/.world.Ab12Cd.tmp",
        "mirror/.serial.Ef34Gh.tmp",
        ".upgrade.0123456789.Ij56Kl.tmp",
    ] {
        std::fs::write(state.join(p), b"half").unwrap();
    }
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
    assert_eq!(leftovers(root), Vec::<String>::new());
    for sub in ["installed", "mirror", ""] {
        let names: Vec<_> = std::fs::read_dir(state.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{sub}: {names:?}");
    }
}
