//! Writing the body: the three raw sections (controls, diff, extra), each
//! compressed on a thread of its own while it is written, filled member by
//! member in the order of the new tar while the diff tasks run on workers.
//!
//! Per new member the controls get its record (header and data operations),
//! then its header bytes go to the extra section (literal) or the diff
//! section (bytewise difference from the paired old header), then its data:
//! nothing for a copy, literal bytes, one aligned control with the bytewise
//! difference, or the deltas of its tasks (taken in order as they finish, or
//! an earlier identical pair's, kept until its last reuse); then its padding
//! when it is not zeros. The trailer comes last. A pair of x86-64 (or
//! aarch64) executables has all its deltas gathered before its record, because the
//! record says whether their reference operands are predicted ([`xref`]:
//! kept when that leaves fewer nonzero diff bytes). An xz or zstd pair
//! has its two deltas (uncompressed and compressed bytes) gathered first
//! too, and keeps the cheaper ([`recode`](super::recode)); a zip archive
//! kept expanded has its table right after its record.
//!
//! Invariant: what is written depends only on the plan and the bytes of the
//! two tars, never on the order in which tasks finish, so the same dists
//! always make the same patch, byte for byte.

use std::collections::HashMap;
use std::io::{self, Write};

use super::plan::Plan;
use super::tasks::{self, Task};
use super::{DiffOptions, Stats};
use crate::diff::matcher::Delta;
use crate::diff::pairing::DataPlan;
use crate::diff::scan::{MemberInfo, Scanned};
use crate::diff::schedule::{Ordered, Slots};
use crate::error::{Error, IoContext, Result};
use crate::format::archive::segment::pad_len;
use crate::format::patch::ctrl::Ctrl;
use crate::format::patch::header::SectionKind;
use crate::format::patch::record::{DataOp, HeaderOp, Keep, MemberRecord, RecordWriter};
use crate::format::patch::section::{self, Compressed, SectionWriter};
use crate::format::patch::xref;
use crate::format::patch::zeros::ZeroRunWriter;

/// A failed write to a section's temporary file.
pub(super) fn werr(e: io::Error) -> Error {
    Error::io("write a section in", std::env::temp_dir(), e)
}

/// A member's deltas, and the old and new segment tables when its
/// reference operands are coded against their prediction.
type Predicted = (Vec<Delta>, Option<(xref::Segments, xref::Segments)>);

/// Bytes at the start of an executable read for its program headers.
const HEAD: u64 = 64 << 10;

/// The three raw sections, each compressed on its own thread while it is
/// written.
pub(super) struct Sections {
    ctrl: RecordWriter<SectionWriter>,
    diff: ZeroRunWriter<SectionWriter>,
    extra: SectionWriter,
}

impl Sections {
    pub(super) fn spawn(params: section::Params) -> Result<Sections> {
        Ok(Sections {
            ctrl: RecordWriter::new(SectionWriter::spawn(SectionKind::Controls, params)?),
            diff: ZeroRunWriter::new(SectionWriter::spawn(SectionKind::Diff, params)?),
            extra: SectionWriter::spawn(SectionKind::Extra, params)?,
        })
    }

    /// The head of the controls: the retention plan, then the count of new
    /// members.
    pub(super) fn write_plan(&mut self, keep: &[Keep], n_new: usize) -> Result<()> {
        self.ctrl.varint(keep.len() as u64).map_err(werr)?;
        for k in keep {
            self.ctrl.keep(k).map_err(werr)?;
        }
        self.ctrl.varint(n_new as u64).map_err(werr)
    }

    /// One delta: its controls, diff bytes and extra bytes.
    fn delta(&mut self, d: &Delta) -> Result<()> {
        for c in &d.ctrls {
            self.ctrl.ctrl(c).map_err(werr)?;
        }
        self.diff.write_all(&d.diff).map_err(werr)?;
        self.extra.write_all(&d.extra).map_err(werr)
    }

    /// Wait for the compression of the three sections to finish.
    pub(super) fn finish(self) -> Result<[Compressed; 3]> {
        Ok([
            self.ctrl.into_inner().finish()?,
            self.diff.finish().map_err(werr)?.finish()?,
            self.extra.finish()?,
        ])
    }
}

