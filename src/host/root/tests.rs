//! Containment: links that try to leave the root, single components only,
//! attribute changes that never reach through a symlink.

use super::*;
use std::os::unix::fs::symlink;

/// A root with merged-/usr links, an absolute link, and links that try
/// to leave the root; and a secret directory beside it.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
    std::fs::create_dir_all(t.path().join("outside")).unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    symlink("/usr/lib", root.join("abs")).unwrap();
    symlink("../../outside", root.join("usr/up")).unwrap();
    symlink(t.path().join("outside"), root.join("escape")).unwrap();
    symlink("loop", root.join("loop")).unwrap();
    (t, root)
}

fn check(root: &Root, outside: &Path) {
    let mark = |d: &Dir, n: &[u8]| d.mkdir(n, 0o755).unwrap();
    mark(&root.resolve_dir(b"lib/x").unwrap(), b"via-lib");
    assert!(root.path().join("usr/lib/x/via-lib").is_dir());
    mark(&root.resolve_dir(b"abs").unwrap(), b"via-abs");
    assert!(
        root.path().join("usr/lib/via-abs").is_dir(),
        "absolute links are root-relative"
    );
    // `../../outside` climbs to the root and stops: it means <root>/outside
    assert!(
        root.resolve_dir(b"usr/up").is_err(),
        "no <root>/outside yet"
    );
    std::fs::create_dir(root.path().join("outside")).unwrap();
    mark(&root.resolve_dir(b"usr/up").unwrap(), b"via-up");
    assert!(root.path().join("outside/via-up").is_dir());
    // an absolute link to the real outside means <root>/<that path>: missing
    assert!(root.resolve_dir(b"escape").is_err());
    assert_eq!(
        std::fs::read_dir(outside).unwrap().count(),
        0,
        "nothing may land outside the root"
    );
    assert!(root.resolve_dir(b"loop").is_err());
    assert!(root.resolve_dir(b"missing/dir").is_err());
}

#[test]
fn symlinks_resolve_inside_the_root_with_openat2() {
    let (t, path) = setup();
    check(&Root::open(&path).unwrap(), &t.path().join("outside"));
}

#[test]
fn symlinks_resolve_inside_the_root_with_the_portable_walk() {
    let (t, path) = setup();
    let mut root = Root::open(&path).unwrap();
    root.force_walk = true;
    check(&root, &t.path().join("outside"));
}

#[test]
fn single_components_only_and_no_following() {
    let (_t, path) = setup();
    let root = Root::open(&path).unwrap();
    let d = root.dir();
    assert!(d.create_file(b"a/b").is_err());
    assert!(d.create_file(b"..").is_err());
    assert!(
        d.open_subdir(b"lib").is_err(),
        "open_subdir must not follow a symlink"
    );
    assert!(d.stat(b"lib").unwrap().unwrap().is_symlink());
    assert!(
        d.create_file(b"escape").is_err(),
        "O_EXCL|O_NOFOLLOW refuses an existing link"
    );
    d.remove_all(b"usr").unwrap();
    assert!(!path.join("usr").exists());
    assert!(
        d.stat(b"lib").unwrap().is_some(),
        "remove_all left siblings alone"
    );
    assert_eq!(
        d.list().unwrap(),
        vec![
            b"abs".to_vec(),
            b"escape".to_vec(),
            b"lib".to_vec(),
            b"loop".to_vec()
        ]
    );
}

#[test]
fn attribute_changes_never_reach_through_a_symlink() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (t, path) = setup();
    let secret = t.path().join("outside/secret");
    std::fs::write(&secret, b"x").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&secret, path.join("link")).unwrap();
    let before = std::fs::metadata(&secret).unwrap();
    let d = Root::open(&path).unwrap().dir;
    let e = d.chmod(b"link", 0o4755).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(d.set_xattr(b"link", "user.sysup", b"v").is_err());
    // owner and times of a symlink are its own: set on the link itself
    let (uid, gid) = (before.uid() + 1, before.gid() + 1);
    if nix::unistd::geteuid().is_root() {
        d.chown(b"link", u64::from(uid), u64::from(gid)).unwrap();
        let l = std::fs::symlink_metadata(path.join("link")).unwrap();
        assert_eq!((l.uid(), l.gid()), (uid, gid));
    }
    d.set_mtime(b"link", 1_000_000).unwrap();
    let l = std::fs::symlink_metadata(path.join("link")).unwrap();
    assert_eq!(l.mtime(), 1_000_000);
    let after = std::fs::metadata(&secret).unwrap();
    assert_eq!(
        (after.mode(), after.uid(), after.gid(), after.mtime()),
        (before.mode(), before.uid(), before.gid(), before.mtime())
    );
    assert!(crate::util::fsutil::read_xattrs(&secret)
        .unwrap()
        .is_empty());
    // on the object itself, each one works
    std::fs::write(path.join("file"), b"y").unwrap();
    d.chmod(b"file", 0o4750).unwrap();
    d.set_xattr(b"file", "user.sysup", b"v").unwrap();
    d.set_mtime(b"file", 2_000_000).unwrap();
    let f = std::fs::metadata(path.join("file")).unwrap();
    assert_eq!((f.mode() & 0o7777, f.mtime()), (0o4750, 2_000_000));
    assert_eq!(
        crate::util::fsutil::read_xattrs(&path.join("file")).unwrap()["user.sysup"],
        b"v"
    );
}

