//! Threat: a mirror serving the wrong bytes under a listed name (a bad sync,
//! a compromised server, a broken cache). Same size, other content: the
//! SHA-256 check refuses it and deletes it; another size: the size check
//! refuses it before it is downloaded. Nothing is applied.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

#[test]
fn same_size_other_content_is_refused_by_sha256() {
    let w = World::new(&[1, 2, 3, 4], &[1, 2, 3]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let p = w.file(&patch_name(3, 4));
    let mut b = fs::read(&p).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x40;
    fs::write(&p, &b).unwrap();

    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    let e = refused(
        &o,
        &[
            &patch_name(3, 4),
            "does not match the signed INDEX",
            "SHA-256",
        ],
    );
    assert!(e.contains("deleted"), "{e}");
    host.unchanged(1);
    assert!(!downloads(&host.root).contains(&patch_name(3, 4)));
    assert_eq!(
        nginx.hits_of(&patch_name(3, 4)).len(),
        1,
        "not fetched again"
    );
}

#[test]
fn another_file_under_the_name_is_refused_by_size() {
    let w = World::new(&[1, 2, 3, 4], &[1, 2, 3]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    // the mirror serves the 2→3 patch where 1→2 should be
    fs::copy(w.file(&patch_name(2, 3)), w.file(&patch_name(1, 2))).unwrap();
    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    refused(
        &o,
        &[&patch_name(1, 2), "bytes on the mirror but", "signed INDEX"],
    );
    host.unchanged(1);
}
