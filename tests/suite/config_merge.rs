//! Config files across an upgrade (docs/config-merge.md): merged three
//! ways with the kept base as the ancestor, left alone when the dist did
//! not change them, kept beside `.sysupnew` (and `.sysupmerge`) on a
//! conflict, a binary file or with merging off; named by apply, update,
//! status and history; settled by `sysup config resolve`; a crash at any
//! checkpoint of an apply that merges converges.
//!
//! The dists are crafted (tests/suite/common): a few small members each, so
//! every case runs the real binary in milliseconds.

use crate::common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::*;

const ARCH: &str = std::env::consts::ARCH;

/// A config file member.
fn conf(path: &str, data: &[u8]) -> Crafted {
    let mut c = Crafted::file(path, data);
    c.entry.config = true;
    c
}

/// World revision `rev` (id `world-<rev>-202601<rev>`) holding `etc/`,
/// `bin/tool` and the given config files, written into `dir`.
fn world(dir: &Path, rev: u32, confs: &[(&str, &[u8])]) -> PathBuf {
    let mut members = vec![
        Crafted::dir("bin"),
        Crafted::file("bin/tool", format!("tool {rev}\n").as_bytes()),
        Crafted::dir("etc"),
    ];
    members.extend(confs.iter().map(|(p, d)| conf(p, d)));
    craft_dist(dir, &format!("world-{rev}-202601{rev:02}"), ARCH, &members)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn apply_json(root: &Path, dist: &Path) -> serde_json::Value {
    json(&ok(sysup()
        .args(["apply", "--json", "--root"])
        .arg(root)
        .arg(dist)))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A temporary directory with `dists/` and `root/` in it.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (dists, root) = (t.path().join("dists"), t.path().join("root"));
    fs::create_dir_all(&dists).unwrap();
    fs::create_dir_all(&root).unwrap();
    (t, dists, root)
}

const BASE: &str = "# demo\nlevel = 1\nname = host\n\n\n\ncolor = blue\n";

/// Install `BASE` as etc/demo.conf, edit it to `ours`, then apply a dist
/// whose etc/demo.conf is `theirs`; returns (tempdir, root, report).
fn upgrade_with(ours: &str, theirs: &str) -> (tempfile::TempDir, PathBuf, serde_json::Value) {
    let (t, dists, root) = setup();
    let d1 = world(&dists, 1, &[("etc/demo.conf", BASE.as_bytes())]);
    let d2 = world(&dists, 2, &[("etc/demo.conf", theirs.as_bytes())]);
    apply_ok(&root, &[&d1]);
    fs::write(root.join("etc/demo.conf"), ours).unwrap();
    let v = apply_json(&root, &d2);
    (t, root, v)
}

#[test]
fn a_clean_merge_keeps_both_changes() {
    let ours = BASE.replace("level = 1", "level = 9");
    let theirs = BASE.replace("color = blue", "color = green");
    let (_t, root, v) = upgrade_with(&ours, &theirs);
    assert_eq!(strings(&v["config_merged"]), ["etc/demo.conf"], "{v}");
    assert!(strings(&v["config_kept"]).is_empty(), "{v}");
    assert_eq!(
        read(&root, "etc/demo.conf"),
        BASE.replace("level = 1", "level = 9")
            .replace("color = blue", "color = green")
    );
    assert!(!root.join("etc/demo.conf.sysupnew").exists());
    assert!(!root.join("etc/demo.conf.sysupmerge").exists());
    assert_eq!(leftovers(&root), Vec::<String>::new());
    // the dist's mode, and verify: a config edit, not drift
    let mode = fs::metadata(root.join("etc/demo.conf")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o7777,
        0o644
    );
    let out = ok(sysup().args(["verify", "--json", "--root"]).arg(&root));
    let f = &json(&out)[0];
    assert_eq!(strings(&f["config_modified"]), ["etc/demo.conf"], "{out}");
    assert!(f["modified"].as_array().unwrap().is_empty(), "{out}");
    // history names it
    let h = read(&root, "var/db/sysup/history");
    assert!(
        h.lines()
            .last()
            .unwrap()
            .contains(r#""config_merged":["etc/demo.conf"]"#),
        "{h}"
    );
    // nothing awaits the admin
    let s = json(&ok(sysup().args(["status", "--json", "--root"]).arg(&root)));
    assert!(strings(&s["config_pending"]).is_empty(), "{s}");
}

#[test]
fn an_edit_of_a_file_the_dist_did_not_change_stays_without_sysupnew() {
    let (_t, dists, root) = setup();
    let d1 = world(&dists, 1, &[("etc/hostname", b"localhost\n")]);
    let d2 = world(&dists, 2, &[("etc/hostname", b"localhost\n")]);
    apply_ok(&root, &[&d1]);
    fs::write(root.join("etc/hostname"), "myhost\n").unwrap();
    let v = apply_json(&root, &d2);
    assert_eq!(read(&root, "etc/hostname"), "myhost\n");
    assert!(!root.join("etc/hostname.sysupnew").exists());
    for list in [
        "config_kept",
        "config_merged",
        "config_conflicted",
        "changed",
        "added",
    ] {
        assert!(
            !strings(&v[list]).contains(&"etc/hostname".to_string()),
            "{list}: {v}"
        );
    }
    assert_eq!(strings(&v["changed"]), ["bin/tool"], "{v}");
}

#[test]
fn a_conflict_keeps_the_local_file_and_is_named_everywhere() {
    let ours = BASE.replace("level = 1", "level = 9");
    let theirs = BASE.replace("level = 1", "level = 2");
    let (_t, root, v) = upgrade_with(&ours, &theirs);
    assert_eq!(strings(&v["config_kept"]), ["etc/demo.conf"], "{v}");
    assert_eq!(strings(&v["config_conflicted"]), ["etc/demo.conf"], "{v}");
    assert!(strings(&v["config_merged"]).is_empty(), "{v}");
    assert_eq!(read(&root, "etc/demo.conf"), ours);
    assert_eq!(read(&root, "etc/demo.conf.sysupnew"), theirs);
    let merge = read(&root, "etc/demo.conf.sysupmerge");
    assert!(
        merge.contains("<<<<<<<") && merge.contains("level = 9") && merge.contains("level = 2"),
        "{merge}"
    );
    // status names it, in JSON and for people
    let s = json(&ok(sysup().args(["status", "--json", "--root"]).arg(&root)));
    assert_eq!(strings(&s["config_pending"]), ["etc/demo.conf"], "{s}");
    let human = ok(sysup().args(["status", "--root"]).arg(&root));
    assert!(human.contains("etc/demo.conf awaits you"), "{human}");
    let h = read(&root, "var/db/sysup/history");
    let last = h.lines().last().unwrap();
    assert!(
        last.contains(r#""config_conflicted":["etc/demo.conf"]"#),
        "{last}"
    );
}

#[test]
fn apply_prints_merged_and_conflicted_files() {
    let (_t, dists, root) = setup();
    let a = BASE;
    let d1 = world(
        &dists,
        1,
        &[("etc/a.conf", a.as_bytes()), ("etc/b.conf", a.as_bytes())],
    );
    let a2 = a.replace("color = blue", "color = red");
    let b2 = a.replace("level = 1", "level = 2");
    let d2 = world(
        &dists,
        2,
        &[("etc/a.conf", a2.as_bytes()), ("etc/b.conf", b2.as_bytes())],
    );
    apply_ok(&root, &[&d1]);
    fs::write(root.join("etc/a.conf"), a.replace("level = 1", "level = 5")).unwrap();
    fs::write(root.join("etc/b.conf"), a.replace("level = 1", "level = 5")).unwrap();
    let out = apply_ok(&root, &[&d2]);
    assert!(out.contains("config merged: etc/a.conf"), "{out}");
    assert!(
        out.contains("config kept: etc/b.conf (modified locally; new version in etc/b.conf.sysupnew, merge with conflicts in etc/b.conf.sysupmerge)"),
        "{out}"
    );
}

#[test]
fn passwd_with_a_local_user_takes_the_dists_new_system_user() {
    let base = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    let ours = format!("{base}alice:x:1000:1000:Alice:/home/alice:/bin/sh\n");
    let theirs = base.replace(
        "bin:x:2:2:bin:/bin:/usr/sbin/nologin\n",
        "bin:x:2:2:bin:/bin:/usr/sbin/nologin\nmessagebus:x:100:101::/nonexistent:/usr/sbin/nologin\n",
    );
    let (_t, dists, root) = setup();
    let d1 = world(&dists, 1, &[("etc/passwd", base.as_bytes())]);
    let d2 = world(&dists, 2, &[("etc/passwd", theirs.as_bytes())]);
    apply_ok(&root, &[&d1]);
    fs::write(root.join("etc/passwd"), &ours).unwrap();
    let v = apply_json(&root, &d2);
    assert_eq!(strings(&v["config_merged"]), ["etc/passwd"], "{v}");
    let got = read(&root, "etc/passwd");
    assert!(
        got.contains("messagebus:x:100:") && got.contains("alice:x:1000:"),
        "{got}"
    );
    assert!(!root.join("etc/passwd.sysupnew").exists());
}

#[test]
fn a_binary_config_file_falls_back_to_sysupnew() {
    let (_t, dists, root) = setup();
    let d1 = world(&dists, 1, &[("etc/key.db", b"a\n\0b\nc\n\n\nd\n")]);
    let d2 = world(&dists, 2, &[("etc/key.db", b"a\n\0b\nc\n\n\nD\n")]);
    apply_ok(&root, &[&d1]);
    fs::write(root.join("etc/key.db"), b"A\n\0b\nc\n\n\nd\n").unwrap();
    let v = apply_json(&root, &d2);
    assert_eq!(strings(&v["config_kept"]), ["etc/key.db"], "{v}");
    assert!(strings(&v["config_merged"]).is_empty(), "{v}");
    assert!(strings(&v["config_conflicted"]).is_empty(), "{v}");
    assert_eq!(
        fs::read(root.join("etc/key.db")).unwrap(),
        b"A\n\0b\nc\n\n\nd\n"
    );
    assert_eq!(
        fs::read(root.join("etc/key.db.sysupnew")).unwrap(),
        b"a\n\0b\nc\n\n\nD\n"
    );
    assert!(!root.join("etc/key.db.sysupmerge").exists());
}

#[test]
fn merging_off_keeps_every_local_edit_beside_the_new_version() {
    let (_t, dists, root) = setup();
    let theirs = BASE.replace("color = blue", "color = green");
    let d1 = world(
        &dists,
        1,
        &[("etc/demo.conf", BASE.as_bytes()), ("etc/hostname", b"h\n")],
    );
    let d2 = world(
        &dists,
        2,
        &[
            ("etc/demo.conf", theirs.as_bytes()),
            ("etc/hostname", b"h\n"),
        ],
    );
    apply_ok(&root, &[&d1]);
    fs::write(
        root.join("etc/sysup.conf"),
        "[apply]\nconfig-merge = false\n",
    )
    .unwrap();
    fs::write(root.join("etc/demo.conf"), "mine\n").unwrap();
    fs::write(root.join("etc/hostname"), "mine\n").unwrap();
    let v = apply_json(&root, &d2);
    assert_eq!(
        strings(&v["config_kept"]),
        ["etc/demo.conf", "etc/hostname"],
        "{v}"
    );
    assert!(strings(&v["config_merged"]).is_empty(), "{v}");
    assert_eq!(read(&root, "etc/demo.conf.sysupnew"), theirs);
    assert!(!root.join("etc/demo.conf.sysupmerge").exists());
}

#[test]
fn a_dry_run_foretells_the_merge_and_writes_nothing() {
    let (_t, dists, root) = setup();
    let theirs = BASE.replace("color = blue", "color = green");
    let d1 = world(&dists, 1, &[("etc/demo.conf", BASE.as_bytes())]);
    let d2 = world(&dists, 2, &[("etc/demo.conf", theirs.as_bytes())]);
    apply_ok(&root, &[&d1]);
    let ours = BASE.replace("level = 1", "level = 9");
    fs::write(root.join("etc/demo.conf"), &ours).unwrap();
    let dry = json(&ok(sysup()
        .args(["apply", "--dry-run", "--json", "--root"])
        .arg(&root)
        .arg(&d2)));
    assert_eq!(strings(&dry["config_merged"]), ["etc/demo.conf"], "{dry}");
    assert_eq!(read(&root, "etc/demo.conf"), ours);
    let real = apply_json(&root, &d2);
    assert_eq!(real["config_merged"], dry["config_merged"]);
    assert_eq!(real["counts"]["changed"], dry["counts"]["changed"]);
}

#[test]
fn symlinked_config_entries_and_config_directories_are_replaced_as_shipped() {
    // Only a file (or hard link) can be a config entry: the MANIFEST
    // refuses `flags` on a symlink or a directory (a config directory's
    // files are config entries of their own). An installed config file the
    // admin replaced by a symlink is never merged or followed: the dist's
    // file replaces the link, as for any other file. A shipped symlink in
    // a config directory is replaced as shipped.
    let (t, dists, root) = setup();
    let mk = |rev: u32, target: &str, body: &str| {
        let members = vec![
            Crafted::dir("bin"),
            Crafted::dir("etc"),
            Crafted::dir("etc/app.d"),
            conf("etc/app.d/main.conf", body.as_bytes()),
            Crafted::symlink("etc/app.d/zone", target),
            conf("etc/plain.conf", body.as_bytes()),
        ];
        craft_dist(
            &dists,
            &format!("world-{rev}-202601{rev:02}"),
            ARCH,
            &members,
        )
    };
    let d1 = mk(1, "/usr/share/zoneinfo/UTC", BASE);
    let theirs = BASE.replace("color = blue", "color = red");
    let d2 = mk(2, "/usr/share/zoneinfo/Etc/UTC", &theirs);
    apply_ok(&root, &[&d1]);
    // the admin points the link elsewhere, edits a file in the config
    // directory, and puts a symlink (to outside the root) in place of a file
    fs::remove_file(root.join("etc/app.d/zone")).unwrap();
    std::os::unix::fs::symlink(
        "/usr/share/zoneinfo/Europe/Paris",
        root.join("etc/app.d/zone"),
    )
    .unwrap();
    let ours = BASE.replace("level = 1", "level = 3");
    fs::write(root.join("etc/app.d/main.conf"), &ours).unwrap();
    let outside = t.path().join("outside.conf");
    fs::write(&outside, "outside\n").unwrap();
    fs::remove_file(root.join("etc/plain.conf")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc/plain.conf")).unwrap();
    let v = apply_json(&root, &d2);
    assert_eq!(
        fs::read_link(root.join("etc/app.d/zone")).unwrap(),
        Path::new("/usr/share/zoneinfo/Etc/UTC")
    );
    assert_eq!(strings(&v["config_merged"]), ["etc/app.d/main.conf"], "{v}");
    assert_eq!(
        read(&root, "etc/app.d/main.conf"),
        BASE.replace("level = 1", "level = 3")
            .replace("color = blue", "color = red")
    );
    assert!(!fs::symlink_metadata(root.join("etc/plain.conf"))
        .unwrap()
        .is_symlink());
    assert_eq!(read(&root, "etc/plain.conf"), theirs);
    assert_eq!(
        fs::read_to_string(&outside).unwrap(),
        "outside\n",
        "never followed"
    );
    assert!(strings(&v["config_kept"]).is_empty(), "{v}");

    // a MANIFEST that flags a directory or a symlink as config is refused
    for mut bad in [Crafted::dir("etc/x.d"), Crafted::symlink("etc/l", "t")] {
        bad.entry.config = true;
        let d = craft_dist(
            &dists,
            "world-3-20260103",
            ARCH,
            &[Crafted::dir("etc"), bad],
        );
        let err = apply_fails(&root, &[&d]);
        assert!(err.contains("cannot have 'flags'"), "{err}");
    }
}

#[test]
fn config_resolve_takes_theirs_ours_or_an_edited_merge() {
    let ours = BASE.replace("level = 1", "level = 9");
    let theirs = BASE.replace("level = 1", "level = 2");
    let resolve = |root: &Path, how: &[&str]| {
        ok(sysup()
            .args(["config", "resolve", "--root"])
            .arg(root)
            .arg("etc/demo.conf")
            .args(how))
    };
    let pending = |root: &Path| {
        strings(
            &json(&ok(sysup().args(["status", "--json", "--root"]).arg(root)))["config_pending"],
        )
    };
    // theirs
    let (_t1, root, _) = upgrade_with(&ours, &theirs);
    assert_eq!(pending(&root), ["etc/demo.conf"]);
    let out = resolve(&root, &["--theirs"]);
    assert!(
        out.contains("installed the new version of etc/demo.conf"),
        "{out}"
    );
    assert_eq!(read(&root, "etc/demo.conf"), theirs);
    assert!(!root.join("etc/demo.conf.sysupnew").exists());
    assert!(!root.join("etc/demo.conf.sysupmerge").exists());
    assert!(pending(&root).is_empty());
    let out = ok(sysup().args(["verify", "--json", "--root"]).arg(&root));
    assert!(
        strings(&json(&out)[0]["config_modified"]).is_empty(),
        "{out}"
    );
    let h = read(&root, "var/db/sysup/history");
    let last = h.lines().last().unwrap();
    assert!(
        last.contains(r#""action":"config-resolve""#)
            && last.contains(r#""resolved":{"path":"etc/demo.conf","took":"theirs"}"#),
        "{last}"
    );
    // nothing awaits any more: a second resolve is refused, naming the file
    let o = run(sysup()
        .args(["config", "resolve", "--theirs", "--root"])
        .arg(&root)
        .arg("etc/demo.conf"));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("etc/demo.conf.sysupnew"));

    // ours
    let (_t2, root, _) = upgrade_with(&ours, &theirs);
    resolve(&root, &["--ours"]);
    assert_eq!(read(&root, "etc/demo.conf"), ours);
    assert!(!root.join("etc/demo.conf.sysupnew").exists());
    assert!(!root.join("etc/demo.conf.sysupmerge").exists());
    assert!(pending(&root).is_empty());

    // an edited merge; one still holding markers is refused
    let (t3, root, _) = upgrade_with(&ours, &theirs);
    let o = run(sysup()
        .args(["config", "resolve", "--root"])
        .arg(&root)
        .arg("etc/demo.conf")
        .arg("--merged")
        .arg(root.join("etc/demo.conf.sysupmerge")));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("conflict markers"));
    assert_eq!(read(&root, "etc/demo.conf"), ours);
    let edited = t3.path().join("edited");
    let merged = BASE.replace("level = 1", "level = 10");
    fs::write(&edited, &merged).unwrap();
    let abs = root.join("etc/demo.conf");
    ok(sysup()
        .args(["config", "resolve", "--root"])
        .arg(&root)
        .arg(&abs)
        .arg("--merged")
        .arg(&edited));
    assert_eq!(read(&root, "etc/demo.conf"), merged);
    let mode = fs::metadata(&abs).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o7777,
        0o644
    );
    assert!(pending(&root).is_empty());
    assert_eq!(leftovers(&root), Vec::<String>::new());
    // a path that is not a config file is refused
    let o = run(sysup()
        .args(["config", "resolve", "--ours", "--root"])
        .arg(&root)
        .arg("bin/tool"));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a config file"));
}

#[test]
fn a_crash_at_any_checkpoint_of_a_merging_apply_converges() {
    let ours = BASE.replace("level = 1", "level = 9");
    let theirs = BASE.replace("color = blue", "color = green");
    let conflicted = BASE.replace("name = host", "name = mine");
    let theirs_b = BASE.replace("name = host", "name = dist");
    let merged = BASE
        .replace("level = 1", "level = 9")
        .replace("color = blue", "color = green");
    let t = tempfile::tempdir().unwrap();
    let dists = t.path().join("dists");
    fs::create_dir_all(&dists).unwrap();
    let d1 = world(
        &dists,
        1,
        &[
            ("etc/demo.conf", BASE.as_bytes()),
            ("etc/b.conf", BASE.as_bytes()),
        ],
    );
    let d2 = world(
        &dists,
        2,
        &[
            ("etc/demo.conf", theirs.as_bytes()),
            ("etc/b.conf", theirs_b.as_bytes()),
        ],
    );
    let mut killed = Vec::new();
    for cp in sysup::host::checkpoint::ALL {
        let root = t.path().join(format!("root-{cp}"));
        fs::create_dir_all(&root).unwrap();
        apply_ok(&root, &[&d1]);
        fs::write(root.join("etc/demo.conf"), &ours).unwrap();
        fs::write(root.join("etc/b.conf"), &conflicted).unwrap();
        let o = run(sysup()
            .env("SYSUP_CRASH_AT", cp)
            .args(["apply", "--root"])
            .arg(&root)
            .arg(&d2));
        if o.status.signal() == Some(libc::SIGKILL) {
            killed.push(*cp);
        } else {
            assert!(
                o.status.success(),
                "{cp}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        apply_ok(&root, &[&d2]);
        assert_eq!(read(&root, "etc/demo.conf"), merged, "after {cp}");
        assert_eq!(read(&root, "etc/b.conf"), conflicted, "after {cp}");
        assert_eq!(read(&root, "etc/b.conf.sysupnew"), theirs_b, "after {cp}");
        assert!(root.join("etc/b.conf.sysupmerge").exists(), "after {cp}");
        assert_eq!(read(&root, "bin/tool"), "tool 2\n", "after {cp}");
        assert_eq!(installed_world(&root).as_deref(), Some("world-2-20260102"));
        assert_eq!(leftovers(&root), Vec::<String>::new(), "after {cp}");
    }
    for cp in [
        "stage-file",
        "journal-staged",
        "commit-rename",
        "committed",
        "recorded",
    ] {
        assert!(killed.contains(&cp), "never killed at {cp}: {killed:?}");
    }
}

#[test]
fn a_config_file_with_hard_links_is_kept_not_merged() {
    let (_t, dists, root) = setup();
    let mk = |rev: u32, body: &str| {
        let mut link = sysup::format::manifest::Entry::new(
            b"etc/linked.conf".to_vec(),
            sysup::format::manifest::Kind::Hardlink,
        );
        link.mode = 0o644;
        link.link = Some(b"etc/demo.conf".to_vec());
        link.size = body.len() as u64;
        link.sha256 = conf("x", body.as_bytes()).entry.sha256;
        let link = Crafted {
            entry: link,
            member: None,
            data: vec![],
            unlisted: false,
        };
        let members = [
            Crafted::dir("etc"),
            conf("etc/demo.conf", body.as_bytes()),
            link,
        ];
        craft_dist(
            &dists,
            &format!("world-{rev}-202601{rev:02}"),
            ARCH,
            &members,
        )
    };
    let theirs = BASE.replace("color = blue", "color = green");
    let (d1, d2) = (mk(1, BASE), mk(2, &theirs));
    apply_ok(&root, &[&d1]);
    // a far-apart edit that would merge cleanly, in a new inode
    let ours = BASE.replace("level = 1", "level = 9");
    fs::remove_file(root.join("etc/demo.conf")).unwrap();
    fs::write(root.join("etc/demo.conf"), &ours).unwrap();
    let v = apply_json(&root, &d2);
    assert_eq!(strings(&v["config_kept"]), ["etc/demo.conf"], "{v}");
    assert!(strings(&v["config_merged"]).is_empty(), "{v}");
    assert_eq!(read(&root, "etc/demo.conf"), ours);
    assert_eq!(read(&root, "etc/demo.conf.sysupnew"), theirs);
    assert_eq!(read(&root, "etc/linked.conf"), theirs);
}
