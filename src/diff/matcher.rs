//! The bsdiff matcher: a suffix array over the old bytes (libsais, 4 bytes
//! per old byte) and Percival's scan that turns the new bytes into controls
//! — "add `add` bytes of (new − old) at `old_pos`, then `extra` literal
//! bytes" — plus the diff and extra byte streams.
//!
//! The scan follows the qbsdiff variant of bsdiff 4: exact matches of at most
//! [`SMALL_MATCH`] bytes are skipped, a match is only taken when it beats the
//! current alignment by more than [`MISMATCH`] bytes, and long runs that keep
//! the current alignment are skimmed with a binary search instead of byte by
//! byte (the classic quadratic case, e.g. long zero runs). Match lengths are
//! capped at [`MAX_MATCH`] so one search costs O(log n + cap).
//!
//! Invariants: the output reproduces `new` exactly from `old` (checked by
//! [`Delta::apply`] in tests and, for every window, in debug builds); memory is
//! `5 × old + 2 × new` bytes plus the controls, never more, while an index
//! lives; once dropped, its thread keeps the suffix array's memory (at most
//! [`SPARE_MAX`] entries) for the next index it builds.

use std::cell::RefCell;

use crate::format::patch::ctrl::Ctrl;

/// Exact matches this short are not worth a control.
pub const SMALL_MATCH: usize = 12;
/// A new match must beat the current alignment by this many bytes.
const MISMATCH: usize = 8;
/// Matches longer than this are skimmed with a binary search.
const LONG_SUFFIX: usize = 256;
/// Longest match one search reports.
const MAX_MATCH: usize = 1 << 20;

/// Suffix arrays of up to this many entries (64 MiB: a window's) are kept
/// for the next index built on the same thread.
const SPARE_MAX: usize = 16 << 20;

thread_local! {
    /// The memory of this thread's last suffix array. A fresh one costs a
    /// page fault and a zeroed page per 4 KiB, which libsais then
    /// overwrites: on the bench pair (2,343 tasks, arrays up to 60 MiB) that
    /// was 4-5% of a diff's CPU in the kernel's `clear_page` (by `perf`).
    static SPARE_SA: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// A suffix array over `old`, with the ranges of every 2-byte prefix.
pub struct Index<'a> {
    old: &'a [u8],
    sa: Vec<i32>,
    /// `start[k]..start[k] + count[k]` are the suffixes starting with the
    /// two bytes `k >> 8, k & 0xff`.
    start: Vec<u32>,
    count: Vec<u32>,
}

impl<'a> Index<'a> {
    /// Sort the suffixes of `old` (which must be shorter than 2 GiB).
    pub fn new(old: &'a [u8]) -> Index<'a> {
        assert!(old.len() < i32::MAX as usize, "old window too large");
        // Not zeroed: libsais writes every entry (a memset of it was 3% of a
        // diff's CPU).
        let mut sa: Vec<i32> = SPARE_SA.with_borrow_mut(std::mem::take);
        sa.clear();
        if sa.capacity() < old.len() {
            sa = Vec::with_capacity(old.len());
        }
        if !old.is_empty() {
            // SAFETY: `old` holds `old.len()` readable bytes and `sa` room for
            // as many i32s (fs = 0: no extra space); `freq` may be null.
            let r = unsafe {
                libsais_sys::libsais::libsais(
                    old.as_ptr(),
                    sa.as_mut_ptr(),
                    old.len() as i32,
                    0,
                    std::ptr::null_mut(),
                )
            };
            // libsais fails only on bad arguments or when it cannot allocate
            // its buckets.
            assert_eq!(r, 0, "libsais failed ({r}) on {} bytes", old.len());
            // SAFETY: on success libsais has written SA[0..n].
            unsafe { sa.set_len(old.len()) };
        }
        let mut count = vec![0u32; 1 << 16];
        for w in old.windows(2) {
            count[usize::from(w[0]) << 8 | usize::from(w[1])] += 1;
        }
        // The 1-byte suffix (the last byte) sorts just before every suffix
        // that starts with the same byte and a second one.
        let lone = old.last().map(|&b| usize::from(b) << 8);
        let mut start = vec![0u32; 1 << 16];
        let mut at = 0u32;
        for k in 0..1 << 16 {
            if lone == Some(k) {
                at += 1;
            }
            start[k] = at;
            at += count[k];
        }
        Index {
            old,
            sa,
            start,
            count,
        }
    }

    /// Bytes of memory this index uses for `old_len` old bytes.
    pub fn memory(old_len: usize) -> usize {
        old_len * 4 + (1 << 16) * 8
    }

    /// The longest prefix of `pat` found in `old`: (old position, length).
    /// Lengths below 2 are reported as 0.
    pub fn longest_match(&self, pat: &[u8]) -> (usize, usize) {
        if pat.len() < 2 {
            return (0, 0);
        }
        let pat = &pat[..pat.len().min(MAX_MATCH)];
        let key = usize::from(pat[0]) << 8 | usize::from(pat[1]);
        let n = self.count[key] as usize;
        if n == 0 {
            return (0, 0);
        }
        let mut lo = self.start[key] as usize;
        let mut hi = lo + n - 1;
        let suffix = |x: usize| &self.old[self.sa[x] as usize..];
        let mut lo_lcp = lcp_from(suffix(lo), pat, 2);
        let mut hi_lcp = lcp_from(suffix(hi), pat, 2);
        // Invariant: every suffix in lo..=hi shares min(lo_lcp, hi_lcp) bytes with pat.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            // The next step looks at one of these two entries: fetch both
            // while this one's bytes are compared (the search is bound by
            // cache misses, two per step: the entry, then its old bytes).
            prefetch(&self.sa, lo + (mid - lo) / 2);
            prefetch(&self.sa, mid + (hi - mid) / 2);
            let s = suffix(mid);
            let c = lcp_from(s, pat, lo_lcp.min(hi_lcp));
            if c == pat.len() {
                return (self.sa[mid] as usize, c);
            }
            // s < pat when s ran out first or its next byte is smaller.
            if c == s.len() || s[c] < pat[c] {
                lo = mid;
                lo_lcp = c;
            } else {
                hi = mid;
                hi_lcp = c;
            }
        }
        if lo_lcp >= hi_lcp {
            (self.sa[lo] as usize, lo_lcp)
        } else {
            (self.sa[hi] as usize, hi_lcp)
        }
    }
}

