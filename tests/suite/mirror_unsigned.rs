//! Threat: an unsigned INDEX. A mirror without `INDEX.minisig` (or a host
//! without a public key to check one) gets nothing applied: sysup never
//! uses an INDEX it could not verify.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

#[test]
fn a_mirror_without_a_signature_is_refused() {
    let w = World::new(&[1, 2], &[1]);
    // published without --sign: INDEX only (and any old signature removed)
    let o = common::ok(common::sysup().arg("publish").arg(&w.pub_dir));
    assert!(o.contains("INDEX"), "{o}");
    assert!(!w.file("INDEX.minisig").exists());
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(
        &o,
        &[
            "no signature",
            "INDEX.minisig",
            "unsigned INDEX is never used",
        ],
    );
    host.unchanged(1);
    assert_eq!(serial(&host.root), None);
    assert_eq!(nginx.hits_of("INDEX.minisig")[0].status, 404);
    assert!(!nginx.hits().iter().any(|h| h.uri.ends_with(".patch")));
}

#[test]
fn a_host_without_a_public_key_refuses_to_update() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let mut c = common::sysup();
    c.arg("update")
        .arg("--root")
        .arg(&host.root)
        .args(["--mirror", &nginx.url()]);
    let o = common::run(&mut c);
    refused(&o, &["no public key", "--pubkey", "etc/sysup/minisign.pub"]);
    host.unchanged(1);
    assert!(nginx.hits().is_empty(), "nothing fetched without a key");
}

#[test]
fn mirror_and_key_can_come_from_sysup_conf() {
    let w = World::new(&[1, 2], &[1]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    fs::create_dir_all(host.root.join("etc/keys")).unwrap();
    fs::copy(&w.keys.public, host.root.join("etc/keys/mirror.pub")).unwrap();
    fs::write(
        host.root.join("etc/sysup.conf"),
        format!("[mirror]\nurl = \"{}\"\npubkey = \"/etc/keys/mirror.pub\"\nretries = 1\n\n[clean]\nkeep = 2\n", nginx.url()),
    )
    .unwrap();
    let mut c = common::sysup();
    c.arg("update")
        .arg("--root")
        .arg(&host.root)
        .args(["--json", "--download-only"]);
    let j = json_ok(&common::run(&mut c));
    assert_eq!(j["plans"][0]["how"], "patches");
    assert_eq!(j["mirror"], nginx.url().trim_end_matches('/'));
}
