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

/// What the extension headers before a member's own header said.
#[derive(Default)]
struct Extensions {
    /// The member's raw header blocks so far (extensions with their data).
    raw: Vec<u8>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
    /// A global PAX header's `size`, for members without their own.
    global_size: Option<u64>,
    gnu_long: Option<Vec<u8>>,
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
        let mut ext = Extensions {
            raw: Vec::with_capacity(BLOCK),
            ..Extensions::default()
        };
        loop {
            let mut block = [0u8; BLOCK];
            if let Some(end) = self.header_block(&mut block, ext.raw.is_empty())? {
                return Ok(Some(end));
            }
            let at = self.pos - BLOCK as u64;
            verify_checksum(&block).map_err(|r| self.bad(format!("header at byte {at}: {r}")))?;
            ext.raw.extend_from_slice(&block);
            if ext.raw.len() > MAX_HEADER {
                return Err(self.bad(format!(
                    "more than {MAX_HEADER} bytes of extension headers before byte {}",
                    self.pos
                )));
            }
            let typeflag = block[156];
            let size = parse_number(&block[124..136])
                .ok_or_else(|| self.bad(format!("header at byte {at}: bad size field")))?;
            if matches!(typeflag, b'x' | b'g' | b'L' | b'K') {
                self.read_extension(&mut ext, typeflag, size, at)?;
                continue;
            }
            let member = self.member(ext, &block, offset, size, at)?;
            return Ok(Some(Item::Member(member)));
        }
    }

    /// Read the next header block into `block`; or, returned, what ends
    /// the archive instead: a clean EOF where a member could start (an empty
    /// trailer), or the end-of-archive marker and everything after it.
    /// `first`: no extension header came before.
    fn header_block(&mut self, block: &mut [u8; BLOCK], first: bool) -> Result<Option<Item>> {
        if !self.read_block(block)? {
            if first {
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
            if !first {
                return Err(self.bad(format!(
                    "end-of-archive block at byte {} right after extension headers",
                    self.pos - BLOCK as u64
                )));
            }
            return self.read_trailer(*block).map(Some);
        }
        Ok(None)
    }

    /// Read the `size` data bytes of a PAX or GNU extension header (at byte
    /// `at`) into `ext.raw`, and note what they say of the member.
    fn read_extension(
        &mut self,
        ext: &mut Extensions,
        typeflag: u8,
        size: u64,
        at: u64,
    ) -> Result<()> {
        if size > MAX_EXTENSION {
            return Err(self.bad(format!(
                "extension header at byte {at} declares {size} bytes, more than {MAX_EXTENSION}"
            )));
        }
        self.check_size(size, at)?;
        let padded = (size + pad_len(size)) as usize;
        let start = ext.raw.len();
        ext.raw.resize(start + padded, 0);
        self.read_exact_or_truncated(&mut ext.raw[start..], "extension data")?;
        let data = &ext.raw[start..start + size as usize];
        match typeflag {
            b'x' | b'g' => {
                let recs = parse_pax(data)
                    .map_err(|r| self.bad(format!("PAX header at byte {at}: {r}")))?;
                for (k, v) in recs {
                    match k {
                        b"path" if typeflag == b'x' => ext.pax_path = Some(v.to_vec()),
                        b"size" => {
                            let n = std::str::from_utf8(v)
                                .ok()
                                .and_then(|s| s.parse::<u64>().ok())
                                .ok_or_else(|| {
                                    self.bad(format!("PAX header at byte {at}: bad size record"))
                                })?;
                            if typeflag == b'x' {
                                ext.pax_size = Some(n);
                            } else {
                                ext.global_size = Some(n);
                            }
                        }
                        _ => {}
                    }
                }
            }
            b'L' => ext.gnu_long = Some(trim_nul(data).to_vec()),
            _ => {}
        }
        Ok(())
    }

    /// The member whose own header `block` (at byte `at`, of ustar size
    /// `size`) ends the header blocks in `ext`; its data comes next.
    fn member(
        &mut self,
        mut ext: Extensions,
        block: &[u8; BLOCK],
        offset: u64,
        size: u64,
        at: u64,
    ) -> Result<Member> {
        let typeflag = block[156];
        // GNU old sparse: extension blocks follow while the "isextended"
        // byte is set.
        if typeflag == b'S' && block[482] != 0 {
            self.read_sparse_blocks(&mut ext.raw, at)?;
        }
        let size = ext.pax_size.or(ext.global_size).unwrap_or(size);
        self.check_size(size, at)?;
        let path = ext
            .pax_path
            .or(ext.gnu_long)
            .unwrap_or_else(|| ustar_path(block));
        self.data_left = size;
        self.pad_left = pad_len(size);
        Ok(Member {
            header: ext.raw,
            path,
            typeflag,
            size,
            offset,
        })
    }

    /// Read GNU sparse extension blocks into `raw` up to the last one.
    fn read_sparse_blocks(&mut self, raw: &mut Vec<u8>, at: u64) -> Result<()> {
        let mut count = 0;
        loop {
            let mut ext = [0u8; BLOCK];
            self.read_exact_or_truncated(&mut ext, "a sparse extension block")?;
            raw.extend_from_slice(&ext);
            count += 1;
            if ext[504] == 0 {
                return Ok(());
            }
            if count >= MAX_SPARSE_BLOCKS || raw.len() > MAX_HEADER {
                return Err(self.bad(format!("too many sparse extension blocks after byte {at}")));
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
mod tests;
