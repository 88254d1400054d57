//! Config files ("conffiles") across an upgrade: the three-way merge that
//! decides what an installed config file becomes (docs/config-merge.md),
//! the ancestors it reads from the kept base ([`ancestors`]), the files
//! awaiting the admin ([`pending`]) and their resolution ([`resolve`]).
//!
//! *ours* is the installed file, *base* the old dist's copy (read from the
//! kept base, never the installed file), *theirs* the new dist's. Staging
//! decides from hashes first ([`Fate::of`]); only when both sides changed
//! does it need the base's content, and only then is anything merged.
//!
//! Invariants: [`merge3`] merges only text — at most [`MERGE_CAP`] bytes
//! a side, no NUL byte, valid UTF-8 — and is a pure function (a line merge
//! by the `diffy` crate); anything else is [`Merged::Unmergeable`], which
//! keeps ours. Nothing here writes to the root.

pub mod ancestors;
pub mod pending;
pub mod resolve;

/// The suffix of the new dist's version written beside a kept config file.
pub const NEW_SUFFIX: &[u8] = b".sysupnew";
/// The suffix of the conflicted merge written beside a kept config file.
pub const MERGE_SUFFIX: &[u8] = b".sysupmerge";
/// The largest side (base, ours or theirs) a merge is attempted for.
pub const MERGE_CAP: u64 = 1 << 20;

/// What staging does with an installed config file, decided from hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Ours is what a dist shipped (the old or the new version), or there
    /// is nothing installed: install theirs like any other file.
    Ship,
    /// The dist did not change it (base = theirs) and the admin did: the
    /// installed content stays, nothing is reported.
    Leave,
    /// Both changed: merge (when merging is on and the ancestor is known).
    Merge,
    /// Both changed, no merge possible or wanted: keep ours, theirs goes
    /// to `<path>.sysupnew`.
    Keep,
}

impl Fate {
    /// The fate of a config file whose installed content hashes to `ours`,
    /// shipped by the old dist as `base` (None: the old dist did not ship
    /// it as a file) and by the new one as `theirs`. `merge`: whether
    /// merging is on (`[apply] config-merge`); off, a both-changed file or
    /// one the dist did not change is kept with a `.sysupnew`, as sysup
    /// did before merging.
    pub fn of(ours: [u8; 32], base: Option<[u8; 32]>, theirs: [u8; 32], merge: bool) -> Fate {
        if ours == theirs || base == Some(ours) {
            Fate::Ship
        } else if !merge {
            Fate::Keep
        } else if base == Some(theirs) {
            Fate::Leave
        } else if base.is_some() {
            Fate::Merge
        } else {
            Fate::Keep
        }
    }
}

/// The result of a three-way merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Merged {
    /// Both sides' changes, without conflict.
    Clean(Vec<u8>),
    /// The merge with conflict markers (`<<<<<<< ours` … `>>>>>>> theirs`).
    Conflict(Vec<u8>),
    /// Not merged: why (binary, too big).
    Unmergeable(&'static str),
}

/// Why `data` is not text a line merge may touch, if it is not.
fn not_text(data: &[u8]) -> Option<&'static str> {
    if data.len() as u64 > MERGE_CAP {
        Some("larger than the merge cap")
    } else if data.contains(&0) {
        Some("binary (holds a NUL byte)")
    } else if std::str::from_utf8(data).is_err() {
        Some("binary (not UTF-8)")
    } else {
        None
    }
}

/// Merge `ours` and `theirs`, both descended from `base`, line by line.
pub fn merge3(base: &[u8], ours: &[u8], theirs: &[u8]) -> Merged {
    if let Some(why) = [base, ours, theirs].into_iter().find_map(not_text) {
        return Merged::Unmergeable(why);
    }
    let text = |b| std::str::from_utf8(b).expect("checked by not_text");
    match diffy::merge(text(base), text(ours), text(theirs)) {
        Ok(m) => Merged::Clean(m.into_bytes()),
        Err(m) => Merged::Conflict(m.into_bytes()),
    }
}

/// Whether `data` still holds a conflict marker line of [`merge3`]'s.
pub fn has_conflict_markers(data: &[u8]) -> bool {
    data.split(|&b| b == b'\n')
        .any(|l| l.starts_with(b"<<<<<<< ") || l.starts_with(b">>>>>>> ") || l == b"=======")
}

#[cfg(test)]
mod tests;
