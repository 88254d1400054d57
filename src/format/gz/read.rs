//! Reading gzip: every member of a file, one after the other (RFC 1952 §2.2:
//! a gzip file is a series of members), as gunzip, GNU tar and bsdtar read
//! it — a host's base is many members ([`super::members`]), a dist one.
//!
//! While it reads, [`Reader`] can record each member that sysup's own
//! writer made (the fixed header, no flags) in an [`Index`]: its CRC-32 and
//! length, from its trailer once that was checked, and where its compressed
//! bytes are. The writer of the next base looks members up there to copy
//! them instead of deflating them again.
//!
//! Invariants: every member's CRC-32 and length are checked against its
//! trailer before its last byte is returned, and a member is recorded only
//! after that; an empty file, a truncated member, a bad header or anything
//! after the last member but another member is an error (`InvalidData`,
//! "checksum" in the message of a CRC mismatch), never a panic. The index
//! says what a file held when it was read: whoever copies from it checks
//! the bytes again (they may have changed since).

use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};

use flate2::{Crc, Decompress, FlushDecompress, Status};

use super::HEADER;

/// Where a member is in its file: compressed offset and length (header
/// and trailer included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub offset: u64,
    pub len: u64,
}

/// The members a [`Reader`] read, by their CRC-32 and uncompressed length;
/// shared between the reading thread and the writer's workers.
#[derive(Debug, Clone, Default)]
pub struct Index(Arc<Mutex<HashMap<(u32, u64), Place>>>);

impl Index {
    fn record(&self, crc: u32, len: u64, place: Place) {
        if let Ok(mut m) = self.0.lock() {
            m.entry((crc, len)).or_insert(place);
        }
    }

    /// The place of a member that inflated to `len` bytes of CRC-32 `crc`.
    pub fn find(&self, crc: u32, len: u64) -> Option<Place> {
        self.0.lock().ok()?.get(&(crc, len)).copied()
    }

    /// How many members are recorded.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Phase {
    Header,
    Body,
    Done,
}

/// A gunzip of every member of `inner`.
pub struct Reader<R> {
    inner: R,
    phase: Phase,
    inflate: Decompress,
    crc: Crc,
    /// Compressed bytes consumed so far.
    pos: u64,
    /// Where the current member starts, and whether its header is sysup's.
    start: u64,
    plain: bool,
    members: u64,
    index: Option<Index>,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {what}"))
}

impl<R: BufRead> Reader<R> {
    /// Read every member of `inner`.
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            phase: Phase::Header,
            inflate: Decompress::new(false),
            crc: Crc::new(),
            pos: 0,
            start: 0,
            plain: false,
            members: 0,
            index: None,
        }
    }

    /// Also record sysup's own members in `index`.
    pub fn with_index(mut self, index: Index) -> Self {
        self.index = Some(index);
        self
    }

    fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => bad("the file ends inside a member"),
            _ => e,
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Skip a zero-terminated header field.
    fn skip_cstr(&mut self) -> io::Result<()> {
        let mut b = [0u8; 1];
        loop {
            self.take(&mut b)?;
            if b[0] == 0 {
                return Ok(());
            }
        }
    }

    /// The next member's header; false at the end of the file.
    fn header(&mut self) -> io::Result<bool> {
        if self.inner.fill_buf()?.is_empty() {
            return if self.members == 0 {
                Err(bad("empty file"))
            } else {
                Ok(false)
            };
        }
        self.start = self.pos;
        let mut h = [0u8; 10];
        self.take(&mut h)?;
        if h[..3] != [0x1f, 0x8b, 8] {
            return Err(bad("invalid gzip header"));
        }
        let flags = h[3];
        if flags & 0xe0 != 0 {
            return Err(bad("reserved header flags set"));
        }
        if flags & 4 != 0 {
            let mut x = [0u8; 2];
            self.take(&mut x)?;
            let mut extra = vec![0u8; usize::from(u16::from_le_bytes(x))];
            self.take(&mut extra)?;
        }
        if flags & 8 != 0 {
            self.skip_cstr()?;
        }
        if flags & 16 != 0 {
            self.skip_cstr()?;
        }
        if flags & 2 != 0 {
            self.take(&mut [0u8; 2])?;
        }
        self.plain = h == HEADER;
        self.inflate.reset(false);
        self.crc.reset();
        Ok(true)
    }

    /// Inflate into `buf`; `None` once the member's deflate stream ended.
    fn body(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            let input = self.inner.fill_buf()?;
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, buf, FlushDecompress::None)
                .map_err(|_| bad("corrupt deflate stream"))?;
            let used = (self.inflate.total_in() - in0) as usize;
            let made = (self.inflate.total_out() - out0) as usize;
            let ended = input.is_empty();
            self.inner.consume(used);
            self.pos += used as u64;
            self.crc.update(&buf[..made]);
            if status == Status::StreamEnd {
                self.trailer()?;
                if made > 0 {
                    return Ok(Some(made));
                }
                return Ok(None);
            }
            if made > 0 {
                return Ok(Some(made));
            }
            if ended {
                return Err(bad("the file ends inside a member"));
            }
        }
    }

    /// Check the trailer against what was inflated, and record the member.
    fn trailer(&mut self) -> io::Result<()> {
        let mut t = [0u8; 8];
        self.take(&mut t)?;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let len = self.inflate.total_out();
        if crc != self.crc.sum() || isize != len as u32 {
            return Err(bad("corrupt gzip stream does not have a matching checksum"));
        }
        self.members += 1;
        self.phase = Phase::Header;
        if let (true, Some(index)) = (self.plain, &self.index) {
            let place = Place {
                offset: self.start,
                len: self.pos - self.start,
            };
            index.record(crc, len, place);
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.phase {
                Phase::Done => return Ok(0),
                Phase::Header => {
                    if self.header()? {
                        self.phase = Phase::Body;
                    } else {
                        self.phase = Phase::Done;
                    }
                }
                Phase::Body => {
                    if let Some(n) = self.body(buf)? {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