impl Drop for Index<'_> {
    fn drop(&mut self) {
        let sa = std::mem::take(&mut self.sa);
        if sa.capacity() <= SPARE_MAX {
            SPARE_SA.with_borrow_mut(|spare| {
                if sa.capacity() > spare.capacity() {
                    *spare = sa;
                }
            });
        }
    }
}

/// Ask for `v[i]` to be brought into the cache: a hint, and a no-op on other
/// architectures than x86-64. (It took 11% off the matcher's time on the
/// bench pair's biggest members, median of 5 alternated runs.)
#[inline(always)]
fn prefetch(v: &[i32], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = v.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing and cannot fault; the address is
        // that of a live element.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const i32).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (v, i);
}

/// Length of the common prefix of `a` and `b`, knowing the first `from` bytes agree.
fn lcp_from(a: &[u8], b: &[u8], from: usize) -> usize {
    let n = a.len().min(b.len());
    let mut i = from.min(n);
    // Compare 8 bytes at a time.
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap());
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Controls and byte streams that rebuild `new` from `old`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub ctrls: Vec<Ctrl>,
    /// new − old, byte-wise, for every added byte in control order.
    pub diff: Vec<u8>,
    /// Literal bytes in control order.
    pub extra: Vec<u8>,
}

impl Delta {
    /// Bytes of memory held by the result (what its vectors reserved).
    pub fn memory(&self) -> usize {
        self.ctrls.capacity() * std::mem::size_of::<Ctrl>()
            + self.diff.capacity()
            + self.extra.capacity()
    }

    /// Rebuild the new bytes (tests and debug checks).
    pub fn apply(&self, old: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut d, mut e) = (0, 0);
        for c in &self.ctrls {
            let p = c.old_pos as usize;
            for k in 0..c.add as usize {
                out.push(old[p + k].wrapping_add(self.diff[d + k]));
            }
            d += c.add as usize;
            out.extend_from_slice(&self.extra[e..e + c.extra as usize]);
            e += c.extra as usize;
        }
        out
    }

    /// One control adding all of `old` to make `new` (same length): what
    /// bsdiff finds for a rebuild that changed bytes but moved none.
    pub fn aligned(old: &[u8], new: &[u8]) -> Delta {
        debug_assert_eq!(old.len(), new.len());
        Delta {
            ctrls: vec![Ctrl {
                old_pos: 0,
                add: new.len() as u64,
                extra: 0,
            }],
            diff: new
                .iter()
                .zip(old)
                .map(|(x, y)| x.wrapping_sub(*y))
                .collect(),
            extra: Vec::new(),
        }
    }

    /// Shift every control's old position by `by` (a window's start).
    pub fn rebase(&mut self, by: u64) {
        for c in &mut self.ctrls {
            c.old_pos += by;
        }
    }
}

