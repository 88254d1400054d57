//! Threat: a dist that tries to create or write outside `--root` — `..` and
//! absolute members, a symlink followed by a member through it, a hard link
//! to a file outside the dist, duplicate members, a member in sysup's own
//! state, a plain tarball posing as a dist — and a root whose own symlink
//! stands where the dist has a directory. Each hostile dist is refused with
//! an error naming it, the root unchanged, nothing written beside it, and
//! the peak RSS under `common::RSS_LIMIT_KIB` (checked by `apply_fails`).

use crate::common;

use std::fs;
use std::path::PathBuf;

use common::*;
use sysup::format::manifest::Kind;

struct Setup {
    t: tempfile::TempDir,
    before: std::collections::BTreeMap<Vec<u8>, Node>,
}

impl Setup {
    /// A root with world 1 installed, beside an empty `outside` directory.
    fn new() -> Setup {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("outside")).unwrap();
        fs::create_dir(t.path().join("root")).unwrap();
        apply_ok(&t.path().join("root"), &[&chain().dists[0]]);
        let before = guarded_snapshot(&t.path().join("root"));
        Setup { t, before }
    }
    fn root(&self) -> PathBuf {
        self.t.path().join("root")
    }
    fn outside(&self) -> PathBuf {
        self.t.path().join("outside")
    }
    fn refused(&self, members: &[Crafted], needle: &str) {
        let dist = craft_dist(self.t.path(), "world-9-20260109", "x86_64", members);
        let e = apply_fails(&self.root(), &[&dist]);
        assert!(e.contains(needle), "expected '{needle}' in: {e}");
        assert!(
            e.contains("world-9-20260109.tar.gz"),
            "the error must name the dist: {e}"
        );
        assert_unchanged(&self.root(), &self.before);
        assert_eq!(
            fs::read_dir(self.outside()).unwrap().count(),
            0,
            "something was written outside the root"
        );
        assert!(
            leftovers(&self.root()).is_empty(),
            "{:?}",
            leftovers(&self.root())
        );
        fs::remove_file(dist).unwrap();
    }
}

fn unlisted(mut c: Crafted) -> Crafted {
    c.unlisted = true;
    c
}

#[test]
fn dot_dot_members() {
    let s = Setup::new();
    // unlisted: the MANIFEST cannot even name it safely
    s.refused(
        &[
            Crafted::dir("etc"),
            unlisted(Crafted::file("../outside/pwned", b"x")),
        ],
        "not listed in the MANIFEST",
    );
    // listed: the MANIFEST itself is refused
    s.refused(
        &[
            Crafted::dir("etc"),
            Crafted::file("etc/../../outside/pwned", b"x"),
        ],
        "unsafe path",
    );
}

#[test]
fn absolute_members() {
    let s = Setup::new();
    let abs = format!("{}/pwned", s.outside().display());
    s.refused(
        &[Crafted::dir("etc"), unlisted(Crafted::file(&abs, b"x"))],
        "not listed in the MANIFEST",
    );
    s.refused(
        &[Crafted::dir("etc"), Crafted::file(&abs, b"x")],
        "unsafe path",
    );
}

#[test]
fn a_member_through_the_dists_own_symlink() {
    let s = Setup::new();
    let out = s.outside().display().to_string();
    s.refused(
        &[
            Crafted::symlink("escape", &out),
            Crafted::file("escape/pwned", b"x"),
        ],
        "below 'escape', which is a symlink",
    );
    s.refused(
        &[
            Crafted::symlink("up", "../outside"),
            Crafted::file("up/pwned", b"x"),
        ],
        "below 'up', which is a symlink",
    );
}

#[test]
fn hard_links_out_of_the_dist() {
    let s = Setup::new();
    fs::write(s.outside().join("target"), b"secret").unwrap();
    let mut out_link = Crafted::file("evil", b"");
    out_link.entry.kind = Kind::Hardlink;
    out_link.entry.link = Some(b"../outside/target".to_vec());
    out_link.data.clear();
    let b = s.before.clone();
    // not a safe MANIFEST path
    let dist = craft_dist(s.t.path(), "world-9-20260109", "x86_64", &[out_link]);
    let e = apply_fails(&s.root(), &[&dist]);
    assert!(e.contains("unsafe"), "{e}");
    assert_unchanged(&s.root(), &b);
    fs::remove_file(dist).unwrap();
    // a root file the dist does not ship (etc/shadow is installed, not shipped here)
    let mut shadow_link = Crafted::file("etc/stolen", b"");
    shadow_link.entry.kind = Kind::Hardlink;
    shadow_link.entry.link = Some(b"etc/shadow".to_vec());
    shadow_link.data.clear();
    let dist = craft_dist(
        s.t.path(),
        "world-9-20260109",
        "x86_64",
        &[Crafted::dir("etc"), shadow_link],
    );
    let e = apply_fails(&s.root(), &[&dist]);
    assert!(e.contains("not an earlier file of this dist"), "{e}");
    assert_unchanged(&s.root(), &b);
    assert_eq!(fs::read(s.outside().join("target")).unwrap(), b"secret");
}

#[test]
fn duplicate_members() {
    let s = Setup::new();
    let f = Crafted::file("etc/twice", b"x");
    let mut again = Crafted::file("etc/twice", b"x");
    again.unlisted = true;
    s.refused(&[Crafted::dir("etc"), f, again], "appears twice");
}

#[test]
fn members_in_sysups_own_state() {
    let s = Setup::new();
    s.refused(
        &[
            Crafted::dir("var"),
            Crafted::dir("var/db"),
            Crafted::dir("var/db/sysup"),
            Crafted::file("var/db/sysup/installed-by-evil", b"x"),
        ],
        "state directory",
    );
}

#[test]
fn a_plain_tarball_posing_as_a_dist() {
    let s = Setup::new();
    // a GNU tar archive with a traversal member, named like a dist
    let src = s.t.path().join("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/x"), b"x").unwrap();
    let dist = s.t.path().join("world-9-20260109.tar.gz");
    ok(std::process::Command::new("tar")
        .arg("-czf")
        .arg(&dist)
        .arg("-C")
        .arg(&src)
        .args(["--transform", "s,^a,../outside,", "a"]));
    let e = apply_fails(&s.root(), &[&dist]);
    assert!(e.contains("not a sysup dist"), "{e}");
    assert_unchanged(&s.root(), &s.before);
    assert_eq!(fs::read_dir(s.outside()).unwrap().count(), 0);
}

#[test]
fn a_roots_own_symlink_where_the_dist_has_a_directory_is_replaced_not_followed() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(root.join("usr")).unwrap();
    fs::create_dir(&outside).unwrap();
    // the dist ships usr/bin as a directory; here it is a link to outside
    std::os::unix::fs::symlink(&outside, root.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("../../outside", root.join("usr/lib")).unwrap();
    apply_ok(&root, &[&c.dists[0]]);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through the links"
    );
    assert!(fs::symlink_metadata(root.join("usr/bin")).unwrap().is_dir());
    assert_root_is(&root, &c.trees[0]);
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}

#[test]
fn state_directory_behind_a_hostile_link_stays_inside() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(root.join("var")).unwrap();
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink("../../outside", root.join("var/db")).unwrap();
    let _ = sysup()
        .arg("apply")
        .arg("--root")
        .arg(&root)
        .arg(&c.dists[0])
        .output()
        .unwrap();
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}
