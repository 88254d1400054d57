//! Step 4 of `sysup update`: per dist name, the cheapest way from what is
//! installed to the target the INDEX offers — a chain of patches (Dijkstra
//! over the INDEX's patches, by bytes then steps) or the full dist.
//!
//! Invariants: pure — a plan reads only the INDEX and the installed record
//! it is given; a chain starts at the installed tar, matched by id *and*
//! SHA-256, and ends at the target (at its dist's tar, when the mirror has
//! the dist); a host is never planned backwards unless `--to` asks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::name::{DistId, DistName};
use crate::host::state::Installed;
use crate::mirror::index::{self, id_order, Index};

/// One file of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `dist` or `patch`.
    pub kind: &'static str,
    pub file: String,
    pub size: u64,
    #[serde(serialize_with = "crate::util::digest::hex32")]
    pub sha256: [u8; 32],
    pub from: Option<DistId>,
    pub to: DistId,
}

impl Step {
    /// The step that fetches the patch `s`.
    fn patch(s: &index::PatchEntry) -> Step {
        Step {
            kind: "patch",
            file: s.file(),
            size: s.size,
            sha256: s.sha256,
            from: Some(s.name.from.clone()),
            to: s.name.to.clone(),
        }
    }

    /// The step that fetches the full dist `d`.
    fn dist(d: &index::DistEntry) -> Step {
        Step {
            kind: "dist",
            file: d.file(),
            size: d.size,
            sha256: d.sha256,
            from: None,
            to: d.id.clone(),
        }
    }
}

/// What to fetch for one dist name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: DistName,
    pub installed: Option<DistId>,
    pub target: DistId,
    /// `patches`, `dist`, `up-to-date`, or `not-on-mirror`.
    pub how: &'static str,
    pub steps: Vec<Step>,
    /// Bytes of the steps.
    pub bytes: u64,
    /// Size of the target's full dist, when the mirror has it.
    pub dist_size: Option<u64>,
    /// Bytes of the cheapest patch chain, when there is one.
    pub chain_size: Option<u64>,
}

/// Node of the chain search: an id and the SHA-256 of its uncompressed tar.
type Node = (DistId, [u8; 32]);
/// Best known (bytes, steps) to a node, and the node and patch it came by.
type Best = (u64, usize, Option<(Node, usize)>);

/// Cheapest patch chain (bytes, then steps) from `start` to a node with id
/// `target` (and tar SHA-256 `target_sha`, when known). Dijkstra over the
/// INDEX's patches of that name and arch.
fn cheapest_chain<'a>(
    index: &'a Index,
    arch: &str,
    start: &Node,
    target: &DistId,
    target_sha: Option<&[u8; 32]>,
) -> Option<Vec<&'a index::PatchEntry>> {
    let mut edges: HashMap<Node, Vec<usize>> = HashMap::new();
    for (i, p) in index.patches.iter().enumerate() {
        if p.arch == arch && p.name.from.name == target.name {
            edges
                .entry((p.name.from.clone(), p.from.sha256))
                .or_default()
                .push(i);
        }
    }
    let mut best: HashMap<Node, Best> = HashMap::new();
    let mut heap = BinaryHeap::new();
    best.insert(start.clone(), (0, 0, None));
    heap.push(Reverse((0u64, 0usize, start.clone())));
    while let Some(Reverse((cost, steps, node))) = heap.pop() {
        if best.get(&node).is_some_and(|b| (b.0, b.1) < (cost, steps)) {
            continue;
        }
        if &node.0 == target && target_sha.is_none_or(|s| s == &node.1) && steps > 0 {
            let mut chain = Vec::new();
            let mut at = node;
            while let Some((_, _, Some((prev, i)))) = best.get(&at).cloned() {
                chain.push(&index.patches[i]);
                at = prev;
            }
            chain.reverse();
            return Some(chain);
        }
        for &i in edges.get(&node).map(Vec::as_slice).unwrap_or(&[]) {
            let p = &index.patches[i];
            let next: Node = (p.name.to.clone(), p.to.sha256);
            let cand = (cost.saturating_add(p.size), steps + 1);
            if best.get(&next).is_none_or(|b| cand < (b.0, b.1)) {
                best.insert(next.clone(), (cand.0, cand.1, Some((node.clone(), i))));
                heap.push(Reverse((cand.0, cand.1, next)));
            }
        }
    }
    None
}

