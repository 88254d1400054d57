//! Pairing: which old member each new member is encoded against.
//!
//! In order of preference (docs/design.md §3, "member-aware"):
//! 1. the old member with the same path;
//! 2. an old member whose *version-stripped* path is the same
//!    (`libfoo.so.1.2` → `libfoo.so.1.3`, `libx-6bb31eeb.so` →
//!    `libx-56d6093b.so`, `python3.11/…` → `python3.12/…`), preferring the
//!    same directory, the same type, then the closest size;
//! 3. for the data only: an old member with identical content, wherever it is.
//!
//! The result per new member is a header reference (its header blocks are
//! diffed against that member's when the lengths agree) and a data plan:
//! `Copy` (identical, confirmed byte for byte), `Diff` (bsdiff against the
//! paired member), `Literal` or `Empty`.
//!
//! Invariant: a `Copy` survives [`confirm`] only if the bytes are identical
//! (checked byte for byte, in parallel); sizes always agree for a `Copy`.

use std::collections::HashMap;

use crate::diff::scan::MemberInfo;
use crate::diff::version_key::version_key;
use crate::error::Result;

/// How a new member's data will be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPlan {
    /// No data bytes.
    Empty,
    /// Identical to this old member's data.
    Copy(u32),
    /// bsdiff against this old member's data.
    Diff(u32),
    /// No usable old member.
    Literal,
}

/// The pairing of one new member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Old member whose header blocks this one's are encoded against.
    pub header: Option<u32>,
    pub data: DataPlan,
    /// The old member paired by name (rules 1 and 2), if any.
    pub by_name: Option<u32>,
}

/// A bsdiff between sizes this far apart is not worth it.
const MAX_SIZE_RATIO: u64 = 8;

fn dir_of(path: &[u8]) -> &[u8] {
    let p = path.strip_suffix(b"/").unwrap_or(path);
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => &p[..i],
        None => b"",
    }
}

/// Pair every new member. A `Copy` is proposed from equal sizes and hashes;
/// [`confirm`] must check it before anything relies on it.
pub fn pair(old: &[MemberInfo], new: &[MemberInfo]) -> Vec<Pair> {
    let mut by_path: HashMap<&[u8], u32> = HashMap::with_capacity(old.len());
    let mut by_key: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
    let mut by_content: HashMap<(u64, u128), u32> = HashMap::new();
    for (j, m) in old.iter().enumerate() {
        let j = j as u32;
        by_path.entry(&m.path).or_insert(j);
        by_key.entry(version_key(&m.path)).or_default().push(j);
        if m.size > 0 {
            by_content.entry((m.size, m.hash)).or_insert(j);
        }
    }
    let mut out = Vec::with_capacity(new.len());
    for n in new {
        let by_name = by_path.get(&n.path[..]).copied().or_else(|| {
            let cands = by_key.get(&version_key(&n.path))?;
            let dir = dir_of(&n.path);
            cands.iter().copied().min_by_key(|&j| {
                let o = &old[j as usize];
                (
                    dir_of(&o.path) != dir,
                    o.typeflag != n.typeflag,
                    o.size.abs_diff(n.size),
                )
            })
        });
        let mut header = by_name;
        let identical = |j: u32| {
            let o = &old[j as usize];
            o.size == n.size && o.hash == n.hash
        };
        let data = if n.size == 0 {
            DataPlan::Empty
        } else if let Some(j) = by_name.filter(|&j| identical(j)) {
            DataPlan::Copy(j)
        } else if let Some(&j) = by_content.get(&(n.size, n.hash)) {
            header = header.or(Some(j));
            DataPlan::Copy(j)
        } else {
            diff_or_literal(old, n, by_name)
        };
        out.push(Pair {
            header,
            data,
            by_name,
        });
    }
    out
}

/// Check every proposed `Copy` with `same(old, new)` (byte for byte), in
/// parallel; one that is not identical after all (a hash collision) falls
/// back to what its name pairing allows.
pub fn confirm(
    pairs: &mut [Pair],
    old: &[MemberInfo],
    new: &[MemberInfo],
    same: impl Fn(u32, u32) -> Result<bool> + Sync,
) -> Result<()> {
    use rayon::prelude::*;
    let verdicts: Vec<Result<bool>> = pairs
        .par_iter()
        .enumerate()
        .map(|(i, p)| match p.data {
            DataPlan::Copy(j) => same(j, i as u32),
            _ => Ok(true),
        })
        .collect();
    for ((i, p), ok) in pairs.iter_mut().enumerate().zip(verdicts) {
        if !ok? {
            p.data = diff_or_literal(old, &new[i], p.by_name);
            p.header = p.by_name;
        }
    }
    Ok(())
}

fn diff_or_literal(old: &[MemberInfo], n: &MemberInfo, by_name: Option<u32>) -> DataPlan {
    match by_name {
        Some(j) => {
            let o = old[j as usize].size;
            let (small, big) = (o.min(n.size), o.max(n.size));
            if small > 0 && big / small <= MAX_SIZE_RATIO {
                DataPlan::Diff(j)
            } else {
                DataPlan::Literal
            }
        }
        None => DataPlan::Literal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str, size: u64, hash: u128) -> MemberInfo {
        MemberInfo {
            offset: 0,
            header_len: 512,
            size,
            pad_zero: true,
            path: path.as_bytes().to_vec(),
            typeflag: b'0',
            hash,
            spooled: true,
            sha256: None,
        }
    }

    #[test]
    fn pairs_by_path_version_and_content() {
        let old = vec![
            m("a/libfoo.so.1.2", 1000, 1),
            m("a/same", 50, 2),
            m("b/moved", 70, 3),
            m("c/tiny", 1, 4),
            m("d/", 0, 0),
        ];
        let new = vec![
            m("a/libfoo.so.1.3", 1100, 10),
            m("a/same", 50, 2),
            m("z/moved-here", 70, 3),
            m("c/tiny", 100, 5),
            m("d/", 0, 0),
            m("e/new", 10, 6),
        ];
        let mut pairs = pair(&old, &new);
        confirm(&mut pairs, &old, &new, |j, i| {
            Ok(old[j as usize].hash == new[i as usize].hash
                && old[j as usize].size == new[i as usize].size)
        })
        .unwrap();
        let got: Vec<(Option<u32>, DataPlan)> = pairs.iter().map(|p| (p.header, p.data)).collect();
        assert_eq!(
            got,
            vec![
                (Some(0), DataPlan::Diff(0)),
                (Some(1), DataPlan::Copy(1)),
                (Some(2), DataPlan::Copy(2)),
                (Some(3), DataPlan::Literal),
                (Some(4), DataPlan::Empty),
                (None, DataPlan::Literal),
            ]
        );
    }

    #[test]
    fn a_hash_collision_is_not_a_copy() {
        let old = vec![m("x", 10, 7)];
        let new = vec![m("y", 10, 7)];
        let mut pairs = pair(&old, &new);
        assert_eq!(pairs[0].data, DataPlan::Copy(0));
        confirm(&mut pairs, &old, &new, |_, _| Ok(false)).unwrap();
        assert_eq!(pairs[0].data, DataPlan::Literal);
        assert_eq!(pairs[0].header, None);
        // A collision with the same-named member falls back to a diff.
        let new = vec![m("x", 10, 7)];
        let mut pairs = pair(&old, &new);
        confirm(&mut pairs, &old, &new, |_, _| Ok(false)).unwrap();
        assert_eq!(
            (pairs[0].header, pairs[0].data),
            (Some(0), DataPlan::Diff(0))
        );
    }
}
