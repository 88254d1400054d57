//! Threat: the key that guards every update read from outside the root.
//! `pubkey` in `<root>/etc/sysup.conf` (and the default
//! `<root>/etc/sysup/minisign.pub`) name a file *inside* the root; a
//! prepared root whose configuration says `pubkey = "../../x"`, or whose
//! key path runs through a symlink to a host path, must not make sysup trust
//! a key file of the host (or of another root). Such a path is refused with
//! an error naming it; `--pubkey FILE` on the command line stays a host path,
//! the admin's own choice.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Output;

use crate::mirror_support;
use mirror_support::*;

fn conf(root: &Path, pubkey: &str) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/sysup.conf"),
        format!("[mirror]\npubkey = \"{pubkey}\"\n"),
    )
    .unwrap();
}

/// The host's snapshot retaken once the test prepared its root.
fn prepared(mut h: Host) -> Host {
    h.before = snapshot(&h.root);
    h
}

fn run(root: &Path, url: &str, args: &[&str]) -> Output {
    common::run(update_command(root, url).args(args))
}

/// A host at revision 1 whose root sits two levels below the world's temp
/// dir, and the world's key at `<tmp>/x`: what `../../x` reaches from it.
fn setup(w: &World, name: &str) -> Host {
    let h = Host::at(w, &format!("{name}/host"), 1);
    fs::copy(&w.keys.public, w.tmp.path().join("x")).unwrap();
    h
}

#[test]
fn a_configured_key_path_may_not_leave_the_root() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    for (i, p) in ["../../x", "/../../x", "etc/../../../x"].iter().enumerate() {
        let host = setup(&w, &format!("dotdot{i}"));
        conf(&host.root, p);
        let host = prepared(host);
        let outside = common::snapshot(w.tmp.path());
        let o = run(&host.root, &nginx.url(), &["--download-only"]);
        eprintln!("{}", refused(&o, &["sysup.conf", "pubkey", p, ".."]));
        host.unchanged(1);
        assert!(downloads(&host.root).is_empty());
        assert_eq!(serial(&host.root), None);
        assert!(common::diff_snapshots(&outside, &common::snapshot(w.tmp.path())).is_empty());
    }
}

#[test]
fn a_key_path_through_a_symlink_out_of_the_root_is_refused() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let x = w.tmp.path().join("x");

    // The key file itself a link to a host path.
    let host = setup(&w, "filelink");
    fs::create_dir_all(host.root.join("etc/sysup")).unwrap();
    symlink(&x, host.root.join("etc/sysup/k.pub")).unwrap();
    conf(&host.root, "/etc/sysup/k.pub");
    let host = prepared(host);
    let o = run(&host.root, &nginx.url(), &["--download-only"]);
    eprintln!("{}", refused(&o, &["etc/sysup/k.pub", "symbolic link"]));
    host.unchanged(1);
    assert_eq!(serial(&host.root), None);

    // The default key's directory a link to a host directory.
    let host = setup(&w, "dirlink");
    let keys = w.tmp.path().join("hostkeys");
    fs::create_dir_all(&keys).unwrap();
    fs::copy(&w.keys.public, keys.join("minisign.pub")).unwrap();
    fs::create_dir_all(host.root.join("etc")).unwrap();
    symlink(&keys, host.root.join("etc/sysup")).unwrap();
    let host = prepared(host);
    let o = run(&host.root, &nginx.url(), &["--download-only"]);
    eprintln!("{}", refused(&o, &["etc/sysup/minisign.pub"]));
    host.unchanged(1);
    assert_eq!(serial(&host.root), None);
}

#[test]
fn keys_inside_the_root_and_on_the_command_line_work() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");

    // Configured, inside the root (absolute means root-relative).
    let host = setup(&w, "inside");
    fs::create_dir_all(host.root.join("etc/keys")).unwrap();
    fs::copy(&w.keys.public, host.root.join("etc/keys/k.pub")).unwrap();
    conf(&host.root, "/etc/keys/k.pub");
    json_ok(&run(
        &host.root,
        &nginx.url(),
        &["--json", "--download-only"],
    ));

    // The default place, reached through a link that stays in the root
    // (a merged layout: etc/sysup -> ../usr/share/sysup).
    let host = setup(&w, "default");
    fs::create_dir_all(host.root.join("usr/share/sysup")).unwrap();
    fs::copy(
        &w.keys.public,
        host.root.join("usr/share/sysup/minisign.pub"),
    )
    .unwrap();
    fs::create_dir_all(host.root.join("etc")).unwrap();
    symlink("../usr/share/sysup", host.root.join("etc/sysup")).unwrap();
    json_ok(&run(
        &host.root,
        &nginx.url(),
        &["--json", "--download-only"],
    ));

    // --pubkey: a host path, outside the root, is the admin's choice; it
    // wins over a configuration that would be refused.
    let host = setup(&w, "cli");
    conf(&host.root, "../../x");
    let x = w.tmp.path().join("x");
    json_ok(&run(
        &host.root,
        &nginx.url(),
        &["--json", "--download-only", "--pubkey", x.to_str().unwrap()],
    ));
}
