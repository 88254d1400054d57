//! The records of the controls section, shared by the writer and the applier
//! so both sides speak exactly one encoding.
//!
//! ```text
//! controls := plan members trailer_len
//! plan     := n_old { hdr_last data_last }*n_old
//! members  := n_new { flags [hdr_ref | header_len] [data_ref] [data_len]
//!                     [level gz_header_len raw_len]
//!                     [{ zigzag(old_pos - prev_old_end) add extra }*] }*n_new
//! ```
//! Every number is a LEB128 varint, and most are coded against what the
//! reader can predict, because on a real world the plan and the member
//! records, coded plainly, were half of this section:
//! - `hdr_last`/`data_last` name the last new member (index + 1; 0 = never)
//!   that uses an old member's header or data — the retention plan, which
//!   lets the applier drop every old member as soon as it is no longer
//!   needed. Each is stored as 0 for never, else 1 + zigzag(last − previous
//!   non-zero last of its kind − 1): mostly 1.
//! - references to old members are zigzag(ref − expected), `expected` being
//!   one past the previous reference (for data: the header reference of the
//!   same member when there is one): mostly 0;
//! - lengths the applier already knows are not stored: a diffed header has
//!   its old header's length, a copy its old data's; a bsdiff member stores
//!   zigzag(new length − old length). Old lengths come from the applier's own
//!   segmenting of the old tar ([`crate::format::archive::segment`]).
//!
//! Header bytes come from the diff section (`Diff`: added byte-wise to the
//! referenced old header) or the extra section (`Literal`); data bytes are
//! copied from an old member, rebuilt from bsdiff controls (add `add` diff
//! bytes to old bytes at `old_pos`, then take `extra` literal bytes; controls
//! follow until they cover the data, so a writer can emit a big member window
//! by window), or taken literally. A re-gzipped member (patch format 2) is
//! `gz_header_len` literal bytes, then zlib's deflate at `level` of `raw_len`
//! bytes that bsdiff controls make from the old member's *uncompressed*
//! bytes, then the gzip trailer ([`crate::format::patch::regz`]). A bsdiff
//! member with the `XREF` flag (patch format 3) codes its x86-64 reference
//! operands against a prediction ([`crate::format::patch::xref`]). A
//! re-encoded member (patch format 4: the `RECODE` flag with the re-gzip
//! data kind) is an xz or zstd file rebuilt the same way, with no literal
//! header: its fields are the codec, its settings and `raw_len`
//! ([`crate::format::patch::recode`]); a zip archive's (patch format 5)
//! are followed by its table ([`crate::format::patch::rezip::Table`]),
//! before its controls. Padding is
//! zeros unless `PAD_LITERAL` says it is in the extra section.
//!
//! Invariant: decoding never trusts a number for more than a bound check —
//! nothing here allocates from a decoded length; every index fits `u32`.

use std::io::{self, Read, Write};

use crate::format::patch::ctrl::Ctrl;
use crate::format::patch::recode;
use crate::format::patch::regz::Recipe;
use crate::format::patch::xref::{Segment, Segments, MAX_SEGMENTS};

/// The retention plan's entry for one old member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// Last new member (index + 1) using this header; 0 = none.
    pub hdr_last: u32,
    /// Last new member (index + 1) using this data; 0 = none.
    pub data_last: u32,
}

/// How a new member's header blocks are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderOp {
    /// `len` literal bytes from the extra section.
    Literal { len: u64 },
    /// Byte-wise sum of old member `old`'s header and as many diff bytes.
    Diff { old: u32 },
}

/// How a new member's data is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataOp {
    /// `len` literal bytes from the extra section (0 for no data).
    Literal { len: u64 },
    /// Old member `old`'s data, unchanged.
    Copy { old: u32 },
    /// Bsdiff controls against old member `old`'s data, making
    /// (old data length + `len_delta`) bytes. With `xref` (patch format 3
    /// and later) the diff bytes of x86-64 reference operands are coded
    /// against their prediction ([`crate::format::patch::xref`]), and the
    /// member's controls all come before its data.
    Bsdiff {
        old: u32,
        len_delta: i64,
        xref: bool,
    },
    /// Both are gzip files: bsdiff controls against old member `old`'s
    /// *uncompressed* bytes make `recipe.raw_len` new uncompressed bytes,
    /// which are deflated again after `recipe.header_len` literal gzip header
    /// bytes ([`crate::format::patch::regz`]), making (old data length + `len_delta`)
    /// bytes. Patch format 2 and later.
    Regz {
        old: u32,
        len_delta: i64,
        recipe: Recipe,
    },
    /// Both are xz or both zstd files: like `Regz`, but the whole member
    /// is the compression of the `recipe.raw_len` uncompressed bytes
    /// ([`crate::format::patch::recode`]). Patch format 4 and later.
    Recode {
        old: u32,
        len_delta: i64,
        recipe: recode::Recipe,
    },
}

