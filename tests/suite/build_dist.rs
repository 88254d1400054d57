//! `sysup build`: a dist is reproducible, readable by GNU tar and bsdtar with
//! every member's type, mode, owner and link intact, extracts back to the
//! source tree, and carries a MANIFEST that matches the tree.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use sysup::format::manifest::{Kind, Manifest};

fn manifest_of(dist: &Path) -> Manifest {
    sysup::format::dist::read_dist_metadata(dist)
        .unwrap()
        .manifest
}

#[test]
fn rebuild_is_byte_identical_whatever_the_tree_location_and_order() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (ta, da) = world_dist(a.path(), 2);
    // The second tree lives on another filesystem (a tmpfs, when root may
    // mount one), where readdir lists entries in another order than ext4's
    // hash order: the build must not care.
    let _mount = is_root().then(|| Tmpfs::mount(b.path(), "64m"));
    let (tb, db) = world_dist(b.path(), 2);
    let order = |d: &Path| -> Vec<_> {
        fs::read_dir(d.join("usr/bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    if is_root() {
        assert_ne!(
            order(&ta),
            order(&tb),
            "the test must really change readdir order"
        );
    } else {
        eprintln!("not root: both trees on one filesystem; readdir order not varied");
    }
    let (x, y) = (fs::read(&da).unwrap(), fs::read(&db).unwrap());
    assert!(x == y, "two builds of the same tree differ");
    // gzip header: magic, deflate, only FEXTRA (the tar record), mtime 0
    assert_eq!(&x[..4], &[0x1f, 0x8b, 8, 4]);
    assert_eq!(&x[4..8], &[0, 0, 0, 0], "gzip mtime must be 0");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&da).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // building again into the same place replaces it with the same bytes
    let (_, again) = world_dist(a.path(), 2);
    assert_eq!(fs::read(again).unwrap(), x);
}

#[test]
fn different_revisions_give_different_dists() {
    let d = tempfile::tempdir().unwrap();
    let (_, d1) = world_dist(d.path(), 1);
    let (_, d2) = world_dist(d.path(), 2);
    assert_ne!(fs::read(d1).unwrap(), fs::read(d2).unwrap());
}

/// `-rwsr-xr-x`-style mode string for a MANIFEST entry.
fn mode_string(kind: Kind, mode: u32) -> String {
    let t = match kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Hardlink => 'h',
        Kind::Char => 'c',
        Kind::Block => 'b',
        Kind::Fifo => 'p',
    };
    let mut s = String::from(t);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o40, 'r'),
        (0o20, 'w'),
        (0o10, 'x'),
        (0o4, 'r'),
        (0o2, 'w'),
        (0o1, 'x'),
    ];
    for (i, (b, c)) in bits.iter().enumerate() {
        let set = mode & b != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (special, set, i) {
            (true, true, 8) => 't',
            (true, false, 8) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => *c,
            (false, false, _) => '-',
        });
    }
    s
}

fn check_listing(tool: &str, dist: &Path) {
    let m = manifest_of(dist);
    let out = ok(Command::new(tool)
        .args(["--numeric-owner", "-tvf"])
        .arg(dist));
    let lines: Vec<&str> = out.lines().collect();
    // .sysup/DIST and .sysup/MANIFEST come first
    assert!(lines[0].ends_with(".sysup/DIST"), "{tool}: {}", lines[0]);
    assert!(
        lines[1].ends_with(".sysup/MANIFEST"),
        "{tool}: {}",
        lines[1]
    );
    let listed = &lines[2..];
    assert_eq!(
        listed.len(),
        m.entries().len(),
        "{tool} lists every entry once"
    );
    for e in m.entries() {
        let mut member = String::from_utf8_lossy(&e.member_name()).into_owned();
        if e.kind == Kind::Dir {
            member.push('/');
        }
        if !member.is_ascii() {
            continue; // the tools escape non-ASCII differently; extraction checks it
        }
        let line = listed
            .iter()
            .find(|l| {
                let rest = l.split_once(&format!(" {member}")).map(|x| x.1);
                matches!(rest, Some(""))
                    || rest.is_some_and(|r| r.starts_with(" ->") || r.starts_with(" link to"))
            })
            .unwrap_or_else(|| panic!("{tool}: no line for {member}\n{out}"));
        assert!(
            line.starts_with(&mode_string(e.kind, e.mode)),
            "{tool}: {member}: expected {} in {line}",
            mode_string(e.kind, e.mode)
        );
        let owner_gnu = format!(" {}/{} ", e.uid, e.gid);
        let owner_bsd = format!(" {} {} ", e.uid, e.gid);
        let squeezed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            line.contains(&owner_gnu) || format!(" {squeezed} ").contains(&owner_bsd),
            "{tool}: {member}: owner {}/{} not in {line}",
            e.uid,
            e.gid
        );
        match e.kind {
            Kind::Symlink => {
                let t = String::from_utf8_lossy(e.link.as_ref().unwrap()).into_owned();
                assert!(line.ends_with(&format!("-> {t}")), "{tool}: {line}");
            }
            Kind::Hardlink => {
                let holder = m.get(e.link.as_ref().unwrap()).unwrap();
                let t = String::from_utf8_lossy(&holder.member_name()).into_owned();
                assert!(line.ends_with(&format!("link to {t}")), "{tool}: {line}");
            }
            _ => {}
        }
    }
}

#[test]
fn gnu_tar_and_bsdtar_list_every_member_right() {
    let d = tempfile::tempdir().unwrap();
    let (_, dist) = world_dist(d.path(), 1);
    check_listing("tar", &dist);
    check_listing("bsdtar", &dist);
}

