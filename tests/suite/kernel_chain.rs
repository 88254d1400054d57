//! Named kernels: each has its own chain beside the world's, and before a
//! new kernel goes live the running one is kept as the old-kernel directory,
//! so the previous kernel can always be booted — also across a crash in the
//! middle of the swap.

use crate::common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::*;

/// Kernel GENERIC revisions 1 and 2: (trees, dists, patch 1→2).
fn kernels(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>, PathBuf) {
    let spec = dir.join("GENERIC.toml");
    fs::write(&spec, common::fixtures::kernel_spec("GENERIC")).unwrap();
    let mut trees = Vec::new();
    let mut dists = Vec::new();
    for rev in 1..=2u32 {
        let (tree, dist) = common::kernel_dist(dir, &spec, rev);
        dists.push(dist);
        trees.push(tree);
    }
    ok(sysup()
        .arg("diff")
        .arg(&dists[0])
        .arg(&dists[1])
        .arg("--out")
        .arg(dir));
    let patch = dir.join("kernel-GENERIC-1-20260201_2-20260202.patch");
    (trees, dists, patch)
}

fn same_dir(a: &Path, b: &Path) {
    let d = diff_snapshots(&snapshot(a), &snapshot(b));
    assert!(
        d.is_empty(),
        "{} differs from {}:\n{}",
        a.display(),
        b.display(),
        d.join("\n")
    );
}

#[test]
fn a_new_kernel_keeps_the_previous_one_bootable() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let (trees, dists, patch) = kernels(t.path());
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    // world and kernel: two chains, side by side
    apply_ok(&root, &[&c.dists[0]]);
    apply_ok(&root, &[&dists[0]]);
    same_dir(&root.join("boot/kernel"), &trees[0].join("boot/kernel"));
    let out = apply_ok(&root, &[&patch]);
    assert!(
        out.contains("kernel-GENERIC-1-20260201 → kernel-GENERIC-2-20260202"),
        "{out}"
    );
    same_dir(&root.join("boot/kernel"), &trees[1].join("boot/kernel"));
    same_dir(&root.join("boot/kernel.old"), &trees[0].join("boot/kernel"));
    // the world was not touched by the kernel chain
    let mut world = root_snapshot(&root);
    world.retain(|k, _| !k.starts_with(b"boot"));
    let d = diff_snapshots(&expected_snapshot(&c.trees[0]), &world);
    assert!(d.is_empty(), "{}", d.join("\n"));
    let installed: Vec<_> = fs::read_dir(root.join("var/db/sysup/installed"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(installed.len(), 2, "{installed:?}");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}

#[test]
fn a_crash_in_the_middle_of_the_swap_still_ends_with_both_kernels() {
    let t = tempfile::tempdir().unwrap();
    let (trees, dists, patch) = kernels(t.path());
    for at in ["journal-staged", "commit-rename:1", "committed"] {
        let root = t.path().join(format!("root-{}", at.replace(':', "-")));
        fs::create_dir(&root).unwrap();
        apply_ok(&root, &[&dists[0]]);
        let o = sysup()
            .env("SYSUP_CRASH_AT", at)
            .arg("apply")
            .arg("--root")
            .arg(&root)
            .arg(&patch)
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGKILL),
            "{at}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // whatever instant it died at, a kernel is in place to boot
        assert!(
            root.join("boot/kernel/kernel").exists()
                || root.join("boot/kernel.old/kernel").exists(),
            "{at}"
        );
        apply_ok(&root, &[&patch]);
        same_dir(&root.join("boot/kernel"), &trees[1].join("boot/kernel"));
        same_dir(&root.join("boot/kernel.old"), &trees[0].join("boot/kernel"));
        assert!(leftovers(&root).is_empty(), "{at}: {:?}", leftovers(&root));
    }
}

#[test]
fn reapplying_the_installed_kernel_repairs_in_place_and_keeps_the_old_one() {
    let t = tempfile::tempdir().unwrap();
    let (trees, dists, patch) = kernels(t.path());
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    apply_ok(&root, &[&dists[0]]);
    apply_ok(&root, &[&patch]);
    fs::remove_file(root.join("boot/kernel/if_em.ko")).unwrap();
    // a repair must not rotate: kernel.old stays the previous kernel
    apply_ok(&root, &[&dists[1]]);
    same_dir(&root.join("boot/kernel"), &trees[1].join("boot/kernel"));
    same_dir(&root.join("boot/kernel.old"), &trees[0].join("boot/kernel"));
}
