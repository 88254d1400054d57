//! Re-xz: the xz side of [`recode`](super::recode) — reading an xz file's
//! settings from its own headers, and compressing bytes again with them
//! through the bundled liblzma (`xz2`).
//!
//! An xz file records its integrity check (stream header), its filter
//! chain and LZMA2 dictionary size (block header), whether its block
//! headers carry sizes (what xz's multi-threaded encoder writes) and every
//! block's uncompressed size (index). It does not record the LZMA2
//! encoder's mode, match finder, nice length and depth: those come from the
//! `xz -0` … `-9` / `-e` presets, nine distinct sets once the dictionary is
//! the recorded one (6–9 differ only in dictionary; every extreme preset
//! but `-3e`/`-5e` is the same), tried most common first. The Linux kernel
//! compresses modules with `xz --check=crc32 --lzma2=dict=1MiB`: preset 6
//! with the dictionary as recorded.
//!
//! Invariants: parsing never indexes past the input and reads at most
//! [`MAX_BLOCKS`] index records; decompression is one stream, no padding,
//! no trailing bytes, at most `cap` bytes out, with a memory limit; an
//! encoder's settings are bounded by [`Params::check`] (dictionary ≤
//! [`MAX_DICT`], block size ≤ [`MAX_RAW`](super::recode::MAX_RAW)).

use std::io;

use xz2::stream::{Action, Check, Filters, LzmaOptions, MtStreamBuilder, Status, Stream};

use super::recode::{Matcher, MAX_RAW};

/// The first bytes of an xz file.
pub const MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
/// Largest LZMA2 dictionary a recipe may name (`xz -7`'s): bounds the
/// encoder's memory (liblzma allocates its tables lazily, so what is
/// touched follows the input).
pub const MAX_DICT: u32 = 16 << 20;
/// Most blocks an index may list for a re-encoded member.
const MAX_BLOCKS: u64 = 1 << 16;
/// Decoder memory limit (a dictionary of [`MAX_DICT`] and its state).
const MEMLIMIT: u64 = 64 << 20;
/// Output handed to a sink per call.
const OUT_CHUNK: usize = 64 << 10;
/// liblzma's flag for an extreme preset.
const EXTREME: u32 = 0x8000_0000;
/// LZMA2's filter id.
const LZMA2: u64 = 0x21;
/// The presets tried (level, extreme), most likely first; each a distinct
/// set of encoder settings once the dictionary is fixed.
const PRESETS: [(u8, bool); 9] = [
    (6, false),
    (6, true),
    (5, true),
    (5, false),
    (4, false),
    (3, false),
    (2, false),
    (1, false),
    (0, false),
];

/// xz encoder settings that rebuild a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Integrity check id (0 none, 1 CRC-32, 4 CRC-64, 10 SHA-256).
    pub check: u8,
    /// `xz -0` … `-9`.
    pub preset: u8,
    /// `xz -e`.
    pub extreme: bool,
    /// LZMA2 dictionary size.
    pub dict_size: u32,
    /// A branch filter before LZMA2 (filter id 4–9: x86, PowerPC, IA-64,
    /// ARM, ARM-Thumb, SPARC), or 0.
    pub bcj: u8,
    /// 0: one block, single-threaded encoder (block headers without
    /// sizes); else the multi-threaded encoder's block size (one thread:
    /// its output does not depend on the thread count).
    pub block_size: u64,
}

impl Params {
    pub(super) fn fields(&self) -> Vec<u64> {
        vec![
            u64::from(self.check),
            u64::from(self.preset),
            u64::from(self.extreme),
            u64::from(self.dict_size),
            u64::from(self.bcj),
            self.block_size,
        ]
    }

    pub(super) fn read<E>(
        next: &mut impl FnMut() -> Result<u64, E>,
        malformed: &impl Fn(&'static str) -> E,
    ) -> Result<Params, E> {
        let mut small = |max: u64| -> Result<u64, E> {
            let v = next()?;
            if v > max {
                return Err(malformed("an xz setting out of range"));
            }
            Ok(v)
        };
        Ok(Params {
            check: small(15)? as u8,
            preset: small(9)? as u8,
            extreme: small(1)? == 1,
            dict_size: small(u64::from(u32::MAX))? as u32,
            bcj: small(15)? as u8,
            block_size: next()?,
        })
    }

    /// Settings this build may run with bounded memory.
    pub(super) fn check(&self) -> Result<(), &'static str> {
        if !matches!(self.check, 0 | 1 | 4 | 10) {
            return Err("an unknown xz check");
        }
        if self.preset > 9 || !(4096..=MAX_DICT).contains(&self.dict_size) {
            return Err("xz settings beyond this sysup's bounds");
        }
        if self.bcj != 0 && !(4..=9).contains(&self.bcj) {
            return Err("an unknown xz branch filter");
        }
        if self.block_size > MAX_RAW {
            return Err("an xz block size beyond this sysup's bounds");
        }
        Ok(())
    }
}

