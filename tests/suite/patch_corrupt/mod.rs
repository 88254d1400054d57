//! Threat: a damaged or hostile patch. A truncated patch or a flipped byte
//! anywhere (header or any body section) is refused before one byte of output
//! is written; a patch whose checksums are valid but whose contents lie
//! (absurd lengths, references outside the old tar, a plan that drops what
//! it later needs, sections longer or shorter than declared, wrong result
//! digests) is an error, never a panic, never a huge allocation, and never a
//! clean end of stream.
//!
//! Here: damage to a real patch. Hand-made patches whose checksums are
//! valid are in [`crafted`], re-gzipped members in [`regzip`].

mod crafted;
mod regzip;

use crate::patch_support;

use std::path::PathBuf;

use patch_support::*;
use proptest::prelude::*;
use sysup::format::patch::header::PatchHeader;

struct Fixture {
    dir: tempfile::TempDir,
    patch: PathBuf,
    old: Vec<u8>,
    header: PatchHeader,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = world_pair();
    let (ga, old) = make_dist(dir.path(), "world-1-20260101", &a);
    let (gb, _) = make_dist(dir.path(), "world-2-20260102", &b);
    let r = diff(dir.path(), &ga, &gb);
    Fixture {
        patch: r.patch,
        header: r.header,
        old,
        dir,
    }
}

/// Write `bytes` as a patch file next to the fixture's and return its path.
fn variant(f: &Fixture, bytes: &[u8]) -> PathBuf {
    let p = f.dir.path().join("variant.patch");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn truncated_patches_are_refused_before_any_output() {
    let f = fixture();
    let bytes = std::fs::read(&f.patch).unwrap();
    let hl = f.header.header_len as usize;
    for len in [
        0,
        7,
        15,
        40,
        hl - 1,
        hl,
        hl + 1,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let p = variant(&f, &bytes[..len]);
        let o = sysup_patch(&p, &f.old);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "len {len}: {err}");
        assert!(o.stdout.is_empty(), "len {len}: output written");
        assert!(err.contains("variant.patch"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        if len >= hl {
            assert!(err.contains("corrupt patch"), "len {len}: {err}");
        }
    }
}

#[test]
fn flipped_bytes_anywhere_are_refused_before_any_output() {
    let f = fixture();
    let bytes = std::fs::read(&f.patch).unwrap();
    let mut spots = vec![0, 9, 13, 20, f.header.header_len as usize - 1];
    for s in &f.header.sections {
        let (a, n) = (s.offset as usize, s.len as usize);
        spots.extend([a, a + n / 2, a + n - 1]);
    }
    for at in spots {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let p = variant(&f, &b);
        let o = sysup_patch(&p, &f.old);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "flip at {at}: {err}");
        assert!(o.stdout.is_empty(), "flip at {at}: output written");
        assert!(
            err.contains("corrupt patch") || err.contains("invalid patch"),
            "flip at {at}: {err}"
        );
        if at >= f.header.header_len as usize {
            assert!(err.contains("section does not match its SHA-256"), "{err}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn any_damage_is_an_error(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4), cut in any::<Option<prop::sample::Index>>()) {
        let f = FIXTURE.with(|f| (f.patch.clone(), f.old.clone()));
        let mut b = std::fs::read(&f.0).unwrap();
        for (i, x) in flips {
            let at = i.index(b.len());
            b[at] ^= x;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("world-1-20260101_2-20260102.patch");
        std::fs::write(&p, &b).unwrap();
        prop_assert!(apply(&p, &f.1).is_err());
    }
}

thread_local! {
    static FIXTURE: Fixture = fixture();
}
