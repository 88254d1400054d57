//! `sysup build` on bad input: each case exits 1 with an error naming the
//! file and the cause, and leaves no dist (and no temporary file) behind.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// Run `sysup build` and check it failed cleanly; returns stderr.
fn build_fails(
    spec: &Path,
    tree: &Path,
    rev: &str,
    date: &str,
    out: &Path,
    via: Option<&[&str]>,
) -> String {
    let mut cmd = match via {
        Some(prefix) => {
            let mut c = Command::new(prefix[0]);
            c.args(&prefix[1..]).arg(env!("CARGO_BIN_EXE_sysup"));
            c
        }
        None => sysup(),
    };
    cmd.arg("build").arg(spec).arg("--tree").arg(tree);
    cmd.args(["--rev", rev, "--date", date, "--out"]).arg(out);
    let o = run(&mut cmd);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "expected exit 1, stderr:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let left: Vec<_> = fs::read_dir(out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "output left behind: {left:?}");
    err
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("out")).unwrap();
        common::fixtures::make_world(&dir.path().join("tree"), 1, false).unwrap();
        world_spec(dir.path());
        Case { dir }
    }
    fn p(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
    fn fails(&self, rev: &str, date: &str) -> String {
        build_fails(
            &self.p("world.toml"),
            &self.p("tree"),
            rev,
            date,
            &self.p("out"),
            None,
        )
    }
}

#[test]
fn missing_tree() {
    let c = Case::new();
    fs::remove_dir_all(c.p("tree")).unwrap();
    let e = c.fails("1", "20260101");
    assert!(e.contains("tree") && e.contains("No such file"), "{e}");
}

#[test]
fn spec_syntax_error_and_unknown_key() {
    let c = Case::new();
    fs::write(c.p("world.toml"), "name = \"world\"\narch = [\n").unwrap();
    let e = c.fails("1", "20260101");
    assert!(
        e.contains("world.toml") && e.contains("invalid spec"),
        "{e}"
    );
    fs::write(
        c.p("world.toml"),
        "name = \"world\"\narch = \"x86_64\"\ncritcal = []\n",
    )
    .unwrap();
    let e = c.fails("1", "20260101");
    assert!(e.contains("world.toml") && e.contains("critcal"), "{e}");
}

#[test]
fn bad_rev_and_date() {
    let c = Case::new();
    let e = c.fails("1-2", "20260101");
    assert!(e.contains("rev") && e.contains("'-'"), "{e}");
    let e = c.fails("1_2", "20260101");
    assert!(e.contains("rev"), "{e}");
    for bad in ["2026011", "20261301", "2026-01-01", "20230229"] {
        let e = c.fails("1", bad);
        assert!(e.contains("date") && e.contains(bad), "{e}");
    }
}

#[test]
fn socket_in_tree() {
    let c = Case::new();
    let sock = c.p("tree/run/control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let e = c.fails("1", "20260101");
    assert!(e.contains("control.sock") && e.contains("socket"), "{e}");
}

/// Give others read access to everything under `dir` (and search access
/// to directories), except `keep`.
fn open_to_others(dir: &Path, keep: &[&Path]) {
    for e in fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if keep.contains(&path.as_path()) || meta.file_type().is_symlink() {
            continue;
        }
        let extra = if meta.is_dir() { 0o005 } else { 0o004 };
        let mode = meta.permissions().mode() | extra;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        if meta.is_dir() {
            open_to_others(&path, keep);
        }
    }
}

/// Make `secrets` unreadable and run the build as a user that cannot read
/// them (root reads anything: then as nobody, with everything else readable
/// — the tree's other private files too, var/spool/mail/user is 0660);
/// returns stderr.
fn fails_unreadable(c: &Case, secrets: &[&Path]) -> String {
    for s in secrets {
        fs::set_permissions(s, fs::Permissions::from_mode(0o000)).unwrap();
    }
    if !is_root() {
        return c.fails("1", "20260101");
    }
    for d in [c.dir.path(), &c.p("out")] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
    }
    open_to_others(&c.p("tree"), secrets);
    build_fails(
        &c.p("world.toml"),
        &c.p("tree"),
        "1",
        "20260101",
        &c.p("out"),
        Some(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]),
    )
}

#[test]
fn unreadable_file() {
    let c = Case::new();
    let e = fails_unreadable(&c, &[&c.p("tree/etc/shadow")]);
    assert!(
        e.contains("etc/shadow") && e.contains("Permission denied"),
        "{e}"
    );
}

/// Files are hashed in parallel; of several unreadable ones the error names
/// the first in walk order, every time — here one that comes after 32 MB of
/// readable files, while the last file of the tree, which another thread
/// reaches first, is unreadable too.
#[test]
fn of_several_unreadable_files_the_first_is_named() {
    let c = Case::new();
    for k in 0..4 {
        let big: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 + k) as u8).collect();
        fs::create_dir_all(c.p("tree/aaa")).unwrap();
        fs::write(c.p(&format!("tree/aaa/big-{k}")), big).unwrap();
    }
    fs::write(c.p("tree/aaa/secret"), b"first").unwrap();
    fs::create_dir_all(c.p("tree/zzz")).unwrap();
    fs::write(c.p("tree/zzz/secret"), b"last").unwrap();
    let secrets = [c.p("tree/aaa/secret"), c.p("tree/zzz/secret")];
    let secrets: Vec<&Path> = secrets.iter().map(|p| p.as_path()).collect();
    for round in 0..3 {
        let e = fails_unreadable(&c, &secrets);
        assert!(
            e.contains("aaa/secret") && !e.contains("zzz/secret"),
            "round {round}: {e}"
        );
    }
}

#[test]
fn hostile_spec_paths_are_refused() {
    let c = Case::new();
    fs::write(
        c.p("world.toml"),
        "name = \"kernel-X\"\narch = \"x86_64\"\ninstall_dir = \"../../boot\"\nkeep_old = \"b\"\n",
    )
    .unwrap();
    let e = c.fails("1", "20260101");
    assert!(e.contains("install_dir"), "{e}");
}

#[test]
fn a_tree_no_manifest_could_hold_is_refused() {
    // deeper than a MANIFEST path may be: the build must not make a dist
    // every host refuses
    let c = Case::new();
    let mut deep = c.p("tree/usr/share/deep");
    for _ in 0..sysup::format::manifest::MAX_DEPTH {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    let e = c.fails("1", "20260101");
    assert!(
        e.contains("usr/share/deep/d/d") && e.contains("levels deep, more than the 256 allowed"),
        "{e}"
    );
}
