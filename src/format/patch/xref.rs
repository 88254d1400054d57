//! x86-64 reference prediction for bsdiffed executables (patch format 3):
//! the part of a rebuilt binary that bsdiff pays for although the code did
//! not change is the 32-bit displacements of calls, jumps and RIP-relative
//! operands, which change whenever code moves. Here both sides predict the
//! new displacement from the old one, so a reference whose target moved
//! with the code around it costs four zero diff bytes.
//!
//! The equivalence map is the member's own bsdiff controls: each add maps
//! old bytes `[old_pos, old_pos + add)` to new bytes at the same offset of
//! the new member ([`Map`]). Within each add, [`scan`] finds candidate
//! operands in the *old* bytes (E8/E9 rel32, 0F 8x rel32, and the ModRM
//! `00 reg 101` RIP-relative forms of common opcodes without an immediate);
//! for each, the old target `T = x + 4 + disp` is projected through the map
//! to `T'`, and the predicted new displacement is `T' − (y + 4)`, `y` being
//! the operand's new offset. The diff bytes of those four bytes carry
//! `new − predicted` (little-endian, wrapping) instead of the bytewise
//! `new − old`. Operands whose target lies outside the old data or outside
//! every add keep the bytewise difference.
//!
//! Invariants:
//! - everything here is a function of the old bytes and the controls, which
//!   the applier has before it makes the bytes: the scan runs over old bytes
//!   only, restarts at each add's start, and an operand counts only when its
//!   pattern and all four bytes lie inside the add, so how the applier cuts
//!   an add into pieces does not change what is found;
//! - [`Map::project`] is deterministic for overlapping adds (the longest
//!   add covering the target, ties by old then new offset);
//! - both sides refuse members with more than [`MAX_CTRLS`] controls or
//!   data beyond [`MAX_LEN`], which bounds the applier's memory.
//!
//! aarch64 executables (patch format 4) are predicted by [`aarch64`], with
//! the same map, tables and bounds; the machine is the old member's.

use crate::format::patch::ctrl::Ctrl;

pub mod aarch64;
mod candidates;

/// Most bsdiff controls of one member encoded with reference prediction:
/// the applier holds them all (24 bytes each) and the map (at most two
/// 12-byte segments each; building it takes about 40 bytes per control
/// more for a moment).
pub const MAX_CTRLS: usize = 1 << 18;
/// Largest old or new data of such a member (offsets are kept as `u32`).
pub const MAX_LEN: u64 = 1 << 31;
/// Bytes past a piece the applier reads so an operand that starts in the
/// piece is whole: pattern (at most 3 bytes) + operand (4).
pub const LOOKAHEAD: usize = 8;

/// Whether `data` starts like an x86-64 ELF file (64-bit, little-endian,
/// e_machine 62).
pub fn is_x86_64_elf(data: &[u8]) -> bool {
    data.len() >= 20
        && data[..4] == *b"\x7fELF"
        && data[4] == 2
        && data[5] == 1
        && u16::from_le_bytes([data[18], data[19]]) == 62
}

/// One-byte opcodes taking a ModRM operand and no immediate, for which
/// ModRM `00 reg 101` is a RIP-relative disp32 ending the instruction.
const MODRM_OPS: [u8; 27] = [
    0x01, 0x03, 0x09, 0x0b, 0x11, 0x13, 0x19, 0x1b, 0x21, 0x23, 0x29, 0x2b, 0x31, 0x33, 0x39, 0x3b,
    0x63, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0xff,
];
/// Two-byte (0F xx) opcodes of the same kind: SSE moves and arithmetic,
/// zero/sign-extending moves.
const MODRM_0F_OPS: [u8; 16] = [
    0x10, 0x11, 0x28, 0x29, 0x2e, 0x2f, 0x54, 0x57, 0x58, 0x59, 0x5c, 0x6f, 0x7f, 0xb6, 0xb7, 0xbe,
];

/// What a byte starting a pattern is: 1 = E8/E9, 2 = 0F, 3 = a
/// [`MODRM_OPS`] opcode, 0 = none; and for the byte after 0F: 1 = jcc,
/// 3 = a [`MODRM_0F_OPS`] opcode. Tables, because the scan asks per byte.
const FIRST: [u8; 256] = table(&[0xe8, 0xe9], 1, &[0x0f], 2, &MODRM_OPS, 3);
const SECOND: [u8; 256] = table(&JCC, 1, &[], 0, &MODRM_0F_OPS, 3);
const JCC: [u8; 16] = [
    0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
];

