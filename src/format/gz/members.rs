//! The gzip writer of a host's base: the tar cut into groups of members
//! ([`super::cuts`]), each group its own gzip member (fixed header, one
//! final deflate stream, CRC-32 and length), so the file is a plain
//! `.tar.gz` that gunzip, GNU tar and bsdtar read, made of independent
//! members (docs/design.md §4, "Kept bases").
//!
//! A group that the base before held too — the [`Index`] its reader filled
//! has a member of the same CRC-32 and length — is not deflated again: that
//! member's compressed bytes are read from the old base file and copied,
//! after they were inflated and found byte for byte equal to the group
//! (the old base is the host's own file, but it may have been altered or
//! swapped since it was read: what is copied must be the group, whatever
//! the file holds now; the inflate, by libdeflate, goes into a buffer
//! sized from the group, never from the file). A member the reader still
//! holds in memory ([`super::read::Held`]: the bytes it read and what they
//! inflated to) is compared and copied from there instead. Any other group, or one
//! whose copy does not check, is deflated with the engine — in one call of
//! libdeflate for [`Engine::Fast`]. Both run on the worker
//! threads, one per core, and members are written in order.
//!
//! Invariants: the file inflates to exactly the bytes written, whatever the
//! old base holds; at most [`IN_FLIGHT_BYTES`] plus one group (at most
//! [`cuts::HARD_MAX`] bytes) of input are in flight; the first error is returned by
//! every later call; a kill leaves a temporary the apply's undo removes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::cuts::{self, Cut, Cutter};
use super::libdeflate::{Crc32, Deflater, Inflated, Inflater};
use super::read::{Index, Place};
use super::{Chunker, Engine, HEADER};
use crate::util::ordered::Ordered;

/// The base an apply read, to copy unchanged members from.
pub struct Old {
    /// The old base, opened for positional reads.
    pub file: File,
    /// Its members, as its reader recorded them.
    pub index: Index,
}

/// What a writer did, for benchmarks and tests.
#[derive(Debug, Default)]
pub struct Counts {
    /// Members copied from the old base, and the bytes they hold.
    pub copied: AtomicU64,
    pub copied_bytes: AtomicU64,
    /// Members deflated, and the bytes they hold.
    pub deflated: AtomicU64,
    pub deflated_bytes: AtomicU64,
    /// Of those copied, the members the old base's reader still held in
    /// memory (compared there: no read, no inflate).
    pub held: AtomicU64,
    /// Old members found by CRC and length whose bytes did not check.
    pub refused: AtomicU64,
}

/// Input bytes in flight (queued, being compressed, or waiting for their
/// turn to be written) before `write` waits: with groups of ~200 KiB, enough
/// to keep every core busy while the apply's other threads run.
const IN_FLIGHT_BYTES: usize = 4 << 20;

/// How a worker deflates a group: libdeflate at the level asked for
/// [`Engine::Fast`] (whole buffers: a member is one call), else the chunk compressor of `gz` with the group as its one,
/// final chunk.
enum Packer {
    Libdeflate(Deflater),
    Chunker(Chunker),
}

impl Packer {
    fn new(engine: Engine) -> io::Result<Packer> {
        Ok(match engine {
            Engine::Fast(level) => Packer::Libdeflate(Deflater::new(level)?),
            _ => Packer::Chunker(Chunker::new(engine)),
        })
    }

    /// Append `data`'s raw deflate stream, ended by its final block, to `out`.
    fn deflate(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Packer::Libdeflate(d) => d.deflate(data, out),
            Packer::Chunker(c) => {
                out.extend_from_slice(&c.deflate(data, &[], true)?);
                Ok(())
            }
        }
    }
}

/// A worker's tools: its deflate, and the inflate and buffer that check copies.
struct Tools {
    packer: io::Result<Packer>,
    check: Check,
}

/// What checks a copy: an inflater and its output buffer, kept between
/// groups.
pub struct Check {
    inflater: Option<Inflater>,
    out: Vec<u8>,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            inflater: Inflater::new(),
            out: Vec::new(),
        }
    }
}

