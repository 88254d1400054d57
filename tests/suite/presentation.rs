//! Presentation (issue 5, item 6): what sysup shows a person and a script.
//!
//! - snapshots (insta, `tests/suite/snapshots/`) of the human and `--json` output
//!   of `apply`, `status`, `verify` (clean, drift, repair), `rollback`,
//!   `clean` and `history`, with temporary paths and times redacted;
//! - every `--json` document against the tables of `docs/json.md`: each
//!   documented field present with its documented type, no undocumented one;
//! - progress bars on stderr only when it is a terminal, never with `--quiet`;
//! - man pages and completion scripts generated from the clap definitions.
//!
//! The snapshots need root: the fixture trees (owners, a device node, a file
//! capability) and so every digest and size in them depend on it. As another
//! user they say SKIPPED; under CI, not being root is a failure.

use crate::mirror_support;

use mirror_support::common::fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mirror_support::common::*;
use serde_json::Value;

fn skip_unless_root(what: &str) -> bool {
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
        // A base's size depends on its engine, and ISA-L's bytes (with the
        // `isal` feature) on the CPU (docs/decisions.md, "Host base
        // compression"): its size is redacted.
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
fn damage(root: &Path) {
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

// ---------------------------------------------------------------------------
// docs/json.md

/// One step of a documented path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Each,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ty {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Null,
    Absent,
    ArrayOf(Box<Ty>),
}

#[derive(Clone, Debug)]
struct Row {
    path: String,
    steps: Vec<Step>,
    types: Vec<Ty>,
}

fn parse_ty(s: &str) -> Ty {
    match s.trim() {
        "string" => Ty::String,
        "integer" => Ty::Integer,
        "number" => Ty::Number,
        "boolean" => Ty::Boolean,
        "object" => Ty::Object,
        "null" => Ty::Null,
        "absent" => Ty::Absent,
        t => match t.strip_prefix("array of ") {
            Some(inner) => Ty::ArrayOf(Box::new(parse_ty(inner))),
            None => panic!("docs/json.md: unknown type '{t}'"),
        },
    }
}

fn parse_path(p: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in p.split('.') {
        let mut part = part;
        let mut each = 0;
        while let Some(rest) = part.strip_suffix("[]") {
            part = rest;
            each += 1;
        }
        if !part.is_empty() {
            steps.push(Step::Key(part.to_string()));
        }
        steps.extend(std::iter::repeat_n(Step::Each, each));
    }
    steps
}

/// The tables of docs/json.md, by the key of their `<!-- json: KEY -->` marker.
fn schemas() -> BTreeMap<String, Vec<Row>> {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md")).unwrap();
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(k) = line
            .strip_prefix("<!-- json: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            current = Some(k.to_string());
            out.entry(k.to_string()).or_default();
            continue;
        }
        let Some(key) = &current else { continue };
        if !line.starts_with("| `") {
            if !line.starts_with('|') && !out[key].is_empty() {
                current = None; // the table ended
            }
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let path = cells[1].trim_matches('`').to_string();
        let types = cells[2].split(" or ").map(parse_ty).collect();
        out.get_mut(key).unwrap().push(Row {
            steps: parse_path(&path),
            path,
            types,
        });
    }
    out
}

/// The values at `steps` below `v`: `None` where an object lacks the key.
fn resolve<'a>(v: &'a Value, steps: &[Step]) -> Vec<Option<&'a Value>> {
    let mut cur = vec![Some(v)];
    for st in steps {
        let mut next = Vec::new();
        for c in cur.into_iter().flatten() {
            match (st, c) {
                (Step::Key(k), Value::Object(m)) => next.push(m.get(k)),
                (Step::Each, Value::Array(a)) => next.extend(a.iter().map(Some)),
                _ => {} // a null or mistyped parent: its own row reports it
            }
        }
        cur = next;
    }
    cur
}

fn is(ty: &Ty, v: &Value) -> bool {
    match ty {
        Ty::String => v.is_string(),
        Ty::Integer => v.is_i64() || v.is_u64(),
        Ty::Number => v.is_number(),
        Ty::Boolean => v.is_boolean(),
        Ty::Object => v.is_object(),
        Ty::Null => v.is_null(),
        Ty::Absent => false,
        Ty::ArrayOf(inner) => v.as_array().is_some_and(|a| a.iter().all(|x| is(inner, x))),
    }
}

