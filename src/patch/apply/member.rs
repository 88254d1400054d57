//! The applier's member-by-member engine: each new member's record is read
//! and checked against the plan, the old members it uses are reached, and
//! its header, data (literal, copied, bsdiffed — with x86-64 or aarch64
//! reference prediction when the record says so — or re-gzipped) and padding are
//! produced into the output buffer, at most a chunk per step (a predicted
//! add's piece a few bytes more, to end after an operand).
//!
//! Invariants: every reference and length from the record is checked
//! against the plan, the old tar as seen and the new tar's remaining room
//! before anything is read or allocated; a bsdiff control never reaches
//! outside its old or new data; a predicted member's controls (read up
//! front) are capped at [`xref::MAX_CTRLS`].

use std::io::{self, Read};

use super::{record_err, DataState, PatchReader, State, CHUNK};
use crate::error::{Error, Result};
use crate::format::archive::segment::{pad_len, MAX_HEADER};
use crate::format::patch::ctrl::Ctrl;
use crate::format::patch::header::corrupt;
use crate::format::patch::record::{DataOp, HeaderOp, MemberRecord};
use crate::format::patch::regz::{self, Recipe};
use crate::format::patch::xref::{self, Map, Predictor};
use crate::format::patch::zeros::ZeroRunError;

/// A bsdiff member with reference prediction ([`xref`]): all its controls,
/// read and checked before its data, and the map they make.
pub(super) struct Xref {
    ctrls: std::vec::IntoIter<Ctrl>,
    predictor: Predictor,
    data_len: u64,
    /// The old bytes of the current piece (and lookahead, or for aarch64
    /// its context).
    scratch: Vec<u8>,
    /// The current piece's operands (offsets in `scratch`; x86-64).
    ops: Vec<u32>,
    /// The old member is an aarch64 executable in a format 4+ patch:
    /// [`xref::aarch64`]'s rules, not x86-64's.
    aarch64: bool,
}

impl<R: Read> PatchReader<R> {
    /// Start new member `cur_new` (or the trailer after the last): read its
    /// record, check its references against the plan, reach the old members
    /// it uses, produce its header blocks and set up its data.
    pub(super) fn start_member(&mut self) -> Result<()> {
        if self.cur_new == self.n_new {
            self.state = State::Trailer;
            return Ok(());
        }
        let rec = self
            .ctrl
            .member()
            .map_err(|e| record_err(&self.path, "a member record", e))?;
        let (h_ref, d_ref) = self.check_refs(&rec)?;
        let streaming = self.reach_refs(&rec, h_ref, d_ref)?;
        let (header_len, data_len) = self.member_lengths(&rec)?;
        self.header_blocks(rec.header, header_len as usize)?;
        let data = self.data_state(rec.data, data_len, streaming)?;
        // A rebuilt member's data comes out of `held`: nothing is left here.
        let left = if matches!(data, DataState::Rebuilt) {
            0
        } else {
            data_len
        };
        self.state = State::Data {
            data,
            left,
            pad: pad_len(data_len),
            pad_literal: rec.pad_literal,
        };
        Ok(())
    }

    /// The old members a record uses for its header and its data, each
    /// checked to exist and to be used no later than the plan keeps it.
    fn check_refs(&self, rec: &MemberRecord) -> Result<(Option<u32>, Option<u32>)> {
        let i = self.cur_new;
        let n_old = self.plan.len() as u32;
        let h_ref = match rec.header {
            HeaderOp::Diff { old } => Some(old),
            HeaderOp::Literal { .. } => None,
        };
        let d_ref = match rec.data {
            DataOp::Copy { old }
            | DataOp::Bsdiff { old, .. }
            | DataOp::Regz { old, .. }
            | DataOp::Recode { old, .. } => Some(old),
            DataOp::Literal { .. } => None,
        };
        for r in [h_ref, d_ref].into_iter().flatten() {
            if r >= n_old {
                return Err(self.bad(format!(
                    "new member {i} refers to old member {r} of {n_old}"
                )));
            }
        }
        if let Some(h) = h_ref {
            if self.plan[h as usize].hdr_last <= i {
                return Err(self.bad(format!(
                    "new member {i} uses old member {h}'s header past its planned last use"
                )));
            }
        }
        if let Some(d) = d_ref {
            if self.plan[d as usize].data_last <= i {
                return Err(self.bad(format!(
                    "new member {i} uses old member {d}'s data past its planned last use"
                )));
            }
        }
        Ok((h_ref, d_ref))
    }

