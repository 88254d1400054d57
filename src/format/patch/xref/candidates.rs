//! Where the x86-64 operand scan ([`scan`](super::scan)) needs to look:
//! the positions whose byte could start a pattern, found 16 at a time.
//!
//! Almost every byte of code starts no pattern, yet the scan asked the
//! pattern tables about each one; on the bench pair that per-byte walk
//! over every predicted member's adds was most of what prediction added to
//! `sysup patch`'s CPU. A candidate here is a byte that is E8, E9 or 0F, or
//! is followed by a ModRM byte of the form `00 reg 101`: every position
//! where [`pattern`](super::pattern) finds one is a candidate, and about
//! one byte in twenty of code is, so the scan asks about those only.
//!
//! Invariant: [`next`] returns the first candidate at or after `at` and
//! before `end`, exactly as the byte-by-byte [`is_candidate`] defines it;
//! the SSE2 path (baseline on x86-64, no run-time detection) and the
//! portable one agree (tested against each other).

/// Whether position `i` of `b` could start a pattern: its byte is E8, E9
/// or 0F, or the byte after it is a RIP-relative ModRM (`00 reg 101`).
pub(super) fn is_candidate(b: &[u8], i: usize) -> bool {
    matches!(b[i], 0xe8 | 0xe9 | 0x0f) || b.get(i + 1).is_some_and(|&m| m & 0xc7 == 0x05)
}

/// The first candidate of `b` in `at..end` (`end` at most `b.len()`).
pub(super) fn next(b: &[u8], mut at: usize, end: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    while at < end && at + 17 <= b.len() {
        let m = mask16(b, at);
        if m != 0 {
            let p = at + m.trailing_zeros() as usize;
            return (p < end).then_some(p);
        }
        at += 16;
    }
    (at..end).find(|&i| is_candidate(b, i))
}

/// Bit `k` set when `at + k` is a candidate, for `k` in 0..16; needs
/// `at + 17 <= b.len()` (the ModRM test looks one byte further).
#[cfg(target_arch = "x86_64")]
#[inline]
fn mask16(b: &[u8], at: usize) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let w = &b[at..at + 17];
    // SAFETY: SSE2 is part of x86-64; both unaligned 16-byte loads lie
    // inside `w` (17 bytes).
    unsafe {
        let x = _mm_loadu_si128(w.as_ptr().cast::<__m128i>());
        let y = _mm_loadu_si128(w.as_ptr().add(1).cast::<__m128i>());
        // E8 and E9 are E9 with the low bit set.
        let call = _mm_cmpeq_epi8(
            _mm_or_si128(x, _mm_set1_epi8(1)),
            _mm_set1_epi8(0xe9u8 as i8),
        );
        let esc = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x0f));
        let rip = _mm_cmpeq_epi8(
            _mm_and_si128(y, _mm_set1_epi8(0xc7u8 as i8)),
            _mm_set1_epi8(0x05),
        );
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(call, esc), rip)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_by_byte(b: &[u8], at: usize, end: usize) -> Vec<usize> {
        (at..end).filter(|&i| is_candidate(b, i)).collect()
    }

    fn all_by_next(b: &[u8], mut at: usize, end: usize) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(p) = next(b, at, end) {
            out.push(p);
            at = p + 1;
        }
        out
    }

    proptest! {
        #[test]
        fn next_finds_exactly_the_candidates(
            b in proptest::collection::vec(
                prop_oneof![
                    4 => any::<u8>(),
                    1 => Just(0xe8u8),
                    1 => Just(0x0fu8),
                    1 => Just(0x05u8),
                    1 => Just(0x3du8),
                ],
                0..300,
            ),
            at in 0usize..300,
            cut in 0usize..300,
        ) {
            let end = b.len().saturating_sub(cut % (b.len() + 1));
            let at = at.min(end);
            prop_assert_eq!(all_by_next(&b, at, end), all_by_byte(&b, at, end));
        }
    }

    /// The scan as it was, asking about every byte.
    fn scan_by_byte(b: &[u8], mut at: usize, limit: usize) -> (Vec<usize>, usize) {
        let mut found = Vec::new();
        while at < limit && at < b.len() {
            match super::super::pattern(&b[at..]) {
                Some(k) if at + k + 4 <= b.len() => {
                    found.push(at + k);
                    at += k + 4;
                }
                _ => at += 1,
            }
        }
        (found, at.max(limit))
    }

    proptest! {
        #[test]
        fn the_scan_finds_what_a_byte_by_byte_walk_finds(
            b in proptest::collection::vec(
                prop_oneof![
                    6 => any::<u8>(),
                    1 => Just(0xe8u8),
                    1 => Just(0x0fu8),
                    1 => Just(0x8bu8),
                    1 => Just(0x05u8),
                    1 => Just(0x84u8),
                ],
                0..400,
            ),
            at in 0usize..50,
            limit in 0usize..450,
        ) {
            let mut found = Vec::new();
            let next = super::super::scan(&b, at, limit, |k| found.push(k));
            prop_assert_eq!((found, next), scan_by_byte(&b, at, limit));
        }
    }

    #[test]
    fn every_byte_value_in_every_lane() {
        // Each value at every offset of a 16-byte block, with the byte
        // after it every ModRM form.
        for v in 0..=255u8 {
            for m in [0x05u8, 0x0d, 0x45, 0xc5, 0x04, 0x00] {
                for lane in 0..20 {
                    let mut b = vec![0x90u8; 40];
                    b[lane] = v;
                    b[lane + 1] = m;
                    assert_eq!(all_by_next(&b, 0, b.len()), all_by_byte(&b, 0, b.len()));
                }
            }
        }
    }
}
