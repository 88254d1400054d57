//! The specs shipped in binarydist/ and kernels/ are valid, and each builds
//! the dist it is meant for: the world leaves kernels and scratch out, and a
//! kernel spec takes only its install directory and records where the
//! previous kernel is kept.

use crate::common;

use std::path::Path;

use common::*;
use sysup::format::spec::Spec;

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn every_shipped_spec_loads() {
    let w = Spec::load(&repo("binarydist/world.toml")).unwrap();
    assert_eq!(w.name.to_string(), "world");
    assert!(w.upgrade.is_some() && !w.obsolete.is_empty());
    assert!(w.critical.matches(b"usr/lib/x86_64-linux-gnu/libc.so.6"));
    assert!(!w.wants(b"boot/kernel/kernel"));
    assert!(!w.wants(b"proc/1/status") && w.wants(b"proc"));
    // a build image's SSH host keys stay out of a world-readable dist;
    // their public halves ship
    for key in ["rsa", "ecdsa", "ed25519"] {
        assert!(!w.wants(format!("etc/ssh/ssh_host_{key}_key").as_bytes()));
        assert!(w.wants(format!("etc/ssh/ssh_host_{key}_key.pub").as_bytes()));
    }
    for conf in ["GENERIC", "MYHOST"] {
        let k = Spec::load(&repo(&format!("kernels/{conf}.toml"))).unwrap();
        assert_eq!(k.name.to_string(), format!("kernel-{conf}"));
        let dirs = k.kernel.unwrap();
        assert_eq!(
            (dirs.install_dir.as_str(), dirs.keep_old.as_str()),
            ("boot/kernel", "boot/kernel.old")
        );
    }
}

#[test]
fn kernel_spec_builds_only_the_kernel() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("tree");
    common::fixtures::make_world(&tree, 1, false).unwrap();
    common::fixtures::make_kernel(&tree, "MYHOST", 1).unwrap();
    ok(sysup()
        .arg("build")
        .arg(repo("kernels/MYHOST.toml"))
        .arg("--tree")
        .arg(&tree)
        .args(["--rev", "6.4", "--date", "20261121", "--out"])
        .arg(d.path()));
    let dist = d.path().join("kernel-MYHOST-6.4-20261121.tar.gz");
    let m = sysup::format::dist::read_dist_metadata(&dist).unwrap();
    assert!(m
        .manifest
        .entries()
        .iter()
        .all(|e| e.path.starts_with(b"boot/kernel")));
    assert!(m.manifest.get(b"boot/kernel/kernel").is_some());
    assert_eq!(m.meta.kernel.unwrap().keep_old, "boot/kernel.old");
    // and the world spec leaves the kernel out
    ok(sysup()
        .arg("build")
        .arg(repo("binarydist/world.toml"))
        .arg("--tree")
        .arg(&tree)
        .args(["--rev", "6.4", "--date", "20261121", "--out"])
        .arg(d.path()));
    let w = sysup::format::dist::read_dist_metadata(&d.path().join("world-6.4-20261121.tar.gz"))
        .unwrap();
    assert!(w.manifest.get(b"boot/kernel/kernel").is_none());
    assert!(w.manifest.get(b"usr/bin/ls").is_some());
    assert!(w.upgrade.is_some());
}
