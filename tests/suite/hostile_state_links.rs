//! Threat: sysup's own state (`var/db/sysup`) redirected by links, so that
//! its journal, history, lock, bases, installed records, downloads or mirror
//! serial are written outside `--root`:
//! - a dist that ships `var/db` (or `var`) as a link to a directory inside
//!   the root that holds `sysup/journal`, `history`, `lock` as links to
//!   files outside it: refused before anything is staged;
//! - a prepared root with a link planted at any file or directory of the
//!   state directory: every command refuses to work on it, naming the link.
//!
//! Each case: exit 1, an error naming the path, the root unchanged, and a
//! directory outside it (the links' targets) unchanged.

use crate::common;
use crate::hostile_support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Output;

use common::*;
use hostile_support::{small_world, Site};

const PRECIOUS: &[u8] = b"precious, not sysup's\n";

/// Files outside the root that the hostile links point at.
fn plant_targets(outside: &Path) {
    for n in ["journal", "history", "lock", "serial"] {
        fs::write(outside.join(n), PRECIOUS).unwrap();
    }
}

fn sysup_in(root: &Path, args: &[&str]) -> Output {
    let mut c = sysup();
    c.arg(args[0]).arg("--root").arg(root).args(&args[1..]);
    run(&mut c)
}

fn assert_refused(o: &Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: expected exit 1; stderr:\n{err}"
    );
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{what}: {err}"
    );
    assert!(
        err.contains(needle),
        "{what}: error does not name {needle}:\n{err}"
    );
}

#[test]
fn a_dist_shipping_var_db_as_a_link_is_refused() {
    for (link, target) in [("var/db", "../srv/evil"), ("var", "srv/evilvar")] {
        let s = Site::new();
        plant_targets(&s.outside);
        let out = s.outside.display().to_string();
        let mut members = small_world();
        members.extend([
            Crafted::dir("srv"),
            Crafted::dir("srv/evil"),
            Crafted::dir("srv/evil/sysup"),
            Crafted::symlink("srv/evil/sysup/journal", &format!("{out}/journal")),
            Crafted::symlink("srv/evil/sysup/history", &format!("{out}/history")),
            Crafted::symlink("srv/evil/sysup/lock", &format!("{out}/lock")),
            Crafted::dir("srv/evilvar"),
            Crafted::symlink("srv/evilvar/db", "../evil"),
        ]);
        if link == "var/db" {
            members.push(Crafted::dir("var"));
        }
        members.push(Crafted::symlink(link, target));
        let dist = craft_dist(s.dir(), "world-2-20260102", "x86_64", &members);
        let outside_before = snapshot(&s.outside);
        let o = sysup_in(&s.root, &["apply", dist.to_str().unwrap()]);
        assert_refused(&o, link, link);
        assert_unchanged(&s.root, &s.before);
        // and the runs after it keep the state where it was
        let o = sysup_in(&s.root, &["clean", "--min-age", "0"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = sysup_in(&s.root, &["status"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            diff_snapshots(&outside_before, &snapshot(&s.outside)),
            Vec::<String>::new(),
            "{link}: something outside the root changed"
        );
        assert!(fs::symlink_metadata(s.root.join("var/db/sysup"))
            .unwrap()
            .is_dir());
    }
}

/// Plant a link at `var/db/sysup/<name>` pointing outside; directories are
/// moved out first so the state behind the link looks whole.
fn plant(s: &Site, name: &str) {
    let here = s.root.join("var/db/sysup").join(name);
    let there = s.outside.join(name.replace('/', "-"));
    if let Some(p) = here.parent() {
        fs::create_dir_all(p).unwrap();
    }
    match fs::symlink_metadata(&here) {
        Ok(md) if md.is_dir() => fs::rename(&here, &there).unwrap(),
        Ok(_) => fs::remove_file(&here).unwrap(),
        Err(_) if name == "mirror" || name == "download" => fs::create_dir(&there).unwrap(),
        Err(_) => {}
    }
    if !there.exists() {
        fs::write(&there, PRECIOUS).unwrap();
    }
    if name == "download" {
        fs::write(there.join("world-0-20250101.tar.gz"), PRECIOUS).unwrap();
    }
    symlink(&there, &here).unwrap();
}

#[test]
fn links_planted_in_the_state_directory_are_refused() {
    let names = [
        "lock",
        "history",
        "journal",
        "installed",
        "installed/world",
        "bases",
        "download",
        "mirror",
        "mirror/serial",
    ];
    for name in names {
        let s = Site::new();
        let dist = craft_dist(s.dir(), "world-2-20260102", "x86_64", &small_world());
        plant(&s, name);
        let before = guarded_snapshot(&s.root);
        let outside_before = snapshot(&s.outside);
        let needle = format!("var/db/sysup/{name}' is a symbolic link");
        let key = s.dir().join("k.pub");
        ok(std::process::Command::new("minisign")
            .args(["-G", "-W", "-f", "-p"])
            .arg(&key)
            .arg("-s")
            .arg(s.dir().join("k.key"))
            .stdin(std::process::Stdio::null()));
        let key = key.to_str().unwrap();
        let runs: [&[&str]; 6] = [
            &["apply", dist.to_str().unwrap()],
            &["clean", "--min-age", "0"],
            &["rollback"],
            &["status"],
            &["history"],
            &["update", "--mirror", "http://127.0.0.1:9/", "--pubkey", key],
        ];
        for args in runs {
            let o = sysup_in(&s.root, args);
            assert_refused(&o, &format!("{name}, {}", args[0]), &needle);
            assert_eq!(
                diff_snapshots(&before, &guarded_snapshot(&s.root)),
                Vec::<String>::new(),
                "{name}, {}: the root changed",
                args[0]
            );
            assert_eq!(
                diff_snapshots(&outside_before, &snapshot(&s.outside)),
                Vec::<String>::new(),
                "{name}, {}: something outside the root changed",
                args[0]
            );
        }
    }
}
