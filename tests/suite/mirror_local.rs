//! Offline and local mirrors (air-gapped hosts, USB updates): `--mirror
//! file:///media/usb/mirror` or a plain directory path works as a mirror
//! over HTTP does — the INDEX's signature checked before it is parsed, the
//! cheapest chain chosen, every file copied into the download directory and
//! verified against the signed INDEX's size and SHA-256 before it is used,
//! a partial copy resumed. A damaged, short or missing file is refused and
//! nothing is applied; the mirror directory is only read.

use std::fs;
use std::path::Path;

use crate::mirror_support;
use mirror_support::*;

/// `file://` URL of a directory.
fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[test]
fn a_file_url_mirror_applies_the_cheapest_chain() {
    let w = World::new(&[1, 2, 3], &[1, 2]);
    let host = Host::at(&w, "host", 1);
    let before = common::snapshot(&w.pub_dir);
    let j = json_ok(&update(
        &host.root,
        &file_url(&w.pub_dir),
        &w.keys.public,
        &["--json"],
    ));
    assert_eq!(j["result"], "applied");
    assert_eq!(j["mirror"], file_url(&w.pub_dir));
    assert_eq!(j["plans"][0]["how"], "patches");
    assert_eq!(j["plans"][0]["steps"].as_array().unwrap().len(), 2);
    let fetched: u64 = [patch_name(1, 2), patch_name(2, 3)]
        .iter()
        .map(|p| fs::metadata(w.file(p)).unwrap().len())
        .sum();
    assert_eq!(j["fetched_bytes"], fetched);
    assert_eq!(installed(&host.root).as_deref(), Some(id(3).as_str()));
    assert!(
        tree_diff(&host.root, 3).is_empty(),
        "{:?}",
        tree_diff(&host.root, 3)
    );
    assert_eq!(
        serial_for(&host.root, &w.keys.public),
        Some(index_serial(&w.file("INDEX")))
    );
    // The mirror was only read.
    assert!(common::diff_snapshots(&before, &common::snapshot(&w.pub_dir)).is_empty());
}

#[test]
fn a_plain_directory_works_and_resumes_a_partial_copy() {
    let w = World::new(&[1, 2], &[]);
    let host = Host::at(&w, "host", 1);
    // Half of the dist already copied by an earlier, interrupted run.
    let dist = fs::read(w.file(&dist_name(2))).unwrap();
    use sha2::Digest;
    let partial = format!("{}.partial", hex::encode(sha2::Sha256::digest(&dist)));
    let dl = host.root.join("var/db/sysup/download");
    fs::write(dl.join(&partial), &dist[..dist.len() / 2]).unwrap();
    let dir = format!("{}/", w.pub_dir.display());
    let j = json_ok(&update(&host.root, &dir, &w.keys.public, &["--json"]));
    assert_eq!(j["result"], "applied");
    assert_eq!(j["plans"][0]["how"], "dist");
    assert_eq!(j["downloads"][0]["resumed_from"], dist.len() / 2);
    assert_eq!(j["fetched_bytes"], dist.len() - dist.len() / 2);
    assert!(tree_diff(&host.root, 2).is_empty());
    // --check against the directory: up to date now.
    let o = update(&host.root, &dir, &w.keys.public, &["--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_damaged_or_short_file_is_refused() {
    let w = World::new(&[1, 2], &[1]);
    let url = file_url(&w.pub_dir);
    let host = Host::at(&w, "host", 1);
    let p = w.file(&patch_name(1, 2));
    let good = fs::read(&p).unwrap();
    // Same size, one byte changed: the SHA-256 catches it.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    fs::write(&p, &bad).unwrap();
    let o = update(&host.root, &url, &w.keys.public, &[]);
    refused(
        &o,
        &[
            &patch_name(1, 2),
            "does not match the signed INDEX",
            "SHA-256",
        ],
    );
    host.unchanged(1);
    assert!(
        downloads(&host.root).is_empty(),
        "{:?}",
        downloads(&host.root)
    );
    // Short: refused before a byte is copied.
    fs::write(&p, &good[..good.len() - 10]).unwrap();
    let o = update(&host.root, &url, &w.keys.public, &[]);
    refused(&o, &[&patch_name(1, 2), "bytes on the mirror but"]);
    host.unchanged(1);
    // Missing.
    fs::remove_file(&p).unwrap();
    fs::remove_file(w.file(&dist_name(2))).unwrap();
    let o = update(&host.root, &url, &w.keys.public, &[]);
    refused(&o, &[&patch_name(1, 2), "not on the mirror"]);
    host.unchanged(1);
}

#[test]
fn the_signature_is_checked_as_over_http() {
    let w = World::new(&[1, 2], &[1]);
    let host = Host::at(&w, "host", 1);
    let dir = w.pub_dir.display().to_string();
    // An altered INDEX.
    let text = fs::read_to_string(w.file("INDEX")).unwrap();
    fs::write(w.file("INDEX"), text.replace("timestamp ", "timestamp 9")).unwrap();
    let o = update(&host.root, &dir, &w.keys.public, &[]);
    refused(&o, &["INDEX.minisig", "does not verify", "altered"]);
    // Unsigned.
    fs::remove_file(w.file("INDEX.minisig")).unwrap();
    let o = update(&host.root, &dir, &w.keys.public, &[]);
    refused(&o, &["no signature", "never used"]);
    // No INDEX at all (a wrong directory).
    let o = update(
        &host.root,
        &format!("file://{}/nothing", dir),
        &w.keys.public,
        &[],
    );
    refused(&o, &["no INDEX", "nothing/INDEX"]);
    host.unchanged(1);
    assert_eq!(serial(&host.root), None);
    // A file:// URL naming another machine is refused.
    let o = update(&host.root, "file://server/x", &w.keys.public, &[]);
    refused(&o, &["names a host"]);
}