#[test]
fn gnu_tar_extracts_the_source_tree() {
    let d = tempfile::tempdir().unwrap();
    let (tree, dist) = world_dist(d.path(), 2);
    let x = d.path().join("x");
    fs::create_dir(&x).unwrap();
    ok(Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(&dist)
        .arg("-C")
        .arg(&x));
    // undo the dist's conventions: .sysup/ is metadata, critical files are .new
    fs::remove_dir_all(x.join(".sysup")).unwrap();
    for e in manifest_of(&dist).entries().iter().filter(|e| e.critical) {
        let off = x.join(e.os_path());
        let mut new = off.clone().into_os_string();
        new.push(".new");
        fs::rename(&new, &off).unwrap();
    }
    // excluded by the spec
    let mut src = snapshot(&tree);
    src.retain(|k, _| !k.starts_with(b"tmp/"));
    let mut got = snapshot(&x);
    // renaming .new touched no metadata, but the parents' mtimes moved
    for e in manifest_of(&dist).entries().iter().filter(|e| e.critical) {
        let parent = e.path.rsplitn(2, |&c| c == b'/').nth(1).unwrap().to_vec();
        let want = src[&parent].mtime;
        got.get_mut(&parent).unwrap().mtime = want;
    }
    let d = diff_snapshots(&src, &got);
    assert!(d.is_empty(), "extracted tree differs:\n{}", d.join("\n"));
    if is_root() {
        let ping = &got[&b"usr/bin/ping".to_vec()];
        assert!(
            ping.xattrs.contains_key("security.capability"),
            "capability survives"
        );
        assert_eq!(got[&b"dev/null".to_vec()].rdev, Some((1, 3)));
    }
}

#[test]
fn manifest_matches_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let (tree, dist) = world_dist(d.path(), 3);
    let m = manifest_of(&dist);
    let snap = snapshot(&tree);
    let mut seen = 0;
    for e in m.entries() {
        let n = snap
            .get(&e.path)
            .unwrap_or_else(|| panic!("{} not in tree", e.display()));
        seen += 1;
        let kind = match e.kind {
            Kind::Hardlink => "file",
            k => k.as_str(),
        };
        assert_eq!(n.kind, kind, "{}", e.display());
        assert_eq!(n.mode, e.mode, "{}", e.display());
        assert_eq!(
            (u64::from(n.uid), u64::from(n.gid)),
            (e.uid, e.gid),
            "{}",
            e.display()
        );
        assert_eq!(n.mtime, e.mtime, "{}", e.display());
        assert_eq!(n.content, e.sha256, "{}", e.display());
        assert_eq!(n.xattrs, e.xattrs, "{}", e.display());
        if e.kind == Kind::Symlink {
            assert_eq!(n.link, e.link);
        }
        if e.kind == Kind::Hardlink {
            let target = e.link.as_ref().unwrap();
            assert_eq!(n.hardlink_group.as_ref(), Some(target), "{}", e.display());
        }
        assert!(
            !e.path.starts_with(b"tmp/"),
            "excluded content shipped: {}",
            e.display()
        );
    }
    // every tree entry outside the excluded tmp/ content is in the manifest
    let expected = snap.keys().filter(|k| !k.starts_with(b"tmp/")).count();
    assert_eq!(seen, expected);
    // flags
    assert!(
        m.get(b"usr/lib/x86_64-linux-gnu/libc.so.6")
            .unwrap()
            .critical
    );
    assert!(m.get(b"usr/lib64/ld-linux-x86-64.so.2").unwrap().critical);
    assert!(m.get(b"etc/motd").unwrap().config);
    assert!(!m.get(b"usr/bin/ls").unwrap().config);
    // the first of a hardlink pair in member order holds the data
    assert_eq!(m.get(b"usr/bin/gunzip").unwrap().kind, Kind::File);
    let gz = m.get(b"usr/bin/gzip").unwrap();
    assert_eq!(gz.kind, Kind::Hardlink);
    assert_eq!(gz.link.as_deref(), Some(&b"usr/bin/gunzip"[..]));
    assert_eq!(m.get(b"var/empty").unwrap().mode, 0o555);
    assert_eq!(m.get(b"usr/bin/passwd").unwrap().mode, 0o4755);
    assert_eq!(m.get(b"tmp").unwrap().mode, 0o1777);
}

#[test]
fn build_prints_sizes_and_digests_as_json() {
    let d = tempfile::tempdir().unwrap();
    let tree = d.path().join("t");
    common::fixtures::make_world(&tree, 1, is_root()).unwrap();
    let spec = world_spec(d.path());
    let out = ok(sysup()
        .arg("build")
        .arg(&spec)
        .arg("--tree")
        .arg(&tree)
        .args(["--rev", "1.0", "--date", "20261121", "--json", "--out"])
        .arg(d.path().join("o")));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], "world-1.0-20261121");
    let dist = d.path().join("o/world-1.0-20261121.tar.gz");
    assert_eq!(v["compressed_size"], fs::metadata(&dist).unwrap().len());
    // the printed digests are those of the uncompressed tar
    let tar = ok(Command::new("sh").arg("-c").arg(format!(
        "gunzip -c '{}' | md5sum; gunzip -c '{}' | sha256sum",
        dist.display(),
        dist.display()
    )));
    let mut l = tar.lines();
    assert!(l
        .next()
        .unwrap()
        .starts_with(v["tar"]["md5"].as_str().unwrap()));
    assert!(l
        .next()
        .unwrap()
        .starts_with(v["tar"]["sha256"].as_str().unwrap()));
}
