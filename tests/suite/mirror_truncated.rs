//! Threat: a mirror serving a truncated file (an interrupted sync, a full
//! disk). The size in the signed INDEX is checked against what the server
//! announces and what arrives; the update is refused with an error naming
//! the file and both sizes, and nothing is applied or left behind.

use std::fs;

use crate::mirror_support;
use mirror_support::*;

#[test]
fn a_truncated_patch_is_refused_and_nothing_applied() {
    let w = World::new(&[1, 2, 3, 4], &[1, 2, 3]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let host = Host::at(&w, "host", 1);
    let p = w.file(&patch_name(2, 3));
    let len = fs::metadata(&p).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len / 2).unwrap();

    let o = update(&host.root, &nginx.url(), &w.keys.public, &[]);
    let e = refused(
        &o,
        &[
            &patch_name(2, 3),
            &format!("{} bytes on the mirror but {len}", len / 2),
            "signed INDEX",
        ],
    );
    assert!(e.contains("nothing was applied"), "{e}");
    host.unchanged(1);
    assert_eq!(
        downloads(&host.root),
        [patch_name(1, 2)],
        "only the verified first step stays"
    );
    // the first patch of the chain was fetched, then the run stopped at the second
    assert_eq!(nginx.hits_of(&patch_name(3, 4)).len(), 0);
}

#[test]
fn a_truncated_file_is_refused_when_resuming_too() {
    let w = World::new(&[4], &[]);
    let nginx = Nginx::serve(&w.pub_dir, "");
    let root = w.root("fresh");
    let d = w.file(&dist_name(4));
    let bytes = fs::read(&d).unwrap();
    // the mirror has the first half; this host already has more than that
    fs::write(&d, &bytes[..bytes.len() / 2]).unwrap();
    let state = sysup::host::state::State::open(&root).unwrap();
    use sha2::Digest;
    let partial = state.download_dir().join(format!(
        "{}.partial",
        hex::encode(sha2::Sha256::digest(&bytes))
    ));
    fs::write(&partial, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let to = id(4);
    let o = update(&root, &nginx.url(), &w.keys.public, &["--to", &to]);
    refused(
        &o,
        &[&format!(
            "{} bytes on the mirror but {}",
            bytes.len() / 2,
            bytes.len()
        )],
    );
    let hits = nginx.hits_of(&dist_name(4));
    assert_eq!(hits.len(), 1, "refused at once, not retried: {hits:?}");
    assert_eq!(hits[0].status, 416);
    assert_eq!(installed(&root), None);
}