/// The gzip member of `data`: copied from `old` if it holds it, else deflated.
fn member_of(
    tools: &mut Tools,
    old: Option<&Old>,
    counts: &Counts,
    hook: Hook,
    data: &[u8],
) -> io::Result<Vec<u8>> {
    let (sum, len) = (Crc32::of(data), data.len() as u64);
    if let Some(old) = old {
        if let Some(place) = old.index.find(sum, len) {
            hook("base-copy");
            // held since it was read: its bytes inflated to those, checked then
            let held = old.index.held(place).filter(|h| h.content == data);
            if held.is_some() {
                counts.held.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(bytes) = held
                .map(|h| h.packed.clone())
                .or_else(|| copy_checked(&mut tools.check, &old.file, place, data, sum))
            {
                counts.copied.fetch_add(1, Ordering::Relaxed);
                counts.copied_bytes.fetch_add(len, Ordering::Relaxed);
                return Ok(bytes);
            }
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    hook("base-deflate");
    let packer = tools
        .packer
        .as_mut()
        .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER.len() + data.len() / 2 + 1024);
    out.extend_from_slice(&HEADER);
    packer.deflate(data, &mut out)?;
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    counts.deflated.fetch_add(1, Ordering::Relaxed);
    counts.deflated_bytes.fetch_add(len, Ordering::Relaxed);
    Ok(out)
}

/// The member at `place` in `file`, if it is sysup's fixed header, a deflate
/// stream that inflates to exactly `data` and ends where the trailer
/// starts, and that trailer (`crc`, length). Anything else — a read error,
/// a file changed since it was indexed — is `None`: the group is deflated.
/// The stream is inflated by libdeflate into `check`'s buffer, sized from
/// `data` (never from the file).
pub fn copy_checked(
    check: &mut Check,
    file: &File,
    place: Place,
    data: &[u8],
    crc: u32,
) -> Option<Vec<u8>> {
    let min = (HEADER.len() + 8) as u64;
    // deflate never needs much more than the input (stored blocks)
    if place.len < min || place.len > data.len() as u64 + data.len() as u64 / 8 + 1024 {
        return None;
    }
    let mut bytes = vec![0u8; place.len as usize];
    file.read_exact_at(&mut bytes, place.offset).ok()?;
    let (head, rest) = bytes.split_at(HEADER.len());
    let (body, trailer) = rest.split_at(rest.len() - 8);
    if head != HEADER
        || trailer[..4] != crc.to_le_bytes()
        || trailer[4..] != (data.len() as u32).to_le_bytes()
    {
        return None;
    }
    let inflater = check.inflater.as_mut()?;
    // one byte more than the group: a stream that inflates to more is TooBig
    check.out.resize(data.len() + 1, 0);
    let whole = Inflated::Whole {
        used: body.len(),
        made: data.len(),
    };
    (inflater.inflate(body, &mut check.out) == whole && check.out[..data.len()] == *data)
        .then_some(bytes)
}

/// Called by a worker with `"base-copy"` before it copies a member and
/// `"base-deflate"` before it deflates one: the apply's crash checkpoints
/// (`host::checkpoint`), which this module does not know.
pub type Hook = fn(&str);

/// A parallel writer of a base as independent gzip members.
pub struct Writer<W: Write> {
    out: Option<W>,
    buf: Vec<u8>,
    cutter: Cutter,
    /// The workers: a group in, its member out, in order.
    pool: Ordered<Vec<u8>, io::Result<Vec<u8>>>,
    /// Input bytes of each group in flight, oldest first.
    in_flight: VecDeque<usize>,
    in_flight_bytes: usize,
    counts: Arc<Counts>,
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write> Writer<W> {
    /// Write into `out` with `engine`, one worker per core, copying the
    /// members `old` holds; the workers call `hook` (see [`Hook`]).
    pub fn new(out: W, engine: Engine, old: Option<Old>, hook: Hook) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Writer::with_threads(out, engine, old, hook, threads)
    }

    /// [`Writer::new`] with `threads` workers (at least one).
    pub fn with_threads(
        out: W,
        engine: Engine,
        old: Option<Old>,
        hook: Hook,
        threads: usize,
    ) -> Self {
        let old = old.map(Arc::new);
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let pool = Ordered::new(
            "sysup-base-gz",
            threads,
            move || Tools {
                packer: Packer::new(engine),
                check: Check::default(),
            },
            move |tools: &mut Tools, data: Vec<u8>| {
                member_of(tools, old.as_deref(), &c, hook, &data)
            },
        );
        Writer {
            out: Some(out),
            buf: Vec::with_capacity(cuts::MAX),
            cutter: Cutter::default(),
            pool,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            counts,
            failed: None,
        }
    }

    /// Cut where `p` says instead of the default (before anything is
    /// written; for benchmarks that look for better cuts).
    pub fn with_cuts(mut self, p: cuts::Params) -> Self {
        self.cutter = Cutter::with(p);
        self
    }

    /// What the workers did so far.
    pub fn counts(&self) -> Arc<Counts> {
        self.counts.clone()
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, e)) => Err(io::Error::new(*kind, e.clone())),
            None => Ok(()),
        }
    }

    /// Hand `data` (a whole group) to a worker.
    fn submit(&mut self, data: Vec<u8>) -> io::Result<()> {
        self.check()?;
        self.in_flight.push_back(data.len());
        self.in_flight_bytes += data.len();
        self.pool.submit(data)?;
        // Groups are small: many may be in flight, bounded by their bytes.
        while self.in_flight_bytes > IN_FLIGHT_BYTES {
            self.write_next()?;
        }
        Ok(())
    }

    /// Wait for the oldest member in flight and write it.
    fn write_next(&mut self) -> io::Result<()> {
        self.check()?;
        let written = self.pool.take().and_then(|member| {
            let bytes = member.ok_or_else(|| io::Error::other("no gzip member in flight"))??;
            self.out
                .as_mut()
                .expect("gz writer used after finish")
                .write_all(&bytes)
        });
        written.inspect_err(|e| self.failed = Some((e.kind(), e.to_string())))?;
        self.in_flight_bytes -= self.in_flight.pop_front().unwrap_or(0);
        Ok(())
    }

    /// Write the last group and every member still in flight; return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        // An empty input is still one (empty) member: a gzip file.
        if !self.buf.is_empty() || self.pool.submitted() == 0 {
            let last = std::mem::take(&mut self.buf);
            self.submit(last)?;
        }
        while self.pool.in_flight() > 0 {
            self.write_next()?;
        }
        let Writer { out, pool, .. } = self;
        pool.close();
        let mut out = out.expect("finish runs once");
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            match self.cutter.feed(self.buf.len(), data) {
                Cut::Take(t) => {
                    self.buf.extend_from_slice(&data[..t]);
                    data = &data[t..];
                }
                Cut::End(t) => {
                    self.buf.extend_from_slice(&data[..t]);
                    data = &data[t..];
                    let group = std::mem::replace(&mut self.buf, Vec::with_capacity(cuts::MAX));
                    self.submit(group)?;
                }
                Cut::Before { take, back } => {
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let mut next = Vec::with_capacity(cuts::MAX);
                    next.extend_from_slice(&self.buf[self.buf.len() - back..]);
                    self.buf.truncate(self.buf.len() - back);
                    let group = std::mem::replace(&mut self.buf, next);
                    self.submit(group)?;
                }
            }
        }
        Ok(n)
    }

    /// Flushing does not end a group (that would move the cuts); it only
    /// flushes what was already written to the sink.
    fn flush(&mut self) -> io::Result<()> {
        self.out
            .as_mut()
            .expect("gz writer used after finish")
            .flush()
    }
}

#[cfg(test)]
#[path = "members_tests.rs"]
mod tests;
