//! The tar record: `sysup build` stores the uncompressed tar's size, MD5 and
//! SHA-256 in the dist's gzip header, `sysup info` shows them, and `sysup
//! diff` takes them instead of hashing the dist again. A damaged record is
//! ignored (the diff hashes, and makes the same patch); a record whose size
//! disagrees with the stream is refused; a record that lies about a digest
//! makes a patch that no host can apply, never a wrong tree.

use crate::common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sysup::format::dist::{encode_tar_record, read_tar_record};
use sysup::format::gz::extra::PAYLOAD_OFFSET;
use sysup::util::digest::Digests;

/// The digests of a dist's uncompressed tar, by GNU gzip.
fn gunzipped(dist: &Path) -> Digests {
    let o = Command::new("gzip")
        .arg("-dc")
        .arg(dist)
        .output()
        .expect("run gzip");
    assert!(o.status.success());
    Digests::of(&o.stdout)
}

/// Overwrite the record in place.
fn set_record(dist: &Path, record: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(dist).unwrap();
    f.write_all_at(record, PAYLOAD_OFFSET).unwrap();
}

fn diff(old: &Path, new: &Path, out: &Path) -> PathBuf {
    let json = ok(sysup()
        .arg("diff")
        .arg(old)
        .arg(new)
        .arg("--json")
        .arg("--out")
        .arg(out));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    PathBuf::from(v["patch"].as_str().expect("patch path in --json"))
}

/// Fixture worlds 1 and 2 built by `sysup build` in a fresh directory.
fn two_dists() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let (_, a) = world_dist(d.path(), 1);
    let (_, b) = world_dist(d.path(), 2);
    (d, a, b)
}

#[test]
fn build_records_the_tar_digests_and_info_shows_them() {
    let d = tempfile::tempdir().unwrap();
    let (_, dist) = world_dist(d.path(), 1);
    let truth = gunzipped(&dist);
    assert_eq!(read_tar_record(&dist).unwrap(), Some(truth));
    let v: serde_json::Value =
        serde_json::from_str(&ok(sysup().arg("info").arg("--json").arg(&dist))).unwrap();
    assert_eq!(v["tar"]["size"], truth.size);
    assert_eq!(v["tar"]["md5"], truth.md5_hex());
    assert_eq!(v["tar"]["sha256"], truth.sha256_hex());
    let text = ok(sysup().arg("info").arg(&dist));
    assert!(text.contains(&truth.sha256_hex()), "{text}");
    // GNU gzip checks the header and the whole member
    assert!(Command::new("gzip")
        .arg("-t")
        .arg(&dist)
        .status()
        .unwrap()
        .success());
}

#[test]
fn a_damaged_record_is_ignored_and_the_diff_hashes_instead() {
    let (d, a, b) = two_dists();
    let trusted = fs::read(diff(&a, &b, &d.path().join("p1"))).unwrap();
    // one flipped bit in each record's SHA-256: its CRC-32 no longer holds
    for dist in [&a, &b] {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dist)
            .unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, PAYLOAD_OFFSET + 30).unwrap();
        f.write_all_at(&[byte[0] ^ 1], PAYLOAD_OFFSET + 30).unwrap();
        assert_eq!(read_tar_record(dist).unwrap(), None);
    }
    let hashed_patch = diff(&a, &b, &d.path().join("p2"));
    let hashed = fs::read(&hashed_patch).unwrap();
    assert!(trusted == hashed, "the record and the hash disagree");
    let v: serde_json::Value =
        serde_json::from_str(&ok(sysup().arg("info").arg("--json").arg(&hashed_patch))).unwrap();
    assert_eq!(v["to"]["sha256"], gunzipped(&b).sha256_hex());
    assert_eq!(v["from"]["md5"], gunzipped(&a).md5_hex());
}

#[test]
fn a_record_of_another_length_is_refused_naming_the_dist() {
    let (d, a, b) = two_dists();
    let mut wrong = gunzipped(&b);
    wrong.size += 512;
    set_record(&b, &encode_tar_record(&wrong));
    let o = run(sysup()
        .arg("diff")
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(d.path().join("p")));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&b.display().to_string()) && err.contains("records a"),
        "{err}"
    );
    assert!(!d
        .path()
        .join("p/world-1-20260101_2-20260102.patch")
        .exists());
}

#[test]
fn a_lying_record_makes_a_patch_no_host_applies() {
    let (d, a, b) = two_dists();
    // a well-formed record (its CRC holds) with another SHA-256
    let mut lie = gunzipped(&b);
    lie.sha256[0] ^= 0x80;
    set_record(&b, &encode_tar_record(&lie));
    let patch = diff(&a, &b, &d.path().join("p"));

    // the filter refuses its output
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc '{}' | '{}' patch '{}' > /dev/null",
            a.display(),
            env!("CARGO_BIN_EXE_sysup"),
            patch.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "sysup patch accepted a lying header");
    assert!(err.contains("error:") && !err.contains("panicked"), "{err}");

    // and an apply leaves the root as it was
    let root = d.path().join("root");
    fs::create_dir(&root).unwrap();
    apply_ok(&root, &[&a]);
    let before = guarded_snapshot(&root);
    let err = apply_fails(&root, &[&patch]);
    assert!(err.contains("SHA-256") || err.contains("sha256"), "{err}");
    assert_unchanged(&root, &before);
    assert_eq!(installed_world(&root).as_deref(), Some("world-1-20260101"));
}