/// Write every new member and the trailer, running the plan's diff tasks on
/// `opts.threads` workers under `opts.budget`.
pub(super) fn write_members(
    sections: &mut Sections,
    old: &Scanned,
    new: &Scanned,
    plan: &Plan,
    opts: &DiffOptions,
    stats: &mut Stats,
) -> Result<()> {
    let work = |t: &Task| tasks::run(old, new, t, plan.zip.get(&t.member).filter(|_| t.regz));
    let slots = Slots::new(
        opts.budget,
        plan.tasks.iter().map(Task::cost),
        |r: &Result<Delta>| r.as_ref().map_or(0, |d| d.memory() as u64),
    );
    std::thread::scope(|s| {
        let results = Ordered::start(s, &slots, &plan.tasks, opts.threads, &work);
        let mut w = MemberWriter {
            sections,
            old,
            new,
            plan,
            results: &results,
            next_task: 0,
            saved: HashMap::new(),
            buf: vec![0u8; 1 << 20],
            xref: opts.xref,
            stats,
        };
        for (i, n) in new.members.iter().enumerate() {
            w.member(i, n)?;
            opts.progress.add(n.size);
        }
        w.trailer()
    })
}

/// The writing of the new members, in order.
struct MemberWriter<'a, 'r> {
    sections: &'a mut Sections,
    old: &'a Scanned,
    new: &'a Scanned,
    plan: &'a Plan,
    results: &'a Ordered<'r, Result<Delta>>,
    /// The first task not taken yet.
    next_task: usize,
    /// Deltas of pairs that later identical pairs reuse, by new member.
    saved: HashMap<u32, Delta>,
    buf: Vec<u8>,
    /// Try reference prediction on x86-64 and aarch64 members ([`DiffOptions::xref`]).
    xref: bool,
    stats: &'a mut Stats,
}

impl MemberWriter<'_, '_> {
    /// New member `i`: its record, header, data and padding.
    fn member(&mut self, i: usize, n: &MemberInfo) -> Result<()> {
        let header = self.plan.header_ops[i];
        // A candidate for reference prediction: its deltas are gathered
        // first, since the record says whether they are predicted.
        let predicted = match self.plan.pairs[i].data {
            DataPlan::Diff(j) if self.plan.xref[i] && !self.plan.aligned[i] && self.xref => {
                let deltas = self.take_deltas(i)?;
                Some(self.predict(i, j, deltas)?)
            }
            _ => None,
        };
        // An xz or zstd candidate: its two deltas, and the one it keeps.
        let recoded = match self.plan.recode[i] {
            Some(_) => Some(super::recode::choose(
                self.take_deltas(i)?,
                self.plan.zip.get(&(i as u32)),
            )),
            None => None,
        };
        let segments = predicted.as_ref().and_then(|p| p.1.as_ref());
        let recode = recoded.as_ref().is_some_and(|r| r.1);
        self.sections
            .ctrl
            .member(&MemberRecord {
                header,
                data: self.data_op(i, n, segments.is_some(), recode),
                pad_literal: !n.pad_zero,
            })
            .map_err(werr)?;
        if let Some((o, n)) = segments {
            self.sections.ctrl.segments(o, n).map_err(werr)?;
        }
        let zip = self.plan.zip.get(&(i as u32)).filter(|_| recode);
        for v in zip.map(|t| t.fields()).unwrap_or_default() {
            self.sections.ctrl.varint(v).map_err(werr)?;
        }
        self.header(header, n)?;
        match self.plan.pairs[i].data {
            DataPlan::Empty => {}
            DataPlan::Copy(_) => {
                self.stats.copied += 1;
                self.stats.copied_bytes += n.size;
            }
            DataPlan::Literal => {
                self.stats.literal += 1;
                self.stats.literal_bytes += n.size;
                self.copy_new(n.data_offset(), n.size)?;
            }
            DataPlan::Diff(j) if self.plan.aligned[i] => {
                self.stats.diffed += 1;
                self.stats.diffed_bytes += n.size;
                self.aligned(&self.old.members[j as usize], n)?;
            }
            DataPlan::Diff(_) => {
                self.stats.diffed += 1;
                self.stats.diffed_bytes += n.size;
                match (predicted, recoded) {
                    (Some((deltas, segments)), _) => {
                        if segments.is_some() {
                            self.stats.xref += 1;
                            self.stats.xref_bytes += n.size;
                        }
                        for d in &deltas {
                            self.sections.delta(d)?;
                        }
                    }
                    (None, Some((deltas, recode))) => {
                        if recode {
                            self.stats.recoded += 1;
                            self.stats.recoded_bytes += n.size;
                        }
                        if zip.is_some() {
                            self.stats.rezipped += 1;
                            self.stats.rezipped_bytes += n.size;
                        }
                        for d in &deltas {
                            self.sections.delta(d)?;
                        }
                    }
                    (None, None) => self.diffed(i, n)?,
                }
            }
        }
        if !n.pad_zero {
            self.copy_new(n.data_offset() + n.size, pad_len(n.size))?;
        }
        Ok(())
    }