const fn table(a: &[u8], va: u8, b: &[u8], vb: u8, c: &[u8], vc: u8) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < a.len() {
        t[a[i] as usize] = va;
        i += 1;
    }
    i = 0;
    while i < b.len() {
        t[b[i] as usize] = vb;
        i += 1;
    }
    i = 0;
    while i < c.len() {
        t[c[i] as usize] = vc;
        i += 1;
    }
    t
}

/// Length of the pattern before a disp32 operand starting at `b[0]`, if
/// there is one.
fn pattern(b: &[u8]) -> Option<usize> {
    let rip = |m: u8| m & 0xc7 == 0x05;
    match FIRST[usize::from(*b.first()?)] {
        0 => None,
        1 => Some(1),
        2 => match SECOND[usize::from(*b.get(1)?)] {
            1 => Some(2),
            3 if rip(*b.get(2)?) => Some(3),
            _ => None,
        },
        _ => rip(*b.get(1)?).then_some(2),
    }
}

/// Scan old bytes `b` (an add's bytes from its start, possibly cut short
/// after `limit` + [`LOOKAHEAD`]) from `at`, calling `f` with the offset of
/// each operand whose pattern starts before `limit`; an operand must end
/// inside `b`. Returns where to resume (at or past `limit`).
pub fn scan(b: &[u8], mut at: usize, limit: usize, mut f: impl FnMut(usize)) -> usize {
    // Only candidates can start a pattern: the positions in between are
    // passed over as the byte-by-byte walk would pass them.
    let end = limit.min(b.len());
    while let Some(p) = candidates::next(b, at, end) {
        match pattern(&b[p..]) {
            Some(k) if p + k + 4 <= b.len() => {
                f(p + k);
                at = p + k + 4;
            }
            _ => at = p + 1,
        }
    }
    at.max(limit)
}

/// The equivalence map of a member, from its adds: disjoint old ranges as
/// (old start, length, new start), sorted. Where adds overlap in the old
/// bytes (bsdiff reuses common sequences) the longest add owns the range:
/// the longer a match, the likelier it is the code's real new place.
///
/// [`Map::project`] runs once per predicted operand on both sides: a
/// bucket table over the old offsets (`first[b]`, the first segment
/// starting at or after `b << shift`) narrows its search to the few
/// segments of one bucket, where a binary search over all of them missed
/// the cache at every step. The table has at most about twice as many
/// entries as there are segments.
#[derive(Debug, Default)]
pub struct Map {
    segs: Vec<(u32, u32, u32)>,
    shift: u32,
    first: Vec<u32>,
}

impl Map {
    /// The map of `ctrls`, the member's controls in order; `None` when they
    /// exceed [`MAX_CTRLS`] or reach past [`MAX_LEN`].
    pub fn new(ctrls: &[Ctrl]) -> Option<Map> {
        if ctrls.len() > MAX_CTRLS {
            return None;
        }
        // (old start, old end, new start)
        let mut spans = Vec::with_capacity(ctrls.len());
        let mut new_pos = 0u64;
        for c in ctrls {
            let end = c.old_pos.checked_add(c.add)?;
            let new_end = new_pos.checked_add(c.add)?.checked_add(c.extra)?;
            if end > MAX_LEN || new_end > MAX_LEN {
                return None;
            }
            if c.add > 0 {
                spans.push((c.old_pos, end, new_pos));
            }
            new_pos = new_end;
        }
        spans.sort_unstable();
        Some(Map::indexed(longest_owner(&spans)))
    }

    /// `segs` with their bucket table: buckets of 2^`shift` old bytes,
    /// the smallest power of two (at least 64) that keeps the table within
    /// twice the segments plus a few.
    fn indexed(segs: Vec<(u32, u32, u32)>) -> Map {
        let last = segs.last().map_or(0, |s| u64::from(s.0));
        let mut shift = 6;
        while (last >> shift) + 2 > 2 * segs.len() as u64 + 16 {
            shift += 1;
        }
        let buckets = (last >> shift) as usize + 2;
        let mut first = Vec::with_capacity(buckets);
        let mut i = 0;
        for b in 0..buckets as u64 {
            while i < segs.len() && u64::from(segs[i].0) < b << shift {
                i += 1;
            }
            first.push(i as u32);
        }
        Map { segs, shift, first }
    }

    /// Where old offset `t` went in the new member, if an add carried it.
    pub fn project(&self, t: u64) -> Option<u64> {
        // Segments before `first[b]` start before t, those from
        // `first[b + 1]` after it: search only in between.
        let b = usize::try_from(t >> self.shift).unwrap_or(usize::MAX);
        let n = self.segs.len();
        let lo = self.first.get(b).map_or(n, |&x| x as usize);
        let hi = self
            .first
            .get(b.saturating_add(1))
            .map_or(n, |&x| x as usize);
        let i = lo + self.segs[lo..hi].partition_point(|s| u64::from(s.0) <= t);
        let &(o, len, n) = self.segs.get(i.checked_sub(1)?)?;
        (t < u64::from(o) + u64::from(len)).then(|| u64::from(n) + (t - u64::from(o)))
    }
}

