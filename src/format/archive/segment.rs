//! Forward-only tar segmenter: splits any tar stream into its members without
//! interpreting more than the framing, for the patch engine.
//!
//! Each member is yielded as its *raw* header blocks (every PAX `x`/`g`, GNU
//! `L`/`K` extension header and its data, GNU sparse extension blocks, then the
//! member's own ustar header), its path (after PAX `path` / GNU long name), its
//! typeflag and its data size (after PAX `size`). The caller then reads the
//! data through [`Segmenter::data`] and the padding through
//! [`Segmenter::finish_member`] (or skips both by calling [`Segmenter::next_item`]).
//! After the last member comes [`Item::Trailer`]: everything from the first
//! all-zero header block to EOF (end-of-archive blocks plus record padding).
//!
//! Invariants:
//! - concatenating, in order, every member's header bytes, data bytes and
//!   padding bytes and then the trailer gives back exactly the input bytes;
//! - the input is read strictly forward, never seeked, so it may be a pipe;
//! - every header block's checksum is verified before it is interpreted;
//! - nothing is allocated from an untrusted size without a cap: extension
//!   data is capped at [`MAX_EXTENSION`], the header blocks of one member at
//!   [`MAX_HEADER`], the trailer at [`MAX_TRAILER`], and data sizes above
//!   [`MAX_MEMBER`] (or beyond a declared stream length) are refused before
//!   anything is read.

use std::io::{self, Read};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// A tar block.
pub const BLOCK: usize = 512;
/// Largest PAX / GNU long-name extension payload accepted (one member's).
pub const MAX_EXTENSION: u64 = 1 << 20;
/// Largest total of raw header bytes (extensions included) for one member.
pub const MAX_HEADER: usize = 4 << 20;
/// Largest trailer (zero blocks plus record padding) accepted.
pub const MAX_TRAILER: usize = 32 << 20;
/// Largest member data size accepted (1 TiB).
pub const MAX_MEMBER: u64 = 1 << 40;
/// Most GNU sparse extension blocks accepted after one header.
const MAX_SPARSE_BLOCKS: usize = 4096;

/// One member's framing, as read from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Raw header blocks, extension headers included (a multiple of 512).
    pub header: Vec<u8>,
    /// The member's path bytes (PAX `path`, else GNU long name, else ustar
    /// prefix + name), without trailing NULs.
    pub path: Vec<u8>,
    /// The typeflag byte of the member's own header.
    pub typeflag: u8,
    /// Data bytes that follow the header, padding excluded.
    pub size: u64,
    /// Offset of the first header byte in the stream.
    pub offset: u64,
}

impl Member {
    /// Offset of the first data byte in the stream.
    pub fn data_offset(&self) -> u64 {
        self.offset + self.header.len() as u64
    }
    /// Padding bytes after the data.
    pub fn padding(&self) -> u64 {
        pad_len(self.size)
    }
    /// Offset just past this member's padding.
    pub fn end(&self) -> u64 {
        self.data_offset() + self.size + self.padding()
    }
    /// Whether this member is a regular file (its data is file content).
    pub fn is_file(&self) -> bool {
        matches!(self.typeflag, b'0' | 0 | b'7')
    }
}

/// Padding after `size` data bytes to reach a block boundary.
pub fn pad_len(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// What the segmenter found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    Member(Member),
    /// Everything from the end-of-archive marker to EOF.
    Trailer(Vec<u8>),
}

/// The action of the [`Error::Io`] a segmenter makes of a plain read error
/// of its stream (one that carries no library error from a reader below).
pub const READ_TAR: &str = "read tar";

/// A forward-only tar splitter over any reader.
pub struct Segmenter<R> {
    inner: R,
    /// Name used in errors (a path, or `<stdin>`).
    name: PathBuf,
    pos: u64,
    /// Declared total stream length, if known.
    limit: Option<u64>,
    /// Unread data bytes of the current member.
    data_left: u64,
    /// Unread padding bytes of the current member.
    pad_left: u64,
    done: bool,
}