    /// Read the old tar up to the members the record uses; whether the data
    /// is a copy streaming straight through from the old tar.
    fn reach_refs(
        &mut self,
        rec: &MemberRecord,
        h_ref: Option<u32>,
        d_ref: Option<u32>,
    ) -> Result<bool> {
        let i = self.cur_new;
        // A copy of an old member ahead in the stream that nobody needs later
        // streams straight through.
        let stream = match rec.data {
            DataOp::Copy { old } => {
                old >= self.old.next() && self.plan[old as usize].data_last == i + 1
            }
            _ => false,
        };
        let target = [h_ref, d_ref]
            .into_iter()
            .flatten()
            .filter(|&r| r >= self.old.next())
            .max();
        if let Some(t) = target {
            self.old_reach(t, stream && Some(t) == d_ref)?;
        }
        Ok(stream && self.old.cur == d_ref)
    }

    /// Header and data lengths of the new member, now that every referenced
    /// old member has been seen; checked to fit the new tar.
    fn member_lengths(&self, rec: &MemberRecord) -> Result<(u64, u64)> {
        let i = self.cur_new;
        let header_len = match rec.header {
            HeaderOp::Literal { len } => len,
            HeaderOp::Diff { old } => self.old.seen[old as usize].0,
        };
        let data_len = match rec.data {
            DataOp::Literal { len } => Some(len),
            DataOp::Copy { old } => Some(self.old.seen[old as usize].1),
            DataOp::Bsdiff { old, len_delta, .. }
            | DataOp::Regz { old, len_delta, .. }
            | DataOp::Recode { old, len_delta, .. } => {
                self.old.seen[old as usize].1.checked_add_signed(len_delta)
            }
        };
        let room = self.header.to.tar.size - self.produced;
        let need = data_len
            .and_then(|d| header_len.checked_add(d))
            .and_then(|x| x.checked_add(pad_len(data_len.unwrap_or(0))));
        let (Some(data_len), true) = (data_len, header_len <= MAX_HEADER as u64) else {
            return Err(self.bad(format!("new member {i} has impossible lengths")));
        };
        if need.is_none_or(|n| n > room) {
            return Err(self.bad(format!("new member {i} overruns the new tar")));
        }
        Ok((header_len, data_len))
    }

    /// Produce the member's `hl` header bytes: literal from the extra
    /// section, or the diff section added to the old member's header.
    fn header_blocks(&mut self, op: HeaderOp, hl: usize) -> Result<()> {
        match op {
            HeaderOp::Literal { .. } => self.extra.read_into(&mut self.buf, hl)?,
            HeaderOp::Diff { old } => {
                let base = self.old_header(old)?;
                let start = self.buf.len();
                self.diff_bytes(hl)?;
                for (o, b) in self.buf[start..].iter_mut().zip(&base) {
                    *o = o.wrapping_add(*b);
                }
            }
        }
        Ok(())
    }

    /// Where the member's data comes from; a re-gzipped member is handed to
    /// the deflate threads here.
    fn data_state(&mut self, op: DataOp, data_len: u64, streaming: bool) -> Result<DataState> {
        Ok(match op {
            DataOp::Literal { .. } => DataState::Literal,
            DataOp::Copy { .. } if streaming => DataState::CopyStream,
            DataOp::Copy { old } => {
                self.check_kept_data(old)?;
                DataState::CopyStored { old, pos: 0 }
            }
            DataOp::Bsdiff { old, xref, .. } => {
                self.check_kept_data(old)?;
                let xref = if xref {
                    Some(Box::new(self.xref_controls(old, data_len)?))
                } else {
                    None
                };
                DataState::Bsdiff {
                    old,
                    add_pos: 0,
                    add_left: 0,
                    extra_left: 0,
                    xref,
                }
            }
            DataOp::Regz { old, recipe, .. } => {
                self.check_kept_data(old)?;
                self.regz_member(old, data_len, recipe)?;
                DataState::Rebuilt
            }
            DataOp::Recode { old, recipe, .. } => {
                self.check_kept_data(old)?;
                self.recode_member(old, data_len, recipe)?;
                DataState::Rebuilt
            }
        })
    }

