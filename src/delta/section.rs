//! Body sections on disk: compressing a raw section into the patch file
//! (writer side), checking every section's SHA-256 before anything is applied,
//! and reading one section forward, decompressed, with exact-length accounting
//! (applier side; the applier opens the patch once per section and reads the
//! three in parallel).
//!
//! Compression is one zstd frame per section, long-distance matching on.
//! Measured on the 1.1 GB bench pair (DESIGN §3, bench/README): see
//! [`LEVEL`].
//!
//! Invariants: a [`SectionReader`] yields exactly the section's `raw_len`
//! bytes — asking for more is a "corrupt patch" error, not a short read — and
//! its decoder never holds more than a 2^`window_log` window (the header caps
//! it), so a decompression bomb runs into a length check, never into memory.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::delta::format::{corrupt, PatchHeader, Section, SectionKind};
use crate::error::{Error, IoContext, Result};

/// zstd level for the diff and extra sections.
pub const LEVEL: i32 = 19;

/// How to compress.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub level: i32,
    /// zstd worker threads (1 = single-threaded).
    pub threads: u32,
}
/// zstd window log (with long-distance matching) for the diff and extra sections.
pub const WINDOW_LOG: u32 = 27;

/// Compress `raw` (`raw_len` bytes from its start) into `out` as one zstd
/// frame; return the section's compressed length and SHA-256.
pub fn compress(
    raw: &mut File,
    raw_len: u64,
    kind: SectionKind,
    params: &Params,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<(u64, [u8; 32])> {
    raw.seek(SeekFrom::Start(0))
        .ctx("rewind", "<section temp file>")?;
    let mut sink = ShaCount {
        inner: out,
        sha: Sha256::new(),
        len: 0,
    };
    let level = if kind == SectionKind::Controls {
        LEVEL
    } else {
        params.level
    };
    let threads = params.threads;
    let mut enc =
        zstd::stream::write::Encoder::new(&mut sink, level).ctx("start zstd for", out_path)?;
    let tune = |enc: &mut zstd::stream::write::Encoder<'_, _>| -> io::Result<()> {
        enc.include_checksum(false)?;
        enc.include_contentsize(true)?;
        enc.set_pledged_src_size(Some(raw_len))?;
        if kind != SectionKind::Controls {
            enc.long_distance_matching(true)?;
            enc.window_log(WINDOW_LOG)?;
        }
        if threads > 1 && raw_len > 1 << 20 {
            enc.multithread(threads)?;
        }
        Ok(())
    };
    tune(&mut enc).ctx("configure zstd for", out_path)?;
    let copied = io::copy(
        &mut BufReader::with_capacity(1 << 20, (&*raw).take(raw_len)),
        &mut enc,
    )
    .ctx("compress a section into", out_path)?;
    if copied != raw_len {
        return Err(Error::io(
            "read back",
            "<section temp file>",
            io::ErrorKind::UnexpectedEof.into(),
        ));
    }
    enc.finish().ctx("finish zstd in", out_path)?;
    Ok((sink.len, sink.sha.finalize().into()))
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

/// One section, read forward and decompressed.
pub struct SectionReader {
    kind: SectionKind,
    path: PathBuf,
    dec: zstd::stream::read::Decoder<'static, BufReader<io::Take<File>>>,
    left: u64,
}

impl SectionReader {
    /// Open `section` of the patch at `path`.
    pub fn open(path: &Path, section: &Section, window_log: u8) -> Result<SectionReader> {
        let mut f = File::open(path).ctx("open patch", path)?;
        f.seek(SeekFrom::Start(section.offset))
            .ctx("seek in patch", path)?;
        let mut dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
            256 * 1024,
            f.take(section.len),
        ))
        .ctx("start zstd for", path)?;
        dec.window_log_max(u32::from(window_log).max(10))
            .ctx("configure zstd for", path)?;
        Ok(SectionReader {
            kind: section.kind,
            path: path.to_path_buf(),
            dec,
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

/// Reading through `Read` (for the record decoder): a clean EOF at the
/// section's declared end, an error if the decoder disagrees.
impl Read for SectionReader {
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
