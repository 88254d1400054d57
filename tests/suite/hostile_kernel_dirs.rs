//! Threat: a kernel dist's own directories. `[kernel] install_dir` and
//! `keep_old` in a dist's `.sysup/DIST` say where the host's kernel goes and
//! where the running one is kept; the swap renames whatever is there. A
//! hostile (or careless) dist names a path outside the root, sysup's state,
//! a directory the world ships (`usr`, `etc`) or the admin's own (`home`):
//! the host refuses it before anything is staged, naming the dist and the
//! field, with the root — and a directory beside it — unchanged.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// A kernel dist by hand: DIST with a `[kernel]` table of the given dirs,
/// a MANIFEST of `members`, then the members (no checks).
fn craft_kernel(
    dir: &Path,
    id: &str,
    install_dir: &str,
    keep_old: &str,
    members: &[Crafted],
) -> PathBuf {
    let kernel =
        format!("\n[kernel]\ninstall_dir = \"{install_dir}\"\nkeep_old = \"{keep_old}\"\n");
    craft_dist_with(dir, id, "x86_64", &kernel, members)
}

/// Build kernel GENERIC revision `rev` from the fixture spec (optionally
/// with another `include`) into `dir`; returns (tree, dist).
fn kernel_dist(dir: &Path, rev: u32, include: Option<&str>) -> (PathBuf, PathBuf) {
    let mut spec_text = common::fixtures::kernel_spec("GENERIC");
    if let Some(inc) = include {
        spec_text = spec_text
            .lines()
            .map(|l| {
                if l.starts_with("include") {
                    format!("include = {inc}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
    }
    let spec = dir.join("GENERIC.toml");
    fs::write(&spec, spec_text).unwrap();
    common::kernel_dist(dir, &spec, rev)
}

#[test]
fn hostile_kernel_directories_are_refused_before_anything_changes() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir_all(outside.join("escape")).unwrap();
    fs::write(outside.join("escape/precious"), b"not sysup's\n").unwrap();
    // a world, a kernel installed the proper way, and the admin's own home
    apply_ok(&root, &[&c.dists[0]]);
    let (_, k1) = kernel_dist(t.path(), 1, None);
    apply_ok(&root, &[&k1]);
    fs::create_dir_all(root.join("home/admin")).unwrap();
    fs::write(root.join("home/admin/notes"), b"the admin's work\n").unwrap();
    let before = guarded_snapshot(&root);
    let outside_before = snapshot(&outside);
    let id = "kernel-GENERIC-2-20260202";
    let hostile = t.path().join("hostile");
    fs::create_dir(&hostile).unwrap();
    for (install_dir, keep_old, field, why) in [
        (
            "boot/kernel",
            "../../outside/escape",
            "keep_old",
            "plain relative path",
        ),
        (
            "boot/kernel",
            "boot/../../x",
            "keep_old",
            "plain relative path",
        ),
        (
            "../../outside/escape",
            "boot/kernel.old",
            "install_dir",
            "plain relative path",
        ),
        ("boot/kernel", "", "keep_old", "plain relative path"),
        ("boot/kernel", "var/db/sysup", "keep_old", "state directory"),
        ("boot/kernel", "var", "keep_old", "state directory"),
        (
            "var/db/sysup/bases/k",
            "boot/kernel.old",
            "install_dir",
            "state directory",
        ),
        ("boot/kernel", "boot/kernel", "keep_old", "install_dir"),
        ("boot/kernel", "boot/kernel/old", "keep_old", "install_dir"),
        ("boot", "boot/kernel.old", "keep_old", "install_dir"),
        ("boot/kernel", "usr", "keep_old", "world-1-20260101"),
        (
            "boot/kernel",
            "usr/bin/ls/old",
            "keep_old",
            "world-1-20260101",
        ),
        ("etc", "boot/kernel.old", "install_dir", "world-1-20260101"),
        ("boot/kernel", "home", "keep_old", "already exists"),
    ] {
        // the dist ships its install directory (where it is a plain path)
        let shipped = if install_dir.starts_with("..") {
            "boot/kernel"
        } else {
            install_dir
        };
        let dist = craft_kernel(
            &hostile,
            id,
            install_dir,
            keep_old,
            &[
                Crafted::dir(shipped),
                Crafted::file(&format!("{shipped}/kernel"), b"hostile kernel\n"),
            ],
        );
        let case = format!("install_dir = '{install_dir}', keep_old = '{keep_old}'");
        let err = apply_fails(&root, &[&dist]);
        for needle in [id, field, why] {
            assert!(err.contains(needle), "{case}: no '{needle}' in: {err}");
        }
        assert_unchanged(&root, &before);
        let d = diff_snapshots(&outside_before, &snapshot(&outside));
        assert!(d.is_empty(), "{case}: outside changed:\n{}", d.join("\n"));
        assert!(
            !root.join("var/db/sysup/journal").exists(),
            "{case}: an apply is left pending"
        );
        // a dry run says the same
        let o = run(sysup()
            .args(["apply", "--dry-run", "--root"])
            .arg(&root)
            .arg(&dist));
        assert_eq!(o.status.code(), Some(1), "{case}: dry run");
        fs::remove_file(&dist).unwrap();
    }
    // the world and the kernel installed before are intact
    let v = run(sysup().args(["verify", "--json", "--root"]).arg(&root));
    let out = String::from_utf8_lossy(&v.stdout);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dists = v.as_array().unwrap();
    assert_eq!(dists.len(), 2, "{out}");
    for d in dists {
        assert_eq!(d["modified"], serde_json::json!([]), "{out}");
        assert_eq!(d["missing"], serde_json::json!([]), "{out}");
    }
}

#[test]
fn a_kernel_old_directory_sysup_did_not_fill_is_not_replaced() {
    // A first kernel install where keep_old already holds something: the
    // swap would put the running kernel there and, on the next kernel,
    // delete it. Refused; the admin moves it away first.
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("boot/kernel.old")).unwrap();
    fs::create_dir_all(root.join("boot/kernel")).unwrap();
    fs::write(root.join("boot/kernel.old/mine"), b"kept by hand\n").unwrap();
    fs::write(root.join("boot/kernel/kernel"), b"the running kernel\n").unwrap();
    // (sysup's own state, made by any first run, aside)
    let without_state = |root: &Path| {
        let mut s = guarded_snapshot(root);
        s.retain(|k, _| !k.starts_with(b"var"));
        s
    };
    let before = without_state(&root);
    let (_, k1) = kernel_dist(t.path(), 1, None);
    let err = apply_fails(&root, &[&k1]);
    for needle in ["kernel-GENERIC-1-20260201", "keep_old", "boot/kernel.old"] {
        assert!(err.contains(needle), "no '{needle}' in: {err}");
    }
    let d = diff_snapshots(&before, &without_state(&root));
    assert!(d.is_empty(), "{}", d.join("\n"));
    // moved away, the install goes through and keeps the running kernel
    fs::remove_dir_all(root.join("boot/kernel.old")).unwrap();
    apply_ok(&root, &[&k1]);
    assert_eq!(
        fs::read(root.join("boot/kernel.old/kernel")).unwrap(),
        b"the running kernel\n"
    );
}

#[test]
fn a_first_kernel_install_into_a_root_without_boot() {
    // `include = ["**"]` lists `boot` itself: the whole boot/ is new, and
    // the install directory goes live with it — nothing to keep.
    let t = tempfile::tempdir().unwrap();
    let (tree, k1) = kernel_dist(t.path(), 1, Some("[\"**\"]"));
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    apply_ok(&root, &[&k1]);
    let d = diff_snapshots(
        &snapshot(&tree.join("boot/kernel")),
        &snapshot(&root.join("boot/kernel")),
    );
    assert!(d.is_empty(), "{}", d.join("\n"));
    assert!(!root.join("boot/kernel.old").exists());
    let v = run(sysup().args(["verify", "--root"]).arg(&root));
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    // and the next kernel keeps this one
    let (tree2, k2) = kernel_dist(t.path(), 2, Some("[\"**\"]"));
    apply_ok(&root, &[&k2]);
    let d = diff_snapshots(
        &snapshot(&tree2.join("boot/kernel")),
        &snapshot(&root.join("boot/kernel")),
    );
    assert!(d.is_empty(), "{}", d.join("\n"));
    let d = diff_snapshots(
        &snapshot(&tree.join("boot/kernel")),
        &snapshot(&root.join("boot/kernel.old")),
    );
    assert!(d.is_empty(), "{}", d.join("\n"));
}
