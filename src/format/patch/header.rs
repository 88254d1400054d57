//! The patch file header (docs/design.md §3): magic, version, the patch's name, the
//! from/to ids with size, MD5 and SHA-256, the body format and compression,
//! and where the three body sections lie, each with its own SHA-256.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "SYSUPPAT"  u32 version  u32 header_len
//! str name  str from_id u64 from_size [16] from_md5 [32] from_sha256
//!           str to_id   u64 to_size   [16] to_md5   [32] to_sha256
//! u8 body_format  u8 compression  u8 window_log
//! u32 old_members  u32 new_members
//! u8 section_count, then per section: u64 offset u64 len u64 raw_len [32] sha256
//! [32] sha256 of every header byte before it
//! ```
//! (`str` is a u16 length and UTF-8 bytes.) The sections follow the header
//! back to back, in the order controls, diff, extra, and end the file.
//!
//! Invariants: [`PatchHeader::read`] reads at most [`MAX_HEADER_LEN`] bytes
//! and never the body; a header is accepted only if its own checksum, its
//! name and ids, and its section layout (contiguous, ending exactly at the
//! file's end) all check out, so later stages may trust those numbers as
//! *bounds* (never as content: the body is checked against the section
//! digests separately).

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::name::{DistId, PatchName};
use crate::util::digest::Digests;

/// The first bytes of every patch.
pub const MAGIC: &[u8; 8] = b"SYSUPPAT";
/// The version this build writes: 2 added re-gzipped members
/// ([`crate::format::patch::record::DataOp::Regz`]), 3 x86-64 reference
/// prediction in bsdiffed members ([`crate::format::patch::xref`]), 4
/// aarch64 reference prediction (same records: the machine is the old
/// member's, [`crate::format::patch::xref::aarch64`]) and re-encoded xz and
/// zstd members ([`crate::format::patch::record::DataOp::Recode`]), 5
/// re-zipped members (the same record naming a zip archive,
/// [`crate::format::patch::rezip`]); otherwise the same as 1.
pub const VERSION: u32 = 5;
/// The oldest version this build reads.
pub const MIN_VERSION: u32 = 1;
/// A header never exceeds this (names are short, sections few).
pub const MAX_HEADER_LEN: u32 = 64 * 1024;
/// Largest tar a patch may describe on either side (1 TiB): a cap on what a
/// hostile header can make the applier produce.
pub const MAX_TAR: u64 = 1 << 40;
/// Largest compression window (xz dictionary, zstd window) the applier
/// accepts (128 MiB): bounds decoder memory.
pub const MAX_WINDOW_LOG: u8 = 27;

/// How the body encodes the new tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyFormat {
    /// Member-aware bsdiff: per new member, header and data ops against a
    /// paired old member (copy, bsdiff controls + diff + extra, or literal).
    MemberBsdiff,
}

impl BodyFormat {
    fn code(self) -> u8 {
        match self {
            BodyFormat::MemberBsdiff => 1,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        (c == 1).then_some(BodyFormat::MemberBsdiff)
    }
}

impl fmt::Display for BodyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyFormat::MemberBsdiff => "member-bsdiff (controls/diff/extra)",
        })
    }
}

/// How each body section is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// One zstd frame per section.
    Zstd,
    /// One xz (LZMA2) stream per section; the default.
    Xz,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::Zstd => 1,
            Compression::Xz => 2,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Xz),
            _ => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        })
    }
}

/// The body sections, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SectionKind {
    /// The retention plan and the per-member records and bsdiff controls.
    Controls,
    /// Bytes added to old bytes (mostly zeros).
    Diff,
    /// Literal bytes.
    Extra,
}

impl SectionKind {
    pub const ALL: [SectionKind; 3] =
        [SectionKind::Controls, SectionKind::Diff, SectionKind::Extra];
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Controls => "controls",
            SectionKind::Diff => "diff",
            SectionKind::Extra => "extra",
        }
    }
}

