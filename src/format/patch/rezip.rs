//! Re-zip: diffing a zip-family archive (`.whl`, `.jar`, `.zip`, `.npz`)
//! through its *expanded* form (patch format 5), the
//! [`recode`](super::recode) kind of a zip member.
//!
//! A changed file inside a wheel changes its deflate entry wholesale, and
//! the zip's central directory moves; a bsdiff of the archive is mostly
//! literal. The expanded form of an archive is its bytes with deflate
//! entries replaced by their inflated bytes: local headers, stored
//! entries, data descriptors and the central directory stay as they are.
//!
//! - The **old** member is expanded by [`expand_old`]: a fixed walk of its
//!   local headers (`walk`) inflating every deflate entry that inflates
//!   cleanly within the bounds. It is a function of the old bytes alone,
//!   so the patch carries nothing for it; the walk is part of the format
//!   (docs/patch-format.md) and must not change.
//! - The **new** member's expanded form holds only the deflate entries
//!   C zlib reproduces exactly at some level and memLevel (window 2^15,
//!   the default strategy: what Python's `zipfile` and Java's `Deflater`
//!   call); a [`Table`] says where they are in it and how to deflate them.
//!   The applier makes the new expanded bytes by bsdiff from the old ones
//!   and [`rebuild`]s the archive by deflating the table's entries and
//!   copying everything else.
//!
//! Invariants:
//! - [`recipe`] says yes only after deflating each tabled entry and
//!   comparing its bytes with the archive's (and [`rebuild`] of the
//!   expanded form is then the archive, byte for byte);
//! - both expanded forms and both archives are at most [`MAX_RAW`] bytes;
//!   inflating stops past the bound; a table is read
//!   ([`Table::read`]) only within [`MAX_ENTRIES`] entries whose spans fit
//!   the expanded length, before anything is allocated from it;
//! - no zip64, encrypted or multi-disk feature is interpreted: the walk
//!   stops there and the rest stays bytes.

use std::io;

use flate2::{Decompress, FlushDecompress, Status};

use super::recode::MAX_RAW;
use super::zlib::{self, Deflate};

/// The first bytes of a zip archive (a local file header).
pub const MAGIC: [u8; 4] = *b"PK\x03\x04";
/// Most deflate entries a table may list (a zip without zip64 has at most
/// 65535 entries).
pub const MAX_ENTRIES: u64 = 1 << 16;
/// The settings tried for an entry, most likely first: Python's `zipfile`
/// and Java's default (6), "maximum" (9), the other levels, then memLevel
/// 9. The setting that rebuilt the archive's previous entry goes first.
const CANDIDATES: [Deflate; 11] = {
    const fn d(level: u8, mem_level: u8) -> Deflate {
        Deflate { level, mem_level }
    }
    [
        d(6, 8),
        d(9, 8),
        d(1, 8),
        d(5, 8),
        d(4, 8),
        d(3, 8),
        d(2, 8),
        d(7, 8),
        d(8, 8),
        d(6, 9),
        d(9, 9),
    ]
};
/// Deflate entries that no setting reproduced after which an archive none
/// of whose entries was reproduced is given up (another deflater made it).
const MAX_MISSES: u32 = 8;
/// Most uncompressed bytes deflated in vain while searching one archive.
const SEARCH_BUDGET: u64 = 2 * MAX_RAW;

/// A zip member's record fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Entries of the [`Table`] that follows the record.
    pub entries: u32,
}

impl Params {
    pub(super) fn fields(&self) -> Vec<u64> {
        vec![u64::from(self.entries)]
    }

    pub(super) fn read<E>(
        next: &mut impl FnMut() -> Result<u64, E>,
        malformed: &impl Fn(&'static str) -> E,
    ) -> Result<Params, E> {
        let n = next()?;
        if n == 0 || n > MAX_ENTRIES {
            return Err(malformed("a zip member's entry count out of range"));
        }
        Ok(Params { entries: n as u32 })
    }
}

/// One rebuilt deflate entry of the new archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Expanded bytes copied as they are since the previous entry's end.
    pub gap: u64,
    /// Uncompressed bytes of the entry, deflated with `deflate`.
    pub raw_len: u64,
    pub deflate: Deflate,
}

/// Where a new archive's rebuilt entries are in its expanded form, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table(pub Vec<Entry>);

impl Table {
    /// The numbers following the record: per entry its gap, its length and
    /// `memLevel × 16 + level`.
    pub fn fields(&self) -> Vec<u64> {
        self.0
            .iter()
            .flat_map(|e| {
                let code = u64::from(e.deflate.mem_level) << 4 | u64::from(e.deflate.level);
                [e.gap, e.raw_len, code]
            })
            .collect()
    }

