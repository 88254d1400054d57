//! `sysup patch` with its stdin redirected from a file (`sysup patch P <
//! old.tar`): the input is then not hashed as it streams, only when a
//! verdict needs its digest (docs/decisions.md, "`sysup patch` hashes a
//! file on stdin only for a verdict"). The right base still makes the
//! exact new tar; another dist, a damaged byte the patch uses or a
//! truncated file is still a wrong base, named with the digest compared.

use crate::patch_support;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use patch_support::*;
use sysup::patch::PatchReader;
use sysup::Error;

struct Fixture {
    dir: tempfile::TempDir,
    patch: PathBuf,
    old: Vec<u8>,
    new: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = world_pair();
    let (ga, old) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, new) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    Fixture {
        patch: r.patch,
        old,
        new,
        dir,
    }
}

/// `bytes` in a file of the fixture's directory, after `skip` bytes of
/// something else; the file, opened and positioned at `skip`.
fn input_file(f: &Fixture, name: &str, skip: usize, bytes: &[u8]) -> File {
    let p = f.dir.path().join(name);
    let mut w = File::create(&p).unwrap();
    w.write_all(&vec![0xa5; skip]).unwrap();
    w.write_all(bytes).unwrap();
    drop(w);
    let mut r = File::open(&p).unwrap();
    r.seek(SeekFrom::Start(skip as u64)).unwrap();
    r
}

/// `sysup patch PATCH < file`.
fn sysup_patch_file(patch: &Path, stdin: File) -> Output {
    sysup()
        .arg("patch")
        .arg(patch)
        .stdin(Stdio::from(stdin))
        .output()
        .unwrap()
}

#[test]
fn the_base_from_a_file_makes_the_new_tar() {
    let f = fixture();
    for skip in [0, 1000] {
        let o = sysup_patch_file(&f.patch, input_file(&f, "old.tar", skip, &f.old));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout == f.new, "skip {skip}: not the new tar");
    }
}

/// `sysup patch < file` fails as a wrong base, naming the digest compared.
fn refused(f: &Fixture, input: &[u8], why: &str) -> String {
    let o = sysup_patch_file(&f.patch, input_file(f, "bad.tar", 0, input));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{why}: {err}");
    assert!(
        err.starts_with("error: wrong base for patch '"),
        "{why}: {err}"
    );
    assert!(err.contains(why), "{why}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The old tar with one byte changed in the data of a member the new tar
/// holds unchanged (so the patch copies it, and the result comes out
/// wrong only at the end).
fn damaged_copy(f: &Fixture) -> Vec<u8> {
    use sysup::format::archive::segment::{Item, Segmenter};
    let members = |tar: &[u8]| {
        let mut seg = Segmenter::new(tar, "t");
        let mut out = Vec::new();
        while let Some(Item::Member(m)) = seg.next_item().unwrap() {
            out.push((m.path.clone(), m.data_offset(), m.size));
        }
        out
    };
    let new = members(&f.new);
    let (_, at, _) = members(&f.old)
        .into_iter()
        .find(|(p, o, n)| {
            *n > 0
                && new.iter().any(|(q, a, m)| {
                    q == p
                        && m == n
                        && f.new[*a as usize..(a + m) as usize]
                            == f.old[*o as usize..(o + n) as usize]
                })
        })
        .expect("a member both tars hold unchanged");
    let mut old = f.old.clone();
    old[at as usize] ^= 0x01;
    old
}

fn digest_name() -> &'static str {
    if sysup::util::digest::sha256_in_hardware() {
        "sha256"
    } else {
        "md5"
    }
}

#[test]
fn wrong_bases_from_a_file_are_refused_with_their_digest() {
    let f = fixture();
    // A damaged byte the result copies: hashed again from the file for
    // the verdict.
    let err = refused(&f, &damaged_copy(&f), "is not world-1-20260101");
    assert!(err.contains(&format!("{} ", digest_name())), "{err}");
    assert!(!err.contains("not computed"), "{err}");
    // Another dist, truncated, and longer than the base.
    refused(&f, &f.new, "");
    refused(&f, &f.old[..f.old.len() / 2], "");
    let mut longer = f.old.clone();
    longer.extend_from_slice(&[0u8; 1024]);
    refused(&f, &longer, "");
}

/// Damage from a file is refused as a wrong base, or, when the byte is
/// one no new member is made from, harmless: exit 0 only with the exact
/// new tar (the output's SHA-256 decides; the input is not hashed then).
#[test]
fn damage_from_a_file_is_refused_or_leaves_the_result_exact() {
    let f = fixture();
    for at in [
        100,
        2000,
        f.old.len() / 3,
        f.old.len() / 2,
        f.old.len() - 700,
    ] {
        let mut old = f.old.clone();
        old[at] ^= 0x01;
        let o = sysup_patch_file(&f.patch, input_file(&f, "damaged.tar", 0, &old));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if o.status.success() {
            assert!(o.stdout == f.new, "at {at}: exit 0 with a wrong tar");
            continue;
        }
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("wrong base"), "at {at}: {err}");
    }
}

#[test]
fn a_rereadable_input_is_hashed_for_the_verdict_only() {
    let f = fixture();
    // Through the library: success leaves the input unhashed.
    let file = input_file(&f, "old.tar", 0, &f.old);
    let stream = input_file(&f, "old.tar", 0, &f.old);
    let mut r = PatchReader::open(&f.patch, stream)
        .unwrap()
        .rereadable_input(file, 0);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert!(out == f.new);
    let report = r.finish().unwrap();
    assert_eq!(report.input, None);
    assert_eq!(report.input_size, f.old.len() as u64);
    // The stream read is the wrong base while the file is the right one:
    // the verdict hashes the file, finds the base, and blames the patch
    // for what the stream made of it; never a clean end.
    let file = input_file(&f, "old.tar", 0, &f.old);
    let mut r = PatchReader::open(&f.patch, &f.new[..])
        .unwrap()
        .rereadable_input(file, 0);
    let e = r.read_to_end(&mut Vec::new()).expect_err("reached EOF");
    assert!(r.finish().is_err(), "{e}");
    // The file is the wrong base: a wrong base, with its digest.
    let damaged = damaged_copy(&f);
    let file = input_file(&f, "damaged.tar", 0, &damaged);
    let mut r = PatchReader::open(&f.patch, &damaged[..])
        .unwrap()
        .rereadable_input(file, 0);
    let e = r.read_to_end(&mut Vec::new()).expect_err("reached EOF");
    let e = e.into_inner().and_then(|b| b.downcast::<Error>().ok());
    match e.as_deref() {
        Some(Error::WrongBase { reason, .. }) => {
            assert!(reason.contains("is not world-1-20260101"), "{reason}");
            assert!(reason.contains(&format!("{} ", digest_name())), "{reason}");
            assert!(!reason.contains("not computed"), "{reason}");
        }
        other => panic!("expected a wrong base, got {other:?}"),
    }
}