/// Where one section lies and what it must hash to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Section {
    pub kind: SectionKind,
    /// Offset from the start of the file.
    pub offset: u64,
    /// Compressed length.
    pub len: u64,
    /// Uncompressed length.
    pub raw_len: u64,
    /// SHA-256 of the compressed bytes.
    #[serde(serialize_with = "crate::util::digest::hex32")]
    pub sha256: [u8; 32],
}

/// One side of a patch: which dist, and its uncompressed tar's digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Side {
    pub id: DistId,
    #[serde(flatten)]
    pub tar: Digests,
}

/// Everything a patch says about itself before its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatchHeader {
    pub version: u32,
    pub name: PatchName,
    pub from: Side,
    pub to: Side,
    pub body_format: BodyFormat,
    pub compression: Compression,
    /// log2 of the window the sections were compressed with (decoder memory).
    pub window_log: u8,
    /// Members in the old and new tars.
    pub old_members: u32,
    pub new_members: u32,
    pub sections: [Section; 3],
    /// Length of the header in bytes.
    pub header_len: u32,
}

impl PatchHeader {
    /// The header's encoded length for these names (sections not needed).
    pub fn encoded_len(name: &PatchName) -> u32 {
        let strs = name.to_string().len() + name.from.to_string().len() + name.to.to_string().len();
        (8 + 4 + 4 + 3 * 2 + strs + 2 * (8 + 16 + 32) + 3 + 8 + 1 + 3 * (8 * 3 + 32) + 32) as u32
    }

    /// Encode (the `header_len` field is recomputed).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(512);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&Self::encoded_len(&self.name).to_le_bytes());
        put_str(&mut b, &self.name.to_string());
        for side in [&self.from, &self.to] {
            put_str(&mut b, &side.id.to_string());
            b.extend_from_slice(&side.tar.size.to_le_bytes());
            b.extend_from_slice(&side.tar.md5);
            b.extend_from_slice(&side.tar.sha256);
        }
        b.push(self.body_format.code());
        b.push(self.compression.code());
        b.push(self.window_log);
        b.extend_from_slice(&self.old_members.to_le_bytes());
        b.extend_from_slice(&self.new_members.to_le_bytes());
        b.push(self.sections.len() as u8);
        for s in &self.sections {
            b.extend_from_slice(&s.offset.to_le_bytes());
            b.extend_from_slice(&s.len.to_le_bytes());
            b.extend_from_slice(&s.raw_len.to_le_bytes());
            b.extend_from_slice(&s.sha256);
        }
        let sum = Digests::of(&b).sha256;
        b.extend_from_slice(&sum);
        debug_assert_eq!(b.len() as u32, Self::encoded_len(&self.name));
        b
    }

    /// Read and validate the header of the patch at `path` (its body is not read).
    pub fn read_file(path: &Path) -> Result<PatchHeader> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io("open patch", path, e))?;
        let file_len = f
            .metadata()
            .map_err(|e| Error::io("stat patch", path, e))?
            .len();
        PatchHeader::read(&mut f, file_len, path)
    }

    /// Read and validate a header from `r`, the start of a file of `file_len` bytes.
    pub fn read(r: &mut impl Read, file_len: u64, path: &Path) -> Result<PatchHeader> {
        let bad = |reason: String| Error::Patch {
            path: path.to_path_buf(),
            reason,
        };
        let mut fixed = [0u8; 16];
        read_full(r, &mut fixed).map_err(|e| match e {
            Some(e) => Error::io("read patch", path, e),
            None => bad(format!("{file_len} bytes is too short for a patch header")),
        })?;
        if &fixed[..8] != MAGIC {
            return Err(bad("not a sysup patch (bad magic)".into()));
        }
        let version = u32::from_le_bytes(fixed[8..12].try_into().unwrap());
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(bad(format!(
                "patch format version {version}; this sysup reads versions {MIN_VERSION} to {VERSION}"
            )));
        }
        let header_len = u32::from_le_bytes(fixed[12..16].try_into().unwrap());
        if !(16 + 32..=MAX_HEADER_LEN).contains(&header_len) || u64::from(header_len) > file_len {
            return Err(corrupt(
                path,
                format!("header length {header_len} is impossible"),
            ));
        }
        let mut buf = fixed.to_vec();
        buf.resize(header_len as usize, 0);
        read_full(r, &mut buf[16..]).map_err(|e| match e {
            Some(e) => Error::io("read patch", path, e),
            None => corrupt(path, "truncated inside the header".into()),
        })?;
        let (body, sum) = buf.split_at(buf.len() - 32);
        if Digests::of(body).sha256[..] != sum[..] {
            return Err(corrupt(path, "header checksum mismatch".into()));
        }
        let h = parse_fields(body, header_len, path)?;
        h.check_layout(file_len, path)?;
        Ok(h)
    }

    fn check_layout(&self, file_len: u64, path: &Path) -> Result<()> {
        let mut at = u64::from(self.header_len);
        for (s, kind) in self.sections.iter().zip(SectionKind::ALL) {
            if s.kind != kind || s.offset != at {
                return Err(corrupt(
                    path,
                    "sections are not laid out back to back".into(),
                ));
            }
            at = at
                .checked_add(s.len)
                .ok_or_else(|| corrupt(path, "section length overflows".into()))?;
        }
        if at != file_len {
            return Err(corrupt(
                path,
                format!("the header describes {at} bytes but the file has {file_len} (truncated or extended)"),
            ));
        }
        for side in [&self.from, &self.to] {
            if side.tar.size > MAX_TAR {
                return Err(Error::Patch {
                    path: path.to_path_buf(),
                    reason: format!("tar size {} is beyond the 1 TiB limit", side.tar.size),
                });
            }
        }
        if self.window_log > MAX_WINDOW_LOG {
            return Err(Error::Patch {
                path: path.to_path_buf(),
                reason: format!(
                    "a compression window of 2^{} bytes is larger than the 2^{MAX_WINDOW_LOG} this sysup accepts",
                    self.window_log
                ),
            });
        }
        Ok(())
    }

    /// The section of `kind`.
    pub fn section(&self, kind: SectionKind) -> &Section {
        &self.sections[kind as usize]
    }
}

