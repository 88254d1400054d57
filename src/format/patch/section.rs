//! Body sections on disk: compressing a section on its own thread while the
//! generator writes it ([`SectionWriter`], writer side), checking
//! every section's SHA-256 before anything is applied, and reading one
//! section forward, decompressed, with exact-length accounting (applier side;
//! the applier opens the patch once per section and reads the three in
//! parallel, each big one decompressed on a thread of its own).
//!
//! Compression is one zstd frame per section (the default), or one xz stream
//! per section (LZMA2; the extra section, which carries literal file bytes,
//! goes through the x86 BCJ filter first) when asked for. On the bench pair's
//! raw sections (BENCHMARKS.md, "Section codecs on the raw sections") xz
//! makes a few percent fewer bytes, but its decoder costs `sysup patch` a
//! sizeable share of its CPU where zstd's takes a few hundredths, and on two
//! cores that CPU is wall time: with xz `sysup patch` was only level with
//! `xdelta3 -d`. zstd is the default for that (docs/decisions.md, "zstd
//! sections by default"); `sysup diff --compression xz` makes the smaller
//! patch.
//!
//! Each zstd section is compressed single-threaded on its own thread while
//! the diff writes it: zstd's own workers cut a frame into jobs of several
//! windows, so they compressed nothing until the section was whole and left
//! an 8 s tail after the diff. The window is 2^[`ZSTD_WINDOW_LOG`], the match
//! tables 2^[`ZSTD_CHAIN_LOG`]/2^[`ZSTD_HASH_LOG`] entries: the levels' own
//! tables for an input of unknown size took ~100 MB per section for 0.2%
//! fewer bytes.
//!
//! Invariants: a [`SectionReader`] yields exactly the section's `raw_len`
//! bytes — asking for more is an error, not a short read — and its decoder
//! never holds more than the 2^`window_log` window the header declares (the
//! header caps it), so a decompression bomb runs into a length check, never
//! into memory.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use crate::util::digest::Sha256;
use crate::util::readahead::ReadAhead;

use crate::error::{Error, IoContext, Result};
use crate::format::patch::header::{corrupt, Compression, PatchHeader, Section, SectionKind};

/// Default xz preset.
pub const XZ_LEVEL: u32 = 6;
/// Default zstd level: 17 made the bench pair's diff 6-15% faster than 19
/// for 2.5% more patch bytes (docs/decisions.md, "zstd sections by default").
pub const ZSTD_LEVEL: i32 = 17;
/// log2 of the xz dictionary.
pub const XZ_WINDOW_LOG: u8 = 23;
/// How many candidates xz's binary-tree match finder visits per position
/// (encoder only; preset 6 would pick 48 for its nice length of 64). On the
/// bench pair's sections, 16 made the two big ones 8,548 bytes (0.12%) bigger
/// and took 2.4 s (20%) off their CPU: best of 3, `lzma` module on the raw
/// sections.
pub const XZ_DEPTH: u32 = 16;
/// log2 of the zstd window (with long-distance matching): the applier's two
/// big sections each hold at most this much, 32 MiB together.
pub const ZSTD_WINDOW_LOG: u8 = 24;
/// log2 of zstd's chain table (entries of 4 bytes) for the diff and extra
/// sections; the controls take 2^[`SMALL_TABLE_LOG`].
pub const ZSTD_CHAIN_LOG: u32 = 22;
/// log2 of zstd's hash table for the diff and extra sections.
pub const ZSTD_HASH_LOG: u32 = 20;
/// log2 of the controls section's window and zstd tables: the controls are
/// a few hundred kB.
const SMALL_TABLE_LOG: u32 = 20;

/// How to compress.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub codec: Compression,
    /// xz preset (0-9) or zstd level (1-22).
    pub level: i32,
}

impl Params {
    /// The window log a patch made with these parameters declares.
    pub fn window_log(&self) -> u8 {
        match self.codec {
            Compression::Xz => XZ_WINDOW_LOG,
            Compression::Zstd => ZSTD_WINDOW_LOG,
        }
    }
}

