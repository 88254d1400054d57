//! `sysup update --check`, for monitoring: exit 100 when an update is
//! available, 0 when up to date, 1 on error (as `dnf check-update`); one
//! line per name saying what is available and what it costs; `--json`
//! prints exactly the document of `--dry-run --json`. It fetches, records
//! and applies nothing. Against a real nginx mirror.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

/// Output of `update --check ARGS` on `root` from `url`.
fn check(
    root: &std::path::Path,
    url: &str,
    key: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut a = vec!["--check"];
    a.extend_from_slice(args);
    update(root, url, key, &a)
}

#[test]
fn an_available_update_exits_100_and_says_what_it_costs() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let patch = fs::metadata(w.file(&patch_name(1, 2))).unwrap().len();

    let o = check(&host.root, &nginx.url(), &w.keys.public, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(100), "{out}\n{}", stderr(&o));
    assert_eq!(
        out,
        format!(
            "world: {} \u{2192} {} ({patch} bytes to fetch, via patches)\n",
            id(1),
            id(2)
        )
    );
    // Nothing fetched, recorded or applied.
    host.unchanged(1);
    assert!(downloads(&host.root).is_empty());
    assert_eq!(serial(&host.root), None, "no serial recorded");
    assert!(
        nginx.hits_of(&patch_name(1, 2)).is_empty(),
        "the patch was not fetched"
    );

    // --json: the dry run's document, result would-apply, same exit code.
    let o = check(&host.root, &nginx.url(), &w.keys.public, &["--json"]);
    assert_eq!(o.status.code(), Some(100), "{}", stderr(&o));
    let checked: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dry = json_ok(&update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--dry-run", "--json"],
    ));
    assert_eq!(checked, dry);
    assert_eq!(checked["result"], "would-apply");
    assert_eq!(checked["fetched_bytes"], patch);
    assert_eq!(serial(&host.root), None);
}

#[test]
fn up_to_date_exits_0_and_an_error_exits_1() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 2);
    let o = check(&host.root, &nginx.url(), &w.keys.public, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("world: {} is up to date\n", id(2))
    );
    let j = json_ok(&check(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--json"],
    ));
    assert_eq!(j["result"], "up-to-date");
    assert_eq!(j["dry_run"], true);

    // A forged INDEX: exit 1 with the cause, not 0 or 100.
    let mut text = fs::read_to_string(w.file("INDEX")).unwrap();
    text = text.replace("timestamp ", "timestamp 1");
    fs::write(w.file("INDEX"), text).unwrap();
    let o = check(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &["does not verify"]);
    assert!(o.stdout.is_empty());
    // A mirror that is down: exit 1 too.
    let o = check(
        &host.root,
        "http://127.0.0.1:9/",
        &w.keys.public,
        &["--retries", "0", "--timeout", "2"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn check_conflicts_with_download_only() {
    let w = World::new(&[1], &[]);
    let o = check(
        &w.root("h"),
        "http://127.0.0.1:9/",
        &w.keys.public,
        &["--download-only"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn a_check_of_a_root_never_updated_creates_nothing_in_it() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("fresh");
    let to = id(2).to_string();
    let o = check(&root, &nginx.url(), &w.keys.public, &["--to", &to]);
    assert_eq!(o.status.code(), Some(100), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with(&format!("world: nothing \u{2192} {}", id(2))),
        "{out}"
    );
    let left: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "the check wrote into the root: {left:?}");
}