    /// Produce up to a chunk of the current member's data (`left` bytes
    /// remain); once it is all made, its padding, and the member is done.
    pub(super) fn continue_data(
        &mut self,
        mut data: DataState,
        mut left: u64,
        pad: u64,
        pad_literal: bool,
    ) -> Result<()> {
        // A chunk more than the step started with, whatever `buf` held.
        let end = self.step_start + CHUNK;
        while left > 0 && self.buf.len() < end {
            let room = (end - self.buf.len()) as u64;
            left -= self.data_piece(&mut data, left, room)?;
        }
        if left > 0 {
            self.state = State::Data {
                data,
                left,
                pad,
                pad_literal,
            };
            return Ok(());
        }
        if let DataState::Trailer = data {
            self.state = State::Verify;
            return Ok(());
        }
        self.end_member(pad, pad_literal)
    }

    /// Produce the next piece of data, at most `room` bytes of the `left`
    /// still to make; how many bytes it made (none when it only read a
    /// bsdiff control).
    fn data_piece(&mut self, data: &mut DataState, left: u64, room: u64) -> Result<u64> {
        let n = left.min(room) as usize;
        match data {
            DataState::Literal | DataState::Trailer => {
                self.extra.read_into(&mut self.buf, n)?;
            }
            DataState::CopyStream => {
                let start = self.buf.len();
                self.buf.resize(start + n, 0);
                let r = self.old.seg.data().read_exact(&mut self.buf[start..]);
                if let Err(e) = r {
                    return Err(self.old_io_error(e));
                }
            }
            DataState::Rebuilt => unreachable!("a rebuilt member has nothing left"),
            DataState::CopyStored { old, pos } => {
                let start = self.buf.len();
                self.buf.resize(start + n, 0);
                self.old
                    .store
                    .read_data(*old, *pos, &mut self.buf[start..])
                    .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
                *pos += n as u64;
            }
            DataState::Bsdiff {
                old,
                add_pos,
                add_left,
                extra_left,
                xref,
            } => {
                if *add_left > 0 {
                    let mut n = (*add_left).min(room) as usize;
                    match xref {
                        Some(x) => n = self.xref_add(*old, *add_pos, n, *add_left, left, x)?,
                        None => self.bsdiff_add(*old, *add_pos, n)?,
                    }
                    *add_pos += n as u64;
                    *add_left -= n as u64;
                    return Ok(n as u64);
                }
                if *extra_left > 0 {
                    let n = (*extra_left).min(room) as usize;
                    self.extra.read_into(&mut self.buf, n)?;
                    *extra_left -= n as u64;
                    return Ok(n as u64);
                }
                let c = match xref {
                    // Checked when read; they cover the data exactly.
                    Some(x) => x.ctrls.next().ok_or_else(|| {
                        self.bad(format!("new member {} runs out of controls", self.cur_new))
                    })?,
                    None => self.next_ctrl(self.old.seen[*old as usize].1, left)?,
                };
                *add_pos = c.old_pos;
                *add_left = c.add;
                *extra_left = c.extra;
                return Ok(0);
            }
        }
        Ok(n as u64)
    }

    /// `n` bytes of a bsdiff add: diff bytes plus old member `old`'s data
    /// from `add_pos`.
    fn bsdiff_add(&mut self, old: u32, add_pos: u64, n: usize) -> Result<()> {
        let start = self.buf.len();
        self.diff_bytes(n)?;
        let out = &mut self.buf[start..];
        match self.old.store.data_slice(old) {
            Some(src) => {
                let p = add_pos as usize;
                for (o, b) in out.iter_mut().zip(&src[p..p + n]) {
                    *o = o.wrapping_add(*b);
                }
            }
            None => {
                let mut tmp = vec![0u8; n];
                self.old
                    .store
                    .read_data(old, add_pos, &mut tmp)
                    .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
                for (o, b) in out.iter_mut().zip(&tmp) {
                    *o = o.wrapping_add(*b);
                }
            }
        }
        Ok(())
    }