/// Diff `new` against the old bytes of `index`.
pub fn diff(index: &Index<'_>, new: &[u8]) -> Delta {
    let mut scan = Scan {
        s: index.old,
        t: new,
        index,
        i0: 0,
        j0: 0,
        n0: 0,
        b0: 0,
    };
    let mut out = Delta {
        ctrls: Vec::new(),
        diff: Vec::with_capacity(new.len() / 2),
        extra: Vec::new(),
    };
    while let Some((i, j, n)) = scan.next_match() {
        let (a0, b) = scan.shrink_gap(i, j);
        let (i0, j0, n0, b0) = (scan.i0, scan.j0, scan.n0, scan.b0);
        let add = b0 + n0 + a0;
        let (os, ns) = (i0 - b0, j0 - b0);
        out.diff.extend(
            new[ns..ns + add]
                .iter()
                .zip(&index.old[os..os + add])
                .map(|(x, y)| x.wrapping_sub(*y)),
        );
        let extra_start = j0 + n0 + a0;
        let extra_end = j - b;
        out.extra.extend_from_slice(&new[extra_start..extra_end]);
        if add > 0 || extra_end > extra_start {
            out.ctrls.push(Ctrl {
                old_pos: os as u64,
                add: add as u64,
                extra: (extra_end - extra_start) as u64,
            });
        }
        scan.i0 = i;
        scan.j0 = j;
        scan.n0 = n;
        scan.b0 = b;
    }
    debug_assert_eq!(out.apply(index.old), new);
    out
}

/// The scan state: the previous exact match `s[i0..i0+n0] == t[j0..j0+n0]`,
/// extended backwards by `b0` similar bytes.
struct Scan<'a, 'i> {
    s: &'a [u8],
    t: &'a [u8],
    index: &'i Index<'a>,
    i0: usize,
    j0: usize,
    n0: usize,
    b0: usize,
}

impl Scan<'_, '_> {
    /// Whether `t[k]` equals the old byte under the previous match's alignment.
    fn aligned(&self, k: usize) -> bool {
        let i = self.i0 + (k - self.j0);
        i < self.s.len() && self.s[i] == self.t[k]
    }

    /// The next exact match (old pos, new pos, len) worth a control, or the
    /// end of the new bytes as a zero-length match.
    fn next_match(&self) -> Option<(usize, usize, usize)> {
        if self.j0 == self.t.len() && self.b0 == 0 {
            return None;
        }
        let t = self.t;
        let mut j = self.j0 + self.n0;
        // `m` counts bytes of t[j..k] that agree with the current alignment.
        let mut k = j;
        let mut m = 0usize;
        let limit = t.len().saturating_sub(SMALL_MATCH);
        while j < limit {
            let (i, n) = self.index.longest_match(&t[j..]);
            while k < j + n {
                m += usize::from(self.aligned(k));
                k += 1;
            }
            let next = if n == 0 {
                j + 1
            } else if m == n || n <= SMALL_MATCH {
                // Nothing new (the alignment already covers it) or too short.
                j + n
            } else if n <= m + MISMATCH {
                // Barely better than the alignment: move on, skimming long
                // stretches where every match ends at the same place.
                if n <= LONG_SUFFIX {
                    j + 1
                } else {
                    let (mut x, mut y) = (0, n);
                    while x < y {
                        let z = x + (y - x) / 2;
                        let (iz, nz) = self.index.longest_match(&t[j + z..]);
                        if i + n == iz + nz && n == z + nz {
                            x = z + 1;
                        } else {
                            y = z;
                        }
                    }
                    j + x.max(1)
                }
            } else {
                return Some((i, j, n));
            };
            while j < next {
                if j < k && self.aligned(j) {
                    m -= 1;
                }
                j += 1;
            }
            if k < j {
                k = j;
            }
        }
        Some((self.s.len(), t.len(), 0))
    }