/// One new member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub header: HeaderOp,
    pub data: DataOp,
    /// The padding after the data is literal (not zeros).
    pub pad_literal: bool,
}

const HDR_DIFF: u8 = 1;
const DATA_COPY: u8 = 1 << 1;
const DATA_BSDIFF: u8 = 2 << 1;
const DATA_REGZ: u8 = 3 << 1;
const DATA_MASK: u8 = 3 << 1;
const PAD_LITERAL: u8 = 1 << 3;
/// With `DATA_BSDIFF` only: reference prediction (patch format 3).
const XREF: u8 = 1 << 4;
/// With `DATA_REGZ` only: an xz or zstd member (patch format 4).
const RECODE: u8 = 1 << 5;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// The prediction state both sides keep in step.
#[derive(Default)]
struct Predict {
    /// Previous non-zero `hdr_last` / `data_last`.
    last: [u32; 2],
    /// One past the previous old-member reference.
    next_ref: u32,
    /// End of the previous control's add in the old data.
    prev_old_end: u64,
}

/// Writes records to a raw (uncompressed) controls stream.
pub struct RecordWriter<W> {
    w: W,
    p: Predict,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(w: W) -> Self {
        RecordWriter {
            w,
            p: Predict::default(),
        }
    }

    pub fn varint(&mut self, mut v: u64) -> io::Result<()> {
        let mut buf = [0u8; 10];
        let mut n = 0;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf[n] = b;
                n += 1;
                break;
            }
            buf[n] = b | 0x80;
            n += 1;
        }
        self.w.write_all(&buf[..n])
    }

    fn last(&mut self, kind: usize, last: u32) -> io::Result<()> {
        if last == 0 {
            return self.varint(0);
        }
        let d = i64::from(last) - i64::from(self.p.last[kind]) - 1;
        self.p.last[kind] = last;
        self.varint(zigzag(d) + 1)
    }

    /// One plan entry, in old member order.
    pub fn keep(&mut self, k: &Keep) -> io::Result<()> {
        self.last(0, k.hdr_last)?;
        self.last(1, k.data_last)
    }

    fn reference(&mut self, r: u32, expected: u32) -> io::Result<()> {
        self.p.next_ref = r + 1;
        self.varint(zigzag(i64::from(r) - i64::from(expected)))
    }

    pub fn member(&mut self, m: &MemberRecord) -> io::Result<()> {
        let mut flags = 0u8;
        if let HeaderOp::Diff { .. } = m.header {
            flags |= HDR_DIFF;
        }
        flags |= match m.data {
            DataOp::Literal { .. } => 0,
            DataOp::Copy { .. } => DATA_COPY,
            DataOp::Bsdiff { xref: false, .. } => DATA_BSDIFF,
            DataOp::Bsdiff { xref: true, .. } => DATA_BSDIFF | XREF,
            DataOp::Regz { .. } => DATA_REGZ,
            DataOp::Recode { .. } => DATA_REGZ | RECODE,
        };
        if m.pad_literal {
            flags |= PAD_LITERAL;
        }
        self.w.write_all(&[flags])?;
        let mut expected = self.p.next_ref;
        match m.header {
            HeaderOp::Literal { len } => self.varint(len)?,
            HeaderOp::Diff { old } => {
                self.reference(old, expected)?;
                expected = old;
            }
        }
        match m.data {
            DataOp::Literal { len } => self.varint(len)?,
            DataOp::Copy { old } => self.reference(old, expected)?,
            DataOp::Bsdiff { old, len_delta, .. } => {
                self.reference(old, expected)?;
                self.varint(zigzag(len_delta))?;
            }
            DataOp::Regz {
                old,
                len_delta,
                recipe,
            } => {
                self.reference(old, expected)?;
                self.varint(zigzag(len_delta))?;
                self.varint(u64::from(recipe.level))?;
                self.varint(u64::from(recipe.header_len))?;
                self.varint(recipe.raw_len)?;
            }
            DataOp::Recode {
                old,
                len_delta,
                recipe,
            } => {
                self.reference(old, expected)?;
                self.varint(zigzag(len_delta))?;
                for v in recipe.fields() {
                    self.varint(v)?;
                }
            }
        }
        self.p.prev_old_end = 0;
        Ok(())
    }

    /// The loadable segments of an `xref` member's old and new executable,
    /// right after its record: a count, then offset, address, file and
    /// memory sizes of each.
    pub fn segments(&mut self, old: &Segments, new: &Segments) -> io::Result<()> {
        for t in [old, new] {
            self.varint(t.0.len() as u64)?;
            for s in &t.0 {
                for v in [s.offset, s.vaddr, s.filesz, s.memsz] {
                    self.varint(v)?;
                }
            }
        }
        Ok(())
    }

    /// A control of the member just written (after [`Self::member`]).
    pub fn ctrl(&mut self, c: &Ctrl) -> io::Result<()> {
        self.varint(zigzag(c.old_pos.wrapping_sub(self.p.prev_old_end) as i64))?;
        self.varint(c.add)?;
        self.varint(c.extra)?;
        self.p.prev_old_end = c.old_pos.wrapping_add(c.add);
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Why a record could not be read.
#[derive(Debug)]
pub enum RecordError {
    /// The stream failed (the section reader says why: corrupt, truncated).
    Io(io::Error),
    /// The bytes do not form a record.
    Malformed(&'static str),
}

impl From<io::Error> for RecordError {
    fn from(e: io::Error) -> Self {
        RecordError::Io(e)
    }
}

/// Reads records from a raw controls stream.
pub struct RecordReader<R> {
    r: R,
    p: Predict,
    /// Whether [`DataOp::Regz`] records may appear (patch format 2+).
    regz: bool,
    /// Whether `xref` bsdiff records may appear (patch format 3+).
    xref: bool,
    /// Whether [`DataOp::Recode`] records may appear (patch format 4+).
    recode: bool,
    /// Whether they may name a zip archive (patch format 5+).
    rezip: bool,
}

impl<R: Read> RecordReader<R> {
    pub fn new(r: R) -> Self {
        RecordReader {
            r,
            p: Predict::default(),
            regz: true,
            xref: true,
            recode: true,
            rezip: true,
        }
    }

    /// Refuse [`DataOp::Regz`] records (a patch format 1 stream).
    pub fn without_regz(mut self) -> Self {
        self.regz = false;
        self
    }

    /// Refuse [`DataOp::Recode`] records (a patch format 1 to 3 stream).
    pub fn without_recode(mut self) -> Self {
        self.recode = false;
        self
    }

    /// Refuse re-encoded zip records (a patch format 1 to 4 stream).
    pub fn without_rezip(mut self) -> Self {
        self.rezip = false;
        self
    }

    /// Refuse `xref` bsdiff records (a patch format 1 or 2 stream).
    pub fn without_xref(mut self) -> Self {
        self.xref = false;
        self
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        Ok(b[0])
    }

    pub fn varint(&mut self) -> Result<u64, RecordError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(RecordError::Malformed("varint overflows 64 bits"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Malformed("varint longer than 10 bytes"))
    }

    fn last(&mut self, kind: usize) -> Result<u32, RecordError> {
        let v = self.varint()?;
        if v == 0 {
            return Ok(0);
        }
        let last = i64::from(self.p.last[kind]) + 1 + unzigzag(v - 1);
        let last = u32::try_from(last)
            .ok()
            .filter(|&l| l > 0)
            .ok_or(RecordError::Malformed("a last use outside 1..2^32"))?;
        self.p.last[kind] = last;
        Ok(last)
    }

    /// One plan entry, in old member order.
    pub fn keep(&mut self) -> Result<Keep, RecordError> {
        Ok(Keep {
            hdr_last: self.last(0)?,
            data_last: self.last(1)?,
        })
    }

    fn reference(&mut self, expected: u32) -> Result<u32, RecordError> {
        let r = i64::from(expected) + unzigzag(self.varint()?);
        let r = u32::try_from(r)
            .ok()
            .filter(|&r| r < u32::MAX)
            .ok_or(RecordError::Malformed("a member reference outside 0..2^32"))?;
        self.p.next_ref = r + 1;
        Ok(r)
    }

    pub fn member(&mut self) -> Result<MemberRecord, RecordError> {
        let flags = self.byte()?;
        let xref = flags & XREF != 0;
        let recode = flags & RECODE != 0;
        if flags & !(HDR_DIFF | DATA_MASK | PAD_LITERAL | XREF | RECODE) != 0
            || (!self.regz && flags & DATA_MASK == DATA_REGZ)
            || (xref && (!self.xref || flags & DATA_MASK != DATA_BSDIFF))
            || (recode && (!self.recode || flags & DATA_MASK != DATA_REGZ))
        {
            return Err(RecordError::Malformed("unknown member flags"));
        }
        let mut expected = self.p.next_ref;
        let header = if flags & HDR_DIFF != 0 {
            let old = self.reference(expected)?;
            expected = old;
            HeaderOp::Diff { old }
        } else {
            HeaderOp::Literal {
                len: self.varint()?,
            }
        };
        let data = match flags & DATA_MASK {
            DATA_COPY => DataOp::Copy {
                old: self.reference(expected)?,
            },
            DATA_BSDIFF => DataOp::Bsdiff {
                old: self.reference(expected)?,
                len_delta: unzigzag(self.varint()?),
                xref,
            },
            DATA_REGZ if recode => {
                let old = self.reference(expected)?;
                let len_delta = unzigzag(self.varint()?);
                let recipe = recode::Recipe::read(|| self.varint(), RecordError::Malformed)?;
                if matches!(recipe.codec, recode::Codec::Zip(_)) && !self.rezip {
                    return Err(RecordError::Malformed(
                        "a re-zipped member in a patch older than format 5",
                    ));
                }
                DataOp::Recode {
                    old,
                    len_delta,
                    recipe,
                }
            }
            DATA_REGZ => {
                let old = self.reference(expected)?;
                let len_delta = unzigzag(self.varint()?);
                let small = |v: u64| {
                    u32::try_from(v)
                        .map_err(|_| RecordError::Malformed("a gzip recipe field overflows"))
                };
                let level = small(self.varint()?)?;
                let header_len = small(self.varint()?)?;
                let recipe = Recipe {
                    level: u8::try_from(level)
                        .ok()
                        .filter(|&l| (1..=9).contains(&l))
                        .ok_or(RecordError::Malformed("a deflate level outside 1-9"))?,
                    header_len,
                    raw_len: self.varint()?,
                };
                DataOp::Regz {
                    old,
                    len_delta,
                    recipe,
                }
            }
            _ => DataOp::Literal {
                len: self.varint()?,
            },
        };
        self.p.prev_old_end = 0;
        Ok(MemberRecord {
            header,
            data,
            pad_literal: flags & PAD_LITERAL != 0,
        })
    }

    /// The old and new segment tables of an `xref` member
    /// ([`RecordWriter::segments`]), at most [`MAX_SEGMENTS`] each.
    pub fn segments(&mut self) -> Result<(Segments, Segments), RecordError> {
        let mut table = || -> Result<Segments, RecordError> {
            let n = self.varint()?;
            if n > MAX_SEGMENTS as u64 {
                return Err(RecordError::Malformed(
                    "more segments than an executable may have",
                ));
            }
            (0..n)
                .map(|_| {
                    Ok(Segment {
                        offset: self.varint()?,
                        vaddr: self.varint()?,
                        filesz: self.varint()?,
                        memsz: self.varint()?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Segments)
        };
        let old = table()?;
        Ok((old, table()?))
    }

    /// The next control of the current member; `old_pos` is not yet
    /// bound-checked (the caller knows the old member's length).
    pub fn ctrl(&mut self) -> Result<Ctrl, RecordError> {
        let delta = unzigzag(self.varint()?);
        let old_pos = self.p.prev_old_end.wrapping_add(delta as u64);
        let add = self.varint()?;
        let extra = self.varint()?;
        self.p.prev_old_end = old_pos.wrapping_add(add);
        Ok(Ctrl {
            old_pos,
            add,
            extra,
        })
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.r
    }
}

#[cfg(test)]
mod tests;
