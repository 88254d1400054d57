//! The scan's tee: every byte the segmenter reads from the gunzipped dist is
//! counted, hashed when the dist recorded no digests, and written to the
//! temporary file — except while skipping the data of a file both dists
//! hold identical, where the file gets a hole instead.
//!
//! Invariant: the write position always equals the count of bytes read once
//! [`Tee::close_hole`] ran, so every member's offset in the stream is its
//! offset in the temporary file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use crate::util::digest::{Digests, Hasher};

/// Where a scanned stream's digests come from.
pub(super) enum Digesting {
    /// The dist's tar record; the stream is only counted.
    Recorded(Digests),
    /// No record: every byte is hashed.
    Hashing(Box<Hasher>),
}

/// Copies everything read through it into the temporary file, counting it
/// and, when there is no recorded digest to use, hashing it. While
/// `skipping`, bytes are counted and hashed but not written: the file gets a
/// hole there.
pub(super) struct Tee<R> {
    pub(super) r: R,
    pub(super) w: BufWriter<File>,
    pub(super) read: u64,
    pub(super) digesting: Digesting,
    pub(super) skipping: bool,
    /// Bytes skipped since the last write.
    pub(super) hole: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        if self.skipping {
            self.hole += n as u64;
        } else if n > 0 {
            self.close_hole()?;
            self.w.write_all(&buf[..n])?;
        }
        self.read += n as u64;
        if let Digesting::Hashing(h) = &mut self.digesting {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl<R> Tee<R> {
    /// Move the write position past the bytes skipped.
    pub(super) fn close_hole(&mut self) -> io::Result<()> {
        if self.hole > 0 {
            let by = i64::try_from(self.hole).map_err(io::Error::other)?;
            self.w.seek(SeekFrom::Current(by))?;
            self.hole = 0;
        }
        Ok(())
    }
}