/// The version of the linked liblzma.
pub fn version() -> String {
    // SAFETY: lzma_version_string returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(lzma_version_string()) }
        .to_string_lossy()
        .into_owned()
}

// liblzma's own, linked statically through `xz2` (lzma-sys).
extern "C" {
    fn lzma_version_string() -> *const std::os::raw::c_char;
}

/// A filter id and its properties.
type Filter = (u64, Vec<u8>);

/// What an xz file says of how it was made.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    check: u8,
    /// Filter ids and properties of the first block, in chain order.
    filters: Vec<Filter>,
    /// The first block header carries its sizes.
    sized: bool,
    /// The first byte of the first block header (its length / 4 − 1).
    header_len: u8,
    /// Uncompressed size of each block (from the index).
    blocks: Vec<u64>,
}

/// An xz varint at `b[*at..]` (at most 9 bytes).
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Read the stream header, the first block header and the index of a
/// one-stream xz file without padding; `None` if it is not one.
fn layout(file: &[u8]) -> Option<Layout> {
    if file.len() < 24 || file[..6] != MAGIC || file[6] != 0 || file[7] > 15 {
        return None;
    }
    let foot = &file[file.len() - 12..];
    if foot[10..] != *b"YZ" || foot[8..10] != file[6..8] {
        return None;
    }
    let backward = u64::from(u32::from_le_bytes(foot[4..8].try_into().ok()?));
    let index_len = usize::try_from((backward + 1) * 4).ok()?;
    let index_at = (file.len() - 12).checked_sub(index_len)?;
    let index = &file[index_at..file.len() - 12];
    let mut at = 1;
    if index.first() != Some(&0) {
        return None;
    }
    let count = varint(index, &mut at)?;
    if count > MAX_BLOCKS {
        return None;
    }
    let mut blocks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        varint(index, &mut at)?; // unpadded size
        blocks.push(varint(index, &mut at)?);
    }
    let (filters, sized) = if count == 0 {
        (Vec::new(), false)
    } else {
        block_header(file.get(12..index_at)?)?
    };
    Some(Layout {
        check: file[7],
        filters,
        sized,
        header_len: file[12],
        blocks,
    })
}

/// The filter chain of the block header at the start of `b`, and whether
/// it carries the block's sizes.
fn block_header(b: &[u8]) -> Option<(Vec<Filter>, bool)> {
    let len = (usize::from(*b.first()?) + 1) * 4;
    let h = b.get(..len)?;
    let flags = *h.get(1)?;
    if h[0] == 0 || flags & 0x3c != 0 {
        return None;
    }
    let mut at = 2;
    for bit in [0x40u8, 0x80] {
        if flags & bit != 0 {
            varint(h, &mut at)?;
        }
    }
    let mut filters = Vec::new();
    for _ in 0..=(flags & 3) {
        let id = varint(h, &mut at)?;
        let n = usize::try_from(varint(h, &mut at)?).ok()?;
        let props = h.get(at..at.checked_add(n)?)?.to_vec();
        at += n;
        filters.push((id, props));
    }
    Some((filters, flags & 0xc0 == 0xc0))
}

/// An LZMA2 dictionary size from its one-byte property.
fn dict_of(p: u8) -> Option<u32> {
    match p {
        0..=39 => Some((2 | u32::from(p & 1)) << (p / 2 + 11)),
        40 => Some(u32::MAX),
        _ => None,
    }
}

/// The settings a layout pins down (all but the preset), for `raw_len`
/// uncompressed bytes; `None` for chains and block splits we do not make.
fn pinned(l: &Layout, raw_len: u64) -> Option<Params> {
    let (lzma2, bcj) = match l.filters.as_slice() {
        [] => (None, 0),
        [(LZMA2, p)] => (Some(p), 0),
        [(b @ 4..=9, bp), (LZMA2, p)] if bp.is_empty() => (Some(p), *b as u8),
        _ => return None,
    };
    let dict_size = match lzma2.map(Vec::as_slice) {
        Some([p]) => dict_of(*p)?,
        Some(_) => return None,
        None => 1 << 20,
    };
    let block_size = if !l.sized {
        // The single-threaded encoder makes one block (none when empty).
        if l.blocks.len() > 1 {
            return None;
        }
        0
    } else {
        // The multi-threaded one: blocks of one size but the last.
        let (last, full) = l.blocks.split_last()?;
        let size = full.first().copied().unwrap_or(raw_len.max(1));
        if full.iter().any(|&b| b != size) || *last > size {
            return None;
        }
        size
    };
    let p = Params {
        check: l.check,
        preset: 6,
        extreme: false,
        dict_size,
        bcj,
        block_size,
    };
    if l.sized && l.blocks.len() == 1 {
        return one_block_size(p, l.header_len);
    }
    Some(p)
}

