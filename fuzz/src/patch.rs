//! The `patch_apply` harness: a patch and an old tar in, `PatchReader` over
//! them, output read (hashed, never kept) up to [`OUTPUT_CAP`] bytes.
//!
//! Input layout: one mode byte, then
//! - mode 0, **raw**: `u32 len, patch bytes, old tar` — the patch file as
//!   given; reaches the header parser, rarely further (its SHA-256 holds);
//! - mode 1, **resealed**: same layout, but the harness first rewrites the
//!   header's SHA-256 and, when the header then parses, every section's
//!   SHA-256 — so mutated header fields, section layouts and compressed
//!   bytes (xz or zstd decoders, window limits) are all reached;
//! - mode 2, **structured**: header fields and the three sections
//!   *uncompressed* ([`Structured`]); the harness compresses the sections
//!   (zstd) and assembles a patch with every checksum valid — so mutations
//!   land in the controls, diff and extra streams the applier interprets
//!   (member records, bsdiff controls, the segment tables and controls of a
//!   member with reference prediction, patch formats 3 and 4 — the tiny
//!   seed set holds an x86-64 and an aarch64 one). The from-digests are those of the given old tar.
//!
//! Oracle: no panic, and when reading ends in a clean EOF the bytes read
//! have the header's to-size and to-SHA-256 and `finish` agrees (the
//! applier's invariant: EOF only after the result is verified).

use std::io::Read;
use std::path::Path;

use sysup::format::patch::header::{
    BodyFormat, Compression, PatchHeader, Section, SectionKind, Side, VERSION,
};
use sysup::patch::PatchReader;
use sysup::util::digest::{Digests, Hasher};

use crate::{put_chunk, Fields};

/// The patch name every harness patch carries.
pub const NAME: &str = "world-1-20260101_2-20260102";
/// Most output bytes read per input (bombs are cut here, not by a timeout).
pub const OUTPUT_CAP: u64 = 64 << 20;

pub const RAW: u8 = 0;
pub const RESEALED: u8 = 1;
pub const STRUCTURED: u8 = 2;

/// Mode 0/1 input: the patch file and the old tar.
pub fn encode_file(mode: u8, patch: &[u8], old: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    put_chunk(&mut v, patch);
    v.extend_from_slice(old);
    v
}

/// Mode 2 input: what a patch says, with its sections uncompressed.
#[derive(Clone, Debug)]
pub struct Structured {
    pub window_log: u8,
    pub old_members: u32,
    pub new_members: u32,
    pub to: Digests,
    pub controls: Vec<u8>,
    /// The diff section as stored (zero-run coded).
    pub diff: Vec<u8>,
    pub extra: Vec<u8>,
    pub old: Vec<u8>,
}

