//! `sysup diff` as a library call: make the patch between two gzipped dists.
//!
//! Steps, in order:
//! 1. [`scan`] both dists at once (gunzip to unlinked temporary files,
//!    segment, hash), leaving out the data of files both MANIFESTs list
//!    identical;
//! 2. [`pairing`] pairs every new member with an old one (a member whose
//!    data was left out can only be a copy);
//! 3. the retention plan is derived (last new member using each old header
//!    and data) and written first in the controls section;
//! 4. changed pairs are cut into diff tasks — whole members, or windows of
//!    [`DiffOptions::window`] new bytes against 1.5× as many old bytes around
//!    the proportional position for big members, so a suffix array never
//!    covers more than 1.5 windows — and run on worker threads under a memory
//!    budget ([`schedule`]); each task `pread`s its own bytes;
//! 5. the writer walks the new members in order, writing each member's
//!    record and bytes to three raw section files (controls, diff, extra),
//!    taking diff results as they come;
//! 6. the sections are compressed into the patch, written under a temporary
//!    name in the output directory and renamed into place (a failed diff
//!    leaves nothing behind).
//!
//! Invariant: memory is bounded by the budget plus the member tables, never
//! by the size of a tar; the patch reproduces the new tar byte for byte (the
//! applier verifies the to-digests recorded here, computed over the new
//! tar's every byte).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::diff::align;
use crate::diff::matcher::{self, Delta, Index};
use crate::diff::pairing::{self, DataPlan, Pair};
use crate::diff::scan::{self, MemberInfo, Scanned};
use crate::diff::schedule::{Ordered, Slots};
use crate::error::{Error, IoContext, Result};
use crate::format::name::{DistId, PatchName};
use crate::format::patch::header::{
    BodyFormat, Compression, PatchHeader, Section, SectionKind, Side, VERSION,
};
use crate::format::patch::record::{Ctrl, DataOp, HeaderOp, Keep, MemberRecord, RecordWriter};
use crate::format::patch::regz::{self, Recipe};
use crate::format::patch::section::{self, SectionWriter};
use crate::format::patch::zeros::ZeroRunWriter;
use crate::util::fsutil::AtomicFile;
use crate::util::progress::{Progress, Unit};

/// Default new bytes per diff window of a big member.
pub const WINDOW: u64 = 10 << 20;

/// Knobs of [`diff_dists`].
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Worker threads for diff tasks (each section is compressed on a
    /// thread of its own besides).
    pub threads: usize,
    /// Memory the diff tasks may hold at once.
    pub budget: u64,
    /// How the sections are compressed.
    pub codec: Compression,
    /// xz preset (0-9) or zstd level (1-22).
    pub level: i32,
    /// New bytes per diff window; a window is diffed against 1.5× as many
    /// old bytes, and members up to that size on both sides are diffed whole.
    pub window: u64,
    /// Steps reported as they run: scan, new bytes encoded, compression tail.
    pub progress: Progress,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            budget: 224 << 20,
            codec: Compression::Zstd,
            level: section::ZSTD_LEVEL,
            window: WINDOW,
            progress: Progress::disabled(),
        }
    }
}

/// What [`diff_dists`] made, for `sysup diff` to print.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub patch: PathBuf,
    pub size: u64,
    pub header: PatchHeader,
    pub stats: Stats,
}

/// How the new members were encoded, and where the time went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub copied: u64,
    pub diffed: u64,
    pub literal: u64,
    pub copied_bytes: u64,
    pub diffed_bytes: u64,
    pub literal_bytes: u64,
    /// Of the diffed: gzip files diffed through their uncompressed bytes.
    pub regzipped: u64,
    pub regzipped_bytes: u64,
    pub diff_tasks: u64,
    /// Data bytes of files identical in both dists that the scan did not
    /// write to its temporary files (both sides).
    pub unspooled_bytes: u64,
    pub scan_seconds: f64,
    /// Pairing and diffing (compression runs alongside).
    pub diff_seconds: f64,
    /// Compression left to do after the last member was written, and assembly.
    pub compress_seconds: f64,
}

/// One diff task: a window of new member `member` against a window of old member `old`.
struct Task {
    member: u32,
    old: u32,
    /// Diff the members' uncompressed bytes ([`regz`]); whole members only.
    regz: bool,
    old_start: u64,
    old_len: u64,
    new_start: u64,
    new_len: u64,
}

