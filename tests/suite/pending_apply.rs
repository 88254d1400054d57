//! An interrupted upgrade A → B is named first by every command, and every
//! way of finishing it goes forward to B: `verify` names it (and does not
//! list the files the upgrade already changed as damage), `verify --repair`
//! and `update` finish it to B — never back to A — and history records it
//! as the upgrade it was. `status` tells a running apply (a sysup holds the
//! lock) from an interrupted one.

use crate::mirror_support;

use std::os::unix::process::ExitStatusExt;

use mirror_support::common::*;
use mirror_support::{id, install, Nginx, World};

/// Kill an upgrade 1 → 2 of `root` after its commit point, part-way
/// through the renames.
fn interrupt_upgrade(root: &std::path::Path, patch: &std::path::Path) {
    let o = sysup()
        .env("SYSUP_CRASH_AT", "commit-rename:2")
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(patch)
        .output()
        .unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGKILL));
}

fn json(args: &[&str], root: &std::path::Path) -> serde_json::Value {
    let out = ok(sysup().args(args).arg("--json").arg("--root").arg(root));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn verify_names_a_pending_upgrade_and_repair_finishes_it_forward() {
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    interrupt_upgrade(root, &c.patches[0]);

    // status, history, verify: the pending apply first
    let st = json(&["status"], root);
    assert_eq!(st["pending"]["target"], "world-2-20260102");
    assert_eq!(st["pending"]["from"], "world-1-20260101");
    assert_eq!(st["pending"]["committed"], true);
    assert_eq!(st["pending"]["running"], serde_json::Value::Null);
    let h = ok(sysup().args(["history", "--root"]).arg(root));
    assert!(
        h.starts_with("pending: an interrupted apply of world-1-20260101 → world-2-20260102"),
        "{h}"
    );
    assert_eq!(
        json(&["history"], root)["pending"]["target"],
        "world-2-20260102"
    );
    let o = run(sysup().args(["verify", "--root"]).arg(root));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("an interrupted apply of world-1-20260101 → world-2-20260102 is pending")
            && err.contains("finish it with: sysup apply --root "),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).is_empty(),
        "no list of 'modified' files the upgrade changed"
    );

    // --repair finishes the upgrade, to world-2, and repairs that
    let out = ok(sysup().args(["verify", "--repair", "--root"]).arg(root));
    assert!(
        out.contains("finished an interrupted apply to world-2-20260102"),
        "{out}"
    );
    assert_eq!(installed_world(root).as_deref(), Some("world-2-20260102"));
    assert_root_is(root, &c.trees[1]);
    assert_eq!(
        run(sysup().args(["verify", "--root"]).arg(root))
            .status
            .code(),
        Some(0)
    );
    let events = json(&["history"], root)["events"]
        .as_array()
        .unwrap()
        .clone();
    let tail: Vec<(&str, &str)> = events
        .iter()
        .rev()
        .take(2)
        .map(|e| (e["action"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        tail,
        [
            ("repair", "world-2-20260102"),
            ("upgrade", "world-2-20260102")
        ],
        "the finished upgrade is recorded as the upgrade, then the repair of its target"
    );
}

#[test]
fn update_finishes_a_pending_upgrade_forward_and_says_so() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("host");
    install(&root, 1);
    interrupt_upgrade(&root, &w.file(&mirror_support::patch_name(1, 2)));
    let o = mirror_support::update(&root, &nginx.url(), &w.keys.public, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.starts_with(&format!("finished an interrupted apply to {}", id(2))),
        "{out}"
    );
    assert_eq!(mirror_support::installed(&root), Some(id(2)));
    let j = mirror_support::json_ok(&mirror_support::update(
        &root,
        &nginx.url(),
        &w.keys.public,
        &["--json"],
    ));
    assert_eq!(j["finished_interrupted"], serde_json::Value::Null);
    assert_eq!(j["result"], "up-to-date");
}

#[test]
fn status_tells_a_running_apply_from_an_interrupted_one() {
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    interrupt_upgrade(root, &c.patches[0]);
    // Hold the lock as a running sysup does: flock(2) on the lock file,
    // with this process's pid in it.
    let lock_path = root.join("var/db/sysup/lock");
    std::fs::write(&lock_path, std::process::id().to_string()).unwrap();
    let f = std::fs::File::open(&lock_path).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on an open descriptor.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    let st = json(&["status"], root);
    assert_eq!(st["pending"]["running"], std::process::id());
    assert_eq!(st["running"], std::process::id());
    let human = ok(sysup().args(["status", "--root"]).arg(root));
    assert!(
        human.starts_with(&format!(
            "pending      an apply of world-1-20260101 → world-2-20260102 is running now (sysup pid {})",
            std::process::id()
        )),
        "{human}"
    );
    drop(f);
    let st = json(&["status"], root);
    assert_eq!(st["pending"]["running"], serde_json::Value::Null);
    assert_eq!(st["running"], serde_json::Value::Null);
}

#[test]
fn reading_commands_leave_an_empty_directory_empty() {
    let t = tempfile::tempdir().unwrap();
    ok(sysup().args(["status", "--root"]).arg(t.path()));
    ok(sysup().args(["status", "--json", "--root"]).arg(t.path()));
    ok(sysup().args(["history", "--root"]).arg(t.path()));
    let o = run(sysup().args(["verify", "--root"]).arg(t.path()));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing is installed"));
    let o = run(sysup().args(["verify", "--repair", "--root"]).arg(t.path()));
    assert_eq!(o.status.code(), Some(1));
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
