//! Threat: duplicate members — a dist that says one thing in its MANIFEST and
//! sends a path twice, hoping a reader checks the first copy and installs
//! the second: the same member twice, a directory as `etc` and `etc/`, one
//! path spelled by a PAX record and by a ustar name, a critical file shipped
//! both as `<path>.new` and as `<path>`, a MANIFEST listing a path twice,
//! metadata members sent twice or after the tree (where `sysup info`,
//! which reads only the head, would not see them), and a hard link whose
//! entry lists another mode or owner for the inode than its file's.

use crate::common;
use crate::hostile_support;

use common::*;
use hostile_support::*;

fn world2(s: &Site, members: &[Crafted]) -> std::path::PathBuf {
    craft_dist(s.dir(), "world-2-20260102", "x86_64", members)
}

fn unlisted(mut c: Crafted) -> Crafted {
    c.unlisted = true;
    c
}

#[test]
fn the_same_member_twice() {
    let s = Site::new();
    let mut v = small_world();
    v.push(unlisted(Crafted::file(
        "usr/bin/tool",
        b"#!/bin/sh\nrm -rf /\n",
    )));
    s.refused(&world2(&s, &v), &["member 'usr/bin/tool': appears twice"]);
}

#[test]
fn a_directory_spelled_with_and_without_its_slash() {
    let s = Site::new();
    let mut v = small_world();
    let mut again = unlisted(Crafted::dir("etc"));
    again.member = Some(b"etc/".to_vec());
    v.push(again);
    s.refused(&world2(&s, &v), &["member 'etc': appears twice"]);
}

#[test]
fn one_path_by_a_pax_record_and_by_a_ustar_name() {
    let s = Site::new();
    let entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    let n = entries.len();
    let mut tar = head("world-2-20260102", &manifest_of(entries), n);
    tar.extend(small_world_members());
    // a second etc/hostname, named by PAX over an innocent-looking ustar name
    tar.extend(pax(&[(b"path", b"etc/hostname")]));
    tar.extend(member(&Hdr::new(b"etc/harmless", b'0', 8), b"hostile\n"));
    tar.extend(end());
    let dist = gz_tar(s.dir(), "world-2-20260102.tar.gz", &tar);
    s.refused(&dist, &["member 'etc/hostname': appears twice"]);
}

#[test]
fn a_critical_file_as_new_and_as_itself() {
    let s = Site::new();
    let mut v = small_world();
    let mut libc = Crafted::file("usr/bin/libc.so", b"good libc");
    libc.entry.critical = true; // stored as usr/bin/libc.so.new
    v.push(libc);
    let mut plain = unlisted(Crafted::file("usr/bin/libc.so", b"evil libc"));
    plain.member = Some(b"usr/bin/libc.so".to_vec());
    v.push(plain);
    s.refused(&world2(&s, &v), &["member 'usr/bin/libc.so': not listed"]);
}

#[test]
fn a_manifest_listing_a_path_twice() {
    let s = Site::new();
    let entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    let text = manifest_of(entries.clone());
    let dup_line = text
        .lines()
        .find(|l| l.starts_with("etc/hostname "))
        .unwrap();
    let text = text.replacen(dup_line, &format!("{dup_line}\n{dup_line}"), 1);
    let mut tar = head("world-2-20260102", &text, entries.len() + 1);
    tar.extend(end());
    let dist = gz_tar(s.dir(), "world-2-20260102.tar.gz", &tar);
    s.refused(
        &dist,
        &["MANIFEST", "not sorted or duplicated at 'etc/hostname'"],
    );
    info_refused(&dist, &["not sorted or duplicated"]);
}

/// The small world's head and members, with `meta` spliced in after the
/// MANIFEST (`at_end`: after the tree instead).
fn with_metadata(s: &Site, meta: &[u8], at_end: bool) -> std::path::PathBuf {
    let entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    let n = entries.len();
    let mut tar = head("world-2-20260102", &manifest_of(entries), n);
    if !at_end {
        tar.extend_from_slice(meta);
    }
    tar.extend(small_world_members());
    if at_end {
        tar.extend_from_slice(meta);
    }
    tar.extend(end());
    gz_tar(s.dir(), "world-2-20260102.tar.gz", &tar)
}

#[test]
fn metadata_members_twice() {
    let s = Site::new();
    // an empty OBSOLETE, then one that removes etc/hostname
    let mut m = member(&Hdr::new(b".sysup/OBSOLETE", b'0', 0), b"");
    m.extend(member(
        &Hdr::new(b".sysup/OBSOLETE", b'0', 13),
        b"etc/hostname\n",
    ));
    s.refused(
        &with_metadata(&s, &m, false),
        &["unexpected metadata member '.sysup/OBSOLETE'"],
    );
    let m = member(
        &Hdr::new(b".sysup/MANIFEST", b'0', 18),
        b"#sysup-manifest 1\n",
    );
    s.refused(
        &with_metadata(&s, &m, false),
        &["unexpected metadata member '.sysup/MANIFEST'"],
    );
}

#[test]
fn an_upgrade_step_hidden_after_the_tree() {
    let s = Site::new();
    let step = b"#!/bin/sh\ntouch ./pwned-by-a-hidden-step\n";
    let m = member(&Hdr::new(b".sysup/upgrade", b'0', step.len() as u64), step);
    let dist = with_metadata(&s, &m, true);
    // `info` reads the head and sees no upgrade step ...
    let o = run_measured(sysup().arg("info").arg(&dist).arg("--json"));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["has_upgrade"], false, "{}", o.stdout);
    // ... so apply must not run one found later
    s.refused(&dist, &["metadata member '.sysup/upgrade' after the tree"]);
}

/// A hard link whose MANIFEST entry claims a setuid mode (or another
/// owner) for the inode its file lists as plain: one inode has one mode,
/// and which claim won would depend on the order the commit set them.
#[test]
fn a_hard_link_claiming_other_attributes_than_its_file() {
    let s = Site::new();
    for (what, claim) in [
        (
            "mode",
            &(|e: &mut sysup::format::manifest::Entry| e.mode = 0o4755) as &dyn Fn(&mut _),
        ),
        ("owner", &|e: &mut sysup::format::manifest::Entry| {
            e.uid = 1000
        }),
    ] {
        let mut v = small_world();
        let mut tool = Crafted::file("usr/bin/tool", b"#!/bin/sh\necho tool\n");
        tool.entry.mode = 0o755;
        v.retain(|c| c.entry.path != b"usr/bin/tool");
        let mut link = Crafted::file("usr/bin/tool2", b"");
        link.entry = tool.entry.clone();
        link.entry.path = b"usr/bin/tool2".to_vec();
        link.entry.kind = sysup::format::manifest::Kind::Hardlink;
        link.entry.link = Some(b"usr/bin/tool".to_vec());
        claim(&mut link.entry);
        v.push(tool);
        v.push(link);
        let err = s.refused(
            &world2(&s, &v),
            &[&format!(
                "'usr/bin/tool2' is a hard link to 'usr/bin/tool' but lists another {what}"
            )],
        );
        assert!(err.contains("MANIFEST"), "{err}");
    }
}