    /// The inverse of [`Self::fields`] for a table of `n` entries (at most
    /// [`MAX_ENTRIES`]) in an expanded form of `total` bytes: every entry's
    /// span must lie inside it and every setting be one zlib accepts.
    pub fn read<E>(
        n: u32,
        total: u64,
        mut next: impl FnMut() -> Result<u64, E>,
        malformed: impl Fn(&'static str) -> E,
    ) -> Result<Table, E> {
        if u64::from(n) > MAX_ENTRIES || total > MAX_RAW {
            return Err(malformed("a zip member's table out of bounds"));
        }
        let mut at = 0u64;
        let mut t = Vec::new();
        for _ in 0..n {
            let (gap, raw_len, code) = (next()?, next()?, next()?);
            let end = at
                .checked_add(gap)
                .and_then(|x| x.checked_add(raw_len))
                .filter(|&e| e <= total)
                .ok_or_else(|| malformed("a zip entry beyond the member's expanded bytes"))?;
            let deflate = Deflate {
                level: (code & 15) as u8,
                mem_level: (code >> 4).min(255) as u8,
            };
            if code > 0xff || deflate.check().is_err() {
                return Err(malformed("a zip entry's deflate setting out of range"));
            }
            t.push(Entry {
                gap,
                raw_len,
                deflate,
            });
            at = end;
        }
        Ok(Table(t))
    }
}

/// A deflate entry the walk inflated: where its compressed bytes are in
/// the archive, and what they inflate to.
#[derive(Debug)]
struct Span {
    start: usize,
    packed: usize,
    raw: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Inflate the raw deflate stream at the start of `input` to at most `cap`
/// bytes: the bytes and how much input the stream took; `None` if it is
/// not a finished stream within `input` or makes more than `cap`.
fn inflate(input: &[u8], cap: usize) -> Option<(Vec<u8>, usize)> {
    let mut d = Decompress::new(false);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let (i0, o0) = (d.total_in(), d.total_out());
        let rest = input.get(i0 as usize..)?;
        let st = d.decompress(rest, &mut buf, FlushDecompress::None).ok()?;
        let made = (d.total_out() - o0) as usize;
        if out.len() + made > cap {
            return None;
        }
        out.extend_from_slice(&buf[..made]);
        match st {
            Status::StreamEnd => return Some((out, d.total_in() as usize)),
            _ if d.total_in() == i0 && made == 0 => return None,
            _ => {}
        }
    }
}

/// Hand `each` the deflate entries of `file` that inflate within the
/// bounds, in order, with their inflated bytes (so none is held longer):
/// the walk both sides make (docs/patch-format.md, "Re-zipped members").
/// From offset 0, while a local file header (`PK\3\4`, 30 bytes, name and
/// extra field inside the file) starts at the position: stop at an
/// encrypted entry (flag bit 0) or 32-bit size 0xFFFFFFFF (zip64). With a
/// data descriptor (flag bit 3) only a deflate entry goes on: its stream
/// must end inside the file within the bound, followed by an optional
/// `PK\7\8` and CRC, compressed and uncompressed sizes (32-bit) equal to
/// what it took and made. Otherwise the entry's compressed size (inside
/// the file) says where the next header is, and a deflate entry is
/// expanded when its stream takes exactly that size and makes exactly
/// the uncompressed size. The bound: the expanded form (the file's length
/// plus, per expanded entry, inflated minus compressed bytes) stays within
/// [`MAX_RAW`]; an entry that would pass it stays compressed (with a data
/// descriptor: the walk stops).
fn walk(file: &[u8], mut each: impl FnMut(Span)) {
    let mut total = file.len() as u64;
    let mut pos = 0usize;
    while file.get(pos..pos + 4) == Some(&MAGIC[..]) {
        let field = |at| u16_at(file, pos + at);
        let (Some(flags), Some(method), Some(n), Some(e)) =
            (field(6), field(8), field(26), field(28))
        else {
            break;
        };
        let (Some(csize), Some(usize_)) = (u32_at(file, pos + 18), u32_at(file, pos + 22)) else {
            break;
        };
        let start = pos + 30 + n + e;
        if start > file.len() || flags & 1 != 0 || csize == u32::MAX || usize_ == u32::MAX {
            break;
        }
        if flags & 8 != 0 {
            if method != 8 {
                break;
            }
            let cap = (MAX_RAW.saturating_sub(total) as usize).saturating_add(file.len() - start);
            let Some((raw, took)) = inflate(&file[start..], cap) else {
                break;
            };
            let mut end = start + took;
            if file.get(end..end + 4) == Some(b"PK\x07\x08") {
                end += 4;
            }
            let told = (u32_at(file, end + 4), u32_at(file, end + 8));
            if told != (Some(took as u32), Some(raw.len() as u32))
                || total + raw.len() as u64 > MAX_RAW + took as u64
            {
                break;
            }
            total = total + raw.len() as u64 - took as u64;
            each(Span {
                start,
                packed: took,
                raw,
            });
            pos = end + 12;
            continue;
        }
        let end = start.saturating_add(csize as usize);
        if end > file.len() {
            break;
        }
        // Inflated bytes this entry may make within the bound.
        let cap = (MAX_RAW + u64::from(csize)).checked_sub(total);
        if let (8, Some(cap)) = (method, cap) {
            if let Some((raw, took)) = inflate(&file[start..end], cap as usize) {
                if took == csize as usize && raw.len() == usize_ as usize {
                    total = total + raw.len() as u64 - took as u64;
                    each(Span {
                        start,
                        packed: took,
                        raw,
                    });
                }
            }
        }
        pos = end;
    }
}

/// An expanded form being made from `file`: spans of it replaced by their
/// inflated bytes, in order, the rest copied.
struct Expander<'a> {
    file: &'a [u8],
    out: Vec<u8>,
    /// End in `file` of the last span replaced.
    at: usize,
}

