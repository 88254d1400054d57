//! Threat: a decompression bomb in a patch body — sections (header and
//! section checksums all valid) that claim or expand to huge sizes: an extra
//! section that says it holds 2^39 bytes, one that decompresses to a
//! gigabyte where the header says a few kilobytes, a literal member of 300
//! MiB of zeros from a few hundred bytes of zstd, a zstd frame asking for a
//! bigger window than the header allows, a header asking for a 2^31 window.
//! Through `sysup apply` each is refused with the root as it was; through
//! `sysup patch` (old tar in, new tar out, nothing staged) each ends in an
//! error; in both, the peak RSS stays under the bound.

use crate::common;
use crate::hostile_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use hostile_support::*;
use sysup::format::archive::segment::{Item, Segmenter};
use sysup::format::patch::header::{
    BodyFormat, Compression, PatchHeader, Section, SectionKind, Side, VERSION,
};
use sysup::format::patch::record::{DataOp, HeaderOp, Keep, MemberRecord, RecordWriter};
use sysup::util::digest::Digests;

const NAME: &str = "world-1-20260101_2-20260102";

/// zstd of `prefix`, `zeros` zero bytes, `suffix`, streamed (a bomb is
/// never held in memory); `window_log` forces the frame's window.
fn zstd_bomb(prefix: &[u8], zeros_n: u64, suffix: &[u8], window_log: Option<u32>) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    if let Some(w) = window_log {
        e.window_log(w).unwrap();
    }
    e.write_all(prefix).unwrap();
    zeros(&mut e, zeros_n);
    e.write_all(suffix).unwrap();
    e.finish().unwrap()
}

/// Controls that make the new tar from `members` (header length, data
/// length) all literal, keeping nothing of the `n_old` old members.
fn literal_controls(n_old: usize, members: &[(u64, u64)], trailer: u64) -> Vec<u8> {
    let mut w = RecordWriter::new(Vec::new());
    w.varint(n_old as u64).unwrap();
    for _ in 0..n_old {
        w.keep(&Keep::default()).unwrap();
    }
    w.varint(members.len() as u64).unwrap();
    for &(h, d) in members {
        w.member(&MemberRecord {
            header: HeaderOp::Literal { len: h },
            data: DataOp::Literal { len: d },
            pad_literal: false,
        })
        .unwrap();
    }
    w.varint(trailer).unwrap();
    w.into_inner()
}

fn count_members(tar: &[u8]) -> usize {
    let mut seg = Segmenter::new(tar, "old");
    let mut n = 0;
    while let Some(Item::Member(_)) = seg.next_item().unwrap() {
        n += 1;
    }
    n
}

/// Sections as (compressed bytes, declared raw length).
struct Body {
    controls: (Vec<u8>, u64),
    diff: (Vec<u8>, u64),
    extra: (Vec<u8>, u64),
}

/// A patch with valid header and section checksums.
fn assemble(dir: &Path, old: &[u8], to: Digests, n_new: u32, window_log: u8, b: &Body) -> PathBuf {
    let name: sysup::format::name::PatchName = NAME.parse().unwrap();
    let hl = PatchHeader::encoded_len(&name);
    let mut at = u64::from(hl);
    let mut sections = Vec::new();
    let mut bytes = Vec::new();
    for (kind, (z, raw_len)) in [
        (SectionKind::Controls, &b.controls),
        (SectionKind::Diff, &b.diff),
        (SectionKind::Extra, &b.extra),
    ] {
        sections.push(Section {
            kind,
            offset: at,
            len: z.len() as u64,
            raw_len: *raw_len,
            sha256: Digests::of(z).sha256,
        });
        at += z.len() as u64;
        bytes.extend_from_slice(z);
    }
    let h = PatchHeader {
        version: VERSION,
        from: Side {
            id: name.from.clone(),
            tar: Digests::of(old),
        },
        to: Side {
            id: name.to.clone(),
            tar: to,
        },
        name,
        body_format: BodyFormat::MemberBsdiff,
        compression: Compression::Zstd,
        window_log,
        old_members: count_members(old) as u32,
        new_members: n_new,
        sections: sections.try_into().unwrap(),
        header_len: hl,
    };
    let p = dir.join(format!("{NAME}.patch"));
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&h.encode()).unwrap();
    f.write_all(&bytes).unwrap();
    p
}

/// Digests that claim `size` bytes and match nothing.
fn junk(size: u64) -> Digests {
    Digests {
        size,
        md5: [7; 16],
        sha256: [7; 32],
    }
}

fn empty() -> (Vec<u8>, u64) {
    (zstd::bulk::compress(b"", 3).unwrap(), 0)
}

/// One new member: a `.sysup/DIST` header claiming `size` bytes, then
/// (declared) `size` zero bytes and the end blocks.
fn dist_member_bomb(s: &Site, size: u64, zeros_n: u64, extra_raw: u64) -> PathBuf {
    let old = s.base_tar();
    let h = Hdr::new(b".sysup/DIST", b'0', size).bytes();
    let body = Body {
        controls: {
            let c = literal_controls(count_members(&old), &[(512, size)], 1024);
            (zstd::bulk::compress(&c, 3).unwrap(), c.len() as u64)
        },
        diff: empty(),
        extra: (zstd_bomb(&h, zeros_n, &[0u8; 1024], None), extra_raw),
    };
    assemble(s.dir(), &old, junk(512 + size + 1024), 1, 27, &body)
}

