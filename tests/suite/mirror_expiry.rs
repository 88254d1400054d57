//! Threat: a mirror (or a man in the middle) that keeps serving the last
//! INDEX it had — validly signed, serial unchanged — freezes hosts on old,
//! vulnerable releases, and the serial check cannot see it (TUF's freeze
//! attack). `sysup publish --expires DURATION` writes an expiry into the
//! signed INDEX; hosts refuse it once that time has passed, saying when it
//! expired, unless the admin passes `--allow-expired` (an air-gapped site
//! updating from an old copy), which the output then reports. An INDEX
//! without an expiry (older publishes) never expires. Real nginx; INDEXes
//! signed by `sysup publish` and by the real `minisign` tool.

use std::fs;
use std::process::Command;

use crate::mirror_support;
use mirror_support::*;

/// The INDEX's `expires` value, if it has the line.
fn expires(w: &World) -> Option<u64> {
    fs::read_to_string(w.file("INDEX"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("expires "))
        .map(|v| v.parse().unwrap())
}

fn timestamp(w: &World) -> u64 {
    fs::read_to_string(w.file("INDEX"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("timestamp "))
        .unwrap()
        .parse()
        .unwrap()
}

fn publish(w: &World, args: &[&str]) -> std::process::Output {
    common::run(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&w.keys.secret)
            .args(args),
    )
}

#[test]
fn publish_writes_a_signed_expiry_that_hosts_honour_while_valid() {
    let w = World::new(&[1, 2], &[1]);
    // No --expires: no expiry, as before.
    assert_eq!(expires(&w), None);
    let o = publish(&w, &["--expires", "7d", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(expires(&w), Some(timestamp(&w) + 7 * 86_400));
    assert_eq!(p["expires"], expires(&w).unwrap());
    // The real minisign tool verifies the INDEX with its expiry.
    common::ok(
        Command::new("minisign")
            .args(["-V", "-p"])
            .arg(&w.keys.public)
            .arg("-m")
            .arg(w.file("INDEX")),
    );
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let out = String::from_utf8_lossy(
        &update(&host.root, &nginx.url(), &w.keys.public, &["--dry-run"]).stdout,
    )
    .into_owned();
    assert!(out.contains(", expires 20"), "{out}");
    let j = json_ok(&update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--json"],
    ));
    assert_eq!(j["result"], "applied");
    assert_eq!(j["index_expires"], expires(&w).unwrap());
    assert_eq!(j["expired"], false);

    // Durations: a number and a unit; anything else is a usage error.
    for bad in ["7", "7x", "d", "-1d", "0h", "99999999999999999w"] {
        let o = publish(&w, &[&format!("--expires={bad}")]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--expires"), "{bad}: {}", stderr(&o));
    }
}

#[test]
fn an_expired_index_is_refused_unless_allowed() {
    let w = World::new(&[1, 2], &[1]);
    let o = publish(&w, &["--expires", "1s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let when = expires(&w).unwrap();
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    // Wait until the INDEX has expired (a second after its timestamp).
    while (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs())
        < when
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(
        &o,
        &["INDEX", "expired at", " UTC", "ago", "--allow-expired"],
    );
    host.unchanged(1);
    assert_eq!(
        serial(&host.root),
        None,
        "an expired INDEX records no serial"
    );
    // --check says it is an error, not "up to date".
    let o = update(&host.root, &nginx.url(), &w.keys.public, &["--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn allow_expired_uses_it_and_says_so() {
    // A publisher's hand-written INDEX, expired in 1970, signed by minisign.
    let w = World::new(&[1, 2], &[1]);
    let text = fs::read_to_string(w.file("INDEX")).unwrap();
    let ts = timestamp(&w);
    let old = text.replace(
        &format!("timestamp {ts}\n"),
        "timestamp 1000\nexpires 2000\n",
    );
    w.sign_index(&old);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &["expired at 1970-01-01 00:33:20 UTC"]);
    host.unchanged(1);

    let o = update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--allow-expired"],
    );
    let out = common::ok(
        update_command(&host.root, &nginx.url())
            .arg("--pubkey")
            .arg(&w.keys.public)
            .args(["--allow-expired", "--check"]),
    );
    // (the first run applied; the check after it is up to date)
    assert!(o.status.success(), "{}", stderr(&o));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("warning: the INDEX expired at 1970-01-01 00:33:20 UTC; used because of --allow-expired"),
        "{said}"
    );
    assert!(out.contains("used because of --allow-expired"), "{out}");
    assert_eq!(installed(&host.root).as_deref(), Some(id(2).as_str()));

    // --json reports it too.
    let host2 = Host::at(&w, "host2", 1);
    let j = json_ok(&update(
        &host2.root,
        &nginx.url(),
        &w.keys.public,
        &["--allow-expired", "--json", "--download-only"],
    ));
    assert_eq!(j["expired"], true);
    assert_eq!(j["index_expires"], 2000);
    assert_eq!(j["result"], "downloaded");
}

#[test]
fn an_expiry_not_after_the_timestamp_is_malformed() {
    let w = World::new(&[1, 2], &[1]);
    let text = fs::read_to_string(w.file("INDEX")).unwrap();
    let ts = timestamp(&w);
    w.sign_index(&text.replace(
        &format!("timestamp {ts}\n"),
        &format!("timestamp {ts}\nexpires {ts}\n"),
    ));
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let o = update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--allow-expired"],
    );
    refused(&o, &["INDEX", "line 4", "not later than timestamp"]);
    host.unchanged(1);
}