/// The arch a plan of `name` is for: the installed one's, else that of the
/// full dist `to` starts from.
fn arch_of(
    index: &Index,
    name: &DistName,
    installed: Option<&Installed>,
    to: Option<&DistId>,
) -> Result<String> {
    Ok(match (installed, to) {
        (Some(i), _) => i.arch.clone(),
        (None, Some(t)) => index.dist(t).map(|d| d.arch.clone()).ok_or_else(|| {
            Error::Refused(format!(
                "nothing of {name} is installed and the mirror has no full dist of {t} \
                     to start from"
            ))
        })?,
        (None, None) => {
            return Err(Error::Refused(format!(
                "nothing of {name} is installed: pass --to ID for a first install"
            )))
        }
    })
}

/// Plan the update of `name` from what is `installed` to `to` (default: the
/// newest the INDEX has for the installed arch). Pure: reads nothing else.
pub fn plan(
    index: &Index,
    name: &DistName,
    installed: Option<&Installed>,
    to: Option<&DistId>,
) -> Result<Plan> {
    let arch = arch_of(index, name, installed, to)?;
    let mut p = Plan {
        name: name.clone(),
        installed: installed.map(|i| i.id.clone()),
        target: installed.map_or_else(|| to.cloned().expect("checked above"), |i| i.id.clone()),
        how: "up-to-date",
        steps: Vec::new(),
        bytes: 0,
        dist_size: None,
        chain_size: None,
    };
    let target = match to {
        Some(t) => t.clone(),
        None => match index.newest(name, &arch) {
            Some(t) => t,
            None => {
                p.how = "not-on-mirror";
                return Ok(p);
            }
        },
    };
    if let Some(i) = installed {
        // Never go back unasked; a mirror behind this host is not news.
        let behind = to.is_none() && id_order(&target, &i.id) != std::cmp::Ordering::Greater;
        if i.id == target || behind {
            return Ok(p);
        }
    }
    p.target = target.clone();
    let dist = index.dist(&target);
    if let Some(d) = dist {
        if d.arch != arch {
            return Err(Error::Mismatch(format!(
                "{target} is built for {}, but {name} here is {arch}",
                d.arch
            )));
        }
    }
    p.dist_size = dist.map(|d| d.size);
    let chain = installed.and_then(|i| {
        cheapest_chain(
            index,
            &arch,
            &(i.id.clone(), i.tar.sha256),
            &target,
            dist.map(|d| &d.tar.sha256),
        )
    });
    p.chain_size = chain.as_ref().map(|c| c.iter().map(|s| s.size).sum());
    let chain_wins = match (&p.chain_size, dist) {
        (Some(c), Some(d)) => *c < d.size,
        (Some(_), None) => true,
        (None, _) => false,
    };
    match (chain.filter(|_| chain_wins), dist) {
        (Some(c), _) => {
            p.how = "patches";
            p.steps = c.into_iter().map(Step::patch).collect();
        }
        (_, Some(d)) => {
            p.how = "dist";
            p.steps = vec![Step::dist(d)];
        }
        (None, None) => {
            return Err(Error::Refused(format!(
                "the mirror has no way from {} to {target}: no full dist of {target} for {arch} \
                 and no chain of patches from the installed tar",
                p.installed
                    .as_ref()
                    .map_or("nothing".to_string(), |i| i.to_string()),
            )))
        }
    }
    p.bytes = p.steps.iter().map(|s| s.size).sum();
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::index::{DistEntry, PatchEntry};
    use crate::util::digest::Digests;

    fn tar(id: &str) -> Digests {
        Digests::of(id.as_bytes())
    }
    fn dist(id: &str, size: u64) -> DistEntry {
        DistEntry {
            id: id.parse().unwrap(),
            arch: "x86_64".into(),
            size,
            sha256: [0; 32],
            tar: tar(id),
        }
    }
    fn patch(from: &str, to: &str, size: u64) -> PatchEntry {
        let from_id: DistId = format!("world-{from}").parse().unwrap();
        let to_id: DistId = format!("world-{to}").parse().unwrap();
        PatchEntry {
            name: crate::format::name::PatchName::new(from_id.clone(), to_id.clone()).unwrap(),
            arch: "x86_64".into(),
            size,
            sha256: [1; 32],
            from: tar(&from_id.to_string()),
            to: tar(&to_id.to_string()),
        }
    }
    fn installed(id: &str) -> Installed {
        Installed {
            id: id.parse().unwrap(),
            arch: "x86_64".into(),
            installed_at: 0,
            tar: tar(id),
            base_size: 0,
        }
    }
    fn index(dists: Vec<DistEntry>, mut patches: Vec<PatchEntry>) -> Index {
        patches.sort_by_key(|p| p.file());
        Index {
            serial: 1,
            timestamp: 1,
            expires: None,
            dists,
            patches,
        }
    }
    fn files(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.file.as_str()).collect()
    }

    #[test]
    fn picks_the_cheapest_chain_or_the_dist() {
        let i = index(
            vec![dist("world-4-20260104", 1000)],
            vec![
                patch("1-20260101", "2-20260102", 100),
                patch("2-20260102", "3-20260103", 100),
                patch("3-20260103", "4-20260104", 100),
                patch("1-20260101", "3-20260103", 150),
                patch("2-20260102", "4-20260104", 900),
            ],
        );
        let w = DistName::World;
        let p = plan(&i, &w, Some(&installed("world-1-20260101")), None).unwrap();
        assert_eq!(p.how, "patches");
        assert_eq!(
            files(&p),
            [
                "world-1-20260101_3-20260103.patch",
                "world-3-20260103_4-20260104.patch"
            ]
        );
        assert_eq!(p.bytes, 250);
        // a chain dearer than the dist loses
        let i2 = index(vec![dist("world-4-20260104", 200)], i.patches.clone());
        let p = plan(&i2, &w, Some(&installed("world-1-20260101")), None).unwrap();
        assert_eq!(
            (p.how, files(&p)),
            ("dist", vec!["world-4-20260104.tar.gz"])
        );
        // no chain from an id the patches do not start at
        let p = plan(&i, &w, Some(&installed("world-0-20251231")), None).unwrap();
        assert_eq!(p.how, "dist");
    }

    #[test]
    fn a_chain_must_start_at_the_installed_tar() {
        let i = index(vec![], vec![patch("1-20260101", "2-20260102", 10)]);
        let mut inst = installed("world-1-20260101");
        inst.tar = tar("another build");
        let e = plan(&i, &DistName::World, Some(&inst), None).unwrap_err();
        assert!(
            e.to_string().contains("no way from world-1-20260101"),
            "{e}"
        );
    }

    #[test]
    fn up_to_date_and_never_backwards_unasked() {
        let i = index(vec![dist("world-2-20260102", 10)], vec![]);
        let w = DistName::World;
        let p = plan(&i, &w, Some(&installed("world-2-20260102")), None).unwrap();
        assert_eq!(p.how, "up-to-date");
        let p = plan(&i, &w, Some(&installed("world-3-20260103")), None).unwrap();
        assert_eq!(p.how, "up-to-date");
        let to: DistId = "world-2-20260102".parse().unwrap();
        let p = plan(&i, &w, Some(&installed("world-3-20260103")), Some(&to)).unwrap();
        assert_eq!(p.how, "dist");
        let e = plan(&i, &w, None, None).unwrap_err().to_string();
        assert!(e.contains("--to"), "{e}");
        let p = plan(&i, &w, None, Some(&to)).unwrap();
        assert_eq!(p.how, "dist");
    }
}
