//! Ctrl-C (SIGINT) or SIGTERM while an apply runs: sysup says where it
//! stopped — before its commit point nothing went live, past it the same
//! command finishes the apply — records the attempt in history as
//! `interrupted`, exits 128 + the signal, and the next run converges.
//! A failpoint (`FAILPOINTS`, test builds only) holds the apply at a step
//! for a few seconds so the signal lands there.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Start `sysup apply ROOT PATCH` held for 5 s at `failpoint`, wait until
/// the journal holds `record`, send `signal`; return (exit code, stderr).
fn interrupt_at(
    root: &std::path::Path,
    patch: &std::path::Path,
    failpoint: &str,
    record: &str,
    signal: libc::c_int,
) -> (Option<i32>, String) {
    let child = sysup()
        .env("FAILPOINTS", format!("{failpoint}=1*sleep(5000)"))
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(patch)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = root.join("var/db/sysup/journal");
    let start = Instant::now();
    while !std::fs::read_to_string(&journal).is_ok_and(|j| j.contains(record)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never reached {record}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn last_event(root: &std::path::Path) -> serde_json::Value {
    let out = ok(sysup().args(["history", "--json", "--root"]).arg(root));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["events"].as_array().unwrap().last().unwrap().clone()
}

#[test]
fn ctrl_c_before_the_commit_point_says_nothing_went_live() {
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    let (code, err) = interrupt_at(
        root,
        &c.patches[0],
        "stage-write",
        "\"begin\"",
        libc::SIGINT,
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("sysup: interrupted by SIGINT: nothing of world-2-20260102 went live"),
        "{err}"
    );
    let e = last_event(root);
    assert_eq!(e["result"], "interrupted", "{e}");
    assert_eq!(e["to"], "world-2-20260102", "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("before its commit point"),
        "{e}"
    );
    // nothing went live: what revision 2 changes is still revision 1's
    assert_eq!(installed_world(root).as_deref(), Some("world-1-20260101"));
    for f in [
        "usr/bin/dash",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "etc/motd",
    ] {
        assert_eq!(
            std::fs::read(root.join(f)).unwrap(),
            std::fs::read(c.trees[0].join(f)).unwrap(),
            "{f}"
        );
    }
    // the next run removes the staging and applies
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
}

#[test]
fn sigterm_past_the_commit_point_says_how_to_finish() {
    let c = chain();
    let (t, _) = installed_root(1);
    let root = t.path();
    let (code, err) = interrupt_at(
        root,
        &c.patches[0],
        "commit-rename",
        "\"staged\"",
        libc::SIGTERM,
    );
    assert_eq!(code, Some(143), "{err}");
    assert!(
        err.contains("past its commit point: run the same command again to finish it"),
        "{err}"
    );
    assert_eq!(last_event(root)["result"], "interrupted");
    let status = ok(sysup().args(["status", "--root"]).arg(root));
    assert!(
        status.starts_with(
            "pending      an interrupted apply of world-1-20260101 → world-2-20260102"
        ),
        "{status}"
    );
    apply_ok(root, &[&c.patches[0]]);
    assert_root_is(root, &c.trees[1]);
    assert_eq!(last_event(root)["result"], "ok");
}
