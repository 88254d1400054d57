//! Trust beyond one key (TUF's lessons on a plain static mirror), with keys
//! and signatures made by the real `minisign` tool and a real nginx:
//!
//! - several trusted keys in `[mirror] pubkeys` of sysup.conf: an INDEX
//!   signed by any of them is accepted, one signed by another key is
//!   refused naming the keys the host trusts;
//! - key rotation: the publisher announces a new key in `KEYS`, signed by
//!   the current key (`minisign -S`), then signs INDEXes with the new key;
//!   every host accepts it on its next update and keeps it under
//!   `var/db/sysup/keys/` — no admin touches the hosts — and a later
//!   rotation chains from it; accepted serials stay per key;
//! - a KEYS file that is unsigned, altered, signed by an untrusted key, or
//!   announcing a key already past its `until` gives no trust; a dry run or
//!   `--check` keeps no key; a link among the kept keys is refused.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::mirror_support;
use mirror_support::*;

/// The base64 line of a minisign public key file.
fn b64(k: &Keys) -> String {
    fs::read_to_string(&k.public)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string()
}

/// Write the mirror's KEYS file with `lines` and sign it with `signer`
/// (the real minisign tool).
fn announce(w: &World, lines: &[String], signer: &Keys) {
    let mut text = "sysup-keys 1\n".to_string();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    fs::write(w.file("KEYS"), text).unwrap();
    common::ok(
        Command::new("minisign")
            .args(["-S", "-s"])
            .arg(&signer.secret)
            .arg("-m")
            .arg(w.file("KEYS"))
            .stdin(Stdio::null()),
    );
    assert!(w.file("KEYS.minisig").exists());
}

/// Publish the mirror's INDEX signed with `k`.
fn publish_with(w: &World, k: &Keys) {
    common::ok(
        common::sysup()
            .arg("publish")
            .arg(&w.pub_dir)
            .arg("--sign")
            .arg(&k.secret),
    );
}

