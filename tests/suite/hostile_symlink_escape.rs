//! Threat: a symlink followed by a member through it — the dist ships
//! `a -> /elsewhere` (or `../..`) and then `a/x`, or `a/b/x` without ever
//! naming `a/b`, hoping the writer of `a/b/x` follows `a` out of the root;
//! or the root itself holds such a link where the dist writes. The MANIFEST
//! may not list anything below one of its own non-directories, and every
//! directory the dist does not describe is resolved inside the root.
//! (`tests/suite/target_path_safety.rs` has the direct-parent cases too.)

use crate::common;
use crate::hostile_support;

use std::fs;

use common::*;
use hostile_support::*;

fn world2(s: &Site, extra: Vec<Crafted>) -> std::path::PathBuf {
    let mut v = small_world();
    v.extend(extra);
    craft_dist(s.dir(), "world-2-20260102", "x86_64", &v)
}

#[test]
fn a_member_below_the_dists_own_symlink() {
    let s = Site::new();
    let out = s.outside.display().to_string();
    for (link, member, needle) in [
        (
            "escape",
            "escape/pwned",
            "below 'escape', which is a symlink",
        ),
        (
            "escape",
            "escape/deeper/pwned",
            "below 'escape', which is a symlink",
        ),
        (
            "up",
            "up/up/outside/pwned",
            "below 'up', which is a symlink",
        ),
    ] {
        let target = if link == "up" { "../.." } else { &out };
        let dist = world2(
            &s,
            vec![
                Crafted::symlink(link, target),
                Crafted::file(member, b"pwned\n"),
            ],
        );
        s.refused(&dist, &["MANIFEST", needle]);
        info_refused(&dist, &["MANIFEST", needle]);
    }
}

#[test]
fn a_member_below_a_file_of_the_dist() {
    let s = Site::new();
    let dist = world2(
        &s,
        vec![Crafted::file("usr/bin/tool/x", b"x\n")], // usr/bin/tool is a file
    );
    s.refused(&dist, &["below 'usr/bin/tool', which is a file"]);
}

#[test]
fn the_roots_own_symlinks_resolve_inside_the_root() {
    // The host's own layout links (merged /usr, or planted ones pointing
    // out) are followed only inside the root: an absolute target means
    // root-relative, and `..` stops at the root.
    let s = Site::new();
    std::os::unix::fs::symlink(&s.outside, s.root.join("abs")).unwrap();
    let before = guarded_snapshot(&s.root);
    let dist = world2(&s, vec![Crafted::file("abs/pwned", b"x\n")]);
    // `abs` means <root>/<outside's path>, which does not exist: refused
    let err = apply_fails(&s.root, &[&dist]);
    assert!(
        err.contains("root/abs") && err.contains("No such file"),
        "{err}"
    );
    assert_unchanged(&s.root, &before);
    assert_eq!(fs::read_dir(&s.outside).unwrap().count(), 0);
    // `rel -> ../outside` means <root>/outside, here a real directory
    std::os::unix::fs::symlink("../outside", s.root.join("rel")).unwrap();
    fs::create_dir(s.root.join("outside")).unwrap();
    fs::remove_file(s.root.join("abs")).unwrap();
    let dist = world2(&s, vec![Crafted::file("rel/pwned", b"x\n")]);
    apply_ok(&s.root, &[&dist]);
    assert!(s.root.join("outside/pwned").is_file());
    assert_eq!(
        fs::read_dir(&s.outside).unwrap().count(),
        0,
        "written outside"
    );
    assert!(leftovers(&s.root).is_empty(), "{:?}", leftovers(&s.root));
}
