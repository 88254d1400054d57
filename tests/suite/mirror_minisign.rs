//! Interoperability with the real `minisign` tool: it verifies what
//! `sysup publish --sign` signed; an INDEX it signed (`minisign -S`) is
//! accepted by `sysup update`; password-protected keys from `minisign -G`
//! sign with `--password-file` (a wrong password is a unit test in
//! src/mirror/sign.rs: scrypt at minisign's cost takes seconds); legacy
//! signatures (`-l`) are refused.

use std::fs;
use std::process::{Command, Stdio};

use crate::mirror_support;
use mirror_support::*;

#[test]
fn minisign_verifies_what_sysup_signed() {
    let w = World::new(&[1, 2], &[1]);
    let out = common::ok(
        Command::new("minisign")
            .args(["-V", "-p"])
            .arg(&w.keys.public)
            .arg("-m")
            .arg(w.file("INDEX")),
    );
    assert!(
        out.contains("Signature and comment signature verified"),
        "{out}"
    );
    let serial = index_serial(&w.file("INDEX"));
    assert!(out.contains(&format!("serial:{serial}")), "{out}");
}

#[test]
fn an_index_signed_by_minisign_is_accepted() {
    let w = World::new(&[1, 2], &[1]);
    common::ok(common::sysup().arg("publish").arg(&w.pub_dir)); // unsigned
    common::ok(
        Command::new("minisign")
            .args(["-S", "-s"])
            .arg(&w.keys.secret)
            .arg("-m")
            .arg(w.file("INDEX"))
            .stdin(Stdio::null()),
    );
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let j = json_ok(&update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--json"],
    ));
    assert_eq!(j["result"], "applied");
    assert_eq!(installed(&host.root).as_deref(), Some(id(2).as_str()));
}

#[test]
fn a_legacy_signature_is_refused() {
    let w = World::new(&[1, 2], &[1]);
    common::ok(
        Command::new("minisign")
            .args(["-S", "-l", "-s"])
            .arg(&w.keys.secret)
            .arg("-m")
            .arg(w.file("INDEX"))
            .stdin(Stdio::null()),
    );
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &["legacy"]);
    host.unchanged(1);
}

#[test]
fn a_password_protected_key_signs_with_a_password_file() {
    let w = World::new(&[1, 2], &[1]);
    let dir = w.tmp.path();
    let (public, secret) = (dir.join("enc.pub"), dir.join("enc.key"));
    let mut g = Command::new("minisign")
        .args(["-G", "-f", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    g.stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\ncorrect horse\n")
        .unwrap();
    assert!(g.wait().unwrap().success());
    fs::write(dir.join("pw"), "correct horse\n").unwrap();
    let before = fs::read(w.file("INDEX")).unwrap();
    common::ok(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&secret)
            .arg("--password-file")
            .arg(dir.join("pw"))
            .stdin(Stdio::null()),
    );
    assert_ne!(fs::read(w.file("INDEX")).unwrap(), before, "a new serial");
    common::ok(
        Command::new("minisign")
            .args(["-V", "-p"])
            .arg(&public)
            .arg("-m")
            .arg(w.file("INDEX")),
    );
    // without a password and without a terminal: refused, naming the way out
    let o = common::run(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&secret)
            .stdin(Stdio::null()),
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--password-file"),
        "{o:?}"
    );
}
