//! Threat: the accepted INDEX serial kept per host, whatever key signed it.
//! A serial only means something within one publisher's numbering: one
//! record for every key lets another publisher's (or a test mirror's) high
//! serial lock a host out of its real mirror, and pushes the admin to
//! `--allow-downgrade`, which lifts the rollback guard for that run.
//! The host keeps one accepted serial per signing key (minisign key id):
//! switching mirrors under the same key can never go back, and another key
//! has its own record. A record of an older sysup (one serial for the host)
//! is taken as the configured key's and moved to its per-key record.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

/// `text` (an INDEX) with its serial line set to `serial`.
fn with_serial(text: &str, serial: u64) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("serial ") {
                format!("serial {serial}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn each_signing_key_has_its_own_serial() {
    // Publisher A, published twice: its first INDEX is an older one, which
    // a second mirror of A's (same key, other URL) still serves.
    let a = World::new(&[1, 2], &[1]);
    let a_old_index = fs::read(a.file("INDEX")).unwrap();
    let a_old_sig = fs::read(a.file("INDEX.minisig")).unwrap();
    let a_old = index_serial(&a.file("INDEX"));
    a.publish();
    let sa = index_serial(&a.file("INDEX"));
    assert!(sa > a_old);
    let stale = a.tmp.path().join("stale");
    fs::create_dir(&stale).unwrap();
    for f in fs::read_dir(&a.pub_dir).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), stale.join(f.file_name())).unwrap();
    }
    fs::write(stale.join("INDEX"), &a_old_index).unwrap();
    fs::write(stale.join("INDEX.minisig"), &a_old_sig).unwrap();

    // Publisher B (another key) numbers its INDEXes lower than A does.
    let b = World::new(&[1, 2, 3], &[1, 2]);
    let b_text = fs::read_to_string(b.file("INDEX")).unwrap();
    let sb = sa - 100;
    b.sign_index(&with_serial(&b_text, sb));
    assert_ne!(key_id(&a.keys.public), key_id(&b.keys.public));

    let na = Nginx::serve(&a.pub_dir, "");
    let na_stale = Nginx::serve(&stale, "");
    let nb = Nginx::serve(&b.pub_dir, "");
    let host = Host::at(&a, "host", 1);
    let root = &host.root;

    let j = json_ok(&update(
        root,
        &na.url(),
        &a.keys.public,
        &["--json", "--download-only"],
    ));
    assert_eq!(j["serial"], sa);
    assert_eq!(serial_for(root, &a.keys.public), Some(sa));

    // Same key, another mirror that serves A's older INDEX: refused.
    let o = update(root, &na_stale.url(), &a.keys.public, &["--download-only"]);
    refused(
        &o,
        &[
            &format!("serial {a_old}, lower than serial {sa}"),
            &key_id(&a.keys.public),
        ],
    );
    assert_eq!(serial_for(root, &a.keys.public), Some(sa));

    // Key B: its own numbering, judged against its own record only.
    let j = json_ok(&update(
        root,
        &nb.url(),
        &b.keys.public,
        &["--json", "--download-only"],
    ));
    assert_eq!(j["serial"], sb);
    assert!(j["previous_serial"].is_null(), "{j}");
    assert_eq!(serial_for(root, &b.keys.public), Some(sb));
    assert_eq!(serial_for(root, &a.keys.public), Some(sa));

    // ... and B cannot go back either.
    b.sign_index(&with_serial(&b_text, sb - 1));
    let o = update(root, &nb.url(), &b.keys.public, &["--download-only"]);
    refused(
        &o,
        &[
            &format!("serial {}, lower than serial {sb}", sb - 1),
            &key_id(&b.keys.public),
        ],
    );
    assert_eq!(serial_for(root, &b.keys.public), Some(sb));

    // Back to A: its record was kept apart from B's.
    let j = json_ok(&update(
        root,
        &na.url(),
        &a.keys.public,
        &["--json", "--download-only"],
    ));
    assert_eq!(j["previous_serial"], sa);
    let o = update(root, &na_stale.url(), &a.keys.public, &["--download-only"]);
    refused(&o, &[&format!("lower than serial {sa}")]);
    host.unchanged(1);
}

#[test]
fn an_old_single_serial_is_taken_as_the_configured_keys() {
    let a = World::new(&[1, 2], &[1]);
    let s = index_serial(&a.file("INDEX"));
    let n = Nginx::serve(&a.pub_dir, "");
    let host = Host::at(&a, "host", 1);
    let legacy = host.root.join("var/db/sysup/mirror/serial");
    fs::create_dir_all(legacy.parent().unwrap()).unwrap();

    // Higher than the mirror's: the old record still guards this key.
    fs::write(&legacy, format!("{}\n", s + 5)).unwrap();
    let o = update(&host.root, &n.url(), &a.keys.public, &["--download-only"]);
    refused(&o, &[&format!("serial {s}, lower than serial {}", s + 5)]);
    assert!(legacy.exists());
    assert_eq!(serial_for(&host.root, &a.keys.public), None);

    // Lower: accepted, and the record moves to the key's own.
    fs::write(&legacy, format!("{}\n", s - 5)).unwrap();
    let j = json_ok(&update(
        &host.root,
        &n.url(),
        &a.keys.public,
        &["--json", "--download-only"],
    ));
    assert_eq!(j["previous_serial"], s - 5);
    assert_eq!(serial_for(&host.root, &a.keys.public), Some(s));
    assert!(!legacy.exists(), "the single record was moved to the key's");

    // Another key does not inherit it: B's lower serial is its first.
    let b = World::new(&[1, 2], &[1]);
    let b_text = fs::read_to_string(b.file("INDEX")).unwrap();
    b.sign_index(&with_serial(&b_text, s - 50));
    let nb = Nginx::serve(&b.pub_dir, "");
    let j = json_ok(&update(
        &host.root,
        &nb.url(),
        &b.keys.public,
        &["--json", "--download-only"],
    ));
    assert!(j["previous_serial"].is_null(), "{j}");
    assert_eq!(serial_for(&host.root, &b.keys.public), Some(s - 50));
    assert_eq!(serial_for(&host.root, &a.keys.public), Some(s));
}
