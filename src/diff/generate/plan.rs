//! The plan of a patch, made before any byte is written: which old member
//! each new member is encoded against ([`pairing`]), the header operations,
//! the retention plan (the last new member using each old header and data),
//! the gzip members diffed through their uncompressed bytes, the x86-64
//! and aarch64 executables whose references may be predicted, and the diff tasks.
//!
//! Invariants: a `Copy` is confirmed byte for byte (or by SHA-256) before it
//! is planned; no plan ever reads bytes the scan did not keep; tasks are in
//! the order of the new members they belong to, and a pair with the same
//! old and new bytes as an earlier pair gets no task of its own but reuses
//! that pair's delta.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::tasks::{anchors_of, nearly_aligned_members, windowed, windows, Big, Task};
use crate::diff::align;
use crate::diff::pairing::{self, DataPlan, Pair};
use crate::diff::scan::{MemberInfo, Scanned};
use crate::error::Result;
use crate::format::patch::recode;
use crate::format::patch::record::{HeaderOp, Keep};
use crate::format::patch::regz::{self, Recipe};
use crate::format::patch::rezip::Table;
use crate::format::patch::xref;

/// Which compressed members are diffed through their uncompressed bytes
/// besides gzip ([`super::DiffOptions::recode`], [`super::DiffOptions::rezip`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct Recoding {
    /// xz, zstd and (with `zip`) zip members.
    pub(super) recode: bool,
    pub(super) zip: bool,
}

/// Everything decided about a patch before it is written.
pub(super) struct Plan {
    /// Per new member, in order.
    pub(super) pairs: Vec<Pair>,
    pub(super) header_ops: Vec<HeaderOp>,
    /// Per old member: the last new member using its header and its data.
    pub(super) keep: Vec<Keep>,
    /// Per new member: diffed through its uncompressed bytes, so.
    pub(super) regz: Vec<Option<Recipe>>,
    /// Per new member: an xz or zstd file this build rebuilds
    /// ([`super::recode`]), so diffed both ways.
    pub(super) recode: Vec<Option<recode::Recipe>>,
    /// Per new member re-encoded as a zip archive: its table.
    pub(super) zip: HashMap<u32, Table>,
    /// Per new member: both sides are x86-64 (or both aarch64) ELF files, so reference
    /// prediction ([`xref`]) is tried on its deltas.
    pub(super) xref: Vec<bool>,
    pub(super) tasks: Vec<Task>,
    /// Per new member: a big pair diffed as one aligned control.
    pub(super) aligned: Vec<bool>,
    /// Per new member: the earlier new member whose delta it reuses.
    pub(super) same_as: Vec<Option<u32>>,
    /// For each new member whose delta is reused: the last one reusing it.
    pub(super) last_reuse: HashMap<u32, u32>,
}

impl Plan {
    /// Pair the members of `old` and `new` and plan every pair's encoding.
    pub(super) fn make(old: &Scanned, new: &Scanned, window: u64, how: Recoding) -> Result<Plan> {
        let mut pairs = pairing::pair(&old.members, &new.members);
        pairing::confirm(&mut pairs, &old.members, &new.members, |j, i| {
            old.same_data(&old.members[j as usize], new, &new.members[i as usize])
        })?;
        copy_what_was_not_spooled(&mut pairs, old, new)?;
        let header_ops = header_ops(old, new, &pairs);
        let keep = retention_plan(old.members.len(), &pairs, &header_ops);
        let regz = regz_recipes(old, new, &pairs, window)?;
        let candidates = match how.recode {
            true => super::recode::recipes(old, new, &pairs, window, how.zip)?,
            false => Vec::new(),
        };
        let mut recode = vec![None; new.members.len()];
        let mut zip = HashMap::new();
        for (i, c) in candidates.into_iter().enumerate() {
            if let Some((r, t)) = c {
                recode[i] = Some(r);
                if let Some(t) = t {
                    zip.insert(i as u32, t);
                }
            }
        }
        let xref = xref_candidates(old, new, &pairs)?;
        let big = big_pairs(old, new, &pairs, window)?;
        let n_new = new.members.len();
        let mut plan = Plan {
            pairs,
            header_ops,
            keep,
            regz,
            recode,
            zip,
            xref,
            tasks: Vec::new(),
            aligned: vec![false; n_new],
            same_as: vec![None; n_new],
            last_reuse: HashMap::new(),
        };
        plan.cut_tasks(old, new, &big, window);
        Ok(plan)
    }

    /// Big members are cut into windows here, unless big_pairs found them
    /// aligned; whether a smaller member is a same-offset rebuild is checked
    /// in its task, on the workers.
    /// A pair with the same old and new bytes as an earlier one (a binary
    /// installed twice) reuses that one's delta instead of a task of its own.
    fn cut_tasks(&mut self, old: &Scanned, new: &Scanned, big: &[Option<Big>], window: u64) {
        let mut first_with: HashMap<(u64, u128, u64, u128), u32> = HashMap::new();
        for (i, p) in self.pairs.iter().enumerate() {
            let DataPlan::Diff(j) = p.data else {
                continue;
            };
            let (o, n) = (&old.members[j as usize], &new.members[i]);
            match &big[i] {
                Some(Big::Aligned) => self.aligned[i] = true,
                Some(Big::Anchored(anchors)) => {
                    self.tasks
                        .extend(windows(i as u32, j, o.size, n.size, window, anchors));
                }
                // Two whole tasks: uncompressed, then compressed bytes.
                None if self.recode[i].is_some() => {
                    let mut t = windows(i as u32, j, o.size, n.size, window, &[]);
                    t[0].regz = true;
                    t.extend(windows(i as u32, j, o.size, n.size, window, &[]));
                    self.tasks.extend(t);
                }
                None => match first_with.entry((o.size, o.hash, n.size, n.hash)) {
                    Entry::Occupied(e) => {
                        self.same_as[i] = Some(*e.get());
                        self.last_reuse.insert(*e.get(), i as u32);
                    }
                    Entry::Vacant(e) => {
                        e.insert(i as u32);
                        let mut t = windows(i as u32, j, o.size, n.size, window, &[]);
                        t[0].regz = self.regz[i].is_some();
                        self.tasks.extend(t);
                    }
                },
            }
        }
    }
}

/// Per new member: its header blocks diffed against its paired old
/// member's when their lengths agree, else literal.
fn header_ops(old: &Scanned, new: &Scanned, pairs: &[Pair]) -> Vec<HeaderOp> {
    pairs
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
        .collect()
}

/// `f(old member, new member)` for every pair whose data is diffed, in
/// parallel; `None` for every other new member.
pub(super) fn per_diffed_pair<T: Send>(
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

/// For each new member: whether both sides of its diffed pair are ELF
/// files of one predicted machine (x86-64, aarch64) within
/// [`xref::MAX_LEN`].
fn xref_candidates(old: &Scanned, new: &Scanned, pairs: &[Pair]) -> Result<Vec<bool>> {
    let elf = |s: &Scanned, m: &MemberInfo| -> Result<Option<u16>> {
        if m.size < 20 || m.size > xref::MAX_LEN {
            return Ok(None);
        }
        Ok(xref::aarch64::machine(&s.data(m, 0, 20)?))
    };
    let v = per_diffed_pair(old, new, pairs, |o, n| {
        let m = elf(new, n)?;
        Ok(Some(m.is_some() && m == elf(old, o)?))
    })?;
    Ok(v.into_iter().map(|x| x == Some(true)).collect())
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

/// The scan wrote no data of files both dists hold identical ([`scan`](crate::diff::scan)):
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