/// A "corrupt patch" error: the bytes are not what the writer wrote.
pub fn corrupt(path: &Path, reason: String) -> Error {
    Error::CorruptPatch {
        path: path.to_path_buf(),
        reason,
    }
}

fn parse_fields(b: &[u8], header_len: u32, path: &Path) -> Result<PatchHeader> {
    let mut c = Cursor { b, at: 16, path };
    let name_s = c.str()?;
    let name =
        PatchName::from_file_name(&format!("{name_s}{}", crate::format::name::PATCH_SUFFIX))?;
    let mut sides = Vec::with_capacity(2);
    for which in ["from", "to"] {
        let id: DistId = c.str()?.parse()?;
        let size = c.u64()?;
        let md5 = c.array::<16>()?;
        let sha256 = c.array::<32>()?;
        let expected = if which == "from" {
            &name.from
        } else {
            &name.to
        };
        if &id != expected {
            return Err(c.bad(format!(
                "{which} id '{id}' does not match the patch name '{name}'"
            )));
        }
        sides.push(Side {
            id,
            tar: Digests { size, md5, sha256 },
        });
    }
    let body_format =
        BodyFormat::from_code(c.u8()?).ok_or_else(|| c.bad("unknown body format".into()))?;
    let compression =
        Compression::from_code(c.u8()?).ok_or_else(|| c.bad("unknown compression".into()))?;
    let window_log = c.u8()?;
    let old_members = c.u32()?;
    let new_members = c.u32()?;
    if c.u8()? != 3 {
        return Err(c.bad("expected 3 body sections".into()));
    }
    let mut sections = Vec::with_capacity(3);
    for kind in SectionKind::ALL {
        sections.push(Section {
            kind,
            offset: c.u64()?,
            len: c.u64()?,
            raw_len: c.u64()?,
            sha256: c.array::<32>()?,
        });
    }
    if c.at != b.len() {
        return Err(c.bad("trailing bytes in the header".into()));
    }
    let to = sides.pop().unwrap();
    let from = sides.pop().unwrap();
    Ok(PatchHeader {
        version: u32::from_le_bytes(b[8..12].try_into().expect("checked by the caller")),
        name,
        from,
        to,
        body_format,
        compression,
        window_log,
        old_members,
        new_members,
        sections: sections.try_into().unwrap(),
        header_len,
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn bad(&self, reason: String) -> Error {
        Error::Patch {
            path: self.path.to_path_buf(),
            reason,
        }
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.b.len() - self.at < n {
            return Err(self.bad("header fields overrun the header".into()));
        }
        self.at += n;
        Ok(&self.b[self.at - n..self.at])
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().unwrap())
    }
    fn str(&mut self) -> Result<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as usize;
        let s = self.take(n)?.to_vec();
        String::from_utf8(s).map_err(|_| self.bad("a name is not UTF-8".into()))
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Fill `buf`; `Err(None)` on EOF before it is full.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::result::Result<(), Option<std::io::Error>> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Err(None),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(e)),
        }
    }
    Ok(())
}