    /// The data operation of new member `i`'s record.
    fn data_op(&self, i: usize, n: &MemberInfo, xref: bool, recode: bool) -> DataOp {
        match self.plan.pairs[i].data {
            DataPlan::Empty | DataPlan::Literal => DataOp::Literal { len: n.size },
            DataPlan::Copy(j) => DataOp::Copy { old: j },
            DataPlan::Diff(j) => {
                let len_delta = n.size as i64 - self.old.members[j as usize].size as i64;
                match (self.plan.regz[i], self.plan.recode[i]) {
                    (Some(recipe), _) => DataOp::Regz {
                        old: j,
                        len_delta,
                        recipe,
                    },
                    (None, Some(recipe)) if recode => DataOp::Recode {
                        old: j,
                        len_delta,
                        recipe,
                    },
                    _ => DataOp::Bsdiff {
                        old: j,
                        len_delta,
                        xref,
                    },
                }
            }
        }
    }

    /// A member's header blocks: literal, or the bytewise difference from
    /// the old member's.
    fn header(&mut self, op: HeaderOp, n: &MemberInfo) -> Result<()> {
        let nh = self.new.header(n)?;
        match op {
            HeaderOp::Literal { .. } => self.sections.extra.write_all(&nh).map_err(werr),
            HeaderOp::Diff { old: j } => {
                let oh = self.old.header(&self.old.members[j as usize])?;
                let d: Vec<u8> = nh
                    .iter()
                    .zip(&oh)
                    .map(|(a, b)| a.wrapping_sub(*b))
                    .collect();
                self.sections.diff.write_all(&d).map_err(werr)
            }
        }
    }

    /// A big pair nearly the same at the same offsets: one control adding
    /// the whole old member, and the bytewise difference.
    fn aligned(&mut self, o: &MemberInfo, n: &MemberInfo) -> Result<()> {
        self.sections
            .ctrl
            .ctrl(&Ctrl {
                old_pos: 0,
                add: n.size,
                extra: 0,
            })
            .map_err(werr)?;
        let buf = &mut self.buf;
        let mut pos = 0;
        let mut theirs = vec![0u8; buf.len()];
        while pos < n.size {
            let k = (n.size - pos).min(buf.len() as u64) as usize;
            self.new.read_at(n.data_offset() + pos, &mut buf[..k])?;
            self.old.read_at(o.data_offset() + pos, &mut theirs[..k])?;
            for (x, y) in buf[..k].iter_mut().zip(&theirs[..k]) {
                *x = x.wrapping_sub(*y);
            }
            self.sections.diff.write_all(&buf[..k]).map_err(werr)?;
            pos += k as u64;
        }
        Ok(())
    }

    /// A diffed member: a re-gzipped one's gzip header, then the deltas of
    /// an earlier identical pair or of its own tasks.
    fn diffed(&mut self, i: usize, n: &MemberInfo) -> Result<()> {
        if let Some(r) = self.plan.regz[i] {
            self.stats.regzipped += 1;
            self.stats.regzipped_bytes += n.size;
            self.copy_new(n.data_offset(), u64::from(r.header_len))?;
        }
        if let Some(k) = self.plan.same_as[i] {
            let d = if self.plan.last_reuse.get(&k) == Some(&(i as u32)) {
                self.saved.remove(&k)
            } else {
                self.saved.get(&k).cloned()
            };
            self.sections
                .delta(&d.expect("the first of identical pairs is written first"))?;
        }
        let tasks = &self.plan.tasks;
        while self.next_task < tasks.len() && tasks[self.next_task].member == i as u32 {
            let d = self.results.take(self.next_task)?;
            self.sections.delta(&d)?;
            if self.plan.last_reuse.contains_key(&(i as u32)) {
                self.saved.insert(i as u32, d);
            }
            self.next_task += 1;
        }
        Ok(())
    }

