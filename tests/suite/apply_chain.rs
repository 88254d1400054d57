//! `sysup apply` end to end on the fixture chain: a full install, a chain of
//! patches, unchanged files left alone, repair of a damaged root, config
//! files kept when modified, obsolete files removed, dry runs.

use crate::common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;

#[test]
fn install_then_patch_chain_reaches_the_target_tree() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let out = apply_ok(root, &[&c.dists[0]]);
    assert!(out.contains("install world-1-20260101"), "{out}");
    assert_root_is(root, &c.trees[0]);
    assert_eq!(installed_world(root).as_deref(), Some("world-1-20260101"));
    let out = apply_ok(root, &[&c.patches[0], &c.patches[1]]);
    assert!(
        out.contains("upgrade world-1-20260101 → world-3-20260103"),
        "{out}"
    );
    assert_root_is(root, &c.trees[2]);
    assert_eq!(installed_world(root).as_deref(), Some("world-3-20260103"));
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
    // the new base is the one for the next patch: it is byte-identical to the dist
    let base = root.join("var/db/sysup/bases/world-3-20260103.tar.gz");
    let gunzip = |p: &std::path::Path| {
        ok(std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("gunzip -c '{}' | sha256sum", p.display())))
    };
    assert_eq!(gunzip(&base), gunzip(&c.dists[2]));
    // bases are private: they hold every file of the system
    assert_eq!(
        fs::metadata(&base).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn unchanged_files_are_not_rewritten() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let ino = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().ino();
    let (cat, dash, passwd) = (
        ino("usr/bin/cat"),
        ino("usr/bin/dash"),
        ino("usr/bin/passwd"),
    );
    let out = apply_ok(root, &[&c.patches[0]]);
    assert_eq!(
        ino("usr/bin/cat"),
        cat,
        "cat's content did not change: same inode"
    );
    let mtime = fs::symlink_metadata(root.join("usr/bin/cat"))
        .unwrap()
        .mtime();
    assert_eq!(
        mtime,
        common::fixtures::rev_mtime(2),
        "its new mtime was set in place"
    );
    assert_eq!(ino("usr/bin/passwd"), passwd);
    assert_ne!(ino("usr/bin/dash"), dash, "dash changed and was replaced");
    assert!(out.contains("unchanged"), "{out}");
}

#[test]
fn an_old_looking_file_someone_touched_is_read() {
    // An upgrade takes a file to hold the old content, unread, only when it
    // is the inode the last apply left, untouched since (size and mtime as
    // the old MANIFEST says, inode and ctime as recorded). Here the file
    // holds the new content already (same size; its old mtime put back):
    // its ctime moved, so it is read, found right and kept, its mtime set.
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let rel = "usr/share/doc/sysup-fixture/a-rather-long-directory-name-to-cross-the-ustar-limit/\
               and-a-file-name-long-enough-for-pax-path-records.txt";
    let live = root.join(rel);
    let new = fs::read(c.trees[1].join(rel)).unwrap();
    assert_ne!(fs::read(&live).unwrap(), new, "the fixture changes it");
    assert_eq!(fs::metadata(&live).unwrap().len(), new.len() as u64);
    let old_mtime = fs::metadata(&live).unwrap().modified().unwrap();
    fs::write(&live, &new).unwrap();
    let f = fs::File::options().write(true).open(&live).unwrap();
    f.set_modified(old_mtime).unwrap();
    drop(f);
    let ino = fs::metadata(&live).unwrap().ino();
    apply_ok(root, &[&c.patches[0]]);
    assert_eq!(
        fs::metadata(&live).unwrap().ino(),
        ino,
        "read and kept, not replaced"
    );
    assert_root_is(root, &c.trees[1]);
}

