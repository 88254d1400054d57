//! `sysup history`'s human table names, on a `config-resolve` row, the
//! config file that `sysup config resolve` settled and what it took
//! (`theirs`, `ours` or `merged`), as `--json`'s `resolved` object does.

use crate::common;

use std::fs;
use std::path::Path;

use common::*;

/// World revision `rev` holding `etc/demo.conf` (a config file) = `conf`.
fn world(dir: &Path, rev: u32, conf: &str) -> std::path::PathBuf {
    let mut c = Crafted::file("etc/demo.conf", conf.as_bytes());
    c.entry.config = true;
    let members = vec![Crafted::dir("etc"), c];
    let id = format!("world-{rev}-202601{rev:02}");
    craft_dist(dir, &id, std::env::consts::ARCH, &members)
}

/// A root where etc/demo.conf, edited locally, awaits the admin beside the
/// new version in etc/demo.conf.sysupnew.
fn kept(t: &Path) -> std::path::PathBuf {
    let (dists, root) = (t.join("dists"), t.join("root"));
    fs::create_dir_all(&dists).unwrap();
    fs::create_dir_all(&root).unwrap();
    apply_ok(&root, &[&world(&dists, 1, "level = 1\n")]);
    fs::write(root.join("etc/demo.conf"), "level = 9\n").unwrap();
    apply_ok(&root, &[&world(&dists, 2, "level = 2\n")]);
    assert!(root.join("etc/demo.conf.sysupnew").exists());
    root
}

#[test]
fn a_config_resolve_row_names_the_file_and_what_it_took() {
    for took in ["theirs", "ours"] {
        let t = tempfile::tempdir().unwrap();
        let root = kept(t.path());
        ok(sysup()
            .args(["config", "resolve", "--root"])
            .arg(&root)
            .arg("etc/demo.conf")
            .arg(format!("--{took}")));
        let h = ok(sysup().args(["history", "--root"]).arg(&root));
        let last = h.lines().last().unwrap();
        assert!(last.contains("  config-resolve  "), "{h}");
        assert!(
            last.ends_with(&format!("  ok (etc/demo.conf: took {took})")),
            "{h}"
        );
        // The same facts as --json's.
        let j: serde_json::Value = serde_json::from_str(&ok(sysup()
            .args(["history", "--json", "--root"])
            .arg(&root)))
        .unwrap();
        let e = j["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(e["action"], "config-resolve");
        assert_eq!(
            e["resolved"],
            serde_json::json!({"path": "etc/demo.conf", "took": took})
        );
        // Other rows keep their plain result.
        assert!(h.lines().nth(1).unwrap().ends_with("  ok"), "{h}");
    }
}
