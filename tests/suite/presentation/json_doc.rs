//! Every `--json` document against the tables of `docs/json.md`: each
//! documented field present with its documented type, no undocumented one.

use crate::common::fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use crate::mirror_support;
use serde_json::Value;

use super::damage;

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
