//! Hand-made patches for the refusal tests (`patch_corrupt`,
//! `patch_compressed_members`, `patch_zip_members`): the pieces of one member's bsdiff, assembled
//! into a patch whose header and section checksums are all valid, so that
//! what the applier refuses is the content, not the framing.

use std::io::Write;
use std::path::{Path, PathBuf};

use sysup::format::patch::header::{
    BodyFormat, Compression, PatchHeader, Section, SectionKind, Side,
};
use sysup::format::patch::record::Keep;
use sysup::format::patch::zeros::ZeroRunWriter;
use sysup::util::digest::Digests;

/// The pieces of a hand-made patch.
pub struct Craft {
    pub old: Vec<u8>,
    pub new: Vec<u8>,
    pub ctrl: Vec<u8>,
    /// Raw diff bytes (zero-run coded when assembled).
    pub diff: Vec<u8>,
    pub extra: Vec<u8>,
    pub old_members: u32,
    pub new_members: u32,
    pub window_log: u8,
    /// Override the uncompressed length recorded for (diff, extra).
    pub raw_len_override: [Option<u64>; 2],
    /// Patch format version written in the header.
    pub version: u32,
}

pub fn zstd_bytes(raw: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(raw, 3).unwrap()
}

/// Assemble a patch whose header and section checksums are all valid
/// (zstd sections, so the zstd decoder is exercised here too).
pub fn assemble(dir: &Path, c: &Craft) -> PathBuf {
    let name: sysup::format::name::PatchName = "world-1-20260101_2-20260102".parse().unwrap();
    let hl = PatchHeader::encoded_len(&name);
    let mut coded = ZeroRunWriter::new(Vec::new());
    coded.write_all(&c.diff).unwrap();
    let diff = coded.finish().unwrap();
    let mut at = u64::from(hl);
    let mut sections = Vec::new();
    let mut body = Vec::new();
    for (k, (kind, raw)) in [
        (SectionKind::Controls, &c.ctrl),
        (SectionKind::Diff, &diff),
        (SectionKind::Extra, &c.extra),
    ]
    .into_iter()
    .enumerate()
    {
        let z = zstd_bytes(raw);
        let raw_len = match k {
            1 | 2 => c.raw_len_override[k - 1].unwrap_or(raw.len() as u64),
            _ => raw.len() as u64,
        };
        sections.push(Section {
            kind,
            offset: at,
            len: z.len() as u64,
            raw_len,
            sha256: Digests::of(&z).sha256,
        });
        at += z.len() as u64;
        body.extend_from_slice(&z);
    }
    let h = PatchHeader {
        version: c.version,
        from: Side {
            id: name.from.clone(),
            tar: Digests::of(&c.old),
        },
        to: Side {
            id: name.to.clone(),
            tar: Digests::of(&c.new),
        },
        name,
        body_format: BodyFormat::MemberBsdiff,
        compression: Compression::Zstd,
        window_log: c.window_log,
        old_members: c.old_members,
        new_members: c.new_members,
        sections: sections.try_into().unwrap(),
        header_len: hl,
    };
    let p = dir.join("world-1-20260101_2-20260102.patch");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(&h.encode()).unwrap();
    f.write_all(&body).unwrap();
    p
}

/// A one-member tar holding `data` as `name`: the old or new tar of a
/// hand-made one-member patch.
pub fn one_member_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

/// The bsdiff add bytes that turn `old`'s first header block into `new`'s.
pub fn header_diff(new: &[u8], old: &[u8]) -> Vec<u8> {
    new[..512]
        .iter()
        .zip(&old[..512])
        .map(|(n, o)| n.wrapping_sub(*o))
        .collect()
}

/// The member plan of the controls: how many entries, then each one.
pub fn plan(w: &mut sysup::format::patch::record::RecordWriter<Vec<u8>>, entries: &[Keep]) {
    w.varint(entries.len() as u64).unwrap();
    for e in entries {
        w.keep(e).unwrap();
    }
}

/// `v` as the patch's varints, back to back.
pub fn varints(v: &[u64]) -> Vec<u8> {
    let mut w = sysup::format::patch::record::RecordWriter::new(Vec::new());
    for &x in v {
        w.varint(x).unwrap();
    }
    w.into_inner()
}
