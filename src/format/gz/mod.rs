//! gzip as sysup writes it: deterministic and parallel.
//!
//! The input is cut into fixed 1 MiB chunks; each chunk is compressed as raw
//! deflate on a worker thread, primed with the previous chunk's last 32 KiB
//! as its dictionary (so matches still reach back across chunk boundaries)
//! and ended with a sync flush, the last one with a final block. The chunks
//! are concatenated in order behind a fixed header (mtime 0, no name, OS
//! "unknown"; a dist's also has one extra subfield, see [`extra`]) and
//! followed by the CRC-32 and length: one standard gzip member that gunzip,
//! GNU tar and bsdtar read, made by several cores at once — the technique
//! of pigz.
//!
//! Three engines ([`Engine`]): zlib-rs for dists, whose bytes must be the
//! same on every build host; and for the bases a host keeps for itself,
//! where only speed matters, a fast deflate or no compression at all
//! (stored blocks: still a gzip file, with its CRC-32, that any gunzip reads).
//! The fast deflate is libdeflate ([`libdeflate`], built by `cc`) for a
//! base's members, which are whole buffers, and
//! zlib-rs level 2 for this [`Writer`]'s primed chunks, which libdeflate
//! cannot make.
//!
//! A host's bases are not written by this [`Writer`] but by
//! [`members::Writer`]: independent members, cut where [`cuts`] says, so
//! the next apply can copy those that did not change; [`read::Reader`]
//! reads every member of a file (a dist's one, a base's many).
//!
//! Invariants:
//! - the output depends only on the input bytes and the engine — not on how
//!   the input was split across `write` calls, nor on the thread count;
//!   [`Engine::Portable`] output is also the same on every machine;
//! - memory is bounded: at most `2 × threads` chunks are in flight.

use std::io::{self, Write};
use std::sync::Arc;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use crate::util::ordered::Ordered;

pub mod cuts;
pub mod extra;
pub mod libdeflate;
pub mod members;
pub mod read;

/// Which deflate makes the chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// zlib-rs at level 1–9: the same bytes on every machine. For dists.
    Portable(u32),
    /// The fastest deflate built in, for a host's own bases; its bytes may
    /// depend on the CPU. libdeflate at the level asked (0–12) in
    /// [`members::Writer`], and zlib-rs at level 2 whatever the level asked
    /// in [`Writer`] (its level 1 makes bases over 0.45× of the tar).
    Fast(u32),
    /// No compression: deflate's stored blocks, written at memory speed and
    /// read back as fast. The same bytes on every machine.
    Stored,
}

/// The zlib-rs level of [`Engine::Fast`] in [`Writer`]: level 1 (zlib-rs's
/// "quick" strategy, fixed Huffman codes) makes a base of the bench world
/// 0.45× of its tar, level 2 0.37× (BENCHMARKS.md, "host base gzip").
const FAST_ZLIB_LEVEL: u32 = 2;

/// A worker's compressor, made on its own thread.
enum Chunker {
    Zlib(u32),
    Stored,
}

impl Chunker {
    fn new(engine: Engine) -> Chunker {
        match engine {
            Engine::Portable(level) => Chunker::Zlib(level),
            Engine::Fast(_) => Chunker::Zlib(FAST_ZLIB_LEVEL),
            Engine::Stored => Chunker::Stored,
        }
    }

    /// Raw deflate of `data` primed with `dict`, ended by a sync flush or,
    /// if `last`, the final block.
    fn deflate(&mut self, data: &[u8], dict: &[u8], last: bool) -> io::Result<Vec<u8>> {
        match self {
            Chunker::Zlib(level) => compress_chunk(*level, data, dict, last),
            Chunker::Stored => Ok(store_chunk(data, last)),
        }
    }
}

/// The most bytes one stored block holds (its LEN field is 16 bits).
const STORED_MAX: usize = 0xffff;