impl<R: Read> Segmenter<R> {
    /// Segment `inner`; `name` appears in errors.
    pub fn new(inner: R, name: impl Into<PathBuf>) -> Self {
        Segmenter {
            inner,
            name: name.into(),
            pos: 0,
            limit: None,
            data_left: 0,
            pad_left: 0,
            done: false,
        }
    }

    /// Declare the stream's total length: data sizes beyond it are refused.
    pub fn with_limit(mut self, total: u64) -> Self {
        self.limit = Some(total);
        self
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The inner reader, for inspection.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner reader, mutably (reading from it desynchronises the segmenter).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::Tar {
            path: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// A read error: the library error a reader below carries (a patch's
    /// verdict, which names its own file), or [`READ_TAR`] of this stream.
    fn io_err(&self, e: io::Error) -> Error {
        Error::from_io(e, READ_TAR, &self.name)
    }

    /// Fill `buf` entirely; `Ok(false)` on a clean EOF before the first byte.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(self.bad(format!(
                        "truncated: stream ends inside a block at byte {}",
                        self.pos + got as u64
                    )))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        self.pos += got as u64;
        Ok(true)
    }

    fn read_exact_or_truncated(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        if !self.read_block(buf)? && !buf.is_empty() {
            return Err(self.bad(format!("truncated: stream ends before {what}")));
        }
        Ok(())
    }

    /// Skip whatever is left of the current member (data and padding).
    fn skip_rest(&mut self) -> Result<()> {
        let n = self.data_left + self.pad_left;
        if n > 0 {
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
                .map_err(|e| self.io_err(e))?;
            self.pos += copied;
            if copied < n {
                return Err(self.bad(format!(
                    "truncated: stream ends inside member data at byte {}",
                    self.pos
                )));
            }
        }
        self.data_left = 0;
        self.pad_left = 0;
        Ok(())
    }

    fn check_size(&self, size: u64, at: u64) -> Result<()> {
        if size > MAX_MEMBER {
            return Err(self.bad(format!(
                "member at byte {at} declares {size} data bytes, more than the 1 TiB limit"
            )));
        }
        if let Some(limit) = self.limit {
            let need = self.pos.saturating_add(size).saturating_add(pad_len(size));
            if need > limit {
                return Err(self.bad(format!(
                    "member at byte {at} declares {size} data bytes, past the stream's {limit} bytes"
                )));
            }
        }
        Ok(())
    }

    /// The next member (skipping any unread data of the previous one), the
    /// trailer, or `None` once the trailer has been returned.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let offset = self.pos;
        let mut raw = Vec::with_capacity(BLOCK);
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut global_size: Option<u64> = None;
        let mut gnu_long: Option<Vec<u8>> = None;
        loop {
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block)? {
                if raw.is_empty() {
                    // No end-of-archive blocks: tolerated, the trailer is empty.
                    self.done = true;
                    return Ok(Some(Item::Trailer(Vec::new())));
                }
                return Err(self.bad(format!(
                    "truncated: stream ends after extension headers at byte {}",
                    self.pos
                )));
            }
            if block.iter().all(|&b| b == 0) {
                if !raw.is_empty() {
                    return Err(self.bad(format!(
                        "end-of-archive block at byte {} right after extension headers",
                        self.pos - BLOCK as u64
                    )));
                }
                return self.read_trailer(block).map(Some);
            }
            let at = self.pos - BLOCK as u64;
            verify_checksum(&block).map_err(|r| self.bad(format!("header at byte {at}: {r}")))?;
            raw.extend_from_slice(&block);
            if raw.len() > MAX_HEADER {
                return Err(self.bad(format!(
                    "more than {MAX_HEADER} bytes of extension headers before byte {}",
                    self.pos
                )));
            }
            let typeflag = block[156];
            let size = parse_number(&block[124..136])
                .ok_or_else(|| self.bad(format!("header at byte {at}: bad size field")))?;
            match typeflag {
                b'x' | b'g' | b'L' | b'K' => {
                    if size > MAX_EXTENSION {
                        return Err(self.bad(format!(
                            "extension header at byte {at} declares {size} bytes, more than {MAX_EXTENSION}"
                        )));
                    }
                    self.check_size(size, at)?;
                    let padded = (size + pad_len(size)) as usize;
                    let start = raw.len();
                    raw.resize(start + padded, 0);
                    let mut buf = std::mem::take(&mut raw);
                    let r = self.read_exact_or_truncated(&mut buf[start..], "extension data");
                    raw = buf;
                    r?;
                    let data = &raw[start..start + size as usize];
                    match typeflag {
                        b'x' | b'g' => {
                            let recs = parse_pax(data)
                                .map_err(|r| self.bad(format!("PAX header at byte {at}: {r}")))?;
                            for (k, v) in recs {
                                match k {
                                    b"path" if typeflag == b'x' => pax_path = Some(v.to_vec()),
                                    b"size" => {
                                        let n = std::str::from_utf8(v)
                                            .ok()
                                            .and_then(|s| s.parse::<u64>().ok())
                                            .ok_or_else(|| {
                                                self.bad(format!(
                                                    "PAX header at byte {at}: bad size record"
                                                ))
                                            })?;
                                        if typeflag == b'x' {
                                            pax_size = Some(n);
                                        } else {
                                            global_size = Some(n);
                                        }
                                    }
                                    _ => {}
                                }
                            }
                        }
                        b'L' => gnu_long = Some(trim_nul(data).to_vec()),
                        _ => {}
                    }
                }
                _ => {
                    // GNU old sparse: extension blocks follow while the
                    // "isextended" byte is set.
                    if typeflag == b'S' && block[482] != 0 {
                        let mut count = 0;
                        loop {
                            let mut ext = [0u8; BLOCK];
                            self.read_exact_or_truncated(&mut ext, "a sparse extension block")?;
                            raw.extend_from_slice(&ext);
                            count += 1;
                            if ext[504] == 0 {
                                break;
                            }
                            if count >= MAX_SPARSE_BLOCKS || raw.len() > MAX_HEADER {
                                return Err(self.bad(format!(
                                    "too many sparse extension blocks after byte {at}"
                                )));
                            }
                        }
                    }
                    let size = pax_size.or(global_size).unwrap_or(size);
                    self.check_size(size, at)?;
                    let path = pax_path.or(gnu_long).unwrap_or_else(|| ustar_path(&block));
                    self.data_left = size;
                    self.pad_left = pad_len(size);
                    return Ok(Some(Item::Member(Member {
                        header: raw,
                        path,
                        typeflag,
                        size,
                        offset,
                    })));
                }
            }
        }
    }

    fn read_trailer(&mut self, first: [u8; BLOCK]) -> Result<Item> {
        let mut trailer = first.to_vec();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            };
            if n == 0 {
                break;
            }
            self.pos += n as u64;
            if trailer.len() + n > MAX_TRAILER {
                return Err(self.bad(format!(
                    "more than {MAX_TRAILER} bytes after the end-of-archive marker"
                )));
            }
            trailer.extend_from_slice(&buf[..n]);
        }
        self.done = true;
        Ok(Item::Trailer(trailer))
    }

    /// A reader over the current member's remaining data bytes (padding excluded).
    pub fn data(&mut self) -> DataReader<'_, R> {
        DataReader { seg: self }
    }

    /// Read the current member's padding (after its data, which is skipped if
    /// unread) and return it; usually all zeros.
    pub fn finish_member(&mut self) -> Result<Vec<u8>> {
        if self.data_left > 0 {
            let n = self.data_left;
            let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
                .map_err(|e| self.io_err(e))?;
            self.pos += copied;
            self.data_left -= copied;
            if copied < n {
                return Err(self.bad(format!(
                    "truncated: stream ends inside member data at byte {}",
                    self.pos
                )));
            }
        }
        let mut pad = vec![0u8; self.pad_left as usize];
        self.read_exact_or_truncated(&mut pad, "member padding")?;
        self.pad_left = 0;
        Ok(pad)
    }
}