/// Compress everything `input` yields into `out`; return the uncompressed
/// length, the compressed length and the compressed bytes' SHA-256.
pub fn compress(
    mut input: impl Read,
    kind: SectionKind,
    params: &Params,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<(u64, u64, [u8; 32])> {
    let mut sink = ShaCount {
        inner: out,
        sha: Sha256::new(),
        len: 0,
    };
    let raw_len = match params.codec {
        Compression::Xz => {
            let mut opts = xz2::stream::LzmaOptions::new_preset(params.level.clamp(0, 9) as u32)
                .map_err(|e| Error::io("configure xz for", out_path, e.into()))?;
            // The controls are small: a small dictionary keeps the encoder's
            // memory (about 11 times the dictionary) down.
            let dict_log = match kind {
                SectionKind::Controls => SMALL_TABLE_LOG,
                _ => u32::from(XZ_WINDOW_LOG),
            };
            opts.dict_size(1 << dict_log);
            opts.depth(XZ_DEPTH);
            let mut filters = xz2::stream::Filters::new();
            if kind == SectionKind::Extra {
                filters.x86();
            }
            filters.lzma2(&opts);
            let stream =
                xz2::stream::Stream::new_stream_encoder(&filters, xz2::stream::Check::None)
                    .map_err(|e| Error::io("start xz for", out_path, e.into()))?;
            let mut enc = xz2::write::XzEncoder::new_stream(&mut sink, stream);
            let n = io::copy(&mut input, &mut enc).ctx("compress a section into", out_path)?;
            enc.finish().ctx("finish xz in", out_path)?;
            n
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(&mut sink, params.level)
                .ctx("start zstd for", out_path)?;
            let (window, chain, hash) = match kind {
                SectionKind::Controls => (SMALL_TABLE_LOG, SMALL_TABLE_LOG, SMALL_TABLE_LOG - 2),
                _ => (u32::from(ZSTD_WINDOW_LOG), ZSTD_CHAIN_LOG, ZSTD_HASH_LOG),
            };
            let tune = |enc: &mut zstd::stream::write::Encoder<'_, _>| -> io::Result<()> {
                use zstd::stream::raw::CParameter;
                enc.include_checksum(false)?;
                enc.long_distance_matching(true)?;
                enc.window_log(window)?;
                enc.set_parameter(CParameter::ChainLog(chain))?;
                enc.set_parameter(CParameter::HashLog(hash))?;
                Ok(())
            };
            tune(&mut enc).ctx("configure zstd for", out_path)?;
            let n = io::copy(&mut input, &mut enc).ctx("compress a section into", out_path)?;
            enc.finish().ctx("finish zstd in", out_path)?;
            n
        }
    };
    Ok((raw_len, sink.len, sink.sha.finalize()))
}

/// A compressed section waiting in a temporary file.
pub struct Compressed {
    pub file: File,
    pub raw_len: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

/// Chunks handed to a compressing thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight per section: bounds the memory between writer and compressor.
const IN_FLIGHT: usize = 8;

/// A section compressed on its own thread while it is being written, so
/// compression overlaps the diffing that produces it.
pub struct SectionWriter {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    worker: Option<thread::JoinHandle<Result<Compressed>>>,
}

impl SectionWriter {
    /// Start compressing section `kind` into an unlinked temporary file.
    pub fn spawn(kind: SectionKind, params: Params) -> Result<SectionWriter> {
        let tmp = std::env::temp_dir();
        let mut file = tempfile::tempfile().ctx("create a temporary file in", &tmp)?;
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let worker = thread::Builder::new()
            .name(format!("sysup-{}", kind.name()))
            .spawn(move || -> Result<Compressed> {
                let input = ChannelReader {
                    rx,
                    cur: Vec::new(),
                    at: 0,
                };
                let mut w = io::BufWriter::with_capacity(CHUNK, &mut file);
                let (raw_len, len, sha256) = compress(input, kind, &params, &mut w, &tmp)?;
                w.flush().ctx("write a temporary file in", &tmp)?;
                drop(w);
                Ok(Compressed {
                    file,
                    raw_len,
                    len,
                    sha256,
                })
            })
            .ctx("start a compression thread for", std::env::temp_dir())?;
        Ok(SectionWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
            worker: Some(worker),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let tx = self.tx.as_ref().expect("section writer used after finish");
        // A closed channel means the compressor stopped: its error comes from finish().
        tx.send(chunk)
            .map_err(|_| io::Error::other("the compression thread stopped"))
    }

    /// Flush, wait for the compressor and return the compressed section.
    pub fn finish(mut self) -> Result<Compressed> {
        let sent = self.send();
        self.tx = None;
        let done = self
            .worker
            .take()
            .expect("finished once")
            .join()
            .expect("compression thread panicked");
        let c = done?;
        sent.ctx("hand a section to its compressor in", std::env::temp_dir())?;
        Ok(c)
    }
}

impl Write for SectionWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compressor's side of the channel.
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.cur.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.cur = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.at);
        out[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through.
struct ShaCount<'a, W> {
    inner: &'a mut W,
    sha: Sha256,
    len: u64,
}

impl<W: Write> Write for ShaCount<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Check every section's compressed bytes against its SHA-256 in the header.
pub fn verify(path: &Path, header: &PatchHeader) -> Result<()> {
    let mut f = File::open(path).ctx("open patch", path)?;
    let mut buf = vec![0u8; 1 << 20];
    for s in &header.sections {
        f.seek(SeekFrom::Start(s.offset))
            .ctx("seek in patch", path)?;
        let mut sha = Sha256::new();
        let mut left = s.len;
        while left > 0 {
            let n = (left.min(buf.len() as u64)) as usize;
            f.read_exact(&mut buf[..n]).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => corrupt(
                    path,
                    format!("truncated inside the {} section", s.kind.name()),
                ),
                _ => Error::io("read patch", path, e),
            })?;
            sha.update(&buf[..n]);
            left -= n as u64;
        }
        if sha.finalize()[..] != s.sha256[..] {
            return Err(corrupt(
                path,
                format!("the {} section does not match its SHA-256", s.kind.name()),
            ));
        }
    }
    Ok(())
}

type Body = BufReader<io::Take<File>>;