/// `data` as stored deflate blocks: each a header byte (BFINAL, BTYPE 00),
/// LEN and its one's complement NLEN, then the bytes. Every block ends on a
/// byte boundary, so chunks concatenate like sync-flushed ones; the last
/// chunk's last block (an empty one if the chunk is empty) is final.
fn store_chunk(data: &[u8], last: bool) -> Vec<u8> {
    let blocks = data.len().div_ceil(STORED_MAX).max(1);
    let mut out = Vec::with_capacity(data.len() + 5 * blocks);
    let mut pieces = data.chunks(STORED_MAX).peekable();
    if pieces.peek().is_none() {
        if last {
            out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
        return out;
    }
    while let Some(piece) = pieces.next() {
        let fin = last && pieces.peek().is_none();
        let len = piece.len() as u16;
        out.push(u8::from(fin));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// Input bytes per independently compressed chunk.
const CHUNK: usize = 1 << 20;
/// Deflate's window: how much of the previous chunk primes the next.
const DICT: usize = 32 * 1024;
/// The fixed gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS 255.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A chunk to compress: its bytes, the dictionary that primes it, and
/// whether it ends the stream.
struct Job {
    data: Vec<u8>,
    dict: Arc<Vec<u8>>,
    last: bool,
}

/// A chunk compressed, and the CRC-32 of its input.
struct Done {
    out: io::Result<Vec<u8>>,
    crc: Crc,
}

fn compress_chunk(level: u32, data: &[u8], dict: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict)
            .map_err(|e| io::Error::other(format!("deflate dictionary: {e}")))?;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let done_input = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is in and room was left over.
            Status::Ok | Status::BufError if !last && done_input && out.len() < out.capacity() => {
                break
            }
            _ => out.reserve(out.capacity().max(64 * 1024)),
        }
    }
    Ok(out)
}

/// A worker's job: the chunk's CRC-32 and its deflate.
fn compress(chunker: &mut Chunker, job: Job) -> Done {
    let mut crc = Crc::new();
    crc.update(&job.data);
    let out = chunker.deflate(&job.data, &job.dict, job.last);
    Done { out, crc }
}

/// A deterministic, parallel gzip writer.
pub struct Writer<W: Write> {
    out: Option<W>,
    buf: Vec<u8>,
    dict: Arc<Vec<u8>>,
    /// The workers: chunks in, compressed chunks out, in order.
    pool: Ordered<Job, Done>,
    crc: Crc,
    max_in_flight: u64,
    /// The gzip header, until it is written in front of the first chunk.
    header: Option<Vec<u8>>,
    /// The first compression error: every later call fails with it, so a
    /// chunk that will never be written cannot leave `finish` waiting.
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write> Writer<W> {
    /// Compress into `out` at zlib `level` (1–9) with one worker per core:
    /// the same bytes on every machine.
    pub fn new(out: W, level: u32) -> Self {
        Writer::with_engine(out, Engine::Portable(level))
    }

    /// Compress into `out` with `engine` and one worker per core.
    pub fn with_engine(out: W, engine: Engine) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Writer::with_threads(out, engine, threads)
    }

    /// Compress with `threads` workers (at least one).
    pub fn with_threads(out: W, engine: Engine, threads: usize) -> Self {
        let threads = threads.max(1);
        Writer {
            out: Some(out),
            buf: Vec::with_capacity(CHUNK),
            dict: Arc::new(Vec::new()),
            pool: Ordered::new("sysup-gz", threads, move || Chunker::new(engine), compress),
            crc: Crc::new(),
            max_in_flight: 2 * threads as u64,
            header: Some(HEADER.to_vec()),
            failed: None,
        }
    }

    /// Give the header an extra field holding one subfield `id` of `len`
    /// zero bytes, to be filled in place later at [`extra::PAYLOAD_OFFSET`].
    /// Called before anything is written.
    pub fn with_subfield(mut self, id: [u8; 2], len: u16) -> Self {
        assert!(
            self.pool.submitted() == 0 && self.buf.is_empty(),
            "subfield added after data"
        );
        self.header = Some(extra::header(id, len));
        self
    }

    fn sink(&mut self) -> &mut W {
        self.out.as_mut().expect("gz writer used after finish")
    }