impl fmt::Display for PatchHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "patch       {}", self.name)?;
        writeln!(
            f,
            "format      sysup patch v{}, {}",
            self.version, self.body_format
        )?;
        writeln!(
            f,
            "compression {} (window 2^{} bytes)",
            self.compression, self.window_log
        )?;
        for (label, side, members) in [
            ("from", &self.from, self.old_members),
            ("to", &self.to, self.new_members),
        ] {
            writeln!(f, "{label:<11} {}", side.id)?;
            writeln!(
                f,
                "  size      {} bytes (uncompressed tar, {members} members)",
                side.tar.size
            )?;
            writeln!(f, "  md5       {}", side.tar.md5_hex())?;
            writeln!(f, "  sha256    {}", side.tar.sha256_hex())?;
        }
        write!(f, "sections   ")?;
        for s in &self.sections {
            write!(f, " {} {}→{}", s.kind.name(), s.raw_len, s.len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> PatchHeader {
        let name: PatchName = "world-1-20260101_2-20260102".parse().unwrap();
        let sec = |kind, offset, len| Section {
            kind,
            offset,
            len,
            raw_len: len * 3,
            sha256: [7; 32],
        };
        let hl = PatchHeader::encoded_len(&name);
        let h = u64::from(hl);
        PatchHeader {
            version: VERSION,
            from: Side {
                id: name.from.clone(),
                tar: Digests::of(b"old"),
            },
            to: Side {
                id: name.to.clone(),
                tar: Digests::of(b"new"),
            },
            name,
            body_format: BodyFormat::MemberBsdiff,
            compression: Compression::Zstd,
            window_log: 27,
            old_members: 10,
            new_members: 11,
            sections: [
                sec(SectionKind::Controls, h, 10),
                sec(SectionKind::Diff, h + 10, 20),
                sec(SectionKind::Extra, h + 30, 30),
            ],
            header_len: hl,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        let mut file = h.encode();
        file.resize(file.len() + 60, 0);
        let back = PatchHeader::read(&mut &file[..], file.len() as u64, Path::new("p")).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn every_flipped_header_byte_is_refused() {
        let h = sample();
        let mut file = h.encode();
        let hl = file.len();
        file.resize(hl + 60, 0);
        for i in 0..hl {
            let mut f = file.clone();
            f[i] ^= 0x01;
            let r = PatchHeader::read(&mut &f[..], f.len() as u64, Path::new("p"));
            assert!(r.is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn truncated_or_extended_files_are_refused() {
        let h = sample();
        let mut file = h.encode();
        let hl = file.len();
        file.resize(hl + 60, 0);
        for len in [0, 7, 16, hl - 1, hl, hl + 59, hl + 61] {
            let mut f = file.clone();
            f.resize(len, 0);
            let e = PatchHeader::read(&mut &f[..], len as u64, Path::new("p")).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("'p'"), "{msg}");
        }
    }
}