/// A one-block stream of the multi-threaded encoder does not say its
/// block size, but its block header is padded to hold the sizes a block of
/// that size could have: pick the smallest candidate whose header has the
/// recorded length (any such size rebuilds the same bytes).
fn one_block_size(p: Params, header_len: u8) -> Option<Params> {
    [p.block_size, 2 << 20, MAX_RAW]
        .into_iter()
        .map(|block_size| Params { block_size, ..p })
        .find(|q| {
            let mut head = Vec::new();
            let _ = encode(q, b"x", |c| {
                head.extend_from_slice(c);
                head.len() <= 12
            });
            head.get(12) == Some(&header_len)
        })
}

/// Decompress a one-stream xz file to at most `cap` bytes; `None` if it is
/// not exactly one valid stream or makes more.
pub fn raw_of(file: &[u8], cap: u64) -> Option<Vec<u8>> {
    layout(file)?;
    let mut s = Stream::new_stream_decoder(MEMLIMIT, 0).ok()?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; OUT_CHUNK];
    let mut input = file;
    loop {
        let (i0, o0) = (s.total_in(), s.total_out());
        let status = s.process(input, &mut buf, Action::Finish).ok()?;
        let used = (s.total_in() - i0) as usize;
        let made = (s.total_out() - o0) as usize;
        input = &input[used..];
        out.extend_from_slice(&buf[..made]);
        if out.len() as u64 > cap {
            return None;
        }
        match status {
            Status::StreamEnd => return input.is_empty().then_some(out),
            Status::Ok | Status::GetCheck if used > 0 || made > 0 => {}
            _ => return None,
        }
    }
}

/// The settings that rebuild `file` exactly, and its uncompressed bytes
/// (at most `cap`); `None` if no preset tried does.
pub fn recipe(file: &[u8], cap: u64) -> Option<(Params, Vec<u8>)> {
    let l = layout(file)?;
    let raw = raw_of(file, cap)?;
    let base = pinned(&l, raw.len() as u64)?;
    base.check().ok()?;
    PRESETS
        .into_iter()
        .find_map(|(preset, extreme)| {
            let p = Params {
                preset,
                extreme,
                ..base
            };
            let mut m = Matcher::new(file);
            let done = encode(&p, &raw, |c| m.next(c));
            m.whole(done).then_some(p)
        })
        .map(|p| (p, raw))
}

fn encoder(p: &Params) -> io::Result<Stream> {
    let err = |e: xz2::stream::Error| io::Error::other(format!("liblzma: {e}"));
    let preset = u32::from(p.preset) | if p.extreme { EXTREME } else { 0 };
    let mut opts = LzmaOptions::new_preset(preset).map_err(err)?;
    opts.dict_size(p.dict_size);
    let mut f = Filters::new();
    match p.bcj {
        4 => f.x86(),
        5 => f.powerpc(),
        6 => f.ia64(),
        7 => f.arm(),
        8 => f.arm_thumb(),
        9 => f.sparc(),
        _ => &mut f,
    };
    f.lzma2(&opts);
    let check = match p.check {
        0 => Check::None,
        1 => Check::Crc32,
        4 => Check::Crc64,
        _ => Check::Sha256,
    };
    if p.block_size == 0 {
        Stream::new_stream_encoder(&f, check).map_err(err)
    } else {
        MtStreamBuilder::new()
            .threads(1)
            .block_size(p.block_size)
            .timeout_ms(0)
            .filters(f)
            .check(check)
            .encoder()
            .map_err(err)
    }
}

/// Compress `raw` with `p`, handing the output to `sink` in chunks; stop as
/// soon as `sink` returns false. Whether the stream was finished.
pub fn encode(p: &Params, raw: &[u8], mut sink: impl FnMut(&[u8]) -> bool) -> io::Result<bool> {
    p.check().map_err(io::Error::other)?;
    let mut s = encoder(p)?;
    let mut buf = vec![0u8; OUT_CHUNK];
    let mut input = raw;
    loop {
        let action = if input.is_empty() {
            Action::Finish
        } else {
            Action::Run
        };
        let (i0, o0) = (s.total_in(), s.total_out());
        let status = s
            .process(input, &mut buf, action)
            .map_err(|e| io::Error::other(format!("liblzma: {e}")))?;
        input = &input[(s.total_in() - i0) as usize..];
        let made = (s.total_out() - o0) as usize;
        if made > 0 && !sink(&buf[..made]) {
            return Ok(false);
        }
        if let Status::StreamEnd = status {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests;
