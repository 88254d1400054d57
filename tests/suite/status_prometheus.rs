//! `sysup status --format prometheus` (issue 25, item 3): node_exporter
//! textfile metrics that a strict parser of the text exposition format
//! accepts line by line — `# HELP` then `# TYPE` once per family, samples
//! together under them, metric and label names of the allowed characters,
//! label values with `\`, `"` and newline escaped (the root's own name holds
//! all three here) — and whose values follow the root: installed id and
//! time, the last apply's time and result, a pending apply, restarts and
//! reboot.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use common::*;

/// One sample: metric name, labels (unescaped), value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    !s.starts_with("__")
        && c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// `{a="x",b="y"}` at the start of `s`: the labels and the rest after `}`.
fn parse_labels(s: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').unwrap();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            assert!(!labels.is_empty(), "empty braces: {line:?}");
            return (labels, r.to_string());
        }
        let eq = rest.find('=').unwrap_or_else(|| panic!("no '=': {line:?}"));
        let name = &rest[..eq];
        assert!(is_label_name(name), "label name {name:?}: {line:?}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("unquoted value: {line:?}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?}: {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated value: {line:?}"),
            }
        };
        assert!(labels.insert(name.to_string(), value).is_none(), "{line:?}");
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            assert!(!r.starts_with('}'), "trailing comma: {line:?}");
            rest = r;
        } else {
            assert!(rest.starts_with('}'), "after a value: {line:?}");
        }
    }
}

/// Parse the exposition strictly (see the module doc); panic on any fault.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut samples = Vec::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut typed: BTreeSet<String> = BTreeSet::new();
    let mut series = BTreeSet::new();
    let mut family: Option<String> = None;
    let mut last_help: Option<String> = None;
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line");
        if let Some(h) = line.strip_prefix("# HELP ") {
            let (name, help) = h.split_once(' ').expect("HELP has a text");
            assert!(
                is_metric_name(name) && helped.insert(name.to_string()),
                "{line:?}"
            );
            let mut it = help.chars();
            while let Some(c) = it.next() {
                if c == '\\' {
                    assert!(
                        matches!(it.next(), Some('\\' | 'n')),
                        "HELP escape: {line:?}"
                    );
                }
            }
            last_help = Some(name.to_string());
            continue;
        }
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, ty) = t.split_once(' ').expect("TYPE has a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{line:?}"
            );
            assert_eq!(
                last_help.as_deref(),
                Some(name),
                "TYPE right after its HELP"
            );
            assert!(
                typed.insert(name.to_string()),
                "one TYPE per family: {line:?}"
            );
            family = Some(name.to_string());
            continue;
        }
        assert!(!line.starts_with('#'), "no other comments: {line:?}");
        let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("{line:?}"));
        let name = &line[..end];
        assert!(is_metric_name(name), "metric name: {line:?}");
        assert_eq!(
            family.as_deref(),
            Some(name),
            "a sample under its own family"
        );
        let (labels, rest) = if line[end..].starts_with('{') {
            parse_labels(&line[end..], line)
        } else {
            (BTreeMap::new(), line[end..].to_string())
        };
        let fields: Vec<&str> = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("one space before the value: {line:?}"))
            .split(' ')
            .collect();
        assert!(matches!(fields.len(), 1 | 2), "value [timestamp]: {line:?}");
        let value: f64 = fields[0].parse().unwrap_or_else(|_| panic!("{line:?}"));
        if let Some(ts) = fields.get(1) {
            ts.parse::<i64>().unwrap_or_else(|_| panic!("{line:?}"));
        }
        assert!(
            series.insert(format!("{name}{labels:?}")),
            "duplicate series: {line:?}"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    assert_eq!(helped, typed, "every family has HELP and TYPE");
    samples
}

/// `sysup status --format prometheus --root ROOT`, parsed.
fn metrics(root: &Path) -> Vec<Sample> {
    let out = ok(sysup()
        .args(["status", "--format", "prometheus", "--root"])
        .arg(root));
    parse(&out)
}