    /// Read every control of an `xref` member making `data_len` bytes from
    /// old member `old`, checked as [`Self::next_ctrl`] does, and their map.
    fn xref_controls(&mut self, old: u32, data_len: u64) -> Result<Xref> {
        let old_len = self.old.seen[old as usize].1;
        let i = self.cur_new;
        if old_len > xref::MAX_LEN || data_len > xref::MAX_LEN {
            return Err(self.bad(format!(
                "new member {i} is too big for reference prediction"
            )));
        }
        let (old_segs, new_segs) = self
            .ctrl
            .segments()
            .map_err(|e| record_err(&self.path, "a segment table", e))?;
        let mut ctrls = Vec::new();
        let mut left = data_len;
        while left > 0 {
            if ctrls.len() == xref::MAX_CTRLS {
                return Err(self.bad(format!(
                    "new member {i} has more than {} controls",
                    xref::MAX_CTRLS
                )));
            }
            let c = self.next_ctrl(old_len, left)?;
            left -= c.add + c.extra;
            ctrls.push(c);
        }
        let map = Map::new(&ctrls).ok_or_else(|| {
            self.bad(format!(
                "new member {i} has controls outside the map's bounds"
            ))
        })?;
        let mut head = [0u8; 20];
        let aarch64 = self.header.version >= 4
            && old_len >= 20
            && self
                .old
                .store
                .read_data(old, 0, &mut head)
                .map(|()| xref::aarch64::is_aarch64_elf(&head))
                .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
        Ok(Xref {
            ctrls: ctrls.into_iter(),
            predictor: Predictor {
                map,
                old: old_segs,
                new: new_segs,
            },
            data_len,
            scratch: Vec::new(),
            ops: Vec::new(),
            aarch64,
        })
    }

    /// About `n` bytes of an add of an `xref` member from old offset
    /// `add_pos` (`add_left` bytes of the add and `left` of the data
    /// remain): the add, then its operands decoded from their prediction;
    /// how many bytes it made (more than `n` when an operand straddles).
    fn xref_add(
        &mut self,
        old: u32,
        add_pos: u64,
        n: usize,
        add_left: u64,
        left: u64,
        x: &mut Xref,
    ) -> Result<usize> {
        if x.aarch64 {
            return self.aarch64_add(old, add_pos, n, add_left, left, x);
        }
        let ext = add_left.min((n + xref::LOOKAHEAD) as u64) as usize;
        x.scratch.resize(ext, 0);
        self.old
            .store
            .read_data(old, add_pos, &mut x.scratch)
            .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
        let end = xref::piece_operands(&x.scratch, n, &mut x.ops);
        let start = self.buf.len();
        self.diff_bytes(end)?;
        let out = &mut self.buf[start..];
        for (o, b) in out.iter_mut().zip(&x.scratch) {
            *o = o.wrapping_add(*b);
        }
        let y0 = x.data_len - left;
        xref::decode_operands(&x.predictor, &x.scratch, &x.ops, (add_pos, y0), out);
        Ok(end)
    }

    /// [`Self::xref_add`] for an aarch64 member: the piece's old bytes are
    /// read with the context its predictions look at.
    fn aarch64_add(
        &mut self,
        old: u32,
        add_pos: u64,
        n: usize,
        add_left: u64,
        left: u64,
        x: &mut Xref,
    ) -> Result<usize> {
        use xref::aarch64::{self, Window};
        let end = aarch64::piece_end(add_pos, n, add_left);
        let old_len = self.old.seen[old as usize].1;
        let (lo, hi) = Window::bounds(add_pos, end as u64, old_len);
        x.scratch.resize((hi - lo) as usize, 0);
        self.old
            .store
            .read_data(old, lo, &mut x.scratch)
            .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
        let start = self.buf.len();
        self.diff_bytes(end)?;
        let out = &mut self.buf[start..];
        let from = &x.scratch[(add_pos - lo) as usize..];
        for (o, b) in out.iter_mut().zip(from) {
            *o = o.wrapping_add(*b);
        }
        let w = Window {
            bytes: &x.scratch,
            start: lo,
        };
        aarch64::decode_piece(&x.predictor, &w, (add_pos, x.data_len - left), out);
        Ok(end)
    }

    /// The member's padding, then on to the next member.
    fn end_member(&mut self, pad: u64, pad_literal: bool) -> Result<()> {
        if pad_literal {
            self.extra.read_into(&mut self.buf, pad as usize)?;
        } else {
            self.buf.resize(self.buf.len() + pad as usize, 0);
        }
        self.old.cur = None;
        self.cur_new += 1;
        self.old.store.expire(self.cur_new);
        self.state = State::Member;
        Ok(())
    }

