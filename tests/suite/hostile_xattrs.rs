//! Threat: extended attributes and owners a host will not set. A dist
//! whose MANIFEST gives a file an attribute the host refuses — past
//! Linux's bounds (a value over 64 KiB, a name in no namespace), or one
//! this host's kernel or filesystem turns down (a malformed file
//! capability), or an owner its user namespace does not map — once
//! verified and then failed in the commit, where the attributes of an
//! unchanged file are set in place: the host was left with a pending apply
//! that no re-run could finish. Now each is refused before the commit point, with
//! an error naming the dist, and the root exactly as it was: from the
//! MANIFEST for what no Linux takes, by a probe beside the file for what
//! this host does not (`Stager::in_place`; for a file an unnamed one, which
//! a dry run makes too), and when a new file's attributes are set on its
//! staged copy.

use crate::common;
use crate::hostile_support;

use common::*;
use hostile_support::*;
use sysup::util::fsutil::{read_xattrs_where, set_xattr};

/// Whether `dir`'s filesystem takes `user.*` attributes on a file and a
/// directory (else SKIPPED).
fn user_xattrs(dir: &std::path::Path) -> bool {
    let (f, d) = (dir.join("probe-file"), dir.join("probe-dir"));
    std::fs::write(&f, b"").unwrap();
    std::fs::create_dir(&d).unwrap();
    let set = set_xattr(&f, "user.sysup-probe", b"x").and(set_xattr(&d, "user.sysup-probe", b"x"));
    std::fs::remove_file(&f).unwrap();
    std::fs::remove_dir(&d).unwrap();
    set.map_err(|e| skip(&format!("no user.* xattrs here: {e}")))
        .is_ok()
}

/// The installed small world again as `world-2-20260102`, with `path`
/// given `xattrs` and, if `data` is given, new content.
fn world2(
    s: &Site,
    path: &str,
    xattrs: &[(&str, Vec<u8>)],
    data: Option<&[u8]>,
) -> std::path::PathBuf {
    let mut w = small_world();
    for c in &mut w {
        if c.entry.path == path.as_bytes() {
            if let Some(d) = data {
                *c = Crafted::file(path, d);
            }
            for (k, v) in xattrs {
                c.entry.xattrs.insert(k.to_string(), v.clone());
            }
        }
    }
    craft_dist(s.dir(), "world-2-20260102", "x86_64", &w)
}

#[test]
fn an_xattr_no_linux_takes_is_refused_from_the_manifest() {
    for (k, v, why) in [
        (
            "user.big",
            vec![b'x'; 70_000],
            "70000 bytes, more than the 65536 Linux takes",
        ),
        (
            "bogus",
            b"v".to_vec(),
            "xattr name 'bogus' is not one Linux takes",
        ),
    ] {
        let s = Site::new();
        let dist = world2(&s, "usr/bin/tool", &[(k, v)], None);
        s.refused(&dist, &["MANIFEST", why]);
    }
}

#[test]
fn an_xattr_this_host_refuses_is_refused_before_the_commit() {
    // A file capability of one byte: well within Linux's bounds, refused
    // by the kernel when set (EINVAL). On an unchanged file it is set in
    // place (the probe); on a changed one, on its staged copy.
    let bad_cap = ("security.capability", vec![1u8]);
    for data in [None, Some(&b"#!/bin/sh\necho tool 2\n"[..])] {
        let s = Site::new();
        let dist = world2(&s, "usr/bin/tool", std::slice::from_ref(&bad_cap), data);
        let why = "gives 'usr/bin/tool' the extended attribute 'security.capability', which this host does not take";
        if data.is_none() {
            // the preview says so too: a file's probe has no name, so a
            // dry run makes it as well, and leaves nothing
            let o = run_measured(
                sysup()
                    .args(["apply", "--dry-run", "--root"])
                    .arg(&s.root)
                    .arg(&dist),
            );
            check_refusal(&o, &dist, &[why]);
            assert_unchanged(&s.root, &s.before);
        }
        let err = s.refused(&dist, &[why]);
        assert!(!err.contains("pending"), "{err}");
        // nothing is left to finish: the next good dist applies at once
        let good = world2(&s, "usr/bin/tool", &[], None);
        apply_ok(&s.root, &[&good]);
        let status = ok(sysup().arg("status").arg("--root").arg(&s.root));
        assert!(!status.contains("pending"), "{status}");
        assert!(status.contains("world-2-20260102"), "{status}");
    }
}