/// Check one document against rows; returns the problems and the paths
/// seen with a non-null value.
fn check(rows: &[Row], v: &Value) -> (Vec<String>, BTreeSet<String>) {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for r in rows {
        for x in resolve(v, &r.steps) {
            match x {
                None if r.types.contains(&Ty::Absent) => {}
                None => errors.push(format!("`{}` is missing", r.path)),
                Some(x) if !r.types.iter().any(|t| is(t, x)) => {
                    errors.push(format!("`{}` is {x}, not {:?}", r.path, r.types))
                }
                Some(Value::Null) => {}
                Some(_) => {
                    seen.insert(r.path.clone());
                }
            }
        }
    }
    // No undocumented fields in objects whose fields are documented.
    let mut parents: BTreeMap<Vec<Step>, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        if let Some((Step::Key(k), parent)) = r.steps.split_last() {
            parents
                .entry(parent.to_vec())
                .or_default()
                .insert(k.clone());
        }
    }
    for (parent, keys) in &parents {
        for o in resolve(v, parent).into_iter().flatten() {
            if let Value::Object(m) = o {
                for k in m.keys().filter(|k| !keys.contains(*k)) {
                    errors.push(format!("field `{k}` (under {parent:?}) is not documented"));
                }
            }
        }
    }
    (errors, seen)
}

/// Run sysup with `--json`, expecting exit `code`; the document.
fn json_doc(cmd: &mut Command, code: i32) -> Value {
    cmd.arg("--json");
    let o = run(cmd);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{cmd:?}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{cmd:?}: not one JSON document: {e}"))
}

