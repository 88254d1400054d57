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
//! - [`Map::project`] is deterministic for overlapping adds (the span with
//!   the greatest start at or before the target, ties by new offset);
//! - both sides refuse members with more than [`MAX_CTRLS`] controls or
//!   data beyond [`MAX_LEN`], which bounds the applier's memory.

use crate::format::patch::record::Ctrl;

/// Most bsdiff controls of one member encoded with reference prediction:
/// the applier holds them all (12 bytes each) and the map (12 bytes each).
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

/// Length of the pattern before a disp32 operand starting at `b[0]`, if
/// there is one.
fn pattern(b: &[u8]) -> Option<usize> {
    let rip = |m: u8| m & 0xc7 == 0x05;
    match *b.first()? {
        0xe8 | 0xe9 => Some(1),
        0x0f => {
            let op = *b.get(1)?;
            if op & 0xf0 == 0x80 {
                Some(2)
            } else if MODRM_0F_OPS.contains(&op) && rip(*b.get(2)?) {
                Some(3)
            } else {
                None
            }
        }
        op if MODRM_OPS.contains(&op) && rip(*b.get(1)?) => Some(2),
        _ => None,
    }
}

/// Scan old bytes `b` (an add's bytes from its start, possibly cut short
/// after `limit` + [`LOOKAHEAD`]) from `at`, calling `f` with the offset of
/// each operand whose pattern starts before `limit`; an operand must end
/// inside `b`. Returns where to resume (at or past `limit`).
pub fn scan(b: &[u8], mut at: usize, limit: usize, mut f: impl FnMut(usize)) -> usize {
    while at < limit && at < b.len() {
        match pattern(&b[at..]) {
            Some(k) if at + k + 4 <= b.len() => {
                f(at + k);
                at += k + 4;
            }
            _ => at += 1,
        }
    }
    at.max(limit)
}

/// The equivalence map of a member: its adds as (old start, new start,
/// length), sorted by old start then new start.
#[derive(Debug, Default)]
pub struct Map {
    spans: Vec<(u32, u32, u32)>,
}

impl Map {
    /// The map of `ctrls`, the member's controls in order; `None` when they
    /// exceed [`MAX_CTRLS`] or reach past [`MAX_LEN`].
    pub fn new(ctrls: &[Ctrl]) -> Option<Map> {
        if ctrls.len() > MAX_CTRLS {
            return None;
        }
        let mut spans = Vec::with_capacity(ctrls.len());
        let mut new_pos = 0u64;
        for c in ctrls {
            let end = c.old_pos.checked_add(c.add)?;
            let new_end = new_pos.checked_add(c.add)?.checked_add(c.extra)?;
            if end > MAX_LEN || new_end > MAX_LEN {
                return None;
            }
            if c.add > 0 {
                spans.push((c.old_pos as u32, new_pos as u32, c.add as u32));
            }
            new_pos = new_end;
        }
        spans.sort_unstable();
        Some(Map { spans })
    }

    /// Where old offset `t` went in the new member, if an add carried it.
    pub fn project(&self, t: u64) -> Option<u64> {
        let i = self.spans.partition_point(|s| u64::from(s.0) <= t);
        let &(o, n, len) = self.spans.get(i.checked_sub(1)?)?;
        (t < u64::from(o) + u64::from(len)).then(|| u64::from(n) + (t - u64::from(o)))
    }
}

/// The predicted new operand for an old operand `old` at old offset `x`
/// that lands at new offset `y`, or `None` (keep the bytewise difference).
pub fn predict(map: &Map, old_len: u64, x: u64, y: u64, old: [u8; 4]) -> Option<[u8; 4]> {
    let t = (x as i64) + 4 + i64::from(i32::from_le_bytes(old));
    let t = u64::try_from(t).ok().filter(|&t| t < old_len)?;
    let t2 = map.project(t)?;
    let disp = (t2 as i64).wrapping_sub(y as i64 + 4) as i32;
    Some(disp.to_le_bytes())
}

/// Differ side: the diff bytes of one add (old bytes `old` at old offset
/// `x0`, landing at new offset `y0`; `diff` their bytewise difference),
/// rewritten from bytewise to predicted when `write`. Returns the nonzero
/// diff bytes of the predicted operands before and after, to judge whether
/// the member gains.
pub fn encode_add(
    map: &Map,
    old_len: u64,
    old: &[u8],
    (x0, y0): (u64, u64),
    diff: &mut [u8],
    write: bool,
) -> (u64, u64) {
    let (mut before, mut after) = (0u64, 0u64);
    scan(old, 0, old.len(), |k| {
        let o: [u8; 4] = old[k..k + 4].try_into().expect("scan keeps operands whole");
        let Some(p) = predict(map, old_len, x0 + k as u64, y0 + k as u64, o) else {
            return;
        };
        let d = &mut diff[k..k + 4];
        let new: [u8; 4] = std::array::from_fn(|i| o[i].wrapping_add(d[i]));
        let coded = i32::from_le_bytes(new)
            .wrapping_sub(i32::from_le_bytes(p))
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
pub fn decode_piece(
    map: &Map,
    old_len: u64,
    old: &[u8],
    limit: usize,
    x0: u64,
    y0: u64,
    out: &mut [u8],
) {
    scan(old, 0, limit, |k| {
        let o: [u8; 4] = old[k..k + 4].try_into().expect("scan keeps operands whole");
        let Some(p) = predict(map, old_len, x0 + k as u64, y0 + k as u64, o) else {
            return;
        };
        let d = &mut out[k..k + 4];
        let coded: [u8; 4] = std::array::from_fn(|i| d[i].wrapping_sub(o[i]));
        let new = i32::from_le_bytes(p)
            .wrapping_add(i32::from_le_bytes(coded))
            .to_le_bytes();
        d.copy_from_slice(&new);
    });
}

/// How many bytes a piece of `n` bytes of an add must take so that no
/// operand found in it straddles its end: `n`, or the end of the last
/// operand whose pattern starts in it. `old` holds the add's old bytes from
/// the piece's start, up to [`LOOKAHEAD`] past `n` where the add goes on.
pub fn piece_end(old: &[u8], n: usize) -> usize {
    let mut end = n;
    scan(old, 0, n, |k| end = end.max(k + 4));
    end
}

#[cfg(test)]
mod tests;
