//! Resource fault: the root's filesystem is too small. Either the free-space
//! check refuses before anything is written, or staging runs out of space
//! (ENOSPC) — and the root is left exactly as it was. Needs root (tmpfs).

mod common;

use common::*;

/// Mounting a tmpfs needs root. Outside CI a non-root run says SKIPPED; in
/// CI (which runs as root) not being root is a failure, never a silent pass.
fn skip_unless_root() -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests as root"
    );
    eprintln!("SKIPPED: mounting a tmpfs needs root");
    true
}

#[test]
fn a_full_filesystem_leaves_the_root_as_it_was() {
    if skip_unless_root() {
        return;
    }
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    // Sizes around what rev 1 needs: some refused by the free-space check,
    // some failing mid-staging with ENOSPC; none may leave anything behind.
    let mut outcomes = Vec::new();
    for kib in [200, 500, 700, 900, 1100, 1300] {
        let root = t.path().join(format!("r{kib}"));
        std::fs::create_dir(&root).unwrap();
        let _m = Tmpfs::mount(&root, &format!("{kib}k"));
        let mut cmd = sysup();
        cmd.arg("apply").arg("--root").arg(&root).arg(&c.dists[0]);
        let o = run(&mut cmd);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if o.status.success() {
            assert_root_is(&root, &c.trees[0]);
            outcomes.push("ok");
        } else {
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(!err.contains("panicked"), "{err}");
            let left: Vec<_> = root_snapshot(&root).into_keys().collect();
            assert!(
                left.iter().all(|k| k == b"var"),
                "{kib}k: a failed install left {:?}",
                left.iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect::<Vec<_>>()
            );
            assert!(
                leftovers(&root).is_empty(),
                "{kib}k: {:?}",
                leftovers(&root)
            );
            outcomes.push(if err.contains("not enough free space") {
                "refused"
            } else if err.contains("No space left") {
                "enospc"
            } else {
                "other"
            });
            assert_ne!(
                outcomes.last(),
                Some(&"other"),
                "{kib}k: unexpected error: {err}"
            );
        }
    }
    assert!(outcomes.contains(&"refused"), "{outcomes:?}");
    assert!(
        outcomes.contains(&"enospc"),
        "the mid-staging failure must be exercised: {outcomes:?}"
    );
    assert!(outcomes.contains(&"ok"), "{outcomes:?}");
}

#[test]
fn an_upgrade_that_runs_out_of_space_leaves_the_old_tree() {
    if skip_unless_root() {
        return;
    }
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    std::fs::create_dir(&root).unwrap();
    let _m = Tmpfs::mount(&root, "4m");
    apply_ok(&root, &[&c.dists[0]]);
    // fill the filesystem until the upgrade cannot stage
    let filler = root.join("tmp/filler");
    let free = nix::sys::statvfs::statvfs(&root).unwrap();
    let avail = free.blocks_available() as u64 * free.fragment_size() as u64;
    std::fs::write(&filler, vec![0u8; (avail - 300 * 1024) as usize]).unwrap();
    let before = guarded_snapshot(&root);
    let e = apply_fails(&root, &[&c.patches[0]]);
    assert!(
        e.contains("free space") || e.contains("No space left"),
        "{e}"
    );
    assert_unchanged(&root, &before);
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    // space back: the same command now succeeds
    std::fs::remove_file(&filler).unwrap();
    apply_ok(&root, &[&c.patches[0]]);
    assert_root_is(&root, &c.trees[1]);
}