#[test]
fn every_json_document_matches_docs_json_md() {
    let docs = schemas();
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut docs_seen: Vec<(&str, Value)> = Vec::new();
    let at = |args: &[&str], files: &[&Path], code: i32| -> Value {
        let mut cmd = sysup();
        cmd.args(args).arg("--root").arg(&root).args(files);
        json_doc(&mut cmd, code)
    };
    // host commands on the fixture chain
    docs_seen.push(("apply", at(&["apply"], &[&c.dists[0]], 0)));
    docs_seen.push(("apply", at(&["apply", "--dry-run"], &[&c.patches[0]], 0)));
    docs_seen.push(("apply", at(&["apply", "--keep", "3"], &[&c.patches[0]], 0)));
    docs_seen.push(("apply", at(&["apply", "--keep", "3"], &[&c.patches[1]], 0)));
    docs_seen.push(("status", at(&["status"], &[], 0)));
    docs_seen.push(("verify", at(&["verify"], &[], 0)));
    if is_root() {
        damage(&root);
    } else {
        fs::write(root.join("usr/bin/cat"), b"changed").unwrap();
    }
    let drift = at(&["verify"], &[], 1);
    assert!(!drift[0]["modified"].as_array().unwrap().is_empty());
    docs_seen.push(("verify", drift));
    let repair = at(&["verify", "--repair"], &[], 0);
    assert_eq!(repair[0]["action"], "repair");
    docs_seen.push(("verify-repair", repair));
    // a refused apply (wrong base: world-3 is installed) prints no document
    let wrong = run(sysup()
        .args(["apply", "--json", "--root"])
        .arg(&root)
        .arg(&c.patches[0]));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        wrong.stdout.is_empty(),
        "a failed command prints no document"
    );
    let back = at(&["rollback", "--keep", "3"], &[], 0);
    assert_eq!(back["action"], "rollback");
    docs_seen.push(("rollback", back));
    docs_seen.push(("clean", at(&["clean", "--keep", "1", "--dry-run"], &[], 0)));
    docs_seen.push(("clean", at(&["clean", "--keep", "1"], &[], 0)));
    docs_seen.push(("history", at(&["history"], &[], 0)));
    let o = sysup()
        .env("SYSUP_CRASH_AT", "commit-rename:2")
        .args(["apply", "--root"])
        .arg(&root)
        .arg(&c.patches[1])
        .output()
        .unwrap();
    assert!(!o.status.success());
    docs_seen.push(("status", at(&["status"], &[], 0)));

    // build-host commands
    let out = t.path().join("out");
    let spec = world_spec(t.path());
    let mut cmd = sysup();
    cmd.arg("build")
        .arg(&spec)
        .arg("--tree")
        .arg(&c.trees[0])
        .args(["--rev", "1", "--date", "20260101", "--out"])
        .arg(&out);
    docs_seen.push(("build", json_doc(&mut cmd, 0)));
    let ktree = t.path().join("kernel-tree");
    fixtures::make_kernel(&ktree, "GENERIC", 1).unwrap();
    let kspec = t.path().join("GENERIC.toml");
    fs::write(&kspec, fixtures::kernel_spec("GENERIC")).unwrap();
    let mut cmd = sysup();
    cmd.arg("build")
        .arg(&kspec)
        .arg("--tree")
        .arg(&ktree)
        .args(["--rev", "1", "--date", "20260101", "--out"])
        .arg(&out);
    let kernel = json_doc(&mut cmd, 0);
    let kernel_dist = PathBuf::from(kernel["path"].as_str().unwrap());
    docs_seen.push(("build", kernel));
    for (key, file) in [
        ("info-dist", &c.dists[0]),
        ("info-dist", &kernel_dist),
        ("info-patch", &c.patches[0]),
    ] {
        docs_seen.push((key, json_doc(sysup().arg("info").arg(file), 0)));
    }
    fs::create_dir(t.path().join("patches")).unwrap();
    let diff = json_doc(
        sysup()
            .arg("diff")
            .arg(&c.dists[0])
            .arg(&c.dists[1])
            .arg("--out")
            .arg(t.path().join("patches")),
        0,
    );
    docs_seen.push(("diff", diff));

    // mirror commands, against a real nginx
    let w = mirror_support::World::new(&[1, 2], &[1]);
    let nginx = mirror_support::Nginx::serve(&w.pub_dir, "");
    docs_seen.push((
        "publish",
        json_doc(
            sysup()
                .arg("publish")
                .arg(&w.pub_dir)
                .arg("--sign")
                .arg(&w.keys.secret),
            0,
        ),
    ));
    // a key rotation (KEYS signed by the current key) and an expiring INDEX
    let next = mirror_support::keys(w.tmp.path(), "next");
    let next_b64 = fs::read_to_string(&next.public).unwrap();
    let next_b64 = next_b64.lines().nth(1).unwrap();
    let keys_text = format!("sysup-keys 1\nkey {next_b64} until=4102444800\n");
    fs::write(w.file("KEYS"), keys_text).unwrap();
    ok(Command::new("minisign")
        .args(["-S", "-s"])
        .arg(&w.keys.secret)
        .arg("-m")
        .arg(w.file("KEYS"))
        .stdin(Stdio::null()));
    let mut publish = sysup();
    publish.arg("publish").arg(&w.pub_dir).arg("--sign");
    publish.arg(&next.secret).args(["--expires", "7d"]);
    docs_seen.push(("publish", json_doc(&mut publish, 0)));
    let host = w.root("host");
    mirror_support::install(&host, 1);
    let o = mirror_support::update(
        &host,
        &nginx.url(),
        &w.keys.public,
        &["--dry-run", "--json"],
    );
    let dry = mirror_support::json_ok(&o);
    assert_eq!(dry["result"], "would-apply", "{dry}");
    docs_seen.push(("update", dry));
    let o = mirror_support::update(&host, &nginx.url(), &w.keys.public, &["--json"]);
    docs_seen.push(("update", mirror_support::json_ok(&o)));
    // the host now keeps the key accepted through KEYS: status lists it
    docs_seen.push((
        "status",
        json_doc(sysup().arg("status").arg("--root").arg(&host), 0),
    ));

    // every document against its table; reports nested in others against apply's
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let rows = |k: &str| {
        docs.get(k)
            .unwrap_or_else(|| panic!("docs/json.md has no table `{k}`"))
    };
    let mut apply_like: Vec<(String, Value)> = Vec::new();
    for (key, v) in &docs_seen {
        let table = match *key {
            "rollback" | "verify-repair" => "apply",
            k => k,
        };
        let vals: Vec<&Value> = if *key == "verify-repair" {
            v.as_array()
                .expect("verify --repair prints an array")
                .iter()
                .collect()
        } else {
            vec![v]
        };
        for v in vals {
            let (errs, s) = check(rows(table), v);
            problems.extend(errs.into_iter().map(|e| format!("{key}: {e}")));
            seen.entry(table).or_default().extend(s);
        }
        if *key == "update" {
            for a in v["applied"].as_array().unwrap() {
                apply_like.push(("update applied[]".into(), a.clone()));
            }
        }
        if *key == "diff" {
            let header: Vec<Row> = rows("info-patch")
                .iter()
                .filter(|r| !["kind", "file", "size"].contains(&r.path.as_str()))
                .cloned()
                .collect();
            let (errs, _) = check(&header, &v["header"]);
            problems.extend(errs.into_iter().map(|e| format!("diff header: {e}")));
        }
    }
    assert!(!apply_like.is_empty(), "update applied something");
    for (what, v) in &apply_like {
        let (errs, _) = check(rows("apply"), v);
        problems.extend(errs.into_iter().map(|e| format!("{what}: {e}")));
    }
    // every documented, non-optional field was seen at least once
    for (key, rows) in &docs {
        for r in rows {
            let optional = r.types.contains(&Ty::Null) || r.types.contains(&Ty::Absent);
            if !optional && !seen.get(key.as_str()).is_some_and(|s| s.contains(&r.path)) {
                problems.push(format!("{key}: `{}` never seen in any run", r.path));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/json.md vs output:\n{}",
        problems.join("\n")
    );
    // and the checker itself catches a wrong type and an undocumented field
    let mut bad = docs_seen[0].1.clone();
    bad["to"] = Value::from(3);
    bad["surprise"] = Value::Bool(true);
    let (errs, _) = check(rows("apply"), &bad);
    assert_eq!(errs.len(), 2, "{errs:?}");
}

// ---------------------------------------------------------------------------
// progress bars

/// Run `sysup patch PATCH --quiet?` feeding the old tar slowly on stdin,
/// with stderr on a pseudo-terminal (or a pipe); what appeared on stderr.
fn patch_with_stderr(on_tty: bool, extra: &[&str]) -> String {
    let c = chain();
    let mut old = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&c.dists[0]).unwrap())
        .read_to_end(&mut old)
        .unwrap();
    let mut cmd = sysup();
    cmd.args(extra)
        .arg("patch")
        .arg(&c.patches[0])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut master = None;
    if on_tty {
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // Both sides are opened close-on-exec: this binary's other tests
        // spawn children concurrently, and one inheriting the slave would
        // keep the terminal open after sysup exits, so the read below would
        // never end. The child gets the slave through Stdio (dup2), which
        // clears the flag on its copy.
        let (m, s) = pty_pair(&ws);
        cmd.stderr(Stdio::from(s));
        master = Some(fs::File::from(m));
    } else {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // our copy of the terminal's slave side
    let reader = match master {
        Some(mut m) => std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // EIO once the child (the last holder of the slave) is gone
            while let Ok(n) = m.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf
        }),
        None => {
            let mut e = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                e.read_to_end(&mut buf).unwrap();
                buf
            })
        }
    };
    // Half the old tar, a pause long enough for several redraws, the rest.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&old[..old.len() / 2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    stdin.write_all(&old[old.len() / 2..]).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    String::from_utf8_lossy(&reader.join().unwrap()).into_owned()
}

