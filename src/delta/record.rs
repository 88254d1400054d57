//! The records of the controls section, shared by the writer and the applier
//! so both sides speak exactly one encoding.
//!
//! ```text
//! controls := plan members trailer
//! plan     := n_old { header_len data_len hdr_last data_last }*n_old
//! members  := n_new { flags header_len [hdr_ref] data_len [data_ref]
//!                     [{ zigzag(old_pos - prev_old_end) add extra }*] }*n_new
//! trailer  := trailer_len
//! ```
//! Every number is a LEB128 varint. `hdr_last`/`data_last` name the last new
//! member (index + 1; 0 = never) that uses an old member's header or data: the
//! retention plan, which lets the applier drop every old member as soon as it
//! is no longer needed. Header bytes come from the diff section (`Diff`: added
//! byte-wise to the referenced old header of equal length) or the extra
//! section (`Literal`); data bytes are copied from an old member, rebuilt from
//! bsdiff controls (add `add` diff bytes to old bytes at `old_pos`, then take
//! `extra` literal bytes; controls follow until they cover `data_len`, so a
//! writer can emit a big member window by window), or taken literally; padding is zeros unless the
//! `PAD_LITERAL` flag says it is in the extra section.
//!
//! Invariant: decoding never trusts a number for more than a bound check —
//! nothing here allocates from a decoded length.

use std::io::{self, Read, Write};

/// What the applier needs to know about one old member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OldEntry {
    /// Raw header bytes (extension headers included).
    pub header_len: u64,
    /// Data bytes, padding excluded.
    pub data_len: u64,
    /// Last new member (index + 1) using this header; 0 = none.
    pub hdr_last: u32,
    /// Last new member (index + 1) using this data; 0 = none.
    pub data_last: u32,
}

/// How a new member's header blocks are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderOp {
    /// Literal bytes from the extra section.
    Literal,
    /// Byte-wise sum of old member `old`'s header (same length) and the diff section.
    Diff { old: u32 },
}

/// How a new member's data is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataOp {
    /// Literal bytes from the extra section (also used for empty data).
    Literal,
    /// Old member `old`'s data, unchanged (same length).
    Copy { old: u32 },
    /// Bsdiff controls against old member `old`'s data, as many as cover the data.
    Bsdiff { old: u32 },
}

/// One new member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub header_len: u64,
    pub header: HeaderOp,
    pub data_len: u64,
    pub data: DataOp,
    /// The padding after the data is literal (not zeros).
    pub pad_literal: bool,
}

/// One bsdiff control, with an absolute position in the old member's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctrl {
    pub old_pos: u64,
    pub add: u64,
    pub extra: u64,
}

const HDR_DIFF: u8 = 1;
const DATA_COPY: u8 = 1 << 1;
const DATA_BSDIFF: u8 = 2 << 1;
const DATA_MASK: u8 = 3 << 1;
const PAD_LITERAL: u8 = 1 << 3;

