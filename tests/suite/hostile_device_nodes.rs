//! Threat: device nodes where the spec does not allow them — a dist that
//! ships `usr/bin/mem` as char 1,1 (the machine's memory) or a disk's
//! block device under `home/`, handing any local user the kernel's doors.
//!
//! Policy (docs/decisions.md): character and block devices only at
//! `dev/**`, unless the spec's `devices` globs (build host) and the host's
//! `[apply] devices` in `etc/sysup.conf` (host) allow more; the build refuses
//! a tree with one elsewhere, the host refuses such a dist before anything of
//! it is written, and nothing in a dist can widen what the host allows.

use crate::common;
use crate::hostile_support;

use std::fs;
use std::path::Path;

use common::*;
use hostile_support::*;
use sysup::format::manifest::Kind;

fn device(path: &str, kind: Kind, dev: (u32, u32)) -> Crafted {
    let mut c = Crafted::file(path, b"");
    c.entry.kind = kind;
    c.entry.sha256 = None;
    c.entry.size = 0;
    c.entry.mode = 0o666;
    c.entry.dev = Some(dev);
    c
}

fn with_world(extra: Vec<Crafted>) -> Vec<Crafted> {
    let mut v = small_world();
    v.push(Crafted::file("usr/bin/newtool", b"new\n"));
    v.extend(extra);
    v
}

/// Mknod needs root; outside CI a non-root run says SKIPPED.
fn skip_unless_root(what: &str) -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests as root"
    );
    eprintln!("SKIPPED: {what} needs root");
    true
}

#[test]
fn a_char_device_outside_dev_is_refused_before_anything_is_written() {
    let s = Site::new();
    let dist = craft_dist(
        s.dir(),
        "world-2-20260102",
        "x86_64",
        &with_world(vec![
            Crafted::dir("usr/sbin"),
            device("usr/sbin/mem", Kind::Char, (1, 1)),
        ]),
    );
    s.refused(
        &dist,
        &[
            "char device at 'usr/sbin/mem' (1,1)",
            "dev/**",
            "etc/sysup.conf",
        ],
    );
    // "before anything is written": with sysup set to kill itself at the
    // first staged file, it still ends with the refusal, not the kill.
    let o = run_measured(
        sysup()
            .env("SYSUP_CRASH_AT", "stage-file")
            .arg("apply")
            .arg("--root")
            .arg(&s.root)
            .arg(&dist),
    );
    assert_eq!(o.code, Some(1), "staging began: {}", o.stderr);
    assert_unchanged(&s.root, &s.before);
}

#[test]
fn a_block_device_in_a_home_directory_is_refused() {
    let s = Site::new();
    let dist = craft_dist(
        s.dir(),
        "world-2-20260102",
        "x86_64",
        &with_world(vec![
            Crafted::dir("home"),
            Crafted::dir("home/user"),
            device("home/user/disk", Kind::Block, (8, 0)),
        ]),
    );
    s.refused(&dist, &["block device at 'home/user/disk' (8,0)"]);
}

#[test]
fn a_dist_cannot_grant_itself_devices() {
    // The only place a dist could claim a wider policy is its DIST, whose
    // keys are fixed: an extra `devices` key makes it no dist at all.
    let s = Site::new();
    let members = with_world(vec![device("usr/bin/mem", Kind::Char, (1, 1))]);
    let tar_dist = craft_dist(s.dir(), "world-2-20260102", "x86_64", &members);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(fs::File::open(&tar_dist).unwrap()),
        &mut tar,
    )
    .unwrap();
    // rewrite the DIST member with one more key
    let segs = {
        let mut seg = sysup::format::archive::segment::Segmenter::new(&tar[..], "t");
        let mut v = Vec::new();
        while let Some(sysup::format::archive::segment::Item::Member(m)) = seg.next_item().unwrap()
        {
            v.push((m.offset as usize, m.end() as usize));
        }
        v
    };
    let dist_text = format!(
        "format = 1\nid = \"world-2-20260102\"\narch = \"x86_64\"\nentries = {}\ndevices = [\"**\"]\n",
        members.len()
    );
    let mut forged = member(
        &Hdr::new(b".sysup/DIST", b'0', dist_text.len() as u64),
        dist_text.as_bytes(),
    );
    forged.extend_from_slice(&tar[segs[0].1..]);
    fs::remove_file(&tar_dist).unwrap();
    let dist = gz_tar(s.dir(), "world-2-20260102.tar.gz", &forged);
    s.refused(&dist, &["DIST", "devices"]);
}

#[test]
fn the_host_can_allow_more_device_paths() {
    if skip_unless_root("creating device nodes") {
        return;
    }
    let s = Site::new();
    let dist = craft_dist(
        s.dir(),
        "world-2-20260102",
        "x86_64",
        &with_world(vec![
            Crafted::dir("srv"),
            Crafted::dir("srv/jail"),
            device("srv/jail/null", Kind::Char, (1, 3)),
        ]),
    );
    // default: refused
    s.refused(&dist, &["srv/jail/null"]);
    // the admin allows it: installed
    fs::write(
        s.root.join("etc/sysup.conf"),
        "[apply]\ndevices = [\"dev/**\", \"srv/jail/**\"]\n",
    )
    .unwrap();
    apply_ok(&s.root, &[&dist]);
    let md = fs::symlink_metadata(s.root.join("srv/jail/null")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &md.file_type()
    ));
}

#[test]
fn the_build_refuses_a_device_outside_the_specs_globs() {
    if skip_unless_root("creating device nodes") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    fs::create_dir_all(tree.join("dev")).unwrap();
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    let mk = |p: &Path, dev| {
        nix::sys::stat::mknod(
            p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            dev,
        )
        .unwrap()
    };
    mk(&tree.join("dev/null"), nix::sys::stat::makedev(1, 3));
    mk(&tree.join("usr/bin/mem"), nix::sys::stat::makedev(1, 1));
    let spec = t.path().join("world.toml");
    let build = |spec_text: &str| {
        fs::write(&spec, spec_text).unwrap();
        run_measured(
            sysup()
                .arg("build")
                .arg(&spec)
                .arg("--tree")
                .arg(&tree)
                .args(["--rev", "1", "--date", "20260101", "--out"])
                .arg(t.path().join("out")),
        )
    };
    let o = build("name = \"world\"\narch = \"x86_64\"\n");
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("usr/bin/mem")
            && o.stderr
                .contains("char device outside the spec's `devices` globs (dev/**)"),
        "{}",
        o.stderr
    );
    assert!(!t.path().join("out/world-1-20260101.tar.gz").exists());
    // The spec may allow it (the host still decides for itself).
    let o = build("name = \"world\"\narch = \"x86_64\"\ndevices = [\"dev/**\", \"usr/bin/mem\"]\n");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}