/// `sysup patch P < old > /dev/null`, refused as the module docs say.
fn patch_refused(s: &Site, p: &Path, needles: &[&str]) {
    let old = s.dir().join("old.tar");
    std::fs::write(&old, s.base_tar()).unwrap();
    let o = measure(
        sysup().arg("patch").arg(p),
        std::fs::File::open(&old).unwrap().into(),
        Stdio::null(),
    );
    check_refusal(&o, p, needles);
}

#[test]
fn an_extra_section_claiming_half_a_terabyte() {
    let s = Site::new();
    let huge = 1u64 << 39;
    let p = dist_member_bomb(&s, huge, 64 << 10, 512 + huge + 1024);
    // the host reads the member header and stops: DIST may not be that big
    s.refused(&p, &["DIST claims 549755813888 bytes"]);
    // the applier alone streams until the section runs dry
    patch_refused(&s, &p, &["extra section decompresses to fewer bytes"]);
}

#[test]
fn an_extra_section_expanding_past_its_declared_length() {
    let s = Site::new();
    // declared: 512 + 4096 + 1024 bytes; the zstd frame holds a gigabyte
    let old = s.base_tar();
    let h = Hdr::new(b".sysup/DIST", b'0', 4096).bytes();
    let body = Body {
        controls: {
            let c = literal_controls(count_members(&old), &[(512, 4096)], 1024);
            (zstd::bulk::compress(&c, 3).unwrap(), c.len() as u64)
        },
        diff: empty(),
        extra: (zstd_bomb(&h, 1 << 30, &[], None), 512 + 4096 + 1024),
    };
    let p = assemble(s.dir(), &old, junk(512 + 4096 + 1024), 1, 27, &body);
    patch_refused(
        &s,
        &p,
        &["extra section decompresses to more bytes than its header says"],
    );
    s.refused(&p, &["DIST"]);
}

#[test]
fn a_300_mib_literal_file_from_a_small_patch() {
    // A valid-looking world 2 whose one new file is 300 MiB of zeros, listed
    // honestly in its MANIFEST: staged, then refused at the very end (the
    // result is not the tar the header promised), so nothing goes live.
    let s = Site::new();
    let old = s.base_tar();
    let big: u64 = 300 << 20;
    let mut bomb = file_entry(b"usr/bin/bomb", b"");
    bomb.size = big;
    bomb.sha256 = Some({
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        zeros(&mut HashW(&mut h), big);
        h.finalize().into()
    });
    let mut entries: Vec<_> = small_world().into_iter().map(|c| c.entry).collect();
    entries.push(bomb);
    let n = entries.len();
    let mut tar = head("world-2-20260102", &manifest_of(entries), n);
    tar.extend(small_world_members());
    // every member but the bomb, as (header, data) lengths and literal bytes
    let mut members = Vec::new();
    let mut extra = Vec::new();
    {
        let mut seg = Segmenter::new(&tar[..], "new");
        while let Some(Item::Member(m)) = seg.next_item().unwrap() {
            let mut d = Vec::new();
            std::io::Read::read_to_end(&mut seg.data(), &mut d).unwrap();
            members.push((m.header.len() as u64, m.size));
            extra.extend_from_slice(&m.header);
            extra.extend_from_slice(&d);
        }
    }
    let bomb_h = Hdr::new(b"usr/bin/bomb", b'0', big).bytes();
    extra.extend_from_slice(&bomb_h);
    members.push((512, big));
    let to_size = tar.len() as u64 + 512 + big + 1024;
    let extra_raw = extra.len() as u64 + big + 1024;
    let body = Body {
        controls: {
            let c = literal_controls(count_members(&old), &members, 1024);
            (zstd::bulk::compress(&c, 3).unwrap(), c.len() as u64)
        },
        diff: empty(),
        extra: (zstd_bomb(&extra, big, &[0u8; 1024], None), extra_raw),
    };
    let p = assemble(
        s.dir(),
        &old,
        junk(to_size),
        members.len() as u32,
        27,
        &body,
    );
    assert!(std::fs::metadata(&p).unwrap().len() < 1 << 20);
    s.refused(&p, &["the result is not world-2-20260102"]);
}

/// Lets [`zeros`] feed a hasher.
struct HashW<'a>(&'a mut sha2::Sha256);

impl Write for HashW<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_zstd_frame_wanting_a_bigger_window_than_the_header_allows() {
    let s = Site::new();
    let old = s.base_tar();
    let h = Hdr::new(b".sysup/DIST", b'0', 64 << 20).bytes();
    let body = Body {
        controls: {
            let c = literal_controls(count_members(&old), &[(512, 64 << 20)], 1024);
            (zstd::bulk::compress(&c, 3).unwrap(), c.len() as u64)
        },
        diff: empty(),
        // a 2^27 window in the frame, 2^20 in the header
        extra: (
            zstd_bomb(&h, 64 << 20, &[0u8; 1024], Some(27)),
            512 + (64 << 20) + 1024,
        ),
    };
    let p = assemble(s.dir(), &old, junk(512 + (64 << 20) + 1024), 1, 20, &body);
    patch_refused(&s, &p, &["extra section does not decompress"]);
    s.refused(&p, &["extra section does not decompress"]);
}

#[test]
fn a_header_asking_for_a_two_gigabyte_window() {
    let s = Site::new();
    let p = dist_member_bomb(&s, 4096, 4096, 512 + 4096 + 1024);
    let mut b = std::fs::read(&p).unwrap();
    let mut h = PatchHeader::read(&mut &b[..], b.len() as u64, &p).unwrap();
    h.window_log = 31;
    let enc = h.encode();
    b[..enc.len()].copy_from_slice(&enc);
    std::fs::write(&p, &b).unwrap();
    s.refused(&p, &["2^31"]);
    patch_refused(&s, &p, &["2^31"]);
}
