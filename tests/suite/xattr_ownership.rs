//! Which extended attributes a dist owns (docs/decisions.md, "Which
//! extended attributes the dist owns"): the build records `user.*`,
//! `trusted.*` and `security.capability`, never a build host's SELinux,
//! Smack or IMA label; a host compares and sets the names an entry
//! carries, an upgrade removes those the old dist shipped and the new one
//! does not, and nothing else a dist did not ship is removed by an apply —
//! a capability granted locally is reported by verify and removed only by
//! `verify --repair`; a local `user.*` or `trusted.*` attribute, or a
//! host's label, is neither reported nor removed. No removal acts through
//! a symlink.
//!
//! Needs root (`trusted.*`, `security.*`) and a filesystem that takes all
//! three namespaces: otherwise SKIPPED, and under CI a failure.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;
use sysup::util::fsutil::{read_xattrs_where, set_xattr};

/// cap_net_raw+ep, as `setcap cap_net_raw+ep` writes it (v2 format).
const CAP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];
const LABEL: &[u8] = b"system_u:object_r:bin_t:s0\0";

/// Whether this run can test xattrs in `dir`: root, and its filesystem
/// takes `user.*`, `trusted.*` and `security.*` names. Otherwise SKIPPED
/// (a failure under CI).
fn supported(dir: &Path) -> bool {
    let skipped = |why: &str| {
        skip(why);
        false
    };
    if !is_root() {
        return skipped("trusted.* and security.* xattrs need root");
    }
    let p = dir.join("xattr-probe");
    fs::write(&p, b"").unwrap();
    for (n, v) in [
        ("user.sysup-probe", &b"x"[..]),
        ("trusted.sysup-probe", b"x"),
        ("security.selinux", LABEL),
        ("security.capability", &CAP),
    ] {
        if let Err(e) = set_xattr(&p, n, v) {
            return skipped(&format!("{} does not take {n} ({e})", dir.display()));
        }
    }
    fs::remove_file(&p).unwrap();
    true
}

/// Every extended attribute of `p` (not following a symlink), whoever owns it.
fn all_xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    read_xattrs_where(p, |_| true).unwrap()
}

/// Remove attribute `name` of `p` (not following a symlink).
fn remove_xattr(p: &Path, name: &std::ffi::CStr) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe { libc::lremovexattr(c.as_ptr(), name.as_ptr()) };
    assert_eq!(r, 0, "{}: {}", p.display(), std::io::Error::last_os_error());
}

fn file(path: &str, data: &[u8], mtime: i64, xattrs: &[(&str, &[u8])]) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.mode = 0o755;
    c.entry.mtime = mtime;
    for (k, v) in xattrs {
        c.entry.xattrs.insert(k.to_string(), v.to_vec());
    }
    c
}

fn dir(path: &str) -> Crafted {
    let mut c = Crafted::dir(path);
    c.entry.mtime = 100;
    c
}

/// A temporary directory with an empty `root` in it, if this run can test
/// xattrs there ([`supported`]).
fn site() -> Option<(tempfile::TempDir, PathBuf)> {
    let t = tempfile::tempdir().unwrap();
    if !supported(t.path()) {
        return None;
    }
    let root = t.path().join("root");
    fs::create_dir_all(&root).unwrap();
    Some((t, root))
}