/// Reads exactly the current member's data, then reports EOF; a stream that
/// ends early is an error, never a short member.
pub struct DataReader<'a, R> {
    seg: &'a mut Segmenter<R>,
}

impl<R: Read> Read for DataReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.seg.data_left;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.seg.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "tar '{}' truncated: stream ends inside member data at byte {}",
                    self.seg.name.display(),
                    self.seg.pos
                ),
            ));
        }
        self.seg.pos += n as u64;
        self.seg.data_left -= n as u64;
        Ok(n)
    }
}

/// Check a header block's checksum (unsigned sum, or the historic signed sum).
fn verify_checksum(block: &[u8; BLOCK]) -> std::result::Result<(), String> {
    let stored = parse_octal(&block[148..156]).ok_or("unreadable checksum field")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err(format!(
            "checksum mismatch (stored {stored}, computed {unsigned}); not a tar header or corrupt"
        ))
    }
}

/// An octal field (spaces and NULs around it allowed).
fn parse_octal(field: &[u8]) -> Option<u64> {
    let s = trim_nul(field);
    let s = std::str::from_utf8(s)
        .ok()?
        .trim_matches(|c| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// A numeric field: octal, or GNU base-256 when the high bit is set.
fn parse_number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut n: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        Some(n)
    } else {
        parse_octal(field)
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// The path of a ustar (or pre-POSIX) header: prefix + "/" + name.
fn ustar_path(block: &[u8; BLOCK]) -> Vec<u8> {
    let name = trim_nul(&block[0..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = trim_nul(&block[345..500]);
        if !prefix.is_empty() {
            let mut p = prefix.to_vec();
            p.push(b'/');
            p.extend_from_slice(name);
            return p;
        }
    }
    name.to_vec()
}

/// PAX records: `"<len> <key>=<value>\n"`, where len counts the whole record.
/// PAX records as (key, value) pairs borrowed from the payload.
type PaxRecords<'a> = Vec<(&'a [u8], &'a [u8])>;

fn parse_pax(mut data: &[u8]) -> std::result::Result<PaxRecords<'_>, String> {
    let mut out = Vec::new();
    // Some writers pad the payload with NULs.
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or("record without a length")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("record with a bad length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("record length does not fit".into());
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("record without '='")?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Segment `tar` and concatenate everything back.
    fn reassemble(tar: &[u8]) -> Result<(Vec<u8>, Vec<Member>)> {
        let mut seg = Segmenter::new(tar, "<test>").with_limit(tar.len() as u64);
        let mut out = Vec::new();
        let mut members = Vec::new();
        while let Some(item) = seg.next_item()? {
            match item {
                Item::Member(m) => {
                    out.extend_from_slice(&m.header);
                    io::copy(&mut seg.data(), &mut out).unwrap();
                    out.extend_from_slice(&seg.finish_member()?);
                    members.push(m);
                }
                Item::Trailer(t) => out.extend_from_slice(&t),
            }
        }
        Ok((out, members))
    }

    fn build_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "short.txt", &b"hello"[..]).unwrap();
        let long = format!("{}/file", "d".repeat(150));
        let mut h = tar::Header::new_gnu();
        h.set_size(1000);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, &long, &vec![7u8; 1000][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, "dir/", io::empty()).unwrap();
        // A PAX member with a long path and an xattr.
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o4755);
        let pax_path = format!("{}/pax", "p".repeat(200));
        b.append_pax_extensions([
            ("path", pax_path.as_bytes()),
            ("SCHILY.xattr.security.capability", &[1u8, 0, 0, 2][..]),
        ])
        .unwrap();
        h.set_path("short-pax").unwrap();
        h.set_cksum();
        b.append(&h, &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn reassembles_exactly_and_reads_paths() {
        let mut tar = build_tar();
        // Record padding beyond the two zero blocks, as GNU tar writes.
        tar.resize(tar.len() + 10240 - tar.len() % 10240, 0);
        let (out, members) = reassemble(&tar).unwrap();
        assert_eq!(out, tar);
        let paths: Vec<String> = members
            .iter()
            .map(|m| String::from_utf8_lossy(&m.path).into_owned())
            .collect();
        assert_eq!(paths[0], "short.txt");
        assert_eq!(paths[1], format!("{}/file", "d".repeat(150)));
        assert_eq!(paths[2], "dir/");
        assert_eq!(paths[3], format!("{}/pax", "p".repeat(200)));
        assert_eq!(members[1].size, 1000);
        assert!(members[3].is_file());
        assert!(members[3].header.len() >= 3 * BLOCK);
        assert_eq!(members[2].typeflag, b'5');
    }

    #[test]
    fn missing_end_blocks_give_an_empty_trailer() {
        let tar = build_tar();
        let cut = {
            let (_, m) = reassemble(&tar).unwrap();
            m.last().unwrap().end() as usize
        };
        let (out, _) = reassemble(&tar[..cut]).unwrap();
        assert_eq!(out, &tar[..cut]);
    }

    #[test]
    fn flipped_header_byte_is_a_checksum_error() {
        let mut tar = build_tar();
        tar[3] ^= 0x40;
        let e = reassemble(&tar).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
    }

    #[test]
    fn truncation_is_an_error_everywhere() {
        let tar = build_tar();
        let (_, members) = reassemble(&tar).unwrap();
        let end = members.last().unwrap().end() as usize;
        for cut in (1..end).filter(|c| c % 97 == 0 || c % BLOCK == 0) {
            let r = reassemble(&tar[..cut]);
            let at_boundary = members.iter().any(|m| m.end() as usize == cut);
            if at_boundary {
                assert_eq!(r.unwrap().0, &tar[..cut]);
            } else {
                assert!(r.is_err(), "cut at {cut} accepted");
            }
        }
    }

    fn header_with_size(size_field: &[u8], typeflag: u8) -> Vec<u8> {
        let mut block = [0u8; BLOCK];
        block[..4].copy_from_slice(b"evil");
        block[124..124 + size_field.len()].copy_from_slice(size_field);
        block[156] = typeflag;
        block[257..263].copy_from_slice(b"ustar\0");
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let ck = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(ck.as_bytes());
        block.to_vec()
    }

    #[test]
    fn absurd_sizes_are_refused_before_reading() {
        // 8 GiB of data declared in a 512-byte stream with a known length.
        let tar = header_with_size(b"77777777777", b'0');
        let e = reassemble(&tar).unwrap_err().to_string();
        assert!(e.contains("past the stream"), "{e}");
        // A 1 GiB PAX header.
        let tar = header_with_size(b"10000000000", b'x');
        let mut seg = Segmenter::new(&tar[..], "<t>");
        let e = seg.next_item().unwrap_err().to_string();
        assert!(e.contains("extension header"), "{e}");
        // Base-256 size above 1 TiB, no declared length.
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[5] = 0x7f;
        let tar = header_with_size(&f, b'0');
        let mut seg = Segmenter::new(&tar[..], "<t>");
        let e = seg.next_item().unwrap_err().to_string();
        assert!(e.contains("1 TiB"), "{e}");
    }

    #[test]
    fn pax_size_overrides_ustar_size() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", &b"600"[..])]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(600);
        h.set_path("f").unwrap();
        h.set_cksum();
        b.append(&h, &vec![1u8; 600][..]).unwrap();
        let tar = b.into_inner().unwrap();
        let (out, members) = reassemble(&tar).unwrap();
        assert_eq!(out, tar);
        assert_eq!(members[0].size, 600);
    }

    #[test]
    fn garbage_is_refused() {
        let mut junk = Vec::new();
        for i in 0..4096u32 {
            junk.write_all(&[(i * 31 % 251) as u8]).unwrap();
        }
        assert!(reassemble(&junk).is_err());
    }
}