/// Writes records to a raw (uncompressed) controls stream.
pub struct RecordWriter<W> {
    w: W,
    prev_old_end: u64,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(w: W) -> Self {
        RecordWriter { w, prev_old_end: 0 }
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

    pub fn old_entry(&mut self, e: &OldEntry) -> io::Result<()> {
        self.varint(e.header_len)?;
        self.varint(e.data_len)?;
        self.varint(u64::from(e.hdr_last))?;
        self.varint(u64::from(e.data_last))
    }

    pub fn member(&mut self, m: &MemberRecord) -> io::Result<()> {
        let mut flags = 0u8;
        if let HeaderOp::Diff { .. } = m.header {
            flags |= HDR_DIFF;
        }
        flags |= match m.data {
            DataOp::Literal => 0,
            DataOp::Copy { .. } => DATA_COPY,
            DataOp::Bsdiff { .. } => DATA_BSDIFF,
        };
        if m.pad_literal {
            flags |= PAD_LITERAL;
        }
        self.w.write_all(&[flags])?;
        self.varint(m.header_len)?;
        if let HeaderOp::Diff { old } = m.header {
            self.varint(u64::from(old))?;
        }
        self.varint(m.data_len)?;
        match m.data {
            DataOp::Literal => {}
            DataOp::Copy { old } | DataOp::Bsdiff { old } => self.varint(u64::from(old))?,
        }
        self.prev_old_end = 0;
        Ok(())
    }

    /// A control of the member just written (after [`Self::member`]).
    pub fn ctrl(&mut self, c: &Ctrl) -> io::Result<()> {
        let delta = c.old_pos.wrapping_sub(self.prev_old_end) as i64;
        self.varint(((delta << 1) ^ (delta >> 63)) as u64)?;
        self.varint(c.add)?;
        self.varint(c.extra)?;
        self.prev_old_end = c.old_pos.wrapping_add(c.add);
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
    prev_old_end: u64,
}

impl<R: Read> RecordReader<R> {
    pub fn new(r: R) -> Self {
        RecordReader { r, prev_old_end: 0 }
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

    fn index(&mut self) -> Result<u32, RecordError> {
        u32::try_from(self.varint()?).map_err(|_| RecordError::Malformed("member index overflows"))
    }

    pub fn old_entry(&mut self) -> Result<OldEntry, RecordError> {
        Ok(OldEntry {
            header_len: self.varint()?,
            data_len: self.varint()?,
            hdr_last: self.index()?,
            data_last: self.index()?,
        })
    }

    pub fn member(&mut self) -> Result<MemberRecord, RecordError> {
        let flags = self.byte()?;
        if flags & !(HDR_DIFF | DATA_MASK | PAD_LITERAL) != 0 || flags & DATA_MASK == DATA_MASK {
            return Err(RecordError::Malformed("unknown member flags"));
        }
        let header_len = self.varint()?;
        let header = if flags & HDR_DIFF != 0 {
            HeaderOp::Diff { old: self.index()? }
        } else {
            HeaderOp::Literal
        };
        let data_len = self.varint()?;
        let data = match flags & DATA_MASK {
            DATA_COPY => DataOp::Copy { old: self.index()? },
            DATA_BSDIFF => DataOp::Bsdiff { old: self.index()? },
            _ => DataOp::Literal,
        };
        self.prev_old_end = 0;
        Ok(MemberRecord {
            header_len,
            header,
            data_len,
            data,
            pad_literal: flags & PAD_LITERAL != 0,
        })
    }

    /// The next control of the current member; `old_pos` is not yet
    /// bound-checked (the caller knows the old member's length).
    pub fn ctrl(&mut self) -> Result<Ctrl, RecordError> {
        let z = self.varint()?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let old_pos = self.prev_old_end.wrapping_add(delta as u64);
        let add = self.varint()?;
        let extra = self.varint()?;
        self.prev_old_end = old_pos.wrapping_add(add);
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(
            vals in proptest::collection::vec(any::<u64>(), 1..50),
            ctrls in proptest::collection::vec((0u64..1 << 40, 0u64..1 << 30, 0u64..1 << 30), 0..50),
            idx in any::<u32>(),
        ) {
            let mut w = RecordWriter::new(Vec::new());
            for &v in &vals { w.varint(v).unwrap(); }
            let e = OldEntry { header_len: vals[0], data_len: 7, hdr_last: idx, data_last: 0 };
            w.old_entry(&e).unwrap();
            let m = MemberRecord {
                header_len: 1536,
                header: HeaderOp::Diff { old: idx },
                data_len: vals[0],
                data: DataOp::Bsdiff { old: idx },
                pad_literal: true,
            };
            w.member(&m).unwrap();
            let cs: Vec<Ctrl> = ctrls.iter().map(|&(p, a, x)| Ctrl { old_pos: p, add: a, extra: x }).collect();
            for c in &cs { w.ctrl(c).unwrap(); }
            let m2 = MemberRecord { header_len: 512, header: HeaderOp::Literal, data_len: 0, data: DataOp::Copy { old: 3 }, pad_literal: false };
            w.member(&m2).unwrap();
            let bytes = w.into_inner();
            let mut r = RecordReader::new(&bytes[..]);
            for &v in &vals { prop_assert_eq!(r.varint().unwrap(), v); }
            prop_assert_eq!(r.old_entry().unwrap(), e);
            prop_assert_eq!(r.member().unwrap(), m);
            for c in &cs { prop_assert_eq!(&r.ctrl().unwrap(), c); }
            prop_assert_eq!(r.member().unwrap(), m2);
            prop_assert!(matches!(r.varint(), Err(RecordError::Io(_))));
        }

        #[test]
        fn any_bytes_decode_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = RecordReader::new(&bytes[..]);
            for _ in 0..8 {
                if r.member().is_err() || r.ctrl().is_err() { break; }
            }
        }
    }

    #[test]
    fn overlong_varints_are_malformed() {
        let bytes = [0xffu8; 11];
        assert!(matches!(
            RecordReader::new(&bytes[..]).varint(),
            Err(RecordError::Malformed(_))
        ));
        let mut ten = [0x80u8; 10];
        ten[9] = 0x02;
        assert!(matches!(
            RecordReader::new(&ten[..]).varint(),
            Err(RecordError::Malformed(_))
        ));
    }
}
