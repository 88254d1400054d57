//! Reading gzip: every member of a file, one after the other (RFC 1952 §2.2:
//! a gzip file is a series of members), as gunzip, GNU tar and bsdtar read
//! it — a host's base is many members ([`super::members`]), a dist one.
//!
//! A member with sysup's fixed header is inflated whole, by libdeflate
//! ([`super::libdeflate`]), from a read-ahead window that holds the
//! biggest member sysup writes ([`WINDOW`]) straight into the caller's
//! buffer when that has room for a typical member, else into a buffer of
//! [`cuts::HARD_MAX`] bytes — never sized from the member's own length
//! field; its trailer is checked before any of its bytes is returned. Any
//! other member, and one of sysup's that does not inflate whole there (too
//! big, cut short, damaged), is streamed through zlib-rs, which also gives
//! the error a damaged one deserves.
//!
//! While it reads, [`Reader`] can record each member that sysup's own
//! writer made (the fixed header, no flags) in an [`Index`]: its CRC-32 and
//! length, from its trailer once that was checked, and where its compressed
//! bytes are; the last members read whole are held in memory besides
//! ([`Held`], [`HOLD`] bytes at most). The writer of the next base looks
//! members up there to copy them instead of deflating them again.
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

use flate2::{Decompress, FlushDecompress, Status};

use super::cuts;
use super::libdeflate::{Crc32, Inflated, Inflater};
use super::HEADER;

/// Where a member is in its file: compressed offset and length (header
/// and trailer included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub offset: u64,
    pub len: u64,
}

/// The members a [`Reader`] read, by their CRC-32 and uncompressed length;
/// shared between the reading thread and the writer's workers. The last
/// ones read whole are also held in memory ([`Held`], up to [`HOLD`]
/// bytes), so that a writer not far behind the reader copies them without
/// reading and inflating them again.
#[derive(Debug, Clone, Default)]
pub struct Index(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    places: Mutex<HashMap<(u32, u64), Place>>,
    recent: Mutex<Recent>,
    /// Hold nothing (more): nobody copies from what is held.
    no_hold: std::sync::atomic::AtomicBool,
}

/// A member as it was read: its compressed bytes, header and trailer
/// included, and what they inflated to (trailer checked).
#[derive(Debug)]
pub struct Held {
    pub packed: Vec<u8>,
    pub content: Vec<u8>,
}

/// The members held, by their offset in the file, oldest first in `order`.
#[derive(Debug, Default)]
struct Recent {
    by_offset: HashMap<u64, Arc<Held>>,
    order: std::collections::VecDeque<u64>,
    bytes: usize,
}

/// Bytes of members held (compressed and inflated): the apply's writer
/// runs a few MiB behind its reader (read-ahead buffers, the patch, the
/// groups in flight).
pub const HOLD: usize = 16 << 20;

impl Index {
    fn record(&self, crc: u32, len: u64, place: Place) {
        if let Ok(mut m) = self.0.places.lock() {
            m.entry((crc, len)).or_insert(place);
        }
    }

    /// Whether members read are to be held.
    fn holding(&self) -> bool {
        !self.0.no_hold.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hold no member from now on, and drop those held: the writer will
    /// not copy (a stored base is written).
    pub fn stop_holding(&self) {
        self.0
            .no_hold
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut r) = self.0.recent.lock() {
            *r = Recent::default();
        }
    }

    /// Hold the member at `offset`, dropping the oldest beyond [`HOLD`].
    fn hold(&self, offset: u64, held: Held) {
        let Ok(mut r) = self.0.recent.lock() else {
            return;
        };
        if !self.holding() {
            return;
        }
        r.bytes += held.packed.len() + held.content.len();
        if let Some(old) = r.by_offset.insert(offset, Arc::new(held)) {
            r.bytes -= old.packed.len() + old.content.len();
        } else {
            r.order.push_back(offset);
        }
        while r.bytes > HOLD {
            let Some(o) = r.order.pop_front() else { break };
            if let Some(h) = r.by_offset.remove(&o) {
                r.bytes -= h.packed.len() + h.content.len();
            }
        }
    }