/// Cut sorted `spans` (old start, old end, new start) into disjoint
/// segments, each owned by the longest span covering it (ties: the first
/// in order), by a sweep over their boundaries.
fn longest_owner(spans: &[(u64, u64, u64)]) -> Vec<(u32, u32, u32)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut points: Vec<u64> = spans.iter().flat_map(|s| [s.0, s.1]).collect();
    points.sort_unstable();
    points.dedup();
    let mut heap = BinaryHeap::new();
    let mut next = 0;
    let mut segs: Vec<(u32, u32, u32)> = Vec::new();
    for w in points.windows(2) {
        let (p, q) = (w[0], w[1]);
        while next < spans.len() && spans[next].0 == p {
            let (o, e, _) = spans[next];
            heap.push((e - o, Reverse(next)));
            next += 1;
        }
        while heap.peek().is_some_and(|&(_, Reverse(k))| spans[k].1 <= p) {
            heap.pop();
        }
        let Some(&(_, Reverse(k))) = heap.peek() else {
            continue;
        };
        let (o, _, n) = spans[k];
        let new_at = (n + (p - o)) as u32;
        // Offsets are below MAX_LEN (checked by the caller): they fit u32.
        match segs.last_mut() {
            Some(last)
                if u64::from(last.0) + u64::from(last.1) == p
                    && u64::from(last.2) + u64::from(last.1) == u64::from(new_at) =>
            {
                last.1 += (q - p) as u32;
            }
            _ => segs.push((p as u32, (q - p) as u32, new_at)),
        }
    }
    segs
}

/// Most loadable segments of an executable the prediction uses.
pub const MAX_SEGMENTS: usize = 16;

/// One loadable segment (ELF `PT_LOAD`): file offset, virtual address,
/// bytes in the file, bytes in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// An executable's loadable segments: references are relative to virtual
/// addresses, bsdiff's map to file offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Segments(pub Vec<Segment>);

impl Segments {
    /// The `PT_LOAD` segments of a 64-bit little-endian ELF file whose
    /// first bytes are `head` (up to [`MAX_SEGMENTS`]); `None` if its program
    /// headers are not within `head`.
    pub fn parse(head: &[u8]) -> Option<Segments> {
        let u = |at: usize, n: usize| -> Option<u64> {
            let b = head.get(at..at + n)?;
            Some(b.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x)))
        };
        let phoff = usize::try_from(u(32, 8)?).ok()?;
        let (phentsize, phnum) = (u(54, 2)? as usize, u(56, 2)? as usize);
        if phentsize < 56 {
            return None;
        }
        let mut segs = Vec::new();
        for i in 0..phnum {
            let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
            // Past the head: none of the offsets below can overflow.
            if at >= head.len() {
                return None;
            }
            if u(at, 4)? != 1 {
                continue;
            }
            if segs.len() == MAX_SEGMENTS {
                return None;
            }
            segs.push(Segment {
                offset: u(at + 8, 8)?,
                vaddr: u(at + 16, 8)?,
                filesz: u(at + 32, 8)?,
                memsz: u(at + 40, 8)?,
            });
        }
        Some(Segments(segs))
    }

    /// The virtual address of file offset `off`.
    fn vaddr_of(&self, off: u64) -> Option<u64> {
        let s = self
            .0
            .iter()
            .find(|s| s.offset <= off && off - s.offset < s.filesz)?;
        s.vaddr.checked_add(off - s.offset)
    }

    /// The segment holding virtual address `v`, and its file offset when it
    /// is in the file (not zero-filled memory).
    fn offset_of(&self, v: u64) -> Option<(usize, Option<u64>)> {
        let (k, s) = self
            .0
            .iter()
            .enumerate()
            .find(|(_, s)| s.vaddr <= v && v - s.vaddr < s.memsz)?;
        let d = v - s.vaddr;
        Some((k, (d < s.filesz).then(|| s.offset.wrapping_add(d))))
    }
}

/// What both sides predict new operands from: the member's map and both
/// executables' segments.
#[derive(Debug, Default)]
pub struct Predictor {
    pub map: Map,
    pub old: Segments,
    pub new: Segments,
}

