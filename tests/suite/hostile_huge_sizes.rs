//! Threat: tar headers whose sizes claim terabytes, to make a reader
//! allocate or wait for them — a PAX extended header or a GNU long-name
//! header claiming 2^40 bytes (with a real 320 MiB gzip bomb behind
//! it), a member of 2^40 bytes, metadata members of 2^40 bytes. Each is
//! refused from the header alone, by `sysup apply` and by `sysup info`
//! (which reads a dist's head with the same segmenter), with the peak RSS
//! of the process under the bound.

use crate::hostile_support;

use std::io::Write;

use hostile_support::*;

const TIB: u64 = 1 << 40;
/// Real bytes behind a header that claims a terabyte: enough that buffering
/// them would break the memory bound.
const BOMB: u64 = 320 << 20;

/// World 2: the small world's head, then `hostile` (a prefix of bytes that
/// the gzip stream follows with `BOMB` zero bytes).
fn bomb_dist(s: &Site, hostile: &[u8]) -> std::path::PathBuf {
    let entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    let n = entries.len();
    let h = head("world-2-20260102", &manifest_of(entries), n);
    gz_file(
        s.dir(),
        "world-2-20260102.tar.gz",
        &[
            &|w: &mut dyn Write| w.write_all(&h).unwrap(),
            &|w: &mut dyn Write| w.write_all(hostile).unwrap(),
            &|w: &mut dyn Write| zeros(w, BOMB),
        ],
    )
}

#[test]
fn a_pax_header_claiming_a_terabyte() {
    let s = Site::new();
    let dist = bomb_dist(&s, &Hdr::new(b"PaxHeader", b'x', TIB).bytes());
    s.refused(&dist, &["extension header", "declares 1099511627776 bytes"]);
}

#[test]
fn a_gnu_long_name_claiming_a_terabyte() {
    let s = Site::new();
    let dist = bomb_dist(&s, &Hdr::new(b"././@LongLink", b'L', TIB).bytes());
    s.refused(&dist, &["declares 1099511627776 bytes"]);
}

#[test]
fn sysup_info_reads_no_extension_without_a_cap() {
    // `info` reads only the dist's head: here the GNU long name comes
    // before the first metadata member.
    let t = tempfile::tempdir().unwrap();
    let dist = gz_file(
        t.path(),
        "world-2-20260102.tar.gz",
        &[
            &|w: &mut dyn Write| {
                w.write_all(&Hdr::new(b"././@LongLink", b'L', TIB).bytes())
                    .unwrap()
            },
            &|w: &mut dyn Write| zeros(w, BOMB),
        ],
    );
    info_refused(&dist, &["declares 1099511627776 bytes"]);
    let dist = gz_file(
        t.path(),
        "world-3-20260103.tar.gz",
        &[
            &|w: &mut dyn Write| {
                w.write_all(&Hdr::new(b"PaxHeader", b'x', 1 << 30).bytes())
                    .unwrap()
            },
            &|w: &mut dyn Write| zeros(w, BOMB),
        ],
    );
    info_refused(&dist, &["declares 1073741824 bytes"]);
}

#[test]
fn a_member_claiming_a_terabyte() {
    let s = Site::new();
    // listed with that size: refused by the free-space check, before any write
    let mut big = file_entry(b"usr/bin/huge", b"");
    big.size = TIB;
    let mut entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    entries.push(big);
    let n = entries.len();
    let mut tar = head("world-2-20260102", &manifest_of(entries), n);
    tar.extend(Hdr::new(b"usr/bin/huge", b'0', TIB).bytes());
    let dist = gz_file(
        s.dir(),
        "world-2-20260102.tar.gz",
        &[
            &|w: &mut dyn Write| w.write_all(&tar).unwrap(),
            &|w: &mut dyn Write| zeros(w, BOMB),
        ],
    );
    s.refused(&dist, &["not enough free space"]);
    // listed small, claimed huge: the header alone is refused
    let mut entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    entries.push(file_entry(b"usr/bin/huge", b"tiny"));
    let n = entries.len();
    let mut tar = head("world-2-20260102", &manifest_of(entries), n);
    tar.extend(small_world_members());
    tar.extend(Hdr::new(b"usr/bin/huge", b'0', TIB).bytes());
    let dist = gz_file(
        s.dir(),
        "world-2-20260102.tar.gz",
        &[
            &|w: &mut dyn Write| w.write_all(&tar).unwrap(),
            &|w: &mut dyn Write| zeros(w, BOMB),
        ],
    );
    s.refused(
        &dist,
        &["usr/bin/huge", "its size disagrees with the MANIFEST"],
    );
    // past the 1 TiB member limit: refused by the segmenter
    let dist = bomb_dist(&s, &Hdr::new(b"usr/bin/huge", b'0', 4 * TIB).bytes());
    s.refused(&dist, &["more than the 1 TiB limit"]);
}

#[test]
fn metadata_members_claiming_a_terabyte() {
    let s = Site::new();
    for (name, needle) in [
        (&b".sysup/DIST"[..], "DIST claims 1099511627776 bytes"),
        (b".sysup/MANIFEST", "MANIFEST claims 1099511627776 bytes"),
    ] {
        let mut tar = Vec::new();
        if name == b".sysup/MANIFEST" {
            let d = "format = 1\nid = \"world-2-20260102\"\narch = \"x86_64\"\nentries = 1\n";
            tar.extend(member(
                &Hdr::new(b".sysup/DIST", b'0', d.len() as u64),
                d.as_bytes(),
            ));
        }
        tar.extend(Hdr::new(name, b'0', TIB).bytes());
        let dist = gz_file(
            s.dir(),
            "world-2-20260102.tar.gz",
            &[
                &|w: &mut dyn Write| w.write_all(&tar).unwrap(),
                &|w: &mut dyn Write| zeros(w, BOMB),
            ],
        );
        s.refused(&dist, &[needle]);
        info_refused(&dist, &[needle]);
    }
}