    /// Split the gap between the previous match and the match at (i, j) into
    /// a forward extension of the previous one (`a0` bytes) and a backward
    /// extension of the new one (`b` bytes).
    fn shrink_gap(&self, i: usize, j: usize) -> (usize, usize) {
        let gap = &self.t[self.j0 + self.n0..j];
        let suffix = &self.s[(self.i0 + self.n0).min(self.s.len())..];
        let prefix = &self.s[..i];
        let mut a0 = scan_similar(gap.iter(), suffix.iter());
        let mut b = scan_similar(gap.iter().rev(), prefix.iter().rev());
        if a0 + b > gap.len() {
            let n = a0 + b - gap.len();
            let xs = &gap[gap.len() - b..a0];
            let ys = &suffix[gap.len() - b..a0];
            let zs = &prefix[prefix.len() - b..prefix.len() - b + n];
            let cut = scan_divide(xs, ys, zs);
            a0 -= n - cut;
            b -= cut;
        }
        (a0, b)
    }
}

/// The prefix length where (matches − mismatches) between the two sequences peaks.
fn scan_similar<'x>(xs: impl Iterator<Item = &'x u8>, ys: impl Iterator<Item = &'x u8>) -> usize {
    let (mut best, mut best_score, mut score) = (0, 0isize, 0isize);
    for (n, (x, y)) in xs.zip(ys).enumerate() {
        score += if x == y { 1 } else { -1 };
        if score > best_score {
            best_score = score;
            best = n + 1;
        }
    }
    best
}

/// Where an overlap is best divided between the forward alignment (`ys`)
/// and the backward one (`zs`).
fn scan_divide(xs: &[u8], ys: &[u8], zs: &[u8]) -> usize {
    let (mut best, mut best_score, mut score) = (0, 0isize, 0isize);
    for (n, ((x, y), z)) in xs.iter().zip(ys).zip(zs).enumerate() {
        score += isize::from(x == y) - isize::from(x == z);
        if score > best_score {
            best_score = score;
            best = n + 1;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lcg(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect()
    }

    fn naive_longest(old: &[u8], pat: &[u8]) -> usize {
        (0..old.len())
            .map(|p| lcp_from(&old[p..], pat, 0))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn longest_match_agrees_with_brute_force() {
        let mut old = lcg(1, 3000);
        old.extend_from_slice(&[0u8; 300]);
        old.extend(lcg(2, 50).iter().map(|b| b % 4));
        let idx = Index::new(&old);
        for start in (0..old.len()).step_by(37) {
            let mut pat = old[start..(start + 40).min(old.len())].to_vec();
            pat.push(0xAA);
            let (p, n) = idx.longest_match(&pat);
            let best = naive_longest(&old, &pat);
            let best = if best < 2 { 0 } else { best };
            assert_eq!(n, best, "at {start}");
            assert_eq!(&old[p..p + n], &pat[..n]);
        }
    }

    #[test]
    fn diff_of_an_edited_binary_is_small_and_exact() {
        let old = lcg(7, 200_000);
        let mut new = old.clone();
        // Relocation-like edits: every 1000th byte incremented, a block
        // inserted, a block removed.
        for k in (0..new.len()).step_by(1000) {
            new[k] = new[k].wrapping_add(1);
        }
        new.splice(50_000..50_000, lcg(9, 5000));
        new.drain(120_000..130_000);
        let idx = Index::new(&old);
        let d = diff(&idx, &new);
        assert_eq!(d.apply(&old), new);
        assert!(d.extra.len() < 6000, "extra {}", d.extra.len());
        let nonzero = d.diff.iter().filter(|&&b| b != 0).count();
        assert!(nonzero < 400, "nonzero diff bytes {nonzero}");
    }

    #[test]
    fn degenerate_inputs() {
        for (old, new) in [
            (vec![], vec![]),
            (vec![], vec![1, 2, 3]),
            (vec![1, 2, 3], vec![]),
            (vec![0; 100_000], vec![0; 150_000]),
            (vec![0; 10], vec![1; 10]),
        ] {
            let idx = Index::new(&old);
            let d = diff(&idx, &new);
            assert_eq!(d.apply(&old), new);
        }
    }

    proptest! {
        #[test]
        fn diff_always_reproduces_new(
            old in proptest::collection::vec(0u8..4, 0..3000),
            edits in proptest::collection::vec((0usize..3000, 0u8..4, 0usize..40), 0..20),
        ) {
            let mut new = old.clone();
            for (at, b, len) in edits {
                let at = at.min(new.len());
                if len % 3 == 0 {
                    let end = (at + len).min(new.len());
                    new.drain(at..end);
                } else {
                    new.splice(at..at, std::iter::repeat_n(b, len));
                }
            }
            let idx = Index::new(&old);
            let d = diff(&idx, &new);
            prop_assert_eq!(d.apply(&old), new);
        }
    }
}