#[test]
fn reapplying_the_installed_dist_repairs_only_what_differs() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[1]]);
    let ino = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().ino();
    let cat = ino("usr/bin/cat");
    // damage: a truncated library, a deleted binary, a lost setuid bit, a
    // changed symlink
    let libc = root.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    fs::OpenOptions::new()
        .write(true)
        .open(&libc)
        .unwrap()
        .set_len(100)
        .unwrap();
    fs::remove_file(root.join("usr/bin/ls")).unwrap();
    fs::set_permissions(
        root.join("usr/bin/passwd"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::remove_file(root.join("usr/bin/sh")).unwrap();
    std::os::unix::fs::symlink("cat", root.join("usr/bin/sh")).unwrap();
    let out = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(root)
        .arg(&c.dists[1]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["action"], "repair");
    assert_eq!(v["counts"]["repaired"], 4, "{out}"); // libc, ls, passwd, sh
    assert_eq!(v["counts"]["changed"], 4, "{out}");
    assert_root_is(root, &c.trees[1]);
    assert_eq!(
        ino("usr/bin/cat"),
        cat,
        "an intact file is not touched by a repair"
    );
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
}

#[test]
fn modified_config_files_are_kept_beside_the_new_version() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let conf = root.join("etc/sysup-demo.conf");
    fs::write(&conf, "# mine\nlevel = 9\n").unwrap();
    let out = apply_ok(root, &[&c.patches[0]]);
    assert!(out.contains("config kept: etc/sysup-demo.conf"), "{out}");
    assert_eq!(fs::read_to_string(&conf).unwrap(), "# mine\nlevel = 9\n");
    assert_eq!(
        fs::read(root.join("etc/sysup-demo.conf.sysupnew")).unwrap(),
        fs::read(c.trees[1].join("etc/sysup-demo.conf")).unwrap()
    );
    // an unmodified config file is simply replaced
    assert_eq!(
        fs::read(root.join("etc/motd")).unwrap(),
        fs::read(c.trees[1].join("etc/motd")).unwrap()
    );
}