impl Task {
    fn cost(&self) -> u64 {
        self.old_len + Index::memory(self.old_len as usize) as u64 + 2 * self.new_len + (1 << 20)
    }
}

/// Whether an `o`-byte old and `n`-byte new member are diffed in windows.
fn windowed(o: u64, n: u64, window: u64) -> bool {
    let old_window = window.max(4096) / 2 * 3;
    o > old_window || n > old_window
}

/// Cut the diff of an `o`-byte old member and `n`-byte new member into
/// windows of `window` new bytes, each against the old bytes around where
/// the anchor `pairs` ([`align`]) say its content came from.
fn windows(member: u32, old: u32, o: u64, n: u64, window: u64, pairs: &[(u64, u64)]) -> Vec<Task> {
    if !windowed(o, n, window) {
        return vec![Task {
            member,
            old,
            regz: false,
            old_start: 0,
            old_len: o,
            new_start: 0,
            new_len: n,
        }];
    }
    let window = window.max(4096);
    let old_window = window / 2 * 3;
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = window.min(n - start);
        let mid = align::old_centre(pairs, start, len, o, n);
        let old_len = old_window.min(o);
        let old_start = mid.saturating_sub(old_len / 2).min(o - old_len);
        out.push(Task {
            member,
            old,
            regz: false,
            old_start,
            old_len,
            new_start: start,
            new_len: len,
        });
        start += len;
    }
    out
}