    /// The deltas of new member `i` (not re-gzipped), in order: an earlier
    /// identical pair's or its own tasks'.
    fn take_deltas(&mut self, i: usize) -> Result<Vec<Delta>> {
        let mut out = Vec::new();
        if let Some(k) = self.plan.same_as[i] {
            let d = if self.plan.last_reuse.get(&k) == Some(&(i as u32)) {
                self.saved.remove(&k)
            } else {
                self.saved.get(&k).cloned()
            };
            out.push(d.expect("the first of identical pairs is written first"));
        }
        let tasks = &self.plan.tasks;
        while self.next_task < tasks.len() && tasks[self.next_task].member == i as u32 {
            let d = self.results.take(self.next_task)?;
            if self.plan.last_reuse.contains_key(&(i as u32)) {
                self.saved.insert(i as u32, d.clone());
            }
            out.push(d);
            self.next_task += 1;
        }
        Ok(out)
    }

    /// Code the reference operands of an x86-64 or aarch64 member's `deltas` (new
    /// member `i` against old member `j`) against their prediction
    /// ([`xref`]) when that leaves fewer nonzero diff bytes; the old and new
    /// segment tables when it did.
    fn predict(&mut self, i: usize, j: u32, mut deltas: Vec<Delta>) -> Result<Predicted> {
        let ctrls: Vec<Ctrl> = deltas
            .iter()
            .flat_map(|d| d.ctrls.iter().copied())
            .collect();
        let o = &self.old.members[j as usize];
        let n = &self.new.members[i];
        let old_head = self.old.data(o, 0, o.size.min(HEAD) as usize)?;
        let new_head = self.new.data(n, 0, n.size.min(HEAD) as usize)?;
        let arm = xref::aarch64::is_aarch64_elf(&old_head);
        let (Some(map), Some(old_segs), Some(new_segs)) = (
            xref::Map::new(&ctrls),
            xref::Segments::parse(&old_head),
            xref::Segments::parse(&new_head),
        ) else {
            return Ok((deltas, None));
        };
        let p = xref::Predictor {
            map,
            old: old_segs,
            new: new_segs,
        };
        // Each add's old bytes are read as needed: a big member is not held
        // whole besides its deltas. aarch64's predictions read around them.
        let mut old = Vec::new();
        let mut pass = |deltas: &mut [Delta], write: bool| -> Result<(u64, u64)> {
            let (mut before, mut after, mut y) = (0, 0, 0u64);
            for d in deltas {
                let mut at = 0usize;
                for c in &d.ctrls {
                    let len = c.add as usize;
                    let (lo, hi) = if arm {
                        xref::aarch64::Window::bounds(c.old_pos, c.add, o.size)
                    } else {
                        (c.old_pos, c.old_pos + c.add)
                    };
                    old.resize((hi - lo) as usize, 0);
                    self.old.read_at(o.data_offset() + lo, &mut old)?;
                    let diff = &mut d.diff[at..at + len];
                    let (b, a) = if arm {
                        let w = xref::aarch64::Window {
                            bytes: &old,
                            start: lo,
                        };
                        xref::aarch64::encode_add(&p, &w, (c.old_pos, y), diff, write)
                    } else {
                        xref::encode_add(&p, &old, (c.old_pos, y), diff, write)
                    };
                    before += b;
                    after += a;
                    at += len;
                    y += c.add + c.extra;
                }
            }
            Ok((before, after))
        };
        let (before, after) = pass(&mut deltas, false)?;
        if after >= before {
            return Ok((deltas, None));
        }
        pass(&mut deltas, true)?;
        Ok((deltas, Some((p.old, p.new))))
    }

    /// The trailer: its length in the controls, its bytes in the extra.
    fn trailer(&mut self) -> Result<()> {
        let (t_off, t_len) = self.new.trailer;
        self.sections.ctrl.varint(t_len).map_err(werr)?;
        self.copy_new(t_off, t_len)
    }

    /// Copy bytes of the new tar into the extra section.
    fn copy_new(&mut self, offset: u64, len: u64) -> Result<()> {
        copy_range(
            self.new,
            offset,
            len,
            &mut self.sections.extra,
            &mut self.buf,
        )
    }
}

/// Copy `len` bytes at `offset` of a scanned tar into `w`.
fn copy_range(
    src: &Scanned,
    mut offset: u64,
    len: u64,
    w: &mut impl Write,
    buf: &mut [u8],
) -> Result<()> {
    let end = offset + len;
    while offset < end {
        let n = (end - offset).min(buf.len() as u64) as usize;
        src.read_at(offset, &mut buf[..n])?;
        w.write_all(&buf[..n])
            .ctx("write a temporary section file in", std::env::temp_dir())?;
        offset += n as u64;
    }
    Ok(())
}
