//! Host lifecycle: `status`, `verify`, `history`, `rollback`, `clean` on a
//! root that went through the fixture chain.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;

use common::*;

fn json(args: &[&str], root: &std::path::Path) -> serde_json::Value {
    let out = ok(sysup().args(args).arg("--json").arg("--root").arg(root));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn verify_finds_every_kind_of_drift_and_repair_restores() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    apply_ok(root, &[&c.patches[0]]);
    assert_eq!(
        run(sysup().args(["verify", "--root"]).arg(root))
            .status
            .code(),
        Some(0)
    );
    fs::write(root.join("usr/bin/cat"), b"changed").unwrap();
    fs::set_permissions(root.join("usr/bin/ls"), fs::Permissions::from_mode(0o777)).unwrap();
    if is_root() {
        std::os::unix::fs::lchown(root.join("usr/bin/wall"), Some(1), Some(1)).unwrap();
    }
    fs::remove_file(root.join("usr/bin/newtool")).unwrap();
    fs::write(root.join("usr/bin/intruder"), b"?").unwrap();
    fs::remove_file(root.join("usr/bin/sh")).unwrap();
    std::os::unix::fs::symlink("cat", root.join("usr/bin/sh")).unwrap();
    fs::write(root.join("etc/motd"), b"site message\n").unwrap();
    let o = run(sysup().args(["verify", "--json", "--root"]).arg(root));
    assert_eq!(o.status.code(), Some(1), "drift exits 1");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = &v[0];
    let what = |p: &str| -> Vec<String> {
        w["modified"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["path"] == p)
            .map(|d| {
                d["what"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(what("usr/bin/cat"), ["content"]);
    assert_eq!(what("usr/bin/ls"), ["mode"]);
    if is_root() {
        assert_eq!(what("usr/bin/wall"), ["owner"]);
    }
    assert_eq!(what("usr/bin/sh"), ["link"]);
    assert_eq!(w["missing"], serde_json::json!(["usr/bin/newtool"]));
    assert_eq!(w["extra"], serde_json::json!(["usr/bin/intruder"]));
    assert_eq!(
        w["config_modified"],
        serde_json::json!(["etc/motd"]),
        "config edits are not damage"
    );
    ok(sysup().args(["verify", "--repair", "--root"]).arg(root));
    let o = run(sysup().args(["verify", "--json", "--root"]).arg(root));
    assert_eq!(o.status.code(), Some(0), "an extra file is not drift");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["modified"], serde_json::json!([]));
    assert_eq!(v[0]["missing"], serde_json::json!([]));
    // sysup never deletes what it does not own: the extra stays, reported
    assert_eq!(v[0]["extra"], serde_json::json!(["usr/bin/intruder"]));
}

#[test]
fn rollback_goes_back_one_kept_base_at_a_time() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    ok(sysup()
        .args(["apply", "--keep", "3", "--root"])
        .arg(root)
        .arg(&c.patches[0]));
    ok(sysup()
        .args(["apply", "--keep", "3", "--root"])
        .arg(root)
        .arg(&c.patches[1]));
    assert_root_is(root, &c.trees[2]);
    let out = ok(sysup()
        .args(["rollback", "--keep", "3", "--root"])
        .arg(root));
    assert!(out.contains("world-3-20260103 → world-2-20260102"), "{out}");
    assert_root_is(root, &c.trees[1]);
    ok(sysup()
        .args(["rollback", "--keep", "3", "--root"])
        .arg(root));
    assert_root_is(root, &c.trees[0]);
    let e = run(sysup().args(["rollback", "--root"]).arg(root));
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("no base older than world-1-20260101"));
    // and forward again to a kept one, by id
    ok(sysup()
        .args(["rollback", "--to", "world-3-20260103", "--root"])
        .arg(root));
    assert_root_is(root, &c.trees[2]);
    assert!(leftovers(root).is_empty());
    let h = json(&["history"], root);
    let actions: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["install", "upgrade", "upgrade", "rollback", "rollback", "rollback"]
    );
}

#[test]
fn clean_never_removes_the_installed_base() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    ok(sysup()
        .args(["apply", "--keep", "3", "--root"])
        .arg(root)
        .arg(&c.patches[0]));
    ok(sysup()
        .args(["apply", "--keep", "3", "--root"])
        .arg(root)
        .arg(&c.patches[1]));
    ok(sysup()
        .args(["rollback", "--keep", "3", "--root"])
        .arg(root)); // installed: world-2
    let bases = |r: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(r.join("var/db/sysup/bases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(bases(root).len(), 3);
    let v = json(&["clean", "--keep", "1", "--dry-run"], root);
    assert_eq!(v["removed"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(bases(root).len(), 3, "dry run removes nothing");
    // min-age protects young bases
    ok(sysup()
        .args(["clean", "--keep", "1", "--min-age", "1", "--root"])
        .arg(root));
    assert_eq!(bases(root).len(), 3);
    // keep 1: the newest (world-3) stays, and the installed (world-2) too
    ok(sysup().args(["clean", "--keep", "1", "--root"]).arg(root));
    assert_eq!(
        bases(root),
        ["world-2-20260102.tar.gz", "world-3-20260103.tar.gz"]
    );
    // defaults from etc/sysup.conf
    fs::write(root.join("etc/sysup.conf"), "[clean]\nkeep = 1\n").unwrap();
    let v = json(&["clean", "--dry-run"], root);
    assert_eq!(v["keep"], 1);
}

#[test]
fn status_shows_what_is_installed_and_a_pending_apply() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let v = json(&["status"], root);
    assert_eq!(v["names"][0]["installed"]["id"], "world-1-20260101");
    assert_eq!(v["pending"], serde_json::Value::Null);
    let o = sysup()
        .env("SYSUP_CRASH_AT", "commit-rename:2")
        .arg("apply")
        .arg("--root")
        .arg(root)
        .arg(&c.patches[0])
        .output()
        .unwrap();
    assert_eq!(o.status.signal(), Some(libc::SIGKILL));
    let v = json(&["status"], root);
    assert_eq!(v["pending"]["target"], "world-2-20260102");
    let cmd = v["pending"]["command"].as_str().unwrap();
    assert!(
        cmd.starts_with("sysup apply --root ") && cmd.ends_with(".patch"),
        "{cmd}"
    );
    let human = ok(sysup().args(["status", "--root"]).arg(root));
    assert!(
        human.starts_with(
            "pending      an interrupted apply of world-1-20260101 → world-2-20260102 is pending"
        ),
        "{human}"
    );
    // the printed command finishes it
    let args: Vec<&str> = cmd.split(' ').skip(1).collect();
    ok(sysup().args(&args));
    assert_root_is(root, &c.trees[1]);
}
