//! Threat: a stale or replayed INDEX (freeze / rollback attack). A mirror
//! that serves an older, validly signed INDEX than one this host already
//! accepted is refused — the host would otherwise be held on, or sent back
//! to, old releases — unless the operator passes `--allow-downgrade`.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

#[test]
fn an_index_older_than_the_accepted_one_is_refused() {
    // Old INDEX: revisions 1..3. New INDEX: 1..4.
    let w = World::new(&[1, 2, 3], &[1, 2]);
    let old_index = fs::read(w.file("INDEX")).unwrap();
    let old_sig = fs::read(w.file("INDEX.minisig")).unwrap();
    let old_serial = index_serial(&w.file("INDEX"));
    fs::copy(&built().dists[3], w.file(&dist_name(4))).unwrap();
    fs::copy(&built().patches[2], w.file(&patch_name(3, 4))).unwrap();
    w.publish();
    let new_serial = index_serial(&w.file("INDEX"));
    assert!(new_serial > old_serial, "{new_serial} > {old_serial}");

    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let j = json_ok(&update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--json"],
    ));
    assert_eq!(j["serial"], new_serial);
    assert_eq!(serial(&host.root), Some(new_serial));
    assert_eq!(installed(&host.root).as_deref(), Some(id(4).as_str()));

    // The mirror goes back to the old INDEX (correctly signed, just old).
    fs::write(w.file("INDEX"), &old_index).unwrap();
    fs::write(w.file("INDEX.minisig"), &old_sig).unwrap();
    let at4 = snapshot(&host.root);
    let o = update(&host.root, &nginx.url(), &w.keys.public, &["--to", &id(3)]);
    refused(
        &o,
        &[
            &format!("serial {old_serial}, lower than serial {new_serial}"),
            "--allow-downgrade",
        ],
    );
    assert_eq!(serial(&host.root), Some(new_serial));
    assert_eq!(installed(&host.root).as_deref(), Some(id(4).as_str()));
    assert!(common::diff_snapshots(&at4, &snapshot(&host.root)).is_empty());

    // Deliberately: accepted, and recorded, but still no step back unasked.
    let j = json_ok(&update(
        &host.root,
        &nginx.url(),
        &w.keys.public,
        &["--json", "--allow-downgrade"],
    ));
    assert_eq!(j["previous_serial"], new_serial);
    assert_eq!(j["serial"], old_serial);
    assert_eq!(j["plans"][0]["how"], "up-to-date");
    assert_eq!(serial(&host.root), Some(old_serial));
}

#[test]
fn the_same_index_again_is_fine_and_serials_grow_per_publish() {
    let w = World::new(&[1, 2], &[1]);
    let s1 = index_serial(&w.file("INDEX"));
    w.publish();
    let s2 = index_serial(&w.file("INDEX"));
    w.publish();
    let s3 = index_serial(&w.file("INDEX"));
    assert!(s1 < s2 && s2 < s3, "{s1} {s2} {s3}");
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    for _ in 0..2 {
        json_ok(&update(
            &host.root,
            &nginx.url(),
            &w.keys.public,
            &["--json", "--download-only"],
        ));
        assert_eq!(serial(&host.root), Some(s3));
    }
}
