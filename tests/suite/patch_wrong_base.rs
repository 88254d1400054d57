//! Threat: the wrong old tar fed to a patch — another dist, a truncated or
//! garbage stream, extra bytes after the tar, one damaged byte, the gzip file
//! itself. Each is refused with a "wrong base" error naming the patch (exit
//! 1 from `sysup patch`), and the new tar never reaches a clean end of stream.

use crate::patch_support;

use std::io::Read;
use std::path::PathBuf;

use patch_support::*;
use sysup::patch::PatchReader;
use sysup::Error;

struct Fixture {
    _dir: tempfile::TempDir,
    patch: PathBuf,
    old: Vec<u8>,
    old_gz: PathBuf,
    other: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = world_pair();
    let (ga, old) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, other) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    Fixture {
        patch: r.patch,
        old,
        old_gz: ga,
        other,
        _dir: dir,
    }
}

/// Applying `input` fails as a wrong base, through the library and the binary.
fn refused(f: &Fixture, input: &[u8], why: &str) -> String {
    match apply(&f.patch, input) {
        Err(Error::WrongBase { patch, reason }) => {
            assert_eq!(patch, f.patch);
            assert!(reason.contains(why), "{why}: {reason}");
        }
        other => panic!("{why}: expected a wrong-base error, got {other:?}"),
    }
    let o = sysup_patch(&f.patch, input);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{why}: {err}");
    assert!(err.starts_with("error: wrong base for patch '"), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn another_dist_is_a_wrong_base() {
    let f = fixture();
    refused(&f, &f.other, "");
}

#[test]
fn a_truncated_old_stream_is_a_wrong_base() {
    let f = fixture();
    for cut in [0, 1, 512, f.old.len() / 2, f.old.len() - 1] {
        refused(&f, &f.old[..cut], "");
    }
}

#[test]
fn garbage_and_extended_streams_are_wrong_bases() {
    let f = fixture();
    let garbage = binary(77, f.old.len());
    refused(&f, &garbage, "");
    let mut longer = f.old.clone();
    longer.extend_from_slice(&[0u8; 1024]);
    refused(&f, &longer, "expected 1");
    // A tar header where the patch expects the end of the old tar.
    let end = {
        use sysup::format::archive::segment::{Item, Segmenter};
        let mut seg = Segmenter::new(&f.old[..], "old");
        loop {
            match seg.next_item().unwrap() {
                Some(Item::Trailer(t)) => break f.old.len() - t.len(),
                Some(Item::Member(_)) => {}
                None => unreachable!(),
            }
        }
    };
    let mut more = f.old[..end].to_vec();
    more.extend_from_slice(&f.old[..1536]);
    more.extend_from_slice(&[0u8; 1024]);
    refused(&f, &more, "more than");
}

#[test]
fn the_gzip_file_itself_gets_a_hint() {
    let f = fixture();
    let gz = std::fs::read(&f.old_gz).unwrap();
    let err = refused(&f, &gz, "gunzip the dist first");
    assert!(err.contains("gunzip"), "{err}");
}

#[test]
fn one_damaged_byte_never_reaches_a_clean_eof() {
    let f = fixture();
    // Damage every region of the old tar in turn: headers, data, trailer.
    for at in [100, 2000, f.old.len() / 2, f.old.len() - 700] {
        let mut old = f.old.clone();
        old[at] ^= 0x01;
        let mut r = PatchReader::open(&f.patch, &old[..]).unwrap();
        let mut out = Vec::new();
        let e = r
            .read_to_end(&mut out)
            .expect_err("damaged base reached EOF");
        assert!(e.to_string().contains("wrong base"), "{e}");
        assert!(r.finish().is_err());
        // A damaged header fails its checksum at once; damaged data shows
        // in the digest at the end.
        let err = refused(&f, &old, "");
        assert!(
            err.contains("checksum mismatch") || err.contains("is not world-1-20260101"),
            "{err}"
        );
    }
}

#[test]
fn a_failure_upstream_in_a_chain_keeps_its_cause() {
    let f = fixture();
    let truncated = &f.old[..f.old.len() / 3];
    let first = PatchReader::open(&f.patch, truncated).unwrap();
    // Feed the first patch's output to the same patch (any second patch
    // would do): the error that surfaces is the first one's wrong base.
    let mut second = PatchReader::open(&f.patch, first).unwrap();
    let e = second.read_to_end(&mut Vec::new()).unwrap_err();
    let e = sysup::error::Error::from_io(e, "read", std::path::Path::new("<chain>"));
    match e {
        Error::WrongBase { reason, .. } => assert!(reason.contains("ends"), "{reason}"),
        other => panic!("expected the upstream wrong base, got {other:?}"),
    }
}

#[test]
fn a_base_with_other_members_is_a_wrong_base_not_a_bad_patch() {
    // Bases whose members differ from the patch's from-tar in number or
    // size steer the applier through the controls differently; the patch
    // then seems to contradict itself. With the input hashed, that must
    // still be told as a wrong base.
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = world_pair();
    let mut variants = Vec::new();
    let mut shifted = a.clone();
    shifted.insert(
        "aaa/first".into(),
        file(b"sorts before everything\n".to_vec()),
    );
    variants.push(("a member in front", shifted));
    let mut fewer = a.clone();
    fewer.remove("usr/bin/same");
    fewer.remove("usr/bin/link");
    variants.push(("two members fewer", fewer));
    let mut resized = a.clone();
    if let Some(Entry::File { data, .. }) = resized.get_mut("usr/bin/tool") {
        data.extend_from_slice(&binary(99, 70_000));
    }
    variants.push(("a member grown", resized));
    for (i, (why, tree)) in variants.into_iter().enumerate() {
        let (_, tar) = make_dist(dir.path(), &format!("world-1-2026010{i}"), &tree);
        let err = refused(&f, &tar, "");
        eprintln!("{why}: {err}");
    }
}