/// The value of `name` whose labels include `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[test]
fn metrics_follow_the_root_and_parse_strictly() {
    let c = chain();
    let t = tempfile::tempdir().unwrap();
    // a name with every character a label value must escape
    let root = t.path().join("a \"root\" \\ with\na newline");
    fs::create_dir(&root).unwrap();
    let shown = root.to_string_lossy().into_owned();
    let r = [("root", shown.as_str())];

    // nothing installed: the host-wide families, nothing per name
    let m = metrics(&root);
    assert_eq!(value(&m, "sysup_pending_apply", &r), Some(0.0), "{m:?}");
    assert_eq!(value(&m, "sysup_installed_info", &[]), None, "{m:?}");

    apply_ok(&root, &[&c.dists[0]]);
    let m = metrics(&root);
    let world = [("root", shown.as_str()), ("name", "world")];
    assert_eq!(
        value(
            &m,
            "sysup_installed_info",
            &[("id", "world-1-20260101"), world[0], world[1]]
        ),
        Some(1.0),
        "{m:?}"
    );
    let installed_at = value(&m, "sysup_installed_timestamp_seconds", &world).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert!(
        (now - installed_at).abs() < 600.0,
        "{installed_at} vs {now}"
    );
    let last = value(&m, "sysup_last_apply_timestamp_seconds", &world).unwrap();
    assert!(
        (last - installed_at).abs() <= 1.0,
        "{last} vs {installed_at}"
    );
    assert_eq!(value(&m, "sysup_last_apply_success", &world), Some(1.0));
    for name in [
        "sysup_pending_apply",
        "sysup_config_pending",
        "sysup_restart_processes",
        "sysup_reboot_needed",
        "sysup_history_damaged_lines",
    ] {
        assert_eq!(value(&m, name, &r), Some(0.0), "{name}: {m:?}");
    }

    // a new version of a config file left beside it awaits the admin
    fs::write(root.join("etc/motd.sysupnew"), b"theirs\n").unwrap();
    let m = metrics(&root);
    assert_eq!(value(&m, "sysup_config_pending", &r), Some(1.0), "{m:?}");
    fs::remove_file(root.join("etc/motd.sysupnew")).unwrap();

    // a failed apply (2→3 onto world-1: the wrong base) is the last one
    apply_fails(&root, &[&c.patches[1]]);
    let m = metrics(&root);
    assert_eq!(
        value(&m, "sysup_last_apply_success", &world),
        Some(0.0),
        "{m:?}"
    );
    assert_eq!(
        value(&m, "sysup_installed_info", &[("id", "world-1-20260101")]),
        Some(1.0)
    );

    // an apply killed mid-commit is pending
    let o = run(sysup()
        .arg("apply")
        .arg("--root")
        .arg(&root)
        .arg(&c.patches[0])
        .env("SYSUP_CRASH_AT", "commit-rename:2"));
    assert!(!o.status.success());
    let m = metrics(&root);
    assert_eq!(value(&m, "sysup_pending_apply", &r), Some(1.0), "{m:?}");
}

#[test]
fn format_flags() {
    let t = tempfile::tempdir().unwrap();
    // `--format json` is `--json`; both together are refused
    let a = ok(sysup().args(["status", "--json", "--root"]).arg(t.path()));
    let b = ok(sysup()
        .args(["status", "--format", "json", "--root"])
        .arg(t.path()));
    assert_eq!(a, b);
    let o = run(sysup()
        .args(["status", "--json", "--format", "prometheus", "--root"])
        .arg(t.path()));
    assert_eq!(o.status.code(), Some(2), "a usage error");
}

#[test]
fn the_parser_catches_faults() {
    let good = "# HELP a_b x\n# TYPE a_b gauge\na_b{l=\"v\\\\ \\\" \\n\"} 1\n";
    assert_eq!(parse(good)[0].labels["l"], "v\\ \" \n");
    for bad in [
        "# HELP a x\n# TYPE a gauge\na{l=\"v\"\"} 1\n", // a raw quote
        "# HELP a x\n# TYPE a gauge\na{l=\"\\t\"} 1\n", // an unknown escape
        "# HELP 1a x\n# TYPE 1a gauge\n1a 1\n",         // a metric name
        "# HELP a x\n# TYPE a gauge\na{1l=\"v\"} 1\n",  // a label name
        "# HELP a x\n# TYPE a gauge\nb 1\n",            // a sample of no family
        "# HELP a x\n# TYPE a gauge\na 1\na 1\n",       // a duplicate series
        "# HELP a x\n# TYPE a gauge\na one\n",          // a value
        "# TYPE a gauge\na 1\n",                        // no HELP
        "# HELP a x\n# TYPE a gauge\na{l=\"v\",} 1\n",  // a trailing comma
    ] {
        let caught = std::panic::catch_unwind(|| parse(bad)).is_err();
        assert!(caught, "accepted: {bad:?}");
    }
}