    /// Hand the buffered chunk to a worker.
    fn submit(&mut self, last: bool) -> io::Result<()> {
        self.check()?;
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let tail = data.len().saturating_sub(DICT);
        let next_dict = Arc::new(data[tail..].to_vec());
        let job = Job {
            data,
            dict: std::mem::replace(&mut self.dict, next_dict),
            last,
        };
        self.pool.submit(job)?;
        while self.pool.in_flight() >= self.max_in_flight {
            self.write_next()?;
        }
        Ok(())
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, e)) => Err(io::Error::new(*kind, e.clone())),
            None => Ok(()),
        }
    }

    /// Wait for the oldest chunk in flight and write it.
    fn write_next(&mut self) -> io::Result<()> {
        self.check()?;
        self.write_chunk()
            .inspect_err(|e| self.failed = Some((e.kind(), e.to_string())))
    }

    fn write_chunk(&mut self) -> io::Result<()> {
        let d = self
            .pool
            .take()?
            .ok_or_else(|| io::Error::other("no gzip chunk in flight"))?;
        let bytes = d.out?;
        if let Some(header) = self.header.take() {
            self.sink().write_all(&header)?;
        }
        self.sink().write_all(&bytes)?;
        self.crc.combine(&d.crc);
        Ok(())
    }

    /// Compress what is left, write the trailer, and return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.pool.in_flight() > 0 {
            self.write_next()?;
        }
        let (sum, amount) = (self.crc.sum(), self.crc.amount());
        let Writer { out, pool, .. } = self;
        pool.close();
        let mut out = out.expect("finish runs once");
        out.write_all(&sum.to_le_bytes())?;
        out.write_all(&amount.to_le_bytes())?;
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let take = (CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.submit(false)?;
            }
        }
        Ok(n)
    }

    /// Flushing does not force a chunk out (that would change the bytes);
    /// it only flushes what was already written to the sink.
    fn flush(&mut self) -> io::Result<()> {
        self.sink().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gz(data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        gz_with(Engine::Portable(6), data, threads, piece)
    }

    fn gz_with(engine: Engine, data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut w = Writer::with_threads(Vec::new(), engine, threads);
        for c in data.chunks(piece.max(1)) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let mut data = crate::util::testdata::noise(1, 3 * CHUNK + 12345);
        // compressible stretches, and repeats across chunk boundaries
        data.extend(std::iter::repeat_n(b'a', CHUNK));
        let rep = data[..200_000].to_vec();
        data.extend(rep);
        let a = gz(&data, 1, 7777);
        let b = gz(&data, 3, CHUNK);
        let c = gz(&data, 2, 1 << 22);
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(&a[..10], &HEADER);
        assert_eq!(gunzip(&a), data);
    }

    #[test]
    fn the_fast_engine_round_trips_and_is_deterministic_too() {
        let mut data = crate::util::testdata::noise(2, 2 * CHUNK + 777);
        data.extend(std::iter::repeat_n(b'z', CHUNK + 5));
        let rep = data[..300_000].to_vec();
        data.extend(rep);
        let a = gz_with(Engine::Fast(1), &data, 1, 4099);
        let b = gz_with(Engine::Fast(1), &data, 3, 1 << 22);
        assert_eq!(a, b);
        assert_eq!(gunzip(&a), data);
        // "fast" in this writer is zlib-rs at FAST_ZLIB_LEVEL
        let portable = gz_with(Engine::Portable(FAST_ZLIB_LEVEL), &data, 2, CHUNK);
        assert_eq!(a, portable);
    }

    #[test]
    fn empty_and_tiny_inputs() {
        for engine in [Engine::Portable(6), Engine::Fast(1), Engine::Stored] {
            for data in [&b""[..], b"x", &[0u8; DICT + 1][..]] {
                let z = gz_with(engine, data, 2, 3);
                assert_eq!(gunzip(&z), data, "{engine:?}");
            }
        }
    }

    #[test]
    fn stored_is_the_input_in_framed_blocks() {
        // 2 chunks and a bit: block counts per chunk are 17, 17 and 1
        let data = crate::util::testdata::noise(4, 2 * CHUNK + 100);
        let a = gz_with(Engine::Stored, &data, 1, 999);
        let b = gz_with(Engine::Stored, &data, 3, 1 << 22);
        assert_eq!(a, b);
        assert_eq!(gunzip(&a), data);
        let blocks = 2 * CHUNK.div_ceil(STORED_MAX) + 1;
        assert_eq!(a.len(), HEADER.len() + data.len() + 5 * blocks + 8);
        // the last block is final and holds the last 100 bytes
        let last = a.len() - 8 - 100 - 5;
        assert_eq!(a[last..last + 5], [1, 100, 0, !100u8, 0xff]);
        // a chunk exactly full: nothing may follow the final block
        let full = crate::util::testdata::noise(5, CHUNK);
        assert_eq!(gunzip(&gz_with(Engine::Stored, &full, 2, CHUNK)), full);
    }

    #[test]
    fn gnu_gunzip_reads_it() {
        let data = crate::util::testdata::noise(9, CHUNK + 99);
        for z in [
            gz(&data, 2, 4096),
            gz_with(Engine::Fast(1), &data, 2, 4096),
            gz_with(Engine::Stored, &data, 2, 4096),
        ] {
            gnu_gunzip_gives(z, &data);
        }
    }

    fn gnu_gunzip_gives(z: Vec<u8>, data: &[u8]) {
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&z).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }
}
