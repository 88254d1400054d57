//! Threat: the build side. A `critical` or `config` pattern that matches
//! nothing was silent — a spec naming libc through merged /usr's `lib/`
//! link built with "0 critical" — and dists are published world-readable
//! while a tree may hold files only their owner may read (private keys).
//! `sysup build` names each pattern that matched no file (on stderr and in
//! `--json` as `warnings`), refuses a critical pattern naming a file the
//! tree holds only through a symlink, and names the files not readable by
//! others.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// A merged-/usr tree: libc under `usr/lib`, `lib` a link to it.
fn tree(dir: &Path) -> std::path::PathBuf {
    let t = dir.join("tree");
    fs::create_dir_all(t.join("usr/lib/x86_64-linux-gnu")).unwrap();
    fs::create_dir_all(t.join("etc/ssh")).unwrap();
    fs::write(t.join("usr/lib/x86_64-linux-gnu/libc.so.6"), b"libc").unwrap();
    fs::write(t.join("etc/hostname"), b"host\n").unwrap();
    std::os::unix::fs::symlink("usr/lib", t.join("lib")).unwrap();
    t
}

fn spec(dir: &Path, critical: &str, config: &str) -> std::path::PathBuf {
    let p = dir.join("spec.toml");
    fs::write(
        &p,
        format!("name = \"world\"\narch = \"x86_64\"\ncritical = {critical}\nconfig = {config}\n"),
    )
    .unwrap();
    p
}

fn build(spec: &Path, tree: &Path, out: &Path, json: bool) -> std::process::Output {
    let mut c = sysup();
    c.arg("build").arg(spec).arg("--tree").arg(tree);
    c.args(["--rev", "1", "--date", "20260101", "--out"])
        .arg(out);
    if json {
        c.arg("--json");
    }
    run(&mut c)
}

#[test]
fn patterns_that_match_nothing_are_named() {
    let d = tempfile::tempdir().unwrap();
    let t = tree(d.path());
    let s = spec(
        d.path(),
        r#"["usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib64/ld-linux-x86-64.so.2"]"#,
        r#"["etc/**", "usr/local/etc/**"]"#,
    );
    let o = build(&s, &t, &d.path().join("out"), false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    for w in [
        "warning: critical pattern 'usr/lib64/ld-linux-x86-64.so.2' matched no regular file",
        "warning: config pattern 'usr/local/etc/**' matched no regular file",
    ] {
        assert!(err.contains(w), "expected '{w}' in:\n{err}");
    }
    assert!(
        !err.contains("'etc/**'") && !err.contains("libc.so.6"),
        "{err}"
    );
    // and in --json, as `warnings`
    let o = build(&s, &t, &d.path().join("out2"), true);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0]
        .as_str()
        .unwrap()
        .contains("usr/lib64/ld-linux-x86-64.so.2"));
}

#[test]
fn a_critical_file_named_through_a_link_refuses_the_build() {
    // libc named through merged /usr's `lib` link: the walk records `lib`
    // as a link and never finds a file there
    let d = tempfile::tempdir().unwrap();
    let t = tree(d.path());
    let s = spec(
        d.path(),
        r#"["lib/x86_64-linux-gnu/libc.so.6", "usr/lib64/ld-linux-x86-64.so.2"]"#,
        "[]",
    );
    let out = d.path().join("out");
    let o = build(&s, &t, &out, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for needle in [
        "error: ",
        "critical pattern 'lib/x86_64-linux-gnu/libc.so.6' names a file",
        "only through a symlink",
    ] {
        assert!(err.contains(needle), "expected '{needle}' in:\n{err}");
    }
    assert!(!out.exists() || fs::read_dir(&out).unwrap().count() == 0);
    // a tree with no libc at all (a partial world): said, not refused
    fs::remove_file(t.join("usr/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
    let o = build(&s, &t, &out, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "warning: critical pattern 'lib/x86_64-linux-gnu/libc.so.6' matched no regular file"
        ),
        "{err}"
    );
}

#[test]
fn files_not_readable_by_others_are_named() {
    let d = tempfile::tempdir().unwrap();
    let t = tree(d.path());
    for i in 0..12 {
        let p = t.join(format!("etc/ssh/secret{i:02}"));
        fs::write(&p, b"key").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let s = spec(d.path(), r#"["usr/lib/x86_64-linux-gnu/libc.so.6"]"#, "[]");
    let o = build(&s, &t, &d.path().join("out"), true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let w = "warning: 12 files not readable by others go into the dist, which is published \
             for anyone to read: etc/ssh/secret00, etc/ssh/secret01";
    assert!(err.contains(w), "expected '{w}' in:\n{err}");
    assert!(err.contains("etc/ssh/secret09 and 2 more"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
}