#[test]
fn a_directory_whose_xattr_the_host_refuses_is_refused_before_the_commit() {
    // a directory kept in place: its probe is a directory
    let s = Site::new();
    let dist = world2(&s, "usr/bin", &[("security.capability", vec![1u8])], None);
    s.refused(
        &dist,
        &["gives 'usr/bin' the extended attribute 'security.capability', which this host does not take"],
    );
}

#[test]
fn attributes_the_host_takes_still_go_in_place() {
    // The probe must not change what an apply does with good attributes:
    // set on the live file (same inode), no probe left behind.
    let s = Site::new();
    if !user_xattrs(s.dir()) {
        return;
    }
    let ino =
        |p: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(s.root.join(p)).unwrap());
    let before = ino("usr/bin/tool");
    let dist = world2(
        &s,
        "usr/bin/tool",
        &[("user.origin", b"dist".to_vec())],
        None,
    );
    apply_ok(&s.root, &[&dist]);
    assert_eq!(
        ino("usr/bin/tool"),
        before,
        "an attribute-only change keeps the inode"
    );
    let got = read_xattrs_where(&s.root.join("usr/bin/tool"), |n| n == "user.origin").unwrap();
    assert_eq!(
        got.get("user.origin").map(Vec::as_slice),
        Some(&b"dist"[..])
    );
    assert!(leftovers(&s.root).is_empty(), "{:?}", leftovers(&s.root));
}

#[test]
fn an_owner_this_host_does_not_map_is_refused_before_the_commit() {
    // In a user namespace that maps only root, a chown to uid 5 fails
    // (EINVAL). The dist gives an unchanged file that owner: set in place
    // by the commit, so probed on an unnamed file before it.
    let unshare = |args: &[&str]| {
        std::process::Command::new("unshare")
            .args(["--user", "--map-root-user"])
            .args(args)
            .output()
    };
    if !is_root() {
        return skip("a root mapped into a user namespace needs root");
    }
    match unshare(&["true"]) {
        Ok(o) if o.status.success() => {}
        other => return skip(&format!("no user namespaces here: {other:?}")),
    }
    let s = Site::new();
    let mut w = small_world();
    for c in &mut w {
        if c.entry.path == b"usr/bin/tool" {
            c.entry.uid = 5;
        }
    }
    let dist = craft_dist(s.dir(), "world-2-20260102", "x86_64", &w);
    let o = run_measured(
        std::process::Command::new("unshare")
            .args(["--user", "--map-root-user"])
            .arg(env!("CARGO_BIN_EXE_sysup"))
            .args(["apply", "--root"])
            .arg(&s.root)
            .arg(&dist),
    );
    check_refusal(
        &o,
        &dist,
        &["gives 'usr/bin/tool' the owner 5:0, which this host does not take"],
    );
    assert_unchanged(&s.root, &s.before);
    // outside the namespace the same dist applies
    apply_ok(&s.root, &[&dist]);
}

#[test]
fn a_directory_probe_left_by_a_crash_goes_with_the_undo() {
    // A directory's xattrs are probed on a directory under a staged name
    // (no unnamed directories exist): killed right after it is made, the
    // next run removes it with the rest of the staging and applies.
    let s = Site::new();
    if !user_xattrs(s.dir()) {
        return;
    }
    let dist = world2(&s, "usr/bin", &[("user.note", b"dist".to_vec())], None);
    let o = run(sysup()
        .env("SYSUP_CRASH_AT", "stage-file:1")
        .args(["apply", "--root"])
        .arg(&s.root)
        .arg(&dist));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGKILL),
        "{o:?}"
    );
    let left = leftovers(&s.root);
    assert!(
        left.iter().any(|l| l.ends_with("-xattrs")),
        "the probe is what the crash left: {left:?}"
    );
    apply_ok(&s.root, &[&dist]);
    assert!(leftovers(&s.root).is_empty(), "{:?}", leftovers(&s.root));
    let got = read_xattrs_where(&s.root.join("usr/bin"), |n| n == "user.note").unwrap();
    assert_eq!(got.get("user.note").map(Vec::as_slice), Some(&b"dist"[..]));
}