impl Structured {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![STRUCTURED, self.window_log];
        v.extend_from_slice(&self.old_members.to_le_bytes());
        v.extend_from_slice(&self.new_members.to_le_bytes());
        v.extend_from_slice(&self.to.size.to_le_bytes());
        v.extend_from_slice(&self.to.md5);
        v.extend_from_slice(&self.to.sha256);
        put_chunk(&mut v, &self.controls);
        put_chunk(&mut v, &self.diff);
        put_chunk(&mut v, &self.extra);
        v.extend_from_slice(&self.old);
        v
    }

    fn decode(f: &mut Fields<'_>) -> Option<Structured> {
        Some(Structured {
            window_log: f.u8()?,
            old_members: f.u32()?,
            new_members: f.u32()?,
            to: Digests {
                size: f.u64()?,
                md5: f.bytes(16)?.try_into().ok()?,
                sha256: f.bytes(32)?.try_into().ok()?,
            },
            controls: f.chunk()?.to_vec(),
            diff: f.chunk()?.to_vec(),
            extra: f.chunk()?.to_vec(),
            old: f.0.to_vec(),
        })
    }

    /// The patch file these fields make, every checksum valid.
    pub fn assemble(&self) -> Vec<u8> {
        let name: sysup::format::name::PatchName = NAME.parse().expect("a valid patch name");
        let hl = PatchHeader::encoded_len(&name);
        let mut at = u64::from(hl);
        let mut body = Vec::new();
        let mut sections = Vec::new();
        for (kind, raw) in [
            (SectionKind::Controls, &self.controls),
            (SectionKind::Diff, &self.diff),
            (SectionKind::Extra, &self.extra),
        ] {
            let z = zstd::bulk::compress(raw, 1).expect("zstd compresses memory");
            sections.push(Section {
                kind,
                offset: at,
                len: z.len() as u64,
                raw_len: raw.len() as u64,
                sha256: Digests::of(&z).sha256,
            });
            at += z.len() as u64;
            body.extend_from_slice(&z);
        }
        let h = PatchHeader {
            version: VERSION,
            from: Side {
                id: name.from.clone(),
                tar: Digests::of(&self.old),
            },
            to: Side {
                id: name.to.clone(),
                tar: self.to,
            },
            name,
            body_format: BodyFormat::MemberBsdiff,
            compression: Compression::Zstd,
            window_log: self.window_log,
            old_members: self.old_members,
            new_members: self.new_members,
            sections: sections.try_into().expect("three sections"),
            header_len: hl,
        };
        let mut v = h.encode();
        v.extend_from_slice(&body);
        v
    }
}

/// Rewrite the header SHA-256, then (when the header parses) each section's.
pub fn reseal(p: &mut [u8]) {
    if p.len() < 48 || &p[..8] != b"SYSUPPAT" {
        return;
    }
    let hl = u32::from_le_bytes(p[12..16].try_into().unwrap()) as usize;
    if !(48..=p.len()).contains(&hl) {
        return;
    }
    let sum = Digests::of(&p[..hl - 32]).sha256;
    p[hl - 32..hl].copy_from_slice(&sum);
    let Ok(mut h) = PatchHeader::read(&mut &p[..], p.len() as u64, Path::new("p")) else {
        return;
    };
    for s in &mut h.sections {
        // the header parsed, so the sections lie back to back inside the file
        let (a, b) = (s.offset as usize, (s.offset + s.len) as usize);
        s.sha256 = Digests::of(&p[a..b]).sha256;
    }
    let enc = h.encode();
    if enc.len() == hl {
        p[..hl].copy_from_slice(&enc);
    }
}

/// The harness (see the module docs).
pub fn run(data: &[u8]) {
    let mut f = Fields(data);
    let Some(mode) = f.u8() else { return };
    let (patch, old) = match mode % 3 {
        STRUCTURED => {
            let Some(s) = Structured::decode(&mut f) else {
                return;
            };
            (s.assemble(), s.old)
        }
        m => {
            let Some(p) = f.chunk() else { return };
            let mut p = p.to_vec();
            if m == RESEALED {
                reseal(&mut p);
            }
            (p, f.rest().to_vec())
        }
    };
    let path = crate::scratch("patch_apply").join(format!("{NAME}.patch"));
    std::fs::write(&path, &patch).expect("write the scratch patch");
    apply_checked(&path, &old);
}

/// Apply the patch at `path` to `old`, checking the applier's invariant.
pub fn apply_checked(path: &Path, old: &[u8]) {
    let Ok(mut r) = PatchReader::open(path, old) else {
        return;
    };
    let want = r.header().to.tar;
    let from = r.header().from.tar;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                total += n as u64;
                if total > OUTPUT_CAP {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let got = h.finish();
    // The applier's promise is the strong digest: size and SHA-256.
    assert_eq!(
        (got.size, got.sha256),
        (want.size, want.sha256),
        "a clean EOF with output that is not the to-tar"
    );
    let report = r
        .finish()
        .expect("EOF was returned, so finish must succeed");
    assert_eq!(report.output, want);
    if let Some(input) = report.input {
        assert_eq!(input.size, from.size);
        assert!(input.md5.is_none_or(|m| m == from.md5));
        assert!(input.sha256.is_none_or(|s| s == from.sha256));
    }
}
