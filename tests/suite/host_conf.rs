//! The host's `etc/sysup.conf` has one strict reader: an unknown key in any
//! table (`[apply]`, `[mirror]`, `[clean]`), or an unknown table, is refused
//! by whichever command reads the file, with an error naming the file and
//! the key, before anything is written. A misspelt key must never leave the
//! host silently on a default.

use crate::common;

use std::fs;
use std::path::Path;

use common::*;

fn set_conf(root: &Path, text: &str) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/sysup.conf"), text).unwrap();
}

/// Exit 1 with an `error:` naming the file and every one of `words`.
fn refused(o: &std::process::Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    for w in ["sysup.conf"].iter().chain(words) {
        assert!(err.contains(w), "no '{w}' in: {err}");
    }
}

#[test]
fn the_library_refuses_an_unknown_key_in_every_table() {
    let t = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[apply]\ndevics = []\n", "devics"),
        ("[mirror]\nurl = \"http://m/\"\nretry = 3\n", "retry"),
        ("[clean]\nkeep = 1\nmin-age-day = 3\n", "min-age-day"),
        ("[update]\nurl = \"http://m/\"\n", "[update]"),
        ("keep = 1\n", "keep"),
    ] {
        set_conf(t.path(), text);
        let e = sysup::host::conf::HostConf::load(t.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("sysup.conf") && e.contains(key), "{text:?}: {e}");
    }
    set_conf(
        t.path(),
        "[apply]\ndevices = [\"dev/**\"]\n[mirror]\nurl = \"http://m/\"\n[clean]\nkeep = 1\n",
    );
    let c = sysup::host::conf::HostConf::load(t.path()).unwrap();
    assert_eq!(c.clean.keep, Some(1));
    assert_eq!(c.mirror.url.as_deref(), Some("http://m/"));
    assert_eq!(c.apply.devices, Some(vec!["dev/**".to_string()]));
}

#[test]
fn clean_refuses_an_unknown_key_in_clean() {
    let t = tempfile::tempdir().unwrap();
    set_conf(t.path(), "[clean]\nkeep = 1\nmin_age = 3\n");
    let o = run(sysup().args(["clean", "--dry-run", "--root"]).arg(t.path()));
    refused(&o, &["[clean]", "min_age"]);
}

#[test]
fn update_refuses_an_unknown_key_in_mirror_before_any_fetch() {
    let t = tempfile::tempdir().unwrap();
    set_conf(
        t.path(),
        "[mirror]\nurl = \"http://127.0.0.1:9/\"\nspeedlimit = 1\n",
    );
    let o = run(sysup()
        .args(["update", "--download-only", "--root"])
        .arg(t.path()));
    refused(&o, &["[mirror]", "speedlimit"]);
    assert!(!t.path().join("var").exists(), "nothing is written");
}

#[test]
fn apply_refuses_an_unknown_key_in_apply_before_anything_is_written() {
    let (t, _) = installed_root(1);
    let root = t.path();
    set_conf(root, "[apply]\nbase-compresion = \"fast\"\n");
    let before = guarded_snapshot(root);
    let err = apply_fails(root, &[&chain().dists[1]]);
    assert!(
        err.contains("sysup.conf") && err.contains("base-compresion"),
        "{err}"
    );
    assert_unchanged(root, &before);
    assert_eq!(installed_world(root).as_deref(), Some("world-1-20260101"));
}

#[test]
fn an_unknown_table_is_refused_by_every_command_that_reads_the_file() {
    let t = tempfile::tempdir().unwrap();
    set_conf(t.path(), "[updates]\nurl = \"http://127.0.0.1:9/\"\n");
    for args in [
        &["clean", "--dry-run"][..],
        &["update", "--mirror", "http://127.0.0.1:9/"][..],
    ] {
        let o = run(sysup().args(args).arg("--root").arg(t.path()));
        refused(&o, &["[updates]"]);
    }
}
