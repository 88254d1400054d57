//! The gzip header's extra field (RFC 1952 §2.3.1.1), as sysup uses it: one
//! subfield of a fixed length, written by [`super::Writer`] as zeros before
//! any compressed byte and filled in place once its contents are known (a
//! dist's tar digests are only known at the end), and found again by reading
//! the few header bytes in front of the deflate stream.
//!
//! Invariants: the header with a subfield is always [`header`]'s bytes, so
//! the payload sits at [`PAYLOAD_OFFSET`] whatever it holds; gunzip, GNU tar
//! and bsdtar skip an extra field they do not know; [`find`] never reads
//! past the extra field and treats anything malformed as "no subfield",
//! leaving the real gzip errors to the inflater.

use std::io::{self, Read};

/// Where a subfield's payload starts in a header made by [`header`]: the 10
/// fixed bytes, XLEN, then the subfield's SI1, SI2 and LEN.
pub const PAYLOAD_OFFSET: u64 = 10 + 2 + 4;

/// FLG.FEXTRA.
const FEXTRA: u8 = 4;

/// The fixed gzip header (mtime 0, no name, OS "unknown") with an extra
/// field holding one subfield `id` of `len` zero bytes (XLEN, a u16, also
/// counts the subfield's 4 bytes of framing).
pub fn header(id: [u8; 2], len: u16) -> Vec<u8> {
    let xlen = len.checked_add(4).expect("a subfield fits the extra field");
    let mut h = super::HEADER.to_vec();
    h[3] |= FEXTRA;
    h.extend_from_slice(&xlen.to_le_bytes());
    h.extend_from_slice(&id);
    h.extend_from_slice(&len.to_le_bytes());
    h.resize(h.len() + usize::from(len), 0);
    h
}

/// The payload of the first subfield `id` in the gzip header at the start
/// of `r`; `None` when the stream has no extra field, no such subfield, or
/// is not gzip at all. Errors are read errors only.
pub fn find(mut r: impl Read, id: [u8; 2]) -> io::Result<Option<Vec<u8>>> {
    let mut fixed = [0u8; 12];
    if !read_full(&mut r, &mut fixed)? || fixed[..3] != [0x1f, 0x8b, 8] || fixed[3] & FEXTRA == 0 {
        return Ok(None);
    }
    let xlen = usize::from(u16::from_le_bytes([fixed[10], fixed[11]]));
    let mut extra = vec![0u8; xlen];
    if !read_full(&mut r, &mut extra)? {
        return Ok(None);
    }
    let mut rest = &extra[..];
    while rest.len() >= 4 {
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let Some(payload) = rest.get(4..4 + len) else {
            return Ok(None);
        };
        if rest[..2] == id {
            return Ok(Some(payload.to_vec()));
        }
        rest = &rest[4 + len..];
    }
    Ok(None)
}

/// Fill `buf`; false if the stream ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_subfield_is_found_and_gunzip_skips_it() {
        let mut z = Vec::new();
        {
            let mut w = super::super::Writer::with_threads(&mut z, super::super::Engine::Stored, 2)
                .with_subfield(*b"SU", 5);
            std::io::Write::write_all(&mut w, b"hello").unwrap();
            w.finish().unwrap();
        }
        assert_eq!(find(&z[..], *b"SU").unwrap(), Some(vec![0; 5]));
        let at = PAYLOAD_OFFSET as usize;
        z[at..at + 5].copy_from_slice(b"12345");
        assert_eq!(find(&z[..], *b"SU").unwrap(), Some(b"12345".to_vec()));
        assert_eq!(find(&z[..], *b"XX").unwrap(), None);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn plain_or_malformed_headers_have_no_subfield() {
        assert_eq!(find(&super::super::HEADER[..], *b"SU").unwrap(), None);
        assert_eq!(find(&b"not gzip at all"[..], *b"SU").unwrap(), None);
        assert_eq!(find(&[][..], *b"SU").unwrap(), None);
        // XLEN promises more than the stream holds
        let mut h = header(*b"SU", 8);
        h.truncate(14);
        assert_eq!(find(&h[..], *b"SU").unwrap(), None);
        // a subfield LEN running past XLEN
        let mut h = header(*b"SU", 8);
        h[14] = 200;
        assert_eq!(find(&h[..], *b"SU").unwrap(), None);
    }
}