#[test]
fn obsolete_files_go_and_new_ones_come() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    assert!(root.join("usr/bin/oldtool").exists());
    assert!(root.join("usr/lib/x86_64-linux-gnu/libfoo.so.1.2").exists());
    let out = ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(root)
        .arg(&c.patches[0]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let removed: Vec<&str> = v["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(removed.contains(&"usr/bin/oldtool"), "{removed:?}");
    assert!(
        removed.contains(&"usr/lib/x86_64-linux-gnu/libfoo.so.1.2"),
        "{removed:?}"
    );
    assert!(!root.join("usr/bin/oldtool").exists());
    assert!(root.join("usr/bin/newtool").exists());
    assert!(root.join("usr/lib/x86_64-linux-gnu/libfoo.so.1.3").exists());
}

#[test]
fn dry_run_changes_nothing() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    apply_ok(root, &[&c.dists[0]]);
    let before = snapshot(root);
    let out = ok(sysup()
        .args(["apply", "--dry-run", "--json", "--root"])
        .arg(root)
        .args([&c.patches[0], &c.patches[1]]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dry_run"], true);
    assert!(v["counts"]["changed"].as_u64().unwrap() > 0);
    // the lock file's pid and the state dir's mtime are all a dry run touches
    let strip = |mut s: std::collections::BTreeMap<Vec<u8>, Node>| {
        s.remove(b"var/db/sysup/lock".as_slice());
        s.remove(b"var/db/sysup".as_slice());
        s
    };
    let (before, after) = (strip(before), strip(snapshot(root)));
    let d = diff_snapshots(&before, &after);
    assert!(d.is_empty(), "dry run changed the root:\n{}", d.join("\n"));
}

#[test]
fn a_running_executable_is_replaced() {
    let t = tempfile::tempdir().unwrap();
    let spec = world_spec(t.path());
    for rev in 1..=2u8 {
        let tree = t.path().join(format!("t{rev}"));
        fs::create_dir_all(tree.join("usr/bin")).unwrap();
        let mut sleep = fs::read("/bin/sleep").unwrap();
        sleep.extend(vec![rev; 64]); // trailing bytes: still a valid ELF, new content
        fs::write(tree.join("usr/bin/sleep"), &sleep).unwrap();
        fs::set_permissions(
            tree.join("usr/bin/sleep"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        ok(sysup()
            .arg("build")
            .arg(&spec)
            .arg("--tree")
            .arg(&tree)
            .args(["--rev", &rev.to_string(), "--date", "20260101", "--out"])
            .arg(t.path()));
    }
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    apply_ok(&root, &[&t.path().join("world-1-20260101.tar.gz")]);
    let mut running = std::process::Command::new(root.join("usr/bin/sleep"))
        .arg("30")
        .spawn()
        .unwrap();
    let out = apply_ok(&root, &[&t.path().join("world-2-20260101.tar.gz")]);
    assert!(out.contains("upgrade"), "{out}");
    assert_eq!(
        fs::read(root.join("usr/bin/sleep")).unwrap(),
        fs::read(t.path().join("t2/usr/bin/sleep")).unwrap()
    );
    assert!(
        running.try_wait().unwrap().is_none(),
        "the old process runs on"
    );
    running.kill().unwrap();
    running.wait().unwrap();
}

#[test]
fn the_dists_upgrade_step_runs_last_and_obsolete_list_is_honoured() {
    let t = tempfile::tempdir().unwrap();
    let specdir = t.path().join("spec");
    fs::create_dir(&specdir).unwrap();
    let spec = specdir.join("world.toml");
    fs::write(
        &spec,
        format!(
            "{}obsolete = \"obsolete.list\"\nupgrade = \"upgrade.sh\"\n",
            common::fixtures::WORLD_SPEC
        ),
    )
    .unwrap();
    fs::write(
        specdir.join("obsolete.list"),
        "# left by an old release\nusr/sbin/ancient\n",
    )
    .unwrap();
    // the step sees every new file in place, and records what it saw
    fs::write(
        specdir.join("upgrade.sh"),
        "#!/bin/sh\nset -eu\ntest -f \"$SYSUP_ROOT/usr/bin/newtool\"\necho \"$SYSUP_FROM -> $SYSUP_TO\" >> \"$SYSUP_ROOT/var/lib/misc/upgraded\"\n",
    )
    .unwrap();
    let mut dists = Vec::new();
    for rev in 2..=3u32 {
        let tree = t.path().join(format!("t{rev}"));
        common::fixtures::make_world(&tree, rev, is_root()).unwrap();
        // the step runs chrooted into the root, with the root's own shell:
        // a static one (the fixture's dash is noise)
        fs::copy("/usr/bin/busybox", tree.join("usr/bin/dash"))
            .expect("a static busybox (busybox-static, .ci/install-deps)");
        ok(sysup()
            .arg("build")
            .arg(&spec)
            .arg("--tree")
            .arg(&tree)
            .args(["--rev", &rev.to_string(), "--date", "20260101", "--out"])
            .arg(t.path()));
        dists.push(t.path().join(format!("world-{rev}-20260101.tar.gz")));
    }
    let root = t.path().join("root");
    fs::create_dir_all(root.join("usr/sbin")).unwrap();
    fs::write(root.join("usr/sbin/ancient"), b"from before sysup").unwrap();
    let out = apply_ok(&root, &[&dists[0]]);
    assert!(out.contains("ran the dist's upgrade step"), "{out}");
    assert!(
        !root.join("usr/sbin/ancient").exists(),
        "OBSOLETE paths are removed"
    );
    apply_ok(&root, &[&dists[1]]);
    let log = fs::read_to_string(root.join("var/lib/misc/upgraded")).unwrap();
    assert_eq!(
        log,
        " -> world-2-20260101\nworld-2-20260101 -> world-3-20260101\n"
    );
}
