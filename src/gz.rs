//! gzip as sysup writes it: deterministic (header mtime 0, no file name, OS
//! byte "unknown"), so the same tar always gives the same `.tar.gz`.
//!
//! Invariant: the output is one standard gzip member that `gunzip`, GNU tar
//! and bsdtar read; it depends only on the input bytes and the level.

use std::io::{self, Write};

/// A deterministic gzip writer.
pub struct Writer<W: Write> {
    inner: flate2::write::GzEncoder<W>,
}

impl<W: Write> Writer<W> {
    /// Compress into `out` at `level` (1–9).
    pub fn new(out: W, level: u32) -> Self {
        let inner = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(out, flate2::Compression::new(level));
        Writer { inner }
    }

    /// Finish the gzip member and return the sink.
    pub fn finish(self) -> io::Result<W> {
        self.inner.finish()
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