    /// The place of a member that inflated to `len` bytes of CRC-32 `crc`.
    pub fn find(&self, crc: u32, len: u64) -> Option<Place> {
        self.0.places.lock().ok()?.get(&(crc, len)).copied()
    }

    /// The member at `place`, if it is still held.
    pub fn held(&self, place: Place) -> Option<Arc<Held>> {
        let r = self.0.recent.lock().ok()?;
        let h = r.by_offset.get(&place.offset)?;
        (h.packed.len() as u64 == place.len).then(|| h.clone())
    }

    /// How many members are recorded.
    pub fn len(&self) -> usize {
        self.0.places.lock().map_or(0, |m| m.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most compressed bytes a member of sysup's takes: the header, the
/// deflate of [`cuts::HARD_MAX`] bytes (stored blocks at worst), the trailer.
pub const WINDOW: usize = cuts::HARD_MAX + cuts::HARD_MAX / 8 + 64 * 1024;

/// The most a [`Window`] reads from its file at once, and how far ahead
/// it first reads for a member of sysup's (most are far smaller).
const READ: usize = 1 << 20;

/// A read-ahead buffer that can hold [`WINDOW`] bytes of its file at once.
/// Its buffer is allocated zeroed (pages the kernel maps only once
/// touched) and what is ahead moves to its front once a [`READ`] was
/// consumed: for members of ~100 KiB only its first few MiB are ever used.
struct Window<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Window<R> {
    fn new(inner: R) -> Self {
        Window {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// Read once more into the buffer, behind what it holds.
    fn more(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; WINDOW + READ];
        }
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start >= READ || self.buf.len() - self.end < READ {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let stop = (self.end + READ).min(self.buf.len());
        loop {
            match self.inner.read(&mut self.buf[self.end..stop]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }

    /// The bytes ahead, at least `want` of them (at most [`WINDOW`]) unless
    /// the file ends first.
    fn fill(&mut self, want: usize) -> io::Result<&[u8]> {
        while self.end - self.start < want.min(WINDOW) && !self.eof {
            self.more()?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Whether the file's every byte is in the buffer, or [`WINDOW`] of them.
    fn full(&self) -> bool {
        self.eof || self.end - self.start >= WINDOW
    }
}

impl<R: Read> Read for Window<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let have = self.fill_buf()?;
            let n = have.len().min(out.len());
            out[..n].copy_from_slice(&have[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Window<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.fill(1)
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

/// What [`Reader::header`] did with the next member.
enum Whole {
    /// Nothing: the file ended.
    End,
    /// Not inflated whole: its header was read, its body is streamed (or,
    /// from `inflate_whole`, it is to be).
    No,
    /// Inflated whole into `whole_out`.
    Buffered,
    /// Inflated whole into the caller's buffer: so many bytes.
    Direct(usize),
}

/// The least room in a caller's buffer that is tried for a whole member
/// (most of sysup's are at most [`cuts::MAX`] bytes); a member that turns
/// out bigger is inflated again into the reader's own buffer.
const DIRECT_MIN: usize = cuts::MAX;

enum Phase {
    Header,
    Body,
    /// A member inflated whole: its bytes from `whole_at` on are next.
    Whole,
    Done,
}

/// A gunzip of every member of `inner`.
pub struct Reader<R> {
    inner: Window<R>,
    phase: Phase,
    /// libdeflate, for members of sysup's (`None`: no memory for it).
    whole: Option<Inflater>,
    /// The last member inflated whole, and how much of it was returned.
    whole_out: Vec<u8>,
    whole_len: usize,
    whole_at: usize,
    inflate: Decompress,
    crc: Crc32,
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

impl<R: Read> Reader<R> {
    /// Read every member of `inner`.
    pub fn new(inner: R) -> Self {
        Reader {
            inner: Window::new(inner),
            phase: Phase::Header,
            whole: Inflater::new(),
            whole_out: Vec::new(),
            whole_len: 0,
            whole_at: 0,
            inflate: Decompress::new(false),
            crc: Crc32::new(),
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

    /// The next member: inflated whole (into `direct` if it fits there),
    /// or its header read for streaming; [`Whole::End`] at the end of the file.
    fn header(&mut self, direct: &mut [u8]) -> io::Result<Whole> {
        if self.inner.fill_buf()?.is_empty() {
            return if self.members == 0 {
                Err(bad("empty file"))
            } else {
                Ok(Whole::End)
            };
        }
        self.start = self.pos;
        match self.inflate_whole(direct)? {
            Whole::No => {}
            done => return Ok(done),
        }
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
        self.crc = Crc32::new();
        self.phase = Phase::Body;
        Ok(Whole::No)
    }

    /// Inflate the next member in one call if it is one of sysup's and
    /// whole in the window; its trailer checked, it is recorded and its
    /// bytes are either in `direct` (the caller's buffer, tried when it has
    /// room for a typical member: one copy fewer) or wait in `whole_out`.
    fn inflate_whole(&mut self, direct: &mut [u8]) -> io::Result<Whole> {
        // a dist's header is not sysup's plain one: only sysup's are read ahead
        if self.inner.fill(HEADER.len())?.get(..HEADER.len()) != Some(&HEADER[..]) {
            return Ok(Whole::No);
        }
        let Some(inflater) = self.whole.as_mut() else {
            return Ok(Whole::No);
        };
        let mut into_direct = direct.len() >= DIRECT_MIN;
        // most members are whole in the first READ bytes ahead; the others
        // get a second try with the whole WINDOW
        let mut want = READ;
        let (end, made) = loop {
            let w = self.inner.fill(want)?;
            if !into_direct && self.whole_out.is_empty() {
                self.whole_out = vec![0u8; cuts::HARD_MAX];
            }
            let out = if into_direct {
                &mut *direct
            } else {
                &mut self.whole_out[..]
            };
            match inflater.inflate(&w[HEADER.len()..], out) {
                Inflated::Whole { used, made } if w.len() >= HEADER.len() + used + 8 => {
                    break (HEADER.len() + used, made);
                }
                // bigger than the caller's room: into our own buffer
                Inflated::TooBig if into_direct => {
                    into_direct = false;
                    continue;
                }
                Inflated::TooBig => return Ok(Whole::No),
                _ => {}
            }
            if self.inner.full() {
                return Ok(Whole::No);
            }
            want = WINDOW;
        };
        let content = if into_direct {
            &direct[..made]
        } else {
            &self.whole_out[..made]
        };
        let t = &self.inner.fill(end + 8)?[end..end + 8];
        let sum = Crc32::of(content);
        if t[..4] != sum.to_le_bytes() || t[4..] != (made as u32).to_le_bytes() {
            return Err(bad("corrupt gzip stream does not have a matching checksum"));
        }
        if let Some(index) = &self.index {
            let place = Place {
                offset: self.start,
                len: (end + 8) as u64,
            };
            index.record(sum, made as u64, place);
            if index.holding() {
                let held = Held {
                    packed: self.inner.fill(end + 8)?[..end + 8].to_vec(),
                    content: content.to_vec(),
                };
                index.hold(self.start, held);
            }
        }
        self.inner.consume(end + 8);
        self.pos += (end + 8) as u64;
        self.members += 1;
        if into_direct {
            self.phase = Phase::Header;
            return Ok(Whole::Direct(made));
        }
        (self.whole_len, self.whole_at) = (made, 0);
        self.phase = Phase::Whole;
        Ok(Whole::Buffered)
    }

    /// Return bytes of the member inflated whole.
    fn serve(&mut self, buf: &mut [u8]) -> usize {
        let rest = &self.whole_out[self.whole_at..self.whole_len];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.whole_at += n;
        if self.whole_at == self.whole_len {
            self.phase = Phase::Header;
        }
        n
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

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.phase {
                Phase::Done => return Ok(0),
                Phase::Header => match self.header(buf)? {
                    Whole::End => self.phase = Phase::Done,
                    Whole::Direct(n) if n > 0 => return Ok(n),
                    _ => {}
                },
                Phase::Whole => {
                    let n = self.serve(buf);
                    if n > 0 {
                        return Ok(n);
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
