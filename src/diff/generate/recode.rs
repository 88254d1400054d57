//! The differ's side of re-encoded members ([`recode`]): which diffed pairs
//! are xz or zstd files or zip archives ([`rezip`]) this build can rebuild
//! (planned before any task runs), and, once their deltas are made, which
//! encoding each keeps.
//!
//! A candidate gets two diff tasks: its uncompressed bytes (the re-encoded
//! encoding) and its compressed bytes (plain bsdiff). The writer keeps the
//! one whose bytes cost less once compressed, as update_engine picks per
//! file, so a member whose content changed wholesale (a new firmware
//! blob) does not pay for being rebuilt on apply.
//!
//! Invariants: a recipe is planned only when both members are the same
//! codec, within [`recode::MAX_PACKED`], the old one decompresses within
//! [`recode::MAX_RAW`] (as the applier will), and the new one is rebuilt
//! byte for byte ([`recode::recipe`]; a zip: the entries its table lists,
//! [`recode::zip_recipe`]); a candidate's pair is never cut into windows,
//! so each of its two tasks is one whole delta.

use super::plan::per_diffed_pair;
use super::tasks::windowed;
use crate::diff::matcher::Delta;
use crate::diff::pairing::Pair;
use crate::diff::scan::{MemberInfo, Scanned};
use crate::error::Result;
use crate::format::patch::recode::{self, Recipe};
use crate::format::patch::rezip::Table;

/// A candidate's recipe, with a zip's table.
pub(super) type Candidate = (Recipe, Option<Table>);

/// For each new member: the recipe to diff it through its uncompressed
/// bytes — both sides xz, both zstd or (with `zip`) both zip archives,
/// small enough to be diffed whole, the old one decompressing, the new one
/// rebuilt exactly. Checked in parallel.
pub(super) fn recipes(
    old: &Scanned,
    new: &Scanned,
    pairs: &[Pair],
    window: u64,
    zip: bool,
) -> Result<Vec<Option<Candidate>>> {
    let codec = |s: &Scanned, m: &MemberInfo| -> Result<Option<u64>> {
        if m.size < recode::SNIFF_LEN as u64 || m.size > recode::MAX_PACKED {
            return Ok(None);
        }
        Ok(recode::sniff(&s.data(m, 0, recode::SNIFF_LEN)?))
    };
    per_diffed_pair(old, new, pairs, |o, n| {
        if windowed(o.size, n.size, window) {
            return Ok(None);
        }
        let c = codec(new, n)?;
        if c.is_none() || codec(old, o)? != c {
            return Ok(None);
        }
        let bytes = new.data(n, 0, n.size as usize)?;
        let found = match recode::zip_recipe(&bytes) {
            Some((r, t, _)) if zip => Some((r, Some(t))),
            Some(_) => None,
            None => recode::recipe(&bytes).map(|(r, _)| (r, None)),
        };
        let Some((r, t)) = found else {
            return Ok(None);
        };
        let old_ok = recode::raw_as(&r, &old.data(o, 0, o.size as usize)?).is_some();
        Ok(old_ok.then_some((r, t)))
    })
}

/// Of a candidate's two deltas (uncompressed, then compressed bytes), the
/// one to write, and whether it is the uncompressed one; `table` is what
/// the uncompressed one costs besides (a zip's table).
pub(super) fn choose(mut deltas: Vec<Delta>, table: Option<&Table>) -> (Vec<Delta>, bool) {
    let (Some(plain), Some(raw)) = (deltas.pop(), deltas.pop()) else {
        unreachable!("a re-encode candidate has two tasks")
    };
    // About a byte per table field once compressed (small numbers, alike).
    let table = table.map_or(0, |t| t.fields().len() as u64);
    if cost(&raw) + table <= cost(&plain) {
        (vec![raw], true)
    } else {
        (vec![plain], false)
    }
}

/// About what a delta adds to the patch: its diff and extra bytes as a
/// fast zstd compresses them (the sections' zstd -17 does better on both
/// alike), and a few bytes per control.
fn cost(d: &Delta) -> u64 {
    let packed = |b: &[u8]| zstd::bulk::compress(b, 1).map_or(b.len() as u64, |c| c.len() as u64);
    packed(&d.diff) + packed(&d.extra) + 4 * d.ctrls.len() as u64
}
