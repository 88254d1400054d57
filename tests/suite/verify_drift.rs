//! `sysup verify` does not cry wolf: on a correctly configured host — the
//! host configuration and the mirror's key installed as docs/mirrors.md
//! says, an admin's own files beside the shipped ones, a config file edited
//! — it exits 0; a tampered binary or a missing one is drift, exit 1. Files
//! no dist ships are listed with `--extras` and in `--json`, never drift;
//! sysup's own files are never listed. A root where nothing is installed is
//! said to be one, exit 1, and reading it writes nothing.

use crate::common;

use std::fs;

use common::*;

fn verify(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    run(sysup().arg("verify").args(args).arg("--root").arg(root))
}

#[test]
fn a_configured_host_with_extra_files_verifies_clean() {
    let (t, _) = installed_root(2);
    let root = t.path();
    fs::write(
        root.join("etc/sysup.conf"),
        "[mirror]\nurl = \"http://127.0.0.1:1/\"\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("etc/sysup")).unwrap();
    fs::write(
        root.join("etc/sysup/minisign.pub"),
        "untrusted comment: k\nRW...\n",
    )
    .unwrap();
    fs::write(root.join("etc/myapp.conf"), "port = 8080\n").unwrap();
    fs::create_dir_all(root.join("home/alice")).unwrap();
    fs::write(root.join("home/alice/notes"), "mine\n").unwrap();
    fs::write(root.join("usr/bin/site-tool"), "#!/bin/sh\n").unwrap();
    fs::write(root.join("etc/motd"), "site message\n").unwrap();

    let o = verify(root, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("clean"), "{out}");
    assert!(out.contains("config    etc/motd"), "{out}");
    assert!(out.contains("shipped by no dist"), "{out}");
    assert!(
        !out.contains("sysup.conf") && !out.contains("minisign.pub"),
        "{out}"
    );
    // cron: nothing at all
    let o = verify(root, &["-q"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");

    let o = verify(root, &["--extras"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for p in ["etc/myapp.conf", "usr/bin/site-tool"] {
        assert!(out.contains(&format!("extra     {p}")), "{out}");
    }
    assert!(
        !out.contains("sysup.conf") && !out.contains("etc/sysup"),
        "{out}"
    );

    let o = verify(root, &["--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let extra: Vec<&str> = v[0]["extra"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(extra.contains(&"etc/myapp.conf"), "{extra:?}");
    assert!(extra.contains(&"usr/bin/site-tool"), "{extra:?}");
    assert!(
        !extra.iter().any(|p| p.contains("sysup")),
        "sysup's own files are never listed: {extra:?}"
    );

    // A tampered binary is drift.
    fs::write(root.join("usr/bin/cat"), b"tampered").unwrap();
    let o = verify(root, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("modified  usr/bin/cat (content)"));
    // So is a missing one.
    ok(sysup().args(["verify", "--repair", "--root"]).arg(root));
    assert_eq!(verify(root, &[]).status.code(), Some(0));
    fs::remove_file(root.join("usr/bin/cat")).unwrap();
    assert_eq!(verify(root, &[]).status.code(), Some(1));
}

#[test]
fn nothing_installed_is_said_and_exits_1() {
    let t = tempfile::tempdir().unwrap();
    let o = verify(t.path(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing is installed"), "{err}");
}
