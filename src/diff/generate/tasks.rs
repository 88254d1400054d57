//! Diff tasks: what a changed pair's data is cut into, and how one task is
//! diffed on a worker thread.
//!
//! A pair small enough is one task; a big one is cut into windows of
//! [`DiffOptions::window`](super::DiffOptions::window) new bytes, each
//! against 1.5× as many old bytes around where the [`align`] anchors say
//! its content came from, so a suffix array never covers more than 1.5
//! windows. Big pairs that are the same size and nearly the same bytes at
//! the same offsets are [`Big::Aligned`]: one control, no task.
//!
//! Invariants: the windows of a member cover its new bytes exactly once, in
//! order, and every old window lies inside the old member; a task reads
//! only its own bytes (`pread`), so tasks run in any order.

use crate::diff::align;
use crate::diff::matcher::{self, Delta, Index};
use crate::diff::scan::{MemberInfo, Scanned};
use crate::error::{Error, Result};
use crate::format::patch::rezip::{self, Table};
use crate::format::patch::{recode, regz};

/// One diff task: a window of new member `member` against a window of old member `old`.
pub(super) struct Task {
    pub(super) member: u32,
    pub(super) old: u32,
    /// Diff the members' uncompressed bytes ([`regz`], [`recode`]); whole
    /// members only.
    pub(super) regz: bool,
    pub(super) old_start: u64,
    pub(super) old_len: u64,
    pub(super) new_start: u64,
    pub(super) new_len: u64,
}

impl Task {
    pub(super) fn cost(&self) -> u64 {
        self.old_len + Index::memory(self.old_len as usize) as u64 + 2 * self.new_len + (1 << 20)
    }
}

/// Whether an `o`-byte old and `n`-byte new member are diffed in windows.
pub(super) fn windowed(o: u64, n: u64, window: u64) -> bool {
    let old_window = window.max(4096) / 2 * 3;
    o > old_window || n > old_window
}

/// Cut the diff of an `o`-byte old member and `n`-byte new member into
/// windows of `window` new bytes, each against the old bytes around where
/// the anchor `pairs` ([`align`]) say its content came from.
pub(super) fn windows(
    member: u32,
    old: u32,
    o: u64,
    n: u64,
    window: u64,
    pairs: &[(u64, u64)],
) -> Vec<Task> {
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

/// Run one diff task: read its windows of both members and diff them —
/// through the uncompressed bytes for a re-gzipped or re-encoded member
/// (a zip's new expanded form by its `zip` table), as one aligned control
/// for nearly identical whole members, else by suffix array.
pub(super) fn run(old: &Scanned, new: &Scanned, t: &Task, zip: Option<&Table>) -> Result<Delta> {
    let o = &old.members[t.old as usize];
    let n = &new.members[t.member as usize];
    let old_bytes = old.data(o, t.old_start, t.old_len as usize)?;
    let new_bytes = new.data(n, t.new_start, t.new_len as usize)?;
    if t.regz {
        // The plan checked both (and that they are rebuilt exactly).
        let gone = || Error::Tar {
            path: std::env::temp_dir(),
            reason: "a compressed member changed between scan and diff".into(),
        };
        let raw_of = |b: &[u8]| regz::raw_of(b).or_else(|| recode::raw_of(b));
        let old_raw = raw_of(&old_bytes).ok_or_else(gone)?;
        let new_raw = match zip {
            Some(table) => rezip::expand_new(&new_bytes, table),
            None => raw_of(&new_bytes),
        };
        let new_raw = new_raw.ok_or_else(gone)?;
        return Ok(matcher::diff(&Index::new(&old_raw), &new_raw));
    }
    if t.old_start == 0 && t.new_start == 0 && nearly_aligned(&old_bytes, &new_bytes) {
        return Ok(Delta::aligned(&old_bytes, &new_bytes));
    }
    let index = Index::new(&old_bytes);
    let mut d = matcher::diff(&index, &new_bytes);
    d.rebase(t.old_start);
    Ok(d)
}

/// How a pair of big members (diffed in windows) is diffed.
pub(super) enum Big {
    /// Same size and nearly the same bytes at the same offsets: one control.
    Aligned,
    /// In windows placed by these anchor pairs (old offset, new offset).
    Anchored(Vec<(u64, u64)>),
}

/// Whether two members of the same size differ in at most one byte in 1024
/// at the same offsets (a rebuild that changed an id or a path): then one
/// control adding the whole old member is what bsdiff would find, and the
/// suffix array is not worth building. (Read in chunks: for big members.)
pub(super) fn nearly_aligned_members(
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
pub(super) fn nearly_aligned(old: &[u8], new: &[u8]) -> bool {
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
pub(super) fn anchors_of(src: &Scanned, m: &MemberInfo) -> Result<Vec<(u64, u64)>> {
    let mut a = align::Anchors::default();
    src.each_chunk(m, |c| a.update(c))?;
    Ok(a.found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::generate::WINDOW;

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