#[test]
fn a_pinned_child_takes_every_change_and_a_missing_one_is_none() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (_t, path) = setup();
    std::fs::write(path.join("usr/f"), b"x").unwrap();
    let root = Root::open(&path).unwrap();
    let d = root.resolve_dir(b"usr").unwrap();
    assert!(d.pin(b"missing").unwrap().is_none());
    let p = d.pin(b"f").unwrap().unwrap();
    assert!(p.stat().is_file());
    let (uid, gid) = (u64::from(p.stat().uid), u64::from(p.stat().gid));
    p.chown(uid, gid).unwrap();
    p.chmod(0o4751).unwrap();
    p.set_mtime(1_000_000).unwrap();
    let m = std::fs::metadata(path.join("usr/f")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4751);
    assert_eq!(m.mtime(), 1_000_000);
    // renamed away after the pin: the changes follow the object, not the name
    std::fs::rename(path.join("usr/f"), path.join("usr/g")).unwrap();
    p.chmod(0o640).unwrap();
    let g = std::fs::metadata(path.join("usr/g")).unwrap();
    assert_eq!(g.permissions().mode() & 0o7777, 0o640);
    // a pinned symlink is the link: mode and xattr changes are refused
    let l = root.dir().pin(b"lib").unwrap().unwrap();
    assert!(l.stat().is_symlink());
    assert!(l.chmod(0o600).is_err());
    assert!(l.set_xattr("user.k", b"v").is_err());
    l.set_mtime(2_000_000).unwrap();
    let lm = std::fs::symlink_metadata(path.join("lib")).unwrap();
    assert_eq!(lm.mtime(), 2_000_000);
}

#[test]
fn a_pinned_child_loses_only_the_xattrs_asked_and_never_a_links_targets() {
    use crate::util::fsutil::read_xattrs_where;
    let (t, path) = setup();
    let all = |p: &Path| read_xattrs_where(p, |_| true).unwrap();
    let d = Root::open(&path).unwrap().dir;
    std::fs::write(path.join("file"), b"y").unwrap();
    let p = d.pin(b"file").unwrap().unwrap();
    p.set_xattr("user.a", b"1").unwrap();
    p.set_xattr("user.b", b"2").unwrap();
    let removed = p.remove_xattrs_where(|n| n == "user.a").unwrap();
    assert_eq!(removed, ["user.a"]);
    let left: Vec<String> = all(&path.join("file")).into_keys().collect();
    assert_eq!(left, ["user.b"]);
    // nothing to remove is no error
    assert!(p.remove_xattrs_where(|n| n == "user.a").unwrap().is_empty());

    // a link is refused, and its target keeps everything
    let secret = t.path().join("outside/secret");
    std::fs::write(&secret, b"x").unwrap();
    crate::util::fsutil::set_xattr(&secret, "user.k", b"v").unwrap();
    symlink(&secret, path.join("link")).unwrap();
    let l = d.pin(b"link").unwrap().unwrap();
    let e = l.remove_xattrs_where(|_| true).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(all(&secret).len(), 1);

    // an object pinned by O_PATH only (a fifo) lists and loses them through
    // /proc/self/fd; trusted.* on a fifo needs root
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        eprintln!("SKIPPED: trusted.* xattrs on a fifo need root");
        return;
    }
    nix::unistd::mkfifo(
        &path.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let f = d.pin(b"fifo").unwrap().unwrap();
    f.set_xattr("trusted.a", b"1").unwrap();
    f.set_xattr("trusted.b", b"2").unwrap();
    assert_eq!(
        f.remove_xattrs_where(|n| n == "trusted.b").unwrap(),
        ["trusted.b"]
    );
    let left: Vec<String> = all(&path.join("fifo")).into_keys().collect();
    assert_eq!(left, ["trusted.a"]);
}
