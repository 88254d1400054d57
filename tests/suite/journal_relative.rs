//! Threat: the journal holds absolute host paths. An apply killed after its
//! commit point, then finished with the root mounted elsewhere (a rescue
//! system's `--root /mnt/sysimage`, then the real boot), could never finish.
//! Every path the finish acts on is relative to the root (or to `bases/`):
//! the root is moved (renamed) between the crash and the re-run, and the
//! re-run must converge on the target, as in tests/suite/apply_crash.rs.

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::*;

fn crash_at(root: &Path, file: &Path, at: &str) {
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", at)
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(file));
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "expected to die at {at}; stderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_apply_interrupted_past_its_commit_point_finishes_on_a_moved_root() {
    let c = chain();
    for at in ["journal-staged", "committed", "record-base", "recorded"] {
        let t = tempfile::tempdir().unwrap();
        let (first, second) = (t.path().join("mnt-rescue"), t.path().join("sysroot"));
        std::fs::create_dir(&first).unwrap();
        apply_ok(&first, &[&c.dists[0]]);
        crash_at(&first, &c.patches[0], at);
        let journal = std::fs::read_to_string(first.join("var/db/sysup/journal")).unwrap();
        assert!(
            !journal.contains(first.to_str().unwrap()),
            "{at}: the journal names the root's mount point:\n{journal}"
        );
        std::fs::rename(&first, &second).unwrap();
        let status = ok(sysup().arg("status").arg("--root").arg(&second));
        assert!(
            status.contains("interrupted apply of world-1-20260101 → world-2-20260102"),
            "{at}: {status}"
        );
        apply_ok(&second, &[&c.patches[0]]);
        assert_root_is(&second, &c.trees[1]);
        assert_eq!(
            installed_world(&second).as_deref(),
            Some("world-2-20260102")
        );
        assert_eq!(leftovers(&second), Vec::<String>::new(), "after {at}");
    }
}