/// Make the patch from dist `old_gz` to dist `new_gz` in `out_dir`.
pub fn diff_dists(
    old_gz: &Path,
    new_gz: &Path,
    out_dir: &Path,
    opts: &DiffOptions,
) -> Result<DiffReport> {
    let file_name = |p: &Path| {
        p.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let from = DistId::from_file_name(&file_name(old_gz))?;
    let to = DistId::from_file_name(&file_name(new_gz))?;
    let name = PatchName::new(from, to)?;
    // Like `sysup build --out`: the directory is made if missing, before
    // the long part, so a path that cannot be made fails at once.
    std::fs::create_dir_all(out_dir).ctx("create output directory", out_dir)?;
    let dest = out_dir.join(name.file_name());
    let mut stats = Stats::default();

    let progress = &opts.progress;
    progress.step(format!("scan {name}"), None, Unit::Items);
    let t0 = Instant::now();
    let (old, new) = scan::scan_pair(old_gz, new_gz)?;
    stats.scan_seconds = t0.elapsed().as_secs_f64();
    stats.unspooled_bytes = old.unspooled + new.unspooled;

    let t1 = Instant::now();
    let mut pairs = pairing::pair(&old.members, &new.members);
    pairing::confirm(&mut pairs, &old.members, &new.members, |j, i| {
        old.same_data(&old.members[j as usize], &new, &new.members[i as usize])
    })?;
    copy_what_was_not_spooled(&mut pairs, &old, &new)?;
    let header_ops: Vec<HeaderOp> = pairs
        .iter()
        .zip(&new.members)
        .map(|(p, n)| match p.header {
            Some(j) if old.members[j as usize].header_len == n.header_len => {
                HeaderOp::Diff { old: j }
            }
            _ => HeaderOp::Literal {
                len: u64::from(n.header_len),
            },
        })
        .collect();
    let plan = retention_plan(old.members.len(), &pairs, &header_ops);
    let regz = regz_recipes(&old, &new, &pairs, opts.window)?;
    let big = big_pairs(&old, &new, &pairs, opts.window)?;
    // Big members are cut into windows here, unless big_pairs found them
    // aligned; whether a smaller member is a same-offset rebuild is checked
    // in its task, on the workers.
    // A pair with the same old and new bytes as an earlier one (a binary
    // installed twice) reuses that one's delta instead of a task of its own.
    let mut tasks: Vec<Task> = Vec::new();
    let mut aligned = vec![false; new.members.len()];
    let mut same_as: Vec<Option<u32>> = vec![None; new.members.len()];
    let mut first_with: HashMap<(u64, u128, u64, u128), u32> = HashMap::new();
    let mut last_reuse: HashMap<u32, u32> = HashMap::new();
    for (i, p) in pairs.iter().enumerate() {
        let DataPlan::Diff(j) = p.data else {
            continue;
        };
        let (o, n) = (&old.members[j as usize], &new.members[i]);
        match &big[i] {
            Some(Big::Aligned) => aligned[i] = true,
            Some(Big::Anchored(anchors)) => {
                tasks.extend(windows(i as u32, j, o.size, n.size, opts.window, anchors));
            }
            None => match first_with.entry((o.size, o.hash, n.size, n.hash)) {
                Entry::Occupied(e) => {
                    same_as[i] = Some(*e.get());
                    last_reuse.insert(*e.get(), i as u32);
                }
                Entry::Vacant(e) => {
                    e.insert(i as u32);
                    let mut t = windows(i as u32, j, o.size, n.size, opts.window, &[]);
                    t[0].regz = regz[i].is_some();
                    tasks.extend(t);
                }
            },
        }
    }
    stats.diff_tasks = tasks.len() as u64;

    // Each section is compressed on its own thread while it is written.
    let params = section::Params {
        codec: opts.codec,
        level: opts.level,
    };
    let mut ctrl = RecordWriter::new(SectionWriter::spawn(SectionKind::Controls, params)?);
    let mut diff_w = ZeroRunWriter::new(SectionWriter::spawn(SectionKind::Diff, params)?);
    let mut extra_w = SectionWriter::spawn(SectionKind::Extra, params)?;
    let werr = |e: io::Error| Error::io("write a section in", std::env::temp_dir(), e);

    ctrl.varint(plan.len() as u64).map_err(werr)?;
    for k in &plan {
        ctrl.keep(k).map_err(werr)?;
    }
    ctrl.varint(new.members.len() as u64).map_err(werr)?;

    let work = |t: &Task| -> Result<Delta> {
        let o = &old.members[t.old as usize];
        let n = &new.members[t.member as usize];
        let old_bytes = old.data(o, t.old_start, t.old_len as usize)?;
        let new_bytes = new.data(n, t.new_start, t.new_len as usize)?;
        if t.regz {
            // regz_recipes checked both (and that zlib rebuilds the new one).
            let gone = || Error::Tar {
                path: std::env::temp_dir(),
                reason: "a gzip member changed between scan and diff".into(),
            };
            let old_raw = regz::raw_of(&old_bytes).ok_or_else(gone)?;
            let new_raw = regz::raw_of(&new_bytes).ok_or_else(gone)?;
            return Ok(matcher::diff(&Index::new(&old_raw), &new_raw));
        }
        if t.old_start == 0 && t.new_start == 0 && nearly_aligned(&old_bytes, &new_bytes) {
            return Ok(Delta::aligned(&old_bytes, &new_bytes));
        }
        let index = Index::new(&old_bytes);
        let mut d = matcher::diff(&index, &new_bytes);
        d.rebase(t.old_start);
        Ok(d)
    };
    let slots = Slots::new(
        opts.budget,
        tasks.iter().map(Task::cost),
        |r: &Result<Delta>| r.as_ref().map_or(0, |d| d.memory() as u64),
    );
    progress.step(
        format!("diff {name}"),
        Some(new.members.iter().map(|m| m.size).sum()),
        Unit::Bytes,
    );
    let written: Result<()> = std::thread::scope(|s| {
        let results = Ordered::start(s, &slots, &tasks, opts.threads, &work);
        let mut next_task = 0usize;
        let mut saved: HashMap<u32, Delta> = HashMap::new();
        let mut buf = vec![0u8; 1 << 20];
        for (i, (n, p)) in new.members.iter().zip(&pairs).enumerate() {
            let data = match p.data {
                DataPlan::Empty | DataPlan::Literal => DataOp::Literal { len: n.size },
                DataPlan::Copy(j) => DataOp::Copy { old: j },
                DataPlan::Diff(j) => {
                    let len_delta = n.size as i64 - old.members[j as usize].size as i64;
                    match regz[i] {
                        Some(recipe) => DataOp::Regz {
                            old: j,
                            len_delta,
                            recipe,
                        },
                        None => DataOp::Bsdiff { old: j, len_delta },
                    }
                }
            };
            ctrl.member(&MemberRecord {
                header: header_ops[i],
                data,
                pad_literal: !n.pad_zero,
            })
            .map_err(werr)?;
            let nh = new.header(n)?;
            match header_ops[i] {
                HeaderOp::Literal { .. } => extra_w.write_all(&nh).map_err(werr)?,
                HeaderOp::Diff { old: j } => {
                    let oh = old.header(&old.members[j as usize])?;
                    let d: Vec<u8> = nh
                        .iter()
                        .zip(&oh)
                        .map(|(a, b)| a.wrapping_sub(*b))
                        .collect();
                    diff_w.write_all(&d).map_err(werr)?;
                }
            }
            match p.data {
                DataPlan::Empty => {}
                DataPlan::Copy(_) => {
                    stats.copied += 1;
                    stats.copied_bytes += n.size;
                }
                DataPlan::Literal => {
                    stats.literal += 1;
                    stats.literal_bytes += n.size;
                    copy_range(&new, n.data_offset(), n.size, &mut extra_w, &mut buf)?;
                }
                DataPlan::Diff(j) if aligned[i] => {
                    stats.diffed += 1;
                    stats.diffed_bytes += n.size;
                    let o = &old.members[j as usize];
                    ctrl.ctrl(&Ctrl {
                        old_pos: 0,
                        add: n.size,
                        extra: 0,
                    })
                    .map_err(werr)?;
                    let mut pos = 0;
                    let mut theirs = vec![0u8; buf.len()];
                    while pos < n.size {
                        let k = (n.size - pos).min(buf.len() as u64) as usize;
                        new.read_at(n.data_offset() + pos, &mut buf[..k])?;
                        old.read_at(o.data_offset() + pos, &mut theirs[..k])?;
                        for (x, y) in buf[..k].iter_mut().zip(&theirs[..k]) {
                            *x = x.wrapping_sub(*y);
                        }
                        diff_w.write_all(&buf[..k]).map_err(werr)?;
                        pos += k as u64;
                    }
                }
                DataPlan::Diff(_) => {
                    stats.diffed += 1;
                    stats.diffed_bytes += n.size;
                    if let Some(r) = regz[i] {
                        stats.regzipped += 1;
                        stats.regzipped_bytes += n.size;
                        let off = n.data_offset();
                        copy_range(&new, off, u64::from(r.header_len), &mut extra_w, &mut buf)?;
                    }
                    let mut write = |d: &Delta| -> Result<()> {
                        for c in &d.ctrls {
                            ctrl.ctrl(c).map_err(werr)?;
                        }
                        diff_w.write_all(&d.diff).map_err(werr)?;
                        extra_w.write_all(&d.extra).map_err(werr)
                    };
                    if let Some(k) = same_as[i] {
                        let d = if last_reuse.get(&k) == Some(&(i as u32)) {
                            saved.remove(&k)
                        } else {
                            saved.get(&k).cloned()
                        };
                        write(&d.expect("the first of identical pairs is written first"))?;
                    }
                    while next_task < tasks.len() && tasks[next_task].member == i as u32 {
                        let d = results.take(next_task)?;
                        write(&d)?;
                        if last_reuse.contains_key(&(i as u32)) {
                            saved.insert(i as u32, d);
                        }
                        next_task += 1;
                    }
                }
            }
            if !n.pad_zero {
                let pad = crate::format::archive::segment::pad_len(n.size);
                copy_range(&new, n.data_offset() + n.size, pad, &mut extra_w, &mut buf)?;
            }
            progress.add(n.size);
        }
        let (t_off, t_len) = new.trailer;
        ctrl.varint(t_len).map_err(werr)?;
        copy_range(&new, t_off, t_len, &mut extra_w, &mut buf)?;
        Ok(())
    });
    written?;
    let n_new = new.members.len() as u32;
    let old_members = old.members.len() as u32;
    let (old_digests, new_digests) = (old.digests, new.digests);
    // The uncompressed tars go away before the last compression finishes.
    drop((old, new, pairs));
    stats.diff_seconds = t1.elapsed().as_secs_f64();
    progress.step(format!("compress {name}"), None, Unit::Items);
    let t2 = Instant::now();
    let compressed = [
        ctrl.into_inner().finish()?,
        diff_w.finish().map_err(werr)?.finish()?,
        extra_w.finish()?,
    ];
    let header_len = PatchHeader::encoded_len(&name);
    let mut out = AtomicFile::create(&dest)?;
    let tmp_path = out.temp_path().to_path_buf();
    let mut sections = Vec::with_capacity(3);
    {
        let f = out.file();
        f.write_all(&vec![0u8; header_len as usize])
            .ctx("write", &tmp_path)?;
        let mut at = u64::from(header_len);
        for (kind, mut c) in SectionKind::ALL.into_iter().zip(compressed) {
            c.file
                .seek(SeekFrom::Start(0))
                .ctx("rewind", std::env::temp_dir())?;
            io::copy(&mut c.file, f).ctx("write", &tmp_path)?;
            sections.push(Section {
                kind,
                offset: at,
                len: c.len,
                raw_len: c.raw_len,
                sha256: c.sha256,
            });
            at += c.len;
        }
    }
    let header = PatchHeader {
        version: VERSION,
        from: Side {
            id: name.from.clone(),
            tar: old_digests,
        },
        to: Side {
            id: name.to.clone(),
            tar: new_digests,
        },
        name,
        body_format: BodyFormat::MemberBsdiff,
        compression: opts.codec,
        window_log: params.window_log(),
        old_members,
        new_members: n_new,
        sections: sections.try_into().expect("three sections"),
        header_len,
    };
    let f = out.file();
    f.seek(SeekFrom::Start(0)).ctx("seek in", &tmp_path)?;
    f.write_all(&header.encode()).ctx("write", &tmp_path)?;
    let size = f.seek(SeekFrom::End(0)).ctx("seek in", &tmp_path)?;
    let patch = out.commit()?;
    progress.done();
    stats.compress_seconds = t2.elapsed().as_secs_f64();
    Ok(DiffReport {
        patch,
        size,
        header,
        stats,
    })
}

/// `f(old member, new member)` for every pair whose data is diffed, in
/// parallel; `None` for every other new member.
fn per_diffed_pair<T: Send>(
    old: &Scanned,
    new: &Scanned,
    pairs: &[Pair],
    f: impl Fn(&MemberInfo, &MemberInfo) -> Result<Option<T>> + Sync,
) -> Result<Vec<Option<T>>> {
    use rayon::prelude::*;
    pairs
        .par_iter()
        .zip(&new.members)
        .map(|(p, n)| match p.data {
            DataPlan::Diff(j) => f(&old.members[j as usize], n),
            _ => Ok(None),
        })
        .collect()
}

/// For each new member: the recipe to diff it through its uncompressed bytes
/// ([`regz`]) — both sides gzip files small enough to be diffed whole, the
/// old one inflating, the new one rebuilt exactly by zlib. Checked in
/// parallel.
fn regz_recipes(
    old: &Scanned,
    new: &Scanned,
    pairs: &[Pair],
    window: u64,
) -> Result<Vec<Option<Recipe>>> {
    const GZIP: [u8; 3] = [0x1f, 0x8b, 8];
    let starts_gzip = |s: &Scanned, m: &MemberInfo| -> Result<bool> {
        if m.size < 18 || m.size > regz::MAX_RAW {
            return Ok(false);
        }
        Ok(s.data(m, 0, 3)? == GZIP)
    };
    per_diffed_pair(old, new, pairs, |o, n| {
        if windowed(o.size, n.size, window) || !starts_gzip(new, n)? || !starts_gzip(old, o)? {
            return Ok(None);
        }
        if regz::raw_of(&old.data(o, 0, o.size as usize)?).is_none() {
            return Ok(None);
        }
        Ok(regz::recipe(&new.data(n, 0, n.size as usize)?).map(|(r, _)| r))
    })
}

/// How a pair of big members (diffed in windows) is diffed.
enum Big {
    /// Same size and nearly the same bytes at the same offsets: one control.
    Aligned,
    /// In windows placed by these anchor pairs (old offset, new offset).
    Anchored(Vec<(u64, u64)>),
}

/// For each new member diffed in windows, how: [`nearly_aligned_members`],
/// else the anchors of both sides. Both read whole members; done in
/// parallel, across pairs and across the two sides of a pair.
fn big_pairs(
    old: &Scanned,
    new: &Scanned,
    pairs: &[Pair],
    window: u64,
) -> Result<Vec<Option<Big>>> {
    per_diffed_pair(old, new, pairs, |o, n| {
        if !windowed(o.size, n.size, window) {
            return Ok(None);
        }
        if o.size == n.size && nearly_aligned_members(old, o, new, n)? {
            return Ok(Some(Big::Aligned));
        }
        let (a, b) = rayon::join(|| anchors_of(old, o), || anchors_of(new, n));
        Ok(Some(Big::Anchored(align::matches(&a?, &b?))))
    })
}

/// The scan wrote no data of files both dists hold identical ([`scan`]):
/// such a new member must be a copy, and such an old member cannot be a
/// diff base — a new member paired with one by name is encoded literally.
/// (Pairing makes neither happen for dists whose tars match their
/// MANIFESTs; this keeps generation from ever reading bytes it has not got.)
fn copy_what_was_not_spooled(pairs: &mut [Pair], old: &Scanned, new: &Scanned) -> Result<()> {
    for (p, n) in pairs.iter_mut().zip(&new.members) {
        if let DataPlan::Diff(j) = p.data {
            if !old.members[j as usize].spooled {
                p.data = DataPlan::Literal;
            }
        }
        if !matches!(p.data, DataPlan::Copy(_)) {
            new.check_spooled(n)?;
        }
    }
    Ok(())
}

/// For each of `n_old` old members, the last new member (index + 1) using
/// its header or its data.
fn retention_plan(n_old: usize, pairs: &[Pair], header_ops: &[HeaderOp]) -> Vec<Keep> {
    let mut plan = vec![Keep::default(); n_old];
    for (i, (p, h)) in pairs.iter().zip(header_ops).enumerate() {
        let user = i as u32 + 1;
        if let HeaderOp::Diff { old } = h {
            plan[*old as usize].hdr_last = user;
        }
        if let DataPlan::Copy(j) | DataPlan::Diff(j) = p.data {
            plan[j as usize].data_last = user;
        }
    }
    plan
}

/// Whether two members of the same size differ in at most one byte in 1024
/// at the same offsets (a rebuild that changed an id or a path): then one
/// control adding the whole old member is what bsdiff would find, and the
/// suffix array is not worth building. (Read in chunks: for big members.)
fn nearly_aligned_members(
    old: &Scanned,
    o: &MemberInfo,
    new: &Scanned,
    n: &MemberInfo,
) -> Result<bool> {
    let limit = n.size / 1024;
    let mut differing = 0u64;
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut pos = 0;
    while pos < n.size {
        let k = (n.size - pos).min(a.len() as u64) as usize;
        old.read_at(o.data_offset() + pos, &mut a[..k])?;
        new.read_at(n.data_offset() + pos, &mut b[..k])?;
        differing += differing_bytes(&a[..k], &b[..k]);
        if differing > limit {
            return Ok(false);
        }
        pos += k as u64;
    }
    Ok(true)
}

/// [`nearly_aligned_members`] for bytes in memory.
fn nearly_aligned(old: &[u8], new: &[u8]) -> bool {
    old.len() == new.len()
        && !new.is_empty()
        && differing_bytes(old, new) <= new.len() as u64 / 1024
}

fn differing_bytes(a: &[u8], b: &[u8]) -> u64 {
    if a == b {
        return 0;
    }
    a.iter().zip(b).filter(|(x, y)| x != y).count() as u64
}

/// The content-defined anchors of a member's data.
fn anchors_of(src: &Scanned, m: &MemberInfo) -> Result<Vec<(u64, u64)>> {
    let mut a = align::Anchors::default();
    src.each_chunk(m, |c| a.update(c))?;
    Ok(a.found)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_new_member_and_stay_in_the_old() {
        for (o, n) in [
            (100 << 20, 90 << 20),
            (30 << 20, 200 << 20),
            (300 << 20, 1 << 20),
            (5, 7),
        ] {
            let ws = windows(0, 0, o, n, WINDOW, &[]);
            let mut at = 0;
            for w in &ws {
                assert_eq!(w.new_start, at);
                assert!(w.new_len <= WINDOW / 2 * 3);
                assert!(w.old_start + w.old_len <= o);
                assert!(w.old_len <= WINDOW / 2 * 3);
                at += w.new_len;
            }
            assert_eq!(at, n);
        }
    }
}
