//! Threat: names with a NUL or a newline. A NUL cannot be in a file name, so
//! a member carrying one (PAX `path` and GNU long names can) is lying about
//! what it is; a newline forges lines in every listing an admin reads
//! (`find`, logs, `sysup verify`) and in line-based formats. sysup refuses
//! both, in tar member names and in MANIFEST paths (a NUL in a link target
//! too), and the build refuses a tree with a newline in a name
//! (docs/decisions.md).

use crate::common;
use crate::hostile_support;

use std::fs;

use common::*;
use hostile_support::*;

/// A dist: the small world plus `extra` raw members, with `listed` entries
/// added to its MANIFEST.
fn dist_with(
    s: &Site,
    listed: Vec<sysup::format::manifest::Entry>,
    extra: &[u8],
) -> std::path::PathBuf {
    let mut entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    entries.extend(listed);
    // the real renderer escapes any byte; it is the reader that must refuse
    let text = sysup::format::manifest::Manifest::new(entries.clone())
        .unwrap()
        .render();
    let mut tar = head("world-2-20260102", &text, entries.len());
    tar.extend(small_world_members());
    tar.extend_from_slice(extra);
    tar.extend(end());
    gz_tar(s.dir(), "world-2-20260102.tar.gz", &tar)
}

#[test]
fn a_nul_in_a_pax_path_is_refused() {
    let s = Site::new();
    // "etc/passwd\0.txt": a reader stopping at the NUL would see etc/passwd
    let mut m = pax(&[(b"path", b"etc/passwd\0.txt")]);
    m.extend(member(&Hdr::new(b"etc/passwd.txt", b'0', 2), b"x\n"));
    let dist = dist_with(&s, vec![file_entry(b"etc/passwd.txt", b"x\n")], &m);
    s.refused(&dist, &["name 'etc/passwd\\x00.txt' contains a NUL byte"]);
}

#[test]
fn a_newline_in_a_pax_path_is_refused() {
    let s = Site::new();
    let mut m = pax(&[(b"path", b"etc/motd\nusr/bin/evil")]);
    m.extend(member(&Hdr::new(b"etc/motd", b'0', 2), b"x\n"));
    let dist = dist_with(&s, vec![file_entry(b"etc/motd", b"x\n")], &m);
    s.refused(
        &dist,
        &["name 'etc/motd\\x0ausr/bin/evil' contains a newline"],
    );
}

#[test]
fn a_newline_in_a_gnu_long_name_is_refused() {
    let s = Site::new();
    let mut m = gnu_long(b'L', b"usr/bin/a\nb");
    m.extend(member(&Hdr::new(b"usr/bin/ab", b'0', 2), b"x\n"));
    let dist = dist_with(&s, vec![file_entry(b"usr/bin/ab", b"x\n")], &m);
    s.refused(&dist, &["contains a newline"]);
}

#[test]
fn a_nul_in_a_link_target_is_refused() {
    let s = Site::new();
    let mut m = pax(&[(b"linkpath", b"/etc/shadow\0ignored")]);
    let mut h = Hdr::new(b"usr/bin/l", b'2', 0);
    h.link = b"x".to_vec();
    h.mode = 0o777;
    m.extend(member(&h, b""));
    let mut e = sysup::format::manifest::Entry::new(
        b"usr/bin/l".to_vec(),
        sysup::format::manifest::Kind::Symlink,
    );
    e.mode = 0o777;
    e.link = Some(b"x".to_vec());
    let dist = dist_with(&s, vec![e], &m);
    s.refused(&dist, &["link target", "contains a NUL byte"]);
}

#[test]
fn a_manifest_listing_a_newline_name_is_refused() {
    let s = Site::new();
    let name = b"etc/cron.d/job\n* * * * * root /tmp/x";
    let dist = dist_with(
        &s,
        vec![file_entry(name, b"x\n")],
        &member(&Hdr::new(b"etc/cron.d/job", b'0', 2), b"x\n"),
    );
    s.refused(&dist, &["MANIFEST", "contains a newline"]);
    info_refused(&dist, &["MANIFEST", "contains a newline"]);
}

#[test]
fn the_build_refuses_a_tree_with_a_newline_in_a_name() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/ok"), b"ok\n").unwrap();
    fs::write(tree.join("etc/evil\nname"), b"x\n").unwrap();
    let spec = t.path().join("world.toml");
    fs::write(&spec, "name = \"world\"\narch = \"x86_64\"\n").unwrap();
    let o = run_measured(
        sysup()
            .arg("build")
            .arg(&spec)
            .arg("--tree")
            .arg(&tree)
            .args(["--rev", "1", "--date", "20260101", "--out"])
            .arg(t.path().join("out")),
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("evil") && o.stderr.contains("contains a newline"),
        "{}",
        o.stderr
    );
}
