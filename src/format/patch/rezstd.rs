//! Re-zstd: the zstd side of [`recode`](super::recode) — reading a zstd
//! frame's settings from its header, and compressing bytes again with
//! them through the `zstd` crate's bundled libzstd.
//!
//! A frame header records whether the frame carries a checksum and its
//! content size (the `zstd` tool writes the size when it knew it in advance,
//! compressing a file rather than a pipe, and then tunes its parameters to
//! that size). It does not record the level: levels 1–19 are tried, the
//! tool's default (3) and its usual "maximum" (19) first; each try stops at
//! its first byte that differs.
//!
//! Invariants: only one whole frame without a dictionary is accepted, at
//! most `cap` bytes out, with a window of at most 2^[`WINDOW_LOG_MAX`];
//! an encoder is bounded by [`Params::check`] (levels 1–19: no `--ultra`
//! windows).

use std::io;

use zstd::stream::raw::{Decoder, Encoder, Operation, OutBuffer};
use zstd::zstd_safe::{CParameter, DParameter};

use super::recode::Matcher;

/// The first bytes of a zstd frame.
pub const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Largest window a decoded frame may use (16 MiB).
const WINDOW_LOG_MAX: u32 = 24;
/// Highest level a recipe may name.
const MAX_LEVEL: u8 = 19;
/// Output handed to a sink per call.
const OUT_CHUNK: usize = 64 << 10;
/// Levels in the order tried.
const LEVELS: [u8; 19] = [
    3, 19, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
];

/// zstd encoder settings that rebuild a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub level: u8,
    /// The frame ends with a checksum.
    pub checksum: bool,
    /// The encoder was told the input's size in advance.
    pub pledged: bool,
    /// The frame header carries the content size (when pledged).
    pub content_size: bool,
}

impl Params {
    pub(super) fn fields(&self) -> Vec<u64> {
        let flags = u64::from(self.checksum)
            | u64::from(self.pledged) << 1
            | u64::from(self.content_size) << 2;
        vec![u64::from(self.level), flags]
    }

    pub(super) fn read<E>(
        next: &mut impl FnMut() -> Result<u64, E>,
        malformed: &impl Fn(&'static str) -> E,
    ) -> Result<Params, E> {
        let level = next()?;
        let flags = next()?;
        if level > u64::from(MAX_LEVEL) || flags > 7 {
            return Err(malformed("a zstd setting out of range"));
        }
        Ok(Params {
            level: level as u8,
            checksum: flags & 1 != 0,
            pledged: flags & 2 != 0,
            content_size: flags & 4 != 0,
        })
    }

    /// Settings this build may run with bounded memory.
    pub(super) fn check(&self) -> Result<(), &'static str> {
        if !(1..=MAX_LEVEL).contains(&self.level) {
            return Err("a zstd level beyond this sysup's bounds");
        }
        Ok(())
    }
}

/// What a frame header says: (checksum, content size present); `None` if
/// `file` is not exactly one zstd frame without a dictionary.
fn frame(file: &[u8]) -> Option<(bool, bool)> {
    if file.len() < 6 || file[..4] != MAGIC {
        return None;
    }
    let fhd = file[4];
    // Reserved bit, dictionary id.
    if fhd & 0x08 != 0 || fhd & 0x03 != 0 {
        return None;
    }
    if zstd::zstd_safe::find_frame_compressed_size(file).ok()? != file.len() {
        return None;
    }
    let single_segment = fhd & 0x20 != 0;
    Some((fhd & 0x04 != 0, fhd >> 6 != 0 || single_segment))
}

/// Decompress one zstd frame to at most `cap` bytes; `None` if `file` is
/// not exactly one valid frame or makes more.
pub fn raw_of(file: &[u8], cap: u64) -> Option<Vec<u8>> {
    frame(file)?;
    let mut d = Decoder::new().ok()?;
    d.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))
        .ok()?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; OUT_CHUNK];
    let mut input = file;
    loop {
        let st = d.run_on_buffers(input, &mut buf).ok()?;
        input = &input[st.bytes_read..];
        out.extend_from_slice(&buf[..st.bytes_written]);
        if out.len() as u64 > cap {
            return None;
        }
        if st.remaining == 0 {
            return input.is_empty().then_some(out);
        }
        if st.bytes_read == 0 && st.bytes_written == 0 {
            return None; // truncated
        }
    }
}

/// The settings that rebuild `file` exactly, and its uncompressed bytes
/// (at most `cap`); `None` if no level tried does.
pub fn recipe(file: &[u8], cap: u64) -> Option<(Params, Vec<u8>)> {
    let (checksum, sized) = frame(file)?;
    let raw = raw_of(file, cap)?;
    // A size in the header means it was pledged; none: a pipe, or a size
    // pledged and left out (`--no-content-size`).
    let how: &[(bool, bool)] = if sized {
        &[(true, true)]
    } else {
        &[(false, true), (true, false)]
    };
    how.iter()
        .flat_map(|&(pledged, content_size)| {
            LEVELS.iter().map(move |&level| Params {
                level,
                checksum,
                pledged,
                content_size,
            })
        })
        .find(|p| {
            let mut m = Matcher::new(file);
            let done = encode(p, &raw, |c| m.next(c));
            m.whole(done)
        })
        .map(|p| (p, raw))
}

fn encoder(p: &Params, len: usize) -> io::Result<Encoder<'static>> {
    let mut e = Encoder::new(i32::from(p.level))?;
    e.set_parameter(CParameter::ChecksumFlag(p.checksum))?;
    e.set_parameter(CParameter::ContentSizeFlag(p.content_size))?;
    if p.pledged {
        e.set_pledged_src_size(Some(len as u64))?;
    }
    Ok(e)
}

/// Compress `raw` with `p` as one frame, handing the output to `sink` in
/// chunks; stop as soon as `sink` returns false. Whether the frame was
/// finished.
pub fn encode(p: &Params, raw: &[u8], mut sink: impl FnMut(&[u8]) -> bool) -> io::Result<bool> {
    p.check().map_err(io::Error::other)?;
    let mut e = encoder(p, raw.len())?;
    let mut buf = vec![0u8; OUT_CHUNK];
    let mut input = raw;
    while !input.is_empty() {
        let st = e.run_on_buffers(input, &mut buf)?;
        input = &input[st.bytes_read..];
        if st.bytes_written > 0 && !sink(&buf[..st.bytes_written]) {
            return Ok(false);
        }
    }
    loop {
        let (left, n) = {
            let mut out = OutBuffer::around(&mut buf[..]);
            let left = e.finish(&mut out, true)?;
            (left, out.pos())
        };
        if n > 0 && !sink(&buf[..n]) {
            return Ok(false);
        }
        if left == 0 {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests;
