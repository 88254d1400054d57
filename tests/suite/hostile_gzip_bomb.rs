//! Threat: a decompression bomb in a dist — a few hundred kilobytes of gzip
//! that expand to hundreds of megabytes or more, aimed at whatever holds
//! decompressed bytes in memory: the MANIFEST (the one member sysup must
//! hold, capped at 512 MiB, here 400 MiB of zeros — parsed as it streams,
//! so refused at its first line), the space after the end-of-archive marker
//! (a gigabyte of zeros: refused after the 32 MiB the trailer may have), and
//! the small metadata members (`OBSOLETE`, `upgrade`: refused by their caps
//! before they are read). Peak RSS stays under the bound throughout.

use crate::common;
use crate::hostile_support;

use std::io::Write;

use common::*;
use hostile_support::*;

#[test]
fn a_manifest_of_400_mib_of_zeros() {
    let s = Site::new();
    let size: u64 = 400 << 20;
    let d = "format = 1\nid = \"world-2-20260102\"\narch = \"x86_64\"\nentries = 6\n";
    let mut h = member(
        &Hdr::new(b".sysup/DIST", b'0', d.len() as u64),
        d.as_bytes(),
    );
    h.extend(Hdr::new(b".sysup/MANIFEST", b'0', size).bytes());
    let dist = gz_file(
        s.dir(),
        "world-2-20260102.tar.gz",
        &[
            &|w: &mut dyn Write| w.write_all(&h).unwrap(),
            &|w: &mut dyn Write| zeros(w, size),
        ],
    );
    assert!(std::fs::metadata(&dist).unwrap().len() < 4 << 20);
    s.refused(&dist, &["MANIFEST", "line 1"]);
    info_refused(&dist, &["MANIFEST", "line 1"]);
}

#[test]
fn a_gigabyte_after_the_end_of_the_archive() {
    let s = Site::new();
    let crafted = small_world();
    let ok = craft_dist(s.dir(), "world-2-20260102", "x86_64", &crafted);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&ok).unwrap()),
        &mut tar,
    )
    .unwrap();
    std::fs::remove_file(&ok).unwrap();
    let dist = gz_file(
        s.dir(),
        "world-2-20260102.tar.gz",
        &[
            &|w: &mut dyn Write| w.write_all(&tar).unwrap(),
            &|w: &mut dyn Write| zeros(w, 1 << 30),
        ],
    );
    s.refused(&dist, &["bytes after the end-of-archive marker"]);
}

#[test]
fn metadata_members_past_their_caps() {
    let s = Site::new();
    let entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    let n = entries.len();
    let h = head("world-2-20260102", &manifest_of(entries), n);
    for (name, size, needle) in [
        (
            &b".sysup/OBSOLETE"[..],
            65u64 << 20,
            "OBSOLETE claims 68157440 bytes",
        ),
        (b".sysup/upgrade", 17 << 20, "upgrade claims 17825792 bytes"),
    ] {
        let dist = gz_file(
            s.dir(),
            "world-2-20260102.tar.gz",
            &[
                &|w: &mut dyn Write| w.write_all(&h).unwrap(),
                &|w: &mut dyn Write| w.write_all(&Hdr::new(name, b'0', size).bytes()).unwrap(),
                &|w: &mut dyn Write| zeros(w, size),
            ],
        );
        s.refused(&dist, &[needle]);
        info_refused(&dist, &[needle]);
    }
}
