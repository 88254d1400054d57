//! Re-gzip: diffing a gzipped member through its uncompressed bytes.
//!
//! A small change to a gzipped file (a changelog gaining an entry, a man
//! page rebuilt) changes nearly every compressed byte after it, so a bsdiff
//! of the compressed bytes is mostly literal — on the bench pair, gzipped
//! files were 3.7 MB of the 250 MB of changed members but over a third of
//! the patch. When the new member's deflate stream is exactly what zlib
//! makes from its uncompressed bytes (Debian's `gzip -9n` output usually is,
//! below one deflate block), the patch can carry a bsdiff of the
//! *uncompressed* bytes plus the gzip header, and the applier inflates the
//! old member, rebuilds the new uncompressed bytes and deflates them again.
//!
//! The deflater is C zlib, statically linked through `libz-sys`: zlib-rs
//! (our gzip everywhere else) compresses differently, and reproduced a
//! quarter as many of the bench pair's `.gz` files. zlib's deflate output
//! has not changed across 1.2.x–1.3.x (checked on the 560 changed `.gz`
//! members of the bench pair: 1.2.13 and 1.3.2 agree on every one).
//!
//! Invariants:
//! - [`recipe`] says yes only after deflating the uncompressed bytes and
//!   comparing the whole member byte for byte with the rebuild, so a member
//!   the differ encodes this way is one this build can rebuild;
//! - every buffer is bounded by [`MAX_RAW`] (uncompressed bytes on either
//!   side) and the member sizes: inflating stops past the bound;
//! - the applier still checks the rebuilt length against the record and the
//!   whole new tar against its SHA-256, so a host whose zlib deflates
//!   differently gets a clear error, never a wrong file.

use std::io::{self, Read};

use flate2::Crc;

use super::zlib::{self, Deflate};

/// Most uncompressed bytes either side of a re-gzipped member; bigger
/// members are diffed as they are. Keeps the applier's buffers (old and new
/// uncompressed, rebuilt member) to a few MiB.
pub const MAX_RAW: u64 = 4 << 20;
/// Longest gzip header accepted (FEXTRA, file name and comment included).
pub const MAX_HEADER: usize = 4096;
/// Deflate levels tried, most likely first (`gzip -9`, then the default).
const LEVELS: [u8; 2] = [9, 6];
/// The header `gzip -9n` writes: deflate, no flags, no mtime, "max
/// compression", Unix.
pub const GZIP_9N_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3];

/// A single-member gzip file, split.
#[derive(Debug)]
pub struct Gzip<'a> {
    /// Header bytes, up to the deflate stream.
    pub header: &'a [u8],
    /// The raw deflate stream and the 8-byte trailer after it.
    pub rest: &'a [u8],
}

/// Split `file` at the end of its gzip header; `None` if it is not gzip
/// (deflate method, no reserved flags) or the header is implausible.
pub fn split(file: &[u8]) -> Option<Gzip<'_>> {
    if file.len() < 18 || file[..3] != [0x1f, 0x8b, 8] || file[3] & 0xe0 != 0 {
        return None;
    }
    let flags = file[3];
    let mut at = 10usize;
    if flags & 4 != 0 {
        let xlen = usize::from(u16::from_le_bytes([*file.get(at)?, *file.get(at + 1)?]));
        at += 2 + xlen;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            at += file.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    if at > MAX_HEADER || at + 8 > file.len() {
        return None;
    }
    Some(Gzip {
        header: &file[..at],
        rest: &file[at..],
    })
}

/// Inflate the raw deflate stream at the start of `rest`; `Some` only if it
/// ends exactly 8 bytes before `rest` does, inflates to at most `cap` bytes
/// and the trailer (CRC-32, size) matches.
pub fn inflate(rest: &[u8], cap: u64) -> Option<Vec<u8>> {
    let body = &rest[..rest.len().checked_sub(8)?];
    let mut d = flate2::read::DeflateDecoder::new(body);
    let mut raw = Vec::new();
    (&mut d).take(cap + 1).read_to_end(&mut raw).ok()?;
    if raw.len() as u64 > cap || d.total_in() != body.len() as u64 {
        return None;
    }
    // The stream must be finished, not merely out of input.
    if d.read(&mut [0u8; 1]).ok()? != 0 {
        return None;
    }
    (trailer(&raw) == rest[body.len()..]).then_some(raw)
}

fn trailer(raw: &[u8]) -> [u8; 8] {
    let mut crc = Crc::new();
    crc.update(raw);
    let mut t = [0u8; 8];
    t[..4].copy_from_slice(&crc.sum().to_le_bytes());
    t[4..].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    t
}

/// How a reproducible gzip member is rebuilt from its uncompressed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipe {
    /// zlib deflate level.
    pub level: u8,
    /// Gzip header bytes before the deflate stream.
    pub header_len: u32,
    /// Uncompressed bytes.
    pub raw_len: u64,
}

/// The recipe that rebuilds `file` exactly from its uncompressed bytes, and
/// those bytes; `None` if no level of [`LEVELS`] reproduces it.
pub fn recipe(file: &[u8]) -> Option<(Recipe, Vec<u8>)> {
    let gz = split(file)?;
    let raw = inflate(gz.rest, MAX_RAW)?;
    let body = &gz.rest[..gz.rest.len() - 8];
    // gzip writes "max compression" (XFL 2) for -9 and 0 for its default:
    // try the level it says first.
    let mut levels = LEVELS;
    if gz.header[8] != 2 {
        levels.reverse();
    }
    let level = levels.into_iter().find(|&l| deflates_to(&raw, l, body))?;
    let r = Recipe {
        level,
        header_len: gz.header.len() as u32,
        raw_len: raw.len() as u64,
    };
    Some((r, raw))
}