#[test]
fn progress_bars_only_on_a_terminal_and_never_with_quiet() {
    let label = "patch world-1-20260101_2-20260102";
    let tty = patch_with_stderr(true, &[]);
    assert!(
        tty.contains(label) && tty.contains("KiB"),
        "no bar on a terminal: {tty:?}"
    );
    let quiet = patch_with_stderr(true, &["--quiet"]);
    assert_eq!(quiet, "", "--quiet draws nothing");
    let pipe = patch_with_stderr(false, &[]);
    assert_eq!(pipe, "", "a pipe gets no bar");
}

#[test]
fn quiet_keeps_only_the_result_line() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    apply_ok(t.path(), &[&c.dists[0]]);
    let out = ok(sysup()
        .args(["apply", "-q", "--root"])
        .arg(t.path())
        .arg(&c.patches[0]));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("upgrade world-1-20260101 → world-2-20260102"),
        "{out}"
    );
    // verify --quiet says nothing on a clean tree, only the drift otherwise
    assert_eq!(
        ok(sysup().args(["--quiet", "verify", "--root"]).arg(t.path())),
        ""
    );
    fs::write(t.path().join("usr/bin/cat"), b"changed").unwrap();
    let o = run(sysup().args(["verify", "--quiet", "--root"]).arg(t.path()));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "modified  usr/bin/cat (content)\n"
    );
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}