impl Predictor {
    /// The predicted new operand for an old operand `old` at old offset `x`
    /// that lands at new offset `y`, or `None` (keep the bytewise
    /// difference). The old target's virtual address is turned into a file
    /// offset, carried by the map and turned back; a target the map does
    /// not carry (zero-filled memory, changed data) moves with its segment.
    pub fn predict(&self, x: u64, y: u64, old: [u8; 4]) -> Option<[u8; 4]> {
        let vx = self.old.vaddr_of(x)?.checked_add(4)?;
        let vt = vx.checked_add_signed(i64::from(i32::from_le_bytes(old)))?;
        let (k, t) = self.old.offset_of(vt)?;
        let carried = t
            .and_then(|t| self.map.project(t))
            .and_then(|t| self.new.vaddr_of(t));
        let vt2 = match carried {
            Some(v) => v,
            None => {
                let (a, b) = (self.old.0[k], *self.new.0.get(k)?);
                b.vaddr.checked_add(vt - a.vaddr)?
            }
        };
        let vy = self.new.vaddr_of(y)?.checked_add(4)?;
        Some((vt2.wrapping_sub(vy) as i32).to_le_bytes())
    }
}

/// Differ side: the diff bytes of one add (old bytes `old` at old offset
/// `x0`, landing at new offset `y0`; `diff` their bytewise difference),
/// rewritten from bytewise to predicted when `write`. Returns the nonzero
/// diff bytes of the predicted operands before and after, to judge whether
/// the member gains.
pub fn encode_add(
    p: &Predictor,
    old: &[u8],
    (x0, y0): (u64, u64),
    diff: &mut [u8],
    write: bool,
) -> (u64, u64) {
    let (mut before, mut after) = (0u64, 0u64);
    scan(old, 0, old.len(), |k| {
        let o: [u8; 4] = old[k..k + 4].try_into().expect("scan keeps operands whole");
        let Some(pr) = p.predict(x0 + k as u64, y0 + k as u64, o) else {
            return;
        };
        let d = &mut diff[k..k + 4];
        let new: [u8; 4] = std::array::from_fn(|i| o[i].wrapping_add(d[i]));
        let coded = i32::from_le_bytes(new)
            .wrapping_sub(i32::from_le_bytes(pr))
            .to_le_bytes();
        before += d.iter().filter(|&&b| b != 0).count() as u64;
        after += coded.iter().filter(|&&b| b != 0).count() as u64;
        if write {
            d.copy_from_slice(&coded);
        }
    });
    (before, after)
}

/// Applier side: `out` holds old bytes plus the (predicted-coded) diff
/// bytes of a piece of an add, [`piece_end`] bytes long for a piece of
/// `limit`; `old` the old bytes from the piece's start (at least as many);
/// `x0`/`y0` the piece's old and new offsets. Rewrites the operands whose
/// pattern starts in the first `limit` bytes. A piece starts where the scan
/// of the one before ended, so the next piece's scan starts at its first
/// byte, as the differ's one scan over the whole add does.
pub fn decode_piece(p: &Predictor, old: &[u8], limit: usize, xy: (u64, u64), out: &mut [u8]) {
    let mut ops = Vec::new();
    piece_operands(old, limit, &mut ops);
    decode_operands(p, old, &ops, xy, out);
}

/// [`decode_piece`] for the operands [`piece_operands`] found: the
/// applier scans a piece once for both.
pub fn decode_operands(
    p: &Predictor,
    old: &[u8],
    ops: &[u32],
    (x0, y0): (u64, u64),
    out: &mut [u8],
) {
    for &k in ops {
        let k = k as usize;
        let o: [u8; 4] = old[k..k + 4].try_into().expect("scan keeps operands whole");
        let Some(pr) = p.predict(x0 + k as u64, y0 + k as u64, o) else {
            continue;
        };
        let d = &mut out[k..k + 4];
        let coded: [u8; 4] = std::array::from_fn(|i| d[i].wrapping_sub(o[i]));
        let new = i32::from_le_bytes(pr)
            .wrapping_add(i32::from_le_bytes(coded))
            .to_le_bytes();
        d.copy_from_slice(&new);
    }
}

/// How many bytes a piece of `n` bytes of an add must take so that no
/// operand found in it straddles its end: `n`, or the end of the last
/// operand whose pattern starts in it. `old` holds the add's old bytes from
/// the piece's start, up to [`LOOKAHEAD`] past `n` where the add goes on.
pub fn piece_end(old: &[u8], n: usize) -> usize {
    piece_operands(old, n, &mut Vec::new())
}

/// [`piece_end`], and the offsets in `old` of the operands whose pattern
/// starts in the first `n` bytes, in order, in `ops` (cleared first).
pub fn piece_operands(old: &[u8], n: usize, ops: &mut Vec<u32>) -> usize {
    ops.clear();
    let mut end = n;
    scan(old, 0, n, |k| {
        ops.push(k as u32);
        end = end.max(k + 4);
    });
    end
}

#[cfg(test)]
mod tests;