/// A section's decoder.
enum Decoder {
    Xz(xz2::bufread::XzDecoder<Body>),
    Zstd(zstd::stream::read::Decoder<'static, Body>),
    /// One of the above, run on a thread of its own.
    Ahead(ReadAhead),
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Xz(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Ahead(d) => d.read(buf),
        }
    }
}

/// Sections that decompress to at least this many bytes are decompressed on
/// a thread of their own ([`ReadAhead`], at most 4 MiB ahead), so that
/// decoding runs beside the applier instead of inside it: xz decoding was a
/// quarter of the applier thread's CPU on the bench pair (diff 10 MB and
/// extra 11 MB raw). Smaller sections, and small patches, decode inline.
const AHEAD_MIN: u64 = 1 << 20;

/// Decoded bytes buffered per section: the record readers take a byte or
/// a varint at a time, and a decoder call per byte was a fifth of
/// `sysup patch`'s CPU.
const DECODED_BUF: usize = 64 * 1024;

/// One section, read forward and decompressed.
pub struct SectionReader {
    kind: SectionKind,
    path: PathBuf,
    dec: BufReader<Decoder>,
    left: u64,
}

impl SectionReader {
    /// Open `section` of the patch at `path`.
    pub fn open(
        path: &Path,
        section: &Section,
        codec: Compression,
        window_log: u8,
    ) -> Result<SectionReader> {
        let mut f = File::open(path).ctx("open patch", path)?;
        f.seek(SeekFrom::Start(section.offset))
            .ctx("seek in patch", path)?;
        let input = BufReader::with_capacity(256 * 1024, f.take(section.len));
        let dec = match codec {
            Compression::Xz => {
                // The dictionary plus liblzma's own state (well under 4 MiB).
                let memlimit = (1u64 << window_log) + (4 << 20);
                let stream = xz2::stream::Stream::new_stream_decoder(memlimit, 0)
                    .map_err(|e| Error::io("start xz for", path, e.into()))?;
                Decoder::Xz(xz2::bufread::XzDecoder::new_stream(input, stream))
            }
            Compression::Zstd => {
                let mut d =
                    zstd::stream::read::Decoder::with_buffer(input).ctx("start zstd for", path)?;
                d.window_log_max(u32::from(window_log).max(10))
                    .ctx("configure zstd for", path)?;
                Decoder::Zstd(d)
            }
        };
        let dec = if section.raw_len >= AHEAD_MIN {
            let name = format!("sysup-{}", section.kind.name());
            Decoder::Ahead(ReadAhead::spawn(&name, dec).ctx("start a decoding thread for", path)?)
        } else {
            dec
        };
        Ok(SectionReader {
            kind: section.kind,
            path: path.to_path_buf(),
            dec: BufReader::with_capacity(DECODED_BUF, dec),
            left: section.raw_len,
        })
    }

    /// Uncompressed bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.left
    }

    fn short(&self) -> Error {
        Error::Patch {
            path: self.path.clone(),
            reason: format!(
                "the {} section ends before the records that use it",
                self.kind.name()
            ),
        }
    }

    /// Read exactly `buf.len()` bytes.
    pub fn read_exact_bytes(&mut self, buf: &mut [u8]) -> Result<()> {
        if buf.len() as u64 > self.left {
            return Err(self.short());
        }
        self.dec.read_exact(buf).map_err(|e| self.decode_error(e))?;
        self.left -= buf.len() as u64;
        Ok(())
    }

    /// Append exactly `n` bytes to `out`.
    pub fn read_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<()> {
        let start = out.len();
        out.resize(start + n, 0);
        self.read_exact_bytes(&mut out[start..])
    }

    fn decode_error(&self, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return corrupt(
                &self.path,
                format!(
                    "the {} section decompresses to fewer bytes than its header says",
                    self.kind.name()
                ),
            );
        }
        corrupt(
            &self.path,
            format!("the {} section does not decompress: {e}", self.kind.name()),
        )
    }

    /// Check that every byte was used and nothing follows.
    pub fn finish(&mut self) -> Result<()> {
        if self.left != 0 {
            return Err(Error::Patch {
                path: self.path.clone(),
                reason: format!(
                    "{} bytes of the {} section are never used",
                    self.left,
                    self.kind.name()
                ),
            });
        }
        let mut b = [0u8; 1];
        match self.dec.read(&mut b) {
            Ok(0) => Ok(()),
            Ok(_) => Err(corrupt(
                &self.path,
                format!(
                    "the {} section decompresses to more bytes than its header says",
                    self.kind.name()
                ),
            )),
            Err(e) => Err(self.decode_error(e)),
        }
    }
}

/// Reading through `Read` (for the record decoders): a clean EOF at the
/// section's declared end, an error if the decoder disagrees.
impl Read for SectionReader {
    // Inlined into the zero-run decoder's one-byte varint reads, which
    // otherwise pay a call per byte (2–4% of `sysup patch`'s CPU).
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        if n == 0 {
            return Ok(0);
        }
        let got = self.dec.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} section decompresses short", self.kind.name()),
            ));
        }
        self.left -= got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests;