/// The uncompressed bytes of a gzip member (at most [`MAX_RAW`]), its
/// trailer checked; `None` if it is not one.
pub fn raw_of(file: &[u8]) -> Option<Vec<u8>> {
    inflate(split(file)?.rest, MAX_RAW)
}

/// Rebuild a member: `header`, zlib's raw deflate of `raw` at `level`, the
/// gzip trailer.
pub fn rebuild(header: &[u8], raw: &[u8], level: u8) -> io::Result<Vec<u8>> {
    let body = deflate(raw, level)?;
    let mut out = Vec::with_capacity(header.len() + body.len() + 8);
    out.extend_from_slice(header);
    out.extend_from_slice(&body);
    out.extend_from_slice(&trailer(raw));
    Ok(out)
}

/// The version of the linked zlib, for messages.
pub fn zlib_version() -> String {
    zlib::version()
}

/// What `gzip` and zlib's defaults use: window 2^15, memLevel 8.
fn at(level: u8) -> Deflate {
    Deflate {
        level: level.clamp(1, 9),
        mem_level: 8,
    }
}

/// zlib's raw deflate (window 2^15, memLevel 8, default strategy) of `data`.
pub fn deflate(data: &[u8], level: u8) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zlib::deflate_raw(data, at(level), |chunk| {
        out.extend_from_slice(chunk);
        true
    })?;
    Ok(out)
}

/// Whether [`deflate`] of `data` at `level` is exactly `expected`. Stops at
/// the first chunk that differs, so a level that does not reproduce a member
/// costs a fraction of a whole deflate (on the bench pair, trying levels
/// went from 2.7% to 2.1% of a diff's CPU by `perf`).
pub fn deflates_to(data: &[u8], level: u8, expected: &[u8]) -> bool {
    zlib::deflates_to(data, at(level), expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip_of(raw: &[u8], level: u8, name: Option<&[u8]>) -> Vec<u8> {
        let mut h = GZIP_9N_HEADER.to_vec();
        if let Some(n) = name {
            h[3] = 8;
            h.extend_from_slice(n);
            h.push(0);
        }
        rebuild(&h, raw, level).unwrap()
    }

    use crate::util::testdata::words as text;

    #[test]
    fn deflates_to_accepts_the_exact_stream_only() {
        // Big enough for several output chunks, so a mismatch in the last
        // one is seen after earlier ones matched.
        let mut raw = text(100_000, 7);
        let mut x = 1u32;
        raw.extend((0..300_000).map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        }));
        let d = deflate(&raw, 9).unwrap();
        assert!(d.len() > 2 * (64 << 10), "{}", d.len());
        assert!(deflates_to(&raw, 9, &d));
        assert!(!deflates_to(&raw, 6, &d));
        for at in [0, d.len() / 2, d.len() - 1] {
            let mut e = d.clone();
            e[at] ^= 1;
            assert!(!deflates_to(&raw, 9, &e), "flipped at {at}");
        }
        assert!(!deflates_to(&raw, 9, &d[..d.len() - 1]));
        let mut longer = d.clone();
        longer.push(0);
        assert!(!deflates_to(&raw, 9, &longer));
        assert!(deflates_to(b"", 9, &deflate(b"", 9).unwrap()));
    }

    #[test]
    fn a_zlib_made_member_round_trips_through_its_recipe() {
        let raw = text(5000, 7);
        for level in [9u8, 6] {
            let file = gzip_of(&raw, level, Some(b"changelog"));
            let (r, got) = recipe(&file).expect("reproducible");
            assert_eq!(got, raw);
            assert_eq!(r.raw_len, raw.len() as u64);
            assert_eq!(r.header_len as usize, 10 + b"changelog".len() + 1);
            let again = rebuild(&file[..r.header_len as usize], &got, r.level).unwrap();
            assert_eq!(again, file, "level {level}");
        }
        // The same bytes are also readable by any gzip reader.
        let file = gzip_of(&raw, 9, None);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&file[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn members_that_are_not_reproducible_gzip_are_refused() {
        let raw = text(3000, 3);
        // Stored blocks (no compression) are valid gzip zlib never makes
        // from text at levels 6 or 9.
        let mut stored = Vec::new();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(&mut stored, flate2::Compression::none());
            e.write_all(&raw).unwrap();
            e.finish().unwrap();
        }
        assert_eq!(raw_of(&stored).as_deref(), Some(&raw[..]), "still inflates");
        assert!(recipe(&stored).is_none());
        // Whatever another deflater made, a recipe, when found, rebuilds it.
        let mut fast = Vec::new();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(&mut fast, flate2::Compression::new(1));
            e.write_all(&raw).unwrap();
            e.finish().unwrap();
        }
        if let Some((r, raw2)) = recipe(&fast) {
            let h = &fast[..r.header_len as usize];
            assert_eq!(rebuild(h, &raw2, r.level).unwrap(), fast);
        }
        let good = gzip_of(&raw, 9, None);
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 1;
        assert!(recipe(&bad_crc).is_none() && raw_of(&bad_crc).is_none());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(recipe(&trailing).is_none(), "bytes after the trailer");
        assert!(recipe(&good[..good.len() - 1]).is_none(), "truncated");
        assert!(recipe(b"plain text, not gzip at all").is_none());
        let mut reserved = good.clone();
        reserved[3] = 0x20;
        assert!(split(&reserved).is_none());
        let big = gzip_of(&vec![b'a'; MAX_RAW as usize + 1], 9, None);
        assert!(
            recipe(&big).is_none() && raw_of(&big).is_none(),
            "over MAX_RAW"
        );
        // A name field that never ends.
        let mut noend = vec![0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 2, 3];
        noend.extend_from_slice(&[b'x'; 40]);
        assert!(split(&noend).is_none());
    }
}