impl<'a> Expander<'a> {
    fn new(file: &'a [u8]) -> Self {
        Expander {
            file,
            out: Vec::new(),
            at: 0,
        }
    }

    fn replace(&mut self, s: &Span) {
        self.out.extend_from_slice(&self.file[self.at..s.start]);
        self.out.extend_from_slice(&s.raw);
        self.at = s.start + s.packed;
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&self.file[self.at..]);
        self.out
    }
}

/// The expanded form of an old zip member (`walk`: every deflate entry
/// that inflates within the bounds); `None` if it is not a zip of at most
/// [`MAX_RAW`] bytes.
pub fn expand_old(file: &[u8]) -> Option<Vec<u8>> {
    if !file.starts_with(&MAGIC) || file.len() as u64 > MAX_RAW {
        return None;
    }
    let mut x = Expander::new(file);
    walk(file, |s| x.replace(&s));
    Some(x.finish())
}

/// The expanded form of a new zip member whose [`recipe`] was `table`:
/// each tabled entry's stream, found where the table puts it, inflated.
/// `None` if `file` does not fit the table.
pub fn expand_new(file: &[u8], table: &Table) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for e in &table.0 {
        let start = at.checked_add(usize::try_from(e.gap).ok()?)?;
        out.extend_from_slice(file.get(at..start)?);
        let (raw, took) = inflate(file.get(start..)?, e.raw_len as usize)?;
        if raw.len() as u64 != e.raw_len {
            return None;
        }
        out.extend_from_slice(&raw);
        at = start + took;
    }
    out.extend_from_slice(file.get(at..)?);
    (out.len() as u64 <= MAX_RAW).then_some(out)
}

/// The search for settings that reproduce an archive's entries.
#[derive(Default)]
struct Search {
    last: Option<Deflate>,
    found: u32,
    missed: u32,
    wasted: u64,
}

impl Search {
    /// The setting that deflates `raw` to exactly `packed`, if one is found
    /// within the search's bounds.
    fn find(&mut self, raw: &[u8], packed: &[u8]) -> Option<Deflate> {
        if (self.found == 0 && self.missed >= MAX_MISSES) || self.wasted > SEARCH_BUDGET {
            return None;
        }
        let first = self.last.into_iter();
        let rest = CANDIDATES.into_iter().filter(|&d| Some(d) != self.last);
        for d in first.chain(rest) {
            if zlib::deflates_to(raw, d, packed) {
                self.last = Some(d);
                self.found += 1;
                return Some(d);
            }
            self.wasted += raw.len() as u64 + 1;
            if self.wasted > SEARCH_BUDGET {
                break;
            }
        }
        self.missed += 1;
        None
    }
}

/// The table that rebuilds `file` from its expanded form, and that form;
/// `None` if it is not a zip within the bounds or zlib reproduces none of
/// its deflate entries.
pub fn recipe(file: &[u8]) -> Option<(Table, Vec<u8>)> {
    if !file.starts_with(&MAGIC) || file.len() as u64 > MAX_RAW {
        return None;
    }
    let mut search = Search::default();
    let mut table = Vec::new();
    let mut x = Expander::new(file);
    walk(file, |s| {
        let Some(deflate) = search.find(&s.raw, &file[s.start..s.start + s.packed]) else {
            return;
        };
        table.push(Entry {
            gap: (s.start - x.at) as u64,
            raw_len: s.raw.len() as u64,
            deflate,
        });
        x.replace(&s);
    });
    if table.is_empty() || table.len() as u64 > MAX_ENTRIES {
        return None;
    }
    let expanded = x.finish();
    (expanded.len() as u64 <= MAX_RAW).then_some((Table(table), expanded))
}

/// The archive: `expanded` with each of `table`'s entries deflated.
pub fn rebuild(table: &Table, expanded: &[u8]) -> io::Result<Vec<u8>> {
    let short = || io::Error::other("a zip table beyond its expanded bytes");
    let mut out = Vec::with_capacity(expanded.len());
    let mut at = 0usize;
    for e in &table.0 {
        let start = at.checked_add(e.gap as usize).ok_or_else(short)?;
        let end = start.checked_add(e.raw_len as usize).ok_or_else(short)?;
        out.extend_from_slice(expanded.get(at..start).ok_or_else(short)?);
        let raw = expanded.get(start..end).ok_or_else(short)?;
        zlib::deflate_raw(raw, e.deflate, |c| {
            out.extend_from_slice(c);
            true
        })?;
        at = end;
    }
    out.extend_from_slice(expanded.get(at..).ok_or_else(short)?);
    Ok(out)
}

#[cfg(test)]
mod tests;