fn kept_keys(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("var/db/sysup/keys"))
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_fleet_moves_to_a_new_key_announced_by_the_old_one() {
    let w = World::new(&[1, 2, 3], &[1, 2]);
    let a = &w.keys;
    let b = keys(w.tmp.path(), "b");
    let c = keys(w.tmp.path(), "c");
    let nginx = Nginx::serve(&w.pub_dir, "");
    let hosts = [Host::at(&w, "h1", 1), Host::at(&w, "h2", 1)];
    // Each host trusts A: in-root key from sysup.conf, as a fleet would.
    for h in &hosts {
        fs::create_dir_all(h.root.join("etc/sysup")).unwrap();
        fs::copy(&a.public, h.root.join("etc/sysup/minisign.pub")).unwrap();
    }
    let a_serial = index_serial(&w.file("INDEX"));
    let j = json_ok(&common::run(
        update_command(&hosts[0].root, &nginx.url()).args(["--json", "--to", &id(2)]),
    ));
    assert_eq!(j["key_id"], key_id(&a.public));
    assert_eq!(serial_for(&hosts[0].root, &a.public), Some(a_serial));

    // Rotation: A announces B (valid a year), the INDEX is signed with B.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 365 * 86_400;
    announce(&w, &[format!("key {} until={until}", b64(&b))], a);
    publish_with(&w, &b);
    let b_serial = index_serial(&w.file("INDEX"));

    // A dry run trusts B for its own check but keeps nothing.
    let o = common::run(update_command(&hosts[1].root, &nginx.url()).args(["--json", "--check"]));
    assert_eq!(o.status.code(), Some(100), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["keys_accepted"][0]["key_id"], key_id(&b.public));
    assert_eq!(j["keys_accepted"][0]["path"], serde_json::Value::Null);
    assert!(kept_keys(&hosts[1].root).is_empty());

    for h in &hosts {
        let o = common::run(update_command(&h.root, &nginx.url()).arg("--json"));
        let j = json_ok(&o);
        assert_eq!(j["result"], "applied");
        assert_eq!(j["key_id"], key_id(&b.public));
        let acc = &j["keys_accepted"][0];
        assert_eq!(acc["key_id"], key_id(&b.public));
        assert_eq!(acc["signed_by"], key_id(&a.public));
        assert_eq!(acc["until"], until);
        let kept = h.root.join("var/db/sysup/keys").join(key_id(&b.public));
        assert_eq!(acc["path"], kept.canonicalize().unwrap().to_str().unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(installed(&h.root).as_deref(), Some(id(3).as_str()));
        // Serials stay per key.
        assert_eq!(serial_for(&h.root, &b.public), Some(b_serial));
    }
    assert_eq!(serial_for(&hosts[0].root, &a.public), Some(a_serial));
    assert_eq!(kept_keys(&hosts[0].root), vec![key_id(&b.public)]);

    // The KEYS file gone (rotation done): B stays trusted, from the host's record.
    fs::remove_file(w.file("KEYS")).unwrap();
    fs::remove_file(w.file("KEYS.minisig")).unwrap();
    publish_with(&w, &b);
    let j = json_ok(&common::run(
        update_command(&hosts[0].root, &nginx.url()).arg("--json"),
    ));
    assert_eq!(j["key_id"], key_id(&b.public));
    assert_eq!(j["keys_accepted"], serde_json::json!([]));

    // The next rotation chains: B announces C.
    announce(&w, &[format!("key {}", b64(&c))], &b);
    publish_with(&w, &c);
    let out = common::ok(&mut update_command(&hosts[0].root, &nginx.url()));
    assert!(
        out.contains(&format!(
            "accepted key {} from the mirror's KEYS, signed by trusted key {}",
            key_id(&c.public),
            key_id(&b.public)
        )),
        "{out}"
    );
    let mut want = vec![key_id(&b.public), key_id(&c.public)];
    want.sort();
    assert_eq!(kept_keys(&hosts[0].root), want);
}

#[test]
fn keys_files_that_give_no_trust() {
    let w = World::new(&[1, 2], &[1]);
    let (a, b) = (&w.keys, keys(w.tmp.path(), "b"));
    let x = keys(w.tmp.path(), "x");
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let run = |args: &[&str]| update(&host.root, &nginx.url(), &a.public, args);

    // Signed by a key the host does not trust.
    announce(&w, &[format!("key {}", b64(&b))], &x);
    publish_with(&w, &b);
    refused(
        &run(&[]),
        &["KEYS.minisig", "does not verify", "another key"],
    );
    // Altered after signing.
    announce(&w, &[format!("key {}", b64(&x))], a);
    fs::write(w.file("KEYS"), format!("sysup-keys 1\nkey {}\n", b64(&b))).unwrap();
    refused(&run(&[]), &["KEYS.minisig", "altered"]);
    // Unsigned.
    fs::remove_file(w.file("KEYS.minisig")).unwrap();
    refused(&run(&[]), &["KEYS", "no signature", "never used"]);
    // Validly signed, but the key's time is over: not trusted, so the
    // INDEX it signed is refused, naming the keys the host does trust.
    announce(&w, &[format!("key {} until=1000", b64(&b))], a);
    let e = refused(&run(&[]), &["INDEX.minisig", "another key"]);
    assert!(e.contains(&key_id(&a.public)), "{e}");
    // Malformed (signed) KEYS: refused naming the line.
    announce(&w, &[format!("key {} until=soon", b64(&b))], a);
    refused(&run(&[]), &["KEYS", "line 2", "until="]);
    host.unchanged(1);
    assert!(kept_keys(&host.root).is_empty());
    assert_eq!(serial(&host.root), None);
}

#[test]
fn several_configured_keys() {
    let w = World::new(&[1, 2], &[1]);
    let (a, b, x) = (&w.keys, keys(w.tmp.path(), "b"), keys(w.tmp.path(), "x"));
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let etc = host.root.join("etc/sysup");
    fs::create_dir_all(&etc).unwrap();
    fs::copy(&a.public, etc.join("a.pub")).unwrap();
    fs::copy(&b.public, etc.join("b.pub")).unwrap();
    fs::write(
        host.root.join("etc/sysup.conf"),
        "[mirror]\npubkeys = [\"/etc/sysup/a.pub\", \"/etc/sysup/b.pub\"]\n",
    )
    .unwrap();
    // Signed by B, the second configured key: accepted.
    publish_with(&w, &b);
    let j = json_ok(&common::run(
        update_command(&host.root, &nginx.url()).args(["--json", "--download-only"]),
    ));
    assert_eq!(j["key_id"], key_id(&b.public));
    assert!(j["pubkey"].as_str().unwrap().ends_with("etc/sysup/b.pub"));
    // Signed by X: refused, listing both trusted keys.
    publish_with(&w, &x);
    let e = refused(
        &common::run(&mut update_command(&host.root, &nginx.url())),
        &[
            "INDEX.minisig",
            "does not verify with any trusted key",
            "another key",
        ],
    );
    assert!(
        e.contains(&key_id(&a.public)) && e.contains(&key_id(&b.public)),
        "{e}"
    );
    // --pubkey, repeatable, replaces the configured keys.
    let o = common::run(
        update_command(&host.root, &nginx.url())
            .arg("--pubkey")
            .arg(&a.public)
            .arg("--pubkey")
            .arg(&x.public)
            .arg("--json"),
    );
    assert_eq!(json_ok(&o)["key_id"], key_id(&x.public));
}

#[test]
fn a_link_among_the_kept_keys_is_refused() {
    let w = World::new(&[1, 2], &[1]);
    let b = keys(w.tmp.path(), "b");
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let dir = host.root.join("var/db/sysup/keys");
    fs::create_dir_all(&dir).unwrap();
    let elsewhere = w.tmp.path().join("planted");
    fs::write(&elsewhere, format!("sysup-keys 1\nkey {}\n", b64(&b))).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join(key_id(&b.public))).unwrap();
    publish_with(&w, &b);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(&o, &["var/db/sysup/keys", "symbolic link"]);
    let diffs = common::diff_snapshots(&host.before, &snapshot(&host.root));
    assert!(diffs.is_empty(), "{diffs:?}");
    assert_eq!(serial(&host.root), None);
}