/// `verify`'s exit code and human output.
fn verify_text(root: &Path) -> (Option<i32>, String) {
    let o = verify(root, &[]);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn verify(root: &Path, args: &[&str]) -> Output {
    run(sysup().arg("verify").args(args).arg("--root").arg(root))
}

/// `verify --json`: its exit code and the `modified` entries of its one dist.
fn verify_json(root: &Path) -> (Option<i32>, Vec<Value>) {
    let o = verify(root, &["--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    (
        o.status.code(),
        v[0]["modified"].as_array().unwrap().clone(),
    )
}

/// `apply --json` of `dist`, asserting success: the paths it changed.
fn apply_changed(root: &Path, dist: &Path) -> Vec<String> {
    let out = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(root)
        .arg(dist));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// `verify --repair --json`, asserting success: the paths it changed.
fn repair_changed(root: &Path) -> Vec<String> {
    let out = ok(sysup()
        .args(["verify", "--repair", "--json", "--root"])
        .arg(root));
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_host_lsm_label_on_an_unchanged_file_is_neither_reported_nor_changed() {
    let Some((t, root)) = site() else {
        return;
    };
    let tool = file("bin/tool", b"tool\n", 100, &[("user.k", b"v")]);
    let a = craft_dist(
        t.path(),
        "world-1-20260101",
        "x86_64",
        &[dir("bin"), file("bin/other", b"a\n", 100, &[]), tool],
    );
    let tool = file("bin/tool", b"tool\n", 100, &[("user.k", b"v")]);
    let b = craft_dist(
        t.path(),
        "world-2-20260102",
        "x86_64",
        &[dir("bin"), file("bin/other", b"b\n", 200, &[]), tool],
    );
    apply_ok(&root, &[&a]);
    // the host's policy labels everything (restorecon), directories too
    for p in ["bin", "bin/tool", "bin/other"] {
        set_xattr(&root.join(p), "security.selinux", LABEL).unwrap();
        set_xattr(&root.join(p), "security.ima", b"\x04hash").unwrap();
    }

    let (code, out) = verify_text(&root);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("clean") && !out.contains("modified"), "{out}");
    let (code, modified) = verify_json(&root);
    assert_eq!((code, modified.len()), (Some(0), 0), "{modified:?}");

    // an upgrade changes only what the dist changed
    assert_eq!(apply_changed(&root, &b), ["bin/other"]);
    // the same dist again, and a repair: nothing at all
    assert_eq!(apply_changed(&root, &b), Vec::<String>::new());
    assert_eq!(repair_changed(&root), Vec::<String>::new());
    let x = all_xattrs(&root.join("bin/tool"));
    assert_eq!(x["security.selinux"], LABEL, "the label survives: {x:?}");
    assert_eq!(x["security.ima"], b"\x04hash");
    assert_eq!(x["user.k"], b"v");
    assert_eq!(all_xattrs(&root.join("bin"))["security.selinux"], LABEL);
}

#[test]
fn a_locally_granted_capability_is_reported_kept_by_apply_and_removed_by_repair() {
    let Some((t, root)) = site() else {
        return;
    };
    let members = |rev: i64| {
        vec![
            dir("usr"),
            dir("usr/bin"),
            file("usr/bin/other", &[rev as u8], 100 * rev, &[]),
            file(
                "usr/bin/ping",
                b"ping\n",
                100,
                &[("security.capability", &CAP)],
            ),
            file("usr/bin/python3", b"python\n", 100, &[]),
        ]
    };
    let a = craft_dist(t.path(), "world-1-20260101", "x86_64", &members(1));
    let b = craft_dist(t.path(), "world-2-20260102", "x86_64", &members(2));
    apply_ok(&root, &[&a]);
    let py = root.join("usr/bin/python3");
    set_xattr(&py, "security.capability", &CAP).unwrap();
    set_xattr(&py, "security.selinux", LABEL).unwrap();

    let (code, out) = verify_text(&root);
    assert_eq!(code, Some(1), "drift: {out}");
    assert!(
        out.contains("modified  usr/bin/python3 (xattr security.capability added)"),
        "{out}"
    );
    assert!(
        !out.contains("usr/bin/ping"),
        "its shipped capability is right: {out}"
    );
    let (code, modified) = verify_json(&root);
    assert_eq!(code, Some(1));
    assert_eq!(modified.len(), 1, "{modified:?}");
    assert_eq!(modified[0]["path"], "usr/bin/python3");
    assert_eq!(modified[0]["what"], serde_json::json!(["xattr"]));
    assert_eq!(
        modified[0]["xattrs"],
        serde_json::json!({"security.capability": "added"})
    );

    // an upgrade leaves the file alone (no dist shipped that capability:
    // it is the admin's to take back), and verify still says so
    assert_eq!(apply_changed(&root, &b), ["usr/bin/other"]);
    assert_eq!(all_xattrs(&py)["security.capability"], CAP);
    assert_eq!(verify(&root, &[]).status.code(), Some(1));

    // verify --repair, the admin's request for the dist's state, removes
    // it, and only it
    assert_eq!(repair_changed(&root), ["usr/bin/python3"]);
    let x = all_xattrs(&py);
    assert!(!x.contains_key("security.capability"), "{x:?}");
    assert_eq!(x["security.selinux"], LABEL, "the host's label stays");
    assert_eq!(
        all_xattrs(&root.join("usr/bin/ping"))["security.capability"],
        CAP
    );
    assert_eq!(verify(&root, &[]).status.code(), Some(0));
    assert_eq!(repair_changed(&root), Vec::<String>::new());
    // applying the installed dist again is a repair too
    set_xattr(&py, "security.capability", &CAP).unwrap();
    assert_eq!(apply_changed(&root, &b), ["usr/bin/python3"]);
    assert!(!all_xattrs(&py).contains_key("security.capability"));
}

#[test]
fn an_upgrade_takes_back_a_capability_the_dist_stops_granting() {
    let Some((t, root)) = site() else {
        return;
    };
    let members = |granted: bool| {
        let cap: &[(&str, &[u8])] = if granted {
            &[("security.capability", &CAP), ("user.k", b"v")]
        } else {
            &[("user.k", b"v")]
        };
        vec![
            dir("usr"),
            dir("usr/bin"),
            file(
                "usr/bin/ping",
                b"ping
",
                100,
                cap,
            ),
        ]
    };
    let a = craft_dist(t.path(), "world-1-20260101", "x86_64", &members(true));
    let b = craft_dist(t.path(), "world-2-20260102", "x86_64", &members(false));
    apply_ok(&root, &[&a]);
    let ping = root.join("usr/bin/ping");
    set_xattr(&ping, "user.note", b"the admin's").unwrap();
    set_xattr(&ping, "security.selinux", LABEL).unwrap();
    assert_eq!(all_xattrs(&ping)["security.capability"], CAP);
    // same content, same mtime: only the capability the dist shipped goes
    assert_eq!(apply_changed(&root, &b), ["usr/bin/ping"]);
    let x = all_xattrs(&ping);
    let names: Vec<&str> = x.keys().map(String::as_str).collect();
    assert_eq!(names, ["security.selinux", "user.k", "user.note"]);
    assert_eq!(apply_changed(&root, &b), Vec::<String>::new());
    assert_eq!(verify(&root, &[]).status.code(), Some(0));
}

#[test]
fn a_shipped_user_xattr_changed_or_removed_locally_is_reported_and_restored() {
    let Some((t, root)) = site() else {
        return;
    };
    let shipped: &[(&str, &[u8])] = &[("user.mime", b"text/x"), ("trusted.k", b"1")];
    let a = craft_dist(
        t.path(),
        "world-1-20260101",
        "x86_64",
        &[
            dir("lib"),
            file("lib/a", b"a\n", 100, shipped),
            file("lib/b", b"b\n", 100, shipped),
        ],
    );
    apply_ok(&root, &[&a]);
    set_xattr(&root.join("lib/a"), "user.mime", b"local").unwrap();
    set_xattr(&root.join("lib/a"), "user.extra", b"mine").unwrap();
    remove_xattr(&root.join("lib/b"), c"trusted.k");

    let (code, out) = verify_text(&root);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("modified  lib/a (xattr user.mime changed)"),
        "{out}"
    );
    assert!(
        !out.contains("user.extra"),
        "a local attribute is not drift: {out}"
    );
    assert!(
        out.contains("modified  lib/b (xattr trusted.k removed)"),
        "{out}"
    );
    let (_, modified) = verify_json(&root);
    let by_path: BTreeMap<&str, &Value> = modified
        .iter()
        .map(|m| (m["path"].as_str().unwrap(), &m["xattrs"]))
        .collect();
    assert_eq!(
        *by_path["lib/a"],
        serde_json::json!({"user.mime": "changed"})
    );
    assert_eq!(
        *by_path["lib/b"],
        serde_json::json!({"trusted.k": "removed"})
    );

    assert_eq!(repair_changed(&root), ["lib/a", "lib/b"]);
    for p in ["lib/a", "lib/b"] {
        let mut want: BTreeMap<String, Vec<u8>> = shipped
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        if p == "lib/a" {
            // restored what the dist shipped; the admin's own stays
            want.insert("user.extra".into(), b"mine".to_vec());
        }
        assert_eq!(all_xattrs(&root.join(p)), want, "{p}");
    }
    assert_eq!(verify(&root, &[]).status.code(), Some(0));
}

#[test]
fn a_host_label_the_entry_carries_is_still_compared_and_set() {
    let Some((t, root)) = site() else {
        return;
    };
    // an older dist that shipped its build host's label
    let a = craft_dist(
        t.path(),
        "world-1-20260101",
        "x86_64",
        &[
            dir("bin"),
            file("bin/tool", b"t\n", 100, &[("security.selinux", LABEL)]),
        ],
    );
    apply_ok(&root, &[&a]);
    let tool = root.join("bin/tool");
    assert_eq!(all_xattrs(&tool)["security.selinux"], LABEL);
    set_xattr(&tool, "security.selinux", b"relabelled\0").unwrap();
    set_xattr(&tool, "security.SMACK64", b"_").unwrap();
    let (_, out) = verify_text(&root);
    assert!(
        out.contains("modified  bin/tool (xattr security.selinux changed)"),
        "that name only: {out}"
    );
    assert_eq!(repair_changed(&root), ["bin/tool"]);
    let x = all_xattrs(&tool);
    assert_eq!(x["security.selinux"], LABEL);
    assert_eq!(
        x["security.SMACK64"], b"_",
        "a label it does not carry stays"
    );
    assert_eq!(verify(&root, &[]).status.code(), Some(0));
}

#[test]
fn the_build_records_the_capability_but_not_the_build_hosts_label() {
    let Some((t, root)) = site() else {
        return;
    };
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    let ping = tree.join("usr/bin/ping");
    fs::write(&ping, b"ping\n").unwrap();
    set_xattr(&ping, "security.capability", &CAP).unwrap();
    set_xattr(&ping, "trusted.k", b"t").unwrap();
    set_xattr(&ping, "user.k", b"u").unwrap();
    for p in [&ping, &tree.join("usr/bin"), &tree.join("usr")] {
        set_xattr(p, "security.selinux", LABEL).unwrap();
        set_xattr(p, "security.evm", b"\x03sig").unwrap();
    }
    let out = t.path().join("out");
    let o = ok(sysup()
        .arg("build")
        .arg(world_spec(t.path()))
        .arg("--tree")
        .arg(&tree)
        .args(["--rev", "1", "--date", "20260101", "--json", "--out"])
        .arg(&out));
    let v: Value = serde_json::from_str(&o).unwrap();
    let dist = Path::new(v["path"].as_str().unwrap()).to_path_buf();
    let manifest = ok(std::process::Command::new("tar")
        .args(["-xzOf"])
        .arg(&dist)
        .arg(".sysup/MANIFEST"));
    let line = manifest
        .lines()
        .find(|l| l.starts_with("usr/bin/ping "))
        .unwrap();
    for n in ["security.capability", "trusted.k", "user.k"] {
        assert!(line.contains(&format!(" xattr.{n}=")), "{n}: {line}");
    }
    assert!(!manifest.contains("security.selinux"), "{manifest}");
    assert!(!manifest.contains("security.evm"), "{manifest}");
    // and a host gets exactly the dist's
    apply_ok(&root, &[&dist]);
    let x = all_xattrs(&root.join("usr/bin/ping"));
    let names: Vec<&str> = x.keys().map(String::as_str).collect();
    assert_eq!(names, ["security.capability", "trusted.k", "user.k"]);
}

#[test]
fn removing_a_capability_never_acts_through_a_symlink() {
    let Some((t, root)) = site() else {
        return;
    };
    let outside = t.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret");
    fs::write(&secret, b"not sysup's\n").unwrap();
    set_xattr(&secret, "security.capability", &CAP).unwrap();
    set_xattr(&secret, "user.owner", b"someone").unwrap();

    let mut link = Crafted::symlink("bin/link", secret.to_str().unwrap());
    link.entry.mtime = 100;
    let a = craft_dist(
        t.path(),
        "world-1-20260101",
        "x86_64",
        &[
            dir("bin"),
            link,
            file("bin/other", b"a\n", 100, &[]),
            file("bin/tool", b"tool\n", 100, &[("security.capability", &CAP)]),
        ],
    );
    // the link's own mtime changes: an attribute change on a symlink entry
    let mut link = Crafted::symlink("bin/link", secret.to_str().unwrap());
    link.entry.mtime = 200;
    let b = craft_dist(
        t.path(),
        "world-2-20260102",
        "x86_64",
        &[
            dir("bin"),
            link,
            file("bin/other", b"b\n", 200, &[]),
            file("bin/tool", b"tool\n", 100, &[]),
        ],
    );
    apply_ok(&root, &[&a]);
    let before = all_xattrs(&secret);
    // world-2 no longer grants bin/tool its capability: the upgrade will
    // remove it in place
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", "commit-rename")
        .arg("apply")
        .arg("--root")
        .arg(&root)
        .arg(&b));
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGKILL),
        "died after its commit point"
    );
    // the local user's move: the name sysup will change is now a link out
    fs::remove_file(root.join("bin/tool")).unwrap();
    symlink(&secret, root.join("bin/tool")).unwrap();

    let err = apply_fails(&root, &[&b]);
    assert!(
        err.contains("bin/tool") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(
        all_xattrs(&secret),
        before,
        "the file outside kept its xattrs"
    );

    // once the link is gone the apply finishes; the symlink entry's own
    // change never reached its target either
    fs::remove_file(root.join("bin/tool")).unwrap();
    apply_ok(&root, &[&b]);
    apply_ok(&root, &[&b]);
    assert_eq!(
        all_xattrs(&secret),
        before,
        "the file outside kept its xattrs"
    );
    assert!(!all_xattrs(&root.join("bin/tool")).contains_key("security.capability"));
    assert!(fs::symlink_metadata(root.join("bin/link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(verify(&root, &[]).status.code(), Some(0));
}