    /// Append `n` diff bytes to the output buffer.
    fn diff_bytes(&mut self, n: usize) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.diff_bytes_into(&mut buf, n);
        self.buf = buf;
        r
    }

    /// Append `n` diff bytes to `out`.
    pub(super) fn diff_bytes_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<()> {
        match self.diff.read_into(out, n) {
            Ok(()) => Ok(()),
            Err(ZeroRunError::Malformed(m)) => {
                Err(self.bad(format!("malformed diff section: {m}")))
            }
            Err(ZeroRunError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.bad("the diff section ends before the records that use it".into()))
            }
            Err(ZeroRunError::Io(e)) => Err(corrupt(
                &self.path,
                format!("the diff section cannot be read: {e}"),
            )),
        }
    }

    /// Rebuild new member `cur_new`, a re-gzipped file of `data_len` bytes
    /// made from old member `old` ([`regz`]): inflate the old data, run the
    /// member's bsdiff controls over it, and hand the result with the gzip
    /// header from the extra section to the deflate threads
    /// ([`Held`](crate::patch::held::Held)).
    fn regz_member(&mut self, old: u32, data_len: u64, recipe: Recipe) -> Result<()> {
        let i = self.cur_new;
        let old_len = self.old.seen[old as usize].1;
        if recipe.raw_len > regz::MAX_RAW
            || old_len > regz::MAX_RAW
            || recipe.header_len as usize > regz::MAX_HEADER
            || data_len > regz::MAX_RAW * 2
        {
            return Err(self.bad(format!(
                "new member {i} is a re-gzipped file with impossible sizes"
            )));
        }
        let mut old_gz = vec![0u8; old_len as usize];
        self.old
            .store
            .read_data(old, 0, &mut old_gz)
            .map_err(|e| Error::from_io(e, "read kept old data for", &self.path))?;
        let Some(old_raw) = regz::raw_of(&old_gz) else {
            return Err(self.wrong_base(format!(
                "old member {old}, which new member {i} is rebuilt from, is not the gzip file the patch was made from"
            )));
        };
        drop(old_gz);
        let mut header = Vec::with_capacity(recipe.header_len as usize);
        self.extra
            .read_into(&mut header, recipe.header_len as usize)?;
        let raw = self.expanded(&old_raw, recipe.raw_len)?;
        // What this step made so far comes before the member: counted, and
        // held too if something already is.
        self.made()?;
        if self.holding {
            self.held.push_bytes(std::mem::take(&mut self.buf));
            self.step_start = 0;
        }
        self.held
            .push_rebuild(i, data_len, header, raw, recipe.level)
            .map_err(|e| Error::from_io(e, "start a deflate thread for", &self.path))?;
        // Counted as produced now (`start_member` checked that it fits); its
        // length is checked when it comes out of `held`.
        self.produced += data_len;
        Ok(())
    }

    /// The `len` bytes of a rebuilt member's expanded form (a re-gzipped,
    /// re-encoded or re-zipped member), made in memory by its bsdiff
    /// controls from the old member's expanded bytes `old`.
    pub(super) fn expanded(&mut self, old: &[u8], len: u64) -> Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(len as usize);
        while (raw.len() as u64) < len {
            let c = self.next_ctrl(old.len() as u64, len - raw.len() as u64)?;
            let start = raw.len();
            self.diff_bytes_into(&mut raw, c.add as usize)?;
            // next_ctrl checked that the add lies inside `old`
            let from = &old[c.old_pos as usize..(c.old_pos + c.add) as usize];
            for (o, b) in raw[start..].iter_mut().zip(from) {
                *o = o.wrapping_add(*b);
            }
            self.extra.read_into(&mut raw, c.extra as usize)?;
        }
        Ok(raw)
    }

    /// The next bsdiff control of new member `cur_new`, checked against the
    /// `old_len` bytes its adds read from and the `left` bytes still to make.
    pub(super) fn next_ctrl(&mut self, old_len: u64, left: u64) -> Result<Ctrl> {
        let c = self
            .ctrl
            .ctrl()
            .map_err(|e| record_err(&self.path, "a bsdiff control", e))?;
        if c.add == 0 && c.extra == 0 {
            return Err(self.bad(format!(
                "an empty bsdiff control in new member {}",
                self.cur_new
            )));
        }
        let fits_old = c.old_pos.checked_add(c.add).is_some_and(|e| e <= old_len);
        let fits_new = c.add.checked_add(c.extra).is_some_and(|n| n <= left);
        if !fits_old || !fits_new {
            return Err(self.bad(format!(
                "a bsdiff control of new member {} reaches outside its old or new data",
                self.cur_new
            )));
        }
        Ok(c)
    }
}
