//! Coarse alignment of a big old/new member pair, to place diff windows.
//!
//! A big member is diffed in windows, each against a bounded stretch of the
//! old member. Which stretch? Content-defined anchors answer it: a gear
//! rolling hash marks positions (about one per [`ANCHOR_EVERY`] bytes) that
//! depend only on the 64 bytes before them, so the same content yields the
//! same anchors wherever it moved. Anchors unique in the old member are
//! looked up from the new member's anchors, giving (new offset, old offset)
//! pairs; a window is centred on the median displacement of the pairs inside
//! it (proportional placement when it has none).
//!
//! Invariant: only placement depends on this; a bad estimate costs patch
//! size, never correctness. Memory is one entry per old anchor.

use std::collections::HashMap;

/// Average distance between anchors.
pub const ANCHOR_EVERY: u64 = 4096;
const MASK: u64 = (ANCHOR_EVERY - 1) << 52;

const fn gear_table() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut x: u64 = 0x243F_6A88_85A3_08D3;
    let mut i = 0;
    while i < 256 {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
}

static GEAR: [u64; 256] = gear_table();

/// Streaming anchor finder.
#[derive(Default)]
pub struct Anchors {
    h: u64,
    pos: u64,
    /// (hash, offset just past the anchor)
    pub found: Vec<(u64, u64)>,
}

impl Anchors {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.h = (self.h << 1).wrapping_add(GEAR[b as usize]);
            self.pos += 1;
            if self.h & MASK == 0 && self.pos >= 64 {
                self.found.push((self.h, self.pos));
            }
        }
    }
}

/// (new offset, old offset) of anchors found once in each side, sorted by new offset.
pub fn matches(old: &[(u64, u64)], new: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut by_hash: HashMap<u64, Option<u64>> = HashMap::with_capacity(old.len());
    for &(h, off) in old {
        by_hash
            .entry(h)
            .and_modify(|v| *v = None)
            .or_insert(Some(off));
    }
    let mut seen_new: HashMap<u64, u32> = HashMap::with_capacity(new.len());
    for &(h, _) in new {
        *seen_new.entry(h).or_default() += 1;
    }
    new.iter()
        .filter(|(h, _)| seen_new[h] == 1)
        .filter_map(|&(h, n)| by_hash.get(&h).copied().flatten().map(|o| (n, o)))
        .collect()
}

/// Where to centre the old window for new bytes `start..start + len`: the
/// median displacement of the anchor pairs inside, else proportional.
pub fn old_centre(pairs: &[(u64, u64)], start: u64, len: u64, old_size: u64, new_size: u64) -> u64 {
    let mid = start + len / 2;
    let lo = pairs.partition_point(|&(n, _)| n < start);
    let hi = pairs.partition_point(|&(n, _)| n < start + len);
    if hi > lo {
        let mut d: Vec<i64> = pairs[lo..hi]
            .iter()
            .map(|&(n, o)| o as i64 - n as i64)
            .collect();
        let k = d.len() / 2;
        let (_, median, _) = d.select_nth_unstable(k);
        return (mid as i64 + *median).clamp(0, old_size as i64) as u64;
    }
    (mid as u128 * old_size as u128 / new_size.max(1) as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn anchors(d: &[u8]) -> Vec<(u64, u64)> {
        let mut a = Anchors::default();
        for c in d.chunks(1000) {
            a.update(c);
        }
        a.found
    }

    #[test]
    fn a_moved_slice_is_found_where_it_moved() {
        let old = bytes(1, 2_000_000);
        // New = 300 KB of other bytes, then old[1_000_000..1_500_000].
        let mut new = bytes(2, 300_000);
        new.extend_from_slice(&old[1_000_000..1_500_000]);
        let pairs = matches(&anchors(&old), &anchors(&new));
        assert!(pairs.len() > 50, "{}", pairs.len());
        let c = old_centre(
            &pairs,
            400_000,
            64 * 1024,
            old.len() as u64,
            new.len() as u64,
        );
        let expect = 400_000 + 32 * 1024 + 700_000;
        assert!(c.abs_diff(expect) < 100, "centre {c}, expected {expect}");
        // No anchors in the new-only prefix: proportional.
        let c = old_centre(&pairs, 0, 1000, old.len() as u64, new.len() as u64);
        assert_eq!(c, 500 * 2_000_000 / 800_000);
    }
}