// ---------------------------------------------------------------------------
// man pages and completions

/// The visible subcommands, from `sysup --help`.
fn subcommands() -> Vec<String> {
    let help = ok(sysup().arg("--help"));
    let list = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let cmds: Vec<String> = list
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    assert!(cmds.len() >= 13, "{cmds:?}");
    cmds
}

#[test]
fn man_pages_render_and_cover_every_command() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("man1");
    ok(sysup().arg("man").arg("--out").arg(&dir));
    let top = fs::read_to_string(dir.join("sysup.1")).unwrap();
    for cmd in subcommands() {
        let page = dir.join(format!("sysup-{cmd}.1"));
        assert!(page.exists(), "no man page for {cmd}");
        assert!(
            top.contains(&format!("sysup\\-{cmd}")),
            "sysup.1 does not list {cmd}"
        );
    }
    let cmds = subcommands();
    for listed in ["man", "completions"] {
        assert!(
            cmds.iter().any(|c| c == listed),
            "`sysup --help` lists {listed}"
        );
    }
    // every page has the sections an admin looks for, EXAMPLES from the
    // same table `--help` prints them from
    for page in fs::read_dir(&dir).unwrap() {
        let page = page.unwrap().path();
        let text = fs::read_to_string(&page).unwrap();
        for section in [
            "EXIT STATUS",
            "ENVIRONMENT",
            "FILES",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                text.contains(&format!(".SH \"{section}\""))
                    || text.contains(&format!(".SH {section}")),
                "{} has no {section}",
                page.display()
            );
        }
    }
    let help = ok(sysup().args(["apply", "--help"]));
    let example = "sysup apply --root /mnt/img world-14.2-20261205.tar.gz";
    assert!(help.contains(example), "{help}");
    let apply_page = fs::read_to_string(dir.join("sysup-apply.1")).unwrap();
    assert!(
        apply_page.contains(&example.replace('-', "\\-")),
        "{apply_page}"
    );
    assert!(apply_page.contains("var/db/sysup/journal"), "{apply_page}");
    // `sysup man` alone prints the same top page
    assert_eq!(ok(sysup().arg("man")), top);
    // it renders, without warnings
    let o = run(Command::new("man")
        .args(["--warnings", "-l", "-E", "UTF-8"])
        .arg(dir.join("sysup-apply.1"))
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "groff warnings");
    assert!(
        text.contains("NAME") && text.contains("--dry-run"),
        "{text}"
    );
}

#[test]
fn bash_completion_is_valid_and_knows_every_command() {
    let script = ok(sysup().args(["completions", "bash"]));
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("sysup.bash");
    fs::write(&f, &script).unwrap();
    let o = run(Command::new("bash").arg("-n").arg(&f));
    assert!(
        o.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // sourcing it registers the completion
    let o = run(Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p sysup", f.display())));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("sysup"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for cmd in subcommands() {
        assert!(
            script.contains(&format!("sysup,{cmd})")),
            "bash completion lacks {cmd}"
        );
    }
    for shell in ["zsh", "fish"] {
        let s = ok(sysup().args(["completions", shell]));
        assert!(s.contains("rollback"), "{shell}");
    }
}

/// A pseudo-terminal's master and slave, both close-on-exec, the slave's
/// window size set to `ws`.
fn pty_pair(ws: &libc::winsize) -> (OwnedFd, OwnedFd) {
    // SAFETY: plain calls on a descriptor this function owns from the
    // moment it is returned; `name` is a NUL-terminated buffer that
    // ptsname_r fills within its length.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let m = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m.as_raw_fd()), 0, "grantpt");
        assert_eq!(libc::unlockpt(m.as_raw_fd()), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(m.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0
        );
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(
            s >= 0,
            "open the slave: {}",
            std::io::Error::last_os_error()
        );
        let s = OwnedFd::from_raw_fd(s);
        assert_eq!(
            libc::ioctl(s.as_raw_fd(), libc::TIOCSWINSZ, ws as *const _),
            0
        );
        (m, s)
    }
}
