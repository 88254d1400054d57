//! Presentation (issue 5, item 6): what sysup shows a person and a script.
//!
//! Here: snapshots (insta, `tests/suite/presentation/snapshots/`) of the
//! human and `--json` output of `apply`, `status`, `verify` (clean, drift,
//! repair), `rollback`, `clean` and `history`, with temporary paths and
//! times redacted. Beside it: every `--json` document against the tables
//! of `docs/json.md` ([`json_doc`]); progress bars on stderr only when it is
//! a terminal, never with `--quiet` ([`terminal`]); man pages and completion
//! scripts generated from the clap definitions ([`man`]).
//!
//! The snapshots need root: the fixture trees (owners, a device node, a file
//! capability) and so every digest and size in them depend on it. As another
//! user they say SKIPPED; under CI, not being root is a failure.

mod json_doc;
mod man;
mod terminal;

use crate::mirror_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mirror_support::common::*;
use serde_json::Value;

pub(super) fn skip_unless_root(what: &str) -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests as root"
    );
    eprintln!("SKIPPED: {what} needs root (the fixture trees differ without it)");
    true
}

/// A regex matching `s` literally.
fn literal(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `sysup ARGS --root ROOT FILES…`: (exit code, stdout, stderr).
fn sysup_at(
    root: &Path,
    args: &[&str],
    files: &[&Path],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut c = sysup();
    c.args(args).arg("--root").arg(root);
    for f in files {
        c.arg(f);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = run(&mut c);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Two roots in lockstep: each command runs on `human` as given and on
/// `json` with `--json`, so a command that changes the root can be shown
/// both ways.
struct Twins {
    _tmp: tempfile::TempDir,
    human: PathBuf,
    json: PathBuf,
}

impl Twins {
    fn new() -> Twins {
        let tmp = tempfile::tempdir().unwrap();
        let human = tmp.path().join("h");
        let json = tmp.path().join("j");
        fs::create_dir(&human).unwrap();
        fs::create_dir(&json).unwrap();
        Twins {
            _tmp: tmp,
            human,
            json,
        }
    }

    /// Run on both roots, expecting exit `code` from each; (human, json) stdout.
    fn run(&self, args: &[&str], files: &[&Path], code: i32) -> (String, String) {
        let (c1, h, e1) = sysup_at(&self.human, args, files, &[]);
        let mut jargs = args.to_vec();
        jargs.push("--json");
        let (c2, j, e2) = sysup_at(&self.json, &jargs, files, &[]);
        assert_eq!(c1, code, "{args:?}: {h}{e1}");
        assert_eq!(c2, code, "{args:?} --json: {j}{e2}");
        if code == 0 || !j.is_empty() {
            serde_json::from_str::<Value>(&j).unwrap_or_else(|e| panic!("{args:?}: {e}: {j}"));
        }
        (h, j)
    }

    /// The same change on both roots.
    fn each(&self, f: impl Fn(&Path)) {
        f(&self.human);
        f(&self.json);
    }

    /// insta settings that redact what differs between machines and runs.
    fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        for r in [&self.human, &self.json] {
            s.add_filter(&literal(&r.to_string_lossy()), "[ROOT]");
        }
        s.add_filter(&literal(&chain().dir.to_string_lossy()), "[CHAIN]");
        // UTC times in human output, and Unix times in JSON
        s.add_filter(
            r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}",
            "YYYY-MM-DD hh:mm:ss",
        );
        s.add_filter(r#""(time|installed_at|mtime)": \d+"#, r#""$1": "[TIME]""#);
        s.add_filter(r#""txid": "[0-9a-f]+""#, r#""txid": "[TXID]""#);
        // A base's size depends on its engine, and libdeflate's bytes on
        // the CPU (docs/decisions.md, "A base's members are deflated and
        // inflated by libdeflate"): its size is redacted.
        s.add_filter(r"(/bases/\S+\.tar\.gz) \(\d+ KiB\)", "$1 ([BASE SIZE])");
        s.add_filter(r#""base_size": \d+"#, r#""base_size": "[BASE SIZE]""#);
        // What the restart report could not read (a pid 1 that even root
        // may not trace, in some containers) depends on the machine.
        s.add_filter(r"(?m)^ *restart scan: .*\n", "");
        s.add_filter(
            r#"("processes": \[\],\s*"notes": )\[[^\]]*\]"#,
            r#"$1"[RESTART NOTES]""#,
        );
        s.add_filter(
            r#"("path": "[^"]*/bases/[^"]+",\s*"size": )\d+"#,
            r#"$1"[BASE SIZE]""#,
        );
        s
    }
}

/// The same drift on a root: content, mode, owner, missing, extra, symlink
/// target, and an edited config file (not damage).
pub(super) fn damage(root: &Path) {
    fs::write(root.join("usr/bin/cat"), b"changed").unwrap();
    fs::set_permissions(root.join("usr/bin/ls"), fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::lchown(root.join("usr/bin/wall"), Some(1), Some(1)).unwrap();
    fs::remove_file(root.join("usr/bin/newtool")).unwrap();
    fs::write(root.join("usr/bin/intruder"), b"?").unwrap();
    fs::remove_file(root.join("usr/bin/sh")).unwrap();
    std::os::unix::fs::symlink("cat", root.join("usr/bin/sh")).unwrap();
    fs::write(root.join("etc/motd"), b"site message\n").unwrap();
}

#[test]
fn human_and_json_output_snapshots() {
    if skip_unless_root("snapshotting output") {
        return;
    }
    let c = chain();
    let t = Twins::new();
    t.settings().bind(|| {
        let snap = |name: &str, (h, j): (String, String)| {
            insta::assert_snapshot!(format!("{name}_human"), h);
            insta::assert_snapshot!(format!("{name}_json"), j);
        };
        snap("apply_install", t.run(&["apply"], &[&c.dists[0]], 0));
        snap(
            "apply_upgrade",
            t.run(&["apply", "--keep", "3"], &[&c.patches[0]], 0),
        );
        t.run(&["apply", "--keep", "3"], &[&c.patches[1]], 0);
        snap("status", t.run(&["status"], &[], 0));
        snap("verify_clean", t.run(&["verify"], &[], 0));
        t.each(damage);
        snap("verify_drift", t.run(&["verify"], &[], 1));
        snap("verify_repair", t.run(&["verify", "--repair"], &[], 0));
        snap("rollback", t.run(&["rollback", "--keep", "3"], &[], 0));
        // an apply killed mid-commit: status shows it and how to finish it,
        // and the same command run again finishes it
        t.each(|r| {
            let (code, _, _) = sysup_at(
                r,
                &["apply"],
                &[&c.patches[1]],
                &[("SYSUP_CRASH_AT", "commit-rename:2")],
            );
            assert_eq!(code, -1, "killed");
        });
        snap("status_pending", t.run(&["status"], &[], 0));
        snap("apply_resume", t.run(&["apply"], &[&c.patches[1]], 0));
        snap(
            "clean_dry_run",
            t.run(&["clean", "--keep", "1", "--dry-run"], &[], 0),
        );
        snap("clean", t.run(&["clean", "--keep", "1"], &[], 0));
        snap("clean_nothing", t.run(&["clean", "--keep", "1"], &[], 0));
        // a refused apply (wrong base) is in the history too, with its error
        t.run(&["apply"], &[&c.patches[0]], 1);
        snap("history", t.run(&["history"], &[], 0));
    });
}
